/*
 * A list of leased entries, as the main thread keeps holds and observations:
 * each entry is found by its id and carries a lease, a timer on the main loop
 * that hands the entry back to its owner when nobody renews it in time. What
 * an entry is, and what publishing or freeing it means, is the owner's
 * (hold_registry.c, observe_registry.c). Main thread only.
 */
#ifndef PGVALVE_PROXY_LEASE_H
#define PGVALVE_PROXY_LEASE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

struct leased;

/* Called on the main loop when 'l's lease runs out; the owner takes it off (lease_remove). */
typedef void (*lease_expired_fn)(struct leased *l);

struct leased {
	void *item;        /* the owner's: a hold, an observation */
	const char *id;    /* the item's id, borrowed */
	int64_t *lease_ms; /* the item's lease, kept equal to what the timer was last armed with */
	struct event *timer;
	struct lease_list *list; /* the one it sits on */
	struct leased *next;
};

struct lease_list {
	struct event_base *base;
	lease_expired_fn expired;
	struct leased *head; /* newest first */
	int n;
};

/* The loop the timers run on, and who is told when a lease runs out. */
void lease_list_init(struct lease_list *list, struct event_base *base, lease_expired_fn expired);

/* NULL: no entry with that id. */
struct leased *lease_find(const struct lease_list *list, const char *id);

/* The item of the entry with that id (borrowed), or NULL. */
void *lease_peek(const struct lease_list *list, const char *id);

/*
 * Puts 'item' at the head of the list, its lease armed with *lease_ms. Returns
 * the entry, or NULL (out of memory: nothing added, 'item' still the caller's).
 */
struct leased *lease_add(struct lease_list *list, void *item, const char *id, int64_t *lease_ms)
	__attribute__((warn_unused_result));

/* Restarts the lease of the entry with that id with 'lease_ms'. False: no such entry. */
bool lease_renew(struct lease_list *list, const char *id, int64_t lease_ms);

/* Unlinks 'l' and stops its timer; frees the entry, not its item, which it returns. */
void *lease_remove(struct leased *l);

#endif
