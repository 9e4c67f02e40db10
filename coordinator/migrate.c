/*
 * The phases of a migration after its journal entry exists
 * (docs/architecture.md, apply steps 4-10): prepare, wait for a window, cutover under holds,
 * validate, finalize, watch, commit, or roll back. Each phase leaves the
 * journal saying where it got to and skips steps already done, so apply
 * and recover --resume run the same code. The watch and the baseline it
 * compares with are migrate_watch.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <unistd.h>

#include "apply_latency.h"
#include "catalog.h"
#include "commands.h"
#include "cutover.h"
#include "db.h"
#include "journal.h"
#include "keychange.h"
#include "preflight.h"
#include "proxy_dns.h"
#include "proxyctl.h"
#include "report.h"
#include "evidence.h"
#include "rollback.h"
#include "selftest.h"
#include "watch_rules.h"
#include "window.h"
#include "xalloc.h"
#include "migrate_internal.h"
#include "fault.h"
#include "pgvalve/clock.h"
#include "pgvalve/admin_api.h"

#define VALIDATE_POLL_MS 500

/* Sets the journal state; on failure reports and returns false. */
bool migrate_set_state(struct migration *a, enum mig_state s, const char *error)
{
	struct db_error err;

	if (journal_set_state(a->ddl, a->id, s, error, &err))
		return true;
	report_error("cannot update the journal", err.msg, NULL);
	return false;
}

/* ---- windows and rules ----------------------------------------------------- */

bool migrate_settings(struct migration *a)
{
	char err[512];

	for (int i = 0; i < a->o->n_windows; i++) {
		if (!window_parse(a->o->windows[i], &a->windows[a->n_windows++], err, sizeof(err))) {
			report_error(err, NULL, "e.g. --window \"Mon-Fri 02:00-04:00 Europe/Berlin\"");
			return false;
		}
	}
	if (a->o->n_rollback_on == 0)
		watch_rules_default(a->rules, &a->n_rules);
	for (int i = 0; i < a->o->n_rollback_on; i++) {
		if (!watch_rule_parse(a->o->rollback_on[i], &a->rules[a->n_rules++], err, sizeof(err))) {
			report_error(err, NULL, "e.g. --rollback-on \"constraint_violations > 5 in 10s\"");
			return false;
		}
	}
	return true;
}

/* ---- phases ------------------------------------------------------------------ */

static bool step_done(struct migration *a, int seq)
{
	char *sql = journal_step_done_sql(a->id, seq);
	struct db_error err;
	bool ok = db_exec(a->ddl, sql, &err);

	if (!ok)
		report_error("cannot update the journal", err.msg, NULL);
	free(sql);
	return ok;
}

/* The distinct tables the steps lock (for the snapshot of prior constraints); returns how many. */
static int affected_tables(const struct plan *p, struct qname *out, int cap)
{
	int n = 0;

	for (int i = 0; i < p->n_steps && n + 2 <= cap; i++) {
		const struct qname *q[2] = { &p->steps[i].table, &p->steps[i].other };

		for (int k = 0; k < 2; k++) {
			bool seen = !q[k]->name[0];

			for (int j = 0; j < n && !seen; j++)
				seen = strcmp(out[j].schema, q[k]->schema) == 0 &&
					strcmp(out[j].name, q[k]->name) == 0;
			if (!seen)
				out[n++] = *q[k];
		}
	}
	return n;
}

/*
 * The index a prepare step builds: 1 there and valid, 0 there but invalid
 * (a CREATE INDEX CONCURRENTLY that failed or was killed leaves it so; then
 * 'drop' gets the statement that drops it), -1 missing or unknown.
 */
static int index_state(struct migration *a, const struct plan_step *st, char *drop, size_t cap)
{
	struct catalog_relation rel;
	const char *params[1] = { rel.oid };
	struct db_error err;
	PGresult *r;
	int state = -1;

	if (!st->index.name[0] || catalog_relation(a->observer, &st->index, &rel, &err) != CATALOG_FOUND ||
	    rel.relkind != 'i')
		return -1;
	r = db_query(a->observer, "SELECT indisvalid FROM pg_catalog.pg_index WHERE indexrelid = $1::oid", 1,
		     params, &err);
	if (r && PQntuples(r) == 1) {
		state = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		snprintf(drop, cap, "DROP INDEX CONCURRENTLY %s", rel.regclass);
	}
	PQclear(r);
	return state;
}

/*
 * CREATE INDEX CONCURRENTLY, alone and with no hold (before the cutover, or
 * after it for a column it adds): an index left invalid by a failure is
 * dropped and built again. True when done and recorded in the journal.
 */
static bool build_index(struct migration *a, const struct plan_step *st)
{
	struct db_error err;
	bool built = false;
	char drop[512];

	for (int attempt = 1; attempt <= a->o->attempts && !built; attempt++) {
		int state = index_state(a, st, drop, sizeof(drop));

		if (state == 1) {
			report_event("prepare", NULL,
				     "prepare: index %s exists and is valid (an earlier run built it)",
				     st->index.name);
			built = true;
			break;
		}
		if (state == 0) {
			report_event("prepare", NULL, "prepare: index %s was left invalid: %s",
				     st->index.name, drop);
			if (!db_exec(a->ddl, drop, &err)) {
				report_error("cannot drop an invalid index", err.msg, NULL);
				return false;
			}
		}
		report_event("prepare", NULL, "prepare: %s%s", st->sql, attempt > 1 ? " (again)" : "");
		built = db_exec(a->ddl, st->sql, &err);
		if (!built) {
			struct db_error jerr;

			if (!journal_step_attempt(a->ddl, a->id, st->seq, err.msg, &jerr))
				report_warning("cannot count the attempt in the journal", jerr.msg);
			report_warning("building the index failed", err.msg);
			/* 42P07: it exists (the next round looks at it); deadlock, cancel: try again. */
			if (strcmp(err.sqlstate, "42P07") != 0 && strcmp(err.sqlstate, "40P01") != 0 &&
			    strcmp(err.sqlstate, "57014") != 0) {
				report_error("cannot build an index the migration needs", err.msg, NULL);
				return false;
			}
		}
	}
	if (!built || !step_done(a, st->seq))
		return false;
	return true;
}

/*
 * A new object (CREATE TABLE, TYPE, …, COMMENT ON), no hold: the statement
 * and its journal row in one transaction, so a crash leaves it either done
 * and recorded or not there.
 */
static bool create_object(struct migration *a, const struct plan_step *st)
{
	char *journal = journal_step_done_sql(a->id, st->seq);
	char *sql = xasprintf("BEGIN; %s; %s; COMMIT", st->sql, journal);
	struct db_error err;
	bool ok;

	report_event("prepare", NULL, "prepare: %s", st->sql);
	ok = db_exec(a->ddl, sql, &err);
	if (!ok) {
		db_rollback(a->ddl);
		report_error("cannot create an object the migration needs", err.msg, NULL);
	}
	free(journal);
	free(sql);
	return ok;
}

/* The steps before the cutover: new objects and CREATE INDEX CONCURRENTLY, in the file's order, no hold. */
static bool prepare(struct migration *a, char *why, size_t why_len)
{
	for (int i = 0; i < a->p.n_steps; i++) {
		const struct plan_step *st = &a->p.steps[i];
		bool keychange = st->kind == STEP_KEYCHANGE_SHADOW || st->kind == STEP_KEYCHANGE_BACKFILL;
		bool ok;

		if (st->phase != PHASE_PREPARE || a->done[i])
			continue;
		if (keychange)
			ok = keychange_prepare_step(a, st); /* keychange_prepare.c */
		else
			ok = st->kind == STEP_CREATE_OBJECT ? create_object(a, st) : build_index(a, st);
		if (!ok) {
			snprintf(why, why_len, "preparation step %d (%s) could not be completed", st->seq,
				 keychange                                ? "key change"
					 : st->kind == STEP_CREATE_OBJECT ? "a new object"
									  : "an index the migration needs");
			return false;
		}
	}
	if (!migrate_set_state(a, MIG_PREPARED, NULL)) {
		snprintf(why, why_len, "the journal could not record the preparation");
		return false;
	}
	return true;
}

/* Waits for a window and for `pgvalve cutover ID` when postponed. */
static bool wait_for_cutover(struct migration *a)
{
	bool announced = false;

	for (;;) {
		time_t now = time(NULL);
		bool in_window = a->n_windows == 0 || window_contains(a->windows, a->n_windows, now);
		bool released = !a->o->postpone_cutover;

		if (a->o->postpone_cutover) {
			struct db_error err;

			/* A journal that cannot be read says nothing: ask again next round. */
			if (!journal_cutover_released(a->ddl, a->id, &released, &err))
				released = false;
		}
		if (in_window && released)
			return true;
		if (!announced) {
			if (!released)
				report_event("postponed", NULL,
					     "cutover postponed: run `pgvalve cutover %lld` to go on",
					     (long long)a->id);
			if (!in_window) {
				time_t next = window_next_open(a->windows, a->n_windows, now);
				char when[64];
				struct tm tm;

				gmtime_r(&next, &tm);
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
				report_event("waiting_for_window", NULL,
					     "waiting for the next cutover window: %s", when);
			}
			announced = true;
		}
		sleep(1);
	}
}

/* Steps of 'phase' the journal does not record as done. */
static int pending(const struct migration *a, enum plan_phase phase)
{
	int n = 0;

	for (int i = 0; i < a->p.n_steps; i++)
		n += a->p.steps[i].phase == phase && !a->done[i];
	return n;
}

/* The steps of one run_held() job, whose failed attempts the journal counts. */
struct held_steps {
	struct migration *a;
	int *seqs;
	int n;
};

/*
 * A failed hold-path attempt, counted for each of its steps in its own
 * transaction (the attempt's was rolled back); the committing attempt is
 * counted by journal_step_done_sql, so the journal ends with the total.
 */
static void count_failed_attempt(void *arg, int attempt, const char *why)
{
	const struct held_steps *h = arg;
	struct db_error err;

	(void)attempt;
	for (int i = 0; i < h->n; i++) {
		if (!journal_step_attempt(h->a->ddl, h->a->id, h->seqs[i], why, &err)) {
			report_warning("cannot count the attempt in the journal", err.msg);
			return;
		}
	}
}

/*
 * Runs the pending steps of 'phase' in one transaction through the hold
 * path, recording each step and then 'state' in that same transaction (or
 * just 'state' when nothing is pending). True when committed.
 */
static bool run_held(struct migration *a, enum plan_phase phase, enum mig_state state, const char *what,
		     struct cutover_result *res)
{
	struct cutover_stmt *stmts = xcalloc((size_t)a->p.n_steps + 1, sizeof(*stmts));
	char **journal = xcalloc((size_t)a->p.n_steps + 2, sizeof(*journal));
	struct held_steps held = { .a = a, .seqs = xcalloc((size_t)a->p.n_steps + 1, sizeof(int)) };
	struct cutover_job job = {
		.what = what, .migration_id = a->id, .attempt_failed = count_failed_attempt, .arg = &held
	};
	int n = 0, nj = 0;
	bool ok = false;

	memset(res, 0, sizeof(*res));
	for (int i = 0; i < a->p.n_steps; i++) {
		const struct plan_step *st = &a->p.steps[i];

		if (st->phase != phase || a->done[i])
			continue;
		stmts[n++] = (struct cutover_stmt){ st->sql, st->table, st->other, st->lock, st->hold };
		job.refresh_statements |= st->kind == STEP_KEYCHANGE_SWAP; /* row types change */
		held.seqs[held.n++] = st->seq;
		journal[nj++] = journal_step_done_sql(a->id, st->seq);
	}
	journal[nj++] = journal_state_sql(a->id, state);
	if (n == 0) {
		ok = migrate_set_state(a, state, NULL);
		goto done;
	}
	job.stmts = stmts;
	job.n_stmts = n;
	job.journal_sql = (const char *const *)journal;
	job.n_journal_sql = nj;
	ok = cutover_run(a->ddl, a->observer, a->o, &job, res); /* records each proxy's acknowledgement */
	if (ok)
		fault_point(journal_state_name(state));
done:
	for (int i = 0; i < nj; i++)
		free(journal[i]);
	free(journal);
	free(held.seqs);
	free(stmts);
	return ok;
}

/* The cutover; when it did not happen, 'why' (for the rollback's journal entry) says why. */
static bool cutover(struct migration *a, char *why, size_t cap)
{
	struct cutover_result res;
	int n = pending(a, PHASE_CUTOVER);

	if (n > 0 && a->o->n_proxies > 0) {
		migrate_watch_baseline(a); /* migrate_watch.c */
		report_event("cutover", NULL,
			     "cutover: %d statement(s) in one transaction, holding on %d proxy(ies), "
			     "stall budget %d ms",
			     n, a->o->n_proxies, a->o->max_stall_ms);
	} else if (n > 0) {
		report_event("cutover", NULL,
			     "cutover: %d statement(s) in one transaction, lock_timeout %d ms, no proxies", n,
			     a->o->lock_timeout_ms);
	}
	if (!run_held(a, PHASE_CUTOVER, MIG_CUTOVER, "cutover", &res)) {
		snprintf(why, cap, "the cutover could not take its locks: it gave up after %d attempt(s): %s",
			 res.attempts, res.why);
		report_error("the cutover did not happen", why,
			     proxy_refusal_is_final(res.proxy_status)
				     ? "give pgvalve the proxy's admin token (\"token_file\" in the "
				       "config file's \"proxies\") and apply again"
				     : "see the blocking sessions above; retry later, raise --max-stall or "
				       "--attempts, or use --terminate-blockers-after");
		(void)migrate_set_state(a, MIG_FAILED, why);
		return false;
	}
	/* The watch counts from the second the cutover's transaction began in: never after its commit. */
	a->cutover_at = n > 0 ? res.began : time(NULL);
	a->cutover_held_ms = res.held_ms;
	if (n > 0) {
		report_event("cutover_done", NULL,
			     "cutover committed after %d attempt(s); traffic held %lld ms", res.attempts,
			     (long long)res.held_ms);
		evidence_cutover(a->ddl, a->id, &a->p, a->o, res.attempts, res.held_ms);
	}
	return true;
}

/* VALIDATE one constraint in its own transaction, with a progress line. 0 ok, 1 violation, -1 error. */
static int validate_one(struct migration *a, const struct plan_step *st, long long rows)
{
	char *journal = journal_step_done_sql(a->id, st->seq);
	char *sql = xasprintf("BEGIN; %s; %s; COMMIT", st->sql, journal);
	int64_t started = clock_mono_ms(), elapsed;
	struct db_error err = { 0 };
	PGresult *r;
	int rc = 0;

	if (!PQsendQuery(a->ddl, sql)) {
		free(journal);
		free(sql);
		report_error("cannot start a validation", PQerrorMessage(a->ddl), NULL);
		return -1;
	}
	while (PQisBusy(a->ddl)) {
		elapsed = clock_mono_ms() - started;
		if (rows > 0 && a->validate_rows_per_s > 0)
			report_progress("validating (%s): %.1f s, ~%lld rows, ~%.0f rows/s, ~%.0f s left",
					st->sql, (double)elapsed / 1000, rows, a->validate_rows_per_s,
					(double)rows / a->validate_rows_per_s - (double)elapsed / 1000);
		else
			report_progress("validating (%s): %.1f s, ~%lld rows", st->sql,
					(double)elapsed / 1000, rows);
		{
			struct pollfd pfd = { .fd = PQsocket(a->ddl), .events = POLLIN };

			/* Wakes as soon as the server answers; redraws the progress line meanwhile. */
			(void)poll(&pfd, 1, VALIDATE_POLL_MS);
		}
		if (!PQconsumeInput(a->ddl))
			break;
	}
	while ((r = PQgetResult(a->ddl))) {
		if (PQresultStatus(r) == PGRES_FATAL_ERROR && !err.msg[0])
			db_error_from(a->ddl, r, &err);
		PQclear(r);
	}
	report_progress_done();
	free(journal);
	free(sql);
	elapsed = clock_mono_ms() - started;
	if (err.msg[0]) {
		db_rollback(a->ddl);
		report_error("validation failed", err.msg, NULL);
		/* 23503 foreign_key_violation, 23514 check_violation: the data does not satisfy it. */
		rc = strcmp(err.sqlstate, "23503") == 0 || strcmp(err.sqlstate, "23514") == 0 ? 1 : -1;
		return rc;
	}
	if (rows > 0 && elapsed > 0)
		a->validate_rows_per_s = (double)rows * 1000.0 / (double)elapsed;
	report_event("validated", NULL, "validated in %.1f s: %s", (double)elapsed / 1000, st->sql);
	return 0;
}

/* Validations; 'violation' says a constraint did not hold (roll back). */
static bool validate(struct migration *a, bool *violation)
{
	*violation = false;
	for (int i = 0; i < a->p.n_steps; i++) {
		const struct plan_step *st = &a->p.steps[i];
		long long rows = st->constraint >= 0 && a->rows ? a->rows[st->constraint] : -1;
		int rc;

		if (st->phase != PHASE_VALIDATE || a->done[i])
			continue;
		/* An index on a column the cutover added: built CONCURRENTLY, outside a transaction. */
		if (st->kind == STEP_CREATE_INDEX) {
			if (!build_index(a, st))
				return false;
			continue;
		}
		rc = validate_one(a, st, rows);
		if (rc != 0) {
			*violation = rc == 1;
			return false;
		}
	}
	return migrate_set_state(a, MIG_VALIDATED, NULL);
}

static bool finalize(struct migration *a)
{
	struct cutover_result res;
	int n = pending(a, PHASE_FINALIZE);

	if (n > 0)
		report_event("finalize", NULL, "finalize: %d statement(s) under holds", n);
	if (run_held(a, PHASE_FINALIZE, MIG_FINALIZED, "finalize", &res)) {
		if (n > 0) /* a key change's swap: how long traffic stood still for it */
			report_event("finalize_done", NULL,
				     "finalize committed after %d attempt(s); traffic held %lld ms",
				     res.attempts, (long long)res.held_ms);
		return true;
	}
	report_error("the finalize step did not happen", res.why, NULL);
	return false;
}

/* ---- from a state to the end ------------------------------------------------ */

/* `committed` in the journal, and with --orm the ORM's record in that same transaction (orm.h). */
static bool commit(struct migration *a)
{
	struct db_error err;
	char *sql;
	bool ok;

	if (a->orm.tool == ORM_NONE)
		return migrate_set_state(a, MIG_COMMITTED, NULL);
	sql = journal_state_sql(a->id, MIG_COMMITTED);
	ok = orm_commit(a->ddl, &a->orm, a->id, sql, &err);
	free(sql);
	if (!ok) {
		report_error("cannot commit the migration with its ORM record", err.msg,
			     "the schema change is in place and nothing was recorded: "
			     "`pgvalve recover --resume` tries the commit again");
		return false;
	}
	report_event("orm_recorded", NULL, "%s: %s recorded in %s", orm_tool_name(a->orm.tool), a->orm.name,
		     orm_table(a->orm.tool));
	return true;
}

static int roll_back(struct migration *a, const char *why)
{
	if (!rollback_run(a->ddl, a->observer, a->o, a->id, why))
		return EXIT_ATTENTION;
	return EXIT_ROLLED_BACK;
}

/*
 * Holds a killed coordinator left on the proxies (ids "pgvalve-<id>-..."):
 * their leases would end them, but traffic should not wait for that.
 */
void migrate_release_stale_holds(struct migration *a)
{
	char prefix[64], err[256];
	struct proxy_fleet f;

	snprintf(prefix, sizeof(prefix), "pgvalve-%lld-", (long long)a->id);
	/* the proxies as of now: a dns:// name is resolved again (proxy_dns.h) */
	if (!proxy_fleet_now(a->o, &f, err, sizeof(err))) {
		report_warning("cannot find the proxies to release an earlier run's holds", err);
		return;
	}
	for (int i = 0; i < f.n; i++) {
		cJSON *doc = NULL, *h;

		if (proxy_request(f.p[i], "GET", ADMIN_PATH_HOLDS, NULL, 3000, &doc, err, sizeof(err)) !=
		    200) {
			cJSON_Delete(doc);
			continue;
		}
		cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(doc, ADMIN_HOLDS_LIST))
		{
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(h, ADMIN_HOLD_ID);

			if (cJSON_IsString(id) && strncmp(id->valuestring, prefix, strlen(prefix)) == 0) {
				report_event("stale_hold", NULL,
					     "releasing hold %s left on %s by an earlier run",
					     id->valuestring, f.p[i]->url);
				(void)proxy_release_all(&f.p[i], 1, id->valuestring, 3000);
			}
		}
		cJSON_Delete(doc);
	}
	proxy_fleet_free(&f);
}

static bool snapshot(struct migration *a)
{
	struct qname tables[512];
	struct db_error err;
	int n = affected_tables(&a->p, tables, 512);

	if (journal_snapshot(a->ddl, a->id, tables, n, &err) &&
	    journal_set_state(a->ddl, a->id, MIG_SNAPSHOTTED, NULL, &err))
		return true;
	report_error("cannot snapshot the prior constraints", err.msg, NULL);
	return false;
}

/* From 'state' to the end (migrate_run). */
static int run_phases(struct migration *a, enum mig_state state)
{
	char why[2048];
	bool violation;

	switch (state) {
	case MIG_PLANNED:
	case MIG_CHECKED:
		if (!snapshot(a))
			return EXIT_ATTENTION;
		/* fall through */
	case MIG_SNAPSHOTTED:
		if (!prepare(a, why, sizeof(why)))
			return roll_back(a, why);
		a->quiet_since_ms = clock_mono_ms();
		/* fall through */
	case MIG_PREPARED:
		wait_for_cutover(a);
		if (!cutover(a, why, sizeof(why)))
			return roll_back(a, why);
		/* fall through */
	case MIG_CUTOVER:
		if (!validate(a, &violation))
			return roll_back(a,
					 violation ? "a new constraint does not hold for existing rows"
						   : "validation failed");
		/* fall through */
	case MIG_VALIDATED:
		if (!finalize(a))
			return roll_back(a, "the finalize steps could not take their locks");
		/* fall through */
	case MIG_FINALIZED:
		if (a->o->self_test) {
			int total;

			(void)selftest_run(a->ddl, a->id, &a->p, a->o->lock_timeout_ms, &total);
		}
		/* fall through */
	case MIG_WATCHING:
		if (!migrate_watch(a, why, sizeof(why))) {
			int rc;

			report_event("rule_tripped", NULL, "rollback rule tripped: %s", why);
			migrate_watch_record_latency(a);
			rc = roll_back(a, why);
			/* after the rollback: every error the rolled-back constraints caused is counted */
			migrate_watch_record_errors(a);
			return rc;
		}
		migrate_watch_record_errors(a);
		migrate_watch_record_latency(a);
		if (!commit(a))
			return EXIT_ATTENTION;
		report_event("committed", NULL,
			     "migration %lld committed: %d constraint(s) in place and valid; "
			     "traffic held %lld ms at the cutover",
			     (long long)a->id, a->p.n_constraints, (long long)a->cutover_held_ms);
		return EXIT_DONE;
	case MIG_COMMITTED:
		report_event("committed", NULL, "migration %lld is committed already", (long long)a->id);
		return EXIT_DONE;
	case MIG_ROLLING_BACK:
	case MIG_FAILED:
		report_error("this migration was being rolled back (or failed): it can only be rolled back",
			     NULL, "pgvalve recover --rollback");
		return EXIT_ATTENTION;
	case MIG_ROLLED_BACK:
		report_event("rolled_back", NULL, "migration %lld is rolled back already", (long long)a->id);
		return EXIT_ROLLED_BACK;
	}
	return EXIT_ATTENTION;
}

int migrate_run(struct migration *a, enum mig_state state)
{
	int rc;

	migrate_release_stale_holds(a);
	/*
	 * Observe the affected tables from now on, so the baseline overlaps the
	 * preparation; stopped on every way out (a killed coordinator's lease ends it).
	 */
	if (state < MIG_COMMITTED && state != MIG_ROLLING_BACK && state != MIG_FAILED && a->o->watch_s > 0) {
		struct qname tables[LATENCY_MAX_TABLES];

		(void)apply_latency_observe_start(&a->obs, a->o, a->id, tables,
						  affected_tables(&a->p, tables, LATENCY_MAX_TABLES));
	}
	a->quiet_since_ms = clock_mono_ms(); /* run_phases moves it past the preparation */
	rc = run_phases(a, state);
	apply_latency_observe_stop(&a->obs);
	return rc;
}

int migrate_connect(struct migration *m, const char *role)
{
	struct db_error err;
	int holder;

	m->ddl = commands_connect(m->o, role);
	m->observer = m->ddl ? commands_connect(m->o, "observer") : NULL;
	if (!m->ddl || !m->observer)
		return EXIT_USAGE;
	if (!journal_ensure(m->ddl, &err)) {
		report_error("cannot read the journal (schema pgvalve)", err.msg, NULL);
		return EXIT_ATTENTION;
	}
	if (!journal_lock(m->ddl, &holder, &err)) {
		report_error("refused: another pgvalve is working on this database", err.msg,
			     "wait for it to finish (pgvalve status)");
		return EXIT_REFUSED;
	}
	return EXIT_DONE;
}

/* A string member of 'o', or "" when it has none. */
static const char *json_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

bool migrate_load(struct migration *a, int64_t id, enum mig_state *state)
{
	struct journal_migration m = { 0 };
	struct journal_step *steps = NULL;
	struct db_error err;
	cJSON *plan = NULL, *c;
	bool found = false, ok = false;
	int n = 0;

	if (!journal_read_migration(a->ddl, id, &m, &found, &err) ||
	    (found && !journal_read_steps(a->ddl, id, &steps, &n, &err))) {
		report_error("cannot read the journal", err.msg, NULL);
		goto done;
	}
	if (!found) {
		report_error("no such migration in the journal", NULL, "`pgvalve status` lists them");
		goto done;
	}
	*state = m.state;
	a->id = id;
	a->p.name = xstrdup(m.name);
	a->cutover_at = (time_t)m.cutover_epoch;
	a->p.steps = xcalloc((size_t)n + 1, sizeof(*a->p.steps));
	a->done = xcalloc((size_t)n + 1, sizeof(*a->done));
	for (int i = 0; i < n; i++) {
		a->p.steps[i] = steps[i].step;
		steps[i].step.sql = NULL; /* the plan owns it now */
		a->done[i] = steps[i].done;
	}
	a->p.n_steps = n;
	/* What apply recorded beside the plan: the ORM's record to write at commit. */
	{
		cJSON *options = cJSON_Parse(m.options_json ? m.options_json : "{}");
		const cJSON *orm = cJSON_GetObjectItemCaseSensitive(options, "orm");

		if (orm && !orm_from_json(&a->orm, orm)) {
			cJSON_Delete(options);
			report_error("the journal's ORM record names a tool this pgvalve does not know", NULL,
				     NULL);
			goto done;
		}
		cJSON_Delete(options);
	}
	/* The watch needs the new constraints' names. */
	plan = cJSON_Parse(m.plan_json);
	a->p.constraints = xcalloc(
		(size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(plan, "constraints")) + 1,
		sizeof(*a->p.constraints));
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(plan, "constraints"))
	{
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
		struct plan_constraint *k = &a->p.constraints[a->p.n_constraints];

		if (!cJSON_IsString(name))
			continue;
		snprintf(k->name, PLAN_NAME_MAX, "%s", name->valuestring);
		/* and, for --self-test (selftest.h), what it is and where: the plan's raw names */
		for (int t = CON_FOREIGN_KEY; t <= CON_PRIMARY_KEY; t++)
			if (strcmp(con_type_name((enum con_type)t), json_string(c, "type")) == 0)
				k->type = (enum con_type)t;
		snprintf(k->table.schema, PLAN_NAME_MAX, "%s", json_string(c, "table_schema"));
		snprintf(k->table.name, PLAN_NAME_MAX, "%s", json_string(c, "table_name"));
		snprintf(k->columns[0], PLAN_NAME_MAX, "%s", json_string(c, "column"));
		k->n_columns = k->columns[0][0] ? 1 : 0;
		a->p.n_constraints++;
	}
	ok = true;
done:
	cJSON_Delete(plan);
	journal_steps_free(steps, n);
	journal_migration_free(&m);
	return ok;
}

void migrate_free(struct migration *a)
{
	apply_latency_observe_stop(&a->obs);
	apply_latency_reading_free(&a->baseline_lat);
	cJSON_Delete(a->baseline);
	free(a->done);
	plan_free(&a->p);
	PQfinish(a->ddl);
	PQfinish(a->observer);
	a->ddl = a->observer = NULL;
	a->baseline = NULL;
	a->done = NULL;
}
