/*
 * libFuzzer target for common/classify.c and common/classify_cache.c. An
 * input is one byte of options, then SQL:
 *
 *   [0]   bit 0 standard_conforming_strings off; bits 1-3 pick
 *         parse_max_bytes (the default, 0, small ones, one past the cap)
 *   [1..] the SQL text, in a buffer of exactly its length
 *
 * Every input is classified twice directly and twice through one small
 * cache that lives across inputs (so entries are hit, evicted by count and
 * by bytes). The four answers must agree; the second cached call of a
 * text that fits the cache must be a hit; the cache stays within its
 * bounds; and the answer keeps the shape classify.h promises.
 *
 * Then the cache key (the text with literal values blanked) is put to the
 * test, with standard_conforming_strings on and the largest parse limit:
 *   - the lexer the key is made with (sqllex.h) finds the tokens
 *     libpg_query's own scanner finds, where they start and end;
 *   - every literal the key blanked is exactly one token of its kind to
 *     libpg_query's own scanner (pg_query_scan), when that scans the text;
 *   - a second text made by replacing each blanked literal with another of
 *     its kind has the same key, classify_sql gives both the same answer
 *     (if the key blanked something whose value matters, they differ), and
 *     through the cache the second is a hit on the first's entry.
 *
 * libpg_query recurses without limit and leaks a pthread key per thread that
 * parses, so all of this runs on one long-lived thread with a
 * CLASSIFY_STACK_BYTES stack. Checks are FUZZ_CHECKs, which abort whatever
 * NDEBUG says.
 */
#include <pg_query.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/classify_cache.h"
#include "pgvalve/sqllex.h"
#include "fuzz_bigstack.h"
#include "fuzz_check.h"
#include "../support/pg_scan.h"

#define CACHE_ENTRIES 64
#define CACHE_BYTES (64u << 10) /* below 64 typical entries: byte evictions too */
/* More than any entry for 'len' bytes of text takes, whatever its key and refs. */
#define ENTRY_BYTES_MAX(len)                                             \
	(CLASSIFY_CACHE_KEY_MAX(len) + sizeof(struct classify_compact) + \
	 CLASSIFY_MAX_REFS * sizeof(struct classify_ref) + 256)
#define ALL_FLAGS (CLASSIFY_UNKNOWN | CLASSIFY_TX_CONTROL | CLASSIFY_DDL)

/* A seed that starts with ' ' (0x20) gets the default options. */
static const size_t parse_limits[8] = {
	65536, 0, 1, 8, 32, 256, 4096, CLASSIFY_PARSE_MAX_LIMIT + 1,
};

static struct classify_cache *cache;
static struct classify_result direct[2], cached[2]; /* 8 KB each: not on the stack */
static struct classify_result base, variant, via_cache;

/* The shape every answer has, whatever the SQL. */
static void check_shape(const struct classify_result *r)
{
	FUZZ_CHECK(r->n_refs >= 0 && r->n_refs <= CLASSIFY_MAX_REFS);
	FUZZ_CHECK((r->flags & ~(unsigned)ALL_FLAGS) == 0);
	FUZZ_CHECK(!(r->flags & CLASSIFY_UNKNOWN) == !r->unknown_reason);
	for (int i = 0; i < r->n_refs; i++) {
		const struct classify_ref *f = &r->refs[i];

		FUZZ_CHECK(memchr(f->schema, '\0', sizeof(f->schema)) != NULL);
		FUZZ_CHECK(memchr(f->name, '\0', sizeof(f->name)) != NULL);
		FUZZ_CHECK(f->access != 0 && (f->access & ~(CLASSIFY_READ | CLASSIFY_WRITE)) == 0);
	}
}

/* a and b say the same: flags, reason, and every ref byte for byte. */
static void check_same(const struct classify_result *a, const struct classify_result *b)
{
	FUZZ_CHECK(a->flags == b->flags);
	FUZZ_CHECK(a->unknown_reason == b->unknown_reason);
	FUZZ_CHECK(a->n_refs == b->n_refs);
	FUZZ_CHECK(memcmp(a->refs, b->refs, (size_t)a->n_refs * sizeof(a->refs[0])) == 0);
}

/* ---- the key ----------------------------------------------------------------- */

static int token_of_kind(char kind)
{
	switch (kind) {
	case CLASSIFY_LIT_INT:
		return PG_SCAN_ICONST;
	case CLASSIFY_LIT_NUMERIC:
		return PG_SCAN_FCONST;
	case CLASSIFY_LIT_BITS:
		return PG_SCAN_BCONST;
	case CLASSIFY_LIT_HEX:
		return PG_SCAN_XCONST;
	default:
		return PG_SCAN_SCONST; /* '...', E'...', dollar quotes */
	}
}

/*
 * The one lexer (sqllex.h) agrees with libpg_query's scanner: each token the
 * scanner reports is one of the lexer's, with the same start and end, and
 * the lexer has no other token but white space. (The scanner reports
 * comments too; for U&"..." and U&'...' it reports the start only.)
 */
static void check_lexer(const char *text, size_t len, const struct pg_scan_token *toks, long n)
{
	struct sqllex lx;
	struct sqllex_token t;

	sqllex_init(&lx, text, len, 0);
	for (long i = 0; i < n; i++) {
		while (sqllex_next(&lx, &t) == SQLLEX_SPACE)
			;
		FUZZ_CHECK(t.start == toks[i].start);
		FUZZ_CHECK(t.end == toks[i].end || t.kind == SQLLEX_UIDENT || t.kind == SQLLEX_USTRING);
	}
	while (sqllex_next(&lx, &t) == SQLLEX_SPACE)
		;
	FUZZ_CHECK(t.kind == SQLLEX_END);
}

/* Each blanked literal is one whole token of its kind to PostgreSQL's scanner. */
static void check_scan(const char *text, const struct classify_literal *lits, size_t n_lits)
{
	size_t len = strlen(text), t = 0;
	struct pg_scan_token *toks = malloc((len + 1) * sizeof(*toks));
	long n;

	FUZZ_CHECK(toks != NULL);
	n = pg_scan_tokens(text, toks, len + 1);
	FUZZ_CHECK(n != -2);
	if (n >= 0)
		check_lexer(text, len, toks, n);
	for (size_t i = 0; n >= 0 && i < n_lits; i++) {
		while ((long)t < n && toks[t].start < lits[i].start)
			t++;
		FUZZ_CHECK((long)t < n && toks[t].start == lits[i].start);
		FUZZ_CHECK(toks[t].end == lits[i].start + lits[i].len);
		FUZZ_CHECK(toks[t].token == token_of_kind(lits[i].kind));
	}
	free(toks);
}

/*
 * Another literal of the same kind as 'lit', 'pick' choosing which. Each
 * keeps what the scanner sees at the literal's edges: it starts as the old
 * one starts (a number with '.' or a digit, a string with its prefix
 * letter, quote or $) and ends with a digit or a closing quote or $, so the
 * text around it lexes as before.
 */
static const char *replacement(const char *text, const struct classify_literal *lit, unsigned pick)
{
	static const char *const ints[] = { "0", "7", "42", "2147483647", "000123" };
	static const char *const numerics[] = { "2.5", "31e2", "7.25E-3", "99999999999.0" };
	static const char *const dot_numerics[] = { ".25", ".5e3", ".0" };
	static const char *const strings[] = { "''", "'x'", "'hello world'", "'42'" };
	static const char *const estrings[] = { "E''", "E'a\\tb'", "E'it\\'s'", "e'\\\\'" };
	static const char *const bits[] = { "B''", "B'0101'", "b'1'" };
	static const char *const hexes[] = { "X''", "X'1F'", "x'deadbeef'" };
	static const char *const dollars[] = { "$$$$", "$$x$$", "$q$ it's $q$", "$_1$ $ $_1$" };
#define PICK(a) (a)[pick % (sizeof(a) / sizeof((a)[0]))]

	switch (lit->kind) {
	case CLASSIFY_LIT_INT:
		return PICK(ints);
	case CLASSIFY_LIT_NUMERIC:
		return text[lit->start] == '.' ? PICK(dot_numerics) : PICK(numerics);
	case CLASSIFY_LIT_STRING:
		return PICK(strings);
	case CLASSIFY_LIT_ESTRING:
		return PICK(estrings);
	case CLASSIFY_LIT_BITS:
		return PICK(bits);
	case CLASSIFY_LIT_HEX:
		return PICK(hexes);
	case CLASSIFY_LIT_DOLLAR:
		return PICK(dollars);
	}
#undef PICK
	FUZZ_CHECK(!"a literal of no known kind");
	return NULL;
}

static void check_key(const char *sql, size_t len)
{
	const struct classify_options full = { .parse_max_bytes = CLASSIFY_PARSE_MAX_LIMIT };
	size_t text_len = strnlen(sql, len), n_lits, key_len, key2_len, at = 0, alt_len;
	struct classify_literal *lits = malloc((text_len + 1) * sizeof(*lits));
	char *key = malloc(CLASSIFY_CACHE_KEY_MAX(text_len) + 1), *key2, *text, *alt;
	struct classify_cache_stats before, after;
	unsigned pick = 0;

	FUZZ_CHECK(lits && key);
	key_len = classify_cache_key(sql, len, key, lits, &n_lits);
	FUZZ_CHECK(key_len <= CLASSIFY_CACHE_KEY_MAX(text_len));
	FUZZ_CHECK(n_lits <= text_len);

	text = malloc(text_len + 1);
	FUZZ_CHECK(text != NULL);
	memcpy(text, sql, text_len);
	text[text_len] = '\0';
	check_scan(text, lits, n_lits);

	/* The second text: every blanked literal replaced, the rest as it was. */
	for (size_t i = 0; i < text_len; i++)
		pick = pick * 31 + (unsigned char)text[i];
	alt_len = text_len;
	for (size_t i = 0; i < n_lits; i++)
		alt_len = alt_len - lits[i].len + strlen(replacement(text, &lits[i], pick + (unsigned)i));
	alt = malloc(alt_len + 1);
	key2 = malloc(CLASSIFY_CACHE_KEY_MAX(alt_len) + 1);
	FUZZ_CHECK(alt && key2);
	alt_len = 0;
	for (size_t i = 0; i < n_lits; i++) {
		const char *r = replacement(text, &lits[i], pick + (unsigned)i);

		memcpy(alt + alt_len, text + at, lits[i].start - at);
		alt_len += lits[i].start - at;
		memcpy(alt + alt_len, r, strlen(r));
		alt_len += strlen(r);
		at = lits[i].start + lits[i].len;
	}
	memcpy(alt + alt_len, text + at, text_len - at);
	alt_len += text_len - at;
	alt[alt_len] = '\0';

	key2_len = classify_cache_key(alt, alt_len, key2, NULL, NULL);
	FUZZ_CHECK(key2_len == key_len && memcmp(key2, key, key_len) == 0);
	if (alt_len <= CLASSIFY_PARSE_MAX_LIMIT) {
		classify_sql(text, text_len, &full, &base);
		classify_sql(alt, alt_len, &full, &variant);
		check_same(&base, &variant);

		classify_cache_sql(cache, text, text_len, &full, &via_cache);
		check_same(&base, &via_cache);
		classify_cache_stats(cache, &before);
		classify_cache_sql(cache, alt, alt_len, &full, &via_cache);
		classify_cache_stats(cache, &after);
		check_same(&variant, &via_cache);
		if (ENTRY_BYTES_MAX(text_len) <= CACHE_BYTES)
			FUZZ_CHECK(after.hits == before.hits + 1);
	}
	free(key2);
	free(alt);
	free(text);
	free(key);
	free(lits);
}

static void run(const uint8_t *data, size_t size)
{
	struct classify_options opt = { 0 };
	struct classify_cache_stats before, after;
	size_t len = size ? size - 1 : 0, text_len, limit;
	char *sql = malloc(len ? len : 1);
	bool cacheable;

	FUZZ_CHECK(sql != NULL);
	if (size) {
		opt.standard_conforming_strings_off = data[0] & 1;
		opt.parse_max_bytes = parse_limits[(data[0] >> 1) & 7];
		memcpy(sql, data + 1, len);
	} else {
		opt.parse_max_bytes = parse_limits[0];
	}
	text_len = strnlen(sql, len);
	limit = opt.parse_max_bytes < CLASSIFY_PARSE_MAX_LIMIT ? opt.parse_max_bytes
							       : CLASSIFY_PARSE_MAX_LIMIT;
	cacheable = !opt.standard_conforming_strings_off && text_len <= limit;

	for (int i = 0; i < 2; i++) {
		memset(&direct[i], 0xa5, sizeof(direct[i]));
		classify_sql(sql, len, &opt, &direct[i]);
	}
	check_shape(&direct[0]);
	check_same(&direct[0], &direct[1]);
	if (!cacheable)
		FUZZ_CHECK(direct[0].flags & CLASSIFY_UNKNOWN);

	classify_cache_stats(cache, &before);
	for (int i = 0; i < 2; i++) {
		memset(&cached[i], 0x5a, sizeof(cached[i]));
		classify_cache_sql(cache, sql, len, &opt, &cached[i]);
		check_same(&direct[0], &cached[i]);
	}
	classify_cache_stats(cache, &after);
	FUZZ_CHECK(after.entries <= CACHE_ENTRIES && after.bytes <= CACHE_BYTES);
	if (cacheable) {
		FUZZ_CHECK(after.hits + after.misses == before.hits + before.misses + 2);
		if (ENTRY_BYTES_MAX(text_len) <= CACHE_BYTES)
			FUZZ_CHECK(after.hits >= before.hits + 1); /* the first call kept it */
	} else
		FUZZ_CHECK(after.hits == before.hits && after.misses == before.misses);
	check_key(sql, len);
	free(sql);
}

/* The parsing thread: runs each input handed over, then says it is done. */
static void init_cache(void)
{
	cache = classify_cache_new(CACHE_ENTRIES, CACHE_BYTES);
	FUZZ_CHECK(cache != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_on_big_stack(run, init_cache, data, size);
	return 0;
}
