/*
 * libpq helpers (see db.h).
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void db_error_from(PGconn *c, const PGresult *r, struct db_error *err)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_HINT) : NULL;
	size_t n;

	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state ? state : "");
	if (!msg) {
		snprintf(err->msg, sizeof(err->msg), "%s", c ? PQerrorMessage(c) : "out of memory");
		err->msg[strcspn(err->msg, "\n")] = '\0';
		return;
	}
	n = (size_t)snprintf(err->msg, sizeof(err->msg), "%s", msg);
	if (detail && n < sizeof(err->msg))
		n += (size_t)snprintf(err->msg + n, sizeof(err->msg) - n, " (detail: %s)", detail);
	if (hint && n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, " (hint: %s)", hint);
}

/* Backend pids of this process's connections (db_backends). */
static int backends[DB_MAX_BACKENDS];
static int n_backends;

/*
 * Session settings that let the server end a backend whose coordinator is
 * gone (https://www.postgresql.org/docs/current/runtime-config-connection.html):
 * client_connection_check_interval polls the socket while a query runs (14+);
 * the keepalives notice a peer that vanished without closing the connection
 * (ignored on Unix sockets). Each is best effort: a server that refuses one
 * still serves the coordinator. PGVALVE_TEST_NO_CONNECTION_CHECK=1 leaves the
 * check off, for tests of a backend that outlives its coordinator.
 */
static void set_liveness_checks(PGconn *c)
{
	static const char *const keepalives[] = {
		"SET tcp_keepalives_idle = 10",
		"SET tcp_keepalives_interval = 5",
		"SET tcp_keepalives_count = 3",
	};
	const char *off = getenv("PGVALVE_TEST_NO_CONNECTION_CHECK");

	for (size_t i = 0; i < sizeof(keepalives) / sizeof(keepalives[0]); i++)
		PQclear(PQexec(c, keepalives[i]));
	if (PQserverVersion(c) >= 140000 && !(off && strcmp(off, "1") == 0))
		PQclear(PQexec(c, "SET client_connection_check_interval = '" DB_CONNECTION_CHECK "'"));
}

PGconn *db_connect(const char *url, const char *role, struct db_error *err)
{
	char app[64], full[512], host[256];
	/* NOTICEs ("already exists, skipping") are not for people running the coordinator. */
	const char *keys[] = { "dbname", "application_name", "options", NULL };
	const char *values[] = { url, app, "-c client_min_messages=warning", NULL };
	PGconn *c;

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	/* Cut to 63 bytes here: the server would cut it anyway (NAMEDATALEN), maybe mid-character. */
	snprintf(full, sizeof(full), "pgvalve %s, pid %d on %s", role, (int)getpid(), host);
	snprintf(app, sizeof(app), "%.63s", full);
	/* expand_dbname: 'url' may be a URI or a conninfo string; PG* variables fill the rest. */
	c = PQconnectdbParams(keys, values, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		db_error_from(c, NULL, err);
		PQfinish(c);
		return NULL;
	}
	set_liveness_checks(c);
	if (n_backends < DB_MAX_BACKENDS)
		backends[n_backends++] = PQbackendPID(c);
	return c;
}

int db_backends(int *out, int cap)
{
	int n = n_backends < cap ? n_backends : cap;

	memcpy(out, backends, (size_t)n * sizeof(*out));
	return n;
}

bool db_exec(PGconn *c, const char *sql, struct db_error *err)
{
	PGresult *r = PQexec(c, sql);
	bool ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);

	if (!ok)
		db_error_from(c, r, err);
	PQclear(r);
	return ok;
}

PGresult *db_query(PGconn *c, const char *sql, int n_params, const char *const *params, struct db_error *err)
{
	PGresult *r = PQexecParams(c, sql, n_params, NULL, params, NULL, NULL, 0);

	if (r && (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK))
		return r;
	db_error_from(c, r, err);
	PQclear(r);
	return NULL;
}

PGresult *db_query_id(PGconn *c, const char *sql, int64_t id, struct db_error *err)
{
	char idtext[32];
	const char *params[1] = { idtext };

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	return db_query(c, sql, 1, params, err);
}

bool db_command(PGconn *c, const char *sql, int n_params, const char *const *params, struct db_error *err)
{
	PGresult *r = db_query(c, sql, n_params, params, err);

	PQclear(r);
	return r != NULL;
}

void db_rollback(PGconn *c)
{
	PQclear(PQexec(c, "ROLLBACK"));
}

const char *db_value(const PGresult *r, int row, int col, const char *def)
{
	if (!r || row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
		return def;
	return PQgetvalue(r, row, col);
}
