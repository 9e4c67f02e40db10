/*
 * Unit tests for the flags pgvalve audit adds to coordinator/options.c:
 * --schema and --table (repeatable), --orphans, --suggest, --fail-on, and
 * --format dot|mermaid|sql, which only a command that allows them
 * (OPT_FORMAT_AUDIT) accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "options.h"

#define AUDIT_FLAGS                                                                                    \
	(OPT_DB | OPT_FORMAT | OPT_FORMAT_AUDIT | OPT_SCHEMA | OPT_TABLE | OPT_ORPHANS | OPT_SUGGEST | \
	 OPT_FAIL_ON)

/* Parses argv (NULL-terminated, after the command word) with 'allowed'; the error in 'err'. */
static bool parse(unsigned allowed, struct options *o, char *err, size_t errlen, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = "audit";
	va_start(ap, errlen);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return options_parse(argc, argv, allowed, o, err, errlen);
}

static void test_audit_flags(void **state)
{
	struct options o;
	char err[256];

	(void)state;
	assert_true(parse(AUDIT_FLAGS, &o, err, sizeof(err), "--schema", "public", "--schema", "Odd.Schema",
			  "--table", "orders", "--table", "\"Odd.Schema\".\"T\"", "--orphans", "--suggest",
			  "--fail-on", "warning", "--format", "mermaid", NULL));
	assert_int_equal(o.n_schemas, 2);
	assert_string_equal(o.schemas[1], "Odd.Schema");
	assert_int_equal(o.n_tables, 2);
	assert_string_equal(o.tables[1], "\"Odd.Schema\".\"T\"");
	assert_true(o.orphans && o.suggest);
	assert_int_equal(o.fail_on, FAIL_ON_WARNING);
	assert_int_equal(o.format, FORMAT_MERMAID);
	options_free(&o);

	assert_true(parse(AUDIT_FLAGS, &o, err, sizeof(err), "--format", "dot", "--fail-on", "error", NULL));
	assert_int_equal(o.format, FORMAT_DOT);
	assert_int_equal(o.fail_on, FAIL_ON_ERROR);
	assert_int_equal(o.n_schemas, 0);
	assert_false(o.orphans || o.suggest);
	options_free(&o);

	assert_true(parse(AUDIT_FLAGS, &o, err, sizeof(err), "--format", "sql", NULL));
	assert_int_equal(o.format, FORMAT_SQL);
	options_free(&o);
}

static void test_audit_flag_errors(void **state)
{
	struct options o;
	char err[256];

	(void)state;
	assert_false(parse(AUDIT_FLAGS, &o, err, sizeof(err), "--fail-on", "info", NULL));
	assert_string_equal(err, "--fail-on: expected error or warning, not \"info\"");
	options_free(&o);
	assert_false(parse(AUDIT_FLAGS, &o, err, sizeof(err), "--format", "svg", NULL));
	assert_string_equal(err, "--format: expected text, json, dot, mermaid or sql, not \"svg\"");
	options_free(&o);
	/* Other commands keep text and json only, and do not know the audit's flags. */
	assert_false(parse(OPT_DB | OPT_FORMAT, &o, err, sizeof(err), "--format", "dot", NULL));
	assert_string_equal(err, "--format: expected text or json, not \"dot\"");
	options_free(&o);
	assert_false(parse(OPT_DB | OPT_FORMAT, &o, err, sizeof(err), "--suggest", NULL));
	options_free(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_audit_flags),
		cmocka_unit_test(test_audit_flag_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
