/*
 * The journal (see journal.h). Identifiers in generated SQL are fixed
 * names; values are numbers from this program or enum names, or go as
 * parameters: nothing from the migration file is pasted into SQL here.
 * The rollback's queries are in journal_undo.c, the record of coordinator
 * sessions in journal_sessions.c; journal.h is the contract of all three.
 */
#include "journal.h"
#include "journal_evidence.h"
#include "journal_keychange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "fault.h"
#include "orphan.h"
#include "report.h"
#include "xalloc.h"

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

/* The state stored for migration 'id'; an unknown one is an error. */
static bool parse_state(const char *name, int64_t id, enum mig_state *out, struct db_error *err)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum mig_state)i;
			return true;
		}
	}
	err->sqlstate[0] = '\0';
	snprintf(err->msg, sizeof(err->msg),
		 "migration %lld is in state \"%s\", which this pgvalve does not know", (long long)id, name);
	return false;
}

/*
 * Steps' lock and hold are stored by name (plan_lock_key, plan_hold_name).
 * A journal an earlier pgvalve created stored them as numbers (the enums'
 * order then); the DO block below converts those columns in place the first
 * time this pgvalve opens such a journal, and does nothing afterwards. It
 * looks before it locks, so an up-to-date journal is never locked here.
 */
static const char ensure_sql[] =
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
	"  lock text NOT NULL DEFAULT 'none',"
	"  hold text NOT NULL DEFAULT 'none',"
	"  index_name text NOT NULL DEFAULT '',"
	"  state text NOT NULL DEFAULT 'pending',"
	"  attempts int NOT NULL DEFAULT 0,"
	"  started_at timestamptz,"
	"  finished_at timestamptz,"
	"  error text,"
	"  PRIMARY KEY (migration_id, seq));"
	"CREATE TABLE IF NOT EXISTS pgvalve.prior_constraints ("
	"  migration_id bigint NOT NULL REFERENCES pgvalve.migrations (id),"
	"  \"table\" text NOT NULL,"
	"  name text NOT NULL,"
	"  contype \"char\" NOT NULL,"
	"  definition text NOT NULL,"
	"  validated boolean NOT NULL,"
	"  PRIMARY KEY (migration_id, \"table\", contype, name));"
	"DO $upgrade$ BEGIN "
	"  IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = 'pgvalve.steps'::regclass "
	"                 AND attname = 'index_name' AND NOT attisdropped) "
	"     OR EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = 'pgvalve.steps'::regclass "
	"                AND attname IN ('lock', 'hold') AND atttypid = 'int4'::regtype) THEN "
	/* Coordinators may start together: look again once alone (each statement sees what committed). */
	"  LOCK TABLE pgvalve.steps IN ACCESS EXCLUSIVE MODE; "
	/* index_name: added by a later version than the one that created the table */
	"  ALTER TABLE pgvalve.steps ADD COLUMN IF NOT EXISTS index_name text NOT NULL DEFAULT ''; "
	"  IF (SELECT atttypid FROM pg_catalog.pg_attribute WHERE attrelid = 'pgvalve.steps'::regclass "
	"      AND attname = 'lock') = 'int4'::regtype THEN "
	"    ALTER TABLE pgvalve.steps ALTER COLUMN lock DROP DEFAULT, "
	"      ALTER COLUMN lock TYPE text USING (CASE lock WHEN 0 THEN 'none' "
	"        WHEN 1 THEN 'share_update_exclusive' WHEN 2 THEN 'share_row_exclusive' "
	"        WHEN 3 THEN 'access_exclusive' END), "
	"      ALTER COLUMN lock SET DEFAULT 'none'; "
	"  END IF; "
	"  IF (SELECT atttypid FROM pg_catalog.pg_attribute WHERE attrelid = 'pgvalve.steps'::regclass "
	"      AND attname = 'hold') = 'int4'::regtype THEN "
	"    ALTER TABLE pgvalve.steps ALTER COLUMN hold DROP DEFAULT, "
	"      ALTER COLUMN hold TYPE text USING (CASE hold WHEN 0 THEN 'none' WHEN 1 THEN 'writes' "
	"        WHEN 2 THEN 'all' END), "
	"      ALTER COLUMN hold SET DEFAULT 'none'; "
	"  END IF; "
	"  END IF; "
	"END $upgrade$;";

bool journal_ensure(PGconn *c, struct db_error *err)
{
	/* the key type change's tables (journal_keychange.c): added in place to an older journal */
	return db_exec(c, ensure_sql, err) && db_exec(c, journal_keychange_schema_sql, err) &&
		db_exec(c, journal_evidence_schema_sql, err); /* the self-test (journal_evidence.h) */
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
	const char *params[4] = { p->name, p->checksum, plan_json, options_json };
	PGresult *r;
	char idtext[32];

	if (!db_exec(c, "BEGIN", err))
		return false;
	r = db_query(c,
		     "INSERT INTO pgvalve.migrations (name, checksum, state, plan, options) "
		     "VALUES ($1, $2, 'planned', $3, $4) RETURNING id",
		     4, params, err);
	if (!r)
		goto fail;
	*id = strtoll(db_value(r, 0, 0, "0"), NULL, 10);
	PQclear(r);
	snprintf(idtext, sizeof(idtext), "%lld", (long long)*id);
	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];
		char seq[16];
		const char *sp[12] = { idtext,
				       seq,
				       plan_step_kind_name(st->kind),
				       plan_phase_name(st->phase),
				       st->sql,
				       st->table.schema,
				       st->table.name,
				       st->other.schema,
				       st->other.name,
				       plan_lock_key(st->lock),
				       plan_hold_name(st->hold),
				       st->index.name };

		snprintf(seq, sizeof(seq), "%d", st->seq);
		if (!db_command(
			    c,
			    "INSERT INTO pgvalve.steps (migration_id, seq, kind, phase, sql, table_schema, "
			    "table_name, other_schema, other_name, lock, hold, index_name) "
			    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
			    12, sp, err))
			goto fail;
	}
	return db_exec(c, "COMMIT", err);
fail:
	db_rollback(c);
	return false;
}

char *journal_state_sql(int64_t id, enum mig_state s)
{
	return xasprintf("UPDATE pgvalve.migrations SET state = '%s', updated_at = now()%s WHERE id = %lld",
			 journal_state_name(s),
			 s == MIG_COMMITTED || s == MIG_ROLLED_BACK ? ", finished_at = now()"
				 : s == MIG_CUTOVER                 ? ", cutover_at = now()"
								    : "",
			 (long long)id);
}

/* finished_at: the clock, not the transaction's start, so a validation's step shows how long it took (the report). */
char *journal_step_done_sql(int64_t id, int seq)
{
	return xasprintf(
		"UPDATE pgvalve.steps SET state = 'done', attempts = attempts + 1, "
		"started_at = coalesce(started_at, now()), finished_at = clock_timestamp(), error = NULL "
		"WHERE migration_id = %lld AND seq = %d",
		(long long)id, seq);
}

bool journal_set_state(PGconn *c, int64_t id, enum mig_state s, const char *error, struct db_error *err)
{
	char *sql = journal_state_sql(id, s), idtext[32];
	const char *params[2] = { error, idtext };
	bool ok;

	ok = db_exec(c, sql, err);
	free(sql);
	if (!ok)
		return false;
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	if (!db_command(c, "UPDATE pgvalve.migrations SET error = $1 WHERE id = $2", 2, params, err))
		return false;
	fault_point(journal_state_name(s));
	return true;
}

bool journal_step_attempt(PGconn *c, int64_t id, int seq, const char *error, struct db_error *err)
{
	char idtext[32], seqtext[16];
	const char *params[3] = { error, idtext, seqtext };

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	snprintf(seqtext, sizeof(seqtext), "%d", seq);
	return db_command(c,
			  "UPDATE pgvalve.steps SET attempts = attempts + 1, error = $1, "
			  "started_at = coalesce(started_at, now()) WHERE migration_id = $2 AND seq = $3",
			  3, params, err);
}

bool journal_snapshot(PGconn *c, int64_t id, const struct qname *tables, int n, struct db_error *err)
{
	char idtext[32];

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	for (int i = 0; i < n; i++) {
		struct catalog_relation rel;
		const char *params[2] = { idtext, rel.oid };

		switch (catalog_relation(c, &tables[i], &rel, err)) {
		case CATALOG_ERROR:
			return false;
		case CATALOG_MISSING:
			continue;
		case CATALOG_FOUND:
			break;
		}
		/* Constraints, then columns' NOT NULL (contype 'n': name = column, definition = NOT NULL). */
		if (!db_command(
			    c,
			    "INSERT INTO pgvalve.prior_constraints "
			    "SELECT $1::bigint, con.conrelid::regclass::text, con.conname, con.contype, "
			    "       pg_get_constraintdef(con.oid), con.convalidated "
			    "FROM pg_constraint con WHERE con.conrelid = $2::oid "
			    "AND con.contype IN ('f', 'c', 'u', 'p') "
			    "UNION ALL "
			    "SELECT $1::bigint, a.attrelid::regclass::text, a.attname, 'n', 'NOT NULL', true "
			    "FROM pg_attribute a WHERE a.attrelid = $2::oid "
			    "AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull "
			    /* indexes (contype 'i'): a rollback drops only the ones the migration built */
			    "UNION ALL "
			    "SELECT $1::bigint, i.indrelid::regclass::text, ic.relname, 'i', "
			    "       pg_get_indexdef(i.indexrelid), i.indisvalid "
			    "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
			    "WHERE i.indrelid = $2::oid "
			    "ON CONFLICT DO NOTHING",
			    2, params, err))
			return false;
	}
	return true;
}

bool journal_release_cutover(PGconn *c, int64_t id, bool *found, enum mig_state *state, struct db_error *err)
{
	PGresult *r;
	bool ok = true;

	r = db_query_id(c,
			"UPDATE pgvalve.migrations SET cutover_released = true, updated_at = now() "
			"WHERE id = $1::bigint AND state NOT IN ('committed', 'rolled_back', 'failed') "
			"RETURNING state",
			id, err);
	if (!r)
		return false;
	*found = PQntuples(r) == 1;
	if (*found)
		ok = parse_state(PQgetvalue(r, 0, 0), id, state, err);
	PQclear(r);
	return ok;
}

/* ---- reading ---------------------------------------------------------------- */

/* Columns of the migration queries, in this order. */
#define MIGRATION_COLUMNS                                                                              \
	"id, name, state, cutover_released, started_at::text, coalesce(finished_at::text, ''), "       \
	"coalesce(cutover_at::text, ''), coalesce(floor(extract(epoch FROM cutover_at))::bigint, 0), " \
	"coalesce(error, '')"

static bool migration_from_row(const PGresult *r, int row, struct journal_migration *m, struct db_error *err)
{
	memset(m, 0, sizeof(*m));
	m->id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
	if (!parse_state(PQgetvalue(r, row, 2), m->id, &m->state, err))
		return false;
	m->name = xstrdup(PQgetvalue(r, row, 1));
	m->cutover_released = strcmp(PQgetvalue(r, row, 3), "t") == 0;
	m->started_at = xstrdup(PQgetvalue(r, row, 4));
	m->finished_at = xstrdup(PQgetvalue(r, row, 5));
	m->cutover_at = xstrdup(PQgetvalue(r, row, 6));
	m->cutover_epoch = strtoll(PQgetvalue(r, row, 7), NULL, 10);
	m->error = xstrdup(PQgetvalue(r, row, 8));
	return true;
}

void journal_migration_free(struct journal_migration *m)
{
	free(m->name);
	free(m->started_at);
	free(m->finished_at);
	free(m->cutover_at);
	free(m->error);
	free(m->plan_json);
	free(m->options_json);
	memset(m, 0, sizeof(*m));
}

void journal_migrations_free(struct journal_migration *m, int n)
{
	for (int i = 0; i < n; i++)
		journal_migration_free(&m[i]);
	free(m);
}

bool journal_read_migration(PGconn *c, int64_t id, struct journal_migration *out, bool *found,
			    struct db_error *err)
{
	PGresult *r;
	bool ok = true;

	memset(out, 0, sizeof(*out));
	r = db_query_id(c,
			"SELECT " MIGRATION_COLUMNS ", plan::text, options::text FROM pgvalve.migrations "
			"WHERE id = $1::bigint",
			id, err);
	if (!r)
		return false;
	*found = PQntuples(r) == 1;
	if (*found) {
		ok = migration_from_row(r, 0, out, err);
		if (ok) {
			out->plan_json = xstrdup(PQgetvalue(r, 0, 9));
			out->options_json = xstrdup(PQgetvalue(r, 0, 10));
		}
	}
	PQclear(r);
	return ok;
}

bool journal_cutover_released(PGconn *c, int64_t id, bool *released, struct db_error *err)
{
	PGresult *r;

	r = db_query_id(c, "SELECT cutover_released FROM pgvalve.migrations WHERE id = $1::bigint", id, err);
	if (!r)
		return false;
	*released = strcmp(db_value(r, 0, 0, "f"), "t") == 0;
	PQclear(r);
	return true;
}

bool journal_list(PGconn *c, int limit, struct journal_migration **out, int *n, struct db_error *err)
{
	char limittext[16];
	const char *params[1] = { limittext };
	PGresult *r;

	*out = NULL;
	*n = 0;
	snprintf(limittext, sizeof(limittext), "%d", limit);
	r = db_query(c, "SELECT " MIGRATION_COLUMNS " FROM pgvalve.migrations ORDER BY id DESC LIMIT $1::int",
		     1, params, err);
	if (!r)
		return false;
	*out = xcalloc((size_t)PQntuples(r) + 1, sizeof(**out));
	for (int i = 0; i < PQntuples(r); i++) {
		if (!migration_from_row(r, i, &(*out)[i], err)) {
			journal_migrations_free(*out, *n);
			*out = NULL;
			*n = 0;
			PQclear(r);
			return false;
		}
		(*n)++;
	}
	PQclear(r);
	return true;
}

bool journal_find_unfinished(PGconn *c, int64_t *id, enum mig_state *state, bool *found, struct db_error *err)
{
	PGresult *r = db_query(c,
			       "SELECT id, state FROM pgvalve.migrations WHERE state NOT IN ('committed', "
			       "'rolled_back') ORDER BY id DESC LIMIT 1",
			       0, NULL, err);
	bool ok = true;

	if (!r)
		return false;
	*found = PQntuples(r) == 1;
	if (*found) {
		*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		ok = parse_state(PQgetvalue(r, 0, 1), *id, state, err);
	}
	PQclear(r);
	return ok;
}

bool journal_read_steps(PGconn *c, int64_t id, struct journal_step **out, int *n, struct db_error *err)
{
	PGresult *r;

	*out = NULL;
	*n = 0;
	r = db_query_id(c,
			"SELECT seq, kind, phase, sql, table_schema, table_name, other_schema, other_name, "
			"lock, hold, state, index_name, attempts, coalesce(error, '') FROM pgvalve.steps "
			"WHERE migration_id = $1::bigint ORDER BY seq",
			id, err);
	if (!r)
		return false;
	*out = xcalloc((size_t)PQntuples(r) + 1, sizeof(**out));
	for (int i = 0; i < PQntuples(r); i++) {
		struct journal_step *js = &(*out)[i];
		struct plan_step *s = &js->step;

		s->seq = atoi(PQgetvalue(r, i, 0));
		if (!plan_step_kind_parse(PQgetvalue(r, i, 1), &s->kind) ||
		    !plan_phase_parse(PQgetvalue(r, i, 2), &s->phase) ||
		    !plan_lock_parse(PQgetvalue(r, i, 8), &s->lock) ||
		    !plan_hold_parse(PQgetvalue(r, i, 9), &s->hold)) {
			err->sqlstate[0] = '\0';
			snprintf(err->msg, sizeof(err->msg),
				 "step %d of migration %lld (kind %s, phase %s, lock %s, hold %s) names what "
				 "this pgvalve does not know",
				 s->seq, (long long)id, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
				 PQgetvalue(r, i, 8), PQgetvalue(r, i, 9));
			journal_steps_free(*out, *n);
			*out = NULL;
			*n = 0;
			PQclear(r);
			return false;
		}
		s->sql = xstrdup(PQgetvalue(r, i, 3));
		snprintf(s->table.schema, sizeof(s->table.schema), "%s", PQgetvalue(r, i, 4));
		snprintf(s->table.name, sizeof(s->table.name), "%s", PQgetvalue(r, i, 5));
		snprintf(s->other.schema, sizeof(s->other.schema), "%s", PQgetvalue(r, i, 6));
		snprintf(s->other.name, sizeof(s->other.name), "%s", PQgetvalue(r, i, 7));
		/* An index lives in its table's schema. */
		snprintf(s->index.schema, sizeof(s->index.schema), "%s", s->table.schema);
		snprintf(s->index.name, sizeof(s->index.name), "%s", PQgetvalue(r, i, 11));
		s->constraint = s->drop = s->input = -1;
		js->done = strcmp(PQgetvalue(r, i, 10), "done") == 0;
		js->attempts = atoi(PQgetvalue(r, i, 12));
		js->error = xstrdup(PQgetvalue(r, i, 13));
		(*n)++;
	}
	PQclear(r);
	return true;
}

void journal_steps_free(struct journal_step *s, int n)
{
	for (int i = 0; i < n; i++) {
		free(s[i].step.sql);
		free(s[i].error);
	}
	free(s);
}

bool journal_read_prior(PGconn *c, int64_t id, struct journal_prior **out, int *n, struct db_error *err)
{
	PGresult *r;

	r = db_query_id(
		c,
		"SELECT \"table\", name, contype, definition, validated FROM pgvalve.prior_constraints "
		"WHERE migration_id = $1::bigint ORDER BY 1, 3, 2",
		id, err);
	*out = NULL;
	*n = 0;
	if (!r)
		return false;
	*out = xcalloc((size_t)PQntuples(r) + 1, sizeof(**out));
	for (int i = 0; i < PQntuples(r); i++) {
		struct journal_prior *p = &(*out)[(*n)++];

		p->table = xstrdup(PQgetvalue(r, i, 0));
		p->name = xstrdup(PQgetvalue(r, i, 1));
		p->contype = PQgetvalue(r, i, 2)[0];
		p->definition = xstrdup(PQgetvalue(r, i, 3));
		p->validated = strcmp(PQgetvalue(r, i, 4), "t") == 0;
	}
	PQclear(r);
	return true;
}

void journal_prior_free(struct journal_prior *p, int n)
{
	for (int i = 0; i < n; i++) {
		free(p[i].table);
		free(p[i].name);
		free(p[i].definition);
	}
	free(p);
}
