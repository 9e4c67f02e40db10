/*
 * The rewrite rules (see rules.h; docs/architecture.md, "plan"). Each input
 * statement is parsed by libpg_query into PostgreSQL's parse tree, read
 * through pgvalve/pgtree.h; the steps' SQL is built from the tree's fields
 * with every identifier quoted. Source text is reused in two places only,
 * and each is parsed again and compared with the original tree before it is
 * trusted: a CHECK's expression, and a CREATE INDEX given CONCURRENTLY.
 * Whatever no rule covers is refused, or with --allow-unsafe run as written.
 *
 * This file owns dispatch by statement, the plan being built, and the rules
 * for CREATE INDEX, DROP CONSTRAINT, VALIDATE CONSTRAINT and --allow-unsafe;
 * the rules for constraints an ALTER TABLE adds are rules_constraint.c's,
 * and the names PostgreSQL would choose are names.c's.
 */
#include "rules.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/classify.h"
#include "pgvalve/sqllex.h"
#include "quote.h"
#include "rules_internal.h"
#include "xalloc.h"

const char rules_supported_forms[] =
	"ALTER TABLE t ADD [CONSTRAINT c] FOREIGN KEY | CHECK | UNIQUE | PRIMARY KEY (…) [NOT VALID]; "
	"ALTER TABLE t ALTER [COLUMN] c SET NOT NULL; ALTER TABLE t DROP CONSTRAINT c; "
	"ALTER TABLE t VALIDATE CONSTRAINT c; CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON t …; "
	"CREATE TABLE / SEQUENCE / TYPE / VIEW / FUNCTION, COMMENT ON; "
	"ALTER TABLE t ADD COLUMN (nullable, or a non-volatile default) | DROP COLUMN | "
	"ALTER COLUMN c SET/DROP DEFAULT | DROP NOT NULL; RENAME; "
	"SET search_path / statement_timeout / lock_timeout; "
	"BEGIN/COMMIT and SET CONSTRAINTS (dropped)";

#define EXCERPT_MAX 120

/* How far the plan had got before a statement: undone when part of it turns out uncovered. */
struct mark {
	int n_constraints, n_drops, n_steps, n_notes, n_created;
};

/* ---- reporting ---- */

enum rules_outcome rules_unsupported(struct rules_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	return RULE_UNSUPPORTED;
}

enum rules_outcome rules_refuse(struct rules_ctx *c, const char *recipe, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	snprintf(c->recipe, sizeof(c->recipe), "%s", recipe);
	return RULE_UNSUPPORTED;
}

enum rules_outcome rules_failed(struct rules_ctx *c, const char *fmt, ...)
{
	const struct plan_input *in = &c->p->inputs[c->input];
	va_list ap;

	input_error_set(c->err, in->file, in->line, "%s", "");
	va_start(ap, fmt);
	vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
	va_end(ap);
	return RULE_FAILED;
}

/*
 * The statement's first EXCERPT_MAX bytes on one line (runs of white space
 * folded), "…" when cut, never ending inside a UTF-8 character. 'out' holds
 * at least EXCERPT_MAX + 4 bytes.
 */
void rules_excerpt(const char *sql, char out[EXCERPT_MAX + 4])
{
	size_t n = 0, i = 0, lead;

	for (; sql[i] && n < EXCERPT_MAX; i++) {
		bool space = sql[i] == ' ' || sql[i] == '\n' || sql[i] == '\t' || sql[i] == '\r';

		if (!(space && n > 0 && out[n - 1] == ' '))
			out[n++] = space ? ' ' : sql[i];
	}
	if (sql[i] && n > 0) {
		unsigned char c;

		for (lead = n - 1; lead > 0 && ((unsigned char)out[lead] & 0xc0) == 0x80; lead--)
			;
		c = (unsigned char)out[lead];
		if (n - lead < (c >= 0xf0 ? 4u : c >= 0xe0 ? 3u : c >= 0xc0 ? 2u : 1u))
			n = lead;
	}
	memcpy(out + n, sql[i] ? "…" : "", sql[i] ? sizeof("…") : 1);
}

/* ---- the parse tree ---- */

bool rules_name_list(const cJSON *list, char names[][PLAN_NAME_MAX], int *n)
{
	const cJSON *item;

	*n = 0;
	cJSON_ArrayForEach(item, list)
	{
		const char *s = pgtree_string(item);

		if (!s || *n == PLAN_MAX_COLUMNS)
			return false;
		snprintf(names[(*n)++], PLAN_NAME_MAX, "%s", s);
	}
	return true;
}

void rules_resolve(const struct rules_ctx *c, struct qname *q)
{
	if (!q->schema[0] && c->search_path[0])
		snprintf(q->schema, sizeof(q->schema), "%s", c->search_path);
}

/* The same table, or possibly (one of them has no schema: search_path decides). */
static bool same_table_maybe(const struct qname *a, const struct qname *b)
{
	return strcmp(a->name, b->name) == 0 &&
		(!a->schema[0] || !b->schema[0] || strcmp(a->schema, b->schema) == 0);
}

void rules_note_renamed(struct rules_ctx *c, const struct qname *q)
{
	for (int i = 0; i < c->n_renames; i++) {
		if (!c->renamed_new && same_table_maybe(&c->renames[i].to, q))
			c->renamed_new = i + 1;
		if (!c->renamed_old && same_table_maybe(&c->renames[i].from, q))
			c->renamed_old = i + 1;
	}
}

bool rules_range_var(struct rules_ctx *c, const cJSON *rv, struct qname *q)
{
	struct pgtree_range_var r;

	if (!pgtree_range_var(rv, &r) || r.catalog)
		return false;
	snprintf(q->schema, sizeof(q->schema), "%s", r.schema ? r.schema : "");
	snprintf(q->name, sizeof(q->name), "%s", r.name);
	rules_resolve(c, q);
	rules_note_renamed(c, q);
	return true;
}

bool rules_qname_eq(const struct qname *a, const struct qname *b)
{
	return strcmp(a->schema, b->schema) == 0 && strcmp(a->name, b->name) == 0;
}

const cJSON *rules_parse_one(const char *sql, cJSON **doc, char *msg, size_t cap)
{
	struct pgtree_error err;
	const cJSON *stmts;

	if (!(*doc = pgtree_parse(sql, &err))) {
		snprintf(msg, cap, "%s",
			 err.kind == PGTREE_SYNTAX ? err.message : "nested too deeply to plan");
		return NULL;
	}
	if (pgtree_list_len(stmts = pgtree_stmts(*doc)) != 1) {
		snprintf(msg, cap, "not exactly one statement");
		return NULL;
	}
	return pgtree_get(pgtree_list_at(stmts, 0), "stmt");
}

/* ---- generated SQL ---- */

void rules_put_qname(struct strbuf *b, const struct qname *q)
{
	quote_append_qname(b, q->schema, q->name);
}

void rules_put_columns(struct strbuf *b, char cols[][PLAN_NAME_MAX], int n)
{
	strbuf_put(b, "(");
	for (int i = 0; i < n; i++) {
		if (i)
			strbuf_put(b, ", ");
		quote_append_ident(b, cols[i]);
	}
	strbuf_put(b, ")");
}

void rules_put_alter(struct strbuf *b, const struct rules_target *t)
{
	strbuf_put(b, t->only ? "ALTER TABLE ONLY " : "ALTER TABLE ");
	rules_put_qname(b, &t->table);
	strbuf_put(b, " ");
}

/* ---- building the plan ---- */

/* 'arr' with room for n + 1 elements of 'size'. */
static void *grow(void *arr, int *cap, int n, size_t size)
{
	if (n < *cap)
		return arr;
	*cap = n < 8 ? 16 : n * 2;
	return xrealloc(arr, size * (size_t)*cap);
}

static struct mark mark_of(const struct plan *p)
{
	return (struct mark){ p->n_constraints, p->n_drops, p->n_steps, p->n_notes, p->n_created };
}

/* Undoes what planning a statement added since 'm'. */
static void rollback_to(struct plan *p, const struct mark *m)
{
	while (p->n_steps > m->n_steps)
		free(p->steps[--p->n_steps].sql);
	while (p->n_constraints > m->n_constraints) {
		p->n_constraints--;
		free(p->constraints[p->n_constraints].fk_tail);
		free(p->constraints[p->n_constraints].check_expr);
	}
	p->n_drops = m->n_drops;
	p->n_created = m->n_created;
	while (p->n_notes > m->n_notes)
		free(p->notes[--p->n_notes]);
}

int rules_dropped_before(const struct plan *p, const struct qname *table, const char *name)
{
	for (int i = 0; i < p->n_drops; i++)
		if (rules_qname_eq(&p->drops[i].table, table) && strcmp(p->drops[i].name, name) == 0)
			return i;
	return -1;
}

int rules_push_constraint(struct rules_ctx *c, struct plan_constraint *k)
{
	struct plan *p = c->p;
	char who[2 * PLAN_NAME_MAX + 8];

	p->constraints = grow(p->constraints, &c->cap_constraints, p->n_constraints, sizeof(*p->constraints));
	k->input = c->input;
	k->replaces = rules_dropped_before(p, &k->table, k->name) >= 0;
	qname_format(&k->table, who, sizeof(who));
	if (k->replaces)
		input_note(p,
			   "%s is replaced: its prior definition is snapshotted, the DROP and the new "
			   "ADD run in one cutover transaction, and a rollback restores it",
			   who);
	p->constraints[p->n_constraints] = *k;
	return p->n_constraints++;
}

/*
 * A prepare step runs before any cutover step, so before every statement
 * the file puts ahead of it that runs as written (CREATE TABLE, ADD COLUMN,
 * ...): say so when such a statement names the same table.
 */
static void note_prepare_order(struct rules_ctx *c, const struct qname *table)
{
	const struct plan *p = c->p;

	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];
		char who[2 * PLAN_NAME_MAX + 8];

		if (st->kind != STEP_UNSAFE ||
		    !(rules_qname_eq(&st->table, table) || rules_qname_eq(&st->other, table)))
			continue;
		qname_format(table, who, sizeof(who));
		input_note(c->p,
			   "%s:%d: builds its index on %s in the prepare phase, before the statement on "
			   "line %d that comes first in the file but runs at cutover",
			   p->inputs[c->input].file, p->inputs[c->input].line, who,
			   p->inputs[st->input].line);
		return;
	}
}

void rules_push_step(struct rules_ctx *c, const struct rules_step *s, char *sql)
{
	struct plan *p = c->p;
	static const struct qname none;

	if (s->phase == PHASE_PREPARE)
		note_prepare_order(c, s->table);
	p->steps = grow(p->steps, &c->cap_steps, p->n_steps, sizeof(*p->steps));
	p->steps[p->n_steps] = (struct plan_step){
		.seq = p->n_steps + 1,
		.kind = s->kind,
		.phase = s->phase,
		.sql = sql,
		.table = *s->table,
		.other = s->other ? *s->other : none,
		.index = s->index ? *s->index : none,
		.lock = s->lock,
		.hold = s->hold,
		.constraint = s->constraint,
		.drop = s->drop,
		.input = c->input,
	};
	p->n_steps++;
}

void rules_push_validate(struct rules_ctx *c, const struct rules_target *t, const char *name,
			 const struct qname *other, int constraint)
{
	struct strbuf sql = { 0 };

	rules_put_alter(&sql, t);
	strbuf_put(&sql, "VALIDATE CONSTRAINT ");
	quote_append_ident(&sql, name);
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_VALIDATE,
					      .phase = PHASE_VALIDATE,
					      .lock = LOCK_SHARE_UPDATE_EXCLUSIVE,
					      .hold = HOLD_NONE_NEEDED,
					      .table = &t->table,
					      .other = other,
					      .constraint = constraint,
					      .drop = -1 },
			strbuf_take(&sql));
}

/* ---- the rules ---- */

/* DROP CONSTRAINT [IF EXISTS] c [CASCADE | RESTRICT] */
static enum rules_outcome plan_drop(struct rules_ctx *c, const struct rules_target *t, const cJSON *cmd)
{
	struct plan *p = c->p;
	const char *name = pgtree_str(cmd, "name");
	bool cascade = pgtree_str_is(cmd, "behavior", "DROP_CASCADE");
	struct strbuf sql = { 0 };

	if (!name)
		return rules_unsupported(c, "DROP CONSTRAINT without a name");
	p->drops = grow(p->drops, &c->cap_drops, p->n_drops, sizeof(*p->drops));
	p->drops[p->n_drops] = (struct plan_drop){ .table = t->table,
						   .if_exists = pgtree_flag(cmd, "missing_ok"),
						   .input = c->input };
	snprintf(p->drops[p->n_drops].name, PLAN_NAME_MAX, "%s", name);
	p->n_drops++;
	rules_put_alter(&sql, t);
	strbuf_put(&sql, pgtree_flag(cmd, "missing_ok") ? "DROP CONSTRAINT IF EXISTS " : "DROP CONSTRAINT ");
	quote_append_ident(&sql, name);
	if (cascade)
		strbuf_put(&sql, " CASCADE");
	/* A foreign key's drop locks its referenced table too; which one only the database knows. */
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_DROP_CONSTRAINT,
					      .phase = PHASE_CUTOVER,
					      .lock = LOCK_ACCESS_EXCLUSIVE,
					      .hold = HOLD_ALL_NEEDED,
					      .table = &t->table,
					      .constraint = -1,
					      .drop = p->n_drops - 1 },
			strbuf_take(&sql));
	if (cascade)
		input_note(p,
			   "%s:%d: DROP CONSTRAINT … CASCADE also drops what depends on it (foreign "
			   "keys that reference a unique constraint's index)",
			   p->inputs[c->input].file, p->inputs[c->input].line);
	return RULE_DONE;
}

/* VALIDATE CONSTRAINT c: absorbed when this migration adds c (the rule validates it anyway). */
static enum rules_outcome plan_validate(struct rules_ctx *c, const struct rules_target *t, const char *name)
{
	const struct plan *p = c->p;

	for (int i = 0; i < p->n_constraints; i++) {
		if (rules_qname_eq(&p->constraints[i].table, &t->table) &&
		    strcmp(p->constraints[i].name, name) == 0) {
			input_note(c->p,
				   "NOT VALID + VALIDATE in one migration: shown rewritten as separate "
				   "phases");
			return RULE_DONE;
		}
	}
	rules_push_validate(c, t, name, NULL, -1);
	return RULE_DONE;
}

/* ALTER TABLE subcommands by the words people write. */
static const char *subcommand_words(const char *subtype)
{
	static const char *const words[][2] = {
		{ "AT_AddColumn", "ADD COLUMN" },
		{ "AT_DropColumn", "DROP COLUMN" },
		{ "AT_AlterColumnType", "ALTER COLUMN … TYPE" },
		{ "AT_ColumnDefault", "ALTER COLUMN … SET/DROP DEFAULT" },
		{ "AT_DropNotNull", "ALTER COLUMN … DROP NOT NULL" },
		{ "AT_AddIndex", "ADD INDEX" },
		{ "AT_SetTableSpace", "SET TABLESPACE" },
		{ "AT_ChangeOwner", "OWNER TO" },
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(subtype, words[i][0]) == 0)
			return words[i][1];
	return strncmp(subtype, "AT_", 3) == 0 ? subtype + 3 : subtype;
}

static enum rules_outcome plan_alter_table(struct rules_ctx *c, const cJSON *stmt, const cJSON *whole)
{
	const cJSON *rel = pgtree_get(stmt, "relation"), *cmd;
	struct rules_target t = { .only = !pgtree_flag(rel, "inh") };
	bool handled;
	enum rules_outcome done;

	if (!pgtree_str_is(stmt, "objtype", "OBJECT_TABLE"))
		return rules_unsupported(c, "ALTER of something other than a table");
	if (!rules_range_var(c, rel, &t.table))
		return rules_unsupported(c, "a three-part table name (database.schema.table)");
	if (pgtree_flag(stmt, "missing_ok"))
		input_note(c->p, "ALTER TABLE IF EXISTS: the rewritten steps expect the table to exist");
	done = rules_table_alter(c, &t, whole, &handled);
	if (handled)
		return done;
	cJSON_ArrayForEach(cmd, pgtree_get(stmt, "cmds"))
	{
		const cJSON *at = pgtree_node(cmd, "AlterTableCmd");
		const cJSON *con = pgtree_node(pgtree_get(at, "def"), "Constraint");
		const char *subtype = pgtree_str(at, "subtype"), *contype = pgtree_str(con, "contype");
		enum rules_outcome o;

		if (!subtype)
			return rules_unsupported(c, "an ALTER TABLE subcommand pgvalve does not know");
		if (strcmp(subtype, "AT_AddConstraint") == 0 && contype) {
			if (strcmp(contype, "CONSTR_FOREIGN") == 0)
				o = rules_foreign_key(c, &t, con);
			else if (strcmp(contype, "CONSTR_CHECK") == 0)
				o = rules_check(c, &t, con);
			else if (strcmp(contype, "CONSTR_UNIQUE") == 0 ||
				 strcmp(contype, "CONSTR_PRIMARY") == 0)
				o = rules_unique(c, &t, con, strcmp(contype, "CONSTR_PRIMARY") == 0);
			else
				o = rules_unsupported(c, "ALTER TABLE … ADD CONSTRAINT of type %s",
						      contype + 7);
		} else if (strcmp(subtype, "AT_SetNotNull") == 0 && pgtree_str(at, "name")) {
			o = rules_not_null(c, &t, pgtree_str(at, "name"));
		} else if (strcmp(subtype, "AT_DropConstraint") == 0) {
			o = plan_drop(c, &t, at);
		} else if (strcmp(subtype, "AT_ValidateConstraint") == 0 && pgtree_str(at, "name")) {
			o = plan_validate(c, &t, pgtree_str(at, "name"));
		} else {
			o = rules_unsupported(c, "ALTER TABLE … %s", subcommand_words(subtype));
		}
		if (o != RULE_DONE)
			return o;
	}
	return RULE_DONE;
}

/*
 * CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON t …: built in
 * the prepare phase. Without CONCURRENTLY it is inserted after INDEX in the
 * text, and the result must parse to the same tree but for "concurrent".
 */
static enum rules_outcome plan_index(struct rules_ctx *c, const cJSON *ix)
{
	static const char concurrently[] = " CONCURRENTLY";
	const char *name = pgtree_str(ix, "idxname");
	struct qname table, index = { .schema = "" };
	struct sqllex lx;
	struct sqllex_token tok = { .kind = SQLLEX_END };
	const cJSON *again;
	char msg[256], *sql;
	cJSON *doc = NULL;
	bool after_cutover;

	if (!name)
		return rules_failed(
			c,
			"CREATE INDEX without a name: name it (CREATE INDEX name ON …), so that pgvalve can "
			"find the index, and drop and build it again if a build is left invalid");
	if (!rules_range_var(c, pgtree_get(ix, "relation"), &table))
		return rules_unsupported(c, "a three-part table name (database.schema.table)");
	if (!pgtree_flag(pgtree_get(ix, "relation"), "inh"))
		return rules_unsupported(
			c,
			"CREATE INDEX … ON ONLY (a partitioned table's index cannot be built CONCURRENTLY)");
	snprintf(index.schema, sizeof(index.schema), "%s", table.schema);
	snprintf(index.name, sizeof(index.name), "%s", name);
	if (c->search_path[0] && !pgtree_get(pgtree_get(ix, "relation"), "schemaname"))
		return rules_failed(
			c,
			"after SET search_path, write the schema of the table a CREATE INDEX "
			"names (CREATE INDEX CONCURRENTLY runs alone, with the session's search_path)");
	after_cutover = rules_table_altered_at_cutover(c, &table);

	if (pgtree_flag(ix, "concurrent")) {
		sql = xstrdup(c->sql);
	} else {
		/* CREATE [UNIQUE] INDEX: the only tokens before the place CONCURRENTLY goes. */
		sqllex_init(&lx, c->sql, c->len, 0);
		for (int i = 0; i < 3; i++)
			if (sqllex_next_significant(&lx, &tok) == SQLLEX_IDENT &&
			    sqllex_is_keyword(c->sql, &tok, "index"))
				break;
		if (!sqllex_is_keyword(c->sql, &tok, "index"))
			return rules_failed(c, "cannot find the INDEX keyword to add CONCURRENTLY after");
		sql = xmalloc(c->len + sizeof(concurrently));
		memcpy(sql, c->sql, tok.end);
		memcpy(sql + tok.end, concurrently, sizeof(concurrently) - 1);
		memcpy(sql + tok.end + sizeof(concurrently) - 1, c->sql + tok.end, c->len - tok.end + 1);
		again = pgtree_node(rules_parse_one(sql, &doc, msg, sizeof(msg)), "IndexStmt");
		if (!pgtree_flag(again, "concurrent") || !pgtree_same(ix, again, "concurrent")) {
			cJSON_Delete(doc);
			free(sql);
			return rules_failed(
				c,
				"adding CONCURRENTLY to this CREATE INDEX changes more than that; "
				"write it as CREATE INDEX CONCURRENTLY yourself");
		}
		cJSON_Delete(doc);
		input_note(c->p,
			   "CREATE INDEX is rewritten to CREATE INDEX CONCURRENTLY (it blocks no writes; "
			   "a build left invalid is dropped and run again)");
	}
	if (after_cutover)
		input_note(c->p,
			   "%s:%d: builds its index CONCURRENTLY after the cutover, which adds the column "
			   "it needs",
			   c->p->inputs[c->input].file, c->p->inputs[c->input].line);
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_CREATE_INDEX,
					      .phase = after_cutover ? PHASE_VALIDATE : PHASE_PREPARE,
					      .lock = LOCK_SHARE_UPDATE_EXCLUSIVE,
					      .hold = HOLD_NONE_NEEDED,
					      .table = &table,
					      .index = &index,
					      .constraint = -1,
					      .drop = -1 },
			sql);
	return RULE_DONE;
}

/* One statement, by the type of its node. */
static enum rules_outcome plan_statement(struct rules_ctx *c)
{
	const struct plan_input *in = &c->p->inputs[c->input];
	const cJSON *stmt, *node;
	const char *kind;
	char msg[256];
	cJSON *doc = NULL;
	enum rules_outcome o;
	bool handled = false;

	if (c->len > RULES_PARSE_MAX_BYTES)
		return rules_unsupported(c, "a statement longer than %u KiB (not parsed)",
					 RULES_PARSE_MAX_BYTES >> 10);
	if (!(stmt = rules_parse_one(c->sql, &doc, msg, sizeof(msg)))) {
		cJSON_Delete(doc);
		if (strcmp(msg, "nested too deeply to plan") == 0 ||
		    strcmp(msg, "not exactly one statement") == 0)
			return rules_unsupported(c, "a statement %s", msg);
		return rules_failed(c, "%s", msg);
	}
	kind = pgtree_kind(stmt);
	node = kind ? pgtree_node(stmt, kind) : NULL;
	if (kind && strcmp(kind, "AlterTableStmt") == 0) {
		o = plan_alter_table(c, node, stmt);
	} else if (kind && strcmp(kind, "IndexStmt") == 0) {
		o = plan_index(c, node);
	} else if (kind && strcmp(kind, "ConstraintsSetStmt") == 0) {
		/* Django's SET CONSTRAINTS … IMMEDIATE: only the migration's own transaction would see it. */
		input_note(c->p,
			   "%s:%d: SET CONSTRAINTS is dropped: it only affects the migration's own "
			   "transaction, which pgvalve replaces with its phases",
			   in->file, in->line);
		o = RULE_DONE;
	} else if (kind && strcmp(kind, "TransactionStmt") == 0) {
		o = rules_failed(
			c,
			"transaction control inside a migration (ROLLBACK, SAVEPOINT, …) cannot run inside "
			"pgvalve's phases; only a BEGIN … COMMIT around the whole file is dropped");
	} else if (kind && (o = rules_table_statement(c, kind, stmt, &handled), handled)) {
		;
	} else {
		o = rules_unsupported(c, "%s", "this statement");
	}
	cJSON_Delete(doc);
	return o;
}

/*
 * --allow-unsafe: the statement as written, in the cutover transaction,
 * under a writes hold on the tables it names (the classifier's reading of
 * it: written tables first, then read ones; the step holds two).
 */
static void plan_unsafe(struct rules_ctx *c)
{
	const struct plan_input *in = &c->p->inputs[c->input];
	struct classify_options copt = { .parse_max_bytes = RULES_PARSE_MAX_BYTES };
	struct classify_result *r = xmalloc(sizeof(*r));
	struct qname held[2] = { { .schema = "" }, { .schema = "" } };
	char text[EXCERPT_MAX + 4], names[2][2 * PLAN_NAME_MAX + 8] = { "", "" };
	int n_held = 0, n_named = 0;

	classify_sql(c->sql, c->len, &copt, r);
	for (int pass = 0; pass < 2 && !(r->flags & CLASSIFY_UNKNOWN); pass++) {
		for (int i = 0; i < r->n_refs; i++) {
			bool written = r->refs[i].access & CLASSIFY_WRITE;

			if (written != (pass == 0))
				continue;
			n_named++;
			if (n_held == 2)
				continue;
			snprintf(held[n_held].schema, PLAN_NAME_MAX, "%s", r->refs[i].schema);
			snprintf(held[n_held].name, PLAN_NAME_MAX, "%s", r->refs[i].name);
			qname_format(&held[n_held], names[n_held], sizeof(names[n_held]));
			n_held++;
		}
	}
	rules_excerpt(c->sql, text);
	rules_push_step(c,
			&(struct rules_step){ .kind = STEP_UNSAFE,
					      .phase = PHASE_CUTOVER,
					      .lock = LOCK_ACCESS_EXCLUSIVE,
					      .hold = HOLD_WRITES_NEEDED,
					      .table = &held[0],
					      .other = n_held > 1 ? &held[1] : NULL,
					      .constraint = -1,
					      .drop = -1 },
			xstrdup(c->sql));
	if (r->flags & CLASSIFY_UNKNOWN)
		input_note(c->p,
			   "%s:%d: runs as written (--allow-unsafe) with lock_timeout, holding no table: "
			   "which tables it locks is unknown (%s): %s",
			   in->file, in->line, r->unknown_reason, text);
	else
		input_note(c->p,
			   "%s:%d: runs as written (--allow-unsafe) with lock_timeout, under a writes hold "
			   "on %s%s%s%s: %s",
			   in->file, in->line, n_held ? names[0] : "no table", n_held > 1 ? " and " : "",
			   names[1], n_named > 2 ? " (it names more tables: the others are not held)" : "",
			   text);
	free(r);
}

/* Records a refused statement (taking 'why' and 'recipe'); planning goes on to name every one. */
static void push_refusal(struct rules_ctx *c, char *why, char *recipe)
{
	struct plan *p = c->p;

	p->refusals = grow(p->refusals, &c->cap_refusals, p->n_refusals, sizeof(*p->refusals));
	p->refusals[p->n_refusals++] = (struct plan_refusal){ .input = c->input,
							      .why = why,
							      .recipe = recipe };
}

/*
 * A statement naming a table that an earlier statement of the file renames
 * (docs/architecture.md, the rules): pgvalve resolves, locks, holds, checks
 * and rolls back every table by the name the catalog has when the
 * migration starts, so the new name cannot be planned in the same file, and
 * the old one no longer exists when the statement runs.
 */
static enum rules_outcome renamed_use(struct rules_ctx *c)
{
	const struct rules_rename *r;
	char from[2 * PLAN_NAME_MAX + 8], to[2 * PLAN_NAME_MAX + 8];

	if (!c->renamed_new && !c->renamed_old)
		return RULE_DONE;
	r = &c->renames[(c->renamed_new ? c->renamed_new : c->renamed_old) - 1];
	qname_format(&r->from, from, sizeof(from));
	qname_format(&r->to, to, sizeof(to));
	if (c->renamed_new)
		return rules_refuse(c,
				    "apply the RENAME as a migration of its own first, then this "
				    "statement in the next one",
				    "it names %s, which line %d renames %s to: pgvalve checks, locks, holds "
				    "and rolls back a table by the name it has when the migration starts",
				    to, r->line, from);
	return rules_refuse(c, "name the table by its new name, in a migration after the RENAME",
			    "it names %s, which line %d renames to %s: the name no longer exists when "
			    "this statement runs",
			    from, r->line, to);
}

static int by_phase(const void *a, const void *b)
{
	const struct plan_step *x = a, *y = b;

	if (x->phase != y->phase)
		return x->phase < y->phase ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

bool rules_plan(struct plan *p, const struct rules_options *opt, struct input_error *err)
{
	struct rules_ctx c = { .p = p,
			       .opt = opt,
			       .err = err,
			       .cap_constraints = p->n_constraints,
			       .cap_drops = p->n_drops,
			       .cap_steps = p->n_steps };

	memset(err, 0, sizeof(*err));
	for (c.input = 0; c.input < p->n_inputs; c.input++) {
		const struct plan_input *in = &p->inputs[c.input];
		struct mark m = mark_of(p);
		enum rules_outcome o;

		c.sql = in->text;
		c.len = strlen(in->text);
		c.why[0] = '\0';
		c.recipe[0] = '\0';
		c.renamed_new = c.renamed_old = 0;
		o = plan_statement(&c);
		if (o == RULE_DONE)
			o = renamed_use(&c);
		if (o == RULE_UNSUPPORTED && opt->allow_unsafe) {
			rollback_to(p, &m);
			plan_unsafe(&c);
		} else if (o == RULE_UNSUPPORTED) {
			rollback_to(p, &m);
			if (c.recipe[0])
				push_refusal(&c, xasprintf("refused: %s", c.why),
					     xasprintf("safe recipe: %s; --allow-unsafe runs it as written",
						       c.recipe));
			else
				push_refusal(
					&c, xasprintf("no rule covers %s", c.why),
					xasprintf(
						"supported: %s; --allow-unsafe runs anything else as written",
						rules_supported_forms));
		} else if (o == RULE_FAILED) {
			rollback_to(p, &m);
			push_refusal(&c, xstrdup(err->msg), xstrdup(c.recipe[0] ? c.recipe : ""));
			memset(err, 0, sizeof(*err));
		}
	}
	if (p->n_refusals) {
		const struct plan_refusal *r = &p->refusals[0];
		const struct plan_input *in = &p->inputs[r->input];

		char text[EXCERPT_MAX + 4];

		rules_excerpt(in->text, text);
		if (p->n_refusals > 1)
			input_error_set(err, in->file, in->line,
					"%s: %s\n%s\n(and %d more refused statement(s))", r->why, text,
					r->recipe, p->n_refusals - 1);
		else
			input_error_set(err, in->file, in->line, "%s: %s%s%s", r->why, text,
					r->recipe[0] ? "\n" : "", r->recipe);
		return false;
	}
	/* Execution order: by phase, and within a phase in the order of the file. */
	if (p->n_steps) /* steps is NULL when there are none (SET CONSTRAINTS alone) */
		qsort(p->steps, (size_t)p->n_steps, sizeof(*p->steps), by_phase);
	for (int i = 0; i < p->n_steps; i++)
		p->steps[i].seq = i + 1;
	return true;
}
