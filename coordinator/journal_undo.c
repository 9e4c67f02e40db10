/*
 * The journal's rollback queries (see journal.h, "what a rollback does"):
 * what undoing a migration takes now, compared with the catalog and the
 * snapshot of prior constraints, the indexes it built, and the users'
 * indexes a USING INDEX step absorbed. Built on the server from oids and
 * from definitions PostgreSQL printed: nothing is quoted by hand here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "journal.h"
#include "xalloc.h"

/* ---- what a rollback does ---------------------------------------------------- */

/*
 * The statements, one row each: sql, table schema, table name, other schema,
 * other name, and the VALIDATE to run after (NULL but for a prior FK/CHECK
 * re-added NOT VALID). Drops of what the migration added come first, then
 * restores, then prior constraints an interrupted rollback left NOT VALID
 * (sql "": only their VALIDATE is left to do). Built on the server with format('%I'), from oids and from
 * definitions PostgreSQL itself printed, so nothing is quoted by hand.
 */
/* The table of a constraint in the journal's copy of the plan (c: one of its "constraints"). */
#define ADDED_TABLE_OID_SQL \
	CATALOG_RELATION_OID_SQL("coalesce(c ->> 'table_schema', '')", "(c ->> 'table_name')")

static const char undo_sql[] =
	/* Before its cutover committed a migration changed no constraint: nothing to undo. */
	"WITH plan AS (SELECT plan FROM pgvalve.migrations WHERE id = $1::bigint AND cutover_at IS NOT "
	"NULL), "
	"added AS (SELECT c ->> 'type' AS type, c ->> 'name' AS name, c ->> 'column' AS col, "
	"                 " ADDED_TABLE_OID_SQL " AS rel, ord "
	"          FROM plan, jsonb_array_elements(plan -> 'constraints') WITH ORDINALITY AS x (c, ord)), "
	"drops AS ("
	/* each added constraint (and NOT NULL's helper CHECK, named like it) that exists now */
	"  SELECT 1 AS phase, ord, "
	"         format('ALTER TABLE %s DROP CONSTRAINT %I', a.rel::regclass, con.conname) AS sql, "
	"         a.rel, con.confrelid AS other, NULL::text AS validate "
	"  FROM added a JOIN pg_constraint con ON con.conrelid = a.rel AND con.conname = a.name "
	"  WHERE NOT EXISTS (SELECT 1 FROM pgvalve.prior_constraints p WHERE p.migration_id = $1::bigint "
	"                    AND p.\"table\" = a.rel::regclass::text AND p.name = con.conname "
	"                    AND p.definition = pg_get_constraintdef(con.oid)) "
	"  UNION ALL "
	/* NOT NULL the migration set on a column that was nullable */
	"  SELECT 2, ord, format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', a.rel::regclass, a.col), "
	"         a.rel, 0, NULL "
	"  FROM added a "
	"  JOIN pg_attribute att ON att.attrelid = a.rel AND att.attname = a.col AND att.attnotnull "
	"  WHERE a.type = 'not null' AND NOT EXISTS (SELECT 1 FROM pgvalve.prior_constraints p "
	"        WHERE p.migration_id = $1::bigint AND p.\"table\" = a.rel::regclass::text "
	"        AND p.contype = 'n' AND p.name = a.col) "
	"), restores AS ("
	/* prior constraints that are gone, or exist with another definition (then dropped above) */
	"  SELECT 3 AS phase, 0 AS ord, "
	"         format('ALTER TABLE %s ADD CONSTRAINT %I %s%s', p.\"table\", p.name, p.definition, "
	"                CASE WHEN p.contype IN ('f', 'c') AND p.validated THEN ' NOT VALID' ELSE '' END) "
	"         AS sql, "
	"         p.\"table\"::regclass::oid AS rel, "
	"         CASE WHEN p.contype = 'f' "
	"              THEN (regexp_match(p.definition, 'REFERENCES (.+?)\\('))[1]::regclass::oid "
	"              ELSE 0 END AS other, "
	"         CASE WHEN p.contype IN ('f', 'c') AND p.validated "
	"              THEN format('ALTER TABLE %s VALIDATE CONSTRAINT %I', p.\"table\", p.name) END "
	"         AS validate "
	"  FROM pgvalve.prior_constraints p "
	"  WHERE p.migration_id = $1::bigint AND p.contype NOT IN ('n', 'i') "
	"    AND to_regclass(p.\"table\") IS NOT NULL "
	"    AND EXISTS (SELECT 1 FROM plan) "
	"    AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conrelid = p.\"table\"::regclass "
	"                    AND con.conname = p.name AND pg_get_constraintdef(con.oid) IN "
	"                    (p.definition, p.definition || ' NOT VALID')) "
	"  UNION ALL "
	/*
	 * prior constraints an earlier, interrupted rollback restored NOT VALID and
	 * did not get to validate: no statement under the holds, only the VALIDATE
	 */
	"  SELECT 4, 0, '', p.\"table\"::regclass::oid, 0, "
	"         format('ALTER TABLE %s VALIDATE CONSTRAINT %I', p.\"table\", p.name) "
	"  FROM pgvalve.prior_constraints p "
	"  JOIN pg_constraint con ON con.conrelid = p.\"table\"::regclass AND con.conname = p.name "
	"  WHERE p.migration_id = $1::bigint AND p.contype IN ('f', 'c') AND p.validated "
	"    AND to_regclass(p.\"table\") IS NOT NULL AND EXISTS (SELECT 1 FROM plan) "
	"    AND pg_get_constraintdef(con.oid) = p.definition || ' NOT VALID' "
	") "
	"SELECT s.sql, tn.nspname, t.relname, coalesce(onn.nspname, ''), coalesce(o.relname, ''), s.validate "
	"FROM (SELECT * FROM drops UNION ALL SELECT * FROM restores) s "
	"JOIN pg_class t ON t.oid = s.rel JOIN pg_namespace tn ON tn.oid = t.relnamespace "
	"LEFT JOIN pg_class o ON o.oid = s.other AND s.other <> 0 "
	"LEFT JOIN pg_namespace onn ON onn.oid = o.relnamespace "
	"ORDER BY s.phase, s.ord";

bool journal_undo_statements(PGconn *c, int64_t id, struct journal_undo **out, int *n, struct db_error *err)
{
	PGresult *r;

	r = db_query_id(c, undo_sql, id, err);
	*out = NULL;
	*n = 0;
	if (!r)
		return false;
	*out = xcalloc((size_t)PQntuples(r) + 1, sizeof(**out));
	for (int i = 0; i < PQntuples(r); i++) {
		struct journal_undo *u = &(*out)[(*n)++];

		u->sql = xstrdup(PQgetvalue(r, i, 0));
		snprintf(u->table.schema, sizeof(u->table.schema), "%s", PQgetvalue(r, i, 1));
		snprintf(u->table.name, sizeof(u->table.name), "%s", PQgetvalue(r, i, 2));
		snprintf(u->other.schema, sizeof(u->other.schema), "%s", PQgetvalue(r, i, 3));
		snprintf(u->other.name, sizeof(u->other.name), "%s", PQgetvalue(r, i, 4));
		u->validate = PQgetisnull(r, i, 5) ? NULL : xstrdup(PQgetvalue(r, i, 5));
	}
	PQclear(r);
	return true;
}

void journal_undo_free(struct journal_undo *u, int n)
{
	for (int i = 0; i < n; i++) {
		free(u[i].sql);
		free(u[i].validate);
	}
	free(u);
}

/* The index a create_index step built, as the step names it (in its table's schema). */
#define STEP_INDEX_OID_SQL CATALOG_RELATION_OID_SQL("s.table_schema", "s.index_name")

static const char built_indexes_sql[] =
	"SELECT format('DROP INDEX CONCURRENTLY %s', ic.oid::regclass) "
	"FROM pgvalve.steps s "
	"JOIN pg_class ic ON ic.oid = " STEP_INDEX_OID_SQL " AND ic.relkind = 'i' "
	"JOIN pg_index i ON i.indexrelid = ic.oid "
	"JOIN pg_class t ON t.oid = i.indrelid AND t.relname = s.table_name "
	"WHERE s.migration_id = $1::bigint AND s.kind = 'create_index' AND s.index_name <> '' "
	"  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ic.oid) "
	"  AND NOT EXISTS (SELECT 1 FROM pgvalve.prior_constraints p "
	"                  WHERE p.migration_id = s.migration_id AND p.contype = 'i' "
	"                  AND p.name = ic.relname AND p.\"table\" = t.oid::regclass::text)";

bool journal_built_indexes(PGconn *c, int64_t id, char ***drops, int *n, struct db_error *err)
{
	PGresult *r;

	r = db_query_id(c, built_indexes_sql, id, err);
	*drops = NULL;
	*n = 0;
	if (!r)
		return false;
	*drops = xcalloc((size_t)PQntuples(r) + 1, sizeof(**drops));
	for (int i = 0; i < PQntuples(r); i++)
		(*drops)[(*n)++] = xstrdup(PQgetvalue(r, i, 0));
	PQclear(r);
	return true;
}

void journal_strings_free(char **s, int n)
{
	for (int i = 0; i < n; i++)
		free(s[i]);
	free(s);
}

/* The table of a step, as the step names it. */
#define STEP_TABLE_OID_SQL CATALOG_RELATION_OID_SQL("s.table_schema", "s.table_name")

static const char absorbed_indexes_sql[] =
	"SELECT p.name, "
	"       CASE WHEN cur.oid IS NOT NULL "
	"            THEN format('DROP INDEX CONCURRENTLY %s', cur.oid::regclass) END, "
	"       regexp_replace(p.definition, '^CREATE (UNIQUE )?INDEX ', 'CREATE \\1INDEX CONCURRENTLY ') "
	"FROM pgvalve.prior_constraints p "
	"JOIN pgvalve.steps s ON s.migration_id = p.migration_id AND s.kind = 'add_using_index' "
	"     AND s.index_name = p.name AND " STEP_TABLE_OID_SQL " = to_regclass(p.\"table\") "
	"LEFT JOIN LATERAL (SELECT ic.oid, i.indisvalid FROM pg_index i "
	"                   JOIN pg_class ic ON ic.oid = i.indexrelid "
	"                   WHERE i.indrelid = to_regclass(p.\"table\") AND ic.relname = p.name) cur "
	"     ON true "
	"WHERE p.migration_id = $1::bigint AND p.contype = 'i' AND p.validated "
	"  AND (cur.oid IS NULL OR NOT cur.indisvalid) "
	"ORDER BY p.\"table\", p.name";

bool journal_absorbed_indexes(PGconn *c, int64_t id, struct journal_index_restore **out, int *n,
			      struct db_error *err)
{
	PGresult *r;

	r = db_query_id(c, absorbed_indexes_sql, id, err);
	*out = NULL;
	*n = 0;
	if (!r)
		return false;
	*out = xcalloc((size_t)PQntuples(r) + 1, sizeof(**out));
	for (int i = 0; i < PQntuples(r); i++) {
		struct journal_index_restore *x = &(*out)[(*n)++];

		x->name = xstrdup(PQgetvalue(r, i, 0));
		x->drop = PQgetisnull(r, i, 1) ? NULL : xstrdup(PQgetvalue(r, i, 1));
		x->create = xstrdup(PQgetvalue(r, i, 2));
	}
	PQclear(r);
	return true;
}

void journal_index_restores_free(struct journal_index_restore *r, int n)
{
	for (int i = 0; i < n; i++) {
		free(r[i].name);
		free(r[i].drop);
		free(r[i].create);
	}
	free(r);
}
