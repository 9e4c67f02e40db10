/*
 * Unit tests for common/verifier.c: what kind of verifier a rolpassword is,
 * and PgBouncer's auth_file format (quotes doubled inside fields, comments,
 * blanks, extra fields ignored, a broken or ambiguous file refused whole with
 * the line that is wrong).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgvalve/verifier.h"
#include "unit_assert.h"

#define SCRAM_V                                                                                     \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define MD5_V "md54a0a68b43b6cd5cf266fa02f196e2371"

static void test_classify(void **state)
{
	(void)state;
	assert_int_equal(verifier_classify(NULL), VERIFIER_NONE);
	assert_int_equal(verifier_classify(""), VERIFIER_NONE);
	assert_int_equal(verifier_classify(SCRAM_V), VERIFIER_SCRAM);
	assert_int_equal(verifier_classify(MD5_V), VERIFIER_MD5);
	assert_int_equal(verifier_classify("SCRAM-SHA-256$4096:bad"), VERIFIER_INVALID);
	assert_int_equal(verifier_classify("md5zzzz68b43b6cd5cf266fa02f196e2371"), VERIFIER_INVALID);
	assert_int_equal(verifier_classify("hunter2"), VERIFIER_PLAIN);
	assert_int_equal(verifier_classify("md5short"), VERIFIER_PLAIN);
	assert_string_equal(verifier_kind_name(VERIFIER_SCRAM), "SCRAM-SHA-256");
	assert_string_equal(verifier_kind_name(VERIFIER_PLAIN), "plain text");
}

static struct verifier_list *parse(const char *text, char *err, size_t errlen)
{
	return verifier_list_parse(text, strlen(text), err, errlen);
}

static void test_parse_file(void **state)
{
	static const char text[] = "; PgBouncer's auth_file\n"
				   "# another comment\n"
				   "\n"
				   "\"alice\" \"" SCRAM_V "\"\n"
				   "  \"bob\"\t\"" MD5_V "\" \"extra field\" ignored\r\n"
				   "\"say \"\"hi\"\"\" \"pa\"\"ss\"\n"
				   "\"nopass\" \"\"\n"
				   "\"last\" \"x\"";
	char err[256] = "";
	struct verifier_list *l = parse(text, err, sizeof(err));

	(void)state;
	if (!l)
		fail_msg("%s", err);
	assert_int_equal(verifier_list_count(l), 5);
	assert_string_equal(verifier_list_peek(l, "alice"), SCRAM_V);
	assert_string_equal(verifier_list_peek(l, "bob"), MD5_V);
	assert_string_equal(verifier_list_peek(l, "say \"hi\""), "pa\"ss");
	assert_string_equal(verifier_list_peek(l, "nopass"), "");
	assert_string_equal(verifier_list_peek(l, "last"), "x");
	assert_null(verifier_list_peek(l, "Alice")); /* role names are exact */
	assert_null(verifier_list_peek(l, "carol"));
	verifier_list_free(l);
	verifier_list_free(NULL);
}

static void test_empty_file(void **state)
{
	char err[256];
	struct verifier_list *l = parse("", err, sizeof(err));

	(void)state;
	assert_non_null(l);
	assert_int_equal(verifier_list_count(l), 0);
	assert_null(verifier_list_peek(l, "alice"));
	verifier_list_free(l);
}

static void parse_fails(const char *text, size_t len, const char *needle)
{
	char err[256] = "";
	struct verifier_list *l = verifier_list_parse(text, len, err, sizeof(err));

	if (l) {
		verifier_list_free(l);
		fail_msg("accepted \"%s\"", text);
	}
	assert_contains(err, needle);
}

static void test_broken_files(void **state)
{
	char big[VERIFIER_NAME_MAX + 16];

	(void)state;
#define FAILS(text, needle) parse_fails(text, sizeof(text) - 1, needle)
	FAILS("alice \"x\"\n", "line 1: expected a double-quoted field");
	FAILS("\"alice\"\n", "line 1: expected blanks");
	FAILS("\"alice\"\"x\"\n", "line 1: expected blanks");
	FAILS("\"alice\" x\n", "line 1: expected a double-quoted field");
	FAILS("; ok\n\"alice\" \"x\n\"\n", "line 2: unterminated");
	FAILS("\"alice\" \"x", "line 1: unterminated");
	FAILS("\"\" \"x\"\n", "line 1: empty name");
	FAILS("\"a\" \"1\"\n\"b\" \"2\"\n\"a\" \"3\"\n", "line 3: \"a\" given twice (first on line 1)");
	FAILS("\"a\" \"1\"\0\"b\" \"2\"\n", "NUL");
#undef FAILS
	memset(big, 'n', sizeof(big));
	big[0] = '"';
	snprintf(big + VERIFIER_NAME_MAX + 2, 14, "\" \"x\"\n");
	parse_fails(big, strlen(big), "field too long");
}

static void test_load(void **state)
{
	char path[] = "/tmp/pgvalve_userlist_XXXXXX";
	char err[512];
	int fd = mkstemp(path);
	FILE *f;
	struct verifier_list *l;

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("\"alice\" \"" SCRAM_V "\"\n\"bob\" x\n", f);
	fclose(f);
	l = verifier_list_load(path, err, sizeof(err));
	assert_null(l);
	assert_contains(err, path);
	assert_contains(err, "line 2");
	f = fopen(path, "w");
	fputs("\"alice\" \"" SCRAM_V "\"\n", f);
	fclose(f);
	l = verifier_list_load(path, err, sizeof(err));
	assert_non_null(l);
	assert_int_equal(verifier_classify(verifier_list_peek(l, "alice")), VERIFIER_SCRAM);
	verifier_list_free(l);
	unlink(path);
	assert_null(verifier_list_load(path, err, sizeof(err)));
	assert_contains(err, "cannot open");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),   cmocka_unit_test(test_parse_file),
		cmocka_unit_test(test_empty_file), cmocka_unit_test(test_broken_files),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
