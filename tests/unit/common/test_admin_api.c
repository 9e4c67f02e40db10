/*
 * Unit tests for common/admin_api.c: the hold id rule (a path segment that
 * needs no encoding, the ids both programs make up pass) and the name lists
 * the proxy's enums index.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pgvalve/admin_api.h"

static void test_ids_accepted(void **state)
{
	static const char *const ok[] = {
		"h-0123456789abcdef", /* the proxy's, when the body gives none */
		"pgvalve-switchover", /* the proxy's switchover hold */
		"dup",
		"Q1",
		"a.b",
		"a:b",
		"a_b",
		"a-b",
		"..a",
		"...",
		"-",
		"0",
	};
	char id[ADMIN_HOLD_ID_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_true(admin_hold_id_valid(ok[i]));
	memset(id, 'x', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	assert_int_equal(strlen(id), ADMIN_HOLD_ID_MAX - 1);
	assert_true(admin_hold_id_valid(id));
}

/* The coordinator's ids, as coordinator/cutover.c spells them, at their longest. */
static void test_coordinator_ids_accepted(void **state)
{
	static const char *const whats[] = { "cutover", "finalize", "rollback" };
	static const char *const modes[] = { "all", "writes" };
	char id[128];

	(void)state;
	for (int w = 0; w < 3; w++) {
		for (int m = 0; m < 2; m++) {
			snprintf(id, sizeof(id), "pgvalve-%lld-%s-%d-%s", (long long)INT64_MAX, whats[w],
				 INT_MAX, modes[m]);
			assert_true(strlen(id) < ADMIN_HOLD_ID_MAX);
			assert_true(admin_hold_id_valid(id));
			snprintf(id, sizeof(id), "pgvalve-%lld-%s-%d-%s", 1LL, whats[w], 1, modes[m]);
			assert_true(admin_hold_id_valid(id));
		}
	}
}

static void test_ids_refused(void **state)
{
	static const char *const bad[] = {
		"",    "a b", "x?y", "50%", "50%20", "a/b",   "/",    "a#b",         "a&b", "a+b",
		"a=b", ".",   "..",  "a\n", "a\t",   "\"a\"", "a\\b", "caf\xc3\xa9", "a~b", "[a]",
	};
	char id[ADMIN_HOLD_ID_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (admin_hold_id_valid(bad[i]))
			fail_msg("id \"%s\" accepted", bad[i]);
	}
	memset(id, 'x', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	assert_int_equal(strlen(id), ADMIN_HOLD_ID_MAX);
	assert_false(admin_hold_id_valid(id));
}

static int count(const char *const *names)
{
	int n = 0;

	while (names[n])
		n++;
	return n;
}

static void test_name_lists(void **state)
{
	(void)state;
	assert_int_equal(count(admin_hold_modes), ADMIN_MODE_ALL + 1);
	assert_string_equal(admin_hold_modes[ADMIN_MODE_WRITES], "writes");
	assert_string_equal(admin_hold_modes[ADMIN_MODE_ALL], "all");
	assert_int_equal(count(admin_hold_policies), ADMIN_POLICY_REROUTE + 1);
	assert_string_equal(admin_hold_policies[ADMIN_POLICY_QUEUE], "queue");
	assert_string_equal(admin_hold_policies[ADMIN_POLICY_REJECT], "reject");
	assert_string_equal(admin_hold_policies[ADMIN_POLICY_REROUTE], "reroute");
	assert_int_equal(count(admin_hold_on_timeouts), ADMIN_ON_TIMEOUT_REJECT + 1);
	assert_string_equal(admin_hold_on_timeouts[ADMIN_ON_TIMEOUT_RELEASE], "release");
	assert_string_equal(admin_hold_on_timeouts[ADMIN_ON_TIMEOUT_REJECT], "reject");
	assert_int_equal(count(admin_errors_groups), ADMIN_ERRORS_GROUPS);
	assert_string_equal(admin_errors_groups[ADMIN_BY_SQLSTATE], "by_sqlstate");
	assert_string_equal(admin_errors_groups[ADMIN_BY_TABLE], "by_table");
	assert_string_equal(admin_errors_groups[ADMIN_BY_CONSTRAINT], "by_constraint");
	assert_int_equal(count(admin_hold_keys), 9);
	assert_string_equal(admin_hold_keys[8], "in_flight_wait_ms");
	assert_int_equal(count(admin_renew_keys), 1);
	assert_int_equal(count(admin_switchover_keys), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_accepted),
		cmocka_unit_test(test_coordinator_ids_accepted),
		cmocka_unit_test(test_ids_refused),
		cmocka_unit_test(test_name_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
