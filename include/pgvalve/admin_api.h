/*
 * The proxy's admin HTTP API as both sides spell it: the proxy that serves
 * it and the coordinator that calls it. Paths, the keys of request bodies and
 * answers, the names a body may give, the hold id format and the limits the
 * proxy enforces. What each call does is in docs/architecture.md (the admin
 * API); this header only makes sure the two sides use the same words.
 *
 * The name lists are NULL-terminated and indexed by the enums below, whose
 * order is the proxy's (enum hold_mode, hold_policy, hold_on_timeout).
 */
#ifndef PGVALVE_ADMIN_API_H
#define PGVALVE_ADMIN_API_H

#include <stdbool.h>

/* ------------------------------------------------------------------ paths */

#define ADMIN_PATH_HEALTHZ "/healthz"
#define ADMIN_PATH_STATUS "/status"
#define ADMIN_PATH_METRICS "/metrics"
#define ADMIN_PATH_ERRORS "/errors"         /* GET ?window_s=N */
#define ADMIN_PATH_HOLDS "/holds"           /* GET: list; POST: place one */
#define ADMIN_PATH_HOLDS_PREFIX "/holds/"   /* + id: GET, DELETE */
#define ADMIN_PATH_RENEW_SUFFIX "/renew"    /* /holds/{id}/renew: POST */
#define ADMIN_PATH_SWITCHOVER "/switchover" /* POST */
/* POST {"tables": [...]}: re-prepare the statements reading them (docs/architecture.md §4.9) */
#define ADMIN_PATH_STATEMENTS_REFRESH "/statements/refresh"
#define ADMIN_REFRESH_SESSIONS "sessions"     /* answer: sessions with a statement marked */
#define ADMIN_REFRESH_STATEMENTS "statements" /* answer: statements marked */

/* -------------------------------------------------------- POST /holds body */

#define ADMIN_HOLD_TABLES "tables" /* ["schema.table" | "table" | "*"], 1 to ADMIN_HOLD_MAX_TABLES */
#define ADMIN_HOLD_MODE "mode"
#define ADMIN_HOLD_POLICY "policy"
#define ADMIN_HOLD_LEASE_MS "lease_ms"
#define ADMIN_HOLD_MAX_WAIT_MS "max_wait_ms"
#define ADMIN_HOLD_ON_TIMEOUT "on_timeout"
#define ADMIN_HOLD_ID "id"
#define ADMIN_HOLD_UPSTREAM "upstream" /* policy reroute only */
/* How long the 201 may wait for units in flight when the hold came (capped by max_wait_ms). */
#define ADMIN_HOLD_IN_FLIGHT_WAIT_MS "in_flight_wait_ms"

extern const char *const admin_hold_keys[];

enum admin_hold_mode { ADMIN_MODE_WRITES, ADMIN_MODE_ALL };
extern const char *const admin_hold_modes[]; /* "writes", "all" */

enum admin_hold_policy { ADMIN_POLICY_QUEUE, ADMIN_POLICY_REJECT, ADMIN_POLICY_REROUTE };
extern const char *const admin_hold_policies[]; /* "queue", "reject", "reroute" */

enum admin_hold_on_timeout { ADMIN_ON_TIMEOUT_RELEASE, ADMIN_ON_TIMEOUT_REJECT };
extern const char *const admin_hold_on_timeouts[]; /* "release", "reject" */

#define ADMIN_HOLD_MAX_TABLES 256
#define ADMIN_HOLD_MAX_MS 3600000 /* the longest lease_ms or max_wait_ms: an hour */
#define ADMIN_HOLD_DEFAULT_LEASE_MS 5000
#define ADMIN_HOLD_DEFAULT_MAX_WAIT_MS 2000
#define ADMIN_HOLD_DEFAULT_IN_FLIGHT_WAIT_MS 0 /* answer at once; a key change's holds ask for a wait */

/*
 * A hold id: 1 to ADMIN_HOLD_ID_MAX - 1 of ADMIN_HOLD_ID_CHARS, and not "."
 * or "..". It is a path segment (/holds/{id}) that needs no percent-encoding
 * and that no client rewrites. Ids the proxy makes up are "h-" and 16 hex
 * digits; the coordinator's are "pgvalve-<migration id>-<what>-<n>-<mode>".
 */
#define ADMIN_HOLD_ID_MAX 64 /* with the terminating NUL */
#define ADMIN_HOLD_ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:"
bool admin_hold_id_valid(const char *id);

/* GET /holds answer: {"holds": [hold, ...]}, each hold described with the body keys. */
#define ADMIN_HOLDS_LIST "holds"
/* DELETE /holds/{id} answer: {"released": id}. */
#define ADMIN_HOLD_RELEASED "released"

/*
 * POST /holds answer (201): {id, parked, in_transaction, in_transaction_pids,
 * in_flight, lease_ms}. in_flight: sessions whose unit of work (outside a
 * transaction) was in flight when the hold came and still was when the 201
 * stopped waiting for them (in_flight_wait_ms).
 */
#define ADMIN_HOLD_PARKED "parked"
#define ADMIN_HOLD_IN_TRANSACTION "in_transaction"
#define ADMIN_HOLD_IN_TRANSACTION_PIDS "in_transaction_pids"
#define ADMIN_HOLD_IN_FLIGHT "in_flight"

/* ------------------------------------------------- POST /holds/{id}/renew */

extern const char *const admin_renew_keys[]; /* "lease_ms" */

/* --------------------------------------------------- POST /switchover body */

#define ADMIN_SWITCHOVER_UPSTREAM "upstream"
#define ADMIN_SWITCHOVER_DRAIN_MS "drain_ms"
#define ADMIN_SWITCHOVER_ON_DRAIN_TIMEOUT "on_drain_timeout"

extern const char *const admin_switchover_keys[];
extern const char *const admin_switchover_on_drain_timeouts[]; /* "close_at_idle", "terminate" */

#define ADMIN_SWITCHOVER_DEFAULT_DRAIN_MS 5000

/* -------------------------------------------------------------- GET /errors */

#define ADMIN_ERRORS_WINDOW_S "window_s" /* query parameter and answer key */
#define ADMIN_ERRORS_STATEMENTS "statements"
#define ADMIN_ERRORS_ERRORS "errors"
#define ADMIN_ERRORS_MAX_WINDOW_S 300

/* The answer's groups of counts, in this order. */
enum admin_errors_group { ADMIN_BY_SQLSTATE, ADMIN_BY_TABLE, ADMIN_BY_CONSTRAINT, ADMIN_ERRORS_GROUPS };
extern const char *const admin_errors_groups[]; /* "by_sqlstate", "by_table", "by_constraint" */

/* ------------------------------------------ POST /observe, GET /latency */

#define ADMIN_PATH_OBSERVE "/observe"         /* GET: list; POST: start one */
#define ADMIN_PATH_OBSERVE_PREFIX "/observe/" /* + id: GET, DELETE; + id + "/renew": POST */
#define ADMIN_PATH_LATENCY "/latency"         /* GET ?window_s=N[&table=T]...[&buckets=1] */

/* POST /observe body {tables, lease_ms, id?}; answer 201 {id, lease_ms}; renew as a hold's. */
#define ADMIN_OBSERVE_TABLES "tables" /* ["schema.table" | "table"], 1 to ADMIN_OBSERVE_MAX_TABLES */
#define ADMIN_OBSERVE_LEASE_MS "lease_ms"
#define ADMIN_OBSERVE_ID "id"
extern const char *const admin_observe_keys[];

#define ADMIN_OBSERVE_MAX 16        /* observations at once */
#define ADMIN_OBSERVE_MAX_TABLES 64 /* distinct tables over all observations at once */
#define ADMIN_OBSERVE_DEFAULT_LEASE_MS 60000
/* GET /observe answer: {"observations": [{id, tables, lease_ms}, ...]}; DELETE: {"stopped": id}. */
#define ADMIN_OBSERVE_LIST "observations"
#define ADMIN_OBSERVE_STOPPED "stopped"

/*
 * GET /latency answer: {"window_s": N, "tables": {"public.orders": {"read":
 * {count, p50_ms, p95_ms, p99_ms, max_ms}, "write": {...}}}}; a table as the
 * observation named it, a kind only when it has a count. With buckets=1 each
 * kind also has "buckets": [[upper_us, count], ...] (non-empty buckets of
 * pgvalve/latency_hist.h, ascending), which merge across proxies.
 */
#define ADMIN_LATENCY_WINDOW_S "window_s"
#define ADMIN_LATENCY_TABLE "table"     /* query parameter, repeatable */
#define ADMIN_LATENCY_BUCKETS "buckets" /* query parameter "1", and the answer key */
#define ADMIN_LATENCY_TABLES "tables"
#define ADMIN_LATENCY_COUNT "count"
#define ADMIN_LATENCY_MAX_WINDOW_S 300
enum admin_latency_kind { ADMIN_LATENCY_READ, ADMIN_LATENCY_WRITE, ADMIN_LATENCY_KINDS };
extern const char *const admin_latency_kinds[]; /* "read", "write" */
enum admin_latency_stat { ADMIN_LATENCY_P50, ADMIN_LATENCY_P95, ADMIN_LATENCY_P99, ADMIN_LATENCY_STATS };
extern const char *const admin_latency_stats[]; /* "p50_ms", "p95_ms", "p99_ms" */
#define ADMIN_LATENCY_MAX_MS "max_ms"

/* --------------------------------------------------------------- answers */

#define ADMIN_ERROR "error" /* every 4xx/5xx answer: {"error": "..."} */

#endif
