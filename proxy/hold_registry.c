/*
 * The hold registry (see hold_registry.h). Every change builds a new hold
 * set, hands it to every worker and waits for all of them, so a hold is in
 * force everywhere before anyone is told it is; the old set is freed once no
 * worker points at it. Leases are timers on the main loop.
 */
#include "hold_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/admin_api.h"
#include "pgvalve/jsonval.h"
#include "pgvalve/log.h"
#include "runtime.h"
#include "worker.h"

struct held {
	struct hold *hold;
	struct event *lease; /* fires when the lease runs out without renewal */
	struct held *next;
};

static struct event_base *registry_base;
static struct held *registry;
static struct hold_set *published; /* what every worker currently sees */
static int n_held;
static uint64_t n_placed; /* holds ever placed: each hold's seq */

void hold_registry_init(struct event_base *base)
{
	registry_base = base;
}

static struct held *held_find(const char *id)
{
	for (struct held *h = registry; h; h = h->next)
		if (strcmp(h->hold->id, id) == 0)
			return h;
	return NULL;
}

static int by_park_time(const void *a, const void *b)
{
	const struct parked_ref *x = a, *y = b;

	return x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
}

/*
 * After a hold went away: re-checks every parked session, oldest first across
 * all workers (by the arrival number park.c stamps when a unit parks), one at
 * a time, so released work reaches the server in the order it arrived at the
 * proxy.
 */
static void resume_in_arrival_order(struct hold_apply *per)
{
	struct parked_ref *all;
	int n = 0, k = 0;

	for (int i = 0; i < rt.n_workers; i++)
		n += per[i].n_parked_refs;
	all = n ? malloc((size_t)n * sizeof(*all)) : NULL;
	for (int i = 0; i < rt.n_workers; i++) {
		for (int j = 0; all && j < per[i].n_parked_refs; j++)
			all[k++] = per[i].parked_refs[j];
		free(per[i].parked_refs);
	}
	if (!all)
		return;
	qsort(all, (size_t)n, sizeof(*all), by_park_time);
	for (int i = 0; i < n; i++)
		worker_call(&rt.workers[all[i].worker], park_recheck_job, &all[i].session_id);
	free(all);
}

/*
 * Builds a set from the registry and hands it to every worker; returns once
 * all have applied it, with their counts merged into 'sum' (NULL: not wanted).
 */
static void publish(const char *count_id, struct hold_apply *sum)
{
	struct hold_set *set = calloc(1, sizeof(*set) + (size_t)n_held * sizeof(set->holds[0]));
	struct hold_apply *per = worker_slots(sizeof(*per));
	struct hold_set *old = published;

	if (!set)
		abort(); /* defensive: a few bytes; a hold half-published would be worse than stopping */
	for (struct held *h = registry; h; h = h->next) {
		set->holds[set->n++] = h->hold;
		if (h->hold->seq > set->newest)
			set->newest = h->hold->seq;
	}
	for (int i = 0; i < rt.n_workers; i++) {
		per[i].set = set;
		per[i].count_id = count_id;
		per[i].pids = sum && sum->pids ? cJSON_CreateArray() : NULL;
		/* Only a smaller set can let parked work go; a new hold never does. */
		per[i].list_parked = old && set->n < old->n;
	}
	WORKER_FANOUT(park_apply_holds_job, per);
	published = set;
	free(old);
	resume_in_arrival_order(per);
	for (int i = 0; i < rt.n_workers; i++) {
		if (sum) {
			cJSON *pid;

			sum->parked += per[i].parked;
			sum->in_transaction += per[i].in_transaction;
			cJSON_ArrayForEach(pid, per[i].pids)
				cJSON_AddItemToArray(sum->pids, cJSON_CreateNumber(pid->valuedouble));
		}
		cJSON_Delete(per[i].pids);
	}
	free(per);
}

static void held_arm_lease(struct held *h, int64_t lease_ms)
{
	struct timeval tv = { (time_t)(lease_ms / 1000), (suseconds_t)(lease_ms % 1000) * 1000 };

	evtimer_add(h->lease, &tv);
}

/* Unlinks, publishes the set without it, then frees it (no worker sees it any more). */
static void held_release(struct held *h)
{
	struct held **link;

	for (link = &registry; *link != h; link = &(*link)->next)
		;
	*link = h->next;
	n_held--;
	publish(NULL, NULL);
	event_free(h->lease);
	free(h->hold);
	free(h);
}

static void on_lease_expired(evutil_socket_t fd, short what, void *arg)
{
	struct held *h = arg;

	log_warn("hold %s: lease of %lld ms ran out without renewal: released (a coordinator that "
		 "stops renewing can never freeze traffic)",
		 h->hold->id, (long long)h->hold->lease_ms);
	held_release(h);
}

/* A reroute hold names the upstream new sessions go to: it must be one the config has. */
static bool resolve_reroute(struct hold *hold, char *err, size_t errlen)
{
	char why[512];

	if (hold->policy != HOLD_REROUTE)
		return true;
	hold->upstream_index = config_upstream_index(&rt.snap->cfg, hold->upstream, why, sizeof(why));
	if (hold->upstream_index < 0)
		return jsonval_fail(err, errlen, ADMIN_HOLD_UPSTREAM, "%s", why);
	return true;
}

int hold_registry_add(struct hold *hold, struct hold_apply *sum, char *err, size_t errlen)
{
	struct held *h;

	if (held_find(hold->id)) {
		snprintf(err, errlen, "a hold with id \"%s\" exists already", hold->id);
		free(hold);
		return 409;
	}
	if (!resolve_reroute(hold, err, errlen)) {
		free(hold);
		return 400;
	}
	h = calloc(1, sizeof(*h));
	if (!h || !(h->lease = evtimer_new(registry_base, on_lease_expired, h))) {
		snprintf(err, errlen, "out of memory");
		free(h);
		free(hold);
		return 500;
	}
	hold->seq = ++n_placed;
	h->hold = hold;
	h->next = registry;
	registry = h;
	n_held++;
	held_arm_lease(h, hold->lease_ms);
	publish(hold->id, sum);
	return 0;
}

const struct hold *hold_registry_peek(const char *id)
{
	struct held *h = held_find(id);

	return h ? h->hold : NULL;
}

bool hold_registry_release(const char *id)
{
	struct held *h = held_find(id);

	if (!h)
		return false;
	held_release(h);
	return true;
}

bool hold_registry_renew(const char *id, int64_t lease_ms)
{
	struct held *h = held_find(id);

	if (!h)
		return false;
	h->hold->lease_ms = lease_ms; /* main thread only: workers never read the lease */
	held_arm_lease(h, lease_ms);
	return true;
}

void hold_registry_describe(cJSON *arr)
{
	for (struct held *h = registry; h; h = h->next) {
		cJSON *o = cJSON_CreateObject();

		hold_describe(h->hold, o);
		cJSON_AddItemToArray(arr, o);
	}
}

int hold_registry_count(void)
{
	return n_held;
}

static void detach_holds_job(struct worker *w, void *arg)
{
	w->holds = NULL;
}

void hold_registry_release_all(void)
{
	while (registry)
		held_release(registry);
	/* Workers still point at the (now empty) published set: detach them before freeing it. */
	worker_fanout(detach_holds_job, NULL, 0);
	free(published);
	published = NULL;
}
