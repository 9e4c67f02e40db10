/*
 * pgvalve.self_tests: what `apply --self-test` proved (journal_evidence.h,
 * docs/architecture.md §4, evidence).
 */
#include "journal_evidence.h"

#include <stdio.h>
#include <stdlib.h>

#include "xalloc.h"

const char journal_evidence_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS pgvalve.self_tests ("
	"  migration_id bigint NOT NULL REFERENCES pgvalve.migrations (id),"
	"  seq int NOT NULL,"
	"  constraint_name text NOT NULL,"
	"  table_name text NOT NULL,"
	"  kind text NOT NULL,"
	"  check_name text NOT NULL,"
	"  outcome text NOT NULL,"
	"  sqlstate text NOT NULL DEFAULT '',"
	"  detail text NOT NULL DEFAULT '',"
	"  at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (migration_id, seq));"
	"CREATE TABLE IF NOT EXISTS pgvalve.evidence ("
	"  migration_id bigint NOT NULL REFERENCES pgvalve.migrations (id),"
	"  kind text NOT NULL,"
	"  at timestamptz NOT NULL DEFAULT clock_timestamp(),"
	"  data jsonb NOT NULL);"
	"CREATE TABLE IF NOT EXISTS pgvalve.latency ("
	"  migration_id bigint NOT NULL REFERENCES pgvalve.migrations (id),"
	"  phase text NOT NULL,"
	"  table_name text NOT NULL,"
	"  kind text NOT NULL,"
	"  window_s int NOT NULL,"
	"  count bigint NOT NULL,"
	"  p50_ms float8, p95_ms float8, p99_ms float8, max_ms float8,"
	"  at timestamptz NOT NULL DEFAULT clock_timestamp());";

bool journal_selftest_clear(PGconn *c, int64_t id, struct db_error *err)
{
	char idtext[32];
	const char *params[1] = { idtext };

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	return db_command(c, "DELETE FROM pgvalve.self_tests WHERE migration_id = $1", 1, params, err);
}

bool journal_selftest_add(PGconn *c, int64_t id, int seq, const struct journal_selftest *t,
			  struct db_error *err)
{
	char idtext[32], seqtext[16];
	const char *params[9] = { idtext,   seqtext,    t->constraint_name, t->table, t->kind,
				  t->check, t->outcome, t->sqlstate,        t->detail };

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	snprintf(seqtext, sizeof(seqtext), "%d", seq);
	return db_command(
		c,
		"INSERT INTO pgvalve.self_tests (migration_id, seq, constraint_name, table_name, kind, "
		"check_name, outcome, sqlstate, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		9, params, err);
}

bool journal_selftest_read(PGconn *c, int64_t id, struct journal_selftest **out, int *n, struct db_error *err)
{
	PGresult *r;

	r = db_query_id(c,
			"SELECT constraint_name, table_name, kind, check_name, outcome, sqlstate, detail "
			"FROM pgvalve.self_tests WHERE migration_id = $1 ORDER BY seq",
			id, err);
	if (!r)
		return false;
	*n = PQntuples(r);
	*out = xcalloc((size_t)*n + 1, sizeof(**out));
	for (int i = 0; i < *n; i++) {
		struct journal_selftest *t = &(*out)[i];

		t->constraint_name = xstrdup(db_value(r, i, 0, ""));
		t->table = xstrdup(db_value(r, i, 1, ""));
		t->kind = xstrdup(db_value(r, i, 2, ""));
		t->check = xstrdup(db_value(r, i, 3, ""));
		t->outcome = xstrdup(db_value(r, i, 4, ""));
		t->sqlstate = xstrdup(db_value(r, i, 5, ""));
		t->detail = xstrdup(db_value(r, i, 6, ""));
	}
	PQclear(r);
	return true;
}

void journal_selftest_free(struct journal_selftest *t, int n)
{
	for (int i = 0; i < n; i++) {
		free(t[i].constraint_name);
		free(t[i].table);
		free(t[i].kind);
		free(t[i].check);
		free(t[i].outcome);
		free(t[i].sqlstate);
		free(t[i].detail);
	}
	free(t);
}

bool journal_evidence_add(PGconn *c, int64_t id, const char *kind, const char *data, struct db_error *err)
{
	char idtext[32];
	const char *params[3] = { idtext, kind, data };

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	return db_command(c, "INSERT INTO pgvalve.evidence (migration_id, kind, data) VALUES ($1, $2, $3)", 3,
			  params, err);
}

bool journal_evidence_read(PGconn *c, int64_t id, struct journal_evidence **out, int *n, struct db_error *err)
{
	PGresult *r;

	r = db_query_id(c,
			"SELECT kind, at::text, data::text FROM pgvalve.evidence WHERE migration_id = $1 "
			"ORDER BY at, kind",
			id, err);
	if (!r)
		return false;
	*n = PQntuples(r);
	*out = xcalloc((size_t)*n + 1, sizeof(**out));
	for (int i = 0; i < *n; i++) {
		(*out)[i].kind = xstrdup(db_value(r, i, 0, ""));
		(*out)[i].at = xstrdup(db_value(r, i, 1, ""));
		(*out)[i].data = xstrdup(db_value(r, i, 2, "{}"));
	}
	PQclear(r);
	return true;
}

void journal_evidence_free(struct journal_evidence *e, int n)
{
	for (int i = 0; i < n; i++) {
		free(e[i].kind);
		free(e[i].at);
		free(e[i].data);
	}
	free(e);
}

bool journal_step_times(PGconn *c, int64_t id, struct journal_step_time **out, int *n, struct db_error *err)
{
	PGresult *r;

	r = db_query_id(c,
			"SELECT seq, kind, phase, sql, state, attempts, coalesce(finished_at::text, ''), "
			"coalesce(extract(epoch FROM finished_at - started_at)::float8, -1) "
			"FROM pgvalve.steps WHERE migration_id = $1 ORDER BY seq",
			id, err);
	if (!r)
		return false;
	*n = PQntuples(r);
	*out = xcalloc((size_t)*n + 1, sizeof(**out));
	for (int i = 0; i < *n; i++) {
		struct journal_step_time *s = &(*out)[i];

		s->seq = atoi(db_value(r, i, 0, "0"));
		s->kind = xstrdup(db_value(r, i, 1, ""));
		s->phase = xstrdup(db_value(r, i, 2, ""));
		s->sql = xstrdup(db_value(r, i, 3, ""));
		s->state = xstrdup(db_value(r, i, 4, ""));
		s->attempts = atoi(db_value(r, i, 5, "0"));
		s->finished_at = xstrdup(db_value(r, i, 6, ""));
		s->duration_s = atof(db_value(r, i, 7, "-1"));
	}
	PQclear(r);
	return true;
}

void journal_step_times_free(struct journal_step_time *s, int n)
{
	for (int i = 0; i < n; i++) {
		free(s[i].kind);
		free(s[i].phase);
		free(s[i].sql);
		free(s[i].state);
		free(s[i].finished_at);
	}
	free(s);
}

/* A latency in ms as SQL text, or NULL (a stat of nothing measured). */
static const char *ms_text(const struct journal_latency *l, int stat, char *buf, size_t cap)
{
	if (l->count == 0)
		return NULL;
	snprintf(buf, cap, "%.3f", l->ms[stat]);
	return buf;
}

bool journal_latency_add(PGconn *c, int64_t id, const struct journal_latency *l, struct db_error *err)
{
	char idtext[32], window[16], count[32], ms[4][32];
	const char *params[10] = { idtext,
				   l->phase,
				   l->table,
				   l->kind,
				   window,
				   count,
				   ms_text(l, 0, ms[0], sizeof(ms[0])),
				   ms_text(l, 1, ms[1], sizeof(ms[1])),
				   ms_text(l, 2, ms[2], sizeof(ms[2])),
				   ms_text(l, 3, ms[3], sizeof(ms[3])) };

	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	snprintf(window, sizeof(window), "%d", l->window_s);
	snprintf(count, sizeof(count), "%lld", (long long)l->count);
	return db_command(
		c,
		"INSERT INTO pgvalve.latency (migration_id, phase, table_name, kind, window_s, count, "
		"p50_ms, p95_ms, p99_ms, max_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		10, params, err);
}

bool journal_latency_read(PGconn *c, int64_t id, struct journal_latency **out, int *n, struct db_error *err)
{
	PGresult *r;

	/* the last record of each phase, table and kind (a resumed migration may have several) */
	r = db_query_id(
		c,
		"SELECT DISTINCT ON (table_name, kind, phase) phase, table_name, kind, window_s, count, "
		"p50_ms, p95_ms, p99_ms, max_ms FROM pgvalve.latency WHERE migration_id = $1 "
		"ORDER BY table_name, kind, phase, at DESC",
		id, err);
	if (!r)
		return false;
	*n = PQntuples(r);
	*out = xcalloc((size_t)*n + 1, sizeof(**out));
	for (int i = 0; i < *n; i++) {
		struct journal_latency *l = &(*out)[i];

		snprintf(l->phase, sizeof(l->phase), "%s", db_value(r, i, 0, ""));
		l->table = xstrdup(db_value(r, i, 1, ""));
		snprintf(l->kind, sizeof(l->kind), "%s", db_value(r, i, 2, ""));
		l->window_s = atoi(db_value(r, i, 3, "0"));
		l->count = strtoll(db_value(r, i, 4, "0"), NULL, 10);
		for (int s = 0; s < 4; s++)
			l->ms[s] = atof(db_value(r, i, 5 + s, "0"));
	}
	PQclear(r);
	return true;
}

void journal_latency_free(struct journal_latency *l, int n)
{
	for (int i = 0; i < n; i++)
		free(l[i].table);
	free(l);
}
