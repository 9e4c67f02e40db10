/*
 * After the key type change's swap (docs/architecture.md §4.9): finalize
 * drops what the change kept so it could be taken back — the old columns
 * (with the indexes on them), the triggers that keep them following, and
 * the trigger functions — in one transaction through the hold path (DROP
 * COLUMN takes ACCESS EXCLUSIVE briefly; nothing is rewritten). The swap
 * itself runs as ordinary finalize-phase steps (keychange_plan.c writes them).
 * A rollback drops the shadow columns the same way; after the swap it first
 * swaps back (keychange_unswap): the old key's unique index built
 * concurrently, the old columns' NOT NULL checks and foreign keys NOT VALID
 * then validated, then the swap mirrored under an all hold (keychange_plan.c
 * wrote those statements into the journal's plan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "cutover.h"
#include "journal.h"
#include "journal_keychange.h"
#include "keychange.h"
#include "migrate.h"
#include "quote.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"

/*
 * What drops the change's columns named "*_<suffix>" from table 'q', its
 * trigger and the trigger's function: after the swap the old columns
 * (finalize), before it the shadow columns (a rollback). NULL (reported) on error.
 */
static char *drop_sql(PGconn *observer, const struct qname *q, const char *suffix)
{
	struct catalog_relation rel;
	const char *params[2] = { rel.oid, NULL };
	struct strbuf b = { 0 };
	struct db_error err;
	char fn[32];
	PGresult *r;
	bool first = true;

	if (catalog_relation(observer, q, &rel, &err) != CATALOG_FOUND) {
		report_error("cannot find a table of the key change", err.msg, NULL);
		return NULL;
	}
	params[1] = suffix;
	r = db_query(
		observer,
		"SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attnum > 0 AND "
		"NOT attisdropped AND right(attname, length($2) + 1) = '_' || $2 ORDER BY attnum",
		2, params, &err);
	if (!r) {
		report_error("cannot read the old columns of the key change", err.msg, NULL);
		return NULL;
	}
	snprintf(fn, sizeof(fn), "keychange_%s", rel.oid);
	strbuf_put(&b, "DROP TRIGGER IF EXISTS ");
	quote_append_ident(&b, KEYCHANGE_TRIGGER);
	strbuf_put(&b, " ON ");
	quote_append_qname(&b, q->schema, q->name);
	strbuf_put(&b, "; ");
	for (int i = 0; i < PQntuples(r); i++) {
		if (first) {
			strbuf_put(&b, "ALTER TABLE ");
			quote_append_qname(&b, q->schema, q->name);
		}
		strbuf_put(&b, first ? " DROP COLUMN " : ", DROP COLUMN ");
		quote_append_ident(&b, PQgetvalue(r, i, 0));
		first = false;
	}
	if (!first)
		strbuf_put(&b, "; ");
	strbuf_put(&b, "DROP FUNCTION IF EXISTS ");
	quote_append_qname(&b, "pgvalve", fn);
	strbuf_put(&b, "()");
	PQclear(r);
	return strbuf_take(&b);
}

int keychange_finalize(struct migration *a)
{
	struct cutover_stmt *stmts = xcalloc((size_t)a->p.n_steps + 1, sizeof(*stmts));
	char **sqls = xcalloc((size_t)a->p.n_steps + 1, sizeof(*sqls));
	char *journal = journal_keychange_finalized_sql(a->id);
	const char *journal_sql[1] = { journal };
	struct cutover_job job = {
		.what = "finalize", .journal_sql = journal_sql, .n_journal_sql = 1, .refresh_statements = true
	};
	struct cutover_result res;
	struct db_error err;
	int n = 0, rc = EXIT_ATTENTION;
	bool waiting;

	job.migration_id = a->id;
	if (!journal_keychange_waiting(a->ddl, a->id, &waiting, &err)) {
		report_error("cannot read the journal", err.msg, NULL);
		goto done;
	}
	if (!waiting) {
		report_error("this migration is not a committed key type change waiting for finalize", NULL,
			     "`pgvalve status ID` says where it is");
		rc = EXIT_REFUSED;
		goto done;
	}
	for (int i = 0; i < a->p.n_steps; i++) {
		const struct plan_step *st = &a->p.steps[i];
		bool seen = st->kind != STEP_KEYCHANGE_SWAP;

		for (int j = 0; j < n && !seen; j++)
			seen = strcmp(stmts[j].table.schema, st->table.schema) == 0 &&
				strcmp(stmts[j].table.name, st->table.name) == 0;
		if (seen)
			continue;
		sqls[n] = drop_sql(a->observer, &st->table, KEYCHANGE_OLD_SUFFIX);
		if (!sqls[n])
			goto done;
		stmts[n] = (struct cutover_stmt){
			sqls[n], st->table, { "", "" }, LOCK_ACCESS_EXCLUSIVE, HOLD_ALL_NEEDED
		};
		report_event("finalize", NULL, "finalize: %s", sqls[n]);
		n++;
	}
	job.stmts = stmts;
	job.n_stmts = n;
	if (!cutover_run(a->ddl, a->observer, a->o, &job, &res)) {
		report_error(
			"the key change could not be finalized", res.why,
			"see the blocking sessions above; retry later, or raise --max-stall or --attempts");
		goto done;
	}
	report_event(
		"finalized", NULL,
		"migration %lld finalized: the old columns and their triggers are gone; traffic held %lld ms",
		(long long)a->id, (long long)res.held_ms);
	rc = EXIT_DONE;
done:
	for (int i = 0; i < n; i++)
		free(sqls[i]);
	free(sqls);
	free(stmts);
	free(journal);
	return rc;
}

bool keychange_rollback(PGconn *ddl, PGconn *observer, const struct options *o, int64_t id, char *why,
			size_t cap)
{
	struct journal_step *steps = NULL;
	struct cutover_stmt *stmts = NULL;
	char **sqls = NULL;
	struct cutover_job job = { .what = "rollback", .migration_id = id, .refresh_statements = true };
	struct cutover_result res;
	struct db_error err;
	bool ok = false;
	int n = 0, k = 0;

	if (!journal_read_steps(ddl, id, &steps, &n, &err)) {
		snprintf(why, cap, "cannot read the journal: %.700s", err.msg);
		return false;
	}
	stmts = xcalloc((size_t)n + 1, sizeof(*stmts));
	sqls = xcalloc((size_t)n + 1, sizeof(*sqls));
	for (int i = 0; i < n; i++) {
		const struct plan_step *st = &steps[i].step;

		if (st->kind != STEP_KEYCHANGE_SHADOW)
			continue;
		/* not done: its transaction never committed, so nothing of it is there */
		if (!steps[i].done)
			continue;
		sqls[k] = drop_sql(observer, &st->table, KEYCHANGE_NEW_SUFFIX);
		if (!sqls[k]) {
			snprintf(why, cap, "cannot read the shadow columns to drop");
			goto done;
		}
		stmts[k] = (struct cutover_stmt){
			sqls[k], st->table, { "", "" }, LOCK_ACCESS_EXCLUSIVE, HOLD_ALL_NEEDED
		};
		report_event("rollback_step", NULL, "  %s", sqls[k]);
		k++;
	}
	ok = true;
	if (k == 0)
		goto done;
	job.stmts = stmts;
	job.n_stmts = k;
	ok = cutover_run(ddl, observer, o, &job, &res);
	if (!ok)
		snprintf(why, cap, "the shadow columns could not be dropped after %d attempt(s): %.700s",
			 res.attempts, res.why);
done:
	for (int i = 0; i < k; i++)
		free(sqls[i]);
	free(sqls);
	free(stmts);
	journal_steps_free(steps, n);
	return ok;
}

/* Statements of a swap-back JSON array as hold-path statements (pointing into 'arr'). */
static int held_statements(const cJSON *arr, struct cutover_stmt *out, int cap)
{
	const cJSON *o;
	int n = 0;

	cJSON_ArrayForEach(o, arr)
	{
		const char *f[5] = { "sql", "schema", "table", "other_schema", "other" };
		const char *v[5];

		if (n == cap)
			break;
		for (int i = 0; i < 5; i++) {
			const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, f[i]);

			v[i] = cJSON_IsString(x) ? x->valuestring : "";
		}
		out[n] = (struct cutover_stmt){ .sql = v[0],
						.lock = LOCK_ACCESS_EXCLUSIVE,
						.hold = HOLD_ALL_NEEDED };
		snprintf(out[n].table.schema, sizeof(out[n].table.schema), "%s", v[1]);
		snprintf(out[n].table.name, sizeof(out[n].table.name), "%s", v[2]);
		snprintf(out[n].other.schema, sizeof(out[n].other.schema), "%s", v[3]);
		snprintf(out[n].other.name, sizeof(out[n].other.name), "%s", v[4]);
		n++;
	}
	return n;
}

/* One key change swapped back ('u': one element of the plan's "keychange_undo"). */
static bool unswap_one(PGconn *ddl, PGconn *observer, const struct options *o, int64_t id, int key,
		       const cJSON *u, char *why, size_t cap)
{
	const cJSON *check = cJSON_GetObjectItemCaseSensitive(u, "check"), *x;
	struct cutover_stmt stmts[256];
	char *journal = journal_keychange_unswapped_sql(id, key);
	const char *journal_sql[1] = { journal };
	struct cutover_job job = {
		.what = "rollback", .stmts = stmts, .migration_id = id, .refresh_statements = true
	};
	struct cutover_result res;
	struct db_error err;
	PGresult *r;
	bool ok = false;

	r = cJSON_IsString(check) ? db_query(observer, check->valuestring, 0, NULL, &err) : NULL;
	if (!r) {
		snprintf(why, cap, "cannot count the rows the old columns cannot hold: %.600s", err.msg);
		goto done;
	}
	if (atoll(PQgetvalue(r, 0, 0)) > 0) {
		snprintf(
			why, cap,
			"%s row(s) written since the swap hold keys beyond the old type: they cannot go back "
			"(finalize the change instead)",
			PQgetvalue(r, 0, 0));
		PQclear(r);
		goto done;
	}
	PQclear(r);
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(u, "indexes"))
	{
		const cJSON *drop = cJSON_GetArrayItem(x, 0), *create = cJSON_GetArrayItem(x, 1);

		report_event("rollback_index", NULL, "  %s", create->valuestring);
		if (!db_exec(ddl, drop->valuestring, &err) || !db_exec(ddl, create->valuestring, &err)) {
			snprintf(why, cap, "cannot build the old key's index again: %.600s", err.msg);
			goto done;
		}
	}
	job.n_stmts = held_statements(cJSON_GetObjectItemCaseSensitive(u, "held"), stmts, 256);
	for (int i = 0; i < job.n_stmts; i++)
		report_event("rollback_step", NULL, "  %s", stmts[i].sql);
	if (job.n_stmts && !cutover_run(ddl, observer, o, &job, &res)) {
		snprintf(why, cap, "the old columns' constraints could not be added: %.600s", res.why);
		goto done;
	}
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(u, "validate"))
	{
		report_event("rollback_validate", NULL, "  %s", x->valuestring);
		if (!db_exec(ddl, x->valuestring, &err)) {
			snprintf(why, cap, "an old column's constraint did not validate: %.600s", err.msg);
			goto done;
		}
	}
	job.n_stmts = held_statements(cJSON_GetObjectItemCaseSensitive(u, "swap"), stmts, 256);
	job.journal_sql = journal_sql;
	job.n_journal_sql = 1;
	for (int i = 0; i < job.n_stmts; i++)
		report_event("rollback_step", NULL, "  %s", stmts[i].sql);
	if (!cutover_run(ddl, observer, o, &job, &res)) {
		snprintf(why, cap, "the swap back could not take its locks: %.600s", res.why);
		goto done;
	}
	report_event("swapped_back", NULL, "the key type change is swapped back; traffic held %lld ms",
		     (long long)res.held_ms);
	ok = true;
done:
	free(journal);
	return ok;
}

bool keychange_unswap(PGconn *ddl, PGconn *observer, const struct options *o, int64_t id, char *why,
		      size_t cap)
{
	struct journal_migration m = { 0 };
	struct db_error err;
	cJSON *plan = NULL;
	const cJSON *u;
	bool found = false, ok = true;
	int key = 0;

	if (!journal_read_migration(ddl, id, &m, &found, &err) || !found) {
		snprintf(why, cap, "cannot read the migration from the journal: %.600s", err.msg);
		journal_migration_free(&m);
		return false;
	}
	plan = cJSON_Parse(m.plan_json ? m.plan_json : "");
	/* each key in its own swap back; one an interrupted rollback already took back is skipped */
	cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(plan, "keychange_undo"))
	{
		bool done = false;

		if (!journal_keychange_unswapped(ddl, id, key, &done, &err)) {
			snprintf(why, cap, "cannot read the journal's swaps back: %.600s", err.msg);
			ok = false;
			break;
		}
		if (!done && !(ok = unswap_one(ddl, observer, o, id, key, u, why, cap)))
			break;
		key++;
	}
	cJSON_Delete(plan);
	journal_migration_free(&m);
	return ok;
}
