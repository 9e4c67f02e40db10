/*
 * Unit tests for coordinator/rules.c, against rules.h and
 * docs/architecture.md ("plan"): every rule's steps checked against the exact SQL, phase, lock and hold;
 * names PostgreSQL would choose (truncation at 63 bytes included); mixed-case
 * and hostile names that stay quoted and never break out of their statement;
 * CHECK expressions cut from text holding parentheses in strings, dollar
 * quotes and comments; NOT VALID + VALIDATE absorbed; replacements;
 * refusals with their line; --allow-unsafe; and a 19-foreign-key ORM
 * migration (data/orm_19_fks.sql) planned in full.
 *
 * Every plan also passes check_invariants(): steps in execution order, seq
 * 1..n, each step's SQL exactly one statement to PostgreSQL's parser, and
 * the lock and hold its kind calls for.
 */
#define _GNU_SOURCE /* asprintf */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <pg_query.h>

#include "input.h"
#include "rules.h"

static char dir[] = "/tmp/pgvalve-rules-XXXXXX";
static int n_plans; /* plans checked, reported at the end */

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct want_step {
	enum plan_phase phase;
	enum step_kind kind;
	const char *sql;
};

/* Every step, for a failure message. */
static void dump(const struct plan *p)
{
	for (int i = 0; i < p->n_steps; i++)
		fprintf(stderr, "  %d. %s %s: %s\n", p->steps[i].seq, plan_phase_name(p->steps[i].phase),
			plan_step_kind_name(p->steps[i].kind), p->steps[i].sql);
	for (int i = 0; i < p->n_notes; i++)
		fprintf(stderr, "  note: %s\n", p->notes[i]);
}

/* How many statements PostgreSQL's parser sees in 'sql' (-1: it does not parse). */
static int statements_in(const char *sql)
{
	PgQueryParseResult r = pg_query_parse(sql);
	cJSON *tree = r.error ? NULL : cJSON_Parse(r.parse_tree);
	int n = tree ? cJSON_GetArraySize(cJSON_GetObjectItem(tree, "stmts")) : -1;

	cJSON_Delete(tree);
	pg_query_free_parse_result(r);
	return n;
}

static void check_invariants(const struct plan *p)
{
	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *s = &p->steps[i];
		enum plan_lock lock = s->lock;
		enum plan_hold hold = s->hold;
		bool ok;

		if (s->seq != i + 1 || (i > 0 && s->phase < p->steps[i - 1].phase) ||
		    (i > 0 && s->phase == p->steps[i - 1].phase && s->input < p->steps[i - 1].input)) {
			dump(p);
			fail_msg("step %d out of order", i + 1);
		}
		/* A statement run as written after the file's SET search_path carries it before it. */
		if (statements_in(s->sql) != 1 &&
		    !(strncmp(s->sql, "SET ", 4) == 0 && statements_in(s->sql) == 2)) {
			dump(p);
			fail_msg("step %d is not exactly one statement: %s", s->seq, s->sql);
		}
		assert_true(s->input >= 0 && s->input < p->n_inputs);
		assert_true(s->constraint >= -1 && s->constraint < p->n_constraints);
		assert_true(s->drop >= -1 && s->drop < p->n_drops);
		switch (s->kind) {
		case STEP_CREATE_INDEX:
			ok = (s->phase == PHASE_PREPARE || s->phase == PHASE_VALIDATE) &&
				lock == LOCK_SHARE_UPDATE_EXCLUSIVE && hold == HOLD_NONE_NEEDED &&
				s->index.name[0];
			break;
		case STEP_ADD_NOT_VALID:
			ok = s->phase == PHASE_CUTOVER && strstr(s->sql, " NOT VALID") &&
				((lock == LOCK_SHARE_ROW_EXCLUSIVE && hold == HOLD_WRITES_NEEDED &&
				  s->other.name[0]) ||
				 (lock == LOCK_ACCESS_EXCLUSIVE && hold == HOLD_ALL_NEEDED &&
				  !s->other.name[0]));
			break;
		case STEP_ADD_USING_INDEX:
			ok = s->phase == PHASE_CUTOVER && lock == LOCK_ACCESS_EXCLUSIVE &&
				hold == HOLD_ALL_NEEDED && s->index.name[0];
			break;
		case STEP_DROP_CONSTRAINT:
			ok = s->phase == PHASE_CUTOVER && lock == LOCK_ACCESS_EXCLUSIVE &&
				hold == HOLD_ALL_NEEDED && s->drop >= 0;
			break;
		case STEP_VALIDATE:
			ok = s->phase == PHASE_VALIDATE && lock == LOCK_SHARE_UPDATE_EXCLUSIVE &&
				hold == HOLD_NONE_NEEDED;
			break;
		case STEP_SET_NOT_NULL:
		case STEP_DROP_HELPER_CHECK:
			ok = s->phase == PHASE_FINALIZE && lock == LOCK_ACCESS_EXCLUSIVE &&
				hold == HOLD_ALL_NEEDED && s->constraint >= 0;
			break;
		case STEP_UNSAFE:
			ok = s->phase == PHASE_CUTOVER && hold == HOLD_WRITES_NEEDED;
			break;
		case STEP_CREATE_OBJECT:
			ok = s->phase == PHASE_PREPARE && lock == LOCK_NONE && hold == HOLD_NONE_NEEDED;
			break;
		case STEP_ALTER:
			ok = s->phase == PHASE_CUTOVER && lock == LOCK_ACCESS_EXCLUSIVE &&
				hold == HOLD_ALL_NEEDED && s->table.name[0];
			break;
		case STEP_INSERT_ROWS:
			ok = s->phase == PHASE_CUTOVER && lock == LOCK_NONE && hold == HOLD_NONE_NEEDED &&
				s->table.name[0];
			break;
		default:
			ok = false;
		}
		if (!ok) {
			dump(p);
			fail_msg("step %d: phase, lock or hold do not fit its kind", s->seq);
		}
	}
	for (int i = 0; i < p->n_constraints; i++) {
		assert_non_null(p->constraints[i].fk_tail);
		assert_true(p->constraints[i].name[0]);
		assert_true(strlen(p->constraints[i].name) < PLAN_NAME_MAX);
	}
	n_plans++;
}

/* Writes 'sql' to a file, loads and plans it; the plan passes check_invariants() when planned. */
static bool plan_sql(const char *sql, bool unsafe, struct plan *p, struct input_error *err)
{
	char path[sizeof(dir) + 16];
	char *files[1] = { path };
	struct rules_options opt = { .allow_unsafe = unsafe };
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/m.sql", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(sql, f);
	fclose(f);
	memset(p, 0, sizeof(*p));
	if (!input_load(p, files, 1, err))
		fail_msg("input: %d: %s", err->line, err->msg);
	ok = rules_plan(p, &opt, err);
	if (ok)
		check_invariants(p);
	return ok;
}

static void plan_ok(const char *sql, struct plan *p)
{
	struct input_error err;

	if (!plan_sql(sql, false, p, &err))
		fail_msg("refused: %d: %s", err.line, err.msg);
}

/* Plans 'sql' (which must be accepted) and compares the steps, in order, with 'want'. */
static void check_steps(const struct plan *p, const struct want_step *want, int n)
{
	bool same = p->n_steps == n;

	for (int i = 0; same && i < n; i++)
		same = p->steps[i].phase == want[i].phase && p->steps[i].kind == want[i].kind &&
			strcmp(p->steps[i].sql, want[i].sql) == 0;
	if (!same) {
		fprintf(stderr, "got:\n");
		dump(p);
		fprintf(stderr, "want:\n");
		for (int i = 0; i < n; i++)
			fprintf(stderr, "     %s %s: %s\n", plan_phase_name(want[i].phase),
				plan_step_kind_name(want[i].kind), want[i].sql);
		fail();
	}
}

#define STEPS(p, ...)                                                 \
	do {                                                          \
		static const struct want_step w_[] = { __VA_ARGS__ }; \
		check_steps(p, w_, (int)N(w_));                       \
	} while (0)

static bool has_note(const struct plan *p, const char *part)
{
	for (int i = 0; i < p->n_notes; i++)
		if (strstr(p->notes[i], part))
			return true;
	return false;
}

/* The statement must be refused at 'line' with a message containing 'part'. */
static void refused(const char *sql, bool unsafe, int line, const char *part)
{
	struct plan p;
	struct input_error err;

	if (plan_sql(sql, unsafe, &p, &err)) {
		dump(&p);
		fail_msg("planned: %s", sql);
	}
	if (err.line != line || !strstr(err.msg, part))
		fail_msg("got line %d: %s\nwant line %d: ...%s...", err.line, err.msg, line, part);
	assert_non_null(strstr(err.file, "m.sql"));
	plan_free(&p);
}

static char *repeat(const char *unit, int n)
{
	size_t u = strlen(unit);
	char *s = malloc(u * (size_t)n + 1);

	assert_non_null(s);
	for (int i = 0; i < n; i++)
		memcpy(s + u * (size_t)i, unit, u);
	s[u * (size_t)n] = '\0';
	return s;
}

/* ---- FOREIGN KEY ---- */

static void test_foreign_key(void **state)
{
	struct plan p;
	const struct plan_constraint *k;

	(void)state;
	plan_ok("ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES "
		"customers (id);",
		&p);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"orders\" ADD CONSTRAINT \"orders_customer_fk\" FOREIGN KEY (\"customer_id\") "
		"REFERENCES \"customers\" (\"id\") NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"orders\" VALIDATE CONSTRAINT \"orders_customer_fk\"" });
	assert_int_equal(p.n_constraints, 1);
	k = &p.constraints[0];
	assert_int_equal(k->type, CON_FOREIGN_KEY);
	assert_string_equal(k->table.schema, "");
	assert_string_equal(k->table.name, "orders");
	assert_string_equal(k->name, "orders_customer_fk");
	assert_int_equal(k->n_columns, 1);
	assert_string_equal(k->columns[0], "customer_id");
	assert_string_equal(k->ref_table.name, "customers");
	assert_int_equal(k->n_ref_columns, 1);
	assert_string_equal(k->ref_columns[0], "id");
	assert_string_equal(k->fk_tail, "");
	assert_false(k->replaces);
	assert_int_equal(k->input, 0);
	assert_int_equal(p.steps[0].lock, LOCK_SHARE_ROW_EXCLUSIVE);
	assert_int_equal(p.steps[0].hold, HOLD_WRITES_NEEDED);
	assert_string_equal(p.steps[0].table.name, "orders");
	assert_string_equal(p.steps[0].other.name, "customers");
	assert_int_equal(p.steps[0].constraint, 0);
	assert_int_equal(p.steps[1].constraint, 0);
	assert_string_equal(p.steps[1].other.name, "customers");
	assert_true(has_note(&p, "without NOT VALID is rewritten"));
	plan_free(&p);
}

static void test_foreign_key_options(void **state)
{
	struct plan p;
	const struct plan_constraint *k;

	(void)state;
	plan_ok("alter table only sales.Order_Lines add foreign key (order_id, region) references "
		"sales.orders "
		"match full on delete set null (order_id) on update cascade deferrable initially deferred "
		"not valid",
		&p);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE ONLY \"sales\".\"order_lines\" ADD CONSTRAINT "
		"\"order_lines_order_id_region_fkey\" "
		"FOREIGN KEY (\"order_id\", \"region\") REFERENCES \"sales\".\"orders\" MATCH FULL ON UPDATE "
		"CASCADE "
		"ON DELETE SET NULL (\"order_id\") DEFERRABLE INITIALLY DEFERRED NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE ONLY \"sales\".\"order_lines\" VALIDATE CONSTRAINT "
		"\"order_lines_order_id_region_fkey\"" });
	k = &p.constraints[0];
	assert_string_equal(k->table.schema, "sales");
	assert_string_equal(k->ref_table.schema, "sales");
	assert_int_equal(k->n_ref_columns, 0); /* the referenced table's primary key */
	assert_string_equal(k->fk_tail,
			    "MATCH FULL ON UPDATE CASCADE ON DELETE SET NULL (\"order_id\") DEFERRABLE "
			    "INITIALLY DEFERRED");
	assert_true(has_note(&p, "NOT VALID is always validated"));
	plan_free(&p);

	/* The defaults written out (MATCH SIMPLE, NO ACTION, NOT DEFERRABLE) leave nothing in the tail. */
	plan_ok("ALTER TABLE t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES p (b) MATCH SIMPLE ON DELETE NO "
		"ACTION "
		"ON UPDATE NO ACTION NOT DEFERRABLE INITIALLY IMMEDIATE",
		&p);
	assert_string_equal(p.constraints[0].fk_tail, "");
	assert_string_equal(p.steps[0].sql,
			    "ALTER TABLE \"t\" ADD CONSTRAINT \"c\" FOREIGN KEY (\"a\") REFERENCES \"p\" "
			    "(\"b\") NOT VALID");
	plan_free(&p);

	plan_ok("ALTER TABLE t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES p ON DELETE RESTRICT ON UPDATE "
		"SET DEFAULT",
		&p);
	assert_string_equal(p.constraints[0].fk_tail, "ON UPDATE SET DEFAULT ON DELETE RESTRICT");
	plan_free(&p);
}

/* Names as PostgreSQL's ChooseConstraintName()/makeObjectName() would make them. */
static void test_default_names(void **state)
{
	char *table = repeat("a", 40), *c1 = repeat("b", 30), *c2 = repeat("c", 30), *sql, *want;
	char *utf8 = repeat("é", 30); /* 60 bytes */
	struct plan p;

	(void)state;
	/* 63 bytes: the longer part shortened first, the label never: 29 + 1 + 28 + 5. */
	assert_true(asprintf(&sql, "ALTER TABLE %s ADD FOREIGN KEY (%s, %s) REFERENCES p", table, c1, c2) >
		    0);
	plan_ok(sql, &p);
	free(sql);
	assert_true(asprintf(&want, "%.29s_%.28s_fkey", table, c1) > 0);
	assert_string_equal(p.constraints[0].name, want);
	assert_int_equal(strlen(want), 63);
	free(want);
	plan_free(&p);

	/* Cut at a character, not inside one: 55 bytes would split an é, so 54. */
	assert_true(asprintf(&sql, "ALTER TABLE \"%s\" ADD FOREIGN KEY (id) REFERENCES p", utf8) > 0);
	plan_ok(sql, &p);
	free(sql);
	assert_true(asprintf(&want, "%.54s_id_fkey", utf8) > 0);
	assert_string_equal(p.constraints[0].name, want);
	free(want);
	plan_free(&p);

	/* A name this plan already uses gets PostgreSQL's next label: fkey1, fkey2. */
	plan_ok("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES p;\n"
		"ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES q;\n"
		"ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES r;\n"
		"ALTER TABLE other.t ADD FOREIGN KEY (a) REFERENCES p;\n",
		&p);
	assert_string_equal(p.constraints[0].name, "t_a_fkey");
	assert_string_equal(p.constraints[1].name, "t_a_fkey1");
	assert_string_equal(p.constraints[2].name, "t_a_fkey2");
	assert_string_equal(p.constraints[3].name, "t_a_fkey"); /* another schema */
	plan_free(&p);

	/* An index's name blocks an index name (both are relations), not a constraint name. */
	plan_ok("CREATE INDEX users_email_key ON users (x);\n"
		"CREATE INDEX users_a_fkey ON users (a);\n"
		"ALTER TABLE users ADD UNIQUE (email), ADD FOREIGN KEY (a) REFERENCES p;\n",
		&p);
	assert_string_equal(p.constraints[0].name, "users_email_key1");
	assert_string_equal(p.constraints[1].name, "users_a_fkey");
	plan_free(&p);

	/* CHECK: <table>_<col>_check for exactly one column, else <table>_check. */
	plan_ok("ALTER TABLE acct ADD CHECK (balance >= 0);\n"
		"ALTER TABLE acct ADD CHECK (acct.balance < 100 AND balance <> 7);\n"
		"ALTER TABLE acct ADD CHECK (lo < hi);\n"
		"ALTER TABLE acct ADD CHECK (now() > '2000-01-01');\n"
		"ALTER TABLE acct ADD CHECK (balance >= 0);\n",
		&p);
	assert_string_equal(p.constraints[0].name, "acct_balance_check");
	assert_string_equal(p.constraints[1].name, "acct_balance_check1");
	assert_string_equal(p.constraints[2].name, "acct_check");
	assert_string_equal(p.constraints[3].name, "acct_check1");
	assert_string_equal(p.constraints[4].name, "acct_balance_check2");
	plan_free(&p);

	/* UNIQUE: <table>_<cols>_key; PRIMARY KEY: <table>_pkey; the NOT NULL helper: <table>_<col>_not_null. */
	assert_true(asprintf(&sql,
			     "ALTER TABLE users ADD UNIQUE (email, tenant_id), ADD PRIMARY KEY (id), "
			     "ALTER COLUMN %s SET NOT NULL",
			     c1) > 0);
	plan_ok(sql, &p);
	free(sql);
	assert_string_equal(p.constraints[0].name, "users_email_tenant_id_key");
	assert_string_equal(p.constraints[1].name, "users_pkey");
	assert_true(asprintf(&want, "users_%s_not_null", c1) > 0);
	assert_string_equal(p.constraints[2].name, want);
	free(want);
	plan_free(&p);
	free(table);
	free(c1);
	free(c2);
	free(utf8);
}

/* ---- names people and attackers write ---- */

static void test_mixed_case_and_hostile_names(void **state)
{
	struct plan p;
	PgQueryParseResult r;

	(void)state;
	plan_ok("ALTER TABLE \"Orders\" ADD FOREIGN KEY (\"CustomerId\") REFERENCES \"Customers\" (\"Id\")",
		&p);
	assert_string_equal(p.constraints[0].name, "Orders_CustomerId_fkey");
	assert_string_equal(p.steps[0].sql,
			    "ALTER TABLE \"Orders\" ADD CONSTRAINT \"Orders_CustomerId_fkey\" FOREIGN KEY "
			    "(\"CustomerId\") REFERENCES \"Customers\" (\"Id\") NOT VALID");
	plan_free(&p);

	plan_ok("ALTER TABLE \"My Schema\".\"Orders\" ADD CONSTRAINT \"x\"\"; DROP TABLE y; --\" "
		"FOREIGN KEY (\"Customer Id\") REFERENCES \"Cust\"\"omers\" (\"Id\");",
		&p);
	assert_string_equal(p.constraints[0].name, "x\"; DROP TABLE y; --");
	assert_string_equal(p.constraints[0].table.schema, "My Schema");
	assert_string_equal(p.constraints[0].ref_table.name, "Cust\"omers");
	assert_string_equal(
		p.steps[0].sql,
		"ALTER TABLE \"My Schema\".\"Orders\" ADD CONSTRAINT \"x\"\"; DROP TABLE y; --\" FOREIGN KEY "
		"(\"Customer Id\") REFERENCES \"Cust\"\"omers\" (\"Id\") NOT VALID");
	assert_string_equal(
		p.steps[1].sql,
		"ALTER TABLE \"My Schema\".\"Orders\" VALIDATE CONSTRAINT \"x\"\"; DROP TABLE y; --\"");
	/* PostgreSQL reads the generated name back exactly. */
	r = pg_query_parse(p.steps[1].sql);
	assert_null(r.error);
	assert_non_null(strstr(r.parse_tree, "\"name\":\"x\\\"; DROP TABLE y; --\""));
	pg_query_free_parse_result(r);
	plan_free(&p);

	/* Every rule with names full of quotes, semicolons, comment starts and unicode. */
	plan_ok("ALTER TABLE \"a'; --\" ALTER COLUMN \"c\"\"/*\" SET NOT NULL;\n"
		"ALTER TABLE \"a'; --\" ADD CONSTRAINT \"u;\" UNIQUE (\"k;\" , \"ü\");\n"
		"ALTER TABLE \"a'; --\" DROP CONSTRAINT \"d\"\"\";\n"
		"CREATE INDEX \"i; DROP\" ON \"a'; --\" (\"x\"\"\");\n"
		"ALTER TABLE \"a'; --\" ADD CONSTRAINT \"$$\" CHECK (\"c\"\"/*\" <> '*/');\n",
		&p);
	STEPS(&p,
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"CREATE UNIQUE INDEX CONCURRENTLY \"u;\" ON \"a'; --\" (\"k;\", \"ü\")" },
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"CREATE INDEX CONCURRENTLY \"i; DROP\" ON \"a'; --\" (\"x\"\"\")" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"a'; --\" ADD CONSTRAINT \"a'; --_c\"\"/*_not_null\" CHECK (\"c\"\"/*\" IS NOT "
		"NULL) NOT VALID" },
	      { PHASE_CUTOVER, STEP_ADD_USING_INDEX,
		"ALTER TABLE \"a'; --\" ADD CONSTRAINT \"u;\" UNIQUE USING INDEX \"u;\"" },
	      { PHASE_CUTOVER, STEP_DROP_CONSTRAINT, "ALTER TABLE \"a'; --\" DROP CONSTRAINT \"d\"\"\"" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"a'; --\" ADD CONSTRAINT \"$$\" CHECK (\"c\"\"/*\" <> '*/') NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"a'; --\" VALIDATE CONSTRAINT \"a'; --_c\"\"/*_not_null\"" },
	      { PHASE_VALIDATE, STEP_VALIDATE, "ALTER TABLE \"a'; --\" VALIDATE CONSTRAINT \"$$\"" },
	      { PHASE_FINALIZE, STEP_SET_NOT_NULL,
		"ALTER TABLE \"a'; --\" ALTER COLUMN \"c\"\"/*\" SET NOT NULL" },
	      { PHASE_FINALIZE, STEP_DROP_HELPER_CHECK,
		"ALTER TABLE \"a'; --\" DROP CONSTRAINT \"a'; --_c\"\"/*_not_null\"" });
	plan_free(&p);
}

/* ---- CHECK ---- */

static void test_check(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("ALTER TABLE accounts ADD CONSTRAINT balance_nonneg CHECK (balance >= 0);", &p);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"accounts\" ADD CONSTRAINT \"balance_nonneg\" CHECK (balance >= 0) NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"accounts\" VALIDATE CONSTRAINT \"balance_nonneg\"" });
	assert_int_equal(p.constraints[0].type, CON_CHECK);
	assert_string_equal(p.constraints[0].check_expr, "balance >= 0");
	assert_int_equal(p.steps[0].lock, LOCK_ACCESS_EXCLUSIVE);
	assert_int_equal(p.steps[0].hold, HOLD_ALL_NEEDED);
	assert_string_equal(p.steps[0].other.name, "");
	plan_free(&p);

	plan_ok("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NO INHERIT NOT VALID", &p);
	assert_string_equal(p.steps[0].sql,
			    "ALTER TABLE \"t\" ADD CONSTRAINT \"c\" CHECK (a > 0) NO INHERIT NOT VALID");
	plan_free(&p);
}

/* Expressions whose text holds parentheses and quotes where a naive scan would stop. */
static void test_check_expression_text(void **state)
{
	static const struct {
		const char *sql, *expr;
	} cases[] = {
		{ "ALTER TABLE t ADD CONSTRAINT c CHECK (note <> ')' AND note <> 'it''s (')",
		  "note <> ')' AND note <> 'it''s ('" },
		{ "ALTER TABLE t ADD CONSTRAINT c CHECK (code <> E'\\')(' AND code <> E'\\\\')",
		  "code <> E'\\')(' AND code <> E'\\\\'" },
		{ "ALTER TABLE t ADD CONSTRAINT c CHECK (\"we)ird\" > 0 AND \"a\"\"(\" < 1)",
		  "\"we)ird\" > 0 AND \"a\"\"(\" < 1" },
		{ "ALTER TABLE t ADD CONSTRAINT c CHECK (body <> $x$ ) $$ ' $x$ AND body <> $$)$$)",
		  "body <> $x$ ) $$ ' $x$ AND body <> $$)$$" },
		{ "ALTER TABLE t ADD CONSTRAINT c CHECK ( /* ) */ a > 0 -- )\n AND (b > 0) -- trailing )\n)",
		  "a > 0 -- )\n AND (b > 0)" },
		{ "ALTER TABLE t ADD CONSTRAINT \"check (\" CHECK ((a + (b * 2)) > length(')'))",
		  "(a + (b * 2)) > length(')')" },
		{ "ALTER TABLE t ADD CONSTRAINT c CHECK (s <> U&'d!0061t' UESCAPE '!' AND s <> U&'\\0028')",
		  "s <> U&'d!0061t' UESCAPE '!' AND s <> U&'\\0028'" },
		{ "alter table t add constraint c\n  check\n  (\n  status in ('new', 'paid', 'void')\n  )",
		  "status in ('new', 'paid', 'void')" },
		{ "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0), ADD CONSTRAINT d CHECK (b ~ '^[)(]+$')",
		  "a > 0" },
	};

	(void)state;
	for (size_t i = 0; i < N(cases); i++) {
		struct plan p;
		char *want;

		plan_ok(cases[i].sql, &p);
		if (strcmp(p.constraints[0].check_expr, cases[i].expr) != 0)
			fail_msg("%s\n got <%s>\nwant <%s>", cases[i].sql, p.constraints[0].check_expr,
				 cases[i].expr);
		assert_true(asprintf(&want, "CHECK (%s) NOT VALID", cases[i].expr) > 0);
		assert_non_null(strstr(p.steps[0].sql, want));
		free(want);
		plan_free(&p);
	}
}

/* ---- SET NOT NULL ---- */

static void test_not_null(void **state)
{
	struct plan p;
	const struct plan_constraint *k;

	(void)state;
	plan_ok("ALTER TABLE public.users ALTER COLUMN email SET NOT NULL;", &p);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"public\".\"users\" ADD CONSTRAINT \"users_email_not_null\" CHECK (\"email\" "
		"IS NOT NULL) "
		"NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"public\".\"users\" VALIDATE CONSTRAINT \"users_email_not_null\"" },
	      { PHASE_FINALIZE, STEP_SET_NOT_NULL,
		"ALTER TABLE \"public\".\"users\" ALTER COLUMN \"email\" SET NOT NULL" },
	      { PHASE_FINALIZE, STEP_DROP_HELPER_CHECK,
		"ALTER TABLE \"public\".\"users\" DROP CONSTRAINT \"users_email_not_null\"" });
	k = &p.constraints[0];
	assert_int_equal(k->type, CON_NOT_NULL);
	assert_int_equal(k->n_columns, 1);
	assert_string_equal(k->columns[0], "email");
	assert_string_equal(k->check_expr, "\"email\" IS NOT NULL");
	for (int i = 0; i < 4; i++)
		assert_int_equal(p.steps[i].constraint, 0);
	assert_true(has_note(&p, "SET NOT NULL is rewritten"));
	assert_false(has_note(&p, "NOT VALID is always validated"));
	plan_free(&p);

	plan_ok("ALTER TABLE \"Users\" ALTER \"EMail\" SET NOT NULL", &p);
	assert_string_equal(p.steps[0].sql,
			    "ALTER TABLE \"Users\" ADD CONSTRAINT \"Users_EMail_not_null\" CHECK "
			    "(\"EMail\" IS NOT NULL) NOT VALID");
	plan_free(&p);
}

/* ---- UNIQUE / PRIMARY KEY ---- */

static void test_unique_and_primary_key(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);", &p);
	STEPS(&p,
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"CREATE UNIQUE INDEX CONCURRENTLY \"users_email_key\" ON \"users\" (\"email\")" },
	      { PHASE_CUTOVER, STEP_ADD_USING_INDEX,
		"ALTER TABLE \"users\" ADD CONSTRAINT \"users_email_key\" UNIQUE USING INDEX "
		"\"users_email_key\"" });
	assert_int_equal(p.constraints[0].type, CON_UNIQUE);
	assert_string_equal(p.steps[0].index.name, "users_email_key");
	assert_string_equal(p.steps[1].index.name, "users_email_key");
	assert_int_equal(p.steps[0].constraint, 0);
	plan_free(&p);

	plan_ok("ALTER TABLE app.accounts ADD PRIMARY KEY (id);", &p);
	STEPS(&p,
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"CREATE UNIQUE INDEX CONCURRENTLY \"accounts_pkey\" ON \"app\".\"accounts\" (\"id\")" },
	      { PHASE_CUTOVER, STEP_ADD_USING_INDEX,
		"ALTER TABLE \"app\".\"accounts\" ADD CONSTRAINT \"accounts_pkey\" PRIMARY KEY USING INDEX "
		"\"accounts_pkey\"" });
	assert_int_equal(p.constraints[0].type, CON_PRIMARY_KEY);
	assert_string_equal(p.steps[0].index.schema, "app");
	assert_true(has_note(&p, "PRIMARY KEY … USING INDEX also sets NOT NULL"));
	plan_free(&p);

	plan_ok("ALTER TABLE t ADD CONSTRAINT u UNIQUE NULLS NOT DISTINCT (a, b) INCLUDE (c) "
		"USING INDEX TABLESPACE fast DEFERRABLE INITIALLY DEFERRED",
		&p);
	STEPS(&p,
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"CREATE UNIQUE INDEX CONCURRENTLY \"u\" ON \"t\" (\"a\", \"b\") INCLUDE (\"c\") NULLS NOT "
		"DISTINCT "
		"TABLESPACE \"fast\"" },
	      { PHASE_CUTOVER, STEP_ADD_USING_INDEX,
		"ALTER TABLE \"t\" ADD CONSTRAINT \"u\" UNIQUE USING INDEX \"u\" DEFERRABLE INITIALLY "
		"DEFERRED" });
	plan_free(&p);

	/* USING INDEX as written: the index exists; only the attach is planned. */
	plan_ok("CREATE UNIQUE INDEX CONCURRENTLY users_email_idx ON users (email);\n"
		"ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;\n"
		"ALTER TABLE users ADD PRIMARY KEY USING INDEX users_id_idx;\n",
		&p);
	STEPS(&p,
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"CREATE UNIQUE INDEX CONCURRENTLY users_email_idx ON users (email)" },
	      { PHASE_CUTOVER, STEP_ADD_USING_INDEX,
		"ALTER TABLE \"users\" ADD CONSTRAINT \"users_email_key\" UNIQUE USING INDEX "
		"\"users_email_idx\"" },
	      { PHASE_CUTOVER, STEP_ADD_USING_INDEX,
		"ALTER TABLE \"users\" ADD CONSTRAINT \"users_id_idx\" PRIMARY KEY USING INDEX "
		"\"users_id_idx\"" });
	plan_free(&p);

	refused("ALTER TABLE t ADD CONSTRAINT u UNIQUE (a) WITH (fillfactor = 70)", false, 1,
		"index storage parameters (WITH …)");
}

/* ---- CREATE INDEX ---- */

static void test_create_index(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("CREATE INDEX idx_orders_customer ON orders (customer_id);\n"
		"create /* why not */ unique\n  index if not exists \"Idx\" on \"Sales\".\"Orders\" using "
		"btree "
		"(lower(\"Email\") DESC NULLS LAST) include (id) where deleted_at is null;\n"
		"CREATE INDEX CONCURRENTLY already ON t (a);\n",
		&p);
	STEPS(&p,
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"CREATE INDEX CONCURRENTLY idx_orders_customer ON orders (customer_id)" },
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"create /* why not */ unique\n  index CONCURRENTLY if not exists \"Idx\" on "
		"\"Sales\".\"Orders\" using "
		"btree (lower(\"Email\") DESC NULLS LAST) include (id) where deleted_at is null" },
	      { PHASE_PREPARE, STEP_CREATE_INDEX, "CREATE INDEX CONCURRENTLY already ON t (a)" });
	assert_string_equal(p.steps[0].index.name, "idx_orders_customer");
	assert_string_equal(p.steps[0].table.name, "orders");
	assert_string_equal(p.steps[1].index.schema, "Sales");
	assert_string_equal(p.steps[1].index.name, "Idx");
	assert_string_equal(p.steps[1].table.name, "Orders");
	assert_int_equal(p.steps[0].constraint, -1);
	assert_int_equal(p.n_constraints, 0);
	assert_true(has_note(&p, "rewritten to CREATE INDEX CONCURRENTLY"));
	plan_free(&p);

	refused("\n\nCREATE INDEX ON orders (customer_id);", false, 3,
		"CREATE INDEX without a name: name it");
	refused("CREATE INDEX ON orders (customer_id);", true, 1, "CREATE INDEX without a name");
	refused("CREATE INDEX i ON ONLY parted (a);", false, 1, "ON ONLY");
}

/* ---- DROP CONSTRAINT, replacements, VALIDATE ---- */

static void test_drop_constraint(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_customer_fk CASCADE;\n"
		"ALTER TABLE ONLY s.t DROP CONSTRAINT \"Old\" RESTRICT;\n",
		&p);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_DROP_CONSTRAINT,
		"ALTER TABLE \"orders\" DROP CONSTRAINT IF EXISTS \"orders_customer_fk\" CASCADE" },
	      { PHASE_CUTOVER, STEP_DROP_CONSTRAINT,
		"ALTER TABLE ONLY \"s\".\"t\" DROP CONSTRAINT \"Old\"" });
	assert_int_equal(p.n_drops, 2);
	assert_string_equal(p.drops[0].name, "orders_customer_fk");
	assert_true(p.drops[0].if_exists);
	assert_false(p.drops[1].if_exists);
	assert_string_equal(p.drops[1].table.schema, "s");
	assert_int_equal(p.drops[1].input, 1);
	assert_int_equal(p.steps[1].drop, 1);
	assert_int_equal(p.steps[1].constraint, -1);
	assert_string_equal(p.steps[0].other.name, ""); /* the database says which table an FK references */
	assert_true(has_note(&p, "m.sql:1: DROP CONSTRAINT … CASCADE"));
	plan_free(&p);
}

static void test_replacement(void **state)
{
	struct plan p;

	(void)state;
	/* ON DELETE CASCADE becomes RESTRICT: the drop and the add share one cutover. */
	plan_ok("ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey;\n"
		"ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) "
		"REFERENCES customers (id) ON DELETE RESTRICT;\n"
		"ALTER TABLE other DROP CONSTRAINT c;\n"
		"ALTER TABLE orders ADD CONSTRAINT c CHECK (a > 0);\n",
		&p);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_DROP_CONSTRAINT,
		"ALTER TABLE \"orders\" DROP CONSTRAINT \"orders_customer_id_fkey\"" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"orders\" ADD CONSTRAINT \"orders_customer_id_fkey\" FOREIGN KEY "
		"(\"customer_id\") "
		"REFERENCES \"customers\" (\"id\") ON DELETE RESTRICT NOT VALID" },
	      { PHASE_CUTOVER, STEP_DROP_CONSTRAINT, "ALTER TABLE \"other\" DROP CONSTRAINT \"c\"" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"orders\" ADD CONSTRAINT \"c\" CHECK (a > 0) NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"orders\" VALIDATE CONSTRAINT \"orders_customer_id_fkey\"" },
	      { PHASE_VALIDATE, STEP_VALIDATE, "ALTER TABLE \"orders\" VALIDATE CONSTRAINT \"c\"" });
	assert_true(p.constraints[0].replaces);
	assert_false(p.constraints[1].replaces); /* the drop was on another table */
	assert_true(has_note(&p, "orders is replaced"));
	plan_free(&p);

	/* An unnamed FK that PostgreSQL would name like the dropped one replaces it too. */
	plan_ok("ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey, "
		"ADD FOREIGN KEY (customer_id) REFERENCES customers ON DELETE RESTRICT",
		&p);
	assert_string_equal(p.constraints[0].name, "orders_customer_id_fkey");
	assert_true(p.constraints[0].replaces);
	plan_free(&p);

	/* A unique constraint replaced: the new index is built under another name until the cutover. */
	plan_ok("ALTER TABLE users DROP CONSTRAINT users_email_key;\n"
		"ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email, tenant_id);\n",
		&p);
	STEPS(&p,
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"CREATE UNIQUE INDEX CONCURRENTLY \"users_email_key_new\" ON \"users\" (\"email\", "
		"\"tenant_id\")" },
	      { PHASE_CUTOVER, STEP_DROP_CONSTRAINT,
		"ALTER TABLE \"users\" DROP CONSTRAINT \"users_email_key\"" },
	      { PHASE_CUTOVER, STEP_ADD_USING_INDEX,
		"ALTER TABLE \"users\" ADD CONSTRAINT \"users_email_key\" UNIQUE USING INDEX "
		"\"users_email_key_new\"" });
	assert_true(p.constraints[0].replaces);
	plan_free(&p);
}

static void test_validate(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("ALTER TABLE line_items ADD CONSTRAINT fk_rails_1 FOREIGN KEY (cart_id) REFERENCES carts "
		"(id) NOT VALID;\n"
		"ALTER TABLE line_items VALIDATE CONSTRAINT fk_rails_1;\n"
		"ALTER TABLE line_items VALIDATE CONSTRAINT fk_from_last_week;\n",
		&p);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"line_items\" ADD CONSTRAINT \"fk_rails_1\" FOREIGN KEY (\"cart_id\") "
		"REFERENCES "
		"\"carts\" (\"id\") NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"line_items\" VALIDATE CONSTRAINT \"fk_rails_1\"" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"line_items\" VALIDATE CONSTRAINT \"fk_from_last_week\"" });
	assert_true(
		has_note(&p, "NOT VALID + VALIDATE in one migration: shown rewritten as separate phases"));
	assert_int_equal(p.steps[1].input, 0); /* the absorbed VALIDATE adds no step of its own */
	assert_int_equal(p.steps[2].input, 2);
	assert_int_equal(p.steps[2].constraint, -1);
	plan_free(&p);
}

static void test_subcommands_split(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("ALTER TABLE t ADD CONSTRAINT a CHECK (x > 0), ADD CONSTRAINT b FOREIGN KEY (y) REFERENCES p "
		"(id), "
		"ALTER COLUMN z SET NOT NULL, VALIDATE CONSTRAINT a",
		&p);
	assert_int_equal(p.n_constraints, 3);
	assert_string_equal(p.constraints[0].name, "a");
	assert_int_equal(p.constraints[1].type, CON_FOREIGN_KEY);
	assert_string_equal(p.constraints[2].name, "t_z_not_null");
	for (int i = 0; i < 3; i++)
		assert_int_equal(p.constraints[i].input, 0);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"t\" ADD CONSTRAINT \"a\" CHECK (x > 0) NOT VALID" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"t\" ADD CONSTRAINT \"b\" FOREIGN KEY (\"y\") REFERENCES \"p\" (\"id\") NOT "
		"VALID" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"t\" ADD CONSTRAINT \"t_z_not_null\" CHECK (\"z\" IS NOT NULL) NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE, "ALTER TABLE \"t\" VALIDATE CONSTRAINT \"a\"" },
	      { PHASE_VALIDATE, STEP_VALIDATE, "ALTER TABLE \"t\" VALIDATE CONSTRAINT \"b\"" },
	      { PHASE_VALIDATE, STEP_VALIDATE, "ALTER TABLE \"t\" VALIDATE CONSTRAINT \"t_z_not_null\"" },
	      { PHASE_FINALIZE, STEP_SET_NOT_NULL, "ALTER TABLE \"t\" ALTER COLUMN \"z\" SET NOT NULL" },
	      { PHASE_FINALIZE, STEP_DROP_HELPER_CHECK,
		"ALTER TABLE \"t\" DROP CONSTRAINT \"t_z_not_null\"" });
	plan_free(&p);
}

/* ---- refusals and --allow-unsafe ---- */

static const char multi_line_file[] = "-- 0007_misc\n"                                         /* 1 */
				      "ALTER TABLE a ADD CONSTRAINT a_fk FOREIGN KEY (b_id)\n" /* 2 */
				      "  REFERENCES b (id);\n"                                 /* 3 */
				      "\n"                                                     /* 4 */
				      "/* the table nobody uses\n"                             /* 5 */
				      "   any more */\n"                                       /* 6 */
				      "DROP TABLE\n"                                           /* 7 */
				      "  legacy_events;\n"                                     /* 8 */
				      "CREATE INDEX a_b_idx ON a (b_id);\n";                   /* 9 */

static void test_refused(void **state)
{
	struct plan p;
	struct input_error err;
	char *big;

	(void)state;
	refused(multi_line_file, false, 7, "refused: DROP TABLE legacy_events deletes its rows for good");
	assert_false(plan_sql(multi_line_file, false, &p, &err));
	assert_non_null(strstr(err.msg, "safe recipe: deploy code that no longer reads or writes the table"));
	assert_non_null(strstr(err.msg, "--allow-unsafe"));
	plan_free(&p);
	assert_false(plan_sql("GRANT SELECT ON t TO u", false, &p, &err));
	assert_non_null(strstr(err.msg, "supported: ALTER TABLE t ADD [CONSTRAINT c] FOREIGN KEY"));
	plan_free(&p);

	refused("ALTER TABLE t VALIDATE CONSTRAINT c;\nALTER TABLE t ADD COLUMN c int DEFAULT random();",
		false, 2, "refused: ADD COLUMN c with a default calling random()");
	refused("ALTER TABLE t ALTER COLUMN c TYPE numeric", false, 1, "refused: ALTER COLUMN c TYPE");
	/* TYPE bigint with anything else in the statement is not the key type change */
	refused("ALTER TABLE t ALTER COLUMN c TYPE bigint, ALTER COLUMN d TYPE bigint", false, 1,
		"refused: ALTER COLUMN");
	refused("ALTER TABLE t ALTER COLUMN c TYPE bigint USING c + 1", false, 1,
		"refused: ALTER COLUMN c TYPE");
	refused("ALTER TABLE t ADD CONSTRAINT x EXCLUDE USING gist (r WITH &&)", false, 1,
		"ADD CONSTRAINT of type EXCLUSION");
	refused("GRANT SELECT ON t TO u", false, 1, "no rule covers this statement");
	refused("ALTER TABLE db.s.t ADD CHECK (a > 0)", false, 1, "three-part");
	refused("UPDATE users SET email = lower(email) WHERE id IN (SELECT id FROM users WHERE email <> "
		"lower(email) "
		"AND created_at < now() - interval '1 day' ORDER BY id LIMIT 100000)",
		false, 1,
		": UPDATE users SET email = lower(email) WHERE id IN (SELECT id FROM users WHERE email <> "
		"lower(email) AND "
		"created_at < now…\n"); /* the first 120 characters */
	/* Transaction control other than the wrapping cannot run inside pgvalve's phases, unsafe or not. */
	refused("ALTER TABLE t VALIDATE CONSTRAINT c;\nROLLBACK;", true, 2,
		"transaction control inside a migration");
	refused("SAVEPOINT s", true, 1, "transaction control");

	big = malloc(RULES_PARSE_MAX_BYTES + 100);
	assert_non_null(big);
	strcpy(big, "ALTER TABLE t ADD CHECK (s <> '");
	memset(big + strlen(big), 'x', RULES_PARSE_MAX_BYTES);
	strcpy(big + strlen("ALTER TABLE t ADD CHECK (s <> '") + RULES_PARSE_MAX_BYTES, "')");
	refused(big, false, 1, "longer than 64 KiB");
	free(big);
}

/* The rules the ORM corpus (tests/corpus/orm) needed. */
static void test_corpus_rules(void **state)
{
	struct plan p;

	(void)state;
	/* A table renamed earlier in the file, by either name; a renamed column is fine. */
	refused("ALTER TABLE workflows RENAME TO pipelines;\nCREATE INDEX i ON pipelines (a);", false, 2,
		"refused: it names pipelines, which line 1 renames workflows to");
	refused("ALTER TABLE s.w RENAME TO p;\nALTER TABLE s.w ADD COLUMN x int;", false, 2,
		"refused: it names s.w, which line 1 renames to s.p");
	plan_ok("ALTER TABLE t RENAME COLUMN a TO b;\nCREATE INDEX i ON t (b);", &p);
	assert_int_equal(p.steps[1].phase, PHASE_VALIDATE); /* built after the rename */
	plan_free(&p);
	/* DROP TABLE, DROP INDEX without CONCURRENTLY, DML. */
	refused("DROP TABLE IF EXISTS a, b CASCADE", false, 1, "refused: DROP TABLE a, b deletes its rows");
	refused("DROP INDEX i", false, 1, "refused: DROP INDEX i takes ACCESS EXCLUSIVE");
	refused("DELETE FROM t WHERE a = 1", false, 1, "refused: DELETE changes rows");
	refused("INSERT INTO t SELECT * FROM u", false, 1, "refused: INSERT … SELECT");
	/* An ORM's version row: constants, in the cutover transaction. */
	plan_ok("INSERT INTO schema_migrations (version) VALUES ('1'), ('2'::text) RETURNING version", &p);
	assert_int_equal(p.steps[0].kind, STEP_INSERT_ROWS);
	assert_int_equal(p.steps[0].phase, PHASE_CUTOVER);
	assert_int_equal(p.steps[0].hold, HOLD_NONE_NEEDED);
	assert_true(has_note(&p, "INSERT of 2 constant row(s) into schema_migrations"));
	plan_free(&p);
	/* A function the file creates decides about a default that calls it. */
	refused("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
		"ALTER TABLE t ADD COLUMN c int DEFAULT f();",
		false, 2, "refused: ADD COLUMN c with a default calling f(), which is volatile");
	plan_ok("CREATE FUNCTION f() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';\n"
		"ALTER TABLE t ADD COLUMN c int DEFAULT f();",
		&p);
	assert_string_equal(p.steps[1].check_functions, ""); /* not left to the catalog, which lacks it */
	plan_free(&p);
	/* CREATE TRIGGER: at cutover on an existing table, before it on a new one. */
	plan_ok("CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();", &p);
	assert_int_equal(p.steps[0].phase, PHASE_CUTOVER);
	assert_int_equal(p.steps[0].hold, HOLD_ALL_NEEDED);
	plan_free(&p);
	/* pg_dump's search_path lines. */
	plan_ok("SELECT pg_catalog.set_config('search_path', '', false);\nSET search_path TO \"$user\", "
		"app;\n"
		"ALTER TABLE t ADD COLUMN c int;",
		&p);
	assert_string_equal(p.steps[0].table.schema, "app");
	plan_free(&p);
}

static void test_allow_unsafe(void **state)
{
	struct plan p;
	struct input_error err;

	(void)state;
	assert_true(plan_sql(multi_line_file, true, &p, &err));
	STEPS(&p, { PHASE_PREPARE, STEP_CREATE_INDEX, "CREATE INDEX CONCURRENTLY a_b_idx ON a (b_id)" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"a\" ADD CONSTRAINT \"a_fk\" FOREIGN KEY (\"b_id\") REFERENCES \"b\" (\"id\") "
		"NOT VALID" },
	      { PHASE_CUTOVER, STEP_UNSAFE, "DROP TABLE\n  legacy_events" },
	      { PHASE_VALIDATE, STEP_VALIDATE, "ALTER TABLE \"a\" VALIDATE CONSTRAINT \"a_fk\"" });
	assert_string_equal(p.steps[2].table.name, "legacy_events");
	assert_string_equal(p.steps[2].other.name, "");
	assert_int_equal(p.steps[2].hold, HOLD_WRITES_NEEDED);
	assert_int_equal(p.steps[2].constraint, -1);
	assert_int_equal(p.steps[2].input, 1);
	assert_true(has_note(
		&p,
		"m.sql:7: runs as written (--allow-unsafe) with lock_timeout, under a writes hold on "
		"legacy_events: DROP TABLE legacy_events"));
	plan_free(&p);

	/* Written tables first, then read ones; a third is named in the note, not held. */
	assert_true(
		plan_sql("UPDATE s.a SET x = (SELECT y FROM b JOIN c USING (id) LIMIT 1)", true, &p, &err));
	assert_string_equal(p.steps[0].table.schema, "s");
	assert_string_equal(p.steps[0].table.name, "a");
	assert_string_equal(p.steps[0].other.name, "b");
	assert_true(has_note(
		&p, "under a writes hold on s.a and b (it names more tables: the others are not held)"));
	plan_free(&p);

	/* A mixed ALTER TABLE runs whole as written: nothing of its covered part is planned twice. */
	assert_true(plan_sql("ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0), ADD COLUMN y int;\n"
			     "ALTER TABLE t ADD CONSTRAINT c2 CHECK (x > 1);",
			     true, &p, &err));
	assert_int_equal(p.n_constraints, 1);
	assert_string_equal(p.constraints[0].name, "c2");
	assert_int_equal(p.constraints[0].input, 1);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_UNSAFE,
		"ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0), ADD COLUMN y int" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"t\" ADD CONSTRAINT \"c2\" CHECK (x > 1) NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE, "ALTER TABLE \"t\" VALIDATE CONSTRAINT \"c2\"" });
	plan_free(&p);

	/* Unknown tables (REINDEX names none it locks): held on none, said so. */
	assert_true(plan_sql("REINDEX SCHEMA app", true, &p, &err));
	assert_string_equal(p.steps[0].table.name, "");
	assert_true(has_note(&p, "holding no table: which tables it locks is unknown"));
	plan_free(&p);

	/* An index on a table an earlier unsafe statement names: the order the phases impose is said. */
	assert_true(plan_sql("ALTER TABLE t ALTER COLUMN c SET STATISTICS 100;\nCREATE INDEX t_c ON t (c);",
			     true, &p, &err));
	assert_int_equal(p.steps[0].kind, STEP_CREATE_INDEX);
	assert_true(has_note(
		&p, "m.sql:2: builds its index on t in the prepare phase, before the statement on line 1"));
	plan_free(&p);
}

static void test_set_constraints_dropped(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("ALTER TABLE r ADD CONSTRAINT r_fk FOREIGN KEY (p_id) REFERENCES p (id) DEFERRABLE INITIALLY "
		"DEFERRED;\n"
		"SET CONSTRAINTS \"r_fk\" IMMEDIATE;\n",
		&p);
	assert_int_equal(p.n_steps, 2);
	assert_true(has_note(&p, "m.sql:2: SET CONSTRAINTS is dropped"));
	plan_free(&p);
}

/* ---- new objects, brief ALTER TABLE forms, SET lines (rules_table.c) ---- */

static const char django_file[] =
	"BEGIN;\n"
	"--\n"
	"-- Add field customer to order\n"
	"--\n"
	"ALTER TABLE \"shop_order\" ADD COLUMN \"customer_id\" bigint NULL CONSTRAINT "
	"\"shop_order_customer_id_1a2b_fk_shop_customer_id\" REFERENCES \"shop_customer\"(\"id\") "
	"DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS \"shop_order_customer_id_1a2b_fk_shop_customer_id\" "
	"IMMEDIATE;\n"
	"ALTER TABLE \"shop_order\" ADD COLUMN \"note\" varchar(200) NULL;\n"
	"CREATE INDEX \"shop_order_customer_id_1a2b\" ON \"shop_order\" (\"customer_id\");\n"
	"COMMIT;\n";

static void test_django_add_foreign_key_column(void **state)
{
	struct plan p;

	(void)state;
	plan_ok(django_file, &p);
	STEPS(&p,
	      { PHASE_CUTOVER, STEP_ALTER,
		"ALTER TABLE \"shop_order\" ADD COLUMN \"customer_id\" bigint NULL" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"shop_order\" ADD CONSTRAINT "
		"\"shop_order_customer_id_1a2b_fk_shop_customer_id\" "
		"FOREIGN KEY (\"customer_id\") REFERENCES \"shop_customer\" (\"id\") DEFERRABLE INITIALLY "
		"DEFERRED NOT VALID" },
	      { PHASE_CUTOVER, STEP_ALTER,
		"ALTER TABLE \"shop_order\" ADD COLUMN \"note\" varchar(200) NULL" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"shop_order\" VALIDATE CONSTRAINT "
		"\"shop_order_customer_id_1a2b_fk_shop_customer_id\"" },
	      { PHASE_VALIDATE, STEP_CREATE_INDEX,
		"CREATE INDEX CONCURRENTLY \"shop_order_customer_id_1a2b\" ON \"shop_order\" "
		"(\"customer_id\")" });
	assert_int_equal(p.steps[0].hold, HOLD_ALL_NEEDED);
	assert_int_equal(p.steps[1].hold, HOLD_WRITES_NEEDED);
	assert_string_equal(p.steps[1].other.name, "shop_customer");
	assert_false(p.steps[0].needs_empty);
	assert_true(has_note(&p, "m.sql:5: SET CONSTRAINTS is dropped"));
	assert_true(has_note(&p, "m.sql:7: builds its index CONCURRENTLY after the cutover"));
	plan_free(&p);
}

static void test_create_table(void **state)
{
	struct plan p;

	(void)state;
	/* Keys to existing tables are cut out and added NOT VALID; a key to itself or to a table created
	   earlier in the file stays inline; an index on the new table is built before the cutover. */
	plan_ok("CREATE TABLE tags (id bigserial PRIMARY KEY, parent_id bigint REFERENCES tags (id));\n"
		"CREATE TABLE \"Review\" (\n"
		"  \"id\" SERIAL NOT NULL,\n"
		"  \"productId\" INTEGER NOT NULL REFERENCES \"Product\"(\"id\") ON DELETE CASCADE,\n"
		"  \"tagId\" bigint REFERENCES tags,\n"
		"  CONSTRAINT \"Review_pkey\" PRIMARY KEY (\"id\"),\n"
		"  CONSTRAINT \"Review_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\"(\"id\") ON "
		"DELETE RESTRICT ON UPDATE CASCADE\n"
		");\n"
		"CREATE INDEX \"Review_productId_idx\" ON \"Review\"(\"productId\");\n",
		&p);
	STEPS(&p,
	      { PHASE_PREPARE, STEP_CREATE_OBJECT,
		"CREATE TABLE tags (id bigserial PRIMARY KEY, parent_id bigint REFERENCES tags (id))" },
	      { PHASE_PREPARE, STEP_CREATE_OBJECT,
		"CREATE TABLE \"Review\" (\n  \"id\" SERIAL NOT NULL,\n  \"productId\" INTEGER NOT NULL ,\n"
		"  \"tagId\" bigint REFERENCES tags,\n  CONSTRAINT \"Review_pkey\" PRIMARY KEY (\"id\")\n)" },
	      { PHASE_PREPARE, STEP_CREATE_INDEX,
		"CREATE INDEX CONCURRENTLY \"Review_productId_idx\" ON \"Review\"(\"productId\")" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"Review\" ADD CONSTRAINT \"Review_productId_fkey\" FOREIGN KEY (\"productId\") "
		"REFERENCES \"Product\" (\"id\") ON DELETE CASCADE NOT VALID" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"Review\" ADD CONSTRAINT \"Review_userId_fkey\" FOREIGN KEY (\"userId\") "
		"REFERENCES \"User\" (\"id\") ON UPDATE CASCADE ON DELETE RESTRICT NOT VALID" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"Review\" VALIDATE CONSTRAINT \"Review_productId_fkey\"" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"Review\" VALIDATE CONSTRAINT \"Review_userId_fkey\"" });
	assert_int_equal(p.n_created, 2);
	assert_string_equal(p.created[1].name, "Review");
	assert_true(
		has_note(&p, "m.sql:2: the new table's foreign keys to existing tables are added NOT VALID"));
	plan_free(&p);

	/* The last element cut takes the comma before it. */
	plan_ok("CREATE TABLE c (id int, p_id int, FOREIGN KEY (p_id) REFERENCES p)", &p);
	assert_string_equal(p.steps[0].sql, "CREATE TABLE c (id int, p_id int)");
	assert_string_equal(p.constraints[0].name, "c_p_id_fkey");
	plan_free(&p);

	refused("CREATE TABLE c PARTITION OF p FOR VALUES IN (1)", false, 1, "PARTITION OF");
}

static void test_new_objects(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("CREATE SEQUENCE s;\nCREATE TYPE mood AS ENUM ('a', 'b');\nCREATE VIEW v AS SELECT 1;\n"
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n"
		"COMMENT ON TABLE t IS 'x; y';\nCREATE TYPE pair AS (a int, b int);\n"
		"CREATE DOMAIN pos AS int CHECK (VALUE > 0);\n",
		&p);
	assert_int_equal(p.n_steps, 7);
	for (int i = 0; i < p.n_steps; i++) {
		assert_int_equal(p.steps[i].kind, STEP_CREATE_OBJECT);
		assert_int_equal(p.steps[i].hold, HOLD_NONE_NEEDED);
	}
	assert_string_equal(p.steps[4].sql, "COMMENT ON TABLE t IS 'x; y'");
	plan_free(&p);

	/* A comment on a column the cutover adds runs in the cutover, after it. */
	plan_ok("ALTER TABLE t ADD COLUMN c int;\nCOMMENT ON COLUMN t.c IS 'count';\nCOMMENT ON COLUMN u.d "
		"IS 'x';",
		&p);
	STEPS(&p, { PHASE_PREPARE, STEP_CREATE_OBJECT, "COMMENT ON COLUMN u.d IS 'x'" },
	      { PHASE_CUTOVER, STEP_ALTER, "ALTER TABLE t ADD COLUMN c int" },
	      { PHASE_CUTOVER, STEP_ALTER, "COMMENT ON COLUMN t.c IS 'count'" });
	plan_free(&p);
}

static void test_brief_alters(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("ALTER TABLE t ADD COLUMN a int;\n"
		"ALTER TABLE t ADD COLUMN b int NOT NULL DEFAULT 0, ADD COLUMN c text DEFAULT 'x' || 'y';\n"
		"ALTER TABLE t ADD COLUMN d timestamptz NOT NULL DEFAULT now();\n"
		"ALTER TABLE t DROP COLUMN e, ALTER COLUMN f SET DEFAULT 1, ALTER COLUMN g DROP DEFAULT;\n"
		"ALTER TABLE t ALTER COLUMN h DROP NOT NULL;\n"
		"ALTER TABLE t RENAME COLUMN i TO j;\n"
		"ALTER TABLE t ADD COLUMN k int NOT NULL;\n",
		&p);
	assert_int_equal(p.n_steps, 7);
	for (int i = 0; i < p.n_steps; i++) {
		assert_int_equal(p.steps[i].kind, STEP_ALTER);
		assert_int_equal(p.steps[i].lock, LOCK_ACCESS_EXCLUSIVE);
		assert_int_equal(p.steps[i].hold, HOLD_ALL_NEEDED);
		assert_string_equal(p.steps[i].table.name, "t");
		/* NOT NULL without a default: the preflight checks the table is empty. */
		assert_int_equal(p.steps[i].needs_empty, i == 6);
	}
	assert_string_equal(p.steps[5].sql, "ALTER TABLE t RENAME COLUMN i TO j");
	assert_true(has_note(&p, "m.sql:6: RENAME runs at cutover, briefly; code still running"));
	plan_free(&p);

	/* A function neither known volatile nor known stable: the preflight asks pg_proc. */
	plan_ok("ALTER TABLE t ADD COLUMN a text DEFAULT app.slug(lower('X'), make_code(1));", &p);
	assert_int_equal(p.steps[0].kind, STEP_ALTER);
	assert_string_equal(p.steps[0].check_functions, "slug,make_code");
	assert_true(has_note(&p,
			     "m.sql:1: the default calls slug,make_code: the preflight reads from the "
			     "catalog whether it is volatile"));
	plan_free(&p);

	/* A type change that may be a widening: the preflight checks the column's type in the catalog. */
	plan_ok("ALTER TABLE t ALTER COLUMN a TYPE varchar(300);\nALTER TABLE t ALTER COLUMN b TYPE text;",
		&p);
	assert_int_equal(p.steps[0].kind, STEP_ALTER);
	assert_string_equal(p.steps[0].check_type_column, "a");
	assert_int_equal(p.steps[0].check_type_length, 300);
	assert_string_equal(p.steps[1].check_type_column, "b");
	assert_int_equal(p.steps[1].check_type_length, -1);
	assert_true(has_note(&p, "m.sql:1: ALTER COLUMN a TYPE runs at cutover: the preflight checks"));
	plan_free(&p);

	/* ...but not on a table this file creates. */
	plan_ok("CREATE TABLE n (id int);\nALTER TABLE n ADD COLUMN k int NOT NULL;", &p);
	assert_false(p.steps[1].needs_empty);
	plan_free(&p);
}

static void test_unsafe_refused_with_recipe(void **state)
{
	(void)state;
	refused("ALTER TABLE t ADD COLUMN a uuid DEFAULT gen_random_uuid()", false, 1,
		"add the column without a default, backfill in batches, then set the default");
	refused("ALTER TABLE t ADD COLUMN a int DEFAULT nextval('s')", false, 1, "calling nextval()");
	refused("ALTER TABLE t ADD COLUMN a bigserial", false, 1, "of a serial type");
	refused("ALTER TABLE t ADD COLUMN a int GENERATED ALWAYS AS (b * 2) STORED", false, 1, "GENERATED");
	refused("ALTER TABLE t ADD COLUMN a int UNIQUE", false, 1, "inline UNIQUE");
	refused("ALTER TABLE t ALTER COLUMN a TYPE varchar(10) USING a::varchar", false, 1, "without USING");
	refused("ALTER TABLE t ALTER COLUMN a TYPE text, ALTER COLUMN b TYPE text", false, 1,
		"one per statement");
	refused("ALTER TABLE t ADD COLUMN a int, ADD CONSTRAINT c CHECK (a > 0)", false, 1,
		"one ALTER TABLE for the columns and another for the constraints");
	refused("REINDEX TABLE t", false, 1, "REINDEX … CONCURRENTLY");
	refused("VACUUM FULL t", false, 1, "pg_repack");
	refused("CLUSTER t USING t_pkey", false, 1, "CLUSTER rewrites the table");
	refused("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", false, 1, "LOCK TABLE holds its lock");
	refused("SET work_mem = '1GB'", false, 1, "SET work_mem");
}

/* TYPE bigint / int8 alone: recorded for the key type change (keychange_plan.c), no step yet. */
static void test_key_type_change_recorded(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n"
		"ALTER TABLE app.orders ALTER COLUMN \"accountId\" SET DATA TYPE int8;\n",
		&p);
	assert_int_equal(p.n_steps, 0);
	assert_int_equal(p.n_keychange_reqs, 2);
	assert_string_equal(p.keychange_reqs[0].table.name, "accounts");
	assert_string_equal(p.keychange_reqs[0].column, "id");
	assert_int_equal(p.keychange_reqs[0].input, 0);
	assert_string_equal(p.keychange_reqs[1].table.schema, "app");
	assert_string_equal(p.keychange_reqs[1].column, "accountId");
	assert_int_equal(p.keychange_reqs[1].input, 1);
	plan_free(&p);
}

/* Every refused statement of a file is named in one run, in file order, each with its line. */
static void test_every_refusal_named(void **state)
{
	struct plan p;
	struct input_error err;

	(void)state;
	assert_false(plan_sql("ALTER TABLE t ADD COLUMN a uuid DEFAULT gen_random_uuid();\n"
			      "CREATE INDEX t_b ON t (b);\n"
			      "VACUUM FULL t;\n"
			      "ALTER TABLE t ENABLE ROW LEVEL SECURITY;\n"
			      "ALTER TABLE t ALTER COLUMN c TYPE numeric;\n",
			      false, &p, &err));
	assert_int_equal(p.n_refusals, 4);
	assert_int_equal(p.inputs[p.refusals[0].input].line, 1);
	assert_int_equal(p.inputs[p.refusals[1].input].line, 3);
	assert_int_equal(p.inputs[p.refusals[2].input].line, 4);
	assert_int_equal(p.inputs[p.refusals[3].input].line, 5);
	assert_non_null(strstr(p.refusals[0].recipe, "backfill in batches"));
	assert_non_null(strstr(p.refusals[2].why, "no rule covers"));
	assert_non_null(strstr(p.refusals[2].recipe, "supported: "));
	assert_int_equal(err.line, 1);
	assert_non_null(strstr(err.msg, "(and 3 more refused statement(s))"));
	plan_free(&p);
}

static void test_set_lines(void **state)
{
	struct plan p;

	(void)state;
	plan_ok("SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_encoding = 'UTF8';\n"
		"SET search_path TO app, public;\n"
		"ALTER TABLE orders ADD CONSTRAINT o_fk FOREIGN KEY (c_id) REFERENCES customers (id);\n"
		"ALTER TABLE orders ADD COLUMN note text;\n"
		"CREATE TABLE x (id int);\n",
		&p);
	assert_true(has_note(&p, "m.sql:1: SET statement_timeout is dropped: pgvalve sets its own timeouts"));
	assert_true(has_note(&p, "m.sql:2: SET lock_timeout is dropped"));
	assert_true(has_note(&p,
			     "m.sql:4: SET search_path: names without a schema in the rest of the file are "
			     "read as app.name"));
	STEPS(&p,
	      { PHASE_PREPARE, STEP_CREATE_OBJECT,
		"SET search_path TO \"app\", \"public\"; CREATE TABLE x (id int)" },
	      { PHASE_CUTOVER, STEP_ADD_NOT_VALID,
		"ALTER TABLE \"app\".\"orders\" ADD CONSTRAINT \"o_fk\" FOREIGN KEY (\"c_id\") REFERENCES "
		"\"app\".\"customers\" (\"id\") NOT VALID" },
	      { PHASE_CUTOVER, STEP_ALTER,
		"SET LOCAL search_path TO \"app\", \"public\"; ALTER TABLE orders ADD COLUMN note text" },
	      { PHASE_VALIDATE, STEP_VALIDATE,
		"ALTER TABLE \"app\".\"orders\" VALIDATE CONSTRAINT \"o_fk\"" });
	assert_string_equal(p.created[0].schema, "app");
	plan_free(&p);

	/* CREATE INDEX CONCURRENTLY runs alone: after SET search_path it must name its schema. */
	refused("SET search_path TO app;\nCREATE INDEX i ON t (a);", false, 2, "write the schema");
}

/* ---- a whole ORM migration ---- */

static void test_orm_migration(void **state)
{
	char path[4096];
	char *files[1] = { path };
	const char *slash = strrchr(__FILE__, '/');
	struct rules_options opt = { .allow_unsafe = false };
	struct input_error err;
	struct plan p = { 0 };
	int fks = 0, per_kind[STEP_KIND_LAST + 1] = { 0 };

	(void)state;
	snprintf(path, sizeof(path), "%.*s/data/orm_19_fks.sql", (int)(slash - __FILE__), __FILE__);
	if (!input_load(&p, files, 1, &err) || !rules_plan(&p, &opt, &err))
		fail_msg("%s:%d: %s", err.file, err.line, err.msg);
	check_invariants(&p);
	assert_string_equal(p.name, "orm_19_fks");
	for (int i = 0; i < p.n_constraints; i++) {
		const struct plan_constraint *k = &p.constraints[i];

		if (k->type != CON_FOREIGN_KEY)
			continue;
		fks++;
		assert_true(k->ref_table.name[0]);
	}
	for (int i = 0; i < p.n_steps; i++)
		per_kind[p.steps[i].kind]++;
	assert_int_equal(fks, 19);
	assert_int_equal(p.n_constraints, 21); /* + a CHECK and a NOT NULL */
	assert_int_equal(per_kind[STEP_ADD_NOT_VALID], 21);
	assert_int_equal(per_kind[STEP_VALIDATE], 21); /* the 4 Rails VALIDATEs absorbed */
	assert_int_equal(per_kind[STEP_CREATE_INDEX], 4);
	assert_int_equal(per_kind[STEP_SET_NOT_NULL], 1);
	assert_int_equal(per_kind[STEP_DROP_HELPER_CHECK], 1);
	assert_int_equal(per_kind[STEP_UNSAFE], 0);
	assert_int_equal(p.n_steps, 48);
	/* The first statement starts on line 8, after the header comments and BEGIN. */
	assert_int_equal(p.inputs[0].line, 8);
	assert_int_equal(p.constraints[0].input, 0);
	/* Prisma's, Django's and pg_dump's forms, exactly. */
	assert_string_equal(
		p.steps[4].sql,
		"ALTER TABLE \"Order\" ADD CONSTRAINT \"Order_customerId_fkey\" FOREIGN KEY (\"customerId\") "
		"REFERENCES \"Customer\" (\"id\") ON UPDATE CASCADE ON DELETE RESTRICT NOT VALID");
	for (int i = 0; i < p.n_steps; i++) {
		if (strstr(p.steps[i].sql, "shop_review_author_id_1b9c44e2_fk_auth_user_id") &&
		    p.steps[i].kind == STEP_ADD_NOT_VALID)
			assert_string_equal(
				p.steps[i].sql,
				"ALTER TABLE \"shop_review\" ADD CONSTRAINT "
				"\"shop_review_author_id_1b9c44e2_fk_auth_user_id\" FOREIGN KEY "
				"(\"author_id\") "
				"REFERENCES \"auth_user\" (\"id\") DEFERRABLE INITIALLY DEFERRED NOT VALID");
		if (strstr(p.steps[i].sql, "invoice_lines_tax_code_fkey") &&
		    p.steps[i].kind == STEP_ADD_NOT_VALID)
			assert_string_equal(
				p.steps[i].sql,
				"ALTER TABLE ONLY \"reporting\".\"invoice_lines\" ADD CONSTRAINT "
				"\"invoice_lines_tax_code_fkey\" FOREIGN KEY (\"tax_code\", \"tax_region\") "
				"REFERENCES \"reporting\".\"tax_codes\" (\"code\", \"region\") MATCH FULL "
				"NOT VALID");
		if (strstr(p.steps[i].sql, "credit_notes") && p.steps[i].kind == STEP_ADD_NOT_VALID)
			assert_string_equal(
				p.steps[i].sql,
				"ALTER TABLE \"reporting\".\"credit_notes\" ADD CONSTRAINT "
				"\"credit_notes_invoice_id_fkey\" FOREIGN KEY (\"invoice_id\") REFERENCES "
				"\"reporting\".\"invoices\" (\"id\") NOT VALID");
	}
	assert_true(has_note(&p, "its BEGIN/COMMIT are dropped"));
	assert_true(has_note(&p, "NOT VALID + VALIDATE in one migration"));
	assert_true(has_note(&p, "SET CONSTRAINTS is dropped"));
	plan_free(&p);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

/* plan_sql() writes one file, m.sql, over and over. */
static int teardown(void **state)
{
	char path[sizeof(dir) + 16];

	(void)state;
	snprintf(path, sizeof(path), "%s/m.sql", dir);
	return unlink(path) == 0 && rmdir(dir) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_foreign_key),
		cmocka_unit_test(test_foreign_key_options),
		cmocka_unit_test(test_default_names),
		cmocka_unit_test(test_mixed_case_and_hostile_names),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_check_expression_text),
		cmocka_unit_test(test_not_null),
		cmocka_unit_test(test_unique_and_primary_key),
		cmocka_unit_test(test_create_index),
		cmocka_unit_test(test_drop_constraint),
		cmocka_unit_test(test_replacement),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_subcommands_split),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_corpus_rules),
		cmocka_unit_test(test_allow_unsafe),
		cmocka_unit_test(test_set_constraints_dropped),
		cmocka_unit_test(test_orm_migration),
		cmocka_unit_test(test_django_add_foreign_key_column),
		cmocka_unit_test(test_create_table),
		cmocka_unit_test(test_new_objects),
		cmocka_unit_test(test_brief_alters),
		cmocka_unit_test(test_unsafe_refused_with_recipe),
		cmocka_unit_test(test_every_refusal_named),
		cmocka_unit_test(test_key_type_change_recorded),
		cmocka_unit_test(test_set_lines),
	};
	int rc = cmocka_run_group_tests_name("coordinator/rules", tests, setup, teardown);

	printf("coordinator/rules: %d plans checked\n", n_plans);
	return rc;
}
