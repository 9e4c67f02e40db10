/*
 * libpq helpers (see db.h).
 */
#include "db.h"

#include <stdio.h>
#include <string.h>

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

PGconn *db_connect(const char *url, const char *role, struct db_error *err)
{
	char app[64];
	/* NOTICEs ("already exists, skipping") are not for people running the coordinator. */
	const char *keys[] = { "dbname", "application_name", "options", NULL };
	const char *values[] = { url, app, "-c client_min_messages=warning", NULL };
	PGconn *c;

	snprintf(app, sizeof(app), "pgvalve %s", role);
	/* expand_dbname: 'url' may be a URI or a conninfo string; PG* variables fill the rest. */
	c = PQconnectdbParams(keys, values, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		db_error_from(c, NULL, err);
		PQfinish(c);
		return NULL;
	}
	return c;
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
