/*
 * The rewrite rules (see rules.h, DESIGN.md §4.2). Each input statement is
 * parsed by libpg_query into PostgreSQL's parse tree as JSON and read with
 * cJSON; the steps' SQL is built from the tree's fields with every
 * identifier quoted. Source text is reused in two places only, and each is
 * parsed again and compared with the original tree before it is trusted: a
 * CHECK's expression, and a CREATE INDEX given CONCURRENTLY. Whatever no rule
 * covers is refused, or with --allow-unsafe run as written.
 */
#include "rules.h"

#include <cjson/cJSON.h>
#include <pg_query.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/classify.h"
#include "quote.h"

const char rules_supported_forms[] =
	"ALTER TABLE t ADD [CONSTRAINT c] FOREIGN KEY | CHECK | UNIQUE | PRIMARY KEY (…) [NOT VALID]; "
	"ALTER TABLE t ALTER [COLUMN] c SET NOT NULL; ALTER TABLE t DROP CONSTRAINT c; "
	"ALTER TABLE t VALIDATE CONSTRAINT c; CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON t …; "
	"BEGIN/COMMIT and SET CONSTRAINTS (dropped)";

#define EXCERPT_MAX 120

enum outcome {
	RULE_DONE,
	RULE_UNSUPPORTED, /* no rule covers it: c->why says what; refused, or run as written */
	RULE_FAILED,      /* a rule covers it but cannot rewrite it faithfully: err is set */
};

struct ctx {
	struct plan *p;
	const struct rules_options *opt;
	struct input_error *err;
	int input;       /* the statement being planned */
	const char *sql; /* its text */
	size_t len;
	int cap_constraints, cap_drops, cap_steps;
	char why[256]; /* RULE_UNSUPPORTED: what no rule covers */
};

/* How far the plan had got before a statement: undone when part of it turns out uncovered. */
struct mark {
	int n_constraints, n_drops, n_steps, n_notes;
};

/* The table an ALTER TABLE names, and whether ONLY kept it from recursing to children. */
struct target {
	struct qname table;
	bool only;
};

/* ---- reporting ---- */

static enum outcome unsupported(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static enum outcome failed(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static enum outcome unsupported(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	return RULE_UNSUPPORTED;
}

static enum outcome failed(struct ctx *c, const char *fmt, ...)
{
	const struct plan_input *in = &c->p->inputs[c->input];
	va_list ap;

	input_error_set(c->err, in->file, in->line, "%s", "");
	va_start(ap, fmt);
	vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
	va_end(ap);
	return RULE_FAILED;
}

static enum outcome out_of_memory(struct ctx *c)
{
	return failed(c, "out of memory");
}

/*
 * The statement's first EXCERPT_MAX bytes on one line (runs of white space
 * folded), "…" when cut, never ending inside a UTF-8 character. 'out' holds
 * at least EXCERPT_MAX + 4 bytes.
 */
static void excerpt(const char *sql, char out[EXCERPT_MAX + 4])
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

static const cJSON *field(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *str(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool flag(const cJSON *obj, const char *key)
{
	return cJSON_IsTrue(field(obj, key));
}

static bool str_is(const cJSON *obj, const char *key, const char *want)
{
	const char *v = str(obj, key);

	return v && strcmp(v, want) == 0;
}

/* The value of a {"String": {"sval": ...}} node, or NULL. */
static const char *string_node(const cJSON *node)
{
	return str(field(node, "String"), "sval");
}

/* A list of String nodes (column names) into names[]; false past PLAN_MAX_COLUMNS or on another node. */
static bool name_list(const cJSON *list, char names[][PLAN_NAME_MAX], int *n)
{
	const cJSON *item;

	*n = 0;
	cJSON_ArrayForEach(item, list)
	{
		const char *s = string_node(item);

		if (!s || *n == PLAN_MAX_COLUMNS)
			return false;
		snprintf(names[(*n)++], PLAN_NAME_MAX, "%s", s);
	}
	return true;
}

/* A RangeVar into a qname; false for a three-part name (database.schema.table). */
static bool range_var(const cJSON *rv, struct qname *q)
{
	const char *schema = str(rv, "schemaname"), *name = str(rv, "relname");

	if (!name || str(rv, "catalogname"))
		return false;
	snprintf(q->schema, sizeof(q->schema), "%s", schema ? schema : "");
	snprintf(q->name, sizeof(q->name), "%s", name);
	return true;
}

static bool qname_eq(const struct qname *a, const struct qname *b)
{
	return strcmp(a->schema, b->schema) == 0 && strcmp(a->name, b->name) == 0;
}

/*
 * Parses one statement: its node ({"AlterTableStmt": {...}}) inside *doc,
 * which the caller deletes. NULL with 'msg' set when it does not parse, is
 * not exactly one statement, or nests deeper than cJSON reads.
 */
static const cJSON *parse_one(const char *sql, cJSON **doc, char *msg, size_t cap)
{
	PgQueryParseResult r = pg_query_parse(sql);
	const cJSON *stmts;

	*doc = NULL;
	if (r.error) {
		snprintf(msg, cap, "%s", r.error->message);
	} else if (!(*doc = cJSON_Parse(r.parse_tree))) {
		snprintf(msg, cap, "nested too deeply to plan");
	} else if (cJSON_GetArraySize(stmts = field(*doc, "stmts")) != 1) {
		snprintf(msg, cap, "not exactly one statement");
	} else {
		pg_query_free_parse_result(r);
		return field(cJSON_GetArrayItem(stmts, 0), "stmt");
	}
	pg_query_free_parse_result(r);
	return NULL;
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

/*
 * Whether two trees are the same but for "location" fields (positions in
 * the text) and the field 'ignore' of their top objects (NULL: none).
 */
static bool same_tree(const cJSON *a, const cJSON *b, const char *ignore)
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

/* ---- generated SQL ---- */

/* A growing string; a failed allocation sticks and shows once, in sb_take(). */
struct sb {
	char *s;
	size_t len, cap;
	bool failed;
};

static bool sb_reserve(struct sb *b, size_t n)
{
	char *grown;
	size_t cap;

	if (b->failed)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 128;
	while (cap < b->len + n + 1)
		cap *= 2;
	if (!(grown = realloc(b->s, cap))) {
		b->failed = true;
		return false;
	}
	b->s = grown;
	b->cap = cap;
	return true;
}

static void sb_putn(struct sb *b, const char *s, size_t n)
{
	if (!sb_reserve(b, n))
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_put(struct sb *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

/* Appends 'word' after a space unless the string is empty. */
static void sb_word(struct sb *b, const char *word)
{
	if (b->len)
		sb_put(b, " ");
	sb_put(b, word);
}

static void sb_ident(struct sb *b, const char *name)
{
	size_t n = quote_ident(NULL, 0, name);

	if (!sb_reserve(b, n))
		return;
	quote_ident(b->s + b->len, n + 1, name);
	b->len += n;
}

static void sb_qname(struct sb *b, const struct qname *q)
{
	size_t n = quote_qname(NULL, 0, q->schema, q->name);

	if (!sb_reserve(b, n))
		return;
	quote_qname(b->s + b->len, n + 1, q->schema, q->name);
	b->len += n;
}

/* ("a", "b") */
static void sb_columns(struct sb *b, char cols[][PLAN_NAME_MAX], int n)
{
	sb_put(b, "(");
	for (int i = 0; i < n; i++) {
		if (i)
			sb_put(b, ", ");
		sb_ident(b, cols[i]);
	}
	sb_put(b, ")");
}

/* "ALTER TABLE [ONLY] t " */
static void sb_alter(struct sb *b, const struct target *t)
{
	sb_put(b, t->only ? "ALTER TABLE ONLY " : "ALTER TABLE ");
	sb_qname(b, &t->table);
	sb_put(b, " ");
}

/* The built string (never NULL unless allocation failed, "" when nothing was added); b is reset. */
static char *sb_take(struct sb *b)
{
	char *s = b->failed ? NULL : b->s ? b->s : strdup("");

	if (b->failed)
		free(b->s);
	memset(b, 0, sizeof(*b));
	return s;
}

/* ---- names PostgreSQL would choose ---- */

/* The longest prefix of s of at most n bytes that does not split a UTF-8 character (pg_mbcliplen). */
static size_t clip_utf8(const char *s, size_t n)
{
	if (n >= strlen(s))
		return strlen(s);
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/*
 * PostgreSQL's makeObjectName(): name1[_name2][_label] in NAMEDATALEN - 1
 * bytes, shortening the longer of name1 and name2 first and never the label.
 * Assumes a UTF-8 server encoding for where a character may be cut.
 */
static void make_object_name(char out[PLAN_NAME_MAX], const char *name1, const char *name2, const char *label)
{
	size_t overhead = (name2 ? 1 : 0) + (label ? strlen(label) + 1 : 0);
	size_t avail = PLAN_NAME_MAX - 1 - overhead;
	size_t n1 = strlen(name1), n2 = name2 ? strlen(name2) : 0;

	while (n1 + n2 > avail) {
		if (n1 > n2)
			n1--;
		else
			n2--;
	}
	n1 = clip_utf8(name1, n1);
	n2 = name2 ? clip_utf8(name2, n2) : 0;
	snprintf(out, PLAN_NAME_MAX, "%.*s%s%.*s%s%s", (int)n1, name1, name2 ? "_" : "", (int)n2,
		 name2 ? name2 : "", label ? "_" : "", label ? label : "");
}

/*
 * PostgreSQL's ChooseForeignKeyConstraintNameAddition() and
 * ChooseIndexNameAddition() (the same): the column names joined by '_',
 * stopping once NAMEDATALEN bytes are reached.
 */
static void name_addition(char cols[][PLAN_NAME_MAX], int n, char out[2 * PLAN_NAME_MAX])
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < n && len < PLAN_NAME_MAX; i++) {
		if (len > 0)
			out[len++] = '_';
		len += (size_t)snprintf(out + len, PLAN_NAME_MAX, "%s", cols[i]);
	}
}

/*
 * Whether the plan already adds a constraint named 'name' in 'schema' (or,
 * with 'indexes', builds an index of that name: an index is a relation, and
 * ChooseRelationName() looks at both where ChooseConstraintName() looks at
 * constraints only).
 */
static bool name_taken(const struct plan *p, const char *schema, const char *name, bool indexes)
{
	for (int i = 0; i < p->n_constraints; i++)
		if (strcmp(p->constraints[i].table.schema, schema) == 0 &&
		    strcmp(p->constraints[i].name, name) == 0)
			return true;
	for (int i = 0; indexes && i < p->n_steps; i++)
		if (strcmp(p->steps[i].index.schema, schema) == 0 &&
		    strcmp(p->steps[i].index.name, name) == 0)
			return true;
	return false;
}

/*
 * PostgreSQL's ChooseConstraintName() (ChooseRelationName() for an index:
 * labels "key" and "pkey"): the first of name1_name2_label,
 * ..._label1, ..._label2 not taken. Only this plan's names are seen; one
 * already in the database is the preflight's to find.
 */
static void choose_name(const struct plan *p, const struct qname *table, const char *name2, const char *label,
			char out[PLAN_NAME_MAX])
{
	bool index = strcmp(label, "key") == 0 || strcmp(label, "pkey") == 0;
	char modlabel[PLAN_NAME_MAX];

	snprintf(modlabel, sizeof(modlabel), "%s", label);
	for (int pass = 1;; pass++) {
		make_object_name(out, table->name, name2, modlabel);
		if (!name_taken(p, table->schema, out, index))
			return;
		snprintf(modlabel, sizeof(modlabel), "%s%d", label, pass);
	}
}

/* ---- building the plan ---- */

/* 'arr' with room for n + 1 elements of 'size' (NULL when out of memory; 'arr' is then kept). */
static void *grow(void *arr, int *cap, int n, size_t size)
{
	int want;
	void *grown;

	if (n < *cap)
		return arr;
	want = n < 8 ? 16 : n * 2;
	if (!(grown = realloc(arr, size * (size_t)want)))
		return NULL;
	*cap = want;
	return grown;
}

static struct mark mark_of(const struct plan *p)
{
	return (struct mark){ p->n_constraints, p->n_drops, p->n_steps, p->n_notes };
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
	while (p->n_notes > m->n_notes)
		free(p->notes[--p->n_notes]);
}

/* The earlier drop of 'name' on 'table' in this plan, or -1. */
static int dropped_before(const struct plan *p, const struct qname *table, const char *name)
{
	for (int i = 0; i < p->n_drops; i++)
		if (qname_eq(&p->drops[i].table, table) && strcmp(p->drops[i].name, name) == 0)
			return i;
	return -1;
}

/* Adds a constraint (taking its fk_tail and check_expr); its index, or -1 when out of memory. */
static int push_constraint(struct ctx *c, struct plan_constraint *k)
{
	struct plan *p = c->p;
	struct plan_constraint *grown = grow(p->constraints, &c->cap_constraints, p->n_constraints,
					     sizeof(*grown));
	char who[2 * PLAN_NAME_MAX + 8];

	if (!grown) {
		free(k->fk_tail);
		free(k->check_expr);
		return -1;
	}
	p->constraints = grown;
	k->input = c->input;
	k->replaces = dropped_before(p, &k->table, k->name) >= 0;
	qname_format(&k->table, who, sizeof(who));
	if (k->replaces &&
	    !input_note(p,
			"%s is replaced: its prior definition is snapshotted, the DROP and the new "
			"ADD run in one cutover transaction, and a rollback restores it",
			who)) {
		free(k->fk_tail);
		free(k->check_expr);
		return -1;
	}
	p->constraints[p->n_constraints] = *k;
	return p->n_constraints++;
}

/* A step to add; sql is taken. */
struct step_spec {
	enum step_kind kind;
	enum plan_phase phase;
	enum plan_lock lock;
	enum plan_hold hold;
	const struct qname *table;
	const struct qname *other; /* NULL: none */
	const struct qname *index; /* NULL: none */
	int constraint, drop;
};

/*
 * A prepare step runs before any cutover step, so before every statement
 * the file puts ahead of it that runs as written (CREATE TABLE, ADD COLUMN,
 * ...): say so when such a statement names the same table.
 */
static bool note_prepare_order(struct ctx *c, const struct qname *table)
{
	const struct plan *p = c->p;

	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];
		char who[2 * PLAN_NAME_MAX + 8];

		if (st->kind != STEP_UNSAFE || !(qname_eq(&st->table, table) || qname_eq(&st->other, table)))
			continue;
		qname_format(table, who, sizeof(who));
		return input_note(
			c->p,
			"%s:%d: builds its index on %s in the prepare phase, before the statement on "
			"line %d that comes first in the file but runs at cutover",
			p->inputs[c->input].file, p->inputs[c->input].line, who, p->inputs[st->input].line);
	}
	return true;
}

__attribute__((warn_unused_result)) static bool push_step(struct ctx *c, const struct step_spec *s, char *sql)
{
	struct plan *p = c->p;
	struct plan_step *grown, *st;
	static const struct qname none;

	if (!sql)
		return false;
	if (s->phase == PHASE_PREPARE && !note_prepare_order(c, s->table)) {
		free(sql);
		return false;
	}
	if (!(grown = grow(p->steps, &c->cap_steps, p->n_steps, sizeof(*grown)))) {
		free(sql);
		return false;
	}
	p->steps = grown;
	st = &p->steps[p->n_steps];
	*st = (struct plan_step){
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
	return true;
}

/* ALTER TABLE [ONLY] t VALIDATE CONSTRAINT c: no hold (SHARE UPDATE EXCLUSIVE lets reads and writes run). */
__attribute__((warn_unused_result)) static bool push_validate(struct ctx *c, const struct target *t,
							      const char *name, const struct qname *other,
							      int constraint)
{
	struct sb sql = { 0 };

	sb_alter(&sql, t);
	sb_put(&sql, "VALIDATE CONSTRAINT ");
	sb_ident(&sql, name);
	return push_step(c,
			 &(struct step_spec){ .kind = STEP_VALIDATE,
					      .phase = PHASE_VALIDATE,
					      .lock = LOCK_SHARE_UPDATE_EXCLUSIVE,
					      .hold = HOLD_NONE_NEEDED,
					      .table = &t->table,
					      .other = other,
					      .constraint = constraint,
					      .drop = -1 },
			 sb_take(&sql));
}

/* The note for people on a FOREIGN KEY or CHECK as written: with NOT VALID or without. */
static const char *validation_note(const cJSON *con)
{
	return flag(con, "skip_validation")
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
static enum outcome add_then_validate(struct ctx *c, const struct target *t, struct plan_constraint *k,
				      const char *definition, const char *note, enum plan_lock lock,
				      enum plan_hold hold, const struct qname *other)
{
	struct sb sql = { 0 };
	int idx;

	sb_alter(&sql, t);
	sb_put(&sql, "ADD CONSTRAINT ");
	sb_ident(&sql, k->name);
	sb_put(&sql, " ");
	sb_put(&sql, definition);
	sb_put(&sql, " NOT VALID");
	if ((idx = push_constraint(c, k)) < 0 ||
	    !push_step(c,
		       &(struct step_spec){ .kind = STEP_ADD_NOT_VALID,
					    .phase = PHASE_CUTOVER,
					    .lock = lock,
					    .hold = hold,
					    .table = &t->table,
					    .other = other,
					    .constraint = idx,
					    .drop = -1 },
		       sb_take(&sql)) ||
	    !push_validate(c, t, k->name, other, idx))
		goto oom;
	if (!input_note(c->p, "%s", note))
		goto oom;
	return RULE_DONE;
oom:
	free(sql.s);
	return out_of_memory(c);
}

/* DEFERRABLE / INITIALLY DEFERRED, as written. */
static void sb_deferral(struct sb *b, const cJSON *con)
{
	if (flag(con, "deferrable"))
		sb_word(b, "DEFERRABLE");
	if (flag(con, "initdeferred"))
		sb_word(b, "INITIALLY DEFERRED");
}

/* ON UPDATE / ON DELETE with its action; NO ACTION, the default, is left out. */
static void sb_fk_action(struct sb *b, const char *on, const char *action, const cJSON *set_cols)
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
		sb_word(b, on);
		sb_word(b, actions[i].sql);
		if (set_cols && name_list(set_cols, cols, &n) && n > 0) {
			sb_put(b, " ");
			sb_columns(b, cols, n);
		}
	}
}

/* ADD [CONSTRAINT c] FOREIGN KEY (cols) REFERENCES p [(cols)] [MATCH …] [ON …] [DEFERRABLE …] [NOT VALID] */
static enum outcome plan_foreign_key(struct ctx *c, const struct target *t, const cJSON *con)
{
	struct plan_constraint k = { .type = CON_FOREIGN_KEY, .table = t->table };
	struct sb tail = { 0 }, def = { 0 };
	char addition[2 * PLAN_NAME_MAX], *definition;
	const char *match = str(con, "fk_matchtype"), *name = str(con, "conname");
	const cJSON *set_cols = field(con, "fk_del_set_cols");
	enum outcome o;

	if (!name_list(field(con, "fk_attrs"), k.columns, &k.n_columns) || k.n_columns == 0 ||
	    !name_list(field(con, "pk_attrs"), k.ref_columns, &k.n_ref_columns))
		return failed(c, "a foreign key of more than %d columns (PostgreSQL's limit too)",
			      PLAN_MAX_COLUMNS);
	if (!range_var(field(con, "pktable"), &k.ref_table))
		return unsupported(c, "a three-part table name (database.schema.table)");
	if (match && strcmp(match, "p") == 0) /* defensive: the parser already refuses MATCH PARTIAL */
		return unsupported(c, "MATCH PARTIAL (PostgreSQL does not implement it)");
	if (match && strcmp(match, "f") == 0)
		sb_word(&tail, "MATCH FULL");
	sb_fk_action(&tail, "ON UPDATE", str(con, "fk_upd_action"), NULL);
	sb_fk_action(&tail, "ON DELETE", str(con, "fk_del_action"), set_cols);
	sb_deferral(&tail, con);
	if (name) {
		snprintf(k.name, sizeof(k.name), "%s", name);
	} else {
		name_addition(k.columns, k.n_columns, addition);
		choose_name(c->p, &t->table, addition, "fkey", k.name);
	}
	k.fk_tail = sb_take(&tail);

	sb_put(&def, "FOREIGN KEY ");
	sb_columns(&def, k.columns, k.n_columns);
	sb_put(&def, " REFERENCES ");
	sb_qname(&def, &k.ref_table);
	if (k.n_ref_columns) {
		sb_put(&def, " ");
		sb_columns(&def, k.ref_columns, k.n_ref_columns);
	}
	if (k.fk_tail && k.fk_tail[0]) {
		sb_put(&def, " ");
		sb_put(&def, k.fk_tail);
	}
	if (!(definition = sb_take(&def))) {
		free(k.fk_tail);
		return out_of_memory(c);
	}
	/* SHARE ROW EXCLUSIVE on both tables: writes wait, reads go on. */
	o = add_then_validate(c, t, &k, definition, validation_note(con), LOCK_SHARE_ROW_EXCLUSIVE,
			      HOLD_WRITES_NEEDED, &k.ref_table);
	free(definition);
	return o;
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
	enum quote_token k;
	size_t pos, e, body, a, b;
	int depth = 1;

	if (location < 0 || (size_t)location >= len)
		return false;
	pos = (size_t)location;
	k = quote_next(s, len, &pos, &e);
	if (k == QUOTE_TOK_WORD && quote_is_keyword(s + pos, e - pos, "constraint")) {
		pos = e;
		k = quote_next(s, len, &pos, &e); /* the name */
		if (k != QUOTE_TOK_WORD && k != QUOTE_TOK_IDENT)
			return false;
		pos = e;
		k = quote_next(s, len, &pos, &e);
	}
	if (k != QUOTE_TOK_WORD || !quote_is_keyword(s + pos, e - pos, "check"))
		return false;
	pos = e;
	if (quote_next(s, len, &pos, &e) != QUOTE_TOK_PUNCT || s[pos] != '(')
		return false;
	body = e;
	for (pos = e;; pos = e) {
		k = quote_next(s, len, &pos, &e);
		if (k == QUOTE_TOK_END || k == QUOTE_TOK_UNTERMINATED)
			return false;
		if (k == QUOTE_TOK_PUNCT && s[pos] == '(')
			depth++;
		else if (k == QUOTE_TOK_PUNCT && s[pos] == ')' && --depth == 0)
			break;
	}
	if (!quote_trim(s + body, pos - body, &a, &b))
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
			const cJSON *fields = field(child, "fields");
			const char *col = string_node(
				cJSON_GetArrayItem(fields, cJSON_GetArraySize(fields) - 1));

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
	const cJSON *cmd = cJSON_GetArrayItem(field(field(stmt, "AlterTableStmt"), "cmds"), 0);

	return field(field(field(cmd, "AlterTableCmd"), "def"), "Constraint");
}

/* ADD [CONSTRAINT c] CHECK (expr) [NO INHERIT] [NOT VALID] */
static enum outcome plan_check(struct ctx *c, const struct target *t, const cJSON *con)
{
	struct plan_constraint k = { .type = CON_CHECK, .table = t->table };
	const cJSON *loc = field(con, "location"), *raw = field(con, "raw_expr"), *again;
	const char *name = str(con, "conname");
	char col[PLAN_NAME_MAX] = "", msg[256], *definition = NULL, *probe = NULL;
	struct sb def = { 0 }, sql = { 0 };
	size_t start, end;
	cJSON *doc = NULL;
	enum outcome o;

	if (!cJSON_IsNumber(loc) || !check_span(c->sql, c->len, loc->valueint, &start, &end))
		return failed(c, "cannot find the CHECK expression in the statement's text");
	if (name)
		snprintf(k.name, sizeof(k.name), "%s", name);
	else
		choose_name(c->p, &t->table, check_columns(raw, col, 0) == 1 ? col : NULL, "check", k.name);

	sb_put(&def, "CHECK (");
	sb_putn(&def, c->sql + start, end - start);
	sb_put(&def, flag(con, "is_no_inherit") ? ") NO INHERIT" : ")");
	if (!(definition = sb_take(&def)) || !(k.fk_tail = strdup("")) ||
	    !(k.check_expr = strndup(c->sql + start, end - start)))
		goto oom;

	/* The expression is source text: it must read back as the same tree before it goes into a step. */
	sb_alter(&sql, t);
	sb_put(&sql, "ADD CONSTRAINT ");
	sb_ident(&sql, k.name);
	sb_put(&sql, " ");
	sb_put(&sql, definition);
	sb_put(&sql, " NOT VALID");
	if (!(probe = sb_take(&sql)))
		goto oom;
	again = parse_one(probe, &doc, msg, sizeof(msg));
	if (!again || !same_tree(raw, field(first_constraint(again), "raw_expr"), NULL) ||
	    flag(first_constraint(again), "is_no_inherit") != flag(con, "is_no_inherit")) {
		free(k.fk_tail);
		free(k.check_expr);
		o = failed(
			c,
			"the CHECK expression of %s does not read back the same when cut out of the text, so "
			"pgvalve will not rewrite it (a bug in pgvalve: please report the statement)",
			k.name);
		goto out;
	}
	o = add_then_validate(c, t, &k, definition, validation_note(con), LOCK_ACCESS_EXCLUSIVE,
			      HOLD_ALL_NEEDED, NULL);
	goto out;
oom:
	free(k.fk_tail);
	free(k.check_expr);
	o = out_of_memory(c);
out:
	cJSON_Delete(doc);
	free(definition);
	free(probe);
	return o;
}

/*
 * ALTER [COLUMN] c SET NOT NULL: a helper CHECK (c IS NOT NULL) added NOT
 * VALID and validated without blocking writes, then SET NOT NULL (PostgreSQL
 * 12+ sees the valid CHECK and skips its scan) and the helper dropped.
 */
static enum outcome plan_not_null(struct ctx *c, const struct target *t, const char *column)
{
	struct plan_constraint k = { .type = CON_NOT_NULL, .table = t->table, .n_columns = 1 };
	struct sb expr = { 0 }, def = { 0 }, set = { 0 }, drop = { 0 };
	char *definition;
	enum outcome o;
	int idx;

	snprintf(k.columns[0], sizeof(k.columns[0]), "%s", column);
	choose_name(c->p, &t->table, column, "not_null", k.name);
	sb_ident(&expr, column);
	sb_put(&expr, " IS NOT NULL");
	k.check_expr = sb_take(&expr);
	sb_put(&def, "CHECK (");
	sb_put(&def, k.check_expr ? k.check_expr : "");
	sb_put(&def, ")");
	definition = sb_take(&def);
	if (!definition || !k.check_expr || !(k.fk_tail = strdup(""))) {
		free(definition);
		free(k.check_expr);
		return out_of_memory(c);
	}
	o = add_then_validate(
		c, t, &k, definition,
		"SET NOT NULL is rewritten: a CHECK (c IS NOT NULL) added NOT VALID and validated without "
		"blocking writes, then SET NOT NULL (which skips its scan given that CHECK) and the CHECK "
		"dropped",
		LOCK_ACCESS_EXCLUSIVE, HOLD_ALL_NEEDED, NULL);
	free(definition);
	if (o != RULE_DONE)
		return o;
	idx = c->p->n_constraints - 1;
	sb_alter(&set, t);
	sb_put(&set, "ALTER COLUMN ");
	sb_ident(&set, column);
	sb_put(&set, " SET NOT NULL");
	sb_alter(&drop, t);
	sb_put(&drop, "DROP CONSTRAINT ");
	sb_ident(&drop, k.name);
	if (!push_step(c,
		       &(struct step_spec){ .kind = STEP_SET_NOT_NULL,
					    .phase = PHASE_FINALIZE,
					    .lock = LOCK_ACCESS_EXCLUSIVE,
					    .hold = HOLD_ALL_NEEDED,
					    .table = &t->table,
					    .constraint = idx,
					    .drop = -1 },
		       sb_take(&set)) ||
	    !push_step(c,
		       &(struct step_spec){ .kind = STEP_DROP_HELPER_CHECK,
					    .phase = PHASE_FINALIZE,
					    .lock = LOCK_ACCESS_EXCLUSIVE,
					    .hold = HOLD_ALL_NEEDED,
					    .table = &t->table,
					    .constraint = idx,
					    .drop = -1 },
		       sb_take(&drop))) {
		free(drop.s);
		return out_of_memory(c);
	}
	return RULE_DONE;
}

/*
 * ADD [CONSTRAINT c] UNIQUE | PRIMARY KEY (cols) [INCLUDE (cols)] …: the
 * index built CONCURRENTLY first, then attached with ADD CONSTRAINT … USING
 * INDEX, which renames it to the constraint's name. ADD … USING INDEX i as
 * written attaches i.
 */
static enum outcome plan_unique(struct ctx *c, const struct target *t, const cJSON *con, bool primary)
{
	struct plan_constraint k = { .type = primary ? CON_PRIMARY_KEY : CON_UNIQUE, .table = t->table };
	struct qname index = { .schema = "" };
	char include[PLAN_MAX_COLUMNS][PLAN_NAME_MAX], addition[2 * PLAN_NAME_MAX];
	const char *name = str(con, "conname"), *existing = str(con, "indexname"),
		   *space = str(con, "indexspace");
	struct sb create = { 0 }, attach = { 0 };
	int n_include = 0, idx;

	if (field(con, "options"))
		return unsupported(c,
				   "index storage parameters (WITH …) in ADD %s: build the index with CREATE "
				   "UNIQUE INDEX … WITH (…) and attach it with ADD CONSTRAINT … USING INDEX",
				   primary ? "PRIMARY KEY" : "UNIQUE");
	if (!name_list(field(con, "keys"), k.columns, &k.n_columns) ||
	    !name_list(field(con, "including"), include, &n_include) ||
	    k.n_columns + n_include > PLAN_MAX_COLUMNS)
		return failed(c, "an index of more than %d columns (PostgreSQL's limit too)",
			      PLAN_MAX_COLUMNS);
	snprintf(index.schema, sizeof(index.schema), "%s", t->table.schema);
	if (name) {
		snprintf(k.name, sizeof(k.name), "%s", name);
	} else if (existing) {
		snprintf(k.name, sizeof(k.name), "%s", existing);
	} else {
		name_addition(k.columns, k.n_columns, addition);
		choose_name(c->p, &t->table, primary ? NULL : addition, primary ? "pkey" : "key", k.name);
	}
	if (existing)
		snprintf(index.name, sizeof(index.name), "%s", existing);
	else if (dropped_before(c->p, &t->table, k.name) >= 0)
		make_object_name(index.name, k.name, NULL,
				 "new"); /* the old index keeps the name until cutover */
	else
		snprintf(index.name, sizeof(index.name), "%s", k.name);
	if (!(k.fk_tail = strdup("")) || (idx = push_constraint(c, &k)) < 0)
		return out_of_memory(c);

	if (!existing) {
		sb_put(&create, "CREATE UNIQUE INDEX CONCURRENTLY ");
		sb_ident(&create, index.name);
		sb_put(&create, " ON ");
		sb_qname(&create, &t->table);
		sb_put(&create, " ");
		sb_columns(&create, k.columns, k.n_columns);
		if (n_include) {
			sb_put(&create, " INCLUDE ");
			sb_columns(&create, include, n_include);
		}
		if (flag(con, "nulls_not_distinct"))
			sb_put(&create, " NULLS NOT DISTINCT");
		if (space) {
			sb_put(&create, " TABLESPACE ");
			sb_ident(&create, space);
		}
		if (!push_step(c,
			       &(struct step_spec){ .kind = STEP_CREATE_INDEX,
						    .phase = PHASE_PREPARE,
						    .lock = LOCK_SHARE_UPDATE_EXCLUSIVE,
						    .hold = HOLD_NONE_NEEDED,
						    .table = &t->table,
						    .index = &index,
						    .constraint = idx,
						    .drop = -1 },
			       sb_take(&create)))
			return out_of_memory(c);
	}
	sb_alter(&attach, t);
	sb_put(&attach, "ADD CONSTRAINT ");
	sb_ident(&attach, k.name);
	sb_put(&attach, primary ? " PRIMARY KEY USING INDEX " : " UNIQUE USING INDEX ");
	sb_ident(&attach, index.name);
	if (flag(con, "deferrable"))
		sb_put(&attach, " DEFERRABLE");
	if (flag(con, "initdeferred"))
		sb_put(&attach, " INITIALLY DEFERRED");
	if (!push_step(c,
		       &(struct step_spec){ .kind = STEP_ADD_USING_INDEX,
					    .phase = PHASE_CUTOVER,
					    .lock = LOCK_ACCESS_EXCLUSIVE,
					    .hold = HOLD_ALL_NEEDED,
					    .table = &t->table,
					    .index = &index,
					    .constraint = idx,
					    .drop = -1 },
		       sb_take(&attach)))
		return out_of_memory(c);
	if (primary &&
	    !input_note(c->p,
			"ADD PRIMARY KEY … USING INDEX also sets NOT NULL on key columns that "
			"lack it, scanning the table under ACCESS EXCLUSIVE: make them NOT NULL first"))
		return out_of_memory(c);
	return RULE_DONE;
}

/* DROP CONSTRAINT [IF EXISTS] c [CASCADE | RESTRICT] */
static enum outcome plan_drop(struct ctx *c, const struct target *t, const cJSON *cmd)
{
	struct plan *p = c->p;
	struct plan_drop *grown = grow(p->drops, &c->cap_drops, p->n_drops, sizeof(*grown));
	const char *name = str(cmd, "name");
	bool cascade = str_is(cmd, "behavior", "DROP_CASCADE");
	struct sb sql = { 0 };

	if (!name)
		return unsupported(c, "DROP CONSTRAINT without a name");
	if (!grown)
		return out_of_memory(c);
	p->drops = grown;
	p->drops[p->n_drops] = (struct plan_drop){ .table = t->table,
						   .if_exists = flag(cmd, "missing_ok"),
						   .input = c->input };
	snprintf(p->drops[p->n_drops].name, PLAN_NAME_MAX, "%s", name);
	p->n_drops++;
	sb_alter(&sql, t);
	sb_put(&sql, flag(cmd, "missing_ok") ? "DROP CONSTRAINT IF EXISTS " : "DROP CONSTRAINT ");
	sb_ident(&sql, name);
	if (cascade)
		sb_put(&sql, " CASCADE");
	/* A foreign key's drop locks its referenced table too; which one only the database knows. */
	if (!push_step(c,
		       &(struct step_spec){ .kind = STEP_DROP_CONSTRAINT,
					    .phase = PHASE_CUTOVER,
					    .lock = LOCK_ACCESS_EXCLUSIVE,
					    .hold = HOLD_ALL_NEEDED,
					    .table = &t->table,
					    .constraint = -1,
					    .drop = p->n_drops - 1 },
		       sb_take(&sql)))
		return out_of_memory(c);
	if (cascade &&
	    !input_note(p,
			"%s:%d: DROP CONSTRAINT … CASCADE also drops what depends on it (foreign "
			"keys that reference a unique constraint's index)",
			p->inputs[c->input].file, p->inputs[c->input].line))
		return out_of_memory(c);
	return RULE_DONE;
}

/* VALIDATE CONSTRAINT c: absorbed when this migration adds c (the rule validates it anyway). */
static enum outcome plan_validate(struct ctx *c, const struct target *t, const char *name)
{
	const struct plan *p = c->p;

	for (int i = 0; i < p->n_constraints; i++) {
		if (qname_eq(&p->constraints[i].table, &t->table) &&
		    strcmp(p->constraints[i].name, name) == 0) {
			if (!input_note(c->p,
					"NOT VALID + VALIDATE in one migration: shown rewritten as separate "
					"phases"))
				return out_of_memory(c);
			return RULE_DONE;
		}
	}
	if (!push_validate(c, t, name, NULL, -1))
		return out_of_memory(c);
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

static enum outcome plan_alter_table(struct ctx *c, const cJSON *stmt)
{
	const cJSON *rel = field(stmt, "relation"), *cmd;
	struct target t = { .only = !flag(rel, "inh") };

	if (!str_is(stmt, "objtype", "OBJECT_TABLE"))
		return unsupported(c, "ALTER of something other than a table");
	if (!range_var(rel, &t.table))
		return unsupported(c, "a three-part table name (database.schema.table)");
	if (flag(stmt, "missing_ok") &&
	    !input_note(c->p, "ALTER TABLE IF EXISTS: the rewritten steps expect the table to exist"))
		return out_of_memory(c);
	cJSON_ArrayForEach(cmd, field(stmt, "cmds"))
	{
		const cJSON *at = field(cmd, "AlterTableCmd"), *con = field(field(at, "def"), "Constraint");
		const char *subtype = str(at, "subtype"), *contype = str(con, "contype");
		enum outcome o;

		if (!subtype)
			return unsupported(c, "an ALTER TABLE subcommand pgvalve does not know");
		if (strcmp(subtype, "AT_AddConstraint") == 0 && contype) {
			if (strcmp(contype, "CONSTR_FOREIGN") == 0)
				o = plan_foreign_key(c, &t, con);
			else if (strcmp(contype, "CONSTR_CHECK") == 0)
				o = plan_check(c, &t, con);
			else if (strcmp(contype, "CONSTR_UNIQUE") == 0 ||
				 strcmp(contype, "CONSTR_PRIMARY") == 0)
				o = plan_unique(c, &t, con, strcmp(contype, "CONSTR_PRIMARY") == 0);
			else
				o = unsupported(c, "ALTER TABLE … ADD CONSTRAINT of type %s", contype + 7);
		} else if (strcmp(subtype, "AT_SetNotNull") == 0 && str(at, "name")) {
			o = plan_not_null(c, &t, str(at, "name"));
		} else if (strcmp(subtype, "AT_DropConstraint") == 0) {
			o = plan_drop(c, &t, at);
		} else if (strcmp(subtype, "AT_ValidateConstraint") == 0 && str(at, "name")) {
			o = plan_validate(c, &t, str(at, "name"));
		} else {
			o = unsupported(c, "ALTER TABLE … %s", subcommand_words(subtype));
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
static enum outcome plan_index(struct ctx *c, const cJSON *stmt)
{
	const cJSON *ix = field(stmt, "IndexStmt"), *again;
	const char *name = str(ix, "idxname");
	struct qname table, index = { .schema = "" };
	char msg[256], *sql = NULL;
	size_t pos = 0, end = 0;
	enum quote_token k = QUOTE_TOK_END;
	cJSON *doc = NULL;
	enum outcome o = RULE_DONE;

	if (!name)
		return failed(
			c,
			"CREATE INDEX without a name: name it (CREATE INDEX name ON …), so that pgvalve can "
			"find the index, and drop and build it again if a build is left invalid");
	if (!range_var(field(ix, "relation"), &table))
		return unsupported(c, "a three-part table name (database.schema.table)");
	if (!flag(field(ix, "relation"), "inh"))
		return unsupported(
			c,
			"CREATE INDEX … ON ONLY (a partitioned table's index cannot be built CONCURRENTLY)");
	snprintf(index.schema, sizeof(index.schema), "%s", table.schema);
	snprintf(index.name, sizeof(index.name), "%s", name);

	if (flag(ix, "concurrent")) {
		sql = strdup(c->sql);
	} else {
		/* CREATE [UNIQUE] INDEX: the only tokens before the place CONCURRENTLY goes. */
		for (int i = 0; i < 3; i++, pos = end) {
			k = quote_next(c->sql, c->len, &pos, &end);
			if (k == QUOTE_TOK_WORD && quote_is_keyword(c->sql + pos, end - pos, "index"))
				break;
		}
		if (k != QUOTE_TOK_WORD || !quote_is_keyword(c->sql + pos, end - pos, "index"))
			return failed(c, "cannot find the INDEX keyword to add CONCURRENTLY after");
		if (!(sql = malloc(c->len + sizeof(" CONCURRENTLY"))))
			return out_of_memory(c);
		memcpy(sql, c->sql, end);
		memcpy(sql + end, " CONCURRENTLY", sizeof(" CONCURRENTLY") - 1);
		memcpy(sql + end + sizeof(" CONCURRENTLY") - 1, c->sql + end, c->len - end + 1);
		again = parse_one(sql, &doc, msg, sizeof(msg));
		if (!again || !flag(field(again, "IndexStmt"), "concurrent") ||
		    !same_tree(ix, field(again, "IndexStmt"), "concurrent")) {
			o = failed(c,
				   "adding CONCURRENTLY to this CREATE INDEX changes more than that; write "
				   "it as "
				   "CREATE INDEX CONCURRENTLY yourself");
			goto out;
		}
		if (!input_note(
			    c->p,
			    "CREATE INDEX is rewritten to CREATE INDEX CONCURRENTLY (it blocks no writes; "
			    "a build left invalid is dropped and run again)"))
			goto oom;
	}
	if (!push_step(c,
		       &(struct step_spec){ .kind = STEP_CREATE_INDEX,
					    .phase = PHASE_PREPARE,
					    .lock = LOCK_SHARE_UPDATE_EXCLUSIVE,
					    .hold = HOLD_NONE_NEEDED,
					    .table = &table,
					    .index = &index,
					    .constraint = -1,
					    .drop = -1 },
		       sql)) {
		sql = NULL;
		goto oom;
	}
	sql = NULL;
	goto out;
oom:
	o = out_of_memory(c);
out:
	free(sql);
	cJSON_Delete(doc);
	return o;
}

/* One statement, by the type of its node. */
static enum outcome plan_statement(struct ctx *c)
{
	const struct plan_input *in = &c->p->inputs[c->input];
	const cJSON *stmt, *node;
	char msg[256];
	cJSON *doc = NULL;
	enum outcome o;

	if (c->len > RULES_PARSE_MAX_BYTES)
		return unsupported(c, "a statement longer than %u KiB (not parsed)",
				   RULES_PARSE_MAX_BYTES >> 10);
	if (!(stmt = parse_one(c->sql, &doc, msg, sizeof(msg)))) {
		cJSON_Delete(doc);
		if (strcmp(msg, "nested too deeply to plan") == 0 ||
		    strcmp(msg, "not exactly one statement") == 0)
			return unsupported(c, "a statement %s", msg);
		return failed(c, "%s", msg);
	}
	if ((node = field(stmt, "AlterTableStmt"))) {
		o = plan_alter_table(c, node);
	} else if (field(stmt, "IndexStmt")) {
		o = plan_index(c, stmt);
	} else if (field(stmt, "ConstraintsSetStmt")) {
		/* Django's SET CONSTRAINTS … IMMEDIATE: only the migration's own transaction would see it. */
		o = input_note(c->p,
			       "%s:%d: SET CONSTRAINTS is dropped: it only affects the migration's own "
			       "transaction, which pgvalve replaces with its phases",
			       in->file, in->line)
			? RULE_DONE
			: out_of_memory(c);
	} else if (field(stmt, "TransactionStmt")) {
		o = failed(
			c,
			"transaction control inside a migration (ROLLBACK, SAVEPOINT, …) cannot run inside "
			"pgvalve's phases; only a BEGIN … COMMIT around the whole file is dropped");
	} else {
		o = unsupported(c, "%s", "this statement");
	}
	cJSON_Delete(doc);
	return o;
}

/*
 * --allow-unsafe: the statement as written, in the cutover transaction,
 * under a writes hold on the tables it names (the classifier's reading of
 * it: written tables first, then read ones; the step holds two).
 */
static enum outcome plan_unsafe(struct ctx *c)
{
	const struct plan_input *in = &c->p->inputs[c->input];
	struct classify_options copt = { .parse_max_bytes = RULES_PARSE_MAX_BYTES };
	struct classify_result *r = malloc(sizeof(*r));
	struct qname held[2] = { { .schema = "" }, { .schema = "" } };
	char text[EXCERPT_MAX + 4], names[2][2 * PLAN_NAME_MAX + 8] = { "", "" };
	int n_held = 0, n_named = 0;
	bool ok;

	if (!r)
		return out_of_memory(c);
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
	excerpt(c->sql, text);
	ok = push_step(c,
		       &(struct step_spec){ .kind = STEP_UNSAFE,
					    .phase = PHASE_CUTOVER,
					    .lock = LOCK_ACCESS_EXCLUSIVE,
					    .hold = HOLD_WRITES_NEEDED,
					    .table = &held[0],
					    .other = n_held > 1 ? &held[1] : NULL,
					    .constraint = -1,
					    .drop = -1 },
		       strdup(c->sql));
	if (ok && (r->flags & CLASSIFY_UNKNOWN))
		ok = input_note(
			c->p,
			"%s:%d: runs as written (--allow-unsafe) with lock_timeout, holding no table: "
			"which tables it locks is unknown (%s): %s",
			in->file, in->line, r->unknown_reason, text);
	else if (ok)
		ok = input_note(
			c->p,
			"%s:%d: runs as written (--allow-unsafe) with lock_timeout, under a writes hold "
			"on %s%s%s%s: %s",
			in->file, in->line, n_held ? names[0] : "no table", n_held > 1 ? " and " : "",
			names[1], n_named > 2 ? " (it names more tables: the others are not held)" : "",
			text);
	free(r);
	return ok ? RULE_DONE : out_of_memory(c);
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
	struct ctx c = { .p = p,
			 .opt = opt,
			 .err = err,
			 .cap_constraints = p->n_constraints,
			 .cap_drops = p->n_drops,
			 .cap_steps = p->n_steps };

	memset(err, 0, sizeof(*err));
	for (c.input = 0; c.input < p->n_inputs; c.input++) {
		const struct plan_input *in = &p->inputs[c.input];
		struct mark m = mark_of(p);
		char text[EXCERPT_MAX + 4];
		enum outcome o;

		c.sql = in->text;
		c.len = strlen(in->text);
		c.why[0] = '\0';
		o = plan_statement(&c);
		if (o == RULE_UNSUPPORTED) {
			rollback_to(p, &m);
			if (!opt->allow_unsafe) {
				excerpt(in->text, text);
				input_error_set(err, in->file, in->line,
						"no rule covers %s: %s\nsupported: %s; --allow-unsafe runs "
						"anything else as "
						"written",
						c.why, text, rules_supported_forms);
				return false;
			}
			o = plan_unsafe(&c);
		}
		if (o != RULE_DONE)
			return false;
	}
	/* Execution order: by phase, and within a phase in the order of the file. */
	qsort(p->steps, (size_t)p->n_steps, sizeof(*p->steps), by_phase);
	for (int i = 0; i < p->n_steps; i++)
		p->steps[i].seq = i + 1;
	return true;
}
