/*
 * The hold path (see cutover.h). Lock conflicts are read from pg_locks on a
 * second connection: granted relation locks of other backends on the tables
 * the statements lock, in a mode that conflicts with the lock each step says
 * it takes (plan_lock_conflicts: SHARE ROW EXCLUSIVE, ADD FOREIGN KEY, lets
 * reads run; ACCESS EXCLUSIVE conflicts with everything). Requests still
 * queued in those modes are read too, to say what a lock_timeout queued
 * behind.
 */
#include "cutover.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "evidence.h"
#include "fault.h"
#include "proxy_dns.h"
#include "proxyctl.h"
#include "report.h"
#include "xalloc.h"
#include "pgvalve/clock.h"
#include "pgvalve/admin_api.h"

#define POLL_MS 20          /* pg_locks polling while holding */
#define PREWAIT_POLL_MS 200 /* ... and while waiting for old transactions, holding nothing */
#define PREWAIT_REPORT_MS 2000
#define PROXY_ACK_TIMEOUT_MS 2000
#define REFRESH_IN_FLIGHT_WAIT_MS 1000 /* a row type change's holds: units in flight waited for, at most */
#define BACKOFF_MAX_MS 5000

/* A table the job locks, with the strongest lock any statement takes on it. */
struct locked {
	struct qname name;
	char oid[16];
	enum plan_lock lock;
	enum plan_hold hold;
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };

	if (ms > 0)
		nanosleep(&ts, NULL);
}

static void add_locked(struct locked *t, int *n, const struct qname *q, enum plan_lock lock,
		       enum plan_hold hold)
{
	if (!q->name[0])
		return;
	for (int i = 0; i < *n; i++) {
		if (strcmp(t[i].name.schema, q->schema) == 0 && strcmp(t[i].name.name, q->name) == 0) {
			if (lock > t[i].lock)
				t[i].lock = lock;
			if (hold > t[i].hold)
				t[i].hold = hold;
			return;
		}
	}
	t[*n] = (struct locked){ .name = *q, .lock = lock, .hold = hold };
	(*n)++;
}

/* Finds each table's oid (unqualified: as search_path finds it). False: a table is missing. */
static bool resolve(PGconn *c, struct locked *t, int n, char *why, size_t cap)
{
	for (int i = 0; i < n; i++) {
		struct catalog_relation rel;
		struct db_error err;
		char name[2 * PLAN_NAME_MAX + 8];

		qname_format(&t[i].name, name, sizeof(name));
		switch (catalog_relation(c, &t[i].name, &rel, &err)) {
		case CATALOG_FOUND:
			snprintf(t[i].oid, sizeof(t[i].oid), "%s", rel.oid);
			break;
		case CATALOG_MISSING:
			snprintf(why, cap, "table %s does not exist", name);
			return false;
		case CATALOG_ERROR:
			snprintf(why, cap, "cannot look up table %s: %.600s", name, err.msg);
			return false;
		}
	}
	return true;
}

/* A lock another backend holds (or waits for) that the job's statements would wait for. */
struct blocker {
	int pid;
	bool granted; /* false: a request still queued, which a new conflicting request queues behind */
	char table[160];
	char mode[32];
	char state[32];
	int64_t xact_age_ms;
	int64_t state_age_ms; /* since its state last changed */
	char query[201];
};

/* A session idle inside its transaction this long is waiting on its client, not about to commit. */
#define IDLE_IN_TX_MS 10

/*
 * Whether holding traffic could not help against 'b': its transaction is
 * older than the stall budget, or, however young, has sat idle inside the
 * transaction for IDLE_IN_TX_MS (between the statements of a short
 * transaction a session is idle for far less).
 */
static bool long_blocker(const struct blocker *b, const struct options *o)
{
	return b->xact_age_ms > o->max_stall_ms ||
		(strncmp(b->state, "idle in transaction", 19) == 0 && b->state_age_ms >= IDLE_IN_TX_MS);
}

/*
 * Conflicting locks now, granted ones or (with 'granted' false) requests
 * still waiting; returns how many (up to 'cap' filled), -1 on error.
 */
static int conflicts(PGconn *observer, const struct locked *t, int n, int ddl_pid, bool granted,
		     struct blocker *out, int cap)
{
	size_t oids_cap = (size_t)n * sizeof(t->oid) + 3, modes_cap = 3, ko = 1, km = 1;
	char *oids, *modes, pid[16];
	const char *params[4];
	struct db_error err;
	PGresult *r;
	int rows;

	/* Per table its oid and, from its lock, the modes that conflict (a text[] of "a,b,c"). */
	for (int i = 0; i < n; i++)
		modes_cap += strlen(plan_lock_conflicts(t[i].lock)) + 3;
	oids = xmalloc(oids_cap);
	modes = xmalloc(modes_cap);
	oids[0] = modes[0] = '{';
	for (int i = 0; i < n; i++) {
		ko += (size_t)snprintf(oids + ko, oids_cap - ko, "%s%s", i ? "," : "", t[i].oid);
		km += (size_t)snprintf(modes + km, modes_cap - km, "%s\"%s\"", i ? "," : "",
				       plan_lock_conflicts(t[i].lock));
	}
	snprintf(oids + ko, oids_cap - ko, "}");
	snprintf(modes + km, modes_cap - km, "}");
	params[0] = oids;
	params[1] = modes;
	params[2] = pid;
	params[3] = granted ? "true" : "false";
	snprintf(pid, sizeof(pid), "%d", ddl_pid);
	r = db_query(
		observer,
		"SELECT l.pid, l.relation::regclass::text, l.mode, coalesce(a.state, ''), "
		"       coalesce((extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::bigint, 0), "
		"       left(coalesce(a.query, ''), 200), "
		"       coalesce((extract(epoch FROM clock_timestamp() - a.state_change) * 1000)::bigint, 0) "
		"FROM pg_locks l "
		"JOIN unnest($1::oid[], $2::text[]) AS w (rel, conflicts) ON l.relation = w.rel "
		"LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
		"WHERE l.granted = $4::bool AND l.locktype = 'relation' AND l.pid <> pg_backend_pid() "
		"  AND l.pid <> $3::int "
		"  AND l.mode = ANY (string_to_array(w.conflicts, ',')) "
		"ORDER BY 5 DESC",
		4, params, &err);
	free(oids);
	free(modes);
	if (!r)
		return -1;
	rows = PQntuples(r);
	for (int i = 0; i < rows && i < cap; i++) {
		out[i].pid = atoi(PQgetvalue(r, i, 0));
		out[i].granted = granted;
		snprintf(out[i].table, sizeof(out[i].table), "%s", PQgetvalue(r, i, 1));
		snprintf(out[i].mode, sizeof(out[i].mode), "%s", PQgetvalue(r, i, 2));
		snprintf(out[i].state, sizeof(out[i].state), "%s", PQgetvalue(r, i, 3));
		out[i].xact_age_ms = strtoll(PQgetvalue(r, i, 4), NULL, 10);
		snprintf(out[i].query, sizeof(out[i].query), "%s", PQgetvalue(r, i, 5));
		out[i].state_age_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10);
	}
	PQclear(r);
	return rows;
}

static void describe_blocker(const struct blocker *b, char *out, size_t cap)
{
	snprintf(out, cap, "pid %d %s %s on %s, transaction open %.1f s, %s: %s", b->pid,
		 b->granted ? "holds" : "waits for", b->mode, b->table, (double)b->xact_age_ms / 1000.0,
		 b->state[0] ? b->state : "state unknown", b->query);
}

/*
 * Before holding anything: waits while a conflicting lock belongs to a
 * transaction older than the stall budget (holding traffic then would stall
 * clients for nothing). Ends such sessions after --terminate-blockers-after.
 */
static bool wait_for_old_transactions(PGconn *observer, const struct options *o, const struct locked *t,
				      int n, int ddl_pid, char *why, size_t cap)
{
	int64_t started = clock_mono_ms(), last_report = 0;
	struct blocker b[8];

	for (;;) {
		int k = conflicts(observer, t, n, ddl_pid, true, b, 8), old = 0;

		if (k < 0) {
			snprintf(why, cap, "cannot read pg_locks: %s", PQerrorMessage(observer));
			return false;
		}
		for (int i = 0; i < k && i < 8; i++)
			old += long_blocker(&b[i], o);
		if (old == 0)
			return true;
		if (clock_mono_ms() - last_report >= PREWAIT_REPORT_MS) {
			char text[512];

			describe_blocker(&b[0], text, sizeof(text));
			report_event("waiting_for_blocker", NULL,
				     "  waiting, holding nothing, for %d transaction(s) in the way: %s", old,
				     text);
			last_report = clock_mono_ms();
		}
		if (o->terminate_blockers_after_ms >= 0 &&
		    clock_mono_ms() - started >= o->terminate_blockers_after_ms) {
			for (int i = 0; i < k && i < 8; i++) {
				char pid[16], text[512];
				const char *params[1] = { pid };
				struct db_error err;
				PGresult *r;

				if (!long_blocker(&b[i], o))
					continue;
				snprintf(pid, sizeof(pid), "%d", b[i].pid);
				describe_blocker(&b[i], text, sizeof(text));
				r = db_query(observer, "SELECT pg_terminate_backend($1::int)", 1, params,
					     &err);
				PQclear(r);
				report_warning("terminated a blocking session (--terminate-blockers-after)",
					       text);
			}
		}
		sleep_ms(PREWAIT_POLL_MS);
	}
}

/* The hold body for the tables that need 'mode'; NULL when none does. */
static cJSON *hold_body(const struct locked *t, int n, enum plan_hold mode, const char *id, bool refresh,
			const struct options *o)
{
	cJSON *body, *tables;
	int k = 0;

	for (int i = 0; i < n; i++)
		k += t[i].hold == mode;
	if (k == 0)
		return NULL;
	body = cJSON_CreateObject();
	tables = cJSON_AddArrayToObject(body, ADMIN_HOLD_TABLES);
	for (int i = 0; i < n; i++) {
		char name[2 * PLAN_NAME_MAX + 2];

		if (t[i].hold != mode)
			continue;
		snprintf(name, sizeof(name), "%s%s%s", t[i].name.schema, t[i].name.schema[0] ? "." : "",
			 t[i].name.name);
		cJSON_AddItemToArray(tables, cJSON_CreateString(name));
	}
	cJSON_AddStringToObject(body, ADMIN_HOLD_ID, id);
	cJSON_AddStringToObject(body, ADMIN_HOLD_MODE, plan_hold_name(mode));
	cJSON_AddStringToObject(body, ADMIN_HOLD_POLICY, admin_hold_policies[ADMIN_POLICY_QUEUE]);
	/* The hold lasts one attempt: the stall budget plus the DDL's lock_timeout, with room. */
	cJSON_AddNumberToObject(body, ADMIN_HOLD_LEASE_MS, o->max_stall_ms + o->lock_timeout_ms + 5000);
	cJSON_AddNumberToObject(body, ADMIN_HOLD_MAX_WAIT_MS, o->max_stall_ms + o->lock_timeout_ms + 2000);
	/*
	 * A row type change: a unit forwarded just before the hold, not yet begun
	 * on the server, would run after the DDL with its statement's old plan
	 * (0A000). The proxy answers once such units are done, within a second,
	 * below the 2 s the fan-out waits for the answer (docs/architecture.md §3.3).
	 */
	if (refresh)
		cJSON_AddNumberToObject(body, ADMIN_HOLD_IN_FLIGHT_WAIT_MS, REFRESH_IN_FLIGHT_WAIT_MS);
	return body;
}

static bool run_transaction(PGconn *ddl, const struct cutover_job *job, int lock_timeout_ms, char *why,
			    size_t cap, bool *retry)
{
	struct db_error err;
	char sql[128];

	*retry = false;
	snprintf(sql, sizeof(sql), "BEGIN; SET LOCAL lock_timeout = '%dms'", lock_timeout_ms);
	if (!db_exec(ddl, sql, &err))
		goto fail;
	for (int i = 0; i < job->n_stmts; i++)
		if (!db_exec(ddl, job->stmts[i].sql, &err))
			goto fail;
	for (int i = 0; i < job->n_journal_sql; i++)
		if (!db_exec(ddl, job->journal_sql[i], &err))
			goto fail;
	if (db_exec(ddl, "COMMIT", &err))
		return true;
fail:
	db_rollback(ddl);
	/* 55P03 lock_not_available (lock_timeout), 40P01 deadlock, 40001: worth another attempt. */
	*retry = strcmp(err.sqlstate, "55P03") == 0 || strcmp(err.sqlstate, "40P01") == 0 ||
		strcmp(err.sqlstate, "40001") == 0;
	snprintf(why, cap, "%.900s%s%s", err.msg, err.sqlstate[0] ? " (SQLSTATE " : "",
		 err.sqlstate[0] ? err.sqlstate : "");
	if (err.sqlstate[0])
		strncat(why, ")", cap - strlen(why) - 1);
	return false;
}

/*
 * The event saying which proxies acknowledged hold 'id' (all of them: a
 * hold is in force on every proxy or on none), with the sessions they
 * found inside a transaction.
 */
static void report_holding(const struct proxy_fleet *fleet, const struct cutover_job *job, int number,
			   const cJSON *hold, enum plan_hold mode, const struct proxy_hold_result *hr)
{
	const cJSON *table, *tables = cJSON_GetObjectItemCaseSensitive(hold, ADMIN_HOLD_TABLES);
	cJSON *fields = cJSON_CreateObject(), *urls = cJSON_AddArrayToObject(fields, "proxies");
	char list[1024], names[1024];
	size_t len = 0, nlen = 0;

	list[0] = names[0] = '\0';
	for (int i = 0; i < fleet->n; i++) {
		cJSON_AddItemToArray(urls, cJSON_CreateString(fleet->p[i]->url));
		if (len < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
						fleet->p[i]->url);
	}
	cJSON_ArrayForEach(table, tables)
	{
		if (cJSON_IsString(table) && nlen < sizeof(names))
			nlen += (size_t)snprintf(names + nlen, sizeof(names) - nlen, "%s%s", nlen ? ", " : "",
						 table->valuestring);
	}
	cJSON_AddStringToObject(fields, "hold_id",
				cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(hold, ADMIN_HOLD_ID)));
	cJSON_AddStringToObject(fields, "mode", plan_hold_name(mode));
	cJSON_AddItemToObject(fields, "tables", cJSON_Duplicate(tables, true));
	cJSON_AddNumberToObject(fields, "in_transaction", hr->in_transaction);
	report_event("holding", fields, "  %s attempt %d: holding %s on %s on %d proxy(ies) (%s)", job->what,
		     number, mode == HOLD_ALL_NEEDED ? "all traffic" : "writes", names, hr->acked, list);
}

/*
 * After a lock_timeout although no conflicting lock was granted: a request
 * queued before ours (a schema change waiting behind a long transaction)
 * made the DDL queue behind it. Appends who to 'why'.
 */
static void explain_lock_timeout(PGconn *observer, const struct locked *t, int n, int ddl_pid, char *why,
				 size_t cap)
{
	struct blocker b[8];
	int k = conflicts(observer, t, n, ddl_pid, false, b, 8);
	size_t len = strlen(why);
	char text[512];

	if (k <= 0 || len >= cap)
		return;
	describe_blocker(&b[0], text, sizeof(text));
	snprintf(why + len, cap - len, "; queued ahead of it: %s%s", text, k > 1 ? " (and more)" : "");
}

/*
 * Appends hold 'h' of attempt 'number' to 'log' (the migration's hold_acks
 * evidence): each proxy's acknowledgement time from 'hr', and, once
 * released, how long it held.
 */
static cJSON *log_hold(cJSON *log, int number, const cJSON *hold, enum plan_hold mode,
		       const struct proxy_hold_result *hr, bool acked)
{
	cJSON *entry, *arr, *ack;

	entry = cJSON_CreateObject();
	cJSON_AddNumberToObject(entry, "attempt", number);
	cJSON_AddStringToObject(entry, "hold_id",
				cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(hold, ADMIN_HOLD_ID)));
	cJSON_AddStringToObject(entry, "mode", plan_hold_name(mode));
	cJSON_AddBoolToObject(entry, "acked", acked);
	arr = cJSON_AddArrayToObject(entry, "proxies");
	cJSON_ArrayForEach(ack, hr->acks)
	{
		cJSON *p = cJSON_Duplicate(ack, true);

		cJSON_AddNullToObject(p, "held_ms");
		cJSON_AddItemToArray(arr, p);
	}
	cJSON_AddItemToArray(log, entry);
	return entry;
}

/* After hold 'entry' (log_hold) was released: each proxy's held_ms from its ack to its release. */
static void log_release(cJSON *entry, const int64_t *released_ms, int n)
{
	cJSON *p;
	int i = 0;

	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(entry, "proxies"))
	{
		double acked_at = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p, "answered_at_ms"));

		if (i < n && released_ms[i] >= 0)
			cJSON_ReplaceItemInObjectCaseSensitive(
				p, "held_ms", cJSON_CreateNumber((double)released_ms[i] - acked_at));
		cJSON_DeleteItemFromObjectCaseSensitive(p, "answered_at_ms");
		i++;
	}
}

/* After a row type change committed, before the hold ends: the proxies re-prepare (proxyctl.h). */
static void refresh_statements(const struct proxy_fleet *fleet, const cJSON *hold)
{
	char why[512];
	int statements;

	if (proxy_refresh_all(fleet->p, fleet->n, cJSON_GetObjectItemCaseSensitive(hold, ADMIN_HOLD_TABLES),
			      PROXY_ACK_TIMEOUT_MS, &statements, why, sizeof(why)))
		report_warning(
			"a proxy did not refresh its prepared statements: clients whose statements "
			"were prepared before may get 0A000 \"cached plan must not change result type\"",
			why);
	else if (statements)
		report_event("refresh", NULL,
			     "  %d prepared statement(s) will be re-prepared at their next use", statements);
}

/* One attempt. True: committed. '*retry': a failure another attempt may not meet. */
static bool attempt(PGconn *ddl, PGconn *observer, const struct options *o, const struct cutover_job *job,
		    struct locked *t, int n, int number, struct cutover_result *res, bool *retry,
		    cJSON *hold_log)
{
	char ids[2][128];
	cJSON *holds[2], *logged[2] = { NULL, NULL };
	bool placed[2] = { false, false }; /* acknowledged by every proxy: released at the end */
	int ddl_pid = PQbackendPID(ddl);
	int64_t acked_at = -1, budget_left;
	bool ok = false;
	struct blocker b[8];
	struct proxy_fleet fleet;

	*retry = true;
	res->proxy_status = 0;
	if (!wait_for_old_transactions(observer, o, t, n, ddl_pid, res->why, sizeof(res->why))) {
		*retry = false;
		return false;
	}
	/* dns:// names again: a proxy that started since the last attempt is held too (proxy_dns.h). */
	if (!proxy_fleet_now(o, &fleet, res->why, sizeof(res->why)))
		return false;
	snprintf(ids[0], sizeof(ids[0]), "pgvalve-%lld-%s-%d-all", (long long)job->migration_id, job->what,
		 number);
	snprintf(ids[1], sizeof(ids[1]), "pgvalve-%lld-%s-%d-writes", (long long)job->migration_id, job->what,
		 number);
	holds[0] = fleet.n ? hold_body(t, n, HOLD_ALL_NEEDED, ids[0], job->refresh_statements, o) : NULL;
	holds[1] = fleet.n ? hold_body(t, n, HOLD_WRITES_NEEDED, ids[1], job->refresh_statements, o) : NULL;
	for (int h = 0; h < 2; h++) {
		struct proxy_hold_result hr;

		if (!holds[h])
			continue;
		if (!proxy_hold_all(fleet.p, fleet.n, holds[h], PROXY_ACK_TIMEOUT_MS, &hr)) {
			/* proxy_hold_all released it where it was taken. */
			log_release(log_hold(hold_log, number, holds[h],
					     h == 0 ? HOLD_ALL_NEEDED : HOLD_WRITES_NEEDED, &hr, false),
				    NULL, 0);
			cJSON_Delete(hr.acks);
			res->proxy_status = hr.status;
			/* A refused token is refused again on every attempt: do not back off and retry. */
			*retry = !proxy_refusal_is_final(hr.status);
			snprintf(res->why, sizeof(res->why), "%s%s", hr.why,
				 *retry ? ""
					: " (not retried: the proxy will refuse every attempt; give "
					  "its admin token as \"token_file\" of its entry in the "
					  "config file's \"proxies\")");
			cJSON_Delete(hr.in_transaction_pids);
			goto release;
		}
		placed[h] = true;
		report_holding(&fleet, job, number, holds[h], h == 0 ? HOLD_ALL_NEEDED : HOLD_WRITES_NEEDED,
			       &hr);
		logged[h] = log_hold(hold_log, number, holds[h],
				     h == 0 ? HOLD_ALL_NEEDED : HOLD_WRITES_NEEDED, &hr, true);
		cJSON_Delete(hr.in_transaction_pids);
		cJSON_Delete(hr.acks);
	}
	acked_at = clock_mono_ms();
	fault_point("holding");
	/* Sessions already inside a transaction run on: wait for their conflicting locks, within the budget. */
	for (;;) {
		int k = conflicts(observer, t, n, ddl_pid, true, b, 8);

		if (k == 0)
			break;
		if (k < 0) {
			snprintf(res->why, sizeof(res->why), "cannot read pg_locks: %s",
				 PQerrorMessage(observer));
			goto release;
		}
		for (int i = 0; i < k && i < 8; i++) {
			char text[512];

			if (!long_blocker(&b[i], o))
				continue;
			/* It will not finish while we hold: let traffic go and wait for it holding nothing. */
			describe_blocker(&b[i], text, sizeof(text));
			snprintf(res->why, sizeof(res->why),
				 "a session idle inside its transaction holds a conflicting "
				 "lock: %s",
				 text);
			goto release;
		}
		if (clock_mono_ms() - acked_at >= o->max_stall_ms) {
			char text[512];

			describe_blocker(&b[0], text, sizeof(text));
			snprintf(res->why, sizeof(res->why), "still blocked after the %d ms stall budget: %s",
				 o->max_stall_ms, text);
			goto release;
		}
		sleep_ms(POLL_MS);
	}
	budget_left = fleet.n ? o->max_stall_ms - (clock_mono_ms() - acked_at) : o->lock_timeout_ms;
	if (budget_left < 10)
		budget_left = 10;
	if (fleet.n && budget_left > o->lock_timeout_ms)
		budget_left = o->lock_timeout_ms;
	res->began = time(NULL);
	ok = run_transaction(ddl, job, (int)budget_left, res->why, sizeof(res->why), retry);
	if (ok && job->refresh_statements && holds[0])
		refresh_statements(&fleet, holds[0]);
	if (!ok && *retry && strstr(res->why, "(SQLSTATE 55P03)"))
		explain_lock_timeout(observer, t, n, ddl_pid, res->why, sizeof(res->why));
release:
	if (acked_at >= 0 && fleet.n)
		res->held_ms += clock_mono_ms() - acked_at; /* a failed attempt held traffic too */
	for (int h = 0; h < 2; h++) {
		int64_t released_ms[OPTIONS_MAX_PROXIES];

		if (placed[h] &&
		    proxy_release_all_timed(fleet.p, fleet.n, ids[h], PROXY_ACK_TIMEOUT_MS, released_ms))
			report_warning("a proxy did not confirm the release of a hold (its lease ends it)",
				       ids[h]);
		if (logged[h])
			log_release(logged[h], released_ms, fleet.n);
		cJSON_Delete(holds[h]);
	}
	proxy_fleet_free(&fleet);
	return ok;
}

bool cutover_run(PGconn *ddl, PGconn *observer, const struct options *o, const struct cutover_job *job,
		 struct cutover_result *res)
{
	struct locked *t = xcalloc((size_t)job->n_stmts * 2 + 1, sizeof(*t));
	cJSON *hold_log = cJSON_CreateArray();
	int n = 0;
	bool ok = false, retry = true;

	memset(res, 0, sizeof(*res));
	for (int i = 0; i < job->n_stmts; i++) {
		const struct cutover_stmt *s = &job->stmts[i];

		add_locked(t, &n, &s->table, s->lock, s->hold);
		/* A second table the statement locks (a foreign key's referenced one): the same lock and hold. */
		add_locked(t, &n, &s->other, s->lock, s->hold);
	}
	if (!resolve(observer, t, n, res->why, sizeof(res->why)))
		goto done;
	srand((unsigned)clock_mono_ms());
	while (res->attempts < o->attempts && retry) {
		res->attempts++;
		ok = attempt(ddl, observer, o, job, t, n, res->attempts, res, &retry, hold_log);
		if (ok)
			break;
		report_event("attempt_failed", NULL, "  %s attempt %d of %d failed: %s", job->what,
			     res->attempts, o->attempts, res->why);
		if (job->attempt_failed)
			job->attempt_failed(job->arg, res->attempts, res->why);
		if (retry && res->attempts < o->attempts) {
			int64_t base = 100LL << (res->attempts < 6 ? res->attempts - 1 : 5);

			if (base > BACKOFF_MAX_MS)
				base = BACKOFF_MAX_MS;
			sleep_ms(base / 2 + rand() % (base + 1)); /* jitter: half to one and a half */
		}
	}
done:
	/* Every held step of a migration, rollbacks and key changes too: each proxy's acknowledgement. */
	evidence_hold_acks(ddl, job->migration_id, job->what, hold_log);
	cJSON_Delete(hold_log);
	free(t);
	return ok;
}
