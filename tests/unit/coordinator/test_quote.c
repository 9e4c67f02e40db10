/*
 * Unit tests for coordinator/quote.c: identifiers and literals quoted for
 * generated SQL (mixed case, quotes, spaces, semicolons, unicode, empty,
 * short buffers), checked also by handing the result to PostgreSQL's own
 * parser (libpg_query) and reading the name back; and the lexer that steps
 * over comments, strings, quoted identifiers and dollar quotes.
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

struct tok {
	enum quote_token kind;
	const char *text;
};

/* Scans all of 'sql' and compares the tokens with 'want' (ended by QUOTE_TOK_END). */
static void check_tokens(const char *sql, const struct tok *want)
{
	size_t len = strlen(sql), pos = 0, end;
	enum quote_token kind;
	int i = 0;

	for (;; i++, pos = end) {
		end = quote_scan(sql, len, pos, &kind);
		if (kind != want[i].kind)
			fail_msg("%s: token %d at %zu is kind %d, want %d", sql, i, pos, kind, want[i].kind);
		if (kind == QUOTE_TOK_END)
			break;
		if (end - pos != strlen(want[i].text) || memcmp(sql + pos, want[i].text, end - pos) != 0)
			fail_msg("%s: token %d is <%.*s>, want <%s>", sql, i, (int)(end - pos), sql + pos,
				 want[i].text);
	}
	assert_int_equal(end, len);
}

static void test_scan(void **state)
{
	(void)state;
	check_tokens("CHECK (a > 0)",
		     (const struct tok[]){ { QUOTE_TOK_WORD, "CHECK" },
					   { QUOTE_TOK_SPACE, " " },
					   { QUOTE_TOK_PUNCT, "(" },
					   { QUOTE_TOK_WORD, "a" },
					   { QUOTE_TOK_SPACE, " " },
					   { QUOTE_TOK_PUNCT, ">" },
					   { QUOTE_TOK_SPACE, " " },
					   { QUOTE_TOK_WORD, "0" },
					   { QUOTE_TOK_PUNCT, ")" },
					   { QUOTE_TOK_END, "" } });
	check_tokens("'a)''b'\"c\"\")\"",
		     (const struct tok[]){ { QUOTE_TOK_STRING, "'a)''b'" },
					   { QUOTE_TOK_IDENT, "\"c\"\")\"" },
					   { QUOTE_TOK_END, "" } });
	/* E'': a backslash escapes the quote; in '' it does not. */
	check_tokens("E'\\')'x'\\'",
		     (const struct tok[]){ { QUOTE_TOK_STRING, "E'\\')'" },
					   { QUOTE_TOK_WORD, "x" },
					   { QUOTE_TOK_STRING, "'\\'" },
					   { QUOTE_TOK_END, "" } });
	check_tokens("type'x'",
		     (const struct tok[]){ { QUOTE_TOK_WORD, "type" },
					   { QUOTE_TOK_STRING, "'x'" },
					   { QUOTE_TOK_END, "" } });
	check_tokens("U&'d\\0061t' u&\"a\"\"\"",
		     (const struct tok[]){ { QUOTE_TOK_STRING, "U&'d\\0061t'" },
					   { QUOTE_TOK_SPACE, " " },
					   { QUOTE_TOK_IDENT, "u&\"a\"\"\"" },
					   { QUOTE_TOK_END, "" } });
	check_tokens("$$ ) $$$tag$ $$ ) $tag$",
		     (const struct tok[]){ { QUOTE_TOK_DOLLAR, "$$ ) $$" },
					   { QUOTE_TOK_DOLLAR, "$tag$ $$ ) $tag$" },
					   { QUOTE_TOK_END, "" } });
	check_tokens("$1 a$b$ $",
		     (const struct tok[]){ { QUOTE_TOK_PUNCT, "$" },
					   { QUOTE_TOK_WORD, "1" },
					   { QUOTE_TOK_SPACE, " " },
					   { QUOTE_TOK_WORD, "a$b$" },
					   { QUOTE_TOK_SPACE, " " },
					   { QUOTE_TOK_PUNCT, "$" },
					   { QUOTE_TOK_END, "" } });
	check_tokens("-- a ) b\n/* x /* ) */ y */-1",
		     (const struct tok[]){ { QUOTE_TOK_COMMENT, "-- a ) b" },
					   { QUOTE_TOK_SPACE, "\n" },
					   { QUOTE_TOK_COMMENT, "/* x /* ) */ y */" },
					   { QUOTE_TOK_PUNCT, "-" },
					   { QUOTE_TOK_WORD, "1" },
					   { QUOTE_TOK_END, "" } });
	check_tokens("ünï_1", (const struct tok[]){ { QUOTE_TOK_WORD, "ünï_1" }, { QUOTE_TOK_END, "" } });
}

static void test_scan_unterminated(void **state)
{
	static const char *const open[] = { "'abc",         "\"abc", "E'abc\\'", "$x$ abc $y$",
					    "/* a /* b */", "U&'a",  "'a''" };

	(void)state;
	for (size_t i = 0; i < N(open); i++) {
		enum quote_token kind;
		size_t len = strlen(open[i]);

		assert_int_equal(quote_scan(open[i], len, 0, &kind), len);
		if (kind != QUOTE_TOK_UNTERMINATED)
			fail_msg("%s: kind %d", open[i], kind);
	}
	/* A -- comment at the very end is complete; "$x" with no closing $ is a lone '$'. */
	{
		enum quote_token kind;

		assert_int_equal(quote_scan("-- x", 4, 0, &kind), 4);
		assert_int_equal(kind, QUOTE_TOK_COMMENT);
		assert_int_equal(quote_scan("$x", 2, 0, &kind), 1);
		assert_int_equal(kind, QUOTE_TOK_PUNCT);
		assert_int_equal(quote_scan("ab", 2, 2, &kind), 2);
		assert_int_equal(kind, QUOTE_TOK_END);
	}
}

/* The lexer reads only within len: a buffer with no NUL after it (Asan sees a read past). */
static void test_scan_bounds(void **state)
{
	static const char *const texts[] = { "'ab", "E'a\\", "$tag$ x $ta", "/* x *", "-",
					     "U&",  "e",     "$",           "\"" };

	(void)state;
	for (size_t i = 0; i < N(texts); i++) {
		size_t len = strlen(texts[i]), pos = 0;
		char *buf = malloc(len);
		enum quote_token kind;

		assert_non_null(buf);
		memcpy(buf, texts[i], len);
		while ((pos = quote_scan(buf, len, pos, &kind)),
		       kind != QUOTE_TOK_END && kind != QUOTE_TOK_UNTERMINATED)
			assert_true(pos <= len);
		free(buf);
	}
}

static void test_next_and_trim(void **state)
{
	const char *s = "  -- lead\n /* c */ ALTER  TABLE t -- tail\n  ";
	size_t start, end, pos = 0;

	(void)state;
	assert_true(quote_trim(s, strlen(s), &start, &end));
	assert_int_equal(end - start, strlen("ALTER  TABLE t"));
	assert_memory_equal(s + start, "ALTER  TABLE t", end - start);
	assert_int_equal(quote_next(s, strlen(s), &pos, &end), QUOTE_TOK_WORD);
	assert_int_equal(pos, start);
	assert_true(quote_is_keyword(s + pos, end - pos, "alter"));
	assert_false(quote_is_keyword(s + pos, end - pos, "alt"));
	assert_false(quote_is_keyword(s + pos, end - pos - 1, "alter"));
	assert_false(
		quote_trim(" -- only\n/* comments */ ", strlen(" -- only\n/* comments */ "), &start, &end));
	assert_false(quote_trim("", 0, &start, &end));
	pos = strlen(s) - 2;
	assert_int_equal(quote_next(s, strlen(s), &pos, &end), QUOTE_TOK_END);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ident),
		cmocka_unit_test(test_ident_short_buffer),
		cmocka_unit_test(test_qname),
		cmocka_unit_test(test_literal),
		cmocka_unit_test(test_parser_reads_back),
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_scan_unterminated),
		cmocka_unit_test(test_scan_bounds),
		cmocka_unit_test(test_next_and_trim),
	};

	return cmocka_run_group_tests_name("coordinator/quote", tests, NULL, NULL);
}
