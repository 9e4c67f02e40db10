/*
 * The admin API's name lists and the hold id rule (see admin_api.h).
 */
#include "pgvalve/admin_api.h"

#include <string.h>

const char *const admin_hold_keys[] = { ADMIN_HOLD_TABLES,
					ADMIN_HOLD_MODE,
					ADMIN_HOLD_POLICY,
					ADMIN_HOLD_LEASE_MS,
					ADMIN_HOLD_MAX_WAIT_MS,
					ADMIN_HOLD_ON_TIMEOUT,
					ADMIN_HOLD_ID,
					ADMIN_HOLD_UPSTREAM,
					ADMIN_HOLD_IN_FLIGHT_WAIT_MS,
					NULL };
const char *const admin_hold_modes[] = { "writes", "all", NULL };
const char *const admin_hold_policies[] = { "queue", "reject", "reroute", NULL };
const char *const admin_hold_on_timeouts[] = { "release", "reject", NULL };

const char *const admin_renew_keys[] = { ADMIN_HOLD_LEASE_MS, NULL };

const char *const admin_switchover_keys[] = { ADMIN_SWITCHOVER_UPSTREAM, ADMIN_SWITCHOVER_DRAIN_MS,
					      ADMIN_SWITCHOVER_ON_DRAIN_TIMEOUT, NULL };
const char *const admin_switchover_on_drain_timeouts[] = { "close_at_idle", "terminate", NULL };

const char *const admin_errors_groups[] = { "by_sqlstate", "by_table", "by_constraint", NULL };

const char *const admin_observe_keys[] = { ADMIN_OBSERVE_TABLES, ADMIN_OBSERVE_LEASE_MS, ADMIN_OBSERVE_ID,
					   NULL };
const char *const admin_latency_kinds[] = { "read", "write", NULL };
const char *const admin_latency_stats[] = { "p50_ms", "p95_ms", "p99_ms", NULL };

bool admin_hold_id_valid(const char *id)
{
	size_t len = strlen(id);

	if (len == 0 || len >= ADMIN_HOLD_ID_MAX)
		return false;
	/* "." and ".." are dot-segments: clients remove them from a path (RFC 3986, 5.2.4). */
	if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return false;
	return strspn(id, ADMIN_HOLD_ID_CHARS) == len;
}
