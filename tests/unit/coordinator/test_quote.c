/*
 * Unit tests for coordinator/quote.c: identifiers and literals quoted for
 * generated SQL (mixed case, quotes, spaces, semicolons, unicode, empty,
 * short buffers), checked also by handing the result to PostgreSQL's own
 * parser (libpg_query) and reading the name back; and the same appended to
 * a string being built. The lexer's tests are tests/unit/common/test_sqllex.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <pg_query.h>

#include "quote.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Names people and attackers write, each a single identifier. */
static const char *const hostile[] = {
	"orders",
	"Orders",
	"CustomerId",
	"select",
	"with space",
	"semi;colon",
	"x\"; DROP TABLE x; --",
	"\"",
	"\"\"",
	"'",
	"back\\slash",
	"tab\there",
	"new\nline",
	"ünïcödé_表",
	"$1",
	"/* not a comment */",
	"-- nor this",
	"a.b",
};

static void check_ident(const char *name, const char *want)
{
	char out[256];
	size_t n = quote_ident(out, sizeof(out), name);

	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
	assert_int_equal(quote_ident(NULL, 0, name), strlen(want));
}

static void test_ident(void **state)
{
	(void)state;
	check_ident("orders", "\"orders\"");
	check_ident("Orders", "\"Orders\"");
	check_ident("with space", "\"with space\"");
	check_ident("a\"b", "\"a\"\"b\"");
	check_ident("\"", "\"\"\"\"");
	check_ident("x\"; DROP TABLE x; --", "\"x\"\"; DROP TABLE x; --\"");
	check_ident("ünïcödé", "\"ünïcödé\"");
	check_ident("", "\"\"");
	check_ident("it's", "\"it's\"");
}

static void test_ident_short_buffer(void **state)
{
	char out[6];

	(void)state;
	memset(out, 'X', sizeof(out));
	assert_int_equal(quote_ident(out, sizeof(out), "a\"bcdef"), 10);
	assert_string_equal(out, "\"a\"\"b"); /* cut, but always NUL-terminated */
	memset(out, 'X', sizeof(out));
	assert_int_equal(quote_ident(out, 1, "abc"), 5);
	assert_int_equal(out[0], '\0');
	assert_int_equal(out[1], 'X');
}

static void test_qname(void **state)
{
	char out[256];

	(void)state;
	assert_int_equal(quote_qname(out, sizeof(out), "public", "Orders"), strlen("\"public\".\"Orders\""));
	assert_string_equal(out, "\"public\".\"Orders\"");
	quote_qname(out, sizeof(out), "", "t");
	assert_string_equal(out, "\"t\"");
	quote_qname(out, sizeof(out), NULL, "t");
	assert_string_equal(out, "\"t\"");
	quote_qname(out, sizeof(out), "my.schema", "a\"b");
	assert_string_equal(out, "\"my.schema\".\"a\"\"b\"");
	assert_int_equal(quote_qname(NULL, 0, "s", "t"), 7);
}

static void test_literal(void **state)
{
	char out[256];

	(void)state;
	assert_int_equal(quote_literal(out, sizeof(out), "it's"), 7);
	assert_string_equal(out, "'it''s'");
	quote_literal(out, sizeof(out), "");
	assert_string_equal(out, "''");
	quote_literal(out, sizeof(out), "back\\slash");
	assert_string_equal(out, "'back\\slash'"); /* standard_conforming_strings: left alone */
	quote_literal(out, sizeof(out), "'; DROP TABLE x; --");
	assert_string_equal(out, "'''; DROP TABLE x; --'");
	quote_literal(out, sizeof(out), "ünï\"cödé");
	assert_string_equal(out, "'ünï\"cödé'");
}

/* The sval of the first String node under 'node', depth first. */
static const char *first_sval(const cJSON *node)
{
	const cJSON *child;

	if (!node)
		return NULL;
	if (node->string && strcmp(node->string, "sval") == 0 && cJSON_IsString(node))
		return node->valuestring;
	cJSON_ArrayForEach(child, node)
	{
		const char *s = first_sval(child);

		if (s)
			return s;
	}
	return NULL;
}

/*
 * What PostgreSQL's parser makes of the quoted forms: exactly one statement
 * whose name (or string) is the original, whatever the original holds.
 */
static void test_parser_reads_back(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(hostile); i++) {
		char q[256], sql[600], lit[256];
		PgQueryParseResult r;
		cJSON *tree, *stmts;

		quote_qname(q, sizeof(q), "s", hostile[i]);
		quote_literal(lit, sizeof(lit), hostile[i]);
		snprintf(sql, sizeof(sql), "DROP TABLE %s", q);
		r = pg_query_parse(sql);
		if (r.error)
			fail_msg("%s: %s", sql, r.error->message);
		tree = cJSON_Parse(r.parse_tree);
		stmts = cJSON_GetObjectItem(tree, "stmts");
		assert_int_equal(cJSON_GetArraySize(stmts), 1);
		/* [s, name]: the second String is the table. */
		assert_non_null(strstr(r.parse_tree, "\"sval\":\"s\""));
		{
			const cJSON *items = cJSON_GetObjectItem(
				cJSON_GetObjectItem(
					cJSON_GetArrayItem(
						cJSON_GetObjectItem(
							cJSON_GetObjectItem(
								cJSON_GetObjectItem(
									cJSON_GetArrayItem(stmts, 0), "stmt"),
								"DropStmt"),
							"objects"),
						0),
					"List"),
				"items");

			assert_int_equal(cJSON_GetArraySize(items), 2);
			assert_string_equal(first_sval(cJSON_GetArrayItem(items, 1)), hostile[i]);
		}
		cJSON_Delete(tree);
		pg_query_free_parse_result(r);

		snprintf(sql, sizeof(sql), "SELECT %s", lit);
		r = pg_query_parse(sql);
		if (r.error)
			fail_msg("%s: %s", sql, r.error->message);
		tree = cJSON_Parse(r.parse_tree);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(tree, "stmts")), 1);
		assert_string_equal(first_sval(tree), hostile[i]);
		cJSON_Delete(tree);
		pg_query_free_parse_result(r);
	}
}

/* The appending forms write what the snprintf-like ones do, after what is there. */
static void test_append(void **state)
{
	struct strbuf b = { 0 };
	char *s;

	(void)state;
	strbuf_put(&b, "ALTER TABLE ");
	quote_append_qname(&b, "Sales", "order\"s");
	strbuf_put(&b, " VALIDATE CONSTRAINT ");
	quote_append_ident(&b, "c;1");
	quote_append_qname(&b, "", "t");
	s = strbuf_take(&b);
	assert_string_equal(s, "ALTER TABLE \"Sales\".\"order\"\"s\" VALIDATE CONSTRAINT \"c;1\"\"t\"");
	free(s);
	for (size_t i = 0; i < N(hostile); i++) {
		char want[256];

		quote_ident(want, sizeof(want), hostile[i]);
		quote_append_ident(&b, hostile[i]);
		assert_string_equal(b.s, want);
		strbuf_reset(&b);
	}
	s = strbuf_take(&b);
	assert_string_equal(s, "");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ident),
		cmocka_unit_test(test_ident_short_buffer),
		cmocka_unit_test(test_qname),
		cmocka_unit_test(test_literal),
		cmocka_unit_test(test_parser_reads_back),
		cmocka_unit_test(test_append),
	};

	return cmocka_run_group_tests_name("coordinator/quote", tests, NULL, NULL);
}
