/*
 * Unit tests for common/sqllex.c, the one SQL lexer: each kind of token
 * and where it ends (white space, comments nested or not, quoted
 * identifiers, every kind of string, dollar quotes with tags, numbers,
 * parameters, operators), the places PostgreSQL 15 differs from what one
 * might guess (a vertical tab is not white space; 0x1F is an error), a ';'
 * inside each kind of quote, standard_conforming_strings off, unterminated
 * text and reads within bounds; and, for every text here, agreement with
 * libpg_query's own scanner on where each token starts and ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pg_query.h>

#include "pgvalve/sqllex.h"
#include "../../support/pg_scan.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct tok {
	enum sqllex_kind kind;
	const char *text;
};

/* ---- libpg_query's scanner, for comparison ---- */

/*
 * Every token libpg_query's scanner reports for 'sql' is one of ours, with
 * the same start and end (white space it does not report; comments it
 * does; the N of N'...' is its keyword NCHAR, then the string). For
 * U&"..." and U&'...' it reports a start only.
 */
static void check_agrees_with_libpg_query(const char *sql)
{
	size_t len = strlen(sql);
	struct pg_scan_token *pg = calloc(len + 2, sizeof(*pg));
	struct sqllex lx;
	struct sqllex_token t;
	long n;

	assert_non_null(pg);
	n = pg_scan_tokens(sql, pg, len + 2);
	if (n < 0)
		fail_msg("%s: libpg_query's scanner refuses it", sql);
	sqllex_init(&lx, sql, len, 0);
	for (long i = 0; i < n; i++) {
		while (sqllex_next(&lx, &t) == SQLLEX_SPACE)
			;
		if (t.start != pg[i].start ||
		    (t.end != pg[i].end && t.kind != SQLLEX_UIDENT && t.kind != SQLLEX_USTRING))
			fail_msg("%s: libpg_query's token %ld is [%zu, %zu), ours [%zu, %zu) kind %d", sql, i,
				 pg[i].start, pg[i].end, t.start, t.end, t.kind);
	}
	while (sqllex_next(&lx, &t) == SQLLEX_SPACE)
		;
	if (t.kind != SQLLEX_END)
		fail_msg("%s: a token at %zu that libpg_query does not have", sql, t.start);
	free(pg);
}

/* Lexes all of 'sql' (options 'opt') and compares the tokens with 'want' (ended by SQLLEX_END). */
static void check_tokens_opt(const char *sql, unsigned opt, const struct tok *want)
{
	size_t len = strlen(sql);
	struct sqllex lx;
	struct sqllex_token t;

	sqllex_init(&lx, sql, len, opt);
	for (int i = 0;; i++) {
		sqllex_next(&lx, &t);
		if (t.kind != want[i].kind)
			fail_msg("%s: token %d at %zu is kind %d, want %d", sql, i, t.start, t.kind,
				 want[i].kind);
		if (t.kind == SQLLEX_END)
			break;
		if (t.end - t.start != strlen(want[i].text) ||
		    memcmp(sql + t.start, want[i].text, t.end - t.start))
			fail_msg("%s: token %d is <%.*s>, want <%s>", sql, i, (int)(t.end - t.start),
				 sql + t.start, want[i].text);
	}
	assert_int_equal(t.start, len);
}

static void check_tokens(const char *sql, const struct tok *want)
{
	bool error = false;

	check_tokens_opt(sql, 0, want);
	for (int i = 0; want[i].kind != SQLLEX_END; i++)
		error |= want[i].kind == SQLLEX_ERROR || want[i].kind == SQLLEX_UNTERMINATED;
	if (!error)
		check_agrees_with_libpg_query(sql);
}

#define TOKS(...) ((const struct tok[]){ __VA_ARGS__, { SQLLEX_END, "" } })

static void test_words_and_punctuation(void **state)
{
	(void)state;
	check_tokens("CHECK (a > 0)",
		     TOKS({ SQLLEX_IDENT, "CHECK" }, { SQLLEX_SPACE, " " }, { SQLLEX_SELF, "(" },
			  { SQLLEX_IDENT, "a" }, { SQLLEX_SPACE, " " }, { SQLLEX_SELF, ">" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_INTEGER, "0" }, { SQLLEX_SELF, ")" }));
	check_tokens("ünï_1 a$b$ t1",
		     TOKS({ SQLLEX_IDENT, "ünï_1" }, { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "a$b$" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "t1" }));
	/* ; , [ ] . : are one character each; :: := .. are one token. */
	check_tokens("a[1].b::int;x:=1..2",
		     TOKS({ SQLLEX_IDENT, "a" }, { SQLLEX_SELF, "[" }, { SQLLEX_INTEGER, "1" },
			  { SQLLEX_SELF, "]" }, { SQLLEX_SELF, "." }, { SQLLEX_IDENT, "b" },
			  { SQLLEX_OPERATOR, "::" }, { SQLLEX_IDENT, "int" }, { SQLLEX_SELF, ";" },
			  { SQLLEX_IDENT, "x" }, { SQLLEX_OPERATOR, ":=" }, { SQLLEX_INTEGER, "1" },
			  { SQLLEX_OPERATOR, ".." }, { SQLLEX_INTEGER, "2" }));
}

/* A vertical tab is not white space to PostgreSQL 15 (16 made it one); a form feed is. */
static void test_vertical_tab(void **state)
{
	PgQueryParseResult r;

	(void)state;
	check_tokens_opt("SELECT\v1", 0,
			 TOKS({ SQLLEX_IDENT, "SELECT" }, { SQLLEX_OTHER, "\v" }, { SQLLEX_INTEGER, "1" }));
	r = pg_query_parse("SELECT\v1");
	assert_non_null(r.error); /* libpg_query agrees: a syntax error */
	pg_query_free_parse_result(r);
	check_tokens("SELECT\f1\t\r\n",
		     TOKS({ SQLLEX_IDENT, "SELECT" }, { SQLLEX_SPACE, "\f" }, { SQLLEX_INTEGER, "1" },
			  { SQLLEX_SPACE, "\t\r\n" }));
}

static void test_comments(void **state)
{
	(void)state;
	check_tokens("-- a ) b\n/* x /* ) */ y */-1",
		     TOKS({ SQLLEX_COMMENT, "-- a ) b" }, { SQLLEX_SPACE, "\n" },
			  { SQLLEX_COMMENT, "/* x /* ) */ y */" }, { SQLLEX_SELF, "-" },
			  { SQLLEX_INTEGER, "1" }));
	/* Nested: the first closing star-slash closes only the inner comment. */
	check_tokens("/* a /* b */ c */x",
		     TOKS({ SQLLEX_COMMENT, "/* a /* b */ c */" }, { SQLLEX_IDENT, "x" }));
	check_tokens("/**/x/*/ */",
		     TOKS({ SQLLEX_COMMENT, "/**/" }, { SQLLEX_IDENT, "x" }, { SQLLEX_COMMENT, "/*/ */" }));
	/* A comment starts inside a run of operator characters. */
	check_tokens("a+/*c*/b <--c\n",
		     TOKS({ SQLLEX_IDENT, "a" }, { SQLLEX_SELF, "+" }, { SQLLEX_COMMENT, "/*c*/" },
			  { SQLLEX_IDENT, "b" }, { SQLLEX_SPACE, " " }, { SQLLEX_SELF, "<" },
			  { SQLLEX_COMMENT, "--c" }, { SQLLEX_SPACE, "\n" }));
}

static void test_quoted_identifiers(void **state)
{
	(void)state;
	check_tokens(
		"\"c\"\")\" \"a;b\"",
		TOKS({ SQLLEX_QIDENT, "\"c\"\")\"" }, { SQLLEX_SPACE, " " }, { SQLLEX_QIDENT, "\"a;b\"" }));
	check_tokens("U&\"d!0061t\" UESCAPE '!'",
		     TOKS({ SQLLEX_UIDENT, "U&\"d!0061t\"" }, { SQLLEX_SPACE, " " },
			  { SQLLEX_IDENT, "UESCAPE" }, { SQLLEX_SPACE, " " }, { SQLLEX_STRING, "'!'" }));
	check_tokens("u&\"a\"\"\" U & x",
		     TOKS({ SQLLEX_UIDENT, "u&\"a\"\"\"" }, { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "U" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_OPERATOR, "&" }, { SQLLEX_SPACE, " " },
			  { SQLLEX_IDENT, "x" }));
}

static void test_strings(void **state)
{
	struct sqllex lx;
	struct sqllex_token t;

	(void)state;
	check_tokens("'a)''b' type'x'",
		     TOKS({ SQLLEX_STRING, "'a)''b'" }, { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "type" },
			  { SQLLEX_STRING, "'x'" }));
	/* E'': a backslash escapes the quote; in '' it does not. */
	check_tokens("E'it\\'s'y'\\'",
		     TOKS({ SQLLEX_ESTRING, "E'it\\'s'" }, { SQLLEX_IDENT, "y" }, { SQLLEX_STRING, "'\\'" }));
	check_tokens("B'0101' X'1F' N'n' U&'d\\0061t'",
		     TOKS({ SQLLEX_BSTRING, "B'0101'" }, { SQLLEX_SPACE, " " }, { SQLLEX_XSTRING, "X'1F'" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "N" }, { SQLLEX_STRING, "'n'" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_USTRING, "U&'d\\0061t'" }));
	/* A string continues across white space holding a newline, and only then. */
	check_tokens("'a'\n  'b' 'c'",
		     TOKS({ SQLLEX_STRING, "'a'\n  'b'" }, { SQLLEX_SPACE, " " }, { SQLLEX_STRING, "'c'" }));
	check_tokens("E'a'\n'\\''", TOKS({ SQLLEX_ESTRING, "E'a'\n'\\''" }));
	/* libpg_query's scanner (not the server's) ends the string at a comment. */
	check_tokens("'a' -- c\n'b'",
		     TOKS({ SQLLEX_STRING, "'a'" }, { SQLLEX_SPACE, " " }, { SQLLEX_COMMENT, "-- c" },
			  { SQLLEX_SPACE, "\n" }, { SQLLEX_STRING, "'b'" }));
	/* Escapes whose value the scanner checks. */
	sqllex_init(&lx, "E'\\n' E'\\x41' e'\\u0041'", 24, 0);
	sqllex_next(&lx, &t);
	assert_int_equal(t.kind, SQLLEX_ESTRING);
	assert_false(t.checked_escape);
	for (int i = 0; i < 2; i++) {
		sqllex_next_significant(&lx, &t);
		assert_int_equal(t.kind, SQLLEX_ESTRING);
		assert_true(t.checked_escape);
	}
}

/* standard_conforming_strings off: '...' takes backslash escapes. */
static void test_backslash_strings(void **state)
{
	(void)state;
	check_tokens_opt("'a\\'b' x", SQLLEX_BACKSLASH_STRINGS,
			 TOKS({ SQLLEX_STRING, "'a\\'b'" }, { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "x" }));
	check_tokens_opt("'a\\'b' x", 0, TOKS({ SQLLEX_STRING, "'a\\'" }, { SQLLEX_UNTERMINATED, "b' x" }));
}

static void test_dollar_quotes(void **state)
{
	(void)state;
	check_tokens("$$ ) $$$tag$ $$ ) $tag$",
		     TOKS({ SQLLEX_DOLLAR, "$$ ) $$" }, { SQLLEX_DOLLAR, "$tag$ $$ ) $tag$" }));
	/* The body ends at the first copy of the opening delimiter, even inside another tag. */
	check_tokens("$a$ $ba$a$ x",
		     TOKS({ SQLLEX_DOLLAR, "$a$ $ba$a$" }, { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "x" }));
	check_tokens("$_1ü$'$_1ü$", TOKS({ SQLLEX_DOLLAR, "$_1ü$'$_1ü$" }));
	/* A parameter; a '$' that opens nothing. */
	check_tokens_opt("$1 $ $1a $x", 0,
			 TOKS({ SQLLEX_PARAM, "$1" }, { SQLLEX_SPACE, " " }, { SQLLEX_OTHER, "$" },
			      { SQLLEX_SPACE, " " }, { SQLLEX_ERROR, "$1a" }, { SQLLEX_SPACE, " " },
			      { SQLLEX_OTHER, "$" }, { SQLLEX_IDENT, "x" }));
	check_tokens("SELECT $1, $23",
		     TOKS({ SQLLEX_IDENT, "SELECT" }, { SQLLEX_SPACE, " " }, { SQLLEX_PARAM, "$1" },
			  { SQLLEX_SELF, "," }, { SQLLEX_SPACE, " " }, { SQLLEX_PARAM, "$23" }));
}

static void test_numbers(void **state)
{
	(void)state;
	check_tokens("42 2147483647 2147483648 1.5 .5 5. 1e10 1.e5 1E-3 007",
		     TOKS({ SQLLEX_INTEGER, "42" }, { SQLLEX_SPACE, " " }, { SQLLEX_INTEGER, "2147483647" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_NUMERIC, "2147483648" }, { SQLLEX_SPACE, " " },
			  { SQLLEX_NUMERIC, "1.5" }, { SQLLEX_SPACE, " " }, { SQLLEX_NUMERIC, ".5" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_NUMERIC, "5." }, { SQLLEX_SPACE, " " },
			  { SQLLEX_NUMERIC, "1e10" }, { SQLLEX_SPACE, " " }, { SQLLEX_NUMERIC, "1.e5" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_NUMERIC, "1E-3" }, { SQLLEX_SPACE, " " },
			  { SQLLEX_INTEGER, "007" }));
	check_tokens("1.2.3", TOKS({ SQLLEX_NUMERIC, "1.2" }, { SQLLEX_NUMERIC, ".3" }));
	/* Trailing junk, and PostgreSQL 16's 0x1F and 1_000, are errors in 15. */
	check_tokens_opt("0x1F 1e 1e+ 1_000 1.5a", 0,
			 TOKS({ SQLLEX_ERROR, "0x1F" }, { SQLLEX_SPACE, " " }, { SQLLEX_ERROR, "1e" },
			      { SQLLEX_SPACE, " " }, { SQLLEX_ERROR, "1e+" }, { SQLLEX_SPACE, " " },
			      { SQLLEX_ERROR, "1_000" }, { SQLLEX_SPACE, " " }, { SQLLEX_ERROR, "1.5a" }));
}

static void test_operators(void **state)
{
	(void)state;
	/* Trailing + and - are given back unless the operator holds a non-SQL character. */
	check_tokens("a=-1 b @- c d<=>e f<>g",
		     TOKS({ SQLLEX_IDENT, "a" }, { SQLLEX_SELF, "=" }, { SQLLEX_SELF, "-" },
			  { SQLLEX_INTEGER, "1" }, { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "b" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_OPERATOR, "@-" }, { SQLLEX_SPACE, " " },
			  { SQLLEX_IDENT, "c" }, { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "d" },
			  { SQLLEX_OPERATOR, "<=>" }, { SQLLEX_IDENT, "e" }, { SQLLEX_SPACE, " " },
			  { SQLLEX_IDENT, "f" }, { SQLLEX_OPERATOR, "<>" }, { SQLLEX_IDENT, "g" }));
	check_tokens("a *-+ b ~ c",
		     TOKS({ SQLLEX_IDENT, "a" }, { SQLLEX_SPACE, " " }, { SQLLEX_SELF, "*" },
			  { SQLLEX_SELF, "-" }, { SQLLEX_SELF, "+" }, { SQLLEX_SPACE, " " },
			  { SQLLEX_IDENT, "b" }, { SQLLEX_SPACE, " " }, { SQLLEX_OPERATOR, "~" },
			  { SQLLEX_SPACE, " " }, { SQLLEX_IDENT, "c" }));
}

/* A ';' inside any kind of quote or comment is not one: the text has one ';' token, the last. */
static void test_semicolon_inside_quotes(void **state)
{
	static const char *const quoted[] = {
		"'a;b'",  "E'a\\';b'", "\"a;b\"",   "U&\"a;b\"", "U&'a;b'", "B'0;1'",   "X'3b;'",
		"N'a;b'", "$$a;b$$",   "$t$a;b$t$", "/* ; */",   "-- ;\n",  "'a'\n';'", "/* /* ; */ ; */",
	};

	(void)state;
	for (size_t i = 0; i < N(quoted); i++) {
		char sql[128];
		size_t len, semis = 0, last = 0;
		struct sqllex lx;
		struct sqllex_token t;

		len = (size_t)snprintf(sql, sizeof(sql), "SELECT %s; SELECT 1", quoted[i]);
		sqllex_init(&lx, sql, len, 0);
		while (sqllex_next(&lx, &t) != SQLLEX_END) {
			if (sqllex_is_char(sql, &t, ';')) {
				semis++;
				last = t.start;
			}
		}
		if (semis != 1 || last != strlen("SELECT ") + strlen(quoted[i]))
			fail_msg("%s: %zu ';' tokens, the last at %zu", sql, semis, last);
		check_agrees_with_libpg_query(sql);
	}
}

static void test_unterminated(void **state)
{
	static const char *const open[] = { "'abc",         "\"abc",   "E'abc\\'",    "$x$ abc $y$",
					    "/* a /* b */", "U&'a",    "'a''",        "U&\"a",
					    "B'01",         "'a'\n'b", "/* a */ /* b" };

	(void)state;
	for (size_t i = 0; i < N(open); i++) {
		size_t len = strlen(open[i]);
		struct sqllex lx;
		struct sqllex_token t;

		sqllex_init(&lx, open[i], len, 0);
		while (sqllex_next(&lx, &t) != SQLLEX_UNTERMINATED)
			if (t.kind == SQLLEX_END)
				fail_msg("%s: not unterminated", open[i]);
		assert_int_equal(t.end, len);
		assert_int_equal(sqllex_next(&lx, &t), SQLLEX_END);
	}
	/* A -- comment at the very end is complete; "$x" with no closing $ is a lone '$'. */
	check_tokens("-- x", TOKS({ SQLLEX_COMMENT, "-- x" }));
	check_tokens_opt("$x", 0, TOKS({ SQLLEX_OTHER, "$" }, { SQLLEX_IDENT, "x" }));
}

/* The lexer reads only within len: a buffer with no NUL after it (ASan sees a read past). */
static void test_bounds(void **state)
{
	static const char *const texts[] = { "'ab", "E'a\\", "$tag$ x $ta", "/* x *", "-",  "U&",
					     "e",   "$",     "\"",          "1e",     "1.", "$1",
					     "<",   "'a'\n", "B",           "U&\"" };

	(void)state;
	for (size_t i = 0; i < N(texts); i++) {
		size_t len = strlen(texts[i]);
		char *buf = malloc(len);
		struct sqllex lx;
		struct sqllex_token t;

		assert_non_null(buf);
		memcpy(buf, texts[i], len);
		sqllex_init(&lx, buf, len, 0);
		while (sqllex_next(&lx, &t) != SQLLEX_END)
			assert_true(t.start < t.end && t.end <= len);
		free(buf);
	}
}

static void test_next_many(void **state)
{
	const char *s = "SELECT a, 'b' FROM t -- c\n WHERE x = $1";
	struct sqllex one, many;
	struct sqllex_token t, batch[3];
	size_t n;

	(void)state;
	sqllex_init(&one, s, strlen(s), 0);
	sqllex_init(&many, s, strlen(s), 0);
	while ((n = sqllex_next_many(&many, batch, N(batch))) > 0) {
		for (size_t i = 0; i < n; i++) {
			sqllex_next(&one, &t);
			assert_int_equal(t.kind, batch[i].kind);
			assert_int_equal(t.start, batch[i].start);
			assert_int_equal(t.end, batch[i].end);
		}
	}
	assert_int_equal(sqllex_next(&one, &t), SQLLEX_END);
}

static void test_trim_and_keywords(void **state)
{
	const char *s = "  -- lead\n /* c */ ALTER  TABLE t -- tail\n  ";
	size_t start, end;
	struct sqllex lx;
	struct sqllex_token t;

	(void)state;
	assert_true(sqllex_trim(s, strlen(s), &start, &end));
	assert_int_equal(end - start, strlen("ALTER  TABLE t"));
	assert_memory_equal(s + start, "ALTER  TABLE t", end - start);
	sqllex_init(&lx, s, strlen(s), 0);
	assert_int_equal(sqllex_next_significant(&lx, &t), SQLLEX_IDENT);
	assert_int_equal(t.start, start);
	assert_true(sqllex_is_keyword(s, &t, "alter"));
	assert_false(sqllex_is_keyword(s, &t, "alt"));
	assert_false(sqllex_is_keyword(s, &t, "alterx"));
	t.end--;
	assert_false(sqllex_is_keyword(s, &t, "alter"));
	assert_false(sqllex_trim(" -- only\n/* comments */ \f", strlen(" -- only\n/* comments */ \f"), &start,
				 &end));
	assert_false(sqllex_trim("", 0, &start, &end));
	/* A vertical tab is not trimmed: it is a token (which PostgreSQL 15 rejects). */
	assert_true(sqllex_trim(" \v ", 3, &start, &end));
	assert_int_equal(start, 1);
	assert_int_equal(end, 2);
	/* A quoted "alter" is no keyword. */
	sqllex_init(&lx, "\"alter\"", 7, 0);
	sqllex_next(&lx, &t);
	assert_false(sqllex_is_keyword("\"alter\"", &t, "alter"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words_and_punctuation),
		cmocka_unit_test(test_vertical_tab),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_quoted_identifiers),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_backslash_strings),
		cmocka_unit_test(test_dollar_quotes),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_operators),
		cmocka_unit_test(test_semicolon_inside_quotes),
		cmocka_unit_test(test_unterminated),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_next_many),
		cmocka_unit_test(test_trim_and_keywords),
	};

	return cmocka_run_group_tests_name("common/sqllex", tests, NULL, NULL);
}
