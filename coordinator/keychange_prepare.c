/*
 * The key type change's prepare steps (docs/architecture.md §4.9): a
 * table's shadow columns and their trigger, added through the hold path (a
 * brief ACCESS EXCLUSIVE: ADD COLUMN without a default, CREATE TRIGGER, a
 * NOT VALID check), then the backfill: the table's pages in batches, each
 * batch one short transaction that also records where it got to, so a
 * killed coordinator resumes at the next batch; throttled by
 * --backfill-rate and, between batches, by the standbys' replication lag
 * (--max-lag, keychange_lag.c), with a progress line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "cutover.h"
#include "journal.h"
#include "journal_keychange.h"
#include "keychange.h"
#include "keychange_lag.h"
#include "migrate.h"
#include "report.h"
#include "xalloc.h"
#include "pgvalve/clock.h"

/*
 * A batch's own lock_timeout: a batch waits behind a writer's row lock at
 * most this long, then is tried again, smaller. Short, because the rows it
 * already updated stay locked while it waits, and the writers that want
 * them wait behind it. A run of lock timeouts fails the step only after
 * --attempts times BATCH_LOCK_RETRIES of them in a row (30 x 40 x 50 ms:
 * a minute behind one row lock).
 */
#define BATCH_LOCK_TIMEOUT_MS 50
#define BATCH_LOCK_RETRIES 40

/*
 * How long a batch should take: its rows stay locked until it commits, so a
 * writer updating one of them waits up to this long. The batch's pages are
 * cut to keep it near this (docs/architecture.md §4.9), within
 * --backfill-batch rows.
 */
#define BATCH_TARGET_MS 20

/*
 * The key change's session settings on the DDL connection: its index
 * builds and validations run without parallel workers, so they take one
 * core, not every core, from the clients (bench/keychange --lock-samples:
 * a parallel CREATE INDEX CONCURRENTLY left the load's sessions waiting for
 * the CPU). Session-wide, so the index and validation steps migrate.c runs
 * on the same connection after the backfill have them too.
 */
static bool session_settings(struct migration *a)
{
	struct db_error err;

	if (db_exec(a->ddl,
		    "SET max_parallel_maintenance_workers = 0; SET max_parallel_workers_per_gather = 0",
		    &err))
		return true;
	report_error("cannot set the key change's session settings", err.msg, NULL);
	return false;
}

static bool shadow(struct migration *a, const struct plan_step *st)
{
	struct cutover_stmt stmt = { st->sql, st->table, st->other, st->lock, st->hold };
	char *journal = journal_step_done_sql(a->id, st->seq);
	const char *journal_sql[1] = { journal };
	struct cutover_job job = { .what = "keychange",
				   .stmts = &stmt,
				   .n_stmts = 1,
				   .journal_sql = journal_sql,
				   .n_journal_sql = 1,
				   .migration_id = a->id,
				   .refresh_statements = true /* SELECT * gains the shadow columns */ };
	struct cutover_result res;
	char name[2 * PLAN_NAME_MAX + 8];
	bool ok;

	qname_format(&st->table, name, sizeof(name));
	report_event("prepare", NULL, "prepare: bigint shadow columns and their trigger on %s", name);
	ok = cutover_run(a->ddl, a->observer, a->o, &job, &res);
	if (ok)
		report_event("prepare", NULL, "prepare: shadow columns on %s added; traffic held %lld ms",
			     name, (long long)res.held_ms);
	else
		report_error(
			"cannot add the shadow columns", res.why,
			"see the blocking sessions above; retry later, or raise --max-stall or --attempts");
	free(journal);
	return ok;
}

/* The table's size in pages and its rows per page (estimated: reltuples / relpages). */
static bool table_pages(struct migration *a, const struct plan_step *st, long long *pages, double *per_page)
{
	struct catalog_relation rel;
	const char *params[1] = { rel.oid };
	struct db_error err;
	PGresult *r;

	if (catalog_relation(a->observer, &st->table, &rel, &err) != CATALOG_FOUND) {
		report_error("cannot find the table to backfill", err.msg, NULL);
		return false;
	}
	r = db_query(a->observer,
		     "SELECT pg_catalog.pg_relation_size($1::oid) / current_setting('block_size')::int, "
		     "CASE WHEN relpages > 0 AND reltuples > 0 THEN reltuples / relpages ELSE 0 END "
		     "FROM pg_catalog.pg_class WHERE oid = $1::oid",
		     1, params, &err);
	if (!r || PQntuples(r) != 1) {
		PQclear(r);
		report_error("cannot read the size of the table to backfill", err.msg, NULL);
		return false;
	}
	*pages = atoll(PQgetvalue(r, 0, 0));
	*per_page = atof(PQgetvalue(r, 0, 1));
	PQclear(r);
	return true;
}

/*
 * One batch: the pages [from, to) whose shadow columns differ, and the
 * journal's position, in one transaction. Returns the rows written, or -1
 * ('err': a lock wait that ran out, a deadlock or a serialization failure
 * may be tried again). 'held_ms': from the UPDATE to the end of the
 * transaction, the time its row locks were held (or waited for).
 */
static long long batch(struct migration *a, const struct plan_step *st, long long from, long long to,
		       int64_t *held_ms, struct db_error *err)
{
	char lo[32], hi[32], begin[64];
	const char *params[2] = { lo, hi };
	long long rows = -1;
	int64_t t0;
	PGresult *r;

	snprintf(lo, sizeof(lo), "(%lld,0)", from);
	snprintf(hi, sizeof(hi), "(%lld,0)", to);
	snprintf(begin, sizeof(begin), "BEGIN; SET LOCAL lock_timeout = %d", BATCH_LOCK_TIMEOUT_MS);
	*held_ms = 0;
	if (!db_exec(a->ddl, begin, err)) {
		db_rollback(a->ddl); /* the SET may have failed inside the transaction BEGIN opened */
		return -1;
	}
	t0 = clock_mono_ms();
	if ((r = db_query(a->ddl, st->sql, 2, params, err)) != NULL) {
		rows = atoll(PQcmdTuples(r));
		PQclear(r);
		if (!journal_backfill_advance(a->ddl, a->id, st->seq, to, rows, err) ||
		    !db_exec(a->ddl, "COMMIT", err))
			rows = -1;
	}
	if (rows < 0)
		db_rollback(a->ddl);
	*held_ms = clock_mono_ms() - t0;
	return rows;
}

/* How often the lag is read again while a standby is too far behind. */
#define LAG_POLL_MS 200

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void lag_unreadable(const struct db_error *err)
{
	report_error("--max-lag: cannot read the standbys' replication lag", err->msg,
		     "grant pg_monitor to the role pgvalve connects as, or leave --max-lag out");
}

/*
 * --max-lag with a role that may not read the standbys' positions: found
 * before the first shadow column is added, so the step fails with nothing
 * of the change applied (docs/architecture.md §4.9).
 */
static bool lag_readable(struct migration *a)
{
	struct kc_lag lag;
	struct keychange_lag_reading rd;
	struct db_error err;

	if (a->o->max_lag_ms <= 0)
		return true;
	keychange_lag_init(&lag);
	if (keychange_lag_read(a->observer, &lag, &rd, &err))
		return true;
	lag_unreadable(&err);
	return false;
}

/*
 * --max-lag: before a batch (no lock held), waits while a standby replays
 * further behind than that. No standbys: nothing to wait for.
 */
static bool throttle(struct migration *a, struct kc_lag *lag, const char *name, bool *told)
{
	double max_s = (double)a->o->max_lag_ms / 1000.0;
	struct keychange_lag_reading rd;
	struct db_error err;
	int64_t since = -1;

	if (a->o->max_lag_ms <= 0)
		return true;
	for (;;) {
		if (!keychange_lag_read(a->observer, lag, &rd, &err)) {
			lag_unreadable(&err);
			return false;
		}
		if (rd.standbys == 0 && !*told)
			report_event("backfill", NULL,
				     "backfill of %s: no standby replays from this server; --max-lag has "
				     "nothing to wait for",
				     name);
		*told = true;
		if (rd.standbys == 0 || rd.lag_ms <= a->o->max_lag_ms)
			break;
		if (since < 0) {
			since = clock_mono_ms();
			report_event("backfill", NULL,
				     "backfill of %s waits: standby %s replays %.1f s behind (%lld bytes), "
				     "over --max-lag %.1f s",
				     name, rd.standby, (double)rd.lag_ms / 1000.0, rd.behind_bytes, max_s);
		}
		report_progress("backfill %s: waiting for standby %s, %.1f s behind (--max-lag %.1f s), "
				"waited %.0f s",
				name, rd.standby, (double)rd.lag_ms / 1000.0, max_s,
				(double)(clock_mono_ms() - since) / 1000.0);
		sleep_ms(LAG_POLL_MS);
	}
	if (since >= 0)
		report_event("backfill", NULL,
			     "backfill of %s resumes: standby %s replays %.1f s behind, within --max-lag "
			     "(waited %.1f s)",
			     name, rd.standby, (double)rd.lag_ms / 1000.0,
			     (double)(clock_mono_ms() - since) / 1000.0);
	return true;
}

/* Whether a failed batch may be tried again: lock_timeout, deadlock, serialization failure. */
static bool retryable(const struct db_error *err)
{
	return strcmp(err->sqlstate, "55P03") == 0 || strcmp(err->sqlstate, "40P01") == 0 ||
		strcmp(err->sqlstate, "40001") == 0;
}

/*
 * The next batch's pages: scaled so it takes about BATCH_TARGET_MS at the
 * pace of the last one, by at most half or double at a time (one batch
 * slowed by the host does not collapse the size), within --backfill-batch
 * rows ('max_step' pages).
 */
static long long next_step(long long step, long long max_step, int64_t took_ms)
{
	long long want = took_ms > 0 ? step * BATCH_TARGET_MS / took_ms : step * 2;

	if (want < step / 2)
		want = step / 2;
	if (want > step * 2)
		want = step * 2;
	return want < 1 ? 1 : want > max_step ? max_step : want;
}

static bool backfill(struct migration *a, const struct plan_step *st)
{
	struct journal_backfill pos;
	struct db_error err;
	char name[2 * PLAN_NAME_MAX + 8];
	long long pages, step, max_step, rows = 0, first;
	double per_page;
	int64_t started = clock_mono_ms();
	int failures = 0;
	bool found, lag_told = false;
	struct kc_lag lag;

	qname_format(&st->table, name, sizeof(name));
	if (!journal_backfill_read(a->ddl, a->id, st->seq, &pos, &found, &err)) {
		report_error("cannot read the backfill's position from the journal", err.msg, NULL);
		return false;
	}
	if (!table_pages(a, st, &pages, &per_page))
		return false;
	if (!found) {
		/* every row older than the trigger is in these pages: later rows are written with it */
		pos.end_block = pages;
		if (!journal_backfill_start(a->ddl, a->id, st->seq, pages, &err)) {
			report_error("cannot record the backfill in the journal", err.msg, NULL);
			return false;
		}
	} else if (pos.next_block > 0) {
		report_event("backfill", NULL, "backfill of %s resumes at page %lld of %lld (%lld rows done)",
			     name, pos.next_block, pos.end_block, pos.rows_done);
	}
	max_step = per_page >= 1 ? (long long)(a->o->backfill_batch / per_page) : a->o->backfill_batch / 100;
	if (max_step < 1)
		max_step = 1;
	step = max_step;
	first = pos.next_block;
	keychange_lag_init(&lag);
	while (pos.next_block < pos.end_block) {
		long long to = pos.next_block + step < pos.end_block ? pos.next_block + step : pos.end_block;
		long long n;
		int64_t took;
		double elapsed_s;

		if (!throttle(a, &lag, name, &lag_told))
			return false;
		n = batch(a, st, pos.next_block, to, &took, &err);

		if (n < 0) {
			if (!retryable(&err) || ++failures >= a->o->attempts * BATCH_LOCK_RETRIES) {
				report_error("a backfill batch failed", err.msg, NULL);
				return false;
			}
			/* a writer holds one of its rows: fewer pages, after a pause as long as the wait */
			step = step / 2 > 0 ? step / 2 : 1;
			if (failures % BATCH_LOCK_RETRIES == 0)
				report_warning("backfill batches keep waiting for a row lock or deadlocking; "
					       "trying again",
					       err.msg);
			sleep_ms(took);
			continue;
		}
		failures = 0;
		pos.next_block = to;
		rows += n;
		step = next_step(step, max_step, took);
		elapsed_s = (double)(clock_mono_ms() - started) / 1000.0;
		if (a->o->backfill_rate > 0 && elapsed_s < (double)rows / a->o->backfill_rate) {
			sleep_ms((int64_t)(((double)rows / a->o->backfill_rate - elapsed_s) * 1000.0));
			elapsed_s = (double)(clock_mono_ms() - started) / 1000.0;
		}
		/* the estimate: the pages left at the pace of the pages done in this run */
		report_progress("backfill %s: page %lld of %lld, %lld rows, %.0f rows/s, ~%.0f s left", name,
				pos.next_block, pos.end_block, rows,
				elapsed_s > 0 ? (double)rows / elapsed_s : 0.0,
				elapsed_s * (double)(pos.end_block - pos.next_block) /
					(double)(pos.next_block - first));
	}
	report_progress_done();
	report_event("backfill", NULL, "backfill of %s done: %lld rows in %.1f s", name, rows,
		     (double)(clock_mono_ms() - started) / 1000.0);
	{
		char *done = journal_step_done_sql(a->id, st->seq);
		bool ok = db_exec(a->ddl, done, &err);

		free(done);
		if (!ok)
			report_error("cannot update the journal", err.msg, NULL);
		return ok;
	}
}

bool keychange_prepare_step(struct migration *a, const struct plan_step *st)
{
	if (!session_settings(a))
		return false;
	if (st->kind == STEP_KEYCHANGE_SHADOW)
		return lag_readable(a) && shadow(a, st);
	return backfill(a, st);
}
