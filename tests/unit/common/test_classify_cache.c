/*
 * Unit tests for common/classify_cache.c, against the contract in
 * include/pgvalve/classify_cache.h: a hit answers exactly what classify_sql
 * answers (flags, reason, every ref), the counters, both bounds under
 * eviction, least-recently-used order, text cut by a NUL, the texts that
 * bypass the cache, and allocation failure (malloc and calloc are wrapped at
 * link time, so a test can make the Nth call fail). SQL is handed over in
 * buffers of exactly its length, so the Asan build catches a read past it.
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

#include "pgvalve/classify_cache.h"

static const struct classify_options dflt = { .parse_max_bytes = 65536 };
static const struct classify_options scs_off = {
	.parse_max_bytes = 65536,
	.standard_conforming_strings_off = true,
};

/* ---- allocation failure: the Nth malloc or calloc from now returns NULL ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);

static long alloc_calls;   /* counted always */
static long fail_at;       /* 0: none fails */

static bool alloc_fails(void)
{
	return ++alloc_calls == fail_at;
}

void *__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : __real_calloc(n, size);
}

/* Makes the nth allocation from now fail (0: none). */
static void fail_nth_alloc(long n)
{
	alloc_calls = 0;
	fail_at = n;
}

/* ---- helpers ---------------------------------------------------------------- */

struct cache_call {
	struct classify_result want, got;
};

static struct cache_call call;   /* 16 KB: not on the stack */

/* Runs classify_cache_sql on exactly 'len' bytes, into a result filled with junk first. */
static void cached_exact(struct classify_cache *c, const char *sql, size_t len,
			 const struct classify_options *o, struct classify_result *out)
{
	char *buf = __real_malloc(len ? len : 1);

	assert_non_null(buf);
	memcpy(buf, sql, len);
	memset(out, 0xa5, sizeof(*out));
	classify_cache_sql(c, buf, len, o, out);
	free(buf);
}

static void uncached_exact(const char *sql, size_t len, const struct classify_options *o,
			   struct classify_result *out)
{
	char *buf = __real_malloc(len ? len : 1);

	assert_non_null(buf);
	memcpy(buf, sql, len);
	classify_sql(buf, len, o, out);
	free(buf);
}

/* 'got' says what 'want' says: flags, reason, and every ref byte for byte. */
static void assert_same(const struct classify_result *want, const struct classify_result *got)
{
	assert_int_equal(got->flags, want->flags);
	if (want->unknown_reason)
		assert_string_equal(got->unknown_reason, want->unknown_reason);
	else
		assert_null(got->unknown_reason);
	assert_int_equal(got->n_refs, want->n_refs);
	for (int i = 0; i < want->n_refs; i++) {
		assert_string_equal(got->refs[i].schema, want->refs[i].schema);
		assert_string_equal(got->refs[i].name, want->refs[i].name);
		assert_int_equal(got->refs[i].access, want->refs[i].access);
		assert_memory_equal(&got->refs[i], &want->refs[i], sizeof(want->refs[i]));
	}
}

/* Through the cache, 'sql' answers as classify_sql does. */
static void check_text(struct classify_cache *c, const char *sql, size_t len,
		       const struct classify_options *o)
{
	uncached_exact(sql, len, o, &call.want);
	cached_exact(c, sql, len, o, &call.got);
	assert_same(&call.want, &call.got);
}

static struct classify_cache_stats stats_of(const struct classify_cache *c)
{
	struct classify_cache_stats s;

	classify_cache_stats(c, &s);
	return s;
}

static void assert_counts(const struct classify_cache *c, uint64_t hits, uint64_t misses,
			  uint64_t evictions, size_t entries)
{
	struct classify_cache_stats s = stats_of(c);

	assert_int_equal(s.hits, hits);
	assert_int_equal(s.misses, misses);
	assert_int_equal(s.evictions, evictions);
	assert_int_equal(s.entries, entries);
}

/* "SELECT * FROM t<i>": distinct texts of one length for i < 1000. */
static const char *numbered(int i)
{
	static char sql[64];

	snprintf(sql, sizeof(sql), "SELECT * FROM t%03d", i);
	return sql;
}

/* What the cache charges for one entry: the bytes of a cache holding only it. */
static size_t bytes_of(const char *sql)
{
	struct classify_cache *c = classify_cache_new(4, 1 << 20);
	size_t n;

	assert_non_null(c);
	cached_exact(c, sql, strlen(sql), &dflt, &call.got);
	n = stats_of(c).bytes;
	classify_cache_free(c);
	return n;
}

/* ---- tests ------------------------------------------------------------------ */

static const char *const statements[] = {
	"SELECT 1",
	"SELECT a, b FROM s.t JOIN u USING (id) WHERE x > 1",
	"SELECT * FROM t FOR UPDATE",
	"INSERT INTO orders (id) SELECT id FROM staging",
	"UPDATE accounts SET balance = 0 WHERE id IN (SELECT id FROM closed)",
	"DELETE FROM \"Quoted Name\" WHERE true",
	"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v",
	"COPY t FROM STDIN",
	"COPY t TO STDOUT",
	"TRUNCATE a, b.c",
	"WITH moved AS (DELETE FROM q RETURNING *) INSERT INTO done SELECT * FROM moved",
	"ALTER TABLE t ADD COLUMN c int",
	"CREATE INDEX ON t (c)",
	"DROP TABLE x, y.z",
	"BEGIN",
	"COMMIT",
	"SET statement_timeout = 0",
	"SELECT lower(name), now() FROM people",
	/* UNKNOWN, each for its own reason */
	"SELECT my_func(1)",
	"CALL p()",
	"DO $$ BEGIN END $$",
	"REINDEX DATABASE d",
	"DROP INDEX i",
	"SELEC nonsense FROM",
	"",
	/* several statements: the union */
	"BEGIN; INSERT INTO a VALUES (1); SELECT * FROM b; COMMIT",
	"SELECT * FROM a; SELECT f()",
	"UPDATE a SET x = 1; DELETE FROM a; SELECT * FROM c",
};

#define N_STATEMENTS (sizeof(statements) / sizeof(statements[0]))

/* A miss and then a hit each answer as classify_sql does; the counters say which was which. */
static void test_hit_equals_classify(void **state)
{
	struct classify_cache *c = classify_cache_new(1000, 1 << 20);

	assert_non_null(c);
	for (size_t i = 0; i < N_STATEMENTS; i++)
		check_text(c, statements[i], strlen(statements[i]), &dflt);
	assert_counts(c, 0, N_STATEMENTS, 0, N_STATEMENTS);
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < N_STATEMENTS; i++)
			check_text(c, statements[i], strlen(statements[i]), &dflt);
	assert_counts(c, 2 * N_STATEMENTS, N_STATEMENTS, 0, N_STATEMENTS);
	classify_cache_free(c);
}

/* The parse limit is not part of the key: a text within both limits shares one entry. */
static void test_options_share_entries(void **state)
{
	const struct classify_options wide = { .parse_max_bytes = 1 << 20 };
	struct classify_cache *c = classify_cache_new(16, 1 << 20);

	assert_non_null(c);
	check_text(c, "INSERT INTO a VALUES (1)", 24, &dflt);
	check_text(c, "INSERT INTO a VALUES (1)", 24, &wide);
	assert_counts(c, 1, 1, 0, 1);
	classify_cache_free(c);
}

/* Never more than max_entries; the oldest go first, one eviction each. */
static void test_evict_by_count(void **state)
{
	struct classify_cache *c = classify_cache_new(4, 1 << 20);

	assert_non_null(c);
	for (int i = 0; i < 10; i++) {
		check_text(c, numbered(i), strlen(numbered(i)), &dflt);
		assert_true(stats_of(c).entries <= 4);
	}
	assert_counts(c, 0, 10, 6, 4);
	for (int i = 6; i < 10; i++)
		check_text(c, numbered(i), strlen(numbered(i)), &dflt);
	assert_counts(c, 4, 10, 6, 4);
	check_text(c, numbered(0), strlen(numbered(0)), &dflt);
	assert_counts(c, 4, 11, 7, 4);
	classify_cache_free(c);
}

/* Never more than max_bytes, whatever the entries' sizes. */
static void test_evict_by_bytes(void **state)
{
	size_t one = bytes_of(numbered(0));
	struct classify_cache *c = classify_cache_new(1000, one * 5 / 2);
	const char *wide = "SELECT * FROM a, b, c";   /* three refs: larger */

	assert_non_null(c);
	for (int i = 0; i < 10; i++) {
		check_text(c, numbered(i), strlen(numbered(i)), &dflt);
		assert_true(stats_of(c).bytes <= one * 5 / 2);
		assert_true(stats_of(c).entries <= 2);
	}
	assert_counts(c, 0, 10, 8, 2);
	assert_int_equal(stats_of(c).bytes, 2 * one);
	/* With one small entry it is over the bound: it evicts both and stays alone. */
	assert_true(bytes_of(wide) + one > one * 5 / 2 && bytes_of(wide) <= one * 5 / 2);
	check_text(c, wide, strlen(wide), &dflt);
	assert_true(stats_of(c).bytes <= one * 5 / 2);
	assert_counts(c, 0, 11, 10, 1);
	classify_cache_free(c);
}

/* An entry larger than max_bytes is answered but not kept, and evicts nothing. */
static void test_entry_over_max_bytes(void **state)
{
	const char *wide = "SELECT * FROM a, b, c, d, e, f, g, h";
	struct classify_cache *c = classify_cache_new(1000, bytes_of(wide) - 1);

	assert_non_null(c);
	check_text(c, "SELECT 1", 8, &dflt);
	check_text(c, wide, strlen(wide), &dflt);
	check_text(c, wide, strlen(wide), &dflt);
	assert_counts(c, 0, 3, 0, 1);
	classify_cache_free(c);
}

/* A hit makes an entry the newest: under pressure the least recently used goes. */
static void test_lru_keeps_recent(void **state)
{
	struct classify_cache *c = classify_cache_new(3, 1 << 20);

	assert_non_null(c);
	for (int i = 0; i < 3; i++)
		check_text(c, numbered(i), strlen(numbered(i)), &dflt);
	check_text(c, numbered(0), strlen(numbered(0)), &dflt);   /* 0 is now the newest */
	for (int i = 3; i < 5; i++)                                  /* evict 1, then 2 */
		check_text(c, numbered(i), strlen(numbered(i)), &dflt);
	assert_counts(c, 1, 5, 2, 3);
	check_text(c, numbered(0), strlen(numbered(0)), &dflt);
	assert_counts(c, 2, 5, 2, 3);
	check_text(c, numbered(1), strlen(numbered(1)), &dflt);
	assert_counts(c, 2, 6, 3, 3);
	classify_cache_free(c);
}

/* Bytes after a NUL are not part of the text, nor of the key. */
static void test_embedded_nul(void **state)
{
	static const char a[] = "DELETE FROM t\0garbage that does not parse";
	static const char b[] = "DELETE FROM t\0other garbage";
	struct classify_cache *c = classify_cache_new(16, 1 << 20);

	assert_non_null(c);
	check_text(c, a, sizeof(a) - 1, &dflt);
	assert_false(call.got.flags & CLASSIFY_UNKNOWN);
	assert_int_equal(call.got.n_refs, 1);
	check_text(c, b, sizeof(b) - 1, &dflt);
	check_text(c, "DELETE FROM t", 13, &dflt);
	assert_counts(c, 2, 1, 0, 1);
	/* A NUL at the start: the empty text, another key. */
	check_text(c, "\0DELETE FROM t", 14, &dflt);
	check_text(c, "", 0, &dflt);
	assert_counts(c, 3, 2, 0, 2);
	classify_cache_free(c);
}

/* standard_conforming_strings off: UNKNOWN, past the cache both ways. */
static void test_scs_off_bypass(void **state)
{
	struct classify_cache *c = classify_cache_new(16, 1 << 20);

	assert_non_null(c);
	check_text(c, "SELECT * FROM t", 15, &scs_off);
	assert_true(call.got.flags & CLASSIFY_UNKNOWN);
	assert_counts(c, 0, 0, 0, 0);
	check_text(c, "SELECT * FROM t", 15, &dflt);   /* now cached ... */
	assert_false(call.got.flags & CLASSIFY_UNKNOWN);
	check_text(c, "SELECT * FROM t", 15, &scs_off); /* ... but not for this session */
	assert_true(call.got.flags & CLASSIFY_UNKNOWN);
	assert_counts(c, 0, 1, 0, 1);
	classify_cache_free(c);
}

/* Text over the parse limit: UNKNOWN, not kept; a cached entry does not lift the limit. */
static void test_long_text_bypass(void **state)
{
	const struct classify_options tight = { .parse_max_bytes = 10 };
	const struct classify_options over_cap = { .parse_max_bytes = SIZE_MAX };
	struct classify_cache *c = classify_cache_new(16, 4u << 20);
	size_t big = CLASSIFY_PARSE_MAX_LIMIT + 1;
	char *huge = __real_malloc(big);

	assert_non_null(c);
	assert_non_null(huge);
	check_text(c, "SELECT * FROM t", 15, &tight);
	assert_true(call.got.flags & CLASSIFY_UNKNOWN);
	assert_counts(c, 0, 0, 0, 0);
	check_text(c, "SELECT * FROM t", 15, &dflt);
	check_text(c, "SELECT * FROM t", 15, &tight);
	assert_true(call.got.flags & CLASSIFY_UNKNOWN);
	assert_counts(c, 0, 1, 0, 1);
	/* parse_max_bytes above CLASSIFY_PARSE_MAX_LIMIT is capped for the cache too. */
	memset(huge, ' ', big);
	memcpy(huge, "SELECT 1", 8);
	check_text(c, huge, big, &over_cap);
	assert_true(call.got.flags & CLASSIFY_UNKNOWN);
	assert_counts(c, 0, 1, 0, 1);
	free(huge);
	classify_cache_free(c);
}

/* A cache with a zero bound answers every time and keeps nothing. */
static void test_zero_bounds(void **state)
{
	struct classify_cache *none[] = { classify_cache_new(0, 1 << 20), classify_cache_new(16, 0) };

	for (int k = 0; k < 2; k++) {
		assert_non_null(none[k]);
		check_text(none[k], "SELECT * FROM t", 15, &dflt);
		check_text(none[k], "SELECT * FROM t", 15, &dflt);
		assert_counts(none[k], 0, 2, 0, 0);
		assert_int_equal(stats_of(none[k]).bytes, 0);
		classify_cache_free(none[k]);
	}
	classify_cache_free(NULL);
}

/* A compact copy gives back what it was made of, in its own size. */
static void test_compact_round_trip(void **state)
{
	struct classify_compact *k;

	uncached_exact("SELECT * FROM a, b, c", 21, &dflt, &call.want);
	assert_int_equal(call.want.n_refs, 3);
	assert_int_equal(classify_compact_size(&call.want),
			 sizeof(struct classify_compact) + 3 * sizeof(struct classify_ref));
	k = classify_compact_copy(&call.want);
	assert_non_null(k);
	memset(&call.got, 0xa5, sizeof(call.got));
	classify_compact_fill(k, &call.got);
	assert_same(&call.want, &call.got);
	free(k);
}

/* Out of memory, keeping an entry or classifying: the answer is right, nothing wrong is kept. */
static void test_alloc_failure(void **state)
{
	const char *sql = "UPDATE a SET x = 1 FROM b WHERE a.id = b.id";
	struct classify_cache *c;
	long n;

	for (int i = 1; i <= 2; i++) {
		fail_nth_alloc(i);
		assert_null(classify_cache_new(16, 1 << 20));
	}
	fail_nth_alloc(0);
	/* How many allocations a miss makes; keeping the entry takes the last two. */
	c = classify_cache_new(16, 1 << 20);
	assert_non_null(c);
	check_text(c, "SELECT 1", 8, &dflt);   /* libpg_query's first-call setup out of the way */
	fail_nth_alloc(0);
	cached_exact(c, sql, strlen(sql), &dflt, &call.got);
	n = alloc_calls;
	classify_cache_free(c);
	for (long last = 0; last < 2; last++) {
		c = classify_cache_new(16, 1 << 20);
		assert_non_null(c);
		uncached_exact(sql, strlen(sql), &dflt, &call.want);
		fail_nth_alloc(n - last);
		cached_exact(c, sql, strlen(sql), &dflt, &call.got);
		fail_nth_alloc(0);
		assert_same(&call.want, &call.got);
		assert_counts(c, 0, 1, 0, 0);
		assert_int_equal(stats_of(c).bytes, 0);
		check_text(c, sql, strlen(sql), &dflt);
		check_text(c, sql, strlen(sql), &dflt);
		assert_counts(c, 1, 2, 0, 1);
		classify_cache_free(c);
	}
	/* Out of memory inside classify_sql: UNKNOWN this time, no verdict kept. */
	c = classify_cache_new(16, 1 << 20);
	assert_non_null(c);
	fail_nth_alloc(1);
	cached_exact(c, sql, strlen(sql), &dflt, &call.got);
	fail_nth_alloc(0);
	assert_true(call.got.flags & CLASSIFY_UNKNOWN);
	assert_string_equal(call.got.unknown_reason, "out of memory");
	assert_counts(c, 0, 1, 0, 0);
	check_text(c, sql, strlen(sql), &dflt);
	assert_false(call.got.flags & CLASSIFY_UNKNOWN);
	assert_counts(c, 0, 2, 0, 1);
	classify_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_equals_classify),
		cmocka_unit_test(test_options_share_entries),
		cmocka_unit_test(test_evict_by_count),
		cmocka_unit_test(test_evict_by_bytes),
		cmocka_unit_test(test_entry_over_max_bytes),
		cmocka_unit_test(test_lru_keeps_recent),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_scs_off_bypass),
		cmocka_unit_test(test_long_text_bypass),
		cmocka_unit_test(test_zero_bounds),
		cmocka_unit_test(test_compact_round_trip),
		cmocka_unit_test(test_alloc_failure),
	};

	return cmocka_run_group_tests_name("common/classify_cache", tests, NULL, NULL);
}
