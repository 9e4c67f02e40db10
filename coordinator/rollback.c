/*
 * Rollback (see rollback.h). What to undo comes from the journal compared
 * with the catalog (journal_undo_statements: built on the server, nothing
 * quoted by hand); this file runs it through the hold path.
 */
#include "rollback.h"

#include <stdio.h>
#include <stdlib.h>

#include "cutover.h"
#include "journal.h"
#include "journal_keychange.h"
#include "keychange.h"
#include "report.h"
#include "xalloc.h"

/* Drops, concurrently and holding nothing, the indexes the migration built (journal_built_indexes). */
static void drop_built_indexes(PGconn *ddl, int64_t id)
{
	struct db_error err;
	char **drops;
	int n;

	if (!journal_built_indexes(ddl, id, &drops, &n, &err)) {
		report_warning("could not look for indexes the migration built", err.msg);
		return;
	}
	for (int i = 0; i < n; i++) {
		report_event("rollback_index", NULL, "  %s", drops[i]);
		if (!db_exec(ddl, drops[i], &err))
			report_warning("could not drop an index the migration built (drop it by hand)",
				       err.msg);
	}
	journal_strings_free(drops, n);
}

/*
 * Builds again, concurrently and holding nothing, the user's indexes that
 * ADD CONSTRAINT … USING INDEX took over (journal_absorbed_indexes), before
 * the hold path drops those constraints and the indexes with them. False,
 * with 'why' filled, when one could not be built: the rollback stops there
 * rather than leave the table without the user's index.
 */
static bool restore_absorbed_indexes(PGconn *ddl, int64_t id, char *why, size_t cap)
{
	struct journal_index_restore *x;
	struct db_error err;
	bool ok = true;
	int n;

	if (!journal_absorbed_indexes(ddl, id, &x, &n, &err)) {
		snprintf(why, cap, "cannot read which indexes to restore: %.700s", err.msg);
		return false;
	}
	for (int i = 0; i < n && ok; i++) {
		if (x[i].drop) {
			report_event("rollback_index", NULL, "  %s (left invalid by an earlier attempt)",
				     x[i].drop);
			ok = db_exec(ddl, x[i].drop, &err);
		}
		if (ok) {
			report_event("rollback_index", NULL, "  restoring index %s: %s", x[i].name,
				     x[i].create);
			ok = db_exec(ddl, x[i].create, &err);
		}
		if (!ok)
			snprintf(why, cap, "cannot restore index %.200s: %.700s", x[i].name, err.msg);
	}
	journal_index_restores_free(x, n);
	return ok;
}

static bool validate_restored(PGconn *ddl, const struct journal_undo *u, int n, struct db_error *err)
{
	for (int i = 0; i < n; i++) {
		if (!u[i].validate)
			continue;
		report_event("rollback_validate", NULL, "  validating restored constraint: %s",
			     u[i].validate);
		if (!db_exec(ddl, u[i].validate, err))
			return false;
	}
	return true;
}

bool rollback_run(PGconn *ddl, PGconn *observer, const struct options *o, int64_t id, const char *reason)
{
	/*
	 * The undo transaction leaves the state rolling_back: the migration is
	 * rolled back only once the restored constraints are validated too, so a
	 * coordinator killed during that validation leaves a journal that
	 * `recover --rollback` finishes (a constraint restored NOT VALID prints
	 * another definition than its snapshot, so it is redone).
	 */
	char *state_sql = journal_state_sql(id, MIG_ROLLING_BACK);
	const char *journal[1] = { state_sql };
	struct journal_undo *undo = NULL;
	struct cutover_stmt *stmts = NULL;
	struct cutover_result res = { 0 };
	struct cutover_job job = {
		.what = "rollback", .journal_sql = journal, .n_journal_sql = 1, .migration_id = id
	};
	struct db_error err;
	char why[1536];
	bool ok = false, swapped = false;
	int n = 0;

	report_event("rollback", NULL, "migration %lld: rolling back (%s)", (long long)id, reason);
	/* a key type change after its swap: swapped back first, or refused with the state as it is */
	if (!journal_keychange_swapped(ddl, id, &swapped, &err))
		goto db_failed;
	if (swapped && !keychange_unswap(ddl, observer, o, id, res.why, sizeof(res.why))) {
		report_error("cannot roll back: the key type change could not be swapped back", res.why,
			     "nothing is lost: the old columns (*_" KEYCHANGE_OLD_SUFFIX
			     ") still follow the new ones; `rollback` again retries, `pgvalve finalize ID` "
			     "ends the change");
		goto done;
	}
	if (!journal_set_state(ddl, id, MIG_ROLLING_BACK, reason, &err))
		goto db_failed;
	if (!restore_absorbed_indexes(ddl, id, res.why, sizeof(res.why))) {
		snprintf(why, sizeof(why), "%s; the rollback stopped before changing a constraint: %s",
			 reason, res.why);
		report_error("the rollback could not restore an index", res.why,
			     "the journal says rolling_back: `pgvalve recover --rollback` tries again");
		goto record;
	}
	/* a key type change: its shadow columns go first (keychange_swap.c) */
	if (!keychange_rollback(ddl, observer, o, id, res.why, sizeof(res.why))) {
		snprintf(why, sizeof(why), "%s; %s", reason, res.why);
		report_error("the key type change was not rolled back", res.why,
			     "the journal says rolling_back: see `pgvalve status ID`");
		goto record;
	}
	if (!journal_undo_statements(observer, id, &undo, &n, &err))
		goto db_failed;
	stmts = xcalloc((size_t)n + 1, sizeof(*stmts));
	for (int i = 0; i < n; i++) {
		if (undo[i].sql[0] == '\0')
			continue; /* only its VALIDATE is left (validate_restored) */
		/*
		 * Dropping a constraint takes ACCESS EXCLUSIVE (a foreign key's on both
		 * tables), and so does re-adding a CHECK: every undo statement is
		 * treated as the strongest, with every statement held.
		 */
		stmts[job.n_stmts++] = (struct cutover_stmt){ .sql = undo[i].sql,
							      .table = undo[i].table,
							      .other = undo[i].other,
							      .lock = LOCK_ACCESS_EXCLUSIVE,
							      .hold = HOLD_ALL_NEEDED };
		report_event("rollback_step", NULL, "  %s", undo[i].sql);
	}
	job.stmts = stmts;
	if (job.n_stmts == 0) {
		if (!db_exec(ddl, state_sql, &err))
			goto db_failed;
	} else if (!cutover_run(ddl, observer, o, &job, &res)) {
		snprintf(why, sizeof(why),
			 "%s; the rollback could not take its locks after %d attempt(s): %s", reason,
			 res.attempts, res.why);
		report_error("the rollback could not take its locks", res.why,
			     "the journal says rolling_back: `pgvalve recover --rollback` tries again");
		goto record;
	} else {
		report_event("rolled_back", NULL,
			     "migration %lld: %d statement(s) rolled back in one transaction "
			     "(held %lld ms, %d attempt(s))",
			     (long long)id, job.n_stmts, (long long)res.held_ms, res.attempts);
	}
	drop_built_indexes(ddl, id);
	if (!validate_restored(ddl, undo, n, &err)) {
		report_warning(
			"a restored constraint did not validate (it stays NOT VALID: enforced for new rows)",
			err.msg);
	}
	if (!journal_set_state(ddl, id, MIG_ROLLED_BACK, reason, &err))
		goto db_failed;
	ok = true;
	goto done;
record:
	/* Exit 4 promises that the journal says why: the state stays rolling_back, with the reason. */
	if (!journal_set_state(ddl, id, MIG_ROLLING_BACK, why, &err))
		report_warning("cannot record in the journal why the rollback stopped", err.msg);
	goto done;
db_failed:
	report_error("rollback failed", err.msg,
		     "`pgvalve status ID` shows where it stopped; `pgvalve recover --rollback` retries");
done:
	free(state_sql);
	free(stmts);
	journal_undo_free(undo, n);
	return ok;
}
