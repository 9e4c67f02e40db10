/*
 * The rules for constraints an ALTER TABLE adds (see rules.h): FOREIGN KEY
 * and CHECK become ADD … NOT VALID at cutover and VALIDATE after it; UNIQUE
 * and PRIMARY KEY an index built CONCURRENTLY and attached with USING INDEX;
 * SET NOT NULL a helper CHECK validated first. Dispatch, the plan being
 * built and the other rules are rules.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "pgvalve/sqllex.h"
#include "quote.h"
#include "rules_internal.h"
#include "xalloc.h"

/* The note for people on a FOREIGN KEY or CHECK as written: with NOT VALID or without. */
static const char *validation_note(const cJSON *con)
{
	return pgtree_flag(con, "skip_validation")
		? "ADD … NOT VALID is always validated, in the validate phase after the cutover (whether or "
		  "not the "
		  "file says VALIDATE CONSTRAINT): new rows are checked at once, old ones without blocking "
		  "writes"
		: "ADD CONSTRAINT without NOT VALID is rewritten to ADD … NOT VALID at cutover and VALIDATE "
		  "CONSTRAINT after it, so scanning the table blocks no writes";
}

/*
 * The NOT VALID + VALIDATE pair of a FOREIGN KEY or CHECK (also NOT NULL's
 * helper): 'definition' is what follows "ADD CONSTRAINT c " (without NOT
 * VALID). Takes k's strings; adds 'note' for people.
 */
static void add_then_validate(struct rules_ctx *c, const struct rules_target *t, struct plan_constraint *k,
			      const char *definition, const char *note, enum plan_lock lock,
			      enum plan_hold hold, const struct qname *other)
{
	struct strbuf sql = { 0 };
	int idx;

	rules_put_alter(&sql, t);
	strbuf_put(&sql, "ADD CONSTRAINT ");
	quote_append_ident(&sql, k->name);
	strbuf_put(&sql, " ");
	strbuf_put(&sql, definition);
	strbuf_put(&sql, " NOT VALID");
	idx = rules_push_constraint(c, k);
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_ADD_NOT_VALID,
					      .phase = PHASE_CUTOVER,
					      .lock = lock,
					      .hold = hold,
					      .table = &t->table,
					      .other = other,
					      .constraint = idx,
					      .drop = -1 },
			strbuf_take(&sql));
	rules_push_validate(c, t, k->name, other, idx);
	input_note(c->p, "%s", note);
}

/* DEFERRABLE / INITIALLY DEFERRED, as written. */
static void put_deferral(struct strbuf *b, const cJSON *con)
{
	if (pgtree_flag(con, "deferrable"))
		strbuf_word(b, "DEFERRABLE");
	if (pgtree_flag(con, "initdeferred"))
		strbuf_word(b, "INITIALLY DEFERRED");
}

/* ON UPDATE / ON DELETE with its action; NO ACTION, the default, is left out. */
static void put_fk_action(struct strbuf *b, const char *on, const char *action, const cJSON *set_cols)
{
	static const struct {
		char code;
		const char *sql;
	} actions[] = { { 'r', "RESTRICT" }, { 'c', "CASCADE" }, { 'n', "SET NULL" }, { 'd', "SET DEFAULT" } };
	char cols[PLAN_MAX_COLUMNS][PLAN_NAME_MAX];
	int n = 0;

	for (size_t i = 0; action && i < sizeof(actions) / sizeof(actions[0]); i++) {
		if (action[0] != actions[i].code)
			continue;
		strbuf_word(b, on);
		strbuf_word(b, actions[i].sql);
		if (set_cols && rules_name_list(set_cols, cols, &n) && n > 0) {
			strbuf_put(b, " ");
			rules_put_columns(b, cols, n);
		}
	}
}

/* ADD [CONSTRAINT c] FOREIGN KEY (cols) REFERENCES p [(cols)] [MATCH …] [ON …] [DEFERRABLE …] [NOT VALID] */
enum rules_outcome rules_foreign_key(struct rules_ctx *c, const struct rules_target *t, const cJSON *con)
{
	struct plan_constraint k = { .type = CON_FOREIGN_KEY, .table = t->table };
	struct strbuf tail = { 0 }, def = { 0 };
	char addition[2 * PLAN_NAME_MAX], *definition;
	const char *match = pgtree_str(con, "fk_matchtype"), *name = pgtree_str(con, "conname");
	const cJSON *set_cols = pgtree_get(con, "fk_del_set_cols");

	if (!rules_name_list(pgtree_get(con, "fk_attrs"), k.columns, &k.n_columns) || k.n_columns == 0 ||
	    !rules_name_list(pgtree_get(con, "pk_attrs"), k.ref_columns, &k.n_ref_columns))
		return rules_failed(c, "a foreign key of more than %d columns (PostgreSQL's limit too)",
				    PLAN_MAX_COLUMNS);
	if (!rules_range_var(c, pgtree_get(con, "pktable"), &k.ref_table))
		return rules_unsupported(c, "a three-part table name (database.schema.table)");
	if (match && strcmp(match, "p") == 0) /* defensive: the parser already refuses MATCH PARTIAL */
		return rules_unsupported(c, "MATCH PARTIAL (PostgreSQL does not implement it)");
	if (match && strcmp(match, "f") == 0)
		strbuf_word(&tail, "MATCH FULL");
	put_fk_action(&tail, "ON UPDATE", pgtree_str(con, "fk_upd_action"), NULL);
	put_fk_action(&tail, "ON DELETE", pgtree_str(con, "fk_del_action"), set_cols);
	put_deferral(&tail, con);
	if (name) {
		snprintf(k.name, sizeof(k.name), "%s", name);
	} else {
		names_addition(k.columns, k.n_columns, addition);
		names_choose(c->p, &t->table, addition, "fkey", k.name);
	}
	k.fk_tail = strbuf_take(&tail);

	strbuf_put(&def, "FOREIGN KEY ");
	rules_put_columns(&def, k.columns, k.n_columns);
	strbuf_put(&def, " REFERENCES ");
	rules_put_qname(&def, &k.ref_table);
	if (k.n_ref_columns) {
		strbuf_put(&def, " ");
		rules_put_columns(&def, k.ref_columns, k.n_ref_columns);
	}
	if (k.fk_tail[0]) {
		strbuf_put(&def, " ");
		strbuf_put(&def, k.fk_tail);
	}
	definition = strbuf_take(&def);
	/* SHARE ROW EXCLUSIVE on both tables: writes wait, reads go on. */
	add_then_validate(c, t, &k, definition, validation_note(con), LOCK_SHARE_ROW_EXCLUSIVE,
			  HOLD_WRITES_NEEDED, &k.ref_table);
	free(definition);
	return RULE_DONE;
}

/*
 * Where a CHECK's expression is in the text: from the Constraint's location
 * (its CONSTRAINT or CHECK keyword), past [CONSTRAINT name] CHECK, the
 * inside of the parentheses, without surrounding white space and comments
 * (a trailing -- comment would swallow what follows). False if the text is
 * not shaped so.
 */
static bool check_span(const char *s, size_t len, int location, size_t *start, size_t *end)
{
	struct sqllex lx;
	struct sqllex_token t;
	size_t body, a, b;
	int depth = 1;

	if (location < 0 || (size_t)location >= len)
		return false;
	sqllex_init(&lx, s, len, 0);
	lx.pos = (size_t)location;
	sqllex_next_significant(&lx, &t);
	if (sqllex_is_keyword(s, &t, "constraint")) {
		sqllex_next_significant(&lx, &t); /* the name */
		if (t.kind != SQLLEX_IDENT && t.kind != SQLLEX_QIDENT && t.kind != SQLLEX_UIDENT)
			return false;
		sqllex_next_significant(&lx, &t);
	}
	if (!sqllex_is_keyword(s, &t, "check"))
		return false;
	if (sqllex_next_significant(&lx, &t) != SQLLEX_SELF || !sqllex_is_char(s, &t, '('))
		return false;
	body = t.end;
	for (;;) {
		sqllex_next_significant(&lx, &t);
		if (t.kind == SQLLEX_END || t.kind == SQLLEX_UNTERMINATED)
			return false;
		if (sqllex_is_char(s, &t, '('))
			depth++;
		else if (sqllex_is_char(s, &t, ')') && --depth == 0)
			break;
	}
	if (!sqllex_trim(s + body, t.start - body, &a, &b))
		return false;
	*start = body + a;
	*end = body + b;
	return true;
}

/*
 * The distinct columns an expression references, as PostgreSQL counts them
 * to name a CHECK: 0, 1 (its name in 'one') or 2 meaning "more than one" (a
 * whole-row t.* counts as more than one, which names it as PostgreSQL does).
 */
static int check_columns(const cJSON *node, char one[PLAN_NAME_MAX], int n)
{
	const cJSON *child;

	cJSON_ArrayForEach(child, node)
	{
		if (n >= 2)
			break;
		if (child->string && strcmp(child->string, "ColumnRef") == 0) {
			const cJSON *fields = pgtree_get(child, "fields");
			const char *col = pgtree_string(pgtree_list_at(fields, pgtree_list_len(fields) - 1));

			if (n == 0 && col) {
				snprintf(one, PLAN_NAME_MAX, "%s", col);
				n = 1;
			} else if (!col || strcmp(one, col) != 0) {
				n = 2;
			}
		} else {
			n = check_columns(child, one, n);
		}
	}
	return n;
}

/* The Constraint of the first subcommand of an ALTER TABLE node (NULL if none). */
static const cJSON *first_constraint(const cJSON *stmt)
{
	const cJSON *cmd = pgtree_list_at(pgtree_get(pgtree_node(stmt, "AlterTableStmt"), "cmds"), 0);

	return pgtree_node(pgtree_get(pgtree_node(cmd, "AlterTableCmd"), "def"), "Constraint");
}

/* ADD [CONSTRAINT c] CHECK (expr) [NO INHERIT] [NOT VALID] */
enum rules_outcome rules_check(struct rules_ctx *c, const struct rules_target *t, const cJSON *con)
{
	struct plan_constraint k = { .type = CON_CHECK, .table = t->table };
	const cJSON *raw = pgtree_get(con, "raw_expr"), *again;
	const char *name = pgtree_str(con, "conname");
	char col[PLAN_NAME_MAX] = "", msg[256], *definition, *probe;
	struct strbuf def = { 0 }, sql = { 0 };
	size_t start, end;
	cJSON *doc = NULL;
	int location;

	if (!pgtree_int(con, "location", &location) || !check_span(c->sql, c->len, location, &start, &end))
		return rules_failed(c, "cannot find the CHECK expression in the statement's text");
	if (name)
		snprintf(k.name, sizeof(k.name), "%s", name);
	else
		names_choose(c->p, &t->table, check_columns(raw, col, 0) == 1 ? col : NULL, "check", k.name);

	strbuf_put(&def, "CHECK (");
	strbuf_putn(&def, c->sql + start, end - start);
	strbuf_put(&def, pgtree_flag(con, "is_no_inherit") ? ") NO INHERIT" : ")");
	definition = strbuf_take(&def);

	/* The expression is source text: it must read back as the same tree before it goes into a step. */
	rules_put_alter(&sql, t);
	strbuf_put(&sql, "ADD CONSTRAINT ");
	quote_append_ident(&sql, k.name);
	strbuf_put(&sql, " ");
	strbuf_put(&sql, definition);
	strbuf_put(&sql, " NOT VALID");
	probe = strbuf_take(&sql);
	again = rules_parse_one(probe, &doc, msg, sizeof(msg));
	free(probe);
	if (!again || !pgtree_same(raw, pgtree_get(first_constraint(again), "raw_expr"), NULL) ||
	    pgtree_flag(first_constraint(again), "is_no_inherit") != pgtree_flag(con, "is_no_inherit")) {
		cJSON_Delete(doc);
		free(definition);
		return rules_failed(
			c,
			"the CHECK expression of %s does not read back the same when cut out of the "
			"text, so pgvalve will not rewrite it (a bug in pgvalve: please report the "
			"statement)",
			k.name);
	}
	cJSON_Delete(doc);
	k.fk_tail = xstrdup("");
	k.check_expr = xstrndup(c->sql + start, end - start);
	add_then_validate(c, t, &k, definition, validation_note(con), LOCK_ACCESS_EXCLUSIVE, HOLD_ALL_NEEDED,
			  NULL);
	free(definition);
	return RULE_DONE;
}

/*
 * ALTER [COLUMN] c SET NOT NULL: a helper CHECK (c IS NOT NULL) added NOT
 * VALID and validated without blocking writes, then SET NOT NULL (PostgreSQL
 * 12+ sees the valid CHECK and skips its scan) and the helper dropped.
 */
enum rules_outcome rules_not_null(struct rules_ctx *c, const struct rules_target *t, const char *column)
{
	struct plan_constraint k = { .type = CON_NOT_NULL, .table = t->table, .n_columns = 1 };
	struct strbuf expr = { 0 }, def = { 0 }, set = { 0 }, drop = { 0 };
	char *definition;
	int idx;

	snprintf(k.columns[0], sizeof(k.columns[0]), "%s", column);
	names_choose(c->p, &t->table, column, "not_null", k.name);
	quote_append_ident(&expr, column);
	strbuf_put(&expr, " IS NOT NULL");
	k.check_expr = strbuf_take(&expr);
	strbuf_put(&def, "CHECK (");
	strbuf_put(&def, k.check_expr);
	strbuf_put(&def, ")");
	definition = strbuf_take(&def);
	k.fk_tail = xstrdup("");
	add_then_validate(
		c, t, &k, definition,
		"SET NOT NULL is rewritten: a CHECK (c IS NOT NULL) added NOT VALID and validated without "
		"blocking writes, then SET NOT NULL (which skips its scan given that CHECK) and the CHECK "
		"dropped",
		LOCK_ACCESS_EXCLUSIVE, HOLD_ALL_NEEDED, NULL);
	free(definition);
	idx = c->p->n_constraints - 1;
	rules_put_alter(&set, t);
	strbuf_put(&set, "ALTER COLUMN ");
	quote_append_ident(&set, column);
	strbuf_put(&set, " SET NOT NULL");
	rules_put_alter(&drop, t);
	strbuf_put(&drop, "DROP CONSTRAINT ");
	quote_append_ident(&drop, k.name);
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_SET_NOT_NULL,
					      .phase = PHASE_FINALIZE,
					      .lock = LOCK_ACCESS_EXCLUSIVE,
					      .hold = HOLD_ALL_NEEDED,
					      .table = &t->table,
					      .constraint = idx,
					      .drop = -1 },
			strbuf_take(&set));
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_DROP_HELPER_CHECK,
					      .phase = PHASE_FINALIZE,
					      .lock = LOCK_ACCESS_EXCLUSIVE,
					      .hold = HOLD_ALL_NEEDED,
					      .table = &t->table,
					      .constraint = idx,
					      .drop = -1 },
			strbuf_take(&drop));
	return RULE_DONE;
}

/*
 * ADD [CONSTRAINT c] UNIQUE | PRIMARY KEY (cols) [INCLUDE (cols)] …: the
 * index built CONCURRENTLY first, then attached with ADD CONSTRAINT … USING
 * INDEX, which renames it to the constraint's name. ADD … USING INDEX i as
 * written attaches i.
 */
enum rules_outcome rules_unique(struct rules_ctx *c, const struct rules_target *t, const cJSON *con,
				bool primary)
{
	struct plan_constraint k = { .type = primary ? CON_PRIMARY_KEY : CON_UNIQUE, .table = t->table };
	struct qname index = { .schema = "" };
	char include[PLAN_MAX_COLUMNS][PLAN_NAME_MAX], addition[2 * PLAN_NAME_MAX];
	const char *name = pgtree_str(con, "conname"), *existing = pgtree_str(con, "indexname"),
		   *space = pgtree_str(con, "indexspace");
	struct strbuf create = { 0 }, attach = { 0 };
	int n_include = 0, idx;

	if (pgtree_get(con, "options"))
		return rules_unsupported(
			c,
			"index storage parameters (WITH …) in ADD %s: build the index with CREATE "
			"UNIQUE INDEX … WITH (…) and attach it with ADD CONSTRAINT … USING INDEX",
			primary ? "PRIMARY KEY" : "UNIQUE");
	if (!rules_name_list(pgtree_get(con, "keys"), k.columns, &k.n_columns) ||
	    !rules_name_list(pgtree_get(con, "including"), include, &n_include) ||
	    k.n_columns + n_include > PLAN_MAX_COLUMNS)
		return rules_failed(c, "an index of more than %d columns (PostgreSQL's limit too)",
				    PLAN_MAX_COLUMNS);
	snprintf(index.schema, sizeof(index.schema), "%s", t->table.schema);
	if (name) {
		snprintf(k.name, sizeof(k.name), "%s", name);
	} else if (existing) {
		snprintf(k.name, sizeof(k.name), "%s", existing);
	} else {
		names_addition(k.columns, k.n_columns, addition);
		names_choose(c->p, &t->table, primary ? NULL : addition, primary ? "pkey" : "key", k.name);
	}
	if (existing)
		snprintf(index.name, sizeof(index.name), "%s", existing);
	else if (rules_dropped_before(c->p, &t->table, k.name) >= 0)
		names_make_object(index.name, k.name, NULL,
				  "new"); /* the old index keeps the name until cutover */
	else
		snprintf(index.name, sizeof(index.name), "%s", k.name);
	k.fk_tail = xstrdup("");
	idx = rules_push_constraint(c, &k);

	if (!existing) {
		strbuf_put(&create, "CREATE UNIQUE INDEX CONCURRENTLY ");
		quote_append_ident(&create, index.name);
		strbuf_put(&create, " ON ");
		rules_put_qname(&create, &t->table);
		strbuf_put(&create, " ");
		rules_put_columns(&create, k.columns, k.n_columns);
		if (n_include) {
			strbuf_put(&create, " INCLUDE ");
			rules_put_columns(&create, include, n_include);
		}
		if (pgtree_flag(con, "nulls_not_distinct"))
			strbuf_put(&create, " NULLS NOT DISTINCT");
		if (space) {
			strbuf_put(&create, " TABLESPACE ");
			quote_append_ident(&create, space);
		}
		rules_push_step(c,
				&(struct rules_step){ .kind = STEP_CREATE_INDEX,
						      .phase = PHASE_PREPARE,
						      .lock = LOCK_SHARE_UPDATE_EXCLUSIVE,
						      .hold = HOLD_NONE_NEEDED,
						      .table = &t->table,
						      .index = &index,
						      .constraint = idx,
						      .drop = -1 },
				strbuf_take(&create));
	}
	rules_put_alter(&attach, t);
	strbuf_put(&attach, "ADD CONSTRAINT ");
	quote_append_ident(&attach, k.name);
	strbuf_put(&attach, primary ? " PRIMARY KEY USING INDEX " : " UNIQUE USING INDEX ");
	quote_append_ident(&attach, index.name);
	if (pgtree_flag(con, "deferrable"))
		strbuf_put(&attach, " DEFERRABLE");
	if (pgtree_flag(con, "initdeferred"))
		strbuf_put(&attach, " INITIALLY DEFERRED");
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_ADD_USING_INDEX,
					      .phase = PHASE_CUTOVER,
					      .lock = LOCK_ACCESS_EXCLUSIVE,
					      .hold = HOLD_ALL_NEEDED,
					      .table = &t->table,
					      .index = &index,
					      .constraint = idx,
					      .drop = -1 },
			strbuf_take(&attach));
	if (primary)
		input_note(c->p,
			   "ADD PRIMARY KEY … USING INDEX also sets NOT NULL on key columns that "
			   "lack it, scanning the table under ACCESS EXCLUSIVE: make them NOT NULL first");
	return RULE_DONE;
}
