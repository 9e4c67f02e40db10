/*
 * pgvalve audit --format json (docs/architecture.md, the audit command):
 * one document with the counts, the graph's nodes and edges, cycles, the
 * longest chains, cascade reach, findings and suggestions. Tables are named
 * as PostgreSQL prints them, schema-qualified, each part quoted only where
 * SQL needs it (public.orders, public."Orders"). Keys are a contract: add,
 * never rename.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

static cJSON *names(const struct audit_graph *g, const struct audit_list *l)
{
	cJSON *arr = cJSON_CreateArray();

	for (int i = 0; i < l->n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(g->tables[l->v[i]].display));
	return arr;
}

static cJSON *strings(char *const *v, int n)
{
	cJSON *arr = cJSON_CreateArray();

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(v[i]));
	return arr;
}

static cJSON *graph_json(const struct audit_graph *g)
{
	cJSON *graph = cJSON_CreateObject();
	cJSON *nodes = cJSON_AddArrayToObject(graph, "nodes"),
	      *edges = cJSON_AddArrayToObject(graph, "edges");

	for (int v = 0; v < g->n_tables; v++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "table", g->tables[v].display);
		cJSON_AddNumberToObject(o, "rows", (double)g->tables[v].rows);
		cJSON_AddNumberToObject(o, "bytes", (double)g->tables[v].bytes);
		cJSON_AddItemToArray(nodes, o);
	}
	for (int i = 0; i < g->n_fks; i++) {
		const struct audit_fk *fk = &g->fks[i];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "constraint", fk->name);
		cJSON_AddStringToObject(o, "from", g->tables[fk->from].display);
		cJSON_AddStringToObject(o, "to", g->tables[fk->to].display);
		cJSON_AddItemToObject(o, "columns", strings(fk->columns, fk->n_columns));
		cJSON_AddItemToObject(o, "ref_columns", strings(fk->ref_columns, fk->n_columns));
		cJSON_AddStringToObject(o, "on_delete", audit_action_name(fk->on_delete));
		cJSON_AddStringToObject(o, "on_update", audit_action_name(fk->on_update));
		cJSON_AddBoolToObject(o, "validated", fk->validated);
		cJSON_AddBoolToObject(o, "deferrable", fk->deferrable);
		cJSON_AddBoolToObject(o, "indexed", fk->indexed);
		cJSON_AddItemToArray(edges, o);
	}
	return graph;
}

static cJSON *finding_json(const struct audit_graph *g, const struct audit_finding *x)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "kind", x->kind);
	cJSON_AddStringToObject(o, "severity", audit_severity_name(x->severity));
	if (x->table >= 0)
		cJSON_AddStringToObject(o, "table", g->tables[x->table].display);
	else
		cJSON_AddNullToObject(o, "table");
	if (x->constraint)
		cJSON_AddStringToObject(o, "constraint", x->constraint);
	else
		cJSON_AddNullToObject(o, "constraint");
	cJSON_AddStringToObject(o, "message", x->message);
	if (x->hint)
		cJSON_AddStringToObject(o, "hint", x->hint);
	else
		cJSON_AddNullToObject(o, "hint");
	if (strcmp(x->kind, "orphans") == 0) {
		/* Orphan counts also as data: the number (null when it could not be counted) and samples. */
		if (x->count >= 0)
			cJSON_AddNumberToObject(o, "count", (double)x->count);
		else
			cJSON_AddNullToObject(o, "count");
		cJSON_AddItemToObject(o, "samples", strings(x->samples, x->n_samples));
	}
	return o;
}

cJSON *audit_to_json(const struct audit_report *r)
{
	const struct audit_graph *g = r->g;
	const struct audit_analysis *a = r->a;
	cJSON *doc = cJSON_CreateObject(), *arr, *reach;

	cJSON_AddNumberToObject(doc, "tables", g->n_tables);
	cJSON_AddNumberToObject(doc, "foreign_keys", g->n_fks);
	cJSON_AddItemToObject(doc, "graph", graph_json(g));
	arr = cJSON_AddArrayToObject(doc, "cycles");
	for (int i = 0; i < a->n_cycles; i++)
		cJSON_AddItemToArray(arr, names(g, &a->cycles[i]));
	arr = cJSON_AddArrayToObject(doc, "longest_chains");
	for (int i = 0; i < a->n_chains; i++)
		cJSON_AddItemToArray(arr, names(g, &a->chains[i]));
	reach = cJSON_AddObjectToObject(doc, "cascade_reach");
	for (int v = 0; v < g->n_tables; v++)
		if (a->reach[v].n > 0)
			cJSON_AddItemToObject(reach, g->tables[v].display, names(g, &a->reach[v]));
	arr = cJSON_AddArrayToObject(doc, "findings");
	for (int i = 0; i < r->f->n; i++)
		cJSON_AddItemToArray(arr, finding_json(g, &r->f->v[i]));
	arr = cJSON_AddArrayToObject(doc, "suggestions");
	for (int i = 0; r->s && i < r->s->n; i++) {
		const struct audit_suggestion *x = &r->s->v[i];
		cJSON *o = cJSON_CreateObject();
		char *col[1] = { g->columns[x->column].name }, *ref[1] = { g->keys[x->key].column };

		cJSON_AddStringToObject(o, "table", g->tables[x->table].display);
		cJSON_AddItemToObject(o, "columns", strings(col, 1));
		cJSON_AddStringToObject(o, "references", g->tables[x->ref_table].display);
		cJSON_AddItemToObject(o, "ref_columns", strings(ref, 1));
		if (x->orphans >= 0)
			cJSON_AddNumberToObject(o, "orphans", (double)x->orphans);
		else
			cJSON_AddNullToObject(o, "orphans");
		cJSON_AddStringToObject(o, "constraint", x->name);
		cJSON_AddStringToObject(o, "sql", x->sql);
		/* The index the key's column lacks (null when one leads with it): --format sql adds it first. */
		if (x->index_sql)
			cJSON_AddStringToObject(o, "index_sql", x->index_sql);
		else
			cJSON_AddNullToObject(o, "index_sql");
		cJSON_AddItemToArray(arr, o);
	}
	return doc;
}
