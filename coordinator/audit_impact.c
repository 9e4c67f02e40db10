/*
 * The impact part of pgvalve plan (see audit_impact.h): for each existing
 * table a migration's steps alter or lock, the foreign keys that reference
 * it and what ON DELETE CASCADE from it reaches, read with the audit's
 * catalog queries (every schema) and graph algorithms. Tables the
 * migration creates are not there yet and are left out.
 */
#include "audit_impact.h"

#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "xalloc.h"

/* Adds 'q' (an affected table) to the impact unless it is missing or already there. */
static bool add_table(PGconn *c, struct audit_impact *imp, const struct qname *q, struct db_error *err)
{
	struct catalog_relation rel;
	unsigned oid;

	if (!q->name[0])
		return true;
	switch (catalog_relation(c, q, &rel, err)) {
	case CATALOG_ERROR:
		return false;
	case CATALOG_MISSING:
		return true; /* created by the migration */
	case CATALOG_FOUND:
		break;
	}
	oid = (unsigned)strtoul(rel.oid, NULL, 10);
	for (int v = 0; v < imp->g.n_tables; v++)
		if (imp->g.tables[v].oid == oid) {
			for (int i = 0; i < imp->n_tables; i++)
				if (imp->tables[i] == v)
					return true;
			imp->tables = xrealloc(imp->tables, sizeof(int) * (size_t)(imp->n_tables + 1));
			imp->tables[imp->n_tables++] = v;
		}
	return true;
}

bool audit_impact_read(PGconn *c, const struct plan *p, struct audit_impact *imp, struct db_error *err)
{
	struct audit_scope scope = { 0 };

	memset(imp, 0, sizeof(*imp));
	if (!audit_read(c, &scope, &imp->g, err))
		return false;
	audit_analyze(&imp->g, &imp->a);
	imp->analyzed = true;
	for (int s = 0; s < p->n_steps; s++)
		if (!add_table(c, imp, &p->steps[s].table, err) ||
		    !add_table(c, imp, &p->steps[s].other, err))
			return false;
	return true;
}

static cJSON *strings(char *const *v, int n)
{
	cJSON *arr = cJSON_CreateArray();

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(v[i]));
	return arr;
}

cJSON *audit_impact_to_json(const struct audit_impact *imp)
{
	const struct audit_graph *g = &imp->g;
	cJSON *arr = cJSON_CreateArray();

	for (int i = 0; i < imp->n_tables; i++) {
		int t = imp->tables[i];
		cJSON *o = cJSON_CreateObject(), *refs, *reach;

		cJSON_AddStringToObject(o, "table", g->tables[t].display);
		cJSON_AddNumberToObject(o, "rows", (double)g->tables[t].rows);
		refs = cJSON_AddArrayToObject(o, "referenced_by");
		for (int e = 0; e < g->n_fks; e++) {
			const struct audit_fk *fk = &g->fks[e];
			cJSON *r;

			if (fk->to != t)
				continue;
			r = cJSON_CreateObject();
			cJSON_AddStringToObject(r, "constraint", fk->name);
			cJSON_AddStringToObject(r, "from", g->tables[fk->from].display);
			cJSON_AddItemToObject(r, "columns", strings(fk->columns, fk->n_columns));
			cJSON_AddStringToObject(r, "on_delete", audit_action_name(fk->on_delete));
			cJSON_AddBoolToObject(r, "validated", fk->validated);
			cJSON_AddBoolToObject(r, "indexed", fk->indexed);
			cJSON_AddItemToArray(refs, r);
		}
		reach = cJSON_AddArrayToObject(o, "cascade_reach");
		for (int k = 0; k < imp->a.reach[t].n; k++)
			cJSON_AddItemToArray(reach,
					     cJSON_CreateString(g->tables[imp->a.reach[t].v[k]].display));
		cJSON_AddNumberToObject(o, "cascade_rows", (double)imp->a.reach_rows[t]);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

void audit_impact_print(FILE *out, const struct audit_impact *imp)
{
	const struct audit_graph *g = &imp->g;

	if (imp->n_tables == 0)
		return;
	fprintf(out, "\nImpact: the existing tables this migration touches\n");
	for (int i = 0; i < imp->n_tables; i++) {
		int t = imp->tables[i], n = 0;
		const struct audit_list *r = &imp->a.reach[t];

		for (int e = 0; e < g->n_fks; e++)
			n += g->fks[e].to == t;
		fprintf(out, "  %s (~%lld rows): referenced by %d foreign key(s)%s\n", g->tables[t].display,
			g->tables[t].rows, n, n ? ":" : "");
		for (int e = 0; e < g->n_fks; e++) {
			const struct audit_fk *fk = &g->fks[e];

			if (fk->to != t)
				continue;
			fprintf(out, "      %s (", g->tables[fk->from].display);
			for (int k = 0; k < fk->n_columns; k++)
				fprintf(out, "%s%s", k ? ", " : "", fk->columns[k]);
			fprintf(out, ")  %s, on delete %s%s%s\n", fk->name, audit_action_name(fk->on_delete),
				fk->validated ? "" : ", NOT VALID", fk->indexed ? "" : ", unindexed");
		}
		if (r->n == 0) {
			fprintf(out, "    a DELETE on it cascades nowhere\n");
			continue;
		}
		fprintf(out, "    a DELETE on it cascades to %d table(s), ~%lld rows:", r->n,
			imp->a.reach_rows[t]);
		for (int k = 0; k < r->n; k++)
			fprintf(out, "%s %s", k ? "," : "", g->tables[r->v[k]].display);
		fputc('\n', out);
	}
}

void audit_impact_free(struct audit_impact *imp)
{
	if (imp->analyzed)
		audit_analysis_free(&imp->a, imp->g.n_tables);
	audit_graph_free(&imp->g);
	free(imp->tables);
	memset(imp, 0, sizeof(*imp));
}
