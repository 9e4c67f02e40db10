/*
 * What pgvalve audit finds wrong with a foreign-key graph (see audit.h):
 * each finding a kind, a severity, the table and constraint it is about, a
 * message saying what was found and a hint saying what to do. Built from
 * the graph and its analysis only; orphan counts come from audit_orphans.c
 * and missing keys from audit_suggest.c, through audit_finding_add().
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "quote.h"
#include "xalloc.h"

/* Tables named in one message at most (8 × 130 bytes fits its buffer). */
#define FINDING_MAX_NAMES 8

const char *audit_severity_name(enum audit_severity s)
{
	return s == SEV_ERROR ? "error" : s == SEV_WARNING ? "warning" : "info";
}

struct audit_finding *audit_finding_add(struct audit_findings *f, const char *kind, enum audit_severity sev,
					int table, const char *constraint, const char *hint, const char *fmt,
					...)
{
	struct audit_finding *x;
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	msg = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(msg, (size_t)n + 1, fmt, ap);
	va_end(ap);
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 16;
		f->v = xrealloc(f->v, sizeof(*f->v) * (size_t)f->cap);
	}
	x = &f->v[f->n++];
	memset(x, 0, sizeof(*x));
	snprintf(x->kind, sizeof(x->kind), "%s", kind);
	x->severity = sev;
	x->table = table;
	x->constraint = constraint ? xstrdup(constraint) : NULL;
	x->message = msg;
	x->hint = hint ? xstrdup(hint) : NULL;
	x->count = -1;
	f->by_severity[sev]++;
	return x;
}

/* Whether 'name' reads back as itself unquoted (lower case letters, digits, '_'; keywords aside). */
static bool plain_ident(const char *name)
{
	if (!*name || (*name >= '0' && *name <= '9'))
		return false;
	for (; *name; name++)
		if (!((*name >= 'a' && *name <= 'z') || (*name >= '0' && *name <= '9') || *name == '_'))
			return false;
	return true;
}

/* "(a, b)": a foreign key's columns for people, quoted only where a name needs it. */
static void column_list(char *const *cols, int n, char *out, size_t cap)
{
	size_t len = 0;

	out[len++] = '(';
	for (int i = 0; i < n && len + 4 < cap; i++) {
		if (i > 0)
			len += (size_t)snprintf(out + len, cap - len, ", ");
		if (len < cap && plain_ident(cols[i]))
			len += (size_t)snprintf(out + len, cap - len, "%s", cols[i]);
		else if (len < cap)
			len += quote_ident(out + len, cap - len, cols[i]);
	}
	if (len + 2 > cap)
		len = cap - 2;
	out[len++] = ')';
	out[len] = '\0';
}

/* SQL for a hint: "ALTER TABLE t VALIDATE CONSTRAINT c;", every identifier quoted. */
static char *sql_for(const struct audit_table *t, const char *what, const char *name)
{
	char tq[4 * AUDIT_NAME_MAX + 8], nq[2 * AUDIT_NAME_MAX + 4];

	quote_qname(tq, sizeof(tq), t->schema, t->name);
	quote_ident(nq, sizeof(nq), name);
	return xasprintf("ALTER TABLE %s %s %s;", tq, what, nq);
}

static void fk_findings(const struct audit_graph *g, const struct audit_fk *fk, struct audit_findings *f)
{
	const struct audit_table *from = &g->tables[fk->from], *to = &g->tables[fk->to];
	char cols[1024], refs[1024], tq[4 * AUDIT_NAME_MAX + 8];
	char *hint;

	column_list(fk->columns, fk->n_columns, cols, sizeof(cols));
	column_list(fk->ref_columns, fk->n_columns, refs, sizeof(refs));
	quote_qname(tq, sizeof(tq), from->schema, from->name);
	if (!fk->indexed) {
		hint = xasprintf("CREATE INDEX ON %s %s; (pgvalve apply builds it CONCURRENTLY)", tq, cols);
		audit_finding_add(
			f, "unindexed_fk", SEV_WARNING, fk->from, fk->name, hint,
			"%s %s has no index: every DELETE or key UPDATE on %s scans %s (~%lld rows)",
			from->display, cols, to->display, from->display, from->rows);
		free(hint);
	}
	for (int k = 0; k < fk->n_columns; k++) {
		if (strcmp(fk->types[k], fk->ref_types[k]) == 0)
			continue;
		hint = xasprintf("give %s.%s the type of the key, %s: joins on mismatched types may not "
				 "use an index, and a narrower column fails once the key outgrows it",
				 from->display, fk->columns[k], fk->ref_types[k]);
		audit_finding_add(f, "type_mismatch", SEV_WARNING, fk->from, fk->name, hint,
				  "%s.%s is %s but the key it references, %s.%s, is %s", from->display,
				  fk->columns[k], fk->types[k], to->display, fk->ref_columns[k],
				  fk->ref_types[k]);
		free(hint);
	}
	if (!fk->validated) {
		char *sql = sql_for(from, "VALIDATE CONSTRAINT", fk->name);

		hint = xasprintf(
			"count the rows that would fail it (pgvalve audit --orphans), fix them, then %s",
			sql);
		audit_finding_add(
			f, "not_valid", SEV_WARNING, fk->from, fk->name, hint,
			"%s is NOT VALID: rows of %s written before it was added were never checked "
			"against %s",
			fk->name, from->display, to->display);
		free(hint);
		free(sql);
	}
	if (!fk->ref_is_constraint) {
		hint = xasprintf(
			"turn the index into a constraint: ALTER TABLE … ADD CONSTRAINT … UNIQUE USING "
			"INDEX …, so dumps, ORMs and schema tools see the key %s relies on",
			fk->name);
		audit_finding_add(
			f, "missing_unique", SEV_INFO, fk->to, fk->name, hint,
			"%s %s, which %s references, is unique only by an index, not by a PRIMARY KEY "
			"or UNIQUE constraint",
			to->display, refs, fk->name);
		free(hint);
	}
}

/* The first tables of 'l' for a message: "a, b, c" or "a, b, … (211 in all)"; JSON lists them all. */
static void table_list(const struct audit_graph *g, const struct audit_list *l, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (int k = 0; k < l->n && k < FINDING_MAX_NAMES && len < cap; k++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s", k ? ", " : "",
					g->tables[l->v[k]].display);
	if (l->n > FINDING_MAX_NAMES && len < cap)
		snprintf(out + len, cap - len, ", … (%d in all)", l->n);
}

/* The one foreign key of a table to itself, for a self-reference finding. */
static const struct audit_fk *self_fk(const struct audit_graph *g, int t)
{
	for (int i = 0; i < g->n_fks; i++)
		if (g->fks[i].from == t && g->fks[i].to == t)
			return &g->fks[i];
	return NULL;
}

static void cycle_findings(const struct audit_graph *g, const struct audit_analysis *a,
			   struct audit_findings *f)
{
	for (int i = 0; i < a->n_cycles; i++) {
		const struct audit_list *c = &a->cycles[i];
		bool deferrable = false;
		char list[2048];

		if (c->n == 1) {
			const struct audit_fk *fk = self_fk(g, c->v[0]);

			audit_finding_add(
				f, "cycle", SEV_INFO, c->v[0], fk ? fk->name : NULL,
				"delete children before parents (or use ON DELETE CASCADE), and load rows "
				"parents first or with the key DEFERRABLE",
				"%s references itself%s%s%s", g->tables[c->v[0]].display, fk ? " (" : "",
				fk ? fk->name : "", fk ? ")" : "");
			continue;
		}
		table_list(g, c, list, sizeof(list));
		for (int e = 0; e < g->n_fks; e++)
			if (a->scc[g->fks[e].from] == a->scc[c->v[0]] &&
			    a->scc[g->fks[e].to] == a->scc[c->v[0]] && g->fks[e].deferrable)
				deferrable = true;
		audit_finding_add(f, "cycle", deferrable ? SEV_INFO : SEV_WARNING, c->v[0], NULL,
				  deferrable
					  ? "a DEFERRABLE key in the cycle lets one transaction insert "
					    "them together; keep it that way"
					  : "rows of these tables can only go in if one key of the cycle is "
					    "nullable or DEFERRABLE INITIALLY DEFERRED; pg_dump --data-only "
					    "cannot order them either",
				  "%d tables reference each other in a cycle: %s", c->n, list);
	}
}

static void fanout_findings(const struct audit_graph *g, const struct audit_analysis *a,
			    struct audit_findings *f)
{
	for (int v = 0; v < g->n_tables; v++) {
		const struct audit_list *r = &a->reach[v];
		char list[2048];

		if (r->n < AUDIT_FANOUT_TABLES && a->reach_rows[v] < AUDIT_FANOUT_ROWS)
			continue;
		table_list(g, r, list, sizeof(list));
		audit_finding_add(
			f, "cascade_fanout", SEV_WARNING, v, NULL,
			"one DELETE here can lock and remove far more rows than it names: check each "
			"ON DELETE CASCADE is wanted, or delete the children in batches first",
			"a DELETE on %s cascades to %d table(s) holding ~%lld rows: %s", g->tables[v].display,
			r->n, a->reach_rows[v], list);
	}
}

void audit_findings_build(const struct audit_graph *g, const struct audit_analysis *a,
			  struct audit_findings *f)
{
	for (int v = 0; v < g->n_tables; v++) {
		char tq[4 * AUDIT_NAME_MAX + 8], *hint;

		if (!g->tables[v].in_scope || g->tables[v].has_pk)
			continue;
		quote_qname(tq, sizeof(tq), g->tables[v].schema, g->tables[v].name);
		hint = xasprintf("ALTER TABLE %s ADD PRIMARY KEY (…); (pgvalve apply builds its index "
				 "CONCURRENTLY first)",
				 tq);
		audit_finding_add(
			f, "no_primary_key", SEV_WARNING, v, NULL, hint,
			"%s has no primary key: no foreign key can reference its rows by a key of its "
			"own, and logical replication cannot update or delete them",
			g->tables[v].display);
		free(hint);
	}
	for (int i = 0; i < g->n_fks; i++)
		fk_findings(g, &g->fks[i], f);
	cycle_findings(g, a, f);
	fanout_findings(g, a, f);
}

static int cmp_finding(const void *x, const void *y)
{
	const struct audit_finding *a = x, *b = y;
	int d;

	if (a->severity != b->severity)
		return a->severity > b->severity ? -1 : 1;
	if ((d = strcmp(a->kind, b->kind)) != 0)
		return d;
	if (a->table != b->table) {
		if (a->table < 0 || b->table < 0)
			return a->table < 0 ? 1 : -1;
		return a->table < b->table ? -1 : 1;
	}
	return strcmp(a->constraint ? a->constraint : "", b->constraint ? b->constraint : "");
}

void audit_findings_sort(struct audit_findings *f, const struct audit_graph *g)
{
	(void)g; /* tables are numbered in name order: comparing indexes orders by name */
	if (f->n > 1)
		qsort(f->v, (size_t)f->n, sizeof(*f->v), cmp_finding);
}

void audit_findings_free(struct audit_findings *f)
{
	for (int i = 0; i < f->n; i++) {
		free(f->v[i].constraint);
		free(f->v[i].message);
		free(f->v[i].hint);
		for (int k = 0; k < f->v[i].n_samples; k++)
			free(f->v[i].samples[k]);
		free(f->v[i].samples);
	}
	free(f->v);
	memset(f, 0, sizeof(*f));
}
