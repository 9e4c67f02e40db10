/*
 * Unit tests for common/auth_sql.c: the lookup script holds what makes a
 * SECURITY DEFINER function safe, quotes the lookup role's name as an
 * identifier and as a literal, and refuses names it cannot write safely.
 * That PostgreSQL runs it and it does its job is tests/integration/test_scram_core.py's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgvalve/auth_sql.h"
#include "unit_assert.h"

/* The script for 'role', malloc'd, or NULL if auth_sql_write() refused. */
static char *script(const char *role)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool ok;

	assert_non_null(f);
	ok = auth_sql_write(f, role);
	fclose(f);
	if (!ok) {
		assert_int_equal(len, 0); /* nothing written */
		free(buf);
		return NULL;
	}
	return buf;
}

static void test_default_role(void **state)
{
	char *sql = script(AUTH_SQL_DEFAULT_ROLE);

	(void)state;
	assert_non_null(sql);
	assert_contains(sql, "CREATE OR REPLACE FUNCTION pgvalve.auth_lookup(role_name text)");
	assert_contains(sql, "SECURITY DEFINER");
	assert_contains(sql, "SET search_path = pg_catalog, pg_temp");
	assert_contains(sql, "FROM pg_catalog.pg_authid");
	assert_contains(sql, "a.rolvaliduntil IS NULL OR a.rolvaliduntil >= pg_catalog.now()");
	assert_contains(sql, "AND a.rolcanlogin");
	assert_contains(sql, "REVOKE ALL ON FUNCTION pgvalve.auth_lookup(text) FROM PUBLIC;");
	assert_contains(sql, "GRANT EXECUTE ON FUNCTION pgvalve.auth_lookup(text) TO \"pgvalve_auth\";");
	assert_contains(sql, "GRANT USAGE ON SCHEMA pgvalve TO \"pgvalve_auth\";");
	assert_contains(sql, "WHERE rolname = 'pgvalve_auth'");
	assert_contains(sql, "BEGIN;");
	assert_contains(sql, "COMMIT;");
	free(sql);
}

static void test_role_quoted(void **state)
{
	char *sql = script("o'dd \"role\"");

	(void)state;
	assert_non_null(sql);
	assert_contains(sql, "CREATE ROLE \"o'dd \"\"role\"\"\" LOGIN;");
	assert_contains(sql, "WHERE rolname = 'o''dd \"role\"'");
	assert_contains(sql, "TO \"o'dd \"\"role\"\"\";");
	free(sql);
}

static void test_unsafe_roles_refused(void **state)
{
	(void)state;
	assert_null(script(""));
	assert_null(script("a\nDROP TABLE x; --"));
	assert_null(script("tab\there"));
	assert_null(script("x$pgvalve$y"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_role),
		cmocka_unit_test(test_role_quoted),
		cmocka_unit_test(test_unsafe_roles_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
