/*
 * Unit tests for common/classify_cache.c, against the contract in
 * include/pgvalve/classify_cache.h: the key (which literals it blanks, what
 * it keeps), a hit answers exactly what classify_sql answers for the text
 * asked about (flags, reason, every ref) even when it differs from the
 * cached one in literal values, the counters, both bounds under eviction,
 * least-recently-used order, text cut by a NUL, the texts that bypass the
 * cache, and allocation failure (malloc and calloc are wrapped at link time,
 * so a test can make the Nth call fail). SQL is handed over in buffers of
 * exactly its length, so the Asan build catches a read past it.
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

static long alloc_calls; /* counted always */
static long fail_at;     /* 0: none fails */

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

static struct cache_call call; /* 16 KB: not on the stack */

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

static void assert_counts(const struct classify_cache *c, uint64_t hits, uint64_t misses, uint64_t evictions,
			  size_t entries)
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

/* ---- the key ------------------------------------------------------------------ */

/* A key as C text: "\0i" is the placeholder of an int, and so on. */
#define KEY(k) (k), sizeof(k) - 1

static char key_buf[2 * 4096];

/* The key of 'sql' (exactly its length), in key_buf; its length. */
static size_t key_of(const char *sql, size_t len)
{
	char *buf = __real_malloc(len ? len : 1);
	size_t n;

	assert_non_null(buf);
	assert_true(CLASSIFY_CACHE_KEY_MAX(len) <= sizeof(key_buf));
	memcpy(buf, sql, len);
	n = classify_cache_key(buf, len, key_buf, NULL, NULL);
	free(buf);
	assert_true(n <= CLASSIFY_CACHE_KEY_MAX(len));
	return n;
}

static void assert_key(const char *sql, const char *want, size_t want_len)
{
	size_t n = key_of(sql, strlen(sql));

	if (n != want_len || memcmp(key_buf, want, n) != 0) {
		for (size_t i = 0; i < n; i++)
			if (key_buf[i] == '\0')
				key_buf[i] = '@';
		fail_msg("key of \"%s\" is \"%.*s\" (@: NUL)", sql, (int)n, key_buf);
	}
}

/* Whether 'a' and 'b' have one key. */
static bool same_key(const char *a, const char *b)
{
	static char other[sizeof(key_buf)];
	size_t n = key_of(a, strlen(a)), m;

	memcpy(other, key_buf, n);
	m = key_of(b, strlen(b));
	return n == m && memcmp(other, key_buf, n) == 0;
}

/* Numbers, by the scanner's two kinds; digits that belong to a name or a parameter stay. */
static void test_key_numbers(void **state)
{
	assert_key("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
		   KEY("SELECT abalance FROM pgbench_accounts WHERE aid = \0i;"));
	assert_key("SELECT 0, 2147483647, 0002147483647, 2147483648, 99999999999",
		   KEY("SELECT \0i, \0i, \0i, \0f, \0f"));
	assert_key("SELECT 1.5, .5, 5., 1e3, 2.5E-3, 1.e+7, -4",
		   KEY("SELECT \0f, \0f, \0f, \0f, \0f, \0f, -\0i"));
	assert_key("SELECT t1, 1, $1, $12, a$b, a$1, _2, x.5, t.a1",
		   KEY("SELECT t1, \0i, $1, $12, a$b, a$1, _2, x\0f, t.a1"));
	assert_key("SELECT 1..2, 3...4, 5.6.7", KEY("SELECT \0i..\0i, \0i..\0f, \0f\0f"));
	assert_key("SELECT 1$$x$$, $1'y'", KEY("SELECT \0i\0d, $1\0s"));
}

/* Every kind of string constant, with what does and does not end each. */
static void test_key_strings(void **state)
{
	assert_key("SELECT 'it''s', '', 'a\\'", KEY("SELECT \0s, \0s, \0s"));
	assert_key("SELECT E'it\\'s', e'\\\\', E'a''b\\n', E'\\''", KEY("SELECT \0e, \0e, \0e, \0e"));
	assert_key("SELECT N'nat', n'', B'101', b'', X'1F', x''",
		   KEY("SELECT N\0s, n\0s, \0b, \0b, \0x, \0x"));
	assert_key("SELECT B'1''0', X'f''f'", KEY("SELECT \0b\0s, \0x\0s"));
	/* A prefix letter after an identifier character is part of the identifier. */
	assert_key("SELECT xE'1', aB'1', _X'1', $1E'1'", KEY("SELECT xE\0s, aB\0s, _X\0s, $1E'1'"));
	/* Dollar quotes: the first copy of the whole delimiter ends them, other $ do not. */
	assert_key("SELECT $$a$b$$, $t$ $$ $u$ $ $t$, $_1$x$_1$, $$$$", KEY("SELECT \0d, \0d, \0d, \0d"));
	assert_key("SELECT $t$ $T$ $t$y", KEY("SELECT \0dy"));
	assert_key("SELECT a$b$c, a$$, $a, $", KEY("SELECT a$b$c, a$$, $a, $"));
	/* Whitespace with a newline between two strings makes one (not with a comment: libpg_query). */
	assert_key("SELECT 'a'\n  'b', 'c' 'd', 'e'\r'f', E'g'\n'\\''", KEY("SELECT \0s, \0s \0s, \0s, \0e"));
	assert_key("SELECT 'a' -- c\n'b', 'e' /* c */\n'f'", KEY("SELECT \0s -- c\n\0s, \0s /* c */\n\0s"));
}

/* Quoted identifiers and comments are kept whole, and a quote or $ inside starts nothing. */
static void test_key_keeps_names_and_comments(void **state)
{
	assert_key("SELECT \"it's\", \"a\"\"$$\", \"1\" FROM \"T 1\"",
		   KEY("SELECT \"it's\", \"a\"\"$$\", \"1\" FROM \"T 1\""));
	assert_key("SELECT 1 -- it's $$\n, /* 'x' /* $t$ */ \" */ 2, 3--4'",
		   KEY("SELECT \0i -- it's $$\n, /* 'x' /* $t$ */ \" */ \0i, \0i--4'"));
	assert_key("SELECT U&\"d\\0061t\", U&'d\\0061t', u&'x'",
		   KEY("SELECT U&\"d\\0061t\", U&'d\\0061t', u&'x'"));
	/*
	 * The key reads the text with the one lexer (sqllex.h), as PostgreSQL
	 * 15 does: a vertical tab is a byte of its own, not white space (the
	 * coordinator trims with the same lexer), a form feed is white space.
	 */
	assert_key("SELECT\v1,\f2", KEY("SELECT\v\0i,\f\0i"));
	assert_key("SELECT 'a'\v'b'", KEY("SELECT \0s\v\0s"));
	assert_key("SELECT 'a'\f\n'b'", KEY("SELECT \0s"));
}

/* Literals whose value the parser checks are kept. */
static void test_key_keeps_checked_literals(void **state)
{
	/* E-strings whose escapes the scanner checks or turns into non-ASCII bytes. */
	assert_key("SELECT E'\\x41', E'\\101', E'\\u0041', E'\\U00000041', E'\\\xc3\xa9', E'\\q'",
		   KEY("SELECT E'\\x41', E'\\101', E'\\u0041', E'\\U00000041', E'\\\xc3\xa9', \0e"));
	/* FLOAT(p), ALTER [COLUMN] n, UESCAPE 'c' (after a comment too); nowhere else. */
	assert_key("SELECT x::float(3), y::FLOAT /* p */ (54), z::\"float\"(3), f(3)",
		   KEY("SELECT x::float(3), y::FLOAT /* p */ (54), z::\"float\"(\0i), f(\0i)"));
	assert_key("ALTER TABLE t ALTER COLUMN 3 SET STATISTICS 100",
		   KEY("ALTER TABLE t ALTER COLUMN 3 SET STATISTICS \0i"));
	assert_key("ALTER INDEX i ALTER 0 SET STATISTICS -1",
		   KEY("ALTER INDEX i ALTER 0 SET STATISTICS -\0i"));
	assert_key("SELECT U&'d!0061t' UESCAPE '!', U&\"x\" uescape $$+$$",
		   KEY("SELECT U&'d!0061t' UESCAPE '!', U&\"x\" uescape $$+$$"));
}

/* After what the scanner rejects or cannot finish, the rest is kept verbatim. */
static void test_key_rest_verbatim(void **state)
{
	assert_key("SELECT 1, 2x, 3", KEY("SELECT \0i, 2x, 3"));
	assert_key("SELECT 1, 1e, 3", KEY("SELECT \0i, 1e, 3"));
	assert_key("SELECT 1, 1e+ 2, 3", KEY("SELECT \0i, 1e+ 2, 3"));
	assert_key("SELECT 1, $2a, 3", KEY("SELECT \0i, $2a, 3"));
	assert_key("SELECT 1, 'open", KEY("SELECT \0i, 'open"));
	assert_key("SELECT 1, E'open\\'", KEY("SELECT \0i, E'open\\'"));
	assert_key("SELECT 1, $t$ open $T$", KEY("SELECT \0i, $t$ open $T$"));
	assert_key("SELECT 1, \"open 2", KEY("SELECT \0i, \"open 2"));
	assert_key("SELECT 1 /* /* */ 2", KEY("SELECT \0i /* /* */ 2"));
	assert_key("", KEY(""));
}

/* The key ends at a NUL, and a NUL in the key is always a placeholder. */
static void test_key_nul(void **state)
{
	static const char text[] = "SELECT 1\0 'not part of it'";
	struct classify_literal lits[sizeof(text)];
	size_t n, n_lits;

	n = classify_cache_key(text, sizeof(text) - 1, key_buf, lits, &n_lits);
	assert_int_equal(n, 9);
	assert_memory_equal(key_buf, "SELECT \0i", 9);
	assert_int_equal(n_lits, 1);
	assert_int_equal(lits[0].start, 7);
	assert_int_equal(lits[0].len, 1);
	assert_int_equal(lits[0].kind, CLASSIFY_LIT_INT);
}

/* The literals reported are the ones blanked, in order. */
static void test_key_literals_reported(void **state)
{
	const char *sql = "INSERT INTO t VALUES (1.5, 'a''b', $$x$$, E'\\x41', 7)";
	struct classify_literal lits[64];
	size_t n_lits;

	classify_cache_key(sql, strlen(sql), key_buf, lits, &n_lits);
	assert_int_equal(n_lits, 4);
	assert_int_equal(lits[0].kind, CLASSIFY_LIT_NUMERIC);
	assert_int_equal(lits[1].kind, CLASSIFY_LIT_STRING);
	assert_int_equal(lits[2].kind, CLASSIFY_LIT_DOLLAR);
	assert_int_equal(lits[3].kind, CLASSIFY_LIT_INT);
	assert_memory_equal(sql + lits[1].start, "'a''b'", lits[1].len);
	assert_int_equal(lits[1].len, 6);
	assert_memory_equal(sql + lits[3].start, "7", lits[3].len);
	assert_int_equal(lits[3].len, 1);
}

/* Texts that differ only in literal values share a key, and through the cache each gets its own classify_sql answer. */
static void test_key_literal_variants(void **state)
{
	static const char *const variants[][2] = {
		{ "SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 48213" },
		{ "SELECT * FROM t WHERE x = 1.5", "SELECT * FROM t WHERE x = 99999999999" },
		{ "UPDATE t SET n = 'a' WHERE k = ''", "UPDATE t SET n = 'it''s -- $$' WHERE k = 'x'" },
		{ "INSERT INTO t VALUES (E'\\'')", "INSERT INTO t VALUES (E'plain; DROP TABLE t')" },
		{ "INSERT INTO t VALUES ($$a$$)", "INSERT INTO t VALUES ($tag$ $$ ' $tag$)" },
		{ "INSERT INTO t VALUES (B'1', X'2')", "INSERT INTO t VALUES (B'', X'ffff')" },
		{ "DELETE FROM t WHERE s = 'a'\n'b'", "DELETE FROM t WHERE s = 'ab'" },
		{ "COPY t FROM '/tmp/a'", "COPY t FROM '/tmp/b'" },
		{ "SELECT nextval('s1'), lower('X') FROM t", "SELECT nextval('s2'), lower('Y') FROM t" },
	};
	struct classify_cache *c = classify_cache_new(64, 1 << 20);

	assert_non_null(c);
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		assert_true(same_key(variants[i][0], variants[i][1]));
		check_text(c, variants[i][0], strlen(variants[i][0]), &dflt);
		check_text(c, variants[i][1], strlen(variants[i][1]), &dflt);
		assert_counts(c, i + 1, i + 1, 0, i + 1);
	}
	classify_cache_free(c);
}

/* Names, keywords, parameters, comments and the kind of a literal all make other keys. */
static void test_key_differs(void **state)
{
	static const char *const pairs[][2] = {
		{ "SELECT * FROM a", "SELECT * FROM b" },
		{ "SELECT * FROM \"a\"", "SELECT * FROM \"A\"" },
		{ "SELECT * FROM \"a\"", "SELECT * FROM a" },
		{ "SELECT * FROM t", "DELETE FROM t" },
		{ "SELECT t1 FROM t", "SELECT 1 FROM t" },
		{ "SELECT t1 FROM t", "SELECT t2 FROM t" },
		{ "SELECT $1", "SELECT $2" },
		{ "SELECT a$1 FROM t", "SELECT a$2 FROM t" },
		{ "SELECT 1 LIMIT 1", "SELECT 1 LIMIT 1.0" },
		{ "SELECT 2147483647", "SELECT 2147483648" },
		{ "SELECT 'a'", "SELECT E'a'" },
		{ "SELECT 'a'", "SELECT $$a$$" },
		{ "SELECT B'1'", "SELECT X'1'" },
		{ "SELECT 'a'\n'b'", "SELECT 'a' 'b'" },
		{ "SELECT 1 /* a */", "SELECT 1 /* b */" },
		{ "SELECT 1 -- it's", "SELECT 1 -- its" },
		{ "SELECT E'\\x41'", "SELECT E'\\x42'" },
		{ "SELECT 1::float(3)", "SELECT 1::float(4)" },
	};

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (same_key(pairs[i][0], pairs[i][1]))
			fail_msg("\"%s\" and \"%s\" share a key", pairs[i][0], pairs[i][1]);
}

/* pgbench -S in simple-protocol mode: one statement, a different aid each time, one parse. */
static void test_pgbench_select_hits(void **state)
{
	struct classify_cache *c = classify_cache_new(8192, 16u << 20);
	char sql[96];

	assert_non_null(c);
	for (int i = 0; i < 1000; i++) {
		int aid = 1 + (int)(((long)i * 7919) % 1000000); /* 1,000 different aids */

		snprintf(sql, sizeof(sql), "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", aid);
		check_text(c, sql, strlen(sql), &dflt);
		assert_false(call.got.flags & CLASSIFY_UNKNOWN);
		assert_int_equal(call.got.n_refs, 1);
		assert_string_equal(call.got.refs[0].name, "pgbench_accounts");
		assert_int_equal(call.got.refs[0].access, CLASSIFY_READ);
	}
	assert_counts(c, 999, 1, 0, 1);
	classify_cache_free(c);
}

/* A text whose key does not fit on the stack: the same answers; out of memory for its key keeps nothing. */
static void test_long_text_key(void **state)
{
	struct classify_cache *c = classify_cache_new(16, 4u << 20);
	size_t len;
	char *sql = __real_malloc(16384);

	assert_non_null(c);
	assert_non_null(sql);
	len = (size_t)sprintf(sql, "SELECT * FROM t WHERE id IN (");
	for (int i = 0; i < 1000; i++)
		len += (size_t)sprintf(sql + len, "%d, ", i);
	len += (size_t)sprintf(sql + len, "1000)");
	assert_true(CLASSIFY_CACHE_KEY_MAX(len) > 4096);
	check_text(c, sql, len, &dflt);
	sql[29] = '9'; /* the first value: another value, one key */
	check_text(c, sql, len, &dflt);
	assert_counts(c, 1, 1, 0, 1);
	assert_true(stats_of(c).bytes < len); /* the key is shorter than the text */

	sql[14] = 'u'; /* FROM u: another key */
	uncached_exact(sql, len, &dflt, &call.want);
	fail_nth_alloc(1);
	cached_exact(c, sql, len, &dflt, &call.got);
	fail_nth_alloc(0);
	assert_same(&call.want, &call.got);
	assert_counts(c, 1, 2, 0, 1);
	check_text(c, sql, len, &dflt);
	assert_counts(c, 1, 3, 0, 2);
	free(sql);
	classify_cache_free(c);
}

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
	const char *wide = "SELECT * FROM a, b, c"; /* three refs: larger */

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
	check_text(c, numbered(0), strlen(numbered(0)), &dflt); /* 0 is now the newest */
	for (int i = 3; i < 5; i++)                             /* evict 1, then 2 */
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
	check_text(c, "SELECT * FROM t", 15, &dflt); /* now cached ... */
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
	check_text(c, "SELECT 1", 8, &dflt); /* libpg_query's first-call setup out of the way */
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
		cmocka_unit_test(test_key_numbers),
		cmocka_unit_test(test_key_strings),
		cmocka_unit_test(test_key_keeps_names_and_comments),
		cmocka_unit_test(test_key_keeps_checked_literals),
		cmocka_unit_test(test_key_rest_verbatim),
		cmocka_unit_test(test_key_nul),
		cmocka_unit_test(test_key_literals_reported),
		cmocka_unit_test(test_key_literal_variants),
		cmocka_unit_test(test_key_differs),
		cmocka_unit_test(test_pgbench_select_hits),
		cmocka_unit_test(test_long_text_key),
	};

	return cmocka_run_group_tests_name("common/classify_cache", tests, NULL, NULL);
}
