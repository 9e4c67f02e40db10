/*
 * Table latency observations (docs/architecture.md, table latency): which
 * tables the proxy measures, for how long. An observation is what POST
 * /observe asked for; the observe set is the union of the active ones'
 * tables, immutable, which every worker records latencies against
 * (latency.c). Leases and publishing are observe_registry.c's.
 */
#ifndef PGVALVE_PROXY_OBSERVE_H
#define PGVALVE_PROXY_OBSERVE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "hold.h"
#include "pgvalve/admin_api.h"

struct observation {
	char id[ADMIN_HOLD_ID_MAX]; /* admin_hold_id_valid(); made up ("o-...") when not given */
	int64_t lease_ms;
	int n_tables;
	struct hold_table tables[]; /* "schema.table" or "table"; never "*" */
};

/*
 * What workers record against: the distinct tables of every active
 * observation (at most ADMIN_OBSERVE_MAX_TABLES, so a unit's tables fit in a
 * 64-bit mask), each with its name as the observations spell it.
 * 'generation' differs between any two sets ever published.
 */
struct observe_set {
	uint64_t generation;
	int n;
	struct observe_table {
		struct hold_table t;
		char name[HOLD_TABLE_NAME_MAX];
	} tables[];
};

_Static_assert(ADMIN_OBSERVE_MAX_TABLES <= 64, "a unit's observed tables are a 64-bit mask");

/*
 * Parses a POST /observe body (admin_api.h's keys). NULL with 'err' filled
 * in jsonval.h's wording, else a malloc'd observation.
 */
struct observation *observe_parse(const cJSON *body, char *err, size_t errlen);

/* Adds the fields of 'o' to 'obj', under the body's keys (it parses back to 'o'). */
void observe_describe(const struct observation *o, cJSON *obj);

/* The index of table 'name' in 'set' (as observe_table.name spells it), or -1. */
int observe_set_find(const struct observe_set *set, const char *name);

#endif
