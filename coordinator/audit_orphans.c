/*
 * Orphan counts for pgvalve audit --orphans (see audit.h): for each foreign
 * key still NOT VALID and each suggested one, the rows whose key matches no
 * row of the referenced table — the rows VALIDATE would fail on — with a
 * few of their values. Each count is one statement under its own
 * statement_timeout and a short lock_timeout, outside any transaction, so a
 * count that times out (or waits behind DDL) is reported as such and the
 * audit goes on. Reads only: AccessShareLock on the two tables. A clean
 * count is a note for a NOT VALID key and only a number for a suggestion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "quote.h"
#include "xalloc.h"

#define ORPHANS_LOCK_TIMEOUT_MS 1000
#define ORPHANS_SAMPLES 5

/* A growing string. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *text)
{
	size_t n = strlen(text);

	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, text, n + 1);
	b->len += n;
}

static void sb_ident(struct sbuf *b, const char *prefix, const char *name)
{
	char q[2 * AUDIT_NAME_MAX + 4];

	sb_add(b, prefix);
	quote_ident(q, sizeof(q), name);
	sb_add(b, q);
}

/*
 * "FROM child c WHERE <c's key is set> AND NOT EXISTS (parent row)", the
 * rows that break the key (MATCH SIMPLE: a row with any NULL column is not
 * checked; MATCH FULL: only all-NULL rows are exempt).
 */
static void orphan_from(struct sbuf *b, const struct audit_table *child, const struct audit_table *parent,
			char *const *cols, char *const *refs, int n, bool match_full)
{
	char q[4 * AUDIT_NAME_MAX + 8];

	sb_add(b, " FROM ");
	quote_qname(q, sizeof(q), child->schema, child->name);
	sb_add(b, q);
	sb_add(b, " c WHERE ");
	if (match_full) {
		sb_add(b, "NOT (");
		for (int k = 0; k < n; k++) {
			sb_ident(b, k ? " AND c." : "c.", cols[k]);
			sb_add(b, " IS NULL");
		}
		sb_add(b, ") AND (");
		for (int k = 0; k < n; k++) {
			sb_ident(b, k ? " OR c." : "c.", cols[k]);
			sb_add(b, " IS NULL");
		}
		sb_add(b, " OR ");
	} else {
		for (int k = 0; k < n; k++) {
			sb_ident(b, "c.", cols[k]);
			sb_add(b, " IS NOT NULL AND ");
		}
	}
	sb_add(b, "NOT EXISTS (SELECT 1 FROM ");
	quote_qname(q, sizeof(q), parent->schema, parent->name);
	sb_add(b, q);
	sb_add(b, " p WHERE ");
	for (int k = 0; k < n; k++) {
		sb_ident(b, k ? " AND p." : "p.", refs[k]);
		sb_ident(b, " = c.", cols[k]);
	}
	sb_add(b, ")");
	if (match_full)
		sb_add(b, ")");
}

enum count_result { COUNT_DONE, COUNT_TIMED_OUT, COUNT_FAILED };

/* Runs 'sql' for one number; COUNT_TIMED_OUT on statement or lock timeout, with the reason in 'why'. */
static enum count_result run_count(PGconn *c, const char *sql, long long *out, char *why, size_t cap)
{
	struct db_error err;
	PGresult *r = db_query(c, sql, 0, NULL, &err);

	if (r) {
		*out = strtoll(db_value(r, 0, 0, "0"), NULL, 10);
		PQclear(r);
		return COUNT_DONE;
	}
	snprintf(why, cap, "%s", err.msg);
	if (strcmp(err.sqlstate, "57014") == 0 || strcmp(err.sqlstate, "55P03") == 0)
		return COUNT_TIMED_OUT;
	return COUNT_FAILED;
}

/* The first few orphan keys as text. */
static void samples(PGconn *c, const char *from, char *const *cols, int n, struct audit_finding *x)
{
	struct sbuf b = { 0 };
	struct db_error err;
	PGresult *r;

	sb_add(&b, "SELECT DISTINCT ");
	if (n > 1)
		sb_add(&b, "ROW(");
	for (int k = 0; k < n; k++)
		sb_ident(&b, k ? ", c." : "c.", cols[k]);
	sb_add(&b, n > 1 ? ")::text" : "::text");
	sb_add(&b, from);
	sb_add(&b, " LIMIT " /* a handful is enough to find the rows */);
	{
		char lim[16];

		snprintf(lim, sizeof(lim), "%d", ORPHANS_SAMPLES);
		sb_add(&b, lim);
	}
	r = db_query(c, b.s, 0, NULL, &err);
	free(b.s);
	if (!r)
		return;
	x->samples = xcalloc((size_t)PQntuples(r) + 1, sizeof(char *));
	for (int i = 0; i < PQntuples(r); i++)
		x->samples[x->n_samples++] = xstrdup(db_value(r, i, 0, "NULL"));
	PQclear(r);
}

/*
 * Counts one key's orphans and adds its finding. 'constraint' names the key
 * (existing or suggested); the count in *count, -1 when it timed out.
 */
static void count_one(PGconn *c, const struct audit_graph *g, int child, int parent, char *const *cols,
		      char *const *refs, int n, bool match_full, const char *constraint, bool suggested,
		      struct audit_findings *f, long long *count)
{
	struct sbuf from = { 0 }, sql = { 0 };
	char why[1024], colv[512] = "";
	enum count_result res;
	size_t len = 0;

	for (int k = 0; k < n && len < sizeof(colv) - 1; k++)
		len += (size_t)snprintf(colv + len, sizeof(colv) - len, "%s%s", k ? ", " : "", cols[k]);
	orphan_from(&from, &g->tables[child], &g->tables[parent], cols, refs, n, match_full);
	sb_add(&sql, "SELECT count(*)");
	sb_add(&sql, from.s);
	*count = -1;
	res = run_count(c, sql.s, count, why, sizeof(why));
	if (res != COUNT_DONE) {
		audit_finding_add(f, "orphans", SEV_WARNING, child, constraint,
				  res == COUNT_TIMED_OUT
					  ? "run the count when the tables are quiet, or by hand with a "
					    "longer statement_timeout"
					  : "run the audit as a role that can read both tables",
				  "could not count the rows of %s (%s) that reference nothing in %s%s: %s",
				  g->tables[child].display, colv, g->tables[parent].display,
				  res == COUNT_TIMED_OUT ? " in time" : "", why);
		*count = -1;
	} else if (*count > 0) {
		struct audit_finding *x = audit_finding_add(
			f, "orphans", SEV_ERROR, child, constraint,
			suggested
				? "delete or fix these rows (or set the column NULL) before adding the key: "
				  "VALIDATE refuses a key that rows break"
				: "delete or fix these rows (or set the column NULL), then VALIDATE the "
				  "constraint",
			"%lld row(s) of %s have %s values that %s does not have%s", *count,
			g->tables[child].display, colv, g->tables[parent].display,
			suggested ? " (a suggested key)" : "");

		x->count = *count;
		samples(c, from.s, cols, n, x);
	} else if (!suggested) {
		/* A clean suggestion shows "orphans: 0" itself; a clean NOT VALID key is news. */
		struct audit_finding *x = audit_finding_add(
			f, "orphans", SEV_INFO, child, constraint, "VALIDATE CONSTRAINT will pass",
			"no row of %s references a missing row of %s", g->tables[child].display,
			g->tables[parent].display);

		x->count = 0;
	}
	free(from.s);
	free(sql.s);
}

bool audit_orphans(PGconn *c, const struct audit_graph *g, struct audit_suggestions *s,
		   struct audit_findings *f, int timeout_ms, struct db_error *err)
{
	char setup[160];

	snprintf(setup, sizeof(setup), "SET statement_timeout = %d; SET lock_timeout = %d", timeout_ms,
		 ORPHANS_LOCK_TIMEOUT_MS);
	if (!db_exec(c, setup, err))
		return false;
	for (int i = 0; i < g->n_fks; i++) {
		const struct audit_fk *fk = &g->fks[i];
		long long n;

		if (fk->validated)
			continue;
		count_one(c, g, fk->from, fk->to, fk->columns, fk->ref_columns, fk->n_columns, fk->match_full,
			  fk->name, false, f, &n);
		if (PQstatus(c) != CONNECTION_OK)
			goto lost;
	}
	for (int i = 0; s && i < s->n; i++) {
		struct audit_suggestion *x = &s->v[i];
		char *cols[1] = { g->columns[x->column].name }, *refs[1] = { g->keys[x->key].column };

		count_one(c, g, x->table, x->ref_table, cols, refs, 1, false, x->name, true, f, &x->orphans);
		x->orphans_timed_out = x->orphans < 0;
		if (PQstatus(c) != CONNECTION_OK)
			goto lost;
	}
	return true;
lost:
	db_error_from(c, NULL, err);
	return false;
}
