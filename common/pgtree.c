/*
 * libpg_query's parse tree read with cJSON (see pgtree.h): parsing, field
 * accessors, RangeVar names and tree comparison. It knows the tree's shape,
 * not what any statement means.
 */
#include "pgvalve/pgtree.h"

#include <pg_query.h>
#include <stdio.h>
#include <string.h>

cJSON *pgtree_parse(const char *sql, struct pgtree_error *err)
{
	PgQueryParseResult r = pg_query_parse(sql);
	cJSON *tree = NULL;

	if (r.error) {
		err->kind = PGTREE_SYNTAX;
		err->cursorpos = r.error->cursorpos;
		snprintf(err->message, sizeof(err->message), "%s", r.error->message);
	} else if (!(tree = cJSON_Parse(r.parse_tree))) {
		/* cJSON refuses nesting deeper than CJSON_NESTING_LIMIT. */
		err->kind = PGTREE_TOO_DEEP;
		err->cursorpos = 0;
		snprintf(err->message, sizeof(err->message), "nested too deeply");
	}
	pg_query_free_parse_result(r);
	return tree;
}

const cJSON *pgtree_stmts(const cJSON *tree)
{
	return pgtree_get(tree, "stmts");
}

const cJSON *pgtree_get(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

const char *pgtree_str(const cJSON *obj, const char *key)
{
	const cJSON *v = pgtree_get(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool pgtree_str_is(const cJSON *obj, const char *key, const char *want)
{
	const char *v = pgtree_str(obj, key);

	return v && strcmp(v, want) == 0;
}

bool pgtree_flag(const cJSON *obj, const char *key)
{
	return cJSON_IsTrue(pgtree_get(obj, key));
}

bool pgtree_int(const cJSON *obj, const char *key, int *out)
{
	const cJSON *v = pgtree_get(obj, key);

	if (!cJSON_IsNumber(v))
		return false;
	*out = v->valueint;
	return true;
}

int pgtree_list_len(const cJSON *list)
{
	return cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
}

const cJSON *pgtree_list_at(const cJSON *list, int i)
{
	return cJSON_IsArray(list) && i >= 0 ? cJSON_GetArrayItem(list, i) : NULL;
}

bool pgtree_is_node(const cJSON *child)
{
	return child->string && child->string[0] >= 'A' && child->string[0] <= 'Z' && cJSON_IsObject(child);
}

const char *pgtree_kind(const cJSON *node)
{
	const cJSON *child = cJSON_IsObject(node) ? node->child : NULL;

	return child && pgtree_is_node(child) ? child->string : NULL;
}

const cJSON *pgtree_node(const cJSON *node, const char *kind)
{
	const cJSON *fields = pgtree_get(node, kind);

	return cJSON_IsObject(fields) ? fields : NULL;
}

const char *pgtree_string(const cJSON *node)
{
	return pgtree_str(pgtree_node(node, "String"), "sval");
}

bool pgtree_range_var(const cJSON *rv, struct pgtree_range_var *out)
{
	*out = (struct pgtree_range_var){
		.catalog = pgtree_str(rv, "catalogname"),
		.schema = pgtree_str(rv, "schemaname"),
		.name = pgtree_str(rv, "relname"),
		.inh = pgtree_flag(rv, "inh"),
	};
	return out->name != NULL;
}

static void strip_locations(cJSON *node)
{
	cJSON *child = node ? node->child : NULL, *next;

	for (; child; child = next) {
		next = child->next;
		if (child->string && strcmp(child->string, "location") == 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(node, child));
		else
			strip_locations(child);
	}
}

bool pgtree_same(const cJSON *a, const cJSON *b, const char *ignore)
{
	cJSON *x = cJSON_Duplicate(a, true), *y = cJSON_Duplicate(b, true);
	bool same = false;

	if (x && y) {
		strip_locations(x);
		strip_locations(y);
		if (ignore) {
			cJSON_DeleteItemFromObjectCaseSensitive(x, ignore);
			cJSON_DeleteItemFromObjectCaseSensitive(y, ignore);
		}
		same = cJSON_Compare(x, y, true);
	}
	cJSON_Delete(x);
	cJSON_Delete(y);
	return same;
}
