/*
 * The observation registry (see observe_registry.h). Every change builds a
 * new observe set, hands it to every worker and waits for all of them; the
 * old set is freed once no worker points at it. Leases are timers on the
 * main loop (lease.c): an observation nobody renews stops by itself, so a coordinator
 * that dies leaves nothing measuring.
 */
#include "observe_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latency.h"
#include "lease.h"
#include "pgvalve/log.h"
#include "runtime.h"
#include "worker.h"

static struct lease_list observed; /* items: struct observation */
static struct observe_set *published;
static uint64_t generations;

static void on_lease_expired(struct leased *l);

void observe_registry_init(struct event_base *base)
{
	lease_list_init(&observed, base, on_lease_expired);
}

/*
 * The distinct tables of every observation, plus 'extra' (NULL: none), in
 * 'out' (at most 'max'). Returns how many, or -1 past 'max'.
 */
static int union_tables(const struct observation *extra, struct observe_table *out, int max)
{
	int n = 0;

	for (struct leased *l = observed.head;; l = l->next) {
		const struct observation *o = l ? l->item : extra;

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
		if (!l)
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

/* Takes the observation off, publishes the set without it, then frees it. */
static void observed_stop(struct leased *l)
{
	struct observation *o = lease_remove(l);

	publish();
	free(o);
}

static void on_lease_expired(struct leased *l)
{
	const struct observation *o = l->item;

	log_warn("observation %s: lease of %lld ms ran out without renewal: stopped", o->id,
		 (long long)o->lease_ms);
	observed_stop(l);
}

int observe_registry_add(struct observation *o, char *err, size_t errlen)
{
	struct observe_table scratch[ADMIN_OBSERVE_MAX_TABLES];

	if (lease_find(&observed, o->id)) {
		snprintf(err, errlen, "an observation with id \"%s\" exists already", o->id);
		free(o);
		return 409;
	}
	if (observed.n >= ADMIN_OBSERVE_MAX) {
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
	if (!lease_add(&observed, o, o->id, &o->lease_ms)) {
		snprintf(err, errlen, "out of memory");
		free(o);
		return 500;
	}
	publish();
	return 0;
}

const struct observation *observe_registry_peek(const char *id)
{
	return lease_peek(&observed, id);
}

bool observe_registry_stop(const char *id)
{
	struct leased *l = lease_find(&observed, id);

	if (!l)
		return false;
	observed_stop(l);
	return true;
}

bool observe_registry_renew(const char *id, int64_t lease_ms)
{
	return lease_renew(&observed, id, lease_ms);
}

void observe_registry_describe(cJSON *arr)
{
	for (struct leased *l = observed.head; l; l = l->next) {
		cJSON *o = cJSON_CreateObject();

		observe_describe(l->item, o);
		cJSON_AddItemToArray(arr, o);
	}
}

const struct observe_set *observe_registry_set(void)
{
	return published;
}

void observe_registry_stop_all(void)
{
	while (observed.head)
		observed_stop(observed.head);
}
