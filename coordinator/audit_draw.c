/*
 * pgvalve audit's outputs for other programs: Graphviz DOT (renders with
 * `dot -Tsvg`), a Mermaid flowchart, and the suggested foreign keys as a
 * migration file (--format sql) that pgvalve plan and apply take as it is.
 * A suggestion --orphans found rows breaking is written commented out: the
 * file stays one that applies as it is. In both drawings an edge goes from the referencing table to the one it
 * references, labelled with the constraint and its ON DELETE action; NOT
 * VALID edges are dashed and unindexed ones marked. Nodes get generated ids
 * (t0, t1, ...) so no table name, however odd, has to be an identifier.
 */
#include <stdio.h>
#include <string.h>

#include "audit.h"

/* 's' inside a DOT double-quoted string: quotes and backslashes escaped, newlines as \n. */
static void dot_str(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		if (*s == '\n') {
			fputs("\\n", out);
			continue;
		}
		fputc(*s, out);
	}
}

void audit_print_dot(FILE *out, const struct audit_report *r)
{
	const struct audit_graph *g = r->g;

	fprintf(out,
		"digraph pgvalve_audit {\n"
		"  rankdir=LR;\n"
		"  node [shape=box, fontname=\"Helvetica\"];\n"
		"  edge [fontname=\"Helvetica\", fontsize=10];\n");
	for (int v = 0; v < g->n_tables; v++) {
		char size[32];

		audit_format_bytes(g->tables[v].bytes, size, sizeof(size));
		fprintf(out, "  t%d [label=\"", v);
		dot_str(out, g->tables[v].display);
		fprintf(out, "\\n~%lld rows, %s\"%s];\n", g->tables[v].rows, size,
			g->tables[v].in_scope ? "" : ", style=dotted");
	}
	for (int i = 0; i < g->n_fks; i++) {
		const struct audit_fk *fk = &g->fks[i];

		fprintf(out, "  t%d -> t%d [label=\"", fk->from, fk->to);
		dot_str(out, fk->name);
		if (fk->on_delete != ACT_NO_ACTION)
			fprintf(out, "\\nON DELETE %s", audit_action_sql(fk->on_delete));
		if (!fk->validated)
			fputs("\\nNOT VALID", out);
		if (!fk->indexed)
			fputs("\\nunindexed", out);
		fputc('"', out);
		if (!fk->validated)
			fputs(", style=dashed", out);
		if (!fk->indexed)
			fputs(", color=red, fontcolor=red", out);
		if (fk->on_delete == ACT_CASCADE)
			fputs(", penwidth=2", out);
		fputs("];\n", out);
	}
	fputs("}\n", out);
}

/*
 * 's' inside a Mermaid "quoted" label: a double quote is written as the
 * entity #quot;, and # and the characters Mermaid's parser treats
 * specially inside labels as entities too.
 */
static void mermaid_str(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '"':
			fputs("#quot;", out);
			break;
		case '#':
			fputs("#35;", out);
			break;
		case '<':
			fputs("#lt;", out);
			break;
		case '>':
			fputs("#gt;", out);
			break;
		case '|':
			fputs("#124;", out);
			break;
		case '\n':
			fputs(" ", out);
			break;
		default:
			fputc(*s, out);
		}
	}
}

void audit_print_mermaid(FILE *out, const struct audit_report *r)
{
	const struct audit_graph *g = r->g;
	int unindexed = 0, k = 0;

	fputs("flowchart LR\n", out);
	for (int v = 0; v < g->n_tables; v++) {
		fprintf(out, "  t%d[\"", v);
		mermaid_str(out, g->tables[v].display);
		fprintf(out, "<br/>~%lld rows\"]\n", g->tables[v].rows);
	}
	for (int i = 0; i < g->n_fks; i++) {
		const struct audit_fk *fk = &g->fks[i];

		fprintf(out, "  t%d %s|\"", fk->from, fk->validated ? "-->" : "-.->");
		mermaid_str(out, fk->name);
		if (fk->on_delete != ACT_NO_ACTION)
			fprintf(out, "<br/>ON DELETE %s", audit_action_sql(fk->on_delete));
		if (!fk->validated)
			fputs("<br/>NOT VALID", out);
		if (!fk->indexed)
			fputs("<br/>unindexed", out);
		fprintf(out, "\"| t%d\n", fk->to);
		unindexed += !fk->indexed;
	}
	/* Unindexed edges in red: linkStyle takes the edges' positions, in the order written. */
	if (unindexed) {
		fputs("  linkStyle ", out);
		for (int i = 0; i < g->n_fks; i++)
			if (!g->fks[i].indexed)
				fprintf(out, "%s%d", k++ ? "," : "", i);
		fputs(" stroke:#c00,color:#c00\n", out);
	}
}

/* 's' inside a -- comment: a line break in a quoted name would end the comment, so it becomes a space. */
static void comment_str(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc(*s == '\n' || *s == '\r' ? ' ' : *s, out);
}

void audit_print_sql(FILE *out, const struct audit_report *r)
{
	const struct audit_graph *g = r->g;

	fprintf(out,
		"-- Foreign keys suggested by pgvalve audit --suggest: %d, most likely first.\n"
		"-- Review each, then: pgvalve plan FILE --db URL; pgvalve apply FILE --db URL\n"
		"-- (each key is added NOT VALID under a short hold and validated after; an index\n"
		"-- its column lacks is built CONCURRENTLY first).\n",
		r->s ? r->s->n : 0);
	for (int i = 0; r->s && i < r->s->n; i++) {
		const struct audit_suggestion *x = &r->s->v[i];

		fputs("\n-- ", out);
		comment_str(out, g->tables[x->table].display);
		fputs(" (", out);
		comment_str(out, g->columns[x->column].name);
		fputs(") -> ", out);
		comment_str(out, g->tables[x->ref_table].display);
		fputs(" (", out);
		comment_str(out, g->keys[x->key].column);
		fputs(")", out);
		if (x->orphans == 0)
			fputs(" (no orphans)", out);
		fputc('\n', out);
		if (x->orphans > 0) {
			/* Validation would refuse it: left commented out, so the rest applies as it is. */
			fprintf(out,
				"-- %lld row(s) reference nothing (pgvalve audit --orphans shows some): fix "
				"them, "
				"then uncomment\n",
				x->orphans);
			if (x->index_sql) {
				fputs("-- ", out);
				comment_str(out, x->index_sql);
				fputc('\n', out);
			}
			fputs("-- ", out);
			comment_str(out, x->sql);
			fputc('\n', out);
			continue;
		}
		if (x->index_sql)
			fprintf(out, "%s\n", x->index_sql);
		fprintf(out, "%s\n", x->sql);
	}
}
