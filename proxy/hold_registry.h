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
