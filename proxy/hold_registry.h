/*
 * The proxy's holds, as the main thread keeps them: the registry of active
 * holds with their leases, and publishing it to the workers as an immutable
 * hold set. Both the admin API and switchover add and release holds here.
 * Main thread only.
 */
#ifndef PGVALVE_PROXY_HOLD_REGISTRY_H
#define PGVALVE_PROXY_HOLD_REGISTRY_H

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "hold.h"
#include "park.h"

/* The loop lease timers run on. */
void hold_registry_init(struct event_base *base);

/*
 * Adds 'hold' (taken, also on failure) and returns once every worker applies
 * it, with the sessions parked on it and those inside a transaction counted
 * into 'sum' (sum->pids: an array the caller made, or NULL). Returns 0, or an
 * HTTP status (400, 409, 500) with 'err' filled.
 */
int hold_registry_add(struct hold *hold, struct hold_apply *sum, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * The 201 of a new hold waits for the units of work that were in flight
 * outside a transaction when it came ('sum->in_flight' of hold_registry_add):
 * the server may not have begun them, and a DDL taking its lock first would
 * run before them (docs/architecture.md, holds). The hold acts at once; only
 * its acknowledgement waits.
 */
typedef void (*hold_settled_fn)(void *ctx, int in_flight);
struct hold_wait;

/*
 * Calls 'done' from the main loop (never from inside this call) once no
 * session still runs a unit that was in flight when hold 'id' was placed, or
 * when its in_flight_wait_ms (at most its max_wait_ms) passed, the hold went
 * away or the registry shuts down; 'in_flight': those still running then.
 * The handle is for hold_registry_forget_wait until 'done' is called.
 */
struct hold_wait *hold_registry_await(const char *id, hold_settled_fn done, void *ctx);

/* The waiter went away: 'done' is never called. */
void hold_registry_forget_wait(struct hold_wait *hw);

/* Borrowed; valid until the hold is released. NULL: no such hold. */
const struct hold *hold_registry_peek(const char *id);

/* Releases the hold: parked work resumes in arrival order. False: no such hold. */
bool hold_registry_release(const char *id);

/* Restarts the hold's lease with 'lease_ms'. False: no such hold. */
bool hold_registry_renew(const char *id, int64_t lease_ms);

/* Adds a description of every active hold to 'arr'. */
void hold_registry_describe(cJSON *arr);

int hold_registry_count(void);

/* Releases every hold and detaches the workers from the hold set (shutdown). */
void hold_registry_release_all(void);

#endif
