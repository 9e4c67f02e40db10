/*
 * Holds (docs/architecture.md, holds): which tables are held, in which mode, with which
 * policy. A hold set is an immutable snapshot: the main thread builds a new
 * one on every change and hands it to each worker as a job, so workers read
 * it without locks. Expiry (leases) is the main thread's business and is
 * not in here.
 */
#ifndef PGVALVE_PROXY_HOLD_H
#define PGVALVE_PROXY_HOLD_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgvalve/admin_api.h"
#include "pgvalve/classify.h"

/* Valued as admin_api.h's enums, so each indexes that header's name list. */
enum hold_mode {
	HOLD_WRITES = ADMIN_MODE_WRITES, /* work taking a lock that conflicts with SHARE ROW EXCLUSIVE */
	HOLD_ALL = ADMIN_MODE_ALL,       /* any reference (the DDL takes ACCESS EXCLUSIVE) */
};

enum hold_policy {
	HOLD_QUEUE = ADMIN_POLICY_QUEUE,
	HOLD_REJECT = ADMIN_POLICY_REJECT,
	HOLD_REROUTE = ADMIN_POLICY_REROUTE,
};

enum hold_on_timeout {
	HOLD_TIMEOUT_RELEASE = ADMIN_ON_TIMEOUT_RELEASE,
	HOLD_TIMEOUT_REJECT = ADMIN_ON_TIMEOUT_REJECT,
};

struct hold_table {
	char schema[CLASSIFY_NAME_MAX]; /* "": any schema */
	char name[CLASSIFY_NAME_MAX];   /* "*": every table */
};

struct hold {
	char id[ADMIN_HOLD_ID_MAX]; /* admin_hold_id_valid() */
	enum hold_mode mode;
	enum hold_policy policy;
	enum hold_on_timeout on_timeout;
	int64_t lease_ms;
	int64_t max_wait_ms;
	int64_t in_flight_wait_ms; /* the 201 waits at most this for units in flight (hold_registry.h) */
	char upstream[64];         /* policy reroute: where new sessions go while it lasts */
	int upstream_index;        /* ... as an index in the config's upstreams (set by the registry) */
	uint64_t seq;              /* placed as the registry's seq-th hold: later holds have higher ones */
	int n_tables;
	struct hold_table tables[];
};

struct hold_set {
	uint64_t newest; /* the highest seq of its holds (0: none) */
	int n;
	const struct hold *holds[]; /* borrowed from the main thread's registry */
};

/*
 * Parses a POST /holds body (admin_api.h's keys). Returns NULL with 'err'
 * filled in jsonval.h's wording ('"tables": ...'), else a malloc'd hold (id
 * generated when absent). Whether a reroute's upstream exists is the
 * registry's check.
 */
struct hold *hold_parse(const cJSON *body, char *err, size_t errlen);

/* Which holds of a set a unit of work answers to. */
struct hold_scope {
	uint64_t placed_by; /* only holds whose seq is at most this */
	bool queue_only;    /* only holds of policy queue */
};
#define HOLD_SCOPE_ALL ((struct hold_scope){ .placed_by = UINT64_MAX, .queue_only = false })

/*
 * The first hold in 'scope' that 'r' (a unit of work's classification) from
 * a session on upstream index 'upstream' collides with, or NULL. '*table'
 * names the held table it touches (for the 55P03 message). A reroute hold
 * does not hold sessions on the upstream it reroutes to.
 */
const struct hold *hold_conflict(const struct hold_set *set, const struct hold_scope *scope,
				 const struct classify_result *r, int upstream, const char **table);

/*
 * Reads "schema.table" or "table" (or "*") into 't'. False: empty, more than
 * one dot, or a part longer than CLASSIFY_NAME_MAX - 1. Observations
 * (observe.c) name their tables the same way.
 */
bool hold_table_parse(const char *s, struct hold_table *t);

/* 't' as a body names it: "schema.table" or "table"; returns 'buf'. */
#define HOLD_TABLE_NAME_MAX (2 * CLASSIFY_NAME_MAX)
const char *hold_table_name(const struct hold_table *t, char *buf, size_t len);

/* A fresh id for a hold or an observation: 'prefix', '-', 16 random hex digits. */
void hold_make_id(char *id, size_t len, char prefix);

/* Adds the fields of 'h' to 'obj', under the POST /holds body's keys. */
void hold_describe(const struct hold *h, cJSON *obj);

/* The names a body gives them (admin_api.h's lists). */
const char *hold_mode_name(enum hold_mode m);
const char *hold_policy_name(enum hold_policy p);
const char *hold_on_timeout_name(enum hold_on_timeout t);

#endif
