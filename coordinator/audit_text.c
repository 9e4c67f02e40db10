/*
 * pgvalve audit for people: a summary first (counts, cycles, the longest
 * chain, the widest cascade), then the findings by severity with their
 * hints, then the suggested foreign keys, then the graph as a tree — each
 * table with the tables that reference it below it. What would not fit a
 * screen or two is counted instead, with a pointer to --table and the other
 * formats, which list everything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "xalloc.h"

/* The tree stops after this many lines and this deep: a screenful is the goal, --table narrows. */
#define TREE_MAX_LINES 400
#define TREE_MAX_DEPTH 40
/* Findings shown per kind and severity, and suggestions shown; JSON and SQL have all of them. */
#define TEXT_MAX_PER_KIND 8
#define TEXT_MAX_SUGGESTIONS 25
#define TEXT_MAX_KINDS 16

void audit_format_bytes(long long bytes, char *out, size_t cap)
{
	static const char *const units[] = { "bytes", "kB", "MB", "GB", "TB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, cap, "%lld bytes", bytes);
	else
		snprintf(out, cap, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void summary(FILE *out, const struct audit_report *r)
{
	const struct audit_graph *g = r->g;
	const struct audit_analysis *a = r->a;
	int widest = -1, in_cycles = 0;

	fprintf(out, "pgvalve audit: %d table(s), %d foreign key(s) in %s\n", g->n_tables, g->n_fks,
		r->scope);
	fprintf(out, "  findings: %d error(s), %d warning(s), %d note(s)\n", r->f->by_severity[SEV_ERROR],
		r->f->by_severity[SEV_WARNING], r->f->by_severity[SEV_INFO]);
	for (int i = 0; i < a->n_cycles; i++)
		in_cycles += a->cycles[i].n;
	if (a->n_cycles)
		fprintf(out, "  cycles: %d (%d table(s), self-references included)\n", a->n_cycles,
			in_cycles);
	if (a->n_chains) {
		const struct audit_list *c = &a->chains[0];

		fprintf(out, "  longest chain: %d tables, ", c->n);
		for (int i = 0; i < c->n; i++) {
			if (c->n > 6 && i == 3) {
				fprintf(out, " → …");
				i = c->n - 3;
			}
			fprintf(out, "%s%s", i ? " → " : "", g->tables[c->v[i]].display);
		}
		fputc('\n', out);
	}
	for (int v = 0; v < g->n_tables; v++)
		if (a->reach[v].n > 0 && (widest < 0 || a->reach[v].n > a->reach[widest].n))
			widest = v;
	if (widest >= 0)
		fprintf(out, "  widest cascade: a DELETE on %s reaches %d table(s), ~%lld rows\n",
			g->tables[widest].display, a->reach[widest].n, a->reach_rows[widest]);
	if (r->s)
		fprintf(out, "  missing foreign keys: %d suggested\n", r->s->n);
	if (g->n_fks == 0)
		fprintf(out, "  no foreign keys%s\n",
			r->s ? "" : " (pgvalve audit --suggest looks for missing ones)");
}

/* Per kind within a severity: how many were shown and how many left out. */
struct kind_count {
	const char *kind;
	int shown, hidden;
};

static struct kind_count *kind_slot(struct kind_count *k, int *n, const char *kind)
{
	for (int i = 0; i < *n; i++)
		if (strcmp(k[i].kind, kind) == 0)
			return &k[i];
	if (*n == TEXT_MAX_KINDS)
		return &k[TEXT_MAX_KINDS - 1]; /* defensive: more kinds than exist */
	k[*n] = (struct kind_count){ kind, 0, 0 };
	return &k[(*n)++];
}

static void findings(FILE *out, const struct audit_report *r)
{
	static const char *const titles[] = { "Notes", "Warnings", "Errors" };

	for (int sev = SEV_ERROR; sev >= SEV_INFO; sev--) {
		struct kind_count kinds[TEXT_MAX_KINDS];
		int n_kinds = 0, hidden = 0;

		if (r->f->by_severity[sev] == 0)
			continue;
		fprintf(out, "\n%s (%d)\n", titles[sev], r->f->by_severity[sev]);
		for (int i = 0; i < r->f->n; i++) {
			const struct audit_finding *x = &r->f->v[i];
			struct kind_count *k;

			if ((int)x->severity != sev)
				continue;
			k = kind_slot(kinds, &n_kinds, x->kind);
			if (k->shown == TEXT_MAX_PER_KIND) {
				k->hidden++;
				hidden++;
				continue;
			}
			k->shown++;
			fprintf(out, "  %-15s %s\n", x->kind, x->message);
			for (int s = 0; s < x->n_samples; s++)
				fprintf(out, "  %-15s %s %s\n", "", s ? "     " : "e.g.:", x->samples[s]);
			if (x->hint)
				fprintf(out, "  %-15s hint: %s\n", "", x->hint);
		}
		if (hidden == 0)
			continue;
		fprintf(out, "  … and %d more:", hidden);
		for (int i = 0, first = 1; i < n_kinds; i++)
			if (kinds[i].hidden) {
				fprintf(out, "%s %d %s", first ? "" : ",", kinds[i].hidden, kinds[i].kind);
				first = 0;
			}
		fprintf(out, " (--format json lists every one; --table T narrows)\n");
	}
}

static void suggestions(FILE *out, const struct audit_report *r)
{
	const struct audit_graph *g = r->g;

	if (!r->s || r->s->n == 0)
		return;
	fprintf(out,
		"\nSuggested foreign keys (%d), most likely first; --format sql writes them as a migration\n",
		r->s->n);
	for (int i = 0; i < r->s->n; i++) {
		const struct audit_suggestion *x = &r->s->v[i];

		if (i == TEXT_MAX_SUGGESTIONS) {
			fprintf(out, "  … and %d more (--format sql writes every one)\n", r->s->n - i);
			break;
		}
		fprintf(out, "  %2d. %s (%s) → %s (%s)", i + 1, g->tables[x->table].display,
			g->columns[x->column].name, g->tables[x->ref_table].display, g->keys[x->key].column);
		if (x->orphans >= 0)
			fprintf(out, "  orphans: %lld", x->orphans);
		else if (x->orphans_timed_out)
			fprintf(out, "  orphans: not counted (timed out)");
		fputc('\n', out);
		if (x->index_sql)
			fprintf(out, "      %s\n", x->index_sql);
		fprintf(out, "      %s\n", x->sql);
	}
}

struct tree {
	FILE *out;
	const struct audit_graph *g;
	int *first,
		*next; /* per table: the first FK referencing it; per FK: the next one referencing the same */
	bool *shown;
	int lines;
	char *prefix;
};

static void edge_note(FILE *out, const struct audit_fk *fk)
{
	fprintf(out, "  via %s", fk->name);
	if (fk->on_delete != ACT_NO_ACTION)
		fprintf(out, ", on delete %s", audit_action_name(fk->on_delete));
	if (!fk->validated)
		fprintf(out, " [NOT VALID]");
	if (!fk->indexed)
		fprintf(out, " [unindexed]");
}

static void tree_node(struct tree *t, int v, int depth)
{
	size_t plen = strlen(t->prefix);

	t->shown[v] = true;
	if (depth >= TREE_MAX_DEPTH)
		return;
	for (int e = t->first[v]; e >= 0 && t->lines < TREE_MAX_LINES; e = t->next[e]) {
		const struct audit_fk *fk = &t->g->fks[e];
		bool last = true;

		if (fk->from == v)
			continue; /* a self-reference is a finding, not a branch */
		for (int n = t->next[e]; n >= 0; n = t->next[n])
			if (t->g->fks[n].from != v)
				last = false;
		fprintf(t->out, "%s%s %s", t->prefix, last ? "└──" : "├──", t->g->tables[fk->from].display);
		edge_note(t->out, fk);
		t->lines++;
		if (t->shown[fk->from]) {
			fprintf(t->out, "%s\n", t->first[fk->from] >= 0 ? " (see above)" : "");
			continue;
		}
		fputc('\n', t->out);
		strcpy(t->prefix + plen, last ? "    " : "│   ");
		tree_node(t, fk->from, depth + 1);
		t->prefix[plen] = '\0';
	}
}

static void tree_root(struct tree *t, int v)
{
	char size[32];

	audit_format_bytes(t->g->tables[v].bytes, size, sizeof(size));
	fprintf(t->out, "%s  (~%lld rows, %s)\n", t->g->tables[v].display, t->g->tables[v].rows, size);
	t->lines++;
	t->prefix[0] = '\0';
	tree_node(t, v, 0);
}

static void graph_tree(FILE *out, const struct audit_graph *g)
{
	struct tree t = { .out = out, .g = g };
	bool *references;

	if (g->n_tables == 0)
		return;
	references = xcalloc((size_t)g->n_tables + 1, sizeof(bool));
	t.first = xmalloc(sizeof(int) * ((size_t)g->n_tables + 1));
	t.next = xmalloc(sizeof(int) * ((size_t)g->n_fks + 1));
	t.shown = xcalloc((size_t)g->n_tables + 1, sizeof(bool));
	t.prefix = xcalloc(4 * 3 * (TREE_MAX_DEPTH + 2) + 1, 1);
	for (int v = 0; v < g->n_tables; v++)
		t.first[v] = -1;
	for (int e = g->n_fks - 1; e >= 0; e--) {
		t.next[e] = t.first[g->fks[e].to];
		t.first[g->fks[e].to] = e;
		if (g->fks[e].from != g->fks[e].to)
			references[g->fks[e].from] = true;
	}
	fprintf(out, "\nGraph: each table, and below it the tables that reference it\n");
	/* Tables that reference nothing are the roots; what only cycles reach is rooted where it starts. */
	for (int pass = 0; pass < 2; pass++)
		for (int v = 0; v < g->n_tables && t.lines < TREE_MAX_LINES; v++)
			if (!t.shown[v] && (pass == 1 || !references[v]))
				tree_root(&t, v);
	if (t.lines >= TREE_MAX_LINES)
		fprintf(out,
			"… (cut at %d lines: --table T shows one table's part, --format dot all of it)\n",
			TREE_MAX_LINES);
	free(t.first);
	free(t.next);
	free(t.shown);
	free(t.prefix);
	free(references);
}

void audit_print_text(FILE *out, const struct audit_report *r)
{
	summary(out, r);
	findings(out, r);
	suggestions(out, r);
	graph_tree(out, r->g);
}
