/*
 * Unit tests for coordinator/audit_findings.c, audit_suggest.c and the
 * outputs on hand-built graphs: each finding kind and its severity, the
 * constraint names PostgreSQL would choose (63 bytes, UTF-8, collisions),
 * which columns are suggested as foreign keys (snake_case, camelCase,
 * plurals, uuid, types that differ, a table without a key), and that the
 * JSON has the contract's keys and the DOT escapes hostile names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audit.h"
#include "test_audit_lib.h"

static int count_kind(const struct audit_findings *f, const char *kind, enum audit_severity sev)
{
	int n = 0;

	for (int i = 0; i < f->n; i++)
		n += strcmp(f->v[i].kind, kind) == 0 && f->v[i].severity == sev;
	return n;
}

static void test_findings_of_each_kind(void **state)
{
	struct audit_graph g;
	struct audit_analysis a;
	struct audit_findings f = { 0 };
	struct audit_fk *fk;

	(void)state;
	tg_init(&g, 6);
	g.tables[5].has_pk = false;
	fk = tg_fk(&g, 1, 0, ACT_CASCADE);
	fk->indexed = false;
	fk = tg_fk(&g, 2, 1, ACT_CASCADE);
	fk->validated = false;
	fk = tg_fk(&g, 3, 2, ACT_CASCADE);
	free(fk->types[0]);
	fk->types[0] = xstrdup("bigint");
	fk = tg_fk(&g, 4, 0, ACT_NO_ACTION);
	fk->ref_is_constraint = false;
	tg_fk(&g, 4, 4, ACT_NO_ACTION);
	audit_analyze(&g, &a);
	audit_findings_build(&g, &a, &f);
	audit_findings_sort(&f, &g);
	assert_int_equal(count_kind(&f, "unindexed_fk", SEV_WARNING), 1);
	assert_int_equal(count_kind(&f, "not_valid", SEV_WARNING), 1);
	assert_int_equal(count_kind(&f, "type_mismatch", SEV_WARNING), 1);
	assert_int_equal(count_kind(&f, "missing_unique", SEV_INFO), 1);
	assert_int_equal(count_kind(&f, "no_primary_key", SEV_WARNING), 1);
	assert_int_equal(count_kind(&f, "cycle", SEV_INFO), 1); /* t4's self-reference */
	/* t0 cascades to t1, t2, t3: three tables is fan-out. */
	assert_int_equal(count_kind(&f, "cascade_fanout", SEV_WARNING), 1);
	for (int i = 0; i < f.n; i++) {
		assert_non_null(f.v[i].message);
		assert_non_null(f.v[i].hint);
		if (i > 0)
			assert_true(f.v[i - 1].severity >= f.v[i].severity);
	}
	audit_findings_free(&f);
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
}

static void test_cycle_severity(void **state)
{
	struct audit_graph g;
	struct audit_analysis a;
	struct audit_findings f = { 0 };

	(void)state;
	tg_init(&g, 2);
	tg_fk(&g, 0, 1, ACT_NO_ACTION);
	tg_fk(&g, 1, 0, ACT_NO_ACTION);
	audit_analyze(&g, &a);
	audit_findings_build(&g, &a, &f);
	assert_int_equal(count_kind(&f, "cycle", SEV_WARNING), 1);
	audit_findings_free(&f);
	/* One DEFERRABLE key in the cycle lets rows go in: a note only. */
	g.fks[1].deferrable = true;
	audit_findings_build(&g, &a, &f);
	assert_int_equal(count_kind(&f, "cycle", SEV_INFO), 1);
	assert_int_equal(count_kind(&f, "cycle", SEV_WARNING), 0);
	audit_findings_free(&f);
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
}

static bool taken_list(const char *name, void *arg)
{
	for (const char *const *p = arg; *p; p++)
		if (strcmp(*p, name) == 0)
			return true;
	return false;
}

static void test_fk_names(void **state)
{
	const char *cols[2] = { "customer_id", "tenant_id" };
	const char *none[1] = { NULL };
	const char *taken[3] = { "orders_customer_id_fkey", "orders_customer_id_fkey1", NULL };
	char out[AUDIT_NAME_MAX], long_table[80], long_col[80];

	(void)state;
	audit_fk_name("orders", cols, 1, taken_list, (void *)none, out);
	assert_string_equal(out, "orders_customer_id_fkey");
	audit_fk_name("orders", cols, 2, NULL, NULL, out);
	assert_string_equal(out, "orders_customer_id_tenant_id_fkey");
	audit_fk_name("orders", cols, 1, taken_list, (void *)taken, out);
	assert_string_equal(out, "orders_customer_id_fkey2");
	/* 63 bytes: the longer part is cut first (PostgreSQL: 'aaa…_bbb…_fkey'). */
	memset(long_table, 'a', 63);
	long_table[63] = '\0';
	memset(long_col, 'b', 40);
	long_col[40] = '\0';
	cols[0] = long_col;
	audit_fk_name(long_table, cols, 1, NULL, NULL, out);
	assert_int_equal(strlen(out), 63);
	assert_string_equal(out + 63 - 5, "_fkey");
	/* 57 bytes for both parts: 40 + 40 shortened alternately from the second when equal. */
	assert_int_equal(strspn(out, "a"), 29);
	assert_int_equal(strspn(out + 30, "b"), 28);
	/* A UTF-8 character is never split: "é" is two bytes. */
	for (int i = 0; i < 30; i++)
		memcpy(long_table + 2 * i, "\xc3\xa9", 2);
	long_table[60] = '\0';
	cols[0] = "x_id";
	audit_fk_name(long_table, cols, 1, NULL, NULL, out);
	assert_true(strlen(out) <= 63);
	assert_int_equal(strlen(out) % 2, 0); /* 2k bytes of é, "_x_id_fkey" is 10 */
	assert_string_equal(out + strlen(out) - 10, "_x_id_fkey");
}

/* A graph for suggestions: tables and their one-column keys and candidate columns. */
static void add_key(struct audit_graph *g, int t, const char *col, const char *type, bool primary)
{
	g->keys = xrealloc(g->keys, sizeof(struct audit_key) * (size_t)(g->n_keys + 1));
	g->keys[g->n_keys++] = (struct audit_key){
		.table = t, .column = xstrdup(col), .type = xstrdup(type), .primary = primary
	};
}

static void add_col(struct audit_graph *g, int t, const char *col, const char *type)
{
	g->columns = xrealloc(g->columns, sizeof(struct audit_column) * (size_t)(g->n_columns + 1));
	g->columns[g->n_columns++] = (struct audit_column){ .table = t,
							    .name = xstrdup(col),
							    .type = xstrdup(type) };
}

static void rename_table(struct audit_graph *g, int t, const char *schema, const char *name)
{
	free(g->tables[t].schema);
	free(g->tables[t].name);
	free(g->tables[t].display);
	g->tables[t].schema = xstrdup(schema);
	g->tables[t].name = xstrdup(name);
	g->tables[t].display = xasprintf("%s.%s", schema, name);
}

static const struct audit_suggestion *suggestion_for(const struct audit_graph *g,
						     const struct audit_suggestions *s, const char *col)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(g->columns[s->v[i].column].name, col) == 0)
			return &s->v[i];
	return NULL;
}

static void test_suggestions(void **state)
{
	struct audit_graph g;
	struct audit_suggestions s;
	struct audit_findings f = { 0 };
	const struct audit_suggestion *x;

	(void)state;
	tg_init(&g, 7);
	rename_table(&g, 0, "public", "customers");
	rename_table(&g, 1, "public", "Category");
	rename_table(&g, 2, "public", "companies");
	rename_table(&g, 3, "billing", "invoice");
	rename_table(&g, 4, "public", "orders");
	rename_table(&g, 5, "public", "legacy");
	rename_table(&g, 6, "public", "devices");
	add_key(&g, 0, "id", "integer", true);
	add_key(&g, 1, "id", "bigint", true);
	add_key(&g, 2, "id", "integer", true);
	add_key(&g, 3, "id", "integer", true);
	add_key(&g, 4, "id", "integer", true);
	add_key(&g, 6, "uuid", "uuid", false);
	add_col(&g, 4, "customer_id", "integer"); /* snake_case, plural table */
	add_col(&g, 4, "categoryId", "bigint");   /* camelCase, PascalCase table */
	add_col(&g, 4, "company_id", "integer");  /* -y -> -ies */
	add_col(&g, 4, "invoice_id", "integer");  /* another schema */
	add_col(&g, 4, "customers_id", "bigint"); /* the type differs from customers.id: no */
	add_col(&g, 4, "legacy_id", "integer");   /* legacy has no key: missing_unique */
	add_col(&g, 5, "id", "integer");
	add_col(&g, 4, "device_uuid", "uuid"); /* a unique key, not the primary one */
	add_col(&g, 4, "id", "integer");       /* its own key: never */
	add_col(&g, 4, "order_id", "integer");
	g.columns[g.n_columns - 1].in_fk = true; /* already has a foreign key: no */
	audit_suggest(&g, &s, &f);
	assert_int_equal(s.n, 5);
	x = suggestion_for(&g, &s, "customer_id");
	assert_non_null(x);
	assert_string_equal(g.tables[x->ref_table].name, "customers");
	assert_string_equal(x->name, "orders_customer_id_fkey");
	assert_string_equal(x->sql,
			    "ALTER TABLE \"public\".\"orders\" ADD CONSTRAINT \"orders_customer_id_fkey\" "
			    "FOREIGN KEY (\"customer_id\") REFERENCES \"public\".\"customers\" (\"id\");");
	x = suggestion_for(&g, &s, "categoryId");
	assert_non_null(x);
	assert_string_equal(g.tables[x->ref_table].name, "Category");
	assert_string_equal(x->name, "orders_categoryId_fkey");
	x = suggestion_for(&g, &s, "company_id");
	assert_non_null(x);
	assert_string_equal(g.tables[x->ref_table].name, "companies");
	x = suggestion_for(&g, &s, "invoice_id");
	assert_non_null(x);
	assert_string_equal(g.tables[x->ref_table].schema, "billing");
	x = suggestion_for(&g, &s, "device_uuid");
	assert_non_null(x);
	assert_string_equal(g.keys[x->key].column, "uuid");
	assert_null(suggestion_for(&g, &s, "customers_id"));
	assert_null(suggestion_for(&g, &s, "legacy_id"));
	assert_null(suggestion_for(&g, &s, "order_id"));
	/* The exact-name match in the same schema ranks above a plural, which ranks above another schema. */
	assert_string_equal(g.columns[s.v[0].column].name, "categoryId");
	assert_string_equal(g.columns[s.v[s.n - 1].column].name, "invoice_id");
	assert_int_equal(count_kind(&f, "missing_unique", SEV_WARNING), 1);
	audit_suggestions_free(&s);
	audit_findings_free(&f);
	audit_graph_free(&g);
}

static void test_suggested_names_do_not_collide(void **state)
{
	struct audit_graph g;
	struct audit_suggestions s;
	struct audit_findings f = { 0 };

	(void)state;
	tg_init(&g, 2);
	rename_table(&g, 0, "public", "users");
	rename_table(&g, 1, "public", "posts");
	add_key(&g, 0, "id", "integer", true);
	add_col(&g, 1, "user_id", "integer");
	g.constraint_names = xcalloc(3, sizeof(char *));
	g.constraint_names[g.n_constraint_names++] = xstrdup("cpublic\x1fposts_user_id_fkey");
	g.constraint_names[g.n_constraint_names++] = xstrdup("rpublic\x1fposts_user_id_idx");
	audit_suggest(&g, &s, &f);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.v[0].name, "posts_user_id_fkey1");
	/* The column has no index: one comes with the key, named as CREATE INDEX would name it. */
	assert_string_equal(s.v[0].index_name, "posts_user_id_idx1");
	assert_string_equal(s.v[0].index_sql,
			    "CREATE INDEX \"posts_user_id_idx1\" ON \"public\".\"posts\" (\"user_id\");");
	audit_suggestions_free(&s);
	audit_findings_free(&f);
	audit_graph_free(&g);
}

static void test_outputs(void **state)
{
	struct audit_graph g;
	struct audit_analysis a;
	struct audit_findings f = { 0 };
	struct audit_report r = { &g, &a, &f, NULL, "schema public" };
	cJSON *doc, *edge;
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	(void)state;
	tg_init(&g, 2);
	rename_table(&g, 0, "public", "\"Odd\\Name\"\nx");
	tg_fk(&g, 1, 0, ACT_CASCADE)->validated = false;
	audit_analyze(&g, &a);
	audit_findings_build(&g, &a, &f);
	doc = audit_to_json(&r);
	for (const char *const *k =
		     (const char *const[]){ "tables", "foreign_keys", "graph", "cycles", "longest_chains",
					    "cascade_reach", "findings", "suggestions", NULL };
	     *k; k++)
		assert_non_null(cJSON_GetObjectItemCaseSensitive(doc, *k));
	edge = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "graph"), "edges"), 0);
	assert_string_equal(cJSON_GetObjectItem(edge, "on_delete")->valuestring, "cascade");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(edge, "validated")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(edge, "indexed")));
	cJSON_Delete(doc);
	out = open_memstream(&buf, &len);
	audit_print_dot(out, &r);
	fclose(out);
	assert_non_null(strstr(buf, "t0 [label=\"public.\\\"Odd\\\\Name\\\"\\nx\\n"));
	assert_non_null(strstr(buf, "t1 -> t0 [label=\""));
	assert_non_null(strstr(buf, "ON DELETE CASCADE\\nNOT VALID\", style=dashed"));
	free(buf);
	out = open_memstream(&buf, &len);
	audit_print_mermaid(out, &r);
	fclose(out);
	assert_non_null(strstr(buf, "flowchart LR\n"));
	assert_non_null(strstr(buf, "#quot;Odd"));
	assert_non_null(strstr(buf, "t1 -.->|\""));
	free(buf);
	audit_findings_free(&f);
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_findings_of_each_kind),
		cmocka_unit_test(test_cycle_severity),
		cmocka_unit_test(test_fk_names),
		cmocka_unit_test(test_suggestions),
		cmocka_unit_test(test_suggested_names_do_not_collide),
		cmocka_unit_test(test_outputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
