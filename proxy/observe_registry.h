/*
 * The proxy's observations, as the main thread keeps them: the active ones
 * with their leases, published to the workers as an immutable observe set
 * (docs/architecture.md, table latency). Main thread only.
 */
#ifndef PGVALVE_PROXY_OBSERVE_REGISTRY_H
#define PGVALVE_PROXY_OBSERVE_REGISTRY_H

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "observe.h"

/* The loop lease timers run on. */
void observe_registry_init(struct event_base *base);

/*
 * Adds 'o' (taken, also on failure) and returns once every worker records
 * against it. Returns 0, or an HTTP status (409: the id exists, or past
 * ADMIN_OBSERVE_MAX observations or ADMIN_OBSERVE_MAX_TABLES tables; 500)
 * with 'err' filled.
 */
int observe_registry_add(struct observation *o, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Borrowed; valid until the observation stops. NULL: no such observation. */
const struct observation *observe_registry_peek(const char *id);

/* Stops it (its tables' histograms go, unless another observation names them). False: no such one. */
bool observe_registry_stop(const char *id);

/* Restarts its lease with 'lease_ms'. False: no such observation. */
bool observe_registry_renew(const char *id, int64_t lease_ms);

/* Adds a description of every active observation to 'arr'. */
void observe_registry_describe(cJSON *arr);

/* What every worker records against now (NULL: nothing observed). */
const struct observe_set *observe_registry_set(void);

/* Stops every observation (shutdown). */
void observe_registry_stop_all(void);

#endif
