/*
 * Unit tests for proxy/stmt.c: a session's named prepared statements. Put,
 * peek, replace and remove (Close of an unknown name included), growth of
 * the table past its first 16 slots, statements whose text is unknown, the
 * count and byte bounds ("overflowed", and no entry), and clear. The Asan
 * build checks that nothing leaks and that SQL text is read only up to its
 * given length. Which Parse and Close messages reach the map is the
 * session's business, not tested here.
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

#include "stmt.h"

/* Puts a NUL-terminated 'sql' (NULL: text unknown). */
static void put(struct stmt_map *m, const char *name, const char *sql)
{
	stmt_put(m, name, sql, sql ? strlen(sql) : 0);
}

/* 'name' is known with exactly this text (NULL: known, text unknown). */
static void assert_stmt(const struct stmt_map *m, const char *name, const char *sql)
{
	const struct stmt *st = stmt_peek(m, name);

	assert_non_null(st);
	assert_string_equal(st->name, name);
	if (sql)
		assert_string_equal(st->sql, sql);
	else
		assert_null(st->sql);
}

/* What the map charges for one entry: the same as a map holding only that entry. */
static size_t bytes_of(const char *name, const char *sql)
{
	struct stmt_map m = { 0 };
	size_t n;

	put(&m, name, sql);
	n = m.bytes;
	stmt_clear(&m);
	return n;
}

static void test_empty_map(void **state)
{
	struct stmt_map m = { 0 };

	assert_null(stmt_peek(&m, "s1"));
	stmt_remove(&m, "s1");   /* Close before any Parse */
	assert_int_equal(m.count, 0);
	assert_null(m.slots);
	stmt_clear(&m);
	assert_int_equal(m.count, 0);
}

static void test_put_peek_remove(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "s1", "SELECT 1");
	put(&m, "s2", "UPDATE orders SET paid = true WHERE id = $1");
	assert_int_equal(m.count, 2);
	assert_false(m.overflowed);
	assert_stmt(&m, "s1", "SELECT 1");
	assert_stmt(&m, "s2", "UPDATE orders SET paid = true WHERE id = $1");
	assert_null(stmt_peek(&m, "s3"));
	assert_null(stmt_peek(&m, "s"));    /* names match whole, not by prefix */
	assert_null(stmt_peek(&m, "s10"));
	assert_int_equal(m.bytes, bytes_of("s1", "SELECT 1") +
					  bytes_of("s2", "UPDATE orders SET paid = true WHERE id = $1"));
	stmt_remove(&m, "s1");
	assert_null(stmt_peek(&m, "s1"));
	assert_stmt(&m, "s2", "UPDATE orders SET paid = true WHERE id = $1");
	assert_int_equal(m.count, 1);
	stmt_remove(&m, "s2");
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
}

/* The text is 'sql_len' bytes, not necessarily NUL-terminated there (a body in the relay buffer). */
static void test_sql_taken_by_length(void **state)
{
	struct stmt_map m = { 0 };
	char *sql = malloc(8);   /* exactly "SELECT 1", no NUL: Asan catches a read past it */

	assert_non_null(sql);
	memcpy(sql, "SELECT 1", 8);
	stmt_put(&m, "s1", sql, 8);
	free(sql);
	assert_stmt(&m, "s1", "SELECT 1");
	stmt_put(&m, "s2", "SELECT 1; DROP TABLE t", 8);
	assert_stmt(&m, "s2", "SELECT 1");
	stmt_put(&m, "s3", "", 0);
	assert_stmt(&m, "s3", "");   /* empty text is known text */
	stmt_clear(&m);
}

static void test_replace(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "s1", "SELECT 1");
	put(&m, "s1", "DELETE FROM orders");
	assert_int_equal(m.count, 1);
	assert_stmt(&m, "s1", "DELETE FROM orders");
	assert_int_equal(m.bytes, bytes_of("s1", "DELETE FROM orders"));
	put(&m, "s1", NULL);
	assert_int_equal(m.count, 1);
	assert_stmt(&m, "s1", NULL);
	assert_int_equal(m.bytes, bytes_of("s1", NULL));
	put(&m, "s1", "SELECT 2");
	assert_stmt(&m, "s1", "SELECT 2");
	assert_int_equal(m.count, 1);
	stmt_clear(&m);
}

static void test_close_of_unknown_name(void **state)
{
	struct stmt_map m = { 0 };
	size_t bytes;

	put(&m, "s1", "SELECT 1");
	bytes = m.bytes;
	stmt_remove(&m, "s2");
	stmt_remove(&m, "");
	stmt_remove(&m, "s1 ");
	assert_int_equal(m.count, 1);
	assert_int_equal(m.bytes, bytes);
	assert_false(m.overflowed);
	assert_stmt(&m, "s1", "SELECT 1");
	stmt_remove(&m, "s1");
	stmt_remove(&m, "s1");   /* twice: the second is a Close of an unknown name */
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
}

static void test_unknown_text(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "big", NULL);
	assert_int_equal(m.count, 1);
	assert_false(m.overflowed);   /* known name, unknown text: not an overflow */
	assert_stmt(&m, "big", NULL);
	assert_int_equal(m.bytes, bytes_of("big", NULL));
	assert_true(m.bytes < bytes_of("big", "x"));
	stmt_remove(&m, "big");
	assert_null(stmt_peek(&m, "big"));
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
}

/* Past 16 slots the table grows, and every statement stays reachable, before and after removals. */
static void test_growth(void **state)
{
	struct stmt_map m = { 0 };
	char name[32], sql[64];
	const int n = 1000;

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		put(&m, name, sql);
		if (i == 15)
			assert_int_equal(m.n_slots, 16);
	}
	assert_int_equal(m.count, n);
	assert_false(m.overflowed);
	assert_true(m.n_slots > 16);
	assert_true(m.n_slots >= (uint32_t)n);
	assert_int_equal(m.n_slots & (m.n_slots - 1), 0);   /* a power of two */
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		assert_stmt(&m, name, sql);
	}
	for (int i = 0; i < n; i += 2) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		stmt_remove(&m, name);
	}
	assert_int_equal(m.count, n / 2);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		if (i % 2)
			assert_stmt(&m, name, sql);
		else
			assert_null(stmt_peek(&m, name));
	}
	for (int i = 1; i < n; i += 2) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		stmt_remove(&m, name);
	}
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
}

/* STMT_MAX_COUNT statements fit; one more is dropped and the map says so. */
static void test_count_bound(void **state)
{
	struct stmt_map m = { 0 };
	char name[32];

	for (int i = 0; i < STMT_MAX_COUNT; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		put(&m, name, "SELECT 1");
	}
	assert_int_equal(m.count, STMT_MAX_COUNT);
	assert_false(m.overflowed);
	put(&m, "one_more", "SELECT 2");
	assert_true(m.overflowed);
	assert_null(stmt_peek(&m, "one_more"));
	assert_int_equal(m.count, STMT_MAX_COUNT);
	/* Replacing a known name at the bound still works: the old entry makes room. */
	put(&m, "s7", "SELECT 7");
	assert_stmt(&m, "s7", "SELECT 7");
	assert_int_equal(m.count, STMT_MAX_COUNT);
	/* After a Close there is room again; "overflowed" stays (a name was lost). */
	stmt_remove(&m, "s0");
	put(&m, "one_more", "SELECT 2");
	assert_stmt(&m, "one_more", "SELECT 2");
	assert_true(m.overflowed);
	stmt_clear(&m);
}

/* An entry costing exactly STMT_MAX_BYTES fits; one byte more does not. */
static void test_byte_bound(void **state)
{
	struct stmt_map m = { 0 };
	size_t fixed = bytes_of("a", ""), len = STMT_MAX_BYTES - fixed;
	char *sql = malloc(len + 2);

	assert_non_null(sql);
	memset(sql, 'x', len + 1);
	sql[len + 1] = '\0';
	stmt_put(&m, "a", sql, len);
	assert_false(m.overflowed);
	assert_int_equal(m.bytes, STMT_MAX_BYTES);
	assert_non_null(stmt_peek(&m, "a"));
	assert_int_equal(strlen(stmt_peek(&m, "a")->sql), len);
	put(&m, "b", NULL);                 /* the smallest entry no longer fits */
	assert_true(m.overflowed);
	assert_null(stmt_peek(&m, "b"));
	assert_int_equal(m.count, 1);
	stmt_clear(&m);

	stmt_put(&m, "a", sql, len + 1);    /* one byte over on its own */
	assert_true(m.overflowed);
	assert_null(stmt_peek(&m, "a"));
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);

	/* Replacing with text that does not fit drops the old entry too: no stale text survives. */
	put(&m, "a", "SELECT 1");
	stmt_put(&m, "a", sql, len + 1);
	assert_true(m.overflowed);
	assert_null(stmt_peek(&m, "a"));
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
	free(sql);
}

/* Many statements near the byte bound: the sum is what counts. */
static void test_byte_bound_sums(void **state)
{
	struct stmt_map m = { 0 };
	size_t len = STMT_MAX_BYTES / 4;
	char *sql = malloc(len);
	int kept = 0;
	char name[16];

	assert_non_null(sql);
	memset(sql, 'y', len);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		stmt_put(&m, name, sql, len);
		kept += stmt_peek(&m, name) != NULL;
	}
	assert_int_equal(kept, 3);   /* the fourth's overhead tips it over */
	assert_true(m.overflowed);
	assert_true(m.bytes <= STMT_MAX_BYTES);
	assert_null(stmt_peek(&m, "s3"));
	stmt_clear(&m);
	free(sql);
}

static void test_clear(void **state)
{
	struct stmt_map m = { 0 };
	char name[32];

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		put(&m, name, i % 3 ? "SELECT 1" : NULL);
	}
	m.overflowed = true;
	stmt_clear(&m);
	assert_null(m.slots);
	assert_int_equal(m.n_slots, 0);
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	assert_false(m.overflowed);
	assert_null(stmt_peek(&m, "s1"));
	put(&m, "s1", "SELECT 1");   /* usable again */
	assert_stmt(&m, "s1", "SELECT 1");
	stmt_clear(&m);
	stmt_clear(&m);              /* twice is harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_map),
		cmocka_unit_test(test_put_peek_remove),
		cmocka_unit_test(test_sql_taken_by_length),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_close_of_unknown_name),
		cmocka_unit_test(test_unknown_text),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_count_bound),
		cmocka_unit_test(test_byte_bound),
		cmocka_unit_test(test_byte_bound_sums),
		cmocka_unit_test(test_clear),
	};

	setvbuf(stdout, NULL, _IONBF, 0);      /* a sanitizer abort must not swallow the results */
	return cmocka_run_group_tests_name("proxy/stmt", tests, NULL, NULL);
}
