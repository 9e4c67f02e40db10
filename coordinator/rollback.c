/*
 * Rollback (see rollback.h). Every statement is built on the server with
 * format('%I'), from oids and from definitions PostgreSQL itself printed,
 * so nothing is quoted by hand here.
 */
#include "rollback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cutover.h"
#include "journal.h"
#include "report.h"

/*
 * The statements, one row each: sql, table schema, table name, other schema,
 * other name, hold ('all'), restore ('t' when it re-adds a prior FK/CHECK
 * NOT VALID that must be validated after: then the validate SQL is column 7).
 * Drops of what the migration added come first, then restores.
 */
static const char statements_sql[] =
	/* Before its cutover committed a migration changed no constraint: nothing to undo. */
	"WITH plan AS (SELECT plan FROM pgvalve.migrations WHERE id = $1::bigint AND cutover_at IS NOT "
	"NULL), "
	"added AS (SELECT c ->> 'type' AS type, c ->> 'name' AS name, c ->> 'column' AS col, "
	"                 (SELECT cl.oid FROM pg_class cl JOIN pg_namespace ns ON ns.oid = cl.relnamespace "
	"                  WHERE cl.relname = c ->> 'table_name' AND CASE WHEN coalesce(c ->> "
	"'table_schema', '') = '' "
	"                  THEN pg_table_is_visible(cl.oid) ELSE ns.nspname = c ->> 'table_schema' END) AS "
	"rel, ord "
	"          FROM plan, jsonb_array_elements(plan -> 'constraints') WITH ORDINALITY AS x (c, ord)), "
	"drops AS ("
	/* each added constraint (and NOT NULL's helper CHECK, named like it) that exists now */
	"  SELECT 1 AS phase, ord, format('ALTER TABLE %s DROP CONSTRAINT %I', a.rel::regclass, con.conname) "
	"AS sql, "
	"         a.rel, con.confrelid AS other, NULL::text AS validate "
	"  FROM added a JOIN pg_constraint con ON con.conrelid = a.rel AND con.conname = a.name "
	"  WHERE NOT EXISTS (SELECT 1 FROM pgvalve.prior_constraints p WHERE p.migration_id = $1::bigint "
	"                    AND p.\"table\" = a.rel::regclass::text AND p.name = con.conname "
	"                    AND p.definition = pg_get_constraintdef(con.oid)) "
	"  UNION ALL "
	/* NOT NULL the migration set on a column that was nullable */
	"  SELECT 2, ord, format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', a.rel::regclass, a.col), "
	"a.rel, 0, NULL "
	"  FROM added a JOIN pg_attribute att ON att.attrelid = a.rel AND att.attname = a.col AND "
	"att.attnotnull "
	"  WHERE a.type = 'not null' AND NOT EXISTS (SELECT 1 FROM pgvalve.prior_constraints p "
	"        WHERE p.migration_id = $1::bigint AND p.\"table\" = a.rel::regclass::text AND p.contype = "
	"'n' "
	"        AND p.name = a.col) "
	"), restores AS ("
	/* prior constraints that are gone, or exist with another definition (then dropped above) */
	"  SELECT 3 AS phase, 0 AS ord, "
	"         format('ALTER TABLE %s ADD CONSTRAINT %I %s%s', p.\"table\", p.name, p.definition, "
	"                CASE WHEN p.contype IN ('f', 'c') AND p.validated THEN ' NOT VALID' ELSE '' END) AS "
	"sql, "
	"         p.\"table\"::regclass::oid AS rel, "
	"         CASE WHEN p.contype = 'f' THEN (regexp_match(p.definition, 'REFERENCES "
	"(.+?)\\('))[1]::regclass::oid "
	"              ELSE 0 END AS other, "
	"         CASE WHEN p.contype IN ('f', 'c') AND p.validated "
	"              THEN format('ALTER TABLE %s VALIDATE CONSTRAINT %I', p.\"table\", p.name) END AS "
	"validate "
	"  FROM pgvalve.prior_constraints p "
	"  WHERE p.migration_id = $1::bigint AND p.contype NOT IN ('n', 'i') AND to_regclass(p.\"table\") IS "
	"NOT NULL "
	"    AND EXISTS (SELECT 1 FROM plan) "
	"    AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conrelid = p.\"table\"::regclass "
	"                    AND con.conname = p.name AND pg_get_constraintdef(con.oid) = p.definition) "
	") "
	"SELECT s.sql, tn.nspname, t.relname, coalesce(onn.nspname, ''), coalesce(o.relname, ''), s.validate "
	"FROM (SELECT * FROM drops UNION ALL SELECT * FROM restores) s "
	"JOIN pg_class t ON t.oid = s.rel JOIN pg_namespace tn ON tn.oid = t.relnamespace "
	"LEFT JOIN pg_class o ON o.oid = s.other AND s.other <> 0 LEFT JOIN pg_namespace onn ON onn.oid = "
	"o.relnamespace "
	"ORDER BY s.phase, s.ord";

/*
 * Indexes the migration's prepare steps built that were not there at the
 * snapshot and back no constraint any more: dropped concurrently, no hold.
 */
static const char built_indexes_sql[] =
	"SELECT format('DROP INDEX CONCURRENTLY %s', ic.oid::regclass) "
	"FROM pgvalve.steps s "
	"JOIN pg_class ic ON ic.relname = s.index_name AND ic.relkind = 'i' "
	"JOIN pg_index i ON i.indexrelid = ic.oid "
	"JOIN pg_class t ON t.oid = i.indrelid AND t.relname = s.table_name "
	"WHERE s.migration_id = $1::bigint AND s.kind = 'create_index' AND s.index_name <> '' "
	"  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ic.oid) "
	"  AND NOT EXISTS (SELECT 1 FROM pgvalve.prior_constraints p WHERE p.migration_id = s.migration_id "
	"                  AND p.contype = 'i' AND p.name = ic.relname AND p.\"table\" = "
	"t.oid::regclass::text)";

static void drop_built_indexes(PGconn *ddl, const char *const *params)
{
	struct db_error err;
	PGresult *r = db_query(ddl, built_indexes_sql, 1, params, &err);

	for (int i = 0; r && i < PQntuples(r); i++) {
		report_event("rollback_index", NULL, "  %s", PQgetvalue(r, i, 0));
		if (!db_exec(ddl, PQgetvalue(r, i, 0), &err))
			report_warning("could not drop an index the migration built (drop it by hand)",
				       err.msg);
	}
	if (!r)
		report_warning("could not look for indexes the migration built", err.msg);
	PQclear(r);
}

static bool validate_restored(PGconn *ddl, PGresult *r, struct db_error *err)
{
	for (int i = 0; i < PQntuples(r); i++) {
		if (PQgetisnull(r, i, 5))
			continue;
		report_event("rollback_validate", NULL, "  validating restored constraint: %s",
			     PQgetvalue(r, i, 5));
		if (!db_exec(ddl, PQgetvalue(r, i, 5), err))
			return false;
	}
	return true;
}

bool rollback_run(PGconn *ddl, PGconn *observer, const struct options *o, int64_t id, const char *reason)
{
	char idtext[32], *state_sql = NULL;
	const char *params[1] = { idtext };
	struct db_error err;
	struct cutover_stmt *stmts = NULL;
	struct cutover_result res;
	struct cutover_job job = { .what = "rollback", .migration_id = id };
	const char *journal[1];
	PGresult *r = NULL;
	bool ok = false;
	int n;

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	report_event("rollback", NULL, "migration %lld: rolling back (%s)", (long long)id, reason);
	if (!journal_set_state(ddl, id, MIG_ROLLING_BACK, reason, &err))
		goto db_failed;
	r = db_query(observer, statements_sql, 1, params, &err);
	if (!r)
		goto db_failed;
	n = PQntuples(r);
	stmts = calloc((size_t)n + 1, sizeof(*stmts));
	if (!stmts)
		goto done;
	for (int i = 0; i < n; i++) {
		stmts[i].sql = PQgetvalue(r, i, 0);
		snprintf(stmts[i].table.schema, sizeof(stmts[i].table.schema), "%s", PQgetvalue(r, i, 1));
		snprintf(stmts[i].table.name, sizeof(stmts[i].table.name), "%s", PQgetvalue(r, i, 2));
		snprintf(stmts[i].other.schema, sizeof(stmts[i].other.schema), "%s", PQgetvalue(r, i, 3));
		snprintf(stmts[i].other.name, sizeof(stmts[i].other.name), "%s", PQgetvalue(r, i, 4));
		stmts[i].lock = LOCK_ACCESS_EXCLUSIVE;
		stmts[i].hold = HOLD_ALL_NEEDED;
		report_event("rollback_step", NULL, "  %s", stmts[i].sql);
	}
	state_sql = journal_state_sql(id, MIG_ROLLED_BACK);
	journal[0] = state_sql;
	job.stmts = stmts;
	job.n_stmts = n;
	job.journal_sql = journal;
	job.n_journal_sql = 1;
	if (!state_sql)
		goto done;
	if (n == 0) {
		ok = db_exec(ddl, state_sql, &err);
		if (!ok)
			goto db_failed;
	} else if (!cutover_run(ddl, observer, o, &job, &res)) {
		report_error("the rollback could not take its locks", res.why,
			     "the journal says rolling_back: `pgvalve recover --rollback` tries again");
		goto done;
	} else {
		report_event("rolled_back", NULL,
			     "migration %lld: %d statement(s) rolled back in one transaction "
			     "(held %lld ms, %d attempt(s))",
			     (long long)id, n, (long long)res.held_ms, res.attempts);
	}
	drop_built_indexes(ddl, params);
	if (!validate_restored(ddl, r, &err)) {
		report_warning(
			"a restored constraint did not validate (it stays NOT VALID: enforced for new rows)",
			err.msg);
	}
	ok = true;
	goto done;
db_failed:
	report_error("rollback failed", err.msg,
		     "`pgvalve status ID` shows where it stopped; `pgvalve recover --rollback` retries");
done:
	free(state_sql);
	free(stmts);
	PQclear(r);
	return ok;
}
