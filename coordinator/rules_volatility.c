/*
 * Which functions a column default calls, and whether one is volatile (a
 * volatile default fills every row with its own value: a table rewrite).
 * Decided from what this file's CREATE FUNCTIONs say, a short list of
 * PostgreSQL's own functions, and otherwise left to the preflight, which
 * reads pg_proc (see rules_internal.h; docs/architecture.md, "plan").
 */
#include <stdio.h>
#include <string.h>

#include "rules_internal.h"

/* Functions a default may call without rewriting the table: immutable or stable in PostgreSQL. */
static bool known_nonvolatile(const char *fn)
{
	static const char *const names[] = { "now",
					     "transaction_timestamp",
					     "statement_timestamp",
					     "lower",
					     "upper",
					     "length",
					     "jsonb_build_object",
					     "json_build_object",
					     "jsonb_build_array",
					     "array_fill",
					     "make_date",
					     "to_jsonb" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(fn, names[i]) == 0)
			return true;
	return false;
}

/* Volatile in PostgreSQL: a default calling one fills every row with its own value. */
static bool known_volatile(const char *fn)
{
	static const char *const names[] = { "random",           "gen_random_uuid", "uuid_generate_v1",
					     "uuid_generate_v4", "nextval",         "clock_timestamp",
					     "timeofday",        "setval",          "txid_current" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(fn, names[i]) == 0)
			return true;
	return false;
}

/* The function 'fn' an earlier CREATE FUNCTION of this file made (the last one), or -1. */
static int created_function(const struct rules_ctx *c, const char *fn)
{
	for (int i = c->n_functions - 1; i >= 0; i--)
		if (strcmp(c->functions[i].name, fn) == 0)
			return i;
	return -1;
}

/*
 * The functions a default expression calls: the first known volatile one
 * into 'volatile_fn' (""), and those neither known volatile nor known
 * immutable or stable into 'unknown', comma-separated, for the preflight to
 * read their volatility from pg_proc. False when 'unknown' overflows.
 */
bool rules_default_calls(const struct rules_ctx *c, const cJSON *n, char volatile_fn[PLAN_NAME_MAX],
			 char *unknown, size_t cap)
{
	const cJSON *child;

	if (!cJSON_IsArray(n) && !cJSON_IsObject(n))
		return true;
	if (cJSON_IsObject(n)) {
		const cJSON *fc = pgtree_node(n, "FuncCall");
		const cJSON *names = pgtree_get(fc, "funcname");
		const char *fn = fc ? pgtree_string(pgtree_list_at(names, pgtree_list_len(names) - 1)) : NULL;

		int mine = fn ? created_function(c, fn) : -1;

		if (fc && !fn)
			return false;
		if (mine >= 0) {
			/* created by this file: its CREATE FUNCTION says (VOLATILE unless it says otherwise) */
			if (c->functions[mine].is_volatile && !volatile_fn[0])
				snprintf(volatile_fn, PLAN_NAME_MAX, "%s", fn);
		} else if (fn && known_volatile(fn) && !volatile_fn[0])
			snprintf(volatile_fn, PLAN_NAME_MAX, "%s", fn);
		else if (fn && !known_volatile(fn) && !known_nonvolatile(fn)) {
			size_t len = strlen(unknown);

			if (len + strlen(fn) + 2 > cap || strchr(fn, ','))
				return false;
			snprintf(unknown + len, cap - len, "%s%s", len ? "," : "", fn);
		}
	}
	cJSON_ArrayForEach(child,
			   n) if (!rules_default_calls(c, child, volatile_fn, unknown, cap)) return false;
	return true;
}
