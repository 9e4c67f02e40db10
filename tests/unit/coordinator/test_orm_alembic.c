/*
 * Unit tests for coordinator/orm_alembic.c: the alembic_version statements
 * `alembic upgrade --sql` writes are taken out of the migration, with the
 * revision they end at and the one they start from; what is not an upgrade
 * along one line of revisions is refused; Prisma's checksum is the plan's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "input.h"
#include "orm.h"

/* Loads 'sql' and takes the ORM's statements out for 'tool' (revision 'given' or ""). */
static bool take(enum orm_tool tool, const char *given, const char *sql, struct plan *p, struct orm_record *r,
		 struct input_error *err)
{
	memset(p, 0, sizeof(*p));
	memset(r, 0, sizeof(*r));
	memset(err, 0, sizeof(*err));
	r->tool = tool;
	snprintf(r->revision, sizeof(r->revision), "%s", given);
	if (!input_load_text(p, "upgrade.sql", sql, strlen(sql), err))
		fail_msg("input: %s", err->msg);
	return orm_take_statements(r, p, err);
}

static void test_upgrade_from_a_revision(void **state)
{
	static const char sql[] =
		"BEGIN;\n\n-- Running upgrade a1 -> b2\n\nALTER TABLE book ADD COLUMN author_id INTEGER;\n\n"
		"UPDATE alembic_version SET version_num='b2' WHERE alembic_version.version_num = 'a1';\n\n"
		"-- Running upgrade b2 -> c3\n\nCREATE INDEX ix ON book (author_id);\n\n"
		"UPDATE alembic_version SET version_num='c3' WHERE alembic_version.version_num = "
		"'b2';\n\nCOMMIT;\n";
	struct orm_record r;
	struct input_error err;
	struct plan p;

	(void)state;
	if (!take(ORM_ALEMBIC, "", sql, &p, &r, &err))
		fail_msg("%s", err.msg);
	assert_string_equal(r.revision, "c3");
	assert_string_equal(r.from_revision, "a1");
	assert_true(r.from_known);
	assert_int_equal(p.n_inputs, 2);
	assert_non_null(strstr(p.inputs[0].text, "ADD COLUMN"));
	assert_non_null(strstr(p.inputs[1].text, "CREATE INDEX"));
	plan_free(&p);

	/* --orm-name agreeing is fine; contradicting is an error. */
	if (!take(ORM_ALEMBIC, "c3", sql, &p, &r, &err))
		fail_msg("%s", err.msg);
	plan_free(&p);
	assert_false(take(ORM_ALEMBIC, "zz", sql, &p, &r, &err));
	assert_non_null(strstr(err.msg, "upgrade to revision c3"));
	plan_free(&p);
}

static void test_from_the_base(void **state)
{
	static const char sql[] = "CREATE TABLE alembic_version (\n    version_num VARCHAR(32) NOT NULL, \n"
				  "    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n);\n"
				  "CREATE TABLE author (id SERIAL NOT NULL, PRIMARY KEY (id));\n"
				  "INSERT INTO alembic_version (version_num) VALUES ('a1') RETURNING "
				  "alembic_version.version_num;\n";
	struct orm_record r;
	struct input_error err;
	struct plan p;

	(void)state;
	if (!take(ORM_ALEMBIC, "", sql, &p, &r, &err))
		fail_msg("%s", err.msg);
	assert_string_equal(r.revision, "a1");
	assert_string_equal(r.from_revision, "");
	assert_true(r.from_known);
	assert_int_equal(p.n_inputs, 1);
	assert_non_null(strstr(p.inputs[0].text, "CREATE TABLE author"));
	plan_free(&p);
}

static void test_refused(void **state)
{
	struct orm_record r;
	struct input_error err;
	struct plan p;

	(void)state;
	/* a downgrade */
	assert_false(take(ORM_ALEMBIC, "",
			  "ALTER TABLE t ADD COLUMN c int;\nDELETE FROM alembic_version WHERE "
			  "alembic_version.version_num = 'a1';\n",
			  &p, &r, &err));
	assert_non_null(strstr(err.msg, "a downgrade or a merge"));
	assert_int_equal(err.line, 2);
	plan_free(&p);
	/* steps that do not follow each other */
	assert_false(take(
		ORM_ALEMBIC, "",
		"UPDATE alembic_version SET version_num='b2' WHERE alembic_version.version_num = 'a1';\n"
		"UPDATE alembic_version SET version_num='d4' WHERE alembic_version.version_num = 'c3';\n",
		&p, &r, &err));
	assert_non_null(strstr(err.msg, "ended at revision b2"));
	plan_free(&p);
	/* no revision anywhere */
	assert_false(take(ORM_ALEMBIC, "", "ALTER TABLE t ADD COLUMN c int;\n", &p, &r, &err));
	assert_non_null(strstr(err.msg, "no revision to record"));
	plan_free(&p);
	/* a revision longer than alembic_version's VARCHAR(32) */
	assert_false(take(
		ORM_ALEMBIC, "",
		"INSERT INTO alembic_version (version_num) VALUES ('0123456789abcdef0123456789abcdef0');\n",
		&p, &r, &err));
	assert_non_null(strstr(err.msg, "longer than 32 bytes"));
	plan_free(&p);
	/* a table merely named like it elsewhere is left alone */
	if (!take(ORM_ALEMBIC, "r1", "ALTER TABLE my_alembic_version_log ADD COLUMN c int;\n", &p, &r, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(p.n_inputs, 1);
	plan_free(&p);
}

static void test_prisma_checksum(void **state)
{
	struct orm_record r;
	struct input_error err;
	struct plan p;

	(void)state;
	if (!take(ORM_PRISMA, "", "SELECT 1;\n", &p, &r, &err))
		fail_msg("%s", err.msg);
	/* sha256("SELECT 1;\n") */
	assert_string_equal(r.checksum, p.checksum);
	assert_int_equal(strlen(r.checksum), 64);
	plan_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upgrade_from_a_revision),
		cmocka_unit_test(test_from_the_base),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_prisma_checksum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
