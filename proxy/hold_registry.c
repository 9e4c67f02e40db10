/*
 * The hold registry (see hold_registry.h). Every change builds a new hold
 * set, hands it to every worker and waits for all of them, so a hold is in
 * force everywhere before anyone is told it is; the old set is freed once no
 * worker points at it. Leases are lease.c's timers on the main loop.
 */
#include "hold_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "pgvalve/admin_api.h"
#include "pgvalve/clock.h"
#include "pgvalve/jsonval.h"
#include "pgvalve/log.h"
#include "runtime.h"
#include "worker.h"

#define IN_FLIGHT_POLL_MS 5 /* how often a waiting 201 counts the units it waits for */

struct hold_wait {
	char id[ADMIN_HOLD_ID_MAX];
	uint64_t seq;
	int64_t deadline; /* clock_mono_ms */
	struct event *timer;
	hold_settled_fn done;
	void *ctx;
	struct hold_wait *next;
};

static struct event_base *loop;
static struct hold_wait *waits;    /* 201s waiting for units in flight */
static struct lease_list holds;    /* items: struct hold */
static struct hold_set *published; /* what every worker currently sees */
static uint64_t n_placed;          /* holds ever placed: each hold's seq */

static void on_lease_expired(struct leased *l);

void hold_registry_init(struct event_base *base)
{
	loop = base;
	lease_list_init(&holds, base, on_lease_expired);
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
	struct hold_set *set = calloc(1, sizeof(*set) + (size_t)holds.n * sizeof(set->holds[0]));
	struct hold_apply *per = worker_slots(sizeof(*per));
	struct hold_set *old = published;

	if (!set)
		abort(); /* defensive: a few bytes; a hold half-published would be worse than stopping */
	for (struct leased *l = holds.head; l; l = l->next) {
		const struct hold *h = l->item;

		set->holds[set->n++] = h;
		if (h->seq > set->newest)
			set->newest = h->seq;
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
			sum->in_flight += per[i].in_flight;
			cJSON_ArrayForEach(pid, per[i].pids)
				cJSON_AddItemToArray(sum->pids, cJSON_CreateNumber(pid->valuedouble));
		}
		cJSON_Delete(per[i].pids);
	}
	free(per);
}

/* Takes the hold off, publishes the set without it, then frees it (no worker sees it any more). */
static void held_release(struct leased *l)
{
	struct hold *hold = lease_remove(l);

	publish(NULL, NULL);
	free(hold);
}

static void on_lease_expired(struct leased *l)
{
	const struct hold *h = l->item;

	log_warn("hold %s: lease of %lld ms ran out without renewal: released (a coordinator that "
		 "stops renewing can never freeze traffic)",
		 h->id, (long long)h->lease_ms);
	held_release(l);
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
	if (lease_find(&holds, hold->id)) {
		snprintf(err, errlen, "a hold with id \"%s\" exists already", hold->id);
		free(hold);
		return 409;
	}
	if (!resolve_reroute(hold, err, errlen)) {
		free(hold);
		return 400;
	}
	if (!lease_add(&holds, hold, hold->id, &hold->lease_ms)) {
		snprintf(err, errlen, "out of memory");
		free(hold);
		return 500;
	}
	hold->seq = ++n_placed;
	publish(hold->id, sum);
	return 0;
}

/* ---- the 201 waiting for units in flight ----------------------------------- */

static int count_in_flight(uint64_t seq)
{
	struct in_flight_count *per = worker_slots(sizeof(*per));
	int n = 0;

	for (int i = 0; i < rt.n_workers; i++)
		per[i].seq = seq;
	WORKER_FANOUT(park_count_in_flight_job, per);
	for (int i = 0; i < rt.n_workers; i++)
		n += per[i].n;
	free(per);
	return n;
}

static void wait_unlink(struct hold_wait *hw)
{
	struct hold_wait **link;

	for (link = &waits; *link && *link != hw; link = &(*link)->next)
		;
	if (*link)
		*link = hw->next;
	event_free(hw->timer);
}

static void wait_finish(struct hold_wait *hw, int in_flight)
{
	hold_settled_fn done = hw->done;
	void *ctx = hw->ctx;

	wait_unlink(hw);
	free(hw);
	done(ctx, in_flight);
}

static void on_wait_timer(evutil_socket_t fd, short what, void *arg)
{
	struct hold_wait *hw = arg;
	const struct timeval tv = { 0, IN_FLIGHT_POLL_MS * 1000 };
	int n = count_in_flight(hw->seq);

	if (n == 0 || clock_mono_ms() >= hw->deadline || !lease_find(&holds, hw->id))
		wait_finish(hw, n);
	else
		evtimer_add(hw->timer, &tv);
}

struct hold_wait *hold_registry_await(const char *id, hold_settled_fn done, void *ctx)
{
	const struct hold *h = lease_peek(&holds, id);
	struct hold_wait *hw = calloc(1, sizeof(*hw));
	const struct timeval now = { 0, 0 };

	if (!hw || !(hw->timer = evtimer_new(loop, on_wait_timer, hw)))
		abort(); /* defensive: a few bytes; a 201 never sent would leave the caller waiting */
	snprintf(hw->id, sizeof(hw->id), "%s", id);
	hw->seq = h ? h->seq : UINT64_MAX;
	hw->deadline = clock_mono_ms() +
		(h ? (h->in_flight_wait_ms < h->max_wait_ms ? h->in_flight_wait_ms : h->max_wait_ms) : 0);
	hw->done = done;
	hw->ctx = ctx;
	hw->next = waits;
	waits = hw;
	evtimer_add(hw->timer, &now);
	return hw;
}

void hold_registry_forget_wait(struct hold_wait *hw)
{
	wait_unlink(hw);
	free(hw);
}

/* ---- lookups --------------------------------------------------------------- */

const struct hold *hold_registry_peek(const char *id)
{
	return lease_peek(&holds, id);
}

bool hold_registry_release(const char *id)
{
	struct leased *l = lease_find(&holds, id);

	if (!l)
		return false;
	held_release(l);
	return true;
}

bool hold_registry_renew(const char *id, int64_t lease_ms)
{
	return lease_renew(&holds, id, lease_ms);
}

void hold_registry_describe(cJSON *arr)
{
	for (struct leased *l = holds.head; l; l = l->next) {
		cJSON *o = cJSON_CreateObject();

		hold_describe(l->item, o);
		cJSON_AddItemToArray(arr, o);
	}
}

int hold_registry_count(void)
{
	return holds.n;
}

static void detach_holds_job(struct worker *w, void *arg)
{
	w->holds = NULL;
}

void hold_registry_release_all(void)
{
	while (waits)
		wait_finish(waits, count_in_flight(waits->seq));
	while (holds.head)
		held_release(holds.head);
	/* Workers still point at the (now empty) published set: detach them before freeing it. */
	worker_fanout(detach_holds_job, NULL, 0);
	free(published);
	published = NULL;
}
