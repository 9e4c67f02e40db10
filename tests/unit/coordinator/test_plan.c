/*
 * Unit tests for coordinator/plan.c's names: every lock and hold reads back
 * from the name the journal stores, the names people and the JSON plan see
 * stay as they were, unknown names (and the numbers an earlier journal held)
 * are refused, and each lock waits for the pg_locks modes PostgreSQL's
 * conflict table gives it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "plan.h"

static void test_locks_round_trip_through_the_journal_name(void **state)
{
	(void)state;
	for (int i = LOCK_NONE; i <= LOCK_ACCESS_EXCLUSIVE; i++) {
		enum plan_lock back = LOCK_NONE;

		assert_true(plan_lock_parse(plan_lock_key((enum plan_lock)i), &back));
		assert_int_equal(back, i);
	}
	assert_string_equal(plan_lock_key(LOCK_SHARE_ROW_EXCLUSIVE), "share_row_exclusive");
	assert_string_equal(plan_lock_key(LOCK_ACCESS_EXCLUSIVE), "access_exclusive");
}

static void test_holds_round_trip(void **state)
{
	(void)state;
	for (int i = HOLD_NONE_NEEDED; i <= HOLD_ALL_NEEDED; i++) {
		enum plan_hold back = HOLD_NONE_NEEDED;

		assert_true(plan_hold_parse(plan_hold_name((enum plan_hold)i), &back));
		assert_int_equal(back, i);
	}
	assert_string_equal(plan_hold_name(HOLD_WRITES_NEEDED), "writes");
	assert_string_equal(plan_hold_name(HOLD_ALL_NEEDED), "all");
}

static void test_names_people_see_are_unchanged(void **state)
{
	(void)state;
	assert_string_equal(plan_lock_name(LOCK_SHARE_ROW_EXCLUSIVE), "SHARE ROW EXCLUSIVE");
	assert_string_equal(plan_lock_name(LOCK_ACCESS_EXCLUSIVE), "ACCESS EXCLUSIVE");
	assert_string_equal(plan_lock_name(LOCK_NONE), "none");
}

static void test_unknown_names_are_refused(void **state)
{
	enum plan_lock lock = LOCK_ACCESS_EXCLUSIVE;
	enum plan_hold hold = HOLD_ALL_NEEDED;

	(void)state;
	assert_false(plan_lock_parse("2", &lock));
	assert_false(plan_lock_parse("SHARE ROW EXCLUSIVE", &lock));
	assert_false(plan_lock_parse("", &lock));
	assert_false(plan_hold_parse("1", &hold));
	assert_false(plan_hold_parse("WRITES", &hold));
	assert_int_equal(lock, LOCK_ACCESS_EXCLUSIVE);
	assert_int_equal(hold, HOLD_ALL_NEEDED);
}

/* Whether 'mode' is one of the comma-separated 'list'. */
static bool listed(const char *list, const char *mode)
{
	size_t n = strlen(mode);

	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && strncmp(p, mode, n) == 0)
			return true;
		p += len + (end != NULL);
	}
	return false;
}

static void test_conflicts_follow_postgresql(void **state)
{
	static const char *const modes[] = { "AccessShareLock",  "RowShareLock",
					     "RowExclusiveLock", "ShareUpdateExclusiveLock",
					     "ShareLock",        "ShareRowExclusiveLock",
					     "ExclusiveLock",    "AccessExclusiveLock" };
	/* https://www.postgresql.org/docs/15/explicit-locking.html#TABLE-LOCK-COMPATIBILITY */
	static const bool want[][8] = {
		[LOCK_NONE] = { 0 },
		[LOCK_SHARE_UPDATE_EXCLUSIVE] = { 0, 0, 0, 1, 1, 1, 1, 1 },
		[LOCK_SHARE_ROW_EXCLUSIVE] = { 0, 0, 1, 1, 1, 1, 1, 1 },
		[LOCK_ACCESS_EXCLUSIVE] = { 1, 1, 1, 1, 1, 1, 1, 1 },
	};

	(void)state;
	for (int l = LOCK_NONE; l <= LOCK_ACCESS_EXCLUSIVE; l++)
		for (int m = 0; m < 8; m++)
			assert_int_equal(listed(plan_lock_conflicts((enum plan_lock)l), modes[m]),
					 want[l][m]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locks_round_trip_through_the_journal_name),
		cmocka_unit_test(test_holds_round_trip),
		cmocka_unit_test(test_names_people_see_are_unchanged),
		cmocka_unit_test(test_unknown_names_are_refused),
		cmocka_unit_test(test_conflicts_follow_postgresql),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
