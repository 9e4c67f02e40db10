/*
 * SET lines of a migration file (see rules_internal.h; docs/architecture.md,
 * "plan"): search_path is honoured (it decides which table a name is) and
 * passed on to the statements run as written; the timeouts pgvalve owns are
 * dropped and said so; harmless session settings are dropped; anything else
 * is refused, since pgvalve cannot tell what it changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "quote.h"
#include "rules_internal.h"

/*
 * SELECT pg_catalog.set_config('search_path', '…', false), as pg_dump and
 * Rails' structure.sql write it: read like SET search_path.
 */
bool rules_set_config_search_path(const cJSON *node, const char **value)
{
	const cJSON *target = pgtree_node(pgtree_list_at(pgtree_get(node, "targetList"), 0), "ResTarget");
	const cJSON *fc = pgtree_node(pgtree_get(target, "val"), "FuncCall");
	const cJSON *names = pgtree_get(fc, "funcname"), *args = pgtree_get(fc, "args");
	const char *fn = pgtree_string(pgtree_list_at(names, pgtree_list_len(names) - 1));
	const char *what = pgtree_str(pgtree_get(pgtree_node(pgtree_list_at(args, 0), "A_Const"), "sval"),
				      "sval");

	if (!fc || !fn || strcmp(fn, "set_config") != 0 || pgtree_list_len(args) != 3 ||
	    pgtree_list_len(pgtree_get(node, "targetList")) != 1 || pgtree_get(node, "fromClause") || !what ||
	    strcmp(what, "search_path") != 0)
		return false;
	*value = pgtree_str(pgtree_get(pgtree_node(pgtree_list_at(args, 1), "A_Const"), "sval"), "sval");
	return *value != NULL;
}

enum rules_outcome rules_set(struct rules_ctx *c, const cJSON *node)
{
	const struct plan_input *in = &c->p->inputs[c->input];
	const char *name = pgtree_str(node, "name");
	static const char *const session[] = { "client_encoding",
					       "standard_conforming_strings",
					       "client_min_messages",
					       "row_security",
					       "xmloption",
					       "check_function_bodies",
					       "default_tablespace",
					       "default_table_access_method",
					       "idle_in_transaction_session_timeout" };

	if (!name || !pgtree_str_is(node, "kind", "VAR_SET_VALUE"))
		return rules_unsupported(c, "this SET form");
	if (strcmp(name, "search_path") == 0) {
		const cJSON *first = pgtree_node(pgtree_list_at(pgtree_get(node, "args"), 0), "A_Const");
		const char *schema = pgtree_str(pgtree_get(first, "sval"), "sval");
		const cJSON *arg;

		/* "$user" names the role's own schema, which rarely exists: names go to the next one. */
		if (schema && strcmp(schema, "$user") == 0) {
			const cJSON *second = pgtree_node(pgtree_list_at(pgtree_get(node, "args"), 1),
							  "A_Const");

			schema = pgtree_str(pgtree_get(second, "sval"), "sval");
		}
		struct strbuf list = { 0 };
		char *quoted;

		if (!schema || strlen(schema) >= PLAN_NAME_MAX)
			return rules_unsupported(c, "this SET search_path");
		cJSON_ArrayForEach(arg, pgtree_get(node, "args"))
		{
			const char *one = pgtree_str(pgtree_get(pgtree_node(arg, "A_Const"), "sval"), "sval");

			if (!one) {
				free(strbuf_take(&list));
				return rules_unsupported(c, "this SET search_path");
			}
			if (list.len)
				strbuf_put(&list, ", ");
			quote_append_ident(&list, one);
		}
		quoted = strbuf_take(&list);
		if (strlen(quoted) >= sizeof(c->search_list)) {
			free(quoted);
			return rules_unsupported(c, "a SET search_path this long");
		}
		snprintf(c->search_list, sizeof(c->search_list), "%s", quoted);
		free(quoted);
		snprintf(c->search_path, sizeof(c->search_path), "%s", schema);
		input_note(c->p,
			   "%s:%d: SET search_path: names without a schema in the rest of the file are "
			   "read as %s.name, and statements run as written get the same search_path",
			   in->file, in->line, schema);
		return RULE_DONE;
	}
	if (strcmp(name, "statement_timeout") == 0 || strcmp(name, "lock_timeout") == 0) {
		input_note(c->p,
			   "%s:%d: SET %s is dropped: pgvalve sets its own timeouts for each step "
			   "(--lock-timeout, --max-stall)",
			   in->file, in->line, name);
		return RULE_DONE;
	}
	for (size_t i = 0; i < sizeof(session) / sizeof(session[0]); i++) {
		if (strcmp(name, session[i]) == 0) {
			input_note(c->p,
				   "%s:%d: SET %s is dropped (a session setting pgvalve's own session keeps)",
				   in->file, in->line, name);
			return RULE_DONE;
		}
	}
	return rules_unsupported(
		c, "SET %s (pgvalve does not know whether it changes what the migration means)", name);
}
