/*
 * The journal's record of coordinator sessions (see journal.h, "coordinator
 * sessions"): pgvalve.coordinator_sessions, which lets a later coordinator
 * tell a backend orphaned by a dead one (orphan.c decides; this file only
 * stores and reads).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array_literal.h"
#include "journal.h"
#include "xalloc.h"

/* ---- coordinator sessions ---------------------------------------------------- */

/*
 * Not in ensure_sql: orphan_register creates it with the coordinator lock
 * held, so coordinators starting together on a journal an older pgvalve
 * created never race to create it. When it exists, CREATE TABLE IF NOT
 * EXISTS only looks the name up and takes no lock on the table.
 */
static const char sessions_ddl[] = "CREATE TABLE IF NOT EXISTS pgvalve.coordinator_sessions ("
				   "  backend_pid int NOT NULL,"
				   "  backend_start timestamptz NOT NULL,"
				   "  holds_lock boolean NOT NULL,"
				   "  application_name text NOT NULL,"
				   "  coordinator_pid int NOT NULL,"
				   "  coordinator_started bigint NOT NULL,"
				   "  host text NOT NULL,"
				   "  machine text NOT NULL,"
				   "  registered_at timestamptz NOT NULL DEFAULT now(),"
				   "  PRIMARY KEY (backend_pid, backend_start))";

/* A recorded session still connected: 's' the record, 'a' its pg_stat_activity row; never the caller's own. */
#define CONNECTED_SESSIONS_SQL                                            \
	"FROM pgvalve.coordinator_sessions s JOIN pg_stat_activity a "    \
	"ON a.pid = s.backend_pid AND a.backend_start = s.backend_start " \
	"WHERE a.pid <> pg_backend_pid() "

bool journal_sessions_ensure(PGconn *c, struct db_error *err)
{
	return db_exec(c, sessions_ddl, err);
}

static bool sessions_table_exists(PGconn *c, bool *exists, struct db_error *err)
{
	PGresult *r = db_query(c, "SELECT to_regclass('pgvalve.coordinator_sessions') IS NOT NULL", 0, NULL,
			       err);

	if (!r)
		return false;
	*exists = strcmp(db_value(r, 0, 0, "f"), "t") == 0;
	PQclear(r);
	return true;
}

bool journal_read_session(PGconn *c, int pid, struct journal_session *out, bool *found, struct db_error *err)
{
	static const char activity[] =
		"SELECT a.backend_start::text, coalesce(a.state, ''), "
		"coalesce(left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200), ''), "
		"coalesce(to_char(a.query_start, 'YYYY-MM-DD HH24:MI:SS TZ'), ''), "
		"coalesce(extract(epoch FROM clock_timestamp() - a.query_start), 0)::float8";
	char pidtext[16], *sql;
	const char *params[1] = { pidtext };
	bool journal;
	PGresult *r;

	memset(out, 0, sizeof(*out));
	out->backend.pid = pid;
	*found = false;
	if (!sessions_table_exists(c, &journal, err))
		return false;
	snprintf(pidtext, sizeof(pidtext), "%d", pid);
	sql = journal
		? xasprintf("%s, s.application_name, s.coordinator_pid, s.coordinator_started, s.host, "
			    "s.machine FROM pg_stat_activity a LEFT JOIN pgvalve.coordinator_sessions s "
			    "ON s.backend_pid = a.pid AND s.backend_start = a.backend_start "
			    "WHERE a.pid = $1::int",
			    activity)
		: xasprintf("%s FROM pg_stat_activity a WHERE a.pid = $1::int", activity);
	r = db_query(c, sql, 1, params, err);
	free(sql);
	if (!r)
		return false;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return true;
	}
	*found = true;
	snprintf(out->backend.backend_start, sizeof(out->backend.backend_start), "%s", PQgetvalue(r, 0, 0));
	snprintf(out->state, sizeof(out->state), "%s", PQgetvalue(r, 0, 1));
	snprintf(out->query, sizeof(out->query), "%s", PQgetvalue(r, 0, 2));
	snprintf(out->since, sizeof(out->since), "%s", PQgetvalue(r, 0, 3));
	out->running_s = strtod(PQgetvalue(r, 0, 4), NULL);
	out->recorded = journal && !PQgetisnull(r, 0, 6);
	if (out->recorded) {
		struct journal_coordinator *co = &out->coordinator;

		snprintf(out->application_name, sizeof(out->application_name), "%s", PQgetvalue(r, 0, 5));
		co->pid = atoi(PQgetvalue(r, 0, 6));
		co->started = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
		snprintf(co->host, sizeof(co->host), "%s", PQgetvalue(r, 0, 8));
		snprintf(co->machine, sizeof(co->machine), "%s", PQgetvalue(r, 0, 9));
	}
	PQclear(r);
	return true;
}

bool journal_connected_coordinators(PGconn *c, const char *machine, struct journal_coordinator **out, int *n,
				    struct db_error *err)
{
	const char *params[1] = { machine };
	PGresult *r = db_query(
		c,
		"SELECT DISTINCT s.coordinator_pid, s.coordinator_started " CONNECTED_SESSIONS_SQL
		"AND s.machine = $1",
		1, params, err);

	*out = NULL;
	*n = 0;
	if (!r)
		return false;
	*out = xcalloc((size_t)PQntuples(r) + 1, sizeof(**out));
	for (int i = 0; i < PQntuples(r); i++) {
		struct journal_coordinator *co = &(*out)[(*n)++];

		co->pid = atoi(PQgetvalue(r, i, 0));
		co->started = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		snprintf(co->machine, sizeof(co->machine), "%s", machine);
	}
	PQclear(r);
	return true;
}

bool journal_coordinator_backends(PGconn *c, const struct journal_coordinator *co,
				  struct journal_backend **out, int *n, struct db_error *err)
{
	char pidtext[16], startedtext[32];
	const char *params[3] = { co->machine, pidtext, startedtext };
	PGresult *r;

	*out = NULL;
	*n = 0;
	snprintf(pidtext, sizeof(pidtext), "%d", co->pid);
	snprintf(startedtext, sizeof(startedtext), "%lld", co->started);
	r = db_query(
		c,
		"SELECT a.pid, a.backend_start::text " CONNECTED_SESSIONS_SQL
		"AND s.machine = $1 AND s.coordinator_pid = $2::int AND s.coordinator_started = $3::bigint",
		3, params, err);
	if (!r)
		return false;
	*out = xcalloc((size_t)PQntuples(r) + 1, sizeof(**out));
	for (int i = 0; i < PQntuples(r); i++) {
		struct journal_backend *b = &(*out)[(*n)++];

		b->pid = atoi(PQgetvalue(r, i, 0));
		snprintf(b->backend_start, sizeof(b->backend_start), "%s", PQgetvalue(r, i, 1));
	}
	PQclear(r);
	return true;
}

bool journal_forget_ended_sessions(PGconn *c, struct db_error *err)
{
	return db_exec(
		c,
		"DELETE FROM pgvalve.coordinator_sessions s WHERE NOT EXISTS (SELECT 1 FROM "
		"pg_stat_activity a WHERE a.pid = s.backend_pid AND a.backend_start = s.backend_start)",
		err);
}

bool journal_record_sessions(PGconn *c, const struct journal_coordinator *self, const int *pids, int n,
			     struct db_error *err)
{
	char pidtext[16], startedtext[32], *list;
	const char *params[5] = { pidtext, startedtext, self->host, self->machine, NULL };
	struct strbuf b = { 0 };
	PGresult *r;

	for (int i = 0; i < n; i++)
		array_literal_add_int(&b, pids[i]);
	params[4] = list = array_literal_take(&b);
	snprintf(pidtext, sizeof(pidtext), "%d", self->pid);
	snprintf(startedtext, sizeof(startedtext), "%lld", self->started);
	r = db_query(c,
		     "INSERT INTO pgvalve.coordinator_sessions (backend_pid, backend_start, holds_lock, "
		     "application_name, coordinator_pid, coordinator_started, host, machine) "
		     "SELECT a.pid, a.backend_start, a.pid = pg_backend_pid(), a.application_name, $1::int, "
		     "$2::bigint, $3, $4 FROM pg_stat_activity a WHERE a.pid = ANY ($5::int[]) "
		     "AND a.application_name LIKE 'pgvalve %, pid ' || $1 || ' on %' ON CONFLICT DO NOTHING",
		     5, params, err);
	free(list);
	PQclear(r);
	return r != NULL;
}
