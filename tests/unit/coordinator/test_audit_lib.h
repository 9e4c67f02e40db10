/*
 * Hand-built foreign-key graphs for the audit unit tests: tables t0..tN-1
 * (schema "public", in scope, with a primary key) and foreign keys added
 * one by one, with one integer column each and an index unless said.
 */
#ifndef PGVALVE_TEST_AUDIT_LIB_H
#define PGVALVE_TEST_AUDIT_LIB_H

#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "xalloc.h"

static inline void tg_init(struct audit_graph *g, int n)
{
	memset(g, 0, sizeof(*g));
	g->n_tables = n;
	g->tables = xcalloc((size_t)n + 1, sizeof(struct audit_table));
	for (int v = 0; v < n; v++) {
		g->tables[v].oid = (unsigned)(1000 + v);
		g->tables[v].schema = xstrdup("public");
		g->tables[v].name = xasprintf("t%d", v);
		g->tables[v].display = xasprintf("public.t%d", v);
		g->tables[v].has_pk = true;
		g->tables[v].in_scope = true;
	}
}

static inline struct audit_fk *tg_fk(struct audit_graph *g, int from, int to, enum audit_action on_delete)
{
	struct audit_fk *fk;

	g->fks = xrealloc(g->fks, sizeof(struct audit_fk) * (size_t)(g->n_fks + 1));
	fk = &g->fks[g->n_fks++];
	memset(fk, 0, sizeof(*fk));
	fk->name = xasprintf("t%d_t%d_id_fkey%d", from, to, g->n_fks);
	fk->from = from;
	fk->to = to;
	fk->n_columns = 1;
	fk->columns = xcalloc(1, sizeof(char *));
	fk->ref_columns = xcalloc(1, sizeof(char *));
	fk->types = xcalloc(1, sizeof(char *));
	fk->ref_types = xcalloc(1, sizeof(char *));
	fk->columns[0] = xasprintf("t%d_id", to);
	fk->ref_columns[0] = xstrdup("id");
	fk->types[0] = xstrdup("integer");
	fk->ref_types[0] = xstrdup("integer");
	fk->on_delete = on_delete;
	fk->validated = true;
	fk->indexed = true;
	fk->ref_is_constraint = true;
	return fk;
}

#endif
