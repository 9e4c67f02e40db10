/*
 * The journal (see journal.h). Identifiers in generated SQL are fixed
 * names; values are numbers from this program or enum names, or go as
 * parameters: nothing from the migration file is pasted into SQL here.
 */
#define _GNU_SOURCE /* asprintf */
#include "journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "orphan.h"
#include "report.h"

/* Advisory lock key: "pgva" / "lve1" as two int4, one per database. */
#define LOCK_KEY1 1885824609
#define LOCK_KEY2 1819698481

static const char *const state_names[] = {
	"planned",   "checked",  "snapshotted", "prepared",     "cutover",     "validated",
	"finalized", "watching", "committed",   "rolling_back", "rolled_back", "failed",
};

const char *journal_state_name(enum mig_state s)
{
	return state_names[s];
}

bool journal_state_parse(const char *name, enum mig_state *out)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum mig_state)i;
			return true;
		}
	}
	return false;
}

bool journal_ensure(PGconn *c, struct db_error *err)
{
	return db_exec(
		c,
		"CREATE SCHEMA IF NOT EXISTS pgvalve;"
		"CREATE TABLE IF NOT EXISTS pgvalve.migrations ("
		"  id bigserial PRIMARY KEY,"
		"  name text NOT NULL,"
		"  checksum text NOT NULL,"
		"  state text NOT NULL,"
		"  plan jsonb NOT NULL,"
		"  options jsonb NOT NULL DEFAULT '{}',"
		"  cutover_released boolean NOT NULL DEFAULT false,"
		"  cutover_at timestamptz,"
		"  started_at timestamptz NOT NULL DEFAULT now(),"
		"  updated_at timestamptz NOT NULL DEFAULT now(),"
		"  finished_at timestamptz,"
		"  error text);"
		"CREATE TABLE IF NOT EXISTS pgvalve.steps ("
		"  migration_id bigint NOT NULL REFERENCES pgvalve.migrations (id),"
		"  seq int NOT NULL,"
		"  kind text NOT NULL,"
		"  phase text NOT NULL,"
		"  sql text NOT NULL,"
		"  table_schema text NOT NULL DEFAULT '',"
		"  table_name text NOT NULL DEFAULT '',"
		"  other_schema text NOT NULL DEFAULT '',"
		"  other_name text NOT NULL DEFAULT '',"
		"  lock int NOT NULL DEFAULT 0,"
		"  hold int NOT NULL DEFAULT 0,"
		"  index_name text NOT NULL DEFAULT '',"
		"  state text NOT NULL DEFAULT 'pending',"
		"  attempts int NOT NULL DEFAULT 0,"
		"  started_at timestamptz,"
		"  finished_at timestamptz,"
		"  error text,"
		"  PRIMARY KEY (migration_id, seq));"
		/* Columns later versions added, on a journal an earlier one created. */
		"ALTER TABLE pgvalve.steps ADD COLUMN IF NOT EXISTS index_name text NOT NULL DEFAULT '';"
		"CREATE TABLE IF NOT EXISTS pgvalve.prior_constraints ("
		"  migration_id bigint NOT NULL REFERENCES pgvalve.migrations (id),"
		"  \"table\" text NOT NULL,"
		"  name text NOT NULL,"
		"  contype \"char\" NOT NULL,"
		"  definition text NOT NULL,"
		"  validated boolean NOT NULL,"
		"  PRIMARY KEY (migration_id, \"table\", contype, name));",
		err);
}

/*
 * One try at the coordinator lock: '*got' whether it is ours; if not,
 * '*holder_pid' is the backend holding it (0: not seen).
 */
static bool try_lock(PGconn *c, bool *got, int *holder_pid, struct db_error *err)
{
	char sql[512];
	PGresult *r;

	*holder_pid = 0;
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%d, %d)", LOCK_KEY1, LOCK_KEY2);
	r = db_query(c, sql, 0, NULL, err);
	if (!r)
		return false;
	*got = strcmp(db_value(r, 0, 0, "f"), "t") == 0;
	PQclear(r);
	if (*got)
		return true;
	snprintf(sql, sizeof(sql),
		 "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %d "
		 "AND objid = %d AND objsubid = 2 AND database = (SELECT oid FROM pg_database "
		 "WHERE datname = current_database())",
		 LOCK_KEY1, LOCK_KEY2);
	r = db_query(c, sql, 0, NULL, err);
	if (!r)
		return false;
	*holder_pid = atoi(db_value(r, 0, 0, "0"));
	PQclear(r);
	return true;
}

bool journal_lock(PGconn *c, int *holder_pid, struct db_error *err)
{
	struct orphan_wait wait = { 0 };
	bool got;

	for (;;) {
		if (!try_lock(c, &got, holder_pid, err))
			return false;
		if (got)
			break;
		/* A backend whose coordinator died is ended; a live coordinator is refused. */
		if (!orphan_resolve(c, *holder_pid, &wait, err))
			return false;
	}
	*holder_pid = 0;
	if (!orphan_register(c, err))
		report_warning("cannot record this coordinator's sessions in the journal (a later run "
			       "cannot tell them orphaned if this one is killed)",
			       err->msg);
	return true;
}

bool journal_create(PGconn *c, const struct plan *p, const char *plan_json, const char *options_json,
		    int64_t *id, struct db_error *err)
{
	const char *params[3] = { p->name, p->checksum, plan_json };
	const char *opts[1] = { options_json };
	PGresult *r;
	char idtext[32];

	if (!db_exec(c, "BEGIN", err))
		return false;
	r = db_query(c,
		     "INSERT INTO pgvalve.migrations (name, checksum, state, plan) "
		     "VALUES ($1, $2, 'planned', $3) RETURNING id",
		     3, params, err);
	if (!r)
		goto fail;
	*id = strtoll(db_value(r, 0, 0, "0"), NULL, 10);
	PQclear(r);
	snprintf(idtext, sizeof(idtext), "%lld", (long long)*id);
	r = db_query(
		c,
		"UPDATE pgvalve.migrations SET options = $1 WHERE id = currval('pgvalve.migrations_id_seq')",
		1, opts, err);
	if (!r)
		goto fail;
	PQclear(r);
	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];
		char seq[16], lock[8], hold[8];
		const char *sp[12] = { idtext,
				       seq,
				       plan_step_kind_name(st->kind),
				       plan_phase_name(st->phase),
				       st->sql,
				       st->table.schema,
				       st->table.name,
				       st->other.schema,
				       st->other.name,
				       lock,
				       hold,
				       st->index.name };

		snprintf(seq, sizeof(seq), "%d", st->seq);
		snprintf(lock, sizeof(lock), "%d", (int)st->lock);
		snprintf(hold, sizeof(hold), "%d", (int)st->hold);
		r = db_query(c,
			     "INSERT INTO pgvalve.steps (migration_id, seq, kind, phase, sql, table_schema, "
			     "table_name, "
			     "other_schema, other_name, lock, hold, index_name) "
			     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
			     12, sp, err);
		if (!r)
			goto fail;
		PQclear(r);
	}
	return db_exec(c, "COMMIT", err);
fail:
	db_rollback(c);
	return false;
}

char *journal_state_sql(int64_t id, enum mig_state s)
{
	char *sql;

	if (asprintf(&sql, "UPDATE pgvalve.migrations SET state = '%s', updated_at = now()%s WHERE id = %lld",
		     journal_state_name(s),
		     s == MIG_COMMITTED || s == MIG_ROLLED_BACK ? ", finished_at = now()"
			     : s == MIG_CUTOVER                 ? ", cutover_at = now()"
								: "",
		     (long long)id) < 0)
		return NULL;
	return sql;
}

char *journal_step_sql(int64_t id, int seq, const char *state, int attempts)
{
	char *sql;

	/* 'state' is one of this program's fixed words. */
	if (asprintf(&sql,
		     "UPDATE pgvalve.steps SET state = '%s', attempts = %d, finished_at = now(), "
		     "error = NULL WHERE migration_id = %lld AND seq = %d",
		     state, attempts, (long long)id, seq) < 0)
		return NULL;
	return sql;
}

bool journal_set_state(PGconn *c, int64_t id, enum mig_state s, const char *error, struct db_error *err)
{
	char *sql = journal_state_sql(id, s), idtext[32];
	const char *params[2] = { error, idtext };
	PGresult *r;
	bool ok;

	if (!sql) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return false;
	}
	ok = db_exec(c, sql, err);
	free(sql);
	if (!ok)
		return false;
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	r = db_query(c, "UPDATE pgvalve.migrations SET error = $1 WHERE id = $2", 2, params, err);
	PQclear(r);
	if (r)
		fault_point(journal_state_name(s));
	return r != NULL;
}

bool journal_step_attempt(PGconn *c, int64_t id, int seq, const char *error, struct db_error *err)
{
	char idtext[32], seqtext[16];
	const char *params[3] = { error, idtext, seqtext };
	PGresult *r;

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	snprintf(seqtext, sizeof(seqtext), "%d", seq);
	r = db_query(c,
		     "UPDATE pgvalve.steps SET attempts = attempts + 1, error = $1, "
		     "started_at = coalesce(started_at, now()) WHERE migration_id = $2 AND seq = $3",
		     3, params, err);
	PQclear(r);
	return r != NULL;
}

bool journal_snapshot(PGconn *c, int64_t id, const struct qname *tables, int n, struct db_error *err)
{
	char idtext[32];
	PGresult *r;

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	for (int i = 0; i < n; i++) {
		const char *params[3] = { idtext, tables[i].schema, tables[i].name };

		/* Constraints, then columns' NOT NULL (contype 'n': name = column, definition = NOT NULL). */
		r = db_query(
			c,
			"WITH t AS (SELECT c.oid FROM pg_class c JOIN pg_namespace ns ON ns.oid = "
			"c.relnamespace "
			"           WHERE c.relname = $3 AND CASE WHEN $2 = '' THEN "
			"pg_table_is_visible(c.oid) "
			"           ELSE ns.nspname = $2 END) "
			"INSERT INTO pgvalve.prior_constraints "
			"SELECT $1::bigint, con.conrelid::regclass::text, con.conname, con.contype, "
			"       pg_get_constraintdef(con.oid), con.convalidated "
			"FROM pg_constraint con JOIN t ON con.conrelid = t.oid "
			"WHERE con.contype IN ('f', 'c', 'u', 'p') "
			"UNION ALL "
			"SELECT $1::bigint, a.attrelid::regclass::text, a.attname, 'n', 'NOT NULL', true "
			"FROM pg_attribute a JOIN t ON a.attrelid = t.oid "
			"WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull "
			/* indexes (contype 'i'): a rollback drops only the ones the migration built */
			"UNION ALL "
			"SELECT $1::bigint, i.indrelid::regclass::text, ic.relname, 'i', "
			"pg_get_indexdef(i.indexrelid), "
			"       i.indisvalid "
			"FROM pg_index i JOIN t ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = "
			"i.indexrelid "
			"ON CONFLICT DO NOTHING",
			3, params, err);
		if (!r)
			return false;
		PQclear(r);
	}
	return true;
}

bool journal_get_state(PGconn *c, int64_t id, enum mig_state *out, struct db_error *err)
{
	char idtext[32];
	const char *params[1] = { idtext };
	PGresult *r;
	bool ok;

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	r = db_query(c, "SELECT state FROM pgvalve.migrations WHERE id = $1", 1, params, err);
	if (!r)
		return false;
	ok = PQntuples(r) == 1 && journal_state_parse(PQgetvalue(r, 0, 0), out);
	if (!ok)
		snprintf(err->msg, sizeof(err->msg), "no migration with id %lld in pgvalve.migrations",
			 (long long)id);
	PQclear(r);
	return ok;
}
