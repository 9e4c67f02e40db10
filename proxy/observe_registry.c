/*
 * The observation registry (see observe_registry.h). Every change builds a
 * new observe set, hands it to every worker and waits for all of them; the
 * old set is freed once no worker points at it. Leases are timers on the
 * main loop: an observation nobody renews stops by itself, so a coordinator
 * that dies leaves nothing measuring.
 */
#include "observe_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latency.h"
#include "pgvalve/log.h"
#include "runtime.h"
#include "worker.h"

struct observed {
	struct observation *o;
	struct event *lease;
	struct observed *next;
};

static struct event_base *registry_base;
static struct observed *registry;
static int n_observed;
static struct observe_set *published;
static uint64_t generations;

void observe_registry_init(struct event_base *base)
{
	registry_base = base;
}

static struct observed *observed_find(const char *id)
{
	for (struct observed *ob = registry; ob; ob = ob->next)
		if (strcmp(ob->o->id, id) == 0)
			return ob;
	return NULL;
}

/*
 * The distinct tables of every observation, plus 'extra' (NULL: none), in
 * 'out' (at most 'max'). Returns how many, or -1 past 'max'.
 */
static int union_tables(const struct observation *extra, struct observe_table *out, int max)
{
	int n = 0;

	for (struct observed *ob = registry;; ob = ob->next) {
		const struct observation *o = ob ? ob->o : extra;

		if (!o)
			break;
		for (int t = 0; t < o->n_tables; t++) {
			char name[HOLD_TABLE_NAME_MAX];
			bool seen = false;

			hold_table_name(&o->tables[t], name, sizeof(name));
			for (int i = 0; i < n && !seen; i++)
				seen = strcmp(out[i].name, name) == 0;
			if (seen)
				continue;
			if (n == max)
				return -1;
			out[n].t = o->tables[t];
			snprintf(out[n].name, sizeof(out[n].name), "%s", name);
			n++;
		}
		if (!ob)
			break;
	}
	return n;
}

/* Builds a set from the registry and hands it to every worker; returns once all have it. */
static void publish(void)
{
	struct observe_set *set = calloc(1, sizeof(*set) + ADMIN_OBSERVE_MAX_TABLES * sizeof(set->tables[0]));
	struct observe_set *old = published;
	struct latency_apply apply;

	if (!set)
		abort(); /* defensive: a few KiB; a set half-published would be worse than stopping */
	set->generation = ++generations;
	set->n = union_tables(NULL, set->tables, ADMIN_OBSERVE_MAX_TABLES);
	if (set->n <= 0) { /* nothing observed: workers go back to one branch per message */
		free(set);
		set = NULL;
	}
	apply.set = set;
	worker_fanout(latency_apply_job, &apply, 0);
	published = set;
	free(old);
}

static void observed_arm_lease(struct observed *ob, int64_t lease_ms)
{
	struct timeval tv = { (time_t)(lease_ms / 1000), (suseconds_t)(lease_ms % 1000) * 1000 };

	evtimer_add(ob->lease, &tv);
}

static void observed_stop(struct observed *ob)
{
	struct observed **link;

	for (link = &registry; *link != ob; link = &(*link)->next)
		;
	*link = ob->next;
	n_observed--;
	publish();
	event_free(ob->lease);
	free(ob->o);
	free(ob);
}

static void on_lease_expired(evutil_socket_t fd, short what, void *arg)
{
	struct observed *ob = arg;

	log_warn("observation %s: lease of %lld ms ran out without renewal: stopped", ob->o->id,
		 (long long)ob->o->lease_ms);
	observed_stop(ob);
}

int observe_registry_add(struct observation *o, char *err, size_t errlen)
{
	struct observe_table scratch[ADMIN_OBSERVE_MAX_TABLES];
	struct observed *ob;

	if (observed_find(o->id)) {
		snprintf(err, errlen, "an observation with id \"%s\" exists already", o->id);
		free(o);
		return 409;
	}
	if (n_observed >= ADMIN_OBSERVE_MAX) {
		snprintf(err, errlen, "%d observations are active already, the most there can be",
			 ADMIN_OBSERVE_MAX);
		free(o);
		return 409;
	}
	if (union_tables(o, scratch, ADMIN_OBSERVE_MAX_TABLES) < 0) {
		snprintf(err, errlen,
			 "observing these tables would make more than %d distinct observed tables, the most "
			 "there can be",
			 ADMIN_OBSERVE_MAX_TABLES);
		free(o);
		return 409;
	}
	ob = calloc(1, sizeof(*ob));
	if (!ob || !(ob->lease = evtimer_new(registry_base, on_lease_expired, ob))) {
		snprintf(err, errlen, "out of memory");
		free(ob);
		free(o);
		return 500;
	}
	ob->o = o;
	ob->next = registry;
	registry = ob;
	n_observed++;
	observed_arm_lease(ob, o->lease_ms);
	publish();
	return 0;
}

const struct observation *observe_registry_peek(const char *id)
{
	struct observed *ob = observed_find(id);

	return ob ? ob->o : NULL;
}

bool observe_registry_stop(const char *id)
{
	struct observed *ob = observed_find(id);

	if (!ob)
		return false;
	observed_stop(ob);
	return true;
}

bool observe_registry_renew(const char *id, int64_t lease_ms)
{
	struct observed *ob = observed_find(id);

	if (!ob)
		return false;
	ob->o->lease_ms = lease_ms; /* main thread only: workers never read the lease */
	observed_arm_lease(ob, lease_ms);
	return true;
}

void observe_registry_describe(cJSON *arr)
{
	for (struct observed *ob = registry; ob; ob = ob->next) {
		cJSON *o = cJSON_CreateObject();

		observe_describe(ob->o, o);
		cJSON_AddItemToArray(arr, o);
	}
}

const struct observe_set *observe_registry_set(void)
{
	return published;
}

void observe_registry_stop_all(void)
{
	while (registry)
		observed_stop(registry);
}
