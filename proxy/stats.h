/*
 * Per-worker counters (docs/architecture.md, metrics): connections, bytes, statements, and
 * every ErrorResponse by SQLSTATE, table and constraint, in one-second
 * buckets over the last STATS_WINDOW_S seconds plus running totals. Only the
 * owning worker writes; readers run on that worker too (admin calls are
 * worker jobs), so nothing here locks.
 */
#ifndef PGVALVE_PROXY_STATS_H
#define PGVALVE_PROXY_STATS_H

#include <stdint.h>
#include <time.h>

#include "pgvalve/pgwire.h"

#define STATS_WINDOW_S 330        /* at least five minutes, plus slack */
#define STATS_KEYS_PER_BUCKET 256 /* distinct (kind, name) per second per worker */

enum stats_key_kind { STATS_SQLSTATE, STATS_TABLE, STATS_CONSTRAINT, STATS_KIND_COUNT };

struct stats_key {
	uint8_t kind;
	char name[128];
	uint64_t count;
};

struct stats_keys {
	struct stats_key *v;
	int n, cap;
};

struct stats_bucket {
	time_t second;
	uint64_t statements;
	uint64_t errors;
	struct stats_keys keys;
};

/* auth.mode terminate: which leg of a login, and the mechanism it used (pgvalve_auth_logins_total). */
enum stats_auth_leg { STATS_AUTH_CLIENT, STATS_AUTH_SERVER, STATS_AUTH_LEGS };
enum stats_auth_mech { STATS_AUTH_SCRAM_PLUS, STATS_AUTH_SCRAM, STATS_AUTH_MD5, STATS_AUTH_MECHS };

struct stats {
	uint64_t connections_total;
	uint64_t clients; /* current client connections */
	uint64_t bytes_client_to_server;
	uint64_t bytes_server_to_client;
	uint64_t statements_total;
	uint64_t errors_total;
	uint64_t protocol_errors_total; /* connections closed for malformed input */
	uint64_t auth_lookups_total;    /* auth.query sent to the server (auth_lookup.c) */
	uint64_t auth_cache_hits_total; /* verifiers answered from the worker's cache instead */
	/* logins that passed a leg (auth.c): the client's proof checked, the server's AuthenticationOk */
	uint64_t auth_logins_total[STATS_AUTH_LEGS][STATS_AUTH_MECHS];
	struct stats_keys error_totals; /* totals by SQLSTATE and by constraint (those kinds only) */
	struct stats_bucket ring[STATS_WINDOW_S];
};

void stats_init(struct stats *st);
void stats_destroy(struct stats *st);

void stats_statement(struct stats *st, time_t now);
void stats_error(struct stats *st, time_t now, const struct pgwire_error *e);

/* Sum of a window, merged across workers by the caller. */
struct stats_window {
	uint64_t statements;
	uint64_t errors;
	struct stats_keys keys;
};

/* Adds this worker's last 'window_s' seconds ending at 'now' into 'out'. */
void stats_window_add(const struct stats *st, time_t now, int window_s, struct stats_window *out);
void stats_keys_add(struct stats_keys *k, int kind, const char *name, uint64_t count, int max);
void stats_keys_free(struct stats_keys *k);

#endif
