/*
 * libpq, the way the coordinator uses it: connect with a clear error, run a
 * command or a parameterized query and get PostgreSQL's own message (with
 * SQLSTATE, detail and hint) when it fails. Blocking; one connection per
 * role (the journal and DDL connection, a validation connection, ...).
 */
#ifndef PGVALVE_COORDINATOR_DB_H
#define PGVALVE_COORDINATOR_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db_error {
	char sqlstate[6]; /* "" when not from the server */
	char msg[1024];   /* "ERROR:  ... DETAIL: ... HINT: ..." as one line */
};

/*
 * NULL with 'err' filled. application_name is "pgvalve <role>, pid <this
 * process> on <host>" (cut to 63 bytes), so pg_stat_activity tells whose
 * session it is. On PostgreSQL 14+ the session sets
 * client_connection_check_interval (DB_CONNECTION_CHECK), so a backend whose
 * coordinator died stops its query instead of running it to the end; TCP
 * keepalives are set too, for a coordinator whose machine vanished. See
 * docs/recovery.md.
 */
PGconn *db_connect(const char *url, const char *role, struct db_error *err);

/* How often a coordinator's backend checks, while running a query, that the coordinator is there. */
#define DB_CONNECTION_CHECK "1s"

/*
 * The backend pids of the connections this process opened, oldest first (up
 * to 'cap'); returns how many. Some may have been closed since.
 */
int db_backends(int *out, int cap);
#define DB_MAX_BACKENDS 16

/* A command (or several, no parameters). */
bool db_exec(PGconn *c, const char *sql, struct db_error *err) __attribute__((warn_unused_result));

/*
 * A query with text parameters ($1…), text results. NULL with 'err' filled;
 * else a result the caller PQclear()s.
 */
PGresult *db_query(PGconn *c, const char *sql, int n_params, const char *const *params, struct db_error *err)
	__attribute__((warn_unused_result));

/*
 * db_query with one parameter: $1 is 'id' (a migration's id) as decimal
 * text, the way every journal query by migration is bound.
 */
PGresult *db_query_id(PGconn *c, const char *sql, int64_t id, struct db_error *err)
	__attribute__((warn_unused_result));

/* A command with text parameters whose result is not wanted: whether it ran ('err' filled if not). */
bool db_command(PGconn *c, const char *sql, int n_params, const char *const *params, struct db_error *err)
	__attribute__((warn_unused_result));

/* ROLLBACK, for error paths: whatever it says, the transaction is gone after it (or with the connection). */
void db_rollback(PGconn *c);

/* The first column of the first row, or 'def' when there is no row or it is NULL. */
const char *db_value(const PGresult *r, int row, int col, const char *def);

/* Fills 'err' from a failed result (or the connection's message when 'r' is NULL). */
void db_error_from(PGconn *c, const PGresult *r, struct db_error *err);

#endif
