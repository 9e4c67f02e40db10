/*
 * Unit tests for coordinator/orm_names.c: the names an ORM's record holds,
 * from the file's path and --orm-name, Flyway's checksum (the values were
 * computed with Python's zlib.crc32 over the lines, as Flyway reads them),
 * and the usage errors when a name cannot be derived.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "orm.h"

static char dir[512];

static int setup(void **state)
{
	(void)state;
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/pgvalve_orm_XXXXXX", tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[600];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes dir/name holding text[0..len); returns its path (static). */
static char *write_file(const char *name, const char *text, size_t len)
{
	static char path[sizeof(dir) + 256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
	return path;
}

/* orm_derive for --orm tool [--orm-name name] on 'file'; true when derived. */
static bool derive(const char *tool, const char *name, char *file, struct orm_record *r, char *err,
		   size_t errlen)
{
	struct options o = { 0 };
	char *args[1] = { file };

	o.orm = (char *)tool;
	o.orm_name = (char *)name;
	o.args = args;
	o.n_args = 1;
	return orm_derive(r, &o, err, errlen);
}

static void refused(const char *tool, const char *name, char *file, const char *part)
{
	struct orm_record r;
	char err[1024];

	if (derive(tool, name, file, &r, err, sizeof(err)))
		fail_msg("derived --orm %s --orm-name %s for %s", tool, name ? name : "(none)", file);
	if (!strstr(err, part))
		fail_msg("\"%s\" does not say \"%s\"", err, part);
}

static void test_flyway(void **state)
{
	static const char bom_crlf[] = "\xef\xbb\xbf"
				       "SELECT 1;\r\n\r\n";
	static const char mixed[] = "CREATE INDEX a ON b (c);\n-- caf\xc3\xa9\rx\n";
	struct orm_record r;
	char err[1024];

	(void)state;
	if (!derive("flyway", NULL, write_file("V2_1__add_order_fk.sql", "SELECT 1;\n", 10), &r, err,
		    sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(r.version, "2.1");
	assert_string_equal(r.description, "add order fk");
	assert_string_equal(r.script, "V2_1__add_order_fk.sql");
	assert_int_equal(r.flyway_checksum, 78787420);
	/* A byte-order mark and line terminators do not count. */
	if (!derive("flyway", NULL, write_file("V3__x.sql", bom_crlf, sizeof(bom_crlf) - 1), &r, err,
		    sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(r.flyway_checksum, 78787420);
	if (!derive("flyway", NULL, write_file("V1.2.3__m.sql", mixed, sizeof(mixed) - 1), &r, err,
		    sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(r.version, "1.2.3");
	assert_int_equal(r.flyway_checksum, 1450881470);
	/* --orm-name names the script when the file is named otherwise. */
	if (!derive("flyway", "V7__renamed.sql", write_file("x.sql", "SELECT 1;\n", 10), &r, err,
		    sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(r.version, "7");
	assert_int_equal(r.flyway_checksum, 78787420);

	refused("flyway", NULL, write_file("R__repeatable.sql", "SELECT 1;\n", 10), "not a versioned Flyway");
	refused("flyway", NULL, write_file("V1__.sql", "SELECT 1;\n", 10), "not a versioned Flyway");
	refused("flyway", NULL, write_file("V1..2__x.sql", "SELECT 1;\n", 10), "not a versioned Flyway");
	refused("flyway", NULL, write_file("Vx__y.sql", "SELECT 1;\n", 10), "not a versioned Flyway");
	refused("flyway", NULL, write_file("V4__bad.sql", "SELECT '\xff';\n", 12), "not valid UTF-8");
}

static void test_golang_migrate(void **state)
{
	struct orm_record r;
	char err[1024];

	(void)state;
	if (!derive("golang-migrate", NULL, write_file("20240501120000_fk.up.sql", "SELECT 1;", 9), &r, err,
		    sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(r.version, "20240501120000");
	if (!derive("golang-migrate", "42", write_file("whatever.sql", "SELECT 1;", 9), &r, err, sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(r.version, "42");
	refused("golang-migrate", NULL, write_file("1_x.down.sql", "SELECT 1;", 9), "is a down migration");
	refused("golang-migrate", NULL, write_file("x_1.up.sql", "SELECT 1;", 9), "is not named");
	refused("golang-migrate", "99999999999999999999", write_file("y.sql", "SELECT 1;", 9),
		"is not named");
}

static void test_prisma_django_alembic(void **state)
{
	struct orm_record r;
	char err[1024], sub[sizeof(dir) + 64];

	(void)state;
	snprintf(sub, sizeof(sub), "%s/20240501120000_order_fk", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	if (!derive("prisma", NULL, write_file("20240501120000_order_fk/migration.sql", "SELECT 1;", 9), &r,
		    err, sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(r.name, "20240501120000_order_fk");
	refused("prisma", NULL, write_file("other.sql", "SELECT 1;", 9), "<name>/migration.sql");

	if (!derive("django", "shop.0002_order_customer", write_file("a.sql", "SELECT 1;", 9), &r, err,
		    sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(r.app, "shop");
	assert_string_equal(r.migration, "0002_order_customer");
	refused("django", NULL, write_file("a.sql", "SELECT 1;", 9), "needs --orm-name APP.MIGRATION");
	refused("django", ".x", write_file("a.sql", "SELECT 1;", 9), "is not of that form");
	refused("django", "x.", write_file("a.sql", "SELECT 1;", 9), "is not of that form");

	if (!derive("alembic", "0f9e8d7c6b5a", write_file("a.sql", "SELECT 1;", 9), &r, err, sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(r.revision, "0f9e8d7c6b5a");
	refused("hibernate", NULL, write_file("a.sql", "SELECT 1;", 9), "--orm: expected prisma");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flyway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_golang_migrate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prisma_django_alembic, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
