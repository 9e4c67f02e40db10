/*
 * Unit tests for coordinator/names.c: names as PostgreSQL 15 chooses them
 * (makeObjectName's shortening of the longer part first, never the label,
 * never inside a UTF-8 character; the column-name addition; the numbered
 * label when the plan already uses a name, constraints and indexes told
 * apart). The expected names are what PostgreSQL gives for the same DDL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "names.h"

static void test_make_object(void **state)
{
	char out[PLAN_NAME_MAX];
	char long1[80], long2[80];

	(void)state;
	names_make_object(out, "orders", "customer_id", "fkey");
	assert_string_equal(out, "orders_customer_id_fkey");
	names_make_object(out, "orders", NULL, "pkey");
	assert_string_equal(out, "orders_pkey");
	names_make_object(out, "orders_pkey", NULL, "new");
	assert_string_equal(out, "orders_pkey_new");
	/* 63 bytes at most: the longer part gives first, the label never. */
	memset(long1, 'a', 70);
	long1[70] = '\0';
	memset(long2, 'b', 10);
	long2[10] = '\0';
	names_make_object(out, long1, long2, "check");
	assert_int_equal(strlen(out), PLAN_NAME_MAX - 1);
	assert_string_equal(out + strlen(out) - strlen("_bbbbbbbbbb_check"), "_bbbbbbbbbb_check");
	memset(long2, 'b', 70);
	long2[70] = '\0';
	names_make_object(out, long1, long2, "fkey");
	/* 63 - 2 underscores - 4 = 57 bytes: the longer gives a byte at a time, name2 on a tie. */
	assert_int_equal(strlen(out), PLAN_NAME_MAX - 1);
	assert_int_equal(strspn(out, "a"), 29);
	assert_int_equal(strspn(out + 30, "b"), 28);
}

/* A cut never splits a UTF-8 character: the name is shorter instead. */
static void test_make_object_utf8(void **state)
{
	char out[PLAN_NAME_MAX], name[128] = "";

	(void)state;
	for (int i = 0; i < 40; i++)
		strcat(name, "é"); /* 2 bytes each */
	names_make_object(out, name, NULL, "check");
	/* 63 - 6 = 57 bytes for the name: 28 whole characters (56 bytes). */
	assert_int_equal(strlen(out), 56 + strlen("_check"));
	assert_memory_equal(out + 56, "_check", 6);
}

static void test_addition(void **state)
{
	char cols[3][PLAN_NAME_MAX] = { "a", "b_c", "d" }, out[2 * PLAN_NAME_MAX];
	char many[40][PLAN_NAME_MAX];

	(void)state;
	names_addition(cols, 3, out);
	assert_string_equal(out, "a_b_c_d");
	names_addition(cols, 0, out);
	assert_string_equal(out, "");
	/* Stops once NAMEDATALEN bytes are reached (makeObjectName cuts it later). */
	for (int i = 0; i < 40; i++)
		snprintf(many[i], PLAN_NAME_MAX, "col%02d", i);
	names_addition(many, 40, out);
	assert_true(strlen(out) >= PLAN_NAME_MAX && strlen(out) < 2 * PLAN_NAME_MAX);
}

static void test_addition_list(void **state)
{
	const char *cols[3] = { "a", "b_c", "d" };
	char array[3][PLAN_NAME_MAX] = { "a", "b_c", "d" }, out[2 * PLAN_NAME_MAX], want[2 * PLAN_NAME_MAX];

	(void)state;
	names_addition_list(cols, 3, out);
	assert_string_equal(out, "a_b_c_d");
	names_addition(array, 2, want);
	names_addition_list(cols, 2, out);
	assert_string_equal(out, want);
}

/* Taken: t_a_fkey and t_a_fkey1, as a caller outside any plan might know them. */
static bool two_taken(const char *name, void *arg)
{
	(*(int *)arg)++;
	return strcmp(name, "t_a_fkey") == 0 || strcmp(name, "t_a_fkey1") == 0;
}

static void test_choose_unused(void **state)
{
	char out[PLAN_NAME_MAX];
	int asked = 0;

	(void)state;
	names_choose_unused("t", "a", "fkey", NULL, NULL, out);
	assert_string_equal(out, "t_a_fkey");
	names_choose_unused("t", "a", "fkey", two_taken, &asked, out);
	assert_string_equal(out, "t_a_fkey2");
	assert_int_equal(asked, 3);
	names_choose_unused("t", NULL, "pkey", two_taken, &asked, out);
	assert_string_equal(out, "t_pkey");
}

static void test_choose(void **state)
{
	struct plan_constraint cons[2] = { { .table = { "", "t" }, .name = "t_a_fkey" },
					   { .table = { "s", "t" }, .name = "t_a_fkey1" } };
	struct plan_step steps[1] = { { .index = { "", "t_a_key" } } };
	struct plan p = { .constraints = cons, .n_constraints = 1, .steps = steps, .n_steps = 1 };
	struct qname t = { "", "t" }, st = { "s", "t" };
	char out[PLAN_NAME_MAX];

	(void)state;
	names_choose(&p, &t, "a", "fkey", out);
	assert_string_equal(out, "t_a_fkey1");
	/* Another schema's names are no clash. */
	names_choose(&p, &st, "a", "fkey", out);
	assert_string_equal(out, "t_a_fkey");
	p.n_constraints = 2;
	names_choose(&p, &st, "a", "fkey", out);
	assert_string_equal(out, "t_a_fkey");
	/* An index name clashes for an index ("key"), not for a constraint name ("check"). */
	names_choose(&p, &t, "a", "key", out);
	assert_string_equal(out, "t_a_key1");
	snprintf(steps[0].index.name, PLAN_NAME_MAX, "t_a_check");
	names_choose(&p, &t, "a", "check", out);
	assert_string_equal(out, "t_a_check");
	names_choose(&p, &t, NULL, "pkey", out);
	assert_string_equal(out, "t_pkey");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_make_object),   cmocka_unit_test(test_make_object_utf8),
		cmocka_unit_test(test_addition),      cmocka_unit_test(test_choose),
		cmocka_unit_test(test_addition_list), cmocka_unit_test(test_choose_unused),
	};

	return cmocka_run_group_tests_name("coordinator/names", tests, NULL, NULL);
}
