/*
 * The key type change's rule (docs/architecture.md §4.9): the one ALTER
 * TABLE form it takes. rules_table.c asks keychange_wants() for an ALTER
 * COLUMN … TYPE and hands the statement to keychange_rule(), which records
 * what the file asks; what that means (a key, the columns referencing it)
 * only the catalog can say, so the steps come later (keychange_plan.c).
 */
#include <stdio.h>
#include <string.h>

#include "input.h"
#include "keychange.h"
#include "rules_internal.h"
#include "xalloc.h"

bool keychange_wants(const cJSON *at)
{
	const cJSON *col = pgtree_node(pgtree_get(at, "def"), "ColumnDef");
	const cJSON *type = pgtree_get(col, "typeName"), *names = pgtree_get(type, "names");
	const char *t = pgtree_string(pgtree_list_at(names, pgtree_list_len(names) - 1));

	if (!t || !pgtree_str(at, "name") || pgtree_get(col, "raw_default") ||
	    pgtree_get(col, "collClause") || pgtree_get(type, "arrayBounds") || pgtree_flag(type, "setof") ||
	    pgtree_list_len(pgtree_get(type, "typmods")))
		return false;
	/* bigint is pg_catalog.int8 to the parser; int8 written as such is int8 alone */
	return strcmp(t, "int8") == 0;
}

enum rules_outcome keychange_rule(struct rules_ctx *c, const struct rules_target *t, const char *column)
{
	struct plan *p = c->p;
	struct plan_keychange_req *r;

	p->keychange_reqs = xrealloc(p->keychange_reqs, sizeof(*r) * (size_t)(p->n_keychange_reqs + 1));
	r = &p->keychange_reqs[p->n_keychange_reqs++];
	memset(r, 0, sizeof(*r));
	r->table = t->table;
	snprintf(r->column, sizeof(r->column), "%s", column);
	r->input = c->input;
	return RULE_DONE;
}
