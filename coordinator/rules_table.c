/*
 * The rules for what ORM migration files hold besides constraints and
 * indexes (see rules.h; docs/architecture.md, "plan"): new objects (CREATE
 * TABLE / SEQUENCE / TYPE / VIEW / FUNCTION, COMMENT ON) run before the
 * cutover, a new table's foreign keys to existing tables cut out and added
 * NOT VALID at cutover; the brief metadata-only ALTER TABLE forms (ADD
 * COLUMN, DROP COLUMN, SET/DROP DEFAULT, DROP NOT NULL, RENAME)
 * in the cutover transaction under an `all` hold; and the statements that
 * rewrite or scan a table under a strong lock, refused with the safe recipe.
 * SET lines are rules_set.c's; which functions a default calls,
 * rules_volatility.c's. Dispatch, the plan being built and the constraint rules
 * are rules.c's and rules_constraint.c's.
 *
 * Statements run as written here are the user's own text; the one rewrite,
 * cutting foreign keys out of CREATE TABLE or ADD COLUMN, is rules_cut.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quote.h"
#include "keychange.h"
#include "rules_internal.h"
#include "xalloc.h"

/* ---- tables this file creates ---- */

bool rules_created(const struct plan *p, const struct qname *q)
{
	for (int i = 0; i < p->n_created; i++)
		if (rules_qname_eq(&p->created[i], q))
			return true;
	return false;
}

static void push_created(struct plan *p, const struct qname *q)
{
	p->created = xrealloc(p->created, sizeof(*p->created) * (size_t)(p->n_created + 1));
	p->created[p->n_created++] = *q;
}

bool rules_table_altered_at_cutover(const struct rules_ctx *c, const struct qname *table)
{
	const struct plan *p = c->p;

	for (int i = 0; i < p->n_steps; i++)
		if (p->steps[i].kind == STEP_ALTER && p->steps[i].phase == PHASE_CUTOVER &&
		    rules_qname_eq(&p->steps[i].table, table))
			return true;
	return false;
}

/*
 * The statement as written, with SET [LOCAL] search_path before it when the
 * file set one: LOCAL in a transaction (cutover), the session's otherwise.
 */
static char *as_written(const struct rules_ctx *c, const char *sql, bool in_transaction)
{
	struct strbuf b = { 0 };

	if (!c->search_path[0])
		return xstrdup(sql);
	strbuf_put(&b, in_transaction ? "SET LOCAL search_path TO " : "SET search_path TO ");
	strbuf_put(&b, c->search_list);
	strbuf_put(&b, "; ");
	strbuf_put(&b, sql);
	return strbuf_take(&b);
}

/* A step before the cutover, no lock on existing tables, no hold. */
static void push_new_object(struct rules_ctx *c, const struct qname *q, char *sql)
{
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_CREATE_OBJECT,
					      .phase = PHASE_PREPARE,
					      .lock = LOCK_NONE,
					      .hold = HOLD_NONE_NEEDED,
					      .table = q,
					      .constraint = -1,
					      .drop = -1 },
			sql);
}

/* A brief ACCESS EXCLUSIVE step in the cutover transaction, holding all work on 'table'. */
static struct plan_step *push_brief(struct rules_ctx *c, const struct qname *table, char *sql)
{
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_ALTER,
					      .phase = PHASE_CUTOVER,
					      .lock = LOCK_ACCESS_EXCLUSIVE,
					      .hold = HOLD_ALL_NEEDED,
					      .table = table,
					      .constraint = -1,
					      .drop = -1 },
			sql);
	return &c->p->steps[c->p->n_steps - 1];
}

/*
 * The statement's text with 'cuts' made, checked to parse to 'copy' (its
 * tree without the keys cut out): a caller's own text is never trusted
 * otherwise. Frees 'copy'; on failure (NULL) frees the cut keys 'ks' too.
 */
static char *cut_checked(struct rules_ctx *c, cJSON *copy, struct rules_cut *cuts, int n, cJSON **ks)
{
	char *sql = n ? rules_cut_apply(c->sql, c->len, cuts, n) : xstrdup(c->sql);

	if (!sql || !rules_cut_reads_as(sql, copy)) {
		free(sql);
		sql = NULL;
		for (int k = 0; k < n; k++)
			cJSON_Delete(ks[k]);
	}
	cJSON_Delete(copy);
	return sql;
}

/* ---- CREATE TABLE and the other new objects ---- */

static enum rules_outcome plan_create_table(struct rules_ctx *c, const cJSON *node, const cJSON *stmt)
{
	struct qname table;
	cJSON *copy, *copy_elts, *ks[RULES_MAX_CUT];
	struct rules_cut cuts[RULES_MAX_CUT];
	const cJSON *elt;
	int n = 0, i = 0, removed = 0;
	char *sql;
	enum rules_outcome o;

	if (!rules_range_var(c, pgtree_get(node, "relation"), &table))
		return rules_unsupported(c, "a three-part table name (database.schema.table)");
	if (pgtree_get(node, "partbound") || pgtree_list_len(pgtree_get(node, "inhRelations")) > 0)
		return rules_unsupported(c, "CREATE TABLE … PARTITION OF / INHERITS (it locks the parent)");
	rules_resolve(c, &table);
	copy = cJSON_Duplicate(stmt, 1);
	copy_elts = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(copy, "CreateStmt"),
						     "tableElts");
	cJSON_ArrayForEach(elt, pgtree_get(node, "tableElts"))
	{
		const cJSON *con = pgtree_node(elt, "Constraint"), *col = pgtree_node(elt, "ColumnDef");
		struct qname ref;
		int loc;

		if (col) {
			cJSON *copy_col = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetArrayItem(copy_elts, i - removed), "ColumnDef");

			if (!rules_cut_column_fks(c, col, copy_col, &table, ks, cuts, &n))
				goto too_many;
		} else if (pgtree_str_is(con, "contype", "CONSTR_FOREIGN") &&
			   rules_range_var(c, pgtree_get(con, "pktable"), &ref)) {
			rules_resolve(c, &ref);
			if (!rules_qname_eq(&ref, &table) && !rules_created(c->p, &ref)) {
				if (n == RULES_MAX_CUT || !pgtree_int(con, "location", &loc) || loc < 0)
					goto too_many;
				ks[n] = cJSON_Duplicate(con, 1);
				cuts[n++] = rules_cut_table_element(c->sql, c->len, (size_t)loc);
				cJSON_DeleteItemFromArray(copy_elts, i - removed);
				removed++;
			}
		}
		i++;
	}
	sql = cut_checked(c, copy, cuts, n, ks);
	if (!sql)
		return rules_failed(c,
				    "cannot cut this CREATE TABLE's foreign keys out faithfully: create "
				    "the table without them and add each with ALTER TABLE … ADD FOREIGN KEY");
	push_new_object(c, &table, as_written(c, sql, false));
	free(sql);
	push_created(c->p, &table);
	if (n)
		input_note(c->p,
			   "%s:%d: the new table's foreign keys to existing tables are added NOT VALID at "
			   "cutover (writes wait on the referenced table, briefly) and validated after "
			   "(the new table is empty, so cheaply)",
			   c->p->inputs[c->input].file, c->p->inputs[c->input].line);
	o = rules_cut_add_fks(c, &table, ks, n);
	return o;
too_many:
	cJSON_Delete(copy);
	for (int k = 0; k < n; k++)
		cJSON_Delete(ks[k]);
	return rules_unsupported(c, "a CREATE TABLE with more than %d foreign keys", RULES_MAX_CUT);
}

/*
 * CREATE SEQUENCE / TYPE / VIEW / FUNCTION, COMMENT ON: before the cutover,
 * as written — but a COMMENT ON COLUMN of a table the cutover alters runs in
 * the cutover, after the ADD COLUMN it may need.
 */
static enum rules_outcome plan_new_object(struct rules_ctx *c, const char *kind, const cJSON *node)
{
	static const struct qname none = { .schema = "", .name = "" };
	const cJSON *names = pgtree_get(pgtree_node(pgtree_get(node, "object"), "List"), "items");
	int n = pgtree_list_len(names);
	struct qname table = { .schema = "" };

	if (strcmp(kind, "CommentStmt") == 0 && pgtree_str_is(node, "objtype", "OBJECT_COLUMN") && n >= 2 &&
	    n <= 3) {
		const char *name = pgtree_string(pgtree_list_at(names, n - 2));
		const char *schema = n == 3 ? pgtree_string(pgtree_list_at(names, 0)) : "";

		snprintf(table.name, sizeof(table.name), "%s", name ? name : "");
		snprintf(table.schema, sizeof(table.schema), "%s", schema ? schema : "");
		rules_resolve(c, &table);
		if (rules_table_altered_at_cutover(c, &table)) {
			push_brief(c, &table, as_written(c, c->sql, true));
			return RULE_DONE;
		}
	}
	push_new_object(c, &none, as_written(c, c->sql, false));
	return RULE_DONE;
}

/* ---- ALTER TABLE's brief forms ---- */

/*
 * CREATE [OR REPLACE] FUNCTION: remembered with its volatility (VOLATILE
 * unless IMMUTABLE or STABLE is written), then run before the cutover.
 */
static enum rules_outcome plan_function(struct rules_ctx *c, const char *kind, const cJSON *node)
{
	const cJSON *names = pgtree_get(node, "funcname"), *opt;
	const char *fn = pgtree_string(pgtree_list_at(names, pgtree_list_len(names) - 1));
	bool is_volatile = true;

	cJSON_ArrayForEach(opt, pgtree_get(node, "options"))
	{
		const cJSON *d = pgtree_node(opt, "DefElem");

		if (pgtree_str_is(d, "defname", "volatility"))
			is_volatile = !(
				pgtree_str_is(pgtree_node(pgtree_get(d, "arg"), "String"), "sval",
					      "immutable") ||
				pgtree_str_is(pgtree_node(pgtree_get(d, "arg"), "String"), "sval", "stable"));
	}
	if (fn && strlen(fn) < PLAN_NAME_MAX && c->n_functions < RULES_MAX_FUNCTIONS) {
		snprintf(c->functions[c->n_functions].name, PLAN_NAME_MAX, "%s", fn);
		c->functions[c->n_functions++].is_volatile = is_volatile;
	}
	return plan_new_object(c, kind, node);
}

static bool is_serial(const cJSON *type_name)
{
	const cJSON *names = pgtree_get(type_name, "names");
	const char *t = pgtree_string(pgtree_list_at(names, pgtree_list_len(names) - 1));

	return t &&
		(strcmp(t, "serial") == 0 || strcmp(t, "bigserial") == 0 || strcmp(t, "smallserial") == 0 ||
		 strcmp(t, "serial2") == 0 || strcmp(t, "serial4") == 0 || strcmp(t, "serial8") == 0);
}

/*
 * ADD COLUMN's checks; *needs_empty: NOT NULL without a default;
 * 'functions' (PLAN_CHECK_FUNCTIONS_MAX bytes): the functions its default
 * calls whose volatility only the catalog knows.
 */
static enum rules_outcome check_add_column(struct rules_ctx *c, const cJSON *col, bool *needs_empty,
					   char *functions)
{
	const cJSON *item;
	bool not_null = false, has_default = false;
	const char *column = pgtree_str(col, "colname");

	if (is_serial(pgtree_get(col, "typeName")))
		return rules_refuse(c,
				    "add the column as a plain integer without a default, create the "
				    "sequence, backfill in batches, then SET DEFAULT nextval(…)",
				    "ADD COLUMN %s of a serial type fills every row from a sequence: it "
				    "rewrites the table under ACCESS EXCLUSIVE",
				    column ? column : "");
	cJSON_ArrayForEach(item, pgtree_get(col, "constraints"))
	{
		const cJSON *con = pgtree_node(item, "Constraint");
		const char *type = pgtree_str(con, "contype");

		if (!type)
			continue;
		if (strcmp(type, "CONSTR_NOTNULL") == 0) {
			not_null = true;
		} else if (strcmp(type, "CONSTR_DEFAULT") == 0) {
			char v[PLAN_NAME_MAX] = "";

			has_default = true;
			if (!rules_default_calls(c, pgtree_get(con, "raw_expr"), v, functions,
						 PLAN_CHECK_FUNCTIONS_MAX))
				return rules_refuse(
					c,
					"add the column without a default, backfill in batches, then "
					"set the default",
					"ADD COLUMN %s with a default calling more functions than "
					"pgvalve checks",
					column ? column : "");
			if (v[0])
				return rules_refuse(
					c,
					"add the column without a default, backfill in batches, then set the "
					"default",
					"ADD COLUMN %s with a default calling %s(), which is volatile: "
					"the default is computed for every row, rewriting the table under "
					"ACCESS EXCLUSIVE",
					column ? column : "", v);
		} else if (strcmp(type, "CONSTR_GENERATED") == 0 || strcmp(type, "CONSTR_IDENTITY") == 0) {
			return rules_refuse(
				c,
				"add a plain column, backfill it in batches, then make it what "
				"you need",
				"ADD COLUMN %s … GENERATED fills every row: it rewrites the table "
				"under ACCESS EXCLUSIVE",
				column ? column : "");
		} else if (strcmp(type, "CONSTR_PRIMARY") == 0 || strcmp(type, "CONSTR_UNIQUE") == 0 ||
			   strcmp(type, "CONSTR_CHECK") == 0) {
			return rules_refuse(
				c,
				"add the column, then the constraint in its own ALTER TABLE "
				"(pgvalve builds it without blocking)",
				"ADD COLUMN %s with an inline %s constraint scans the table under "
				"ACCESS EXCLUSIVE",
				column ? column : "", type + 7);
		}
	}
	*needs_empty = not_null && !has_default;
	return RULE_DONE;
}

/*
 * ALTER COLUMN c TYPE text / varchar / varchar(n), without USING or
 * COLLATE: the forms that need no rewrite when the column is a varchar no
 * longer (the preflight checks that). *length: n, or -1 for no limit.
 */
static bool widening(const cJSON *at, int *length)
{
	const cJSON *col = pgtree_node(pgtree_get(at, "def"), "ColumnDef");
	const cJSON *type = pgtree_get(col, "typeName"), *names = pgtree_get(type, "names");
	const cJSON *mods = pgtree_get(type, "typmods");
	const char *t = pgtree_string(pgtree_list_at(names, pgtree_list_len(names) - 1));
	const cJSON *ival = pgtree_get(pgtree_node(pgtree_list_at(mods, 0), "A_Const"), "ival");

	if (!t || !pgtree_str(at, "name") || pgtree_get(col, "raw_default") ||
	    pgtree_get(col, "collClause") || pgtree_get(type, "arrayBounds") || pgtree_flag(type, "setof"))
		return false;
	*length = -1;
	if (strcmp(t, "text") == 0)
		return pgtree_list_len(mods) == 0;
	if (strcmp(t, "varchar") != 0 || pgtree_list_len(mods) > 1)
		return false;
	if (pgtree_list_len(mods) == 1 && !pgtree_int(ival, "ival", length))
		return false;
	return true;
}

/* Whether rules_table.c takes this ALTER TABLE subcommand (constraints are rules_constraint.c's). */
static bool is_brief(const char *subtype)
{
	static const char *const brief[] = { "AT_AddColumn", "AT_DropColumn", "AT_ColumnDefault",
					     "AT_DropNotNull", "AT_AlterColumnType" };

	for (size_t i = 0; i < sizeof(brief) / sizeof(brief[0]); i++)
		if (strcmp(subtype, brief[i]) == 0)
			return true;
	return false;
}

enum rules_outcome rules_table_alter(struct rules_ctx *c, const struct rules_target *t, const cJSON *stmt,
				     bool *handled)
{
	const cJSON *node = pgtree_node(stmt, "AlterTableStmt"), *cmd;
	cJSON *copy = cJSON_Duplicate(stmt, 1), *copy_cmds, *ks[RULES_MAX_CUT];
	struct rules_cut cuts[RULES_MAX_CUT];
	int n_brief = 0, n_other = 0, n = 0, i = 0;
	bool needs_empty = false;
	char functions[PLAN_CHECK_FUNCTIONS_MAX] = "", type_column[PLAN_NAME_MAX] = "";
	int length = -1;
	struct plan_step *st;
	char *sql;

	*handled = false;
	copy_cmds = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(copy, "AlterTableStmt"),
						     "cmds");
	cJSON_ArrayForEach(cmd, pgtree_get(node, "cmds"))
	{
		const char *subtype = pgtree_str(pgtree_node(cmd, "AlterTableCmd"), "subtype");

		if (subtype && is_brief(subtype))
			n_brief++;
		else
			n_other++;
	}
	if (n_brief == 0) {
		cJSON_Delete(copy);
		return RULE_DONE;
	}
	*handled = true;
	if (n_other) {
		cJSON_Delete(copy);
		return rules_refuse(c,
				    "write one ALTER TABLE for the columns and another for the "
				    "constraints (or the rest)",
				    "an ALTER TABLE that changes columns together with constraints or other "
				    "things (pgvalve runs them in different phases)");
	}
	cJSON_ArrayForEach(cmd, pgtree_get(node, "cmds"))
	{
		const cJSON *at = pgtree_node(cmd, "AlterTableCmd");
		const char *subtype = pgtree_str(at, "subtype");
		const cJSON *col = pgtree_node(pgtree_get(at, "def"), "ColumnDef");
		enum rules_outcome o;
		bool empty = false;

		/* TYPE bigint alone: the online key type change (keychange.c), planned from the catalog */
		if (strcmp(subtype, "AT_AlterColumnType") == 0 && n_brief == 1 && keychange_wants(at)) {
			cJSON_Delete(copy);
			return keychange_rule(c, t, pgtree_str(at, "name"));
		}
		if (strcmp(subtype, "AT_AlterColumnType") == 0 && widening(at, &length) && !type_column[0]) {
			snprintf(type_column, sizeof(type_column), "%s", pgtree_str(at, "name"));
		} else if (strcmp(subtype, "AT_AlterColumnType") == 0) {
			cJSON_Delete(copy);
			for (int k = 0; k < n; k++)
				cJSON_Delete(ks[k]);
			return rules_refuse(
				c,
				"add a new column of the new type, write to both, backfill in batches, "
				"then swap them in a brief cutover",
				"ALTER COLUMN %s TYPE: a change other than to text or a longer varchar "
				"(one per statement, without USING) may rewrite the table under ACCESS "
				"EXCLUSIVE",
				pgtree_str(at, "name") ? pgtree_str(at, "name") : "");
		}
		if (strcmp(subtype, "AT_AddColumn") == 0 && col) {
			cJSON *copy_col = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(copy_cmds, i),
								 "AlterTableCmd"),
				"def");

			if ((o = check_add_column(c, col, &empty, functions)) != RULE_DONE ||
			    !rules_cut_column_fks(c, col,
						  cJSON_GetObjectItemCaseSensitive(copy_col, "ColumnDef"),
						  &t->table, ks, cuts, &n)) {
				cJSON_Delete(copy);
				for (int k = 0; k < n; k++)
					cJSON_Delete(ks[k]);
				return o != RULE_DONE
					? o
					: rules_unsupported(c, "more than %d foreign keys", RULES_MAX_CUT);
			}
			needs_empty |= empty;
		}
		i++;
	}
	sql = cut_checked(c, copy, cuts, n, ks);
	if (!sql)
		return rules_failed(c,
				    "cannot cut this ADD COLUMN's REFERENCES out faithfully: add the "
				    "column, then the foreign key with ALTER TABLE … ADD FOREIGN KEY");
	st = push_brief(c, &t->table, as_written(c, sql, true));
	st->needs_empty = needs_empty && !rules_created(c->p, &t->table);
	snprintf(st->check_functions, sizeof(st->check_functions), "%s", functions);
	if (type_column[0]) {
		snprintf(st->check_type_column, sizeof(st->check_type_column), "%s", type_column);
		st->check_type_length = length;
		input_note(c->p,
			   "%s:%d: ALTER COLUMN %s TYPE runs at cutover: the preflight checks in the catalog "
			   "that the column is varchar (or text) no longer than the new type, so nothing is "
			   "rewritten",
			   c->p->inputs[c->input].file, c->p->inputs[c->input].line, type_column);
	}
	if (functions[0])
		input_note(c->p,
			   "%s:%d: the default calls %s: the preflight reads from the catalog whether it is "
			   "volatile (which would rewrite the table) and refuses it if so",
			   c->p->inputs[c->input].file, c->p->inputs[c->input].line, functions);
	free(sql);
	if (n)
		input_note(c->p,
			   "%s:%d: the column is added at cutover and its foreign key separately, NOT "
			   "VALID, then validated without a hold",
			   c->p->inputs[c->input].file, c->p->inputs[c->input].line);
	return rules_cut_add_fks(c, &t->table, ks, n);
}

/* ---- other statements ---- */

static enum rules_outcome plan_rename(struct rules_ctx *c, const cJSON *node)
{
	struct qname table;
	const cJSON *rel = pgtree_get(node, "relation");

	if (!rel || !rules_range_var(c, rel, &table))
		return rules_unsupported(c,
					 "a RENAME of something other than a table, column, constraint "
					 "or index");
	rules_resolve(c, &table);
	if (pgtree_str_is(node, "renameType", "OBJECT_TABLE") && pgtree_str(node, "newname")) {
		struct rules_rename *r;

		if (c->n_renames == RULES_MAX_RENAMES)
			return rules_unsupported(c, "more than %d table renames in one file",
						 RULES_MAX_RENAMES);
		r = &c->renames[c->n_renames++];
		r->from = table;
		r->to = table; /* RENAME TO keeps the schema */
		snprintf(r->to.name, sizeof(r->to.name), "%s", pgtree_str(node, "newname"));
		r->line = c->p->inputs[c->input].line;
	}
	push_brief(c, &table, as_written(c, c->sql, true));
	input_note(c->p,
		   "%s:%d: RENAME runs at cutover, briefly; code still running that uses the old name "
		   "breaks from then on (rename in a release that reads both, or use a view)",
		   c->p->inputs[c->input].file, c->p->inputs[c->input].line);
	return RULE_DONE;
}

/*
 * DROP TABLE and DROP INDEX (docs/architecture.md, the rules): refused with
 * the way to get there safely; other DROPs are no rule's.
 */
static enum rules_outcome plan_drop_object(struct rules_ctx *c, const cJSON *node, bool *handled)
{
	char names[256] = "";
	size_t len = 0;
	const cJSON *obj;

	cJSON_ArrayForEach(obj, pgtree_get(node, "objects"))
	{
		const cJSON *item;

		cJSON_ArrayForEach(item, pgtree_get(pgtree_node(obj, "List"), "items"))
		{
			const char *part = pgtree_string(item);

			if (part && len + strlen(part) + 3 < sizeof(names))
				len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
							len && names[len - 1] != ',' ? "." : (len ? " " : ""),
							part);
		}
		if (len + 2 < sizeof(names))
			len += (size_t)snprintf(names + len, sizeof(names) - len, ",");
	}
	if (len && names[len - 1] == ',')
		names[--len] = '\0';
	if (pgtree_str_is(node, "removeType", "OBJECT_TABLE"))
		return rules_refuse(
			c,
			"deploy code that no longer reads or writes the table; rename it "
			"(ALTER TABLE … RENAME TO …_retired) in a migration of its own and watch for errors; "
			"drop it later with --allow-unsafe, after a backup if the rows matter",
			"DROP TABLE %s deletes its rows for good: a rollback cannot bring them back, code "
			"still using it fails at once%s",
			names,
			pgtree_str_is(node, "behavior", "DROP_CASCADE")
				? ", and CASCADE also drops the foreign keys and views of other tables that "
				  "depend on it"
				: ", and it fails if a foreign key or view depends on it");
	if (pgtree_str_is(node, "removeType", "OBJECT_INDEX") && !pgtree_flag(node, "concurrent"))
		return rules_refuse(c,
				    "run DROP INDEX CONCURRENTLY yourself, outside a transaction, after the "
				    "migration (pgvalve cannot rebuild a dropped index on rollback)",
				    "DROP INDEX %s takes ACCESS EXCLUSIVE on its table, and a dropped index "
				    "is not restored by a rollback",
				    names);
	*handled = false;
	return RULE_DONE;
}

/* Whether a VALUES list holds only constants (and casts of them): rows an ORM records, no query. */
static bool constant_rows(const cJSON *values_lists, int *rows)
{
	const cJSON *row, *v;

	*rows = 0;
	cJSON_ArrayForEach(row, values_lists)
	{
		(*rows)++;
		cJSON_ArrayForEach(v, pgtree_get(pgtree_node(row, "List"), "items"))
		{
			const cJSON *cast = pgtree_node(v, "TypeCast");

			if (!pgtree_node(cast ? pgtree_get(cast, "arg") : v, "A_Const"))
				return false;
		}
	}
	return *rows > 0;
}

/*
 * INSERT INTO t (…) VALUES (constants), [ON CONFLICT DO NOTHING],
 * [RETURNING …] — the row an ORM writes to record a migration (Rails'
 * schema_migrations, Alembic's alembic_version): in the cutover
 * transaction, so it commits with the schema change it records.
 */
static enum rules_outcome plan_insert(struct rules_ctx *c, const cJSON *node)
{
	const cJSON *select = pgtree_node(pgtree_get(node, "selectStmt"), "SelectStmt");
	const cJSON *conflict = pgtree_node(pgtree_get(node, "onConflictClause"), "OnConflictClause");
	struct qname table;
	int rows = 0;
	char who[2 * PLAN_NAME_MAX + 8];

	if (!rules_range_var(c, pgtree_get(node, "relation"), &table))
		return rules_unsupported(c, "a three-part table name (database.schema.table)");
	if (!select || pgtree_get(node, "withClause") ||
	    !constant_rows(pgtree_get(select, "valuesLists"), &rows) ||
	    (conflict && !pgtree_str_is(conflict, "action", "ONCONFLICT_NOTHING")))
		return rules_refuse(
			c,
			"copy data in batches outside the migration, each batch in a short "
			"transaction of its own",
			"INSERT … SELECT (or a VALUES list that is not constants) copies rows pgvalve "
			"cannot count, in the one cutover transaction, under its locks");
	if (rows > 1000)
		return rules_refuse(c, "load the rows outside the migration (COPY), in batches",
				    "an INSERT of %d rows in the cutover transaction", rows);
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_INSERT_ROWS,
					      .phase = PHASE_CUTOVER,
					      .lock = LOCK_NONE,
					      .hold = HOLD_NONE_NEEDED,
					      .table = &table,
					      .constraint = -1,
					      .drop = -1 },
			as_written(c, c->sql, true));
	qname_format(&table, who, sizeof(who));
	input_note(c->p,
		   "%s:%d: INSERT of %d constant row(s) into %s runs in the cutover transaction, so it "
		   "commits with the schema change; a rollback of the migration later does not delete it",
		   c->p->inputs[c->input].file, c->p->inputs[c->input].line, rows, who);
	return RULE_DONE;
}

/* CREATE TRIGGER: before the cutover on a table of this file, else briefly at cutover. */
static enum rules_outcome plan_trigger(struct rules_ctx *c, const cJSON *node)
{
	struct qname table;

	if (!rules_range_var(c, pgtree_get(node, "relation"), &table))
		return rules_unsupported(c, "a three-part table name (database.schema.table)");
	if (rules_created(c->p, &table)) {
		push_new_object(c, &table, as_written(c, c->sql, false));
		return RULE_DONE;
	}
	push_brief(c, &table, as_written(c, c->sql, true));
	input_note(c->p,
		   "%s:%d: CREATE TRIGGER runs at cutover (it takes SHARE ROW EXCLUSIVE on the table, "
		   "briefly); the function it calls runs for every row written from then on",
		   c->p->inputs[c->input].file, c->p->inputs[c->input].line);
	return RULE_DONE;
}

static bool has_option(const cJSON *node, const char *key, const char *option)
{
	const cJSON *item;

	cJSON_ArrayForEach(item, pgtree_get(node, key))
	{
		const char *d = pgtree_str(pgtree_node(item, "DefElem"), "defname");

		if (d && strcmp(d, option) == 0)
			return true;
	}
	return false;
}

enum rules_outcome rules_table_statement(struct rules_ctx *c, const char *kind, const cJSON *stmt,
					 bool *handled)
{
	const cJSON *node = pgtree_node(stmt, kind);

	*handled = true;
	if (strcmp(kind, "CreateStmt") == 0)
		return plan_create_table(c, node, stmt);
	if (strcmp(kind, "CreateSeqStmt") == 0 || strcmp(kind, "CompositeTypeStmt") == 0 ||
	    strcmp(kind, "CreateEnumStmt") == 0 || strcmp(kind, "CreateRangeStmt") == 0 ||
	    strcmp(kind, "ViewStmt") == 0 || strcmp(kind, "CommentStmt") == 0 ||
	    strcmp(kind, "CreateDomainStmt") == 0 || strcmp(kind, "AlterSeqStmt") == 0 ||
	    (strcmp(kind, "DefineStmt") == 0 && pgtree_str_is(node, "kind", "OBJECT_TYPE")))
		return plan_new_object(c, kind, node);
	if (strcmp(kind, "CreateFunctionStmt") == 0)
		return plan_function(c, kind, node);
	if (strcmp(kind, "RenameStmt") == 0)
		return plan_rename(c, node);
	if (strcmp(kind, "VariableSetStmt") == 0)
		return rules_set(c, node);
	if (strcmp(kind, "ReindexStmt") == 0 && !has_option(node, "params", "concurrently"))
		return rules_refuse(c, "REINDEX … CONCURRENTLY (PostgreSQL 12+)",
				    "REINDEX without CONCURRENTLY blocks writes to the table while it "
				    "rebuilds");
	if (strcmp(kind, "VacuumStmt") == 0 && has_option(node, "options", "full"))
		return rules_refuse(c, "pg_repack or pg_squeeze, which rewrite the table without blocking",
				    "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE");
	if (strcmp(kind, "ClusterStmt") == 0)
		return rules_refuse(c, "pg_repack, which reorders the table without blocking",
				    "CLUSTER rewrites the table under ACCESS EXCLUSIVE");
	if (strcmp(kind, "DropStmt") == 0)
		return plan_drop_object(c, node, handled);
	if (strcmp(kind, "InsertStmt") == 0)
		return plan_insert(c, node);
	if (strcmp(kind, "UpdateStmt") == 0 || strcmp(kind, "DeleteStmt") == 0)
		return rules_refuse(
			c,
			"change the rows outside the migration in batches (… WHERE id BETWEEN x AND y), each "
			"in a short transaction of its own; an ORM's own version row is written by --orm",
			"%s changes rows pgvalve cannot count, in the one cutover transaction, holding their "
			"row locks to its end",
			strcmp(kind, "UpdateStmt") == 0 ? "UPDATE" : "DELETE");
	if (strcmp(kind, "CreateTrigStmt") == 0)
		return plan_trigger(c, node);
	if (strcmp(kind, "CreateExtensionStmt") == 0)
		return plan_new_object(c, kind, node);
	if (strcmp(kind, "SelectStmt") == 0) {
		const char *value;

		if (rules_set_config_search_path(node, &value) && !value[0]) {
			c->search_path[0] = '\0';
			c->search_list[0] = '\0';
			input_note(
				c->p,
				"%s:%d: set_config('search_path', '', …) is dropped: the names after it are "
				"read as written (pg_dump writes each with its schema)",
				c->p->inputs[c->input].file, c->p->inputs[c->input].line);
			return RULE_DONE;
		}
		*handled = false;
		return RULE_DONE;
	}
	if (strcmp(kind, "LockStmt") == 0)
		return rules_refuse(c,
				    "leave it out: pgvalve takes the lock each step needs, briefly, "
				    "under a hold",
				    "LOCK TABLE holds its lock to the end of a transaction that pgvalve "
				    "replaces with its phases");
	*handled = false;
	return RULE_DONE;
}
