/*
 * A bounded cache of SQL classifications keyed by the text with its literal
 * values blanked (docs/architecture.md, "classification"), so a repeated
 * statement costs a lexer pass (pgvalve/sqllex.h), a hash and a compare
 * instead of a parse, even when every execution writes different constants
 * into it (SELECT ... WHERE aid = 48213). It
 * also owns the compact form of a classify_result (flags, reason, exactly
 * n_refs refs) that anything keeping one should use. A cache belongs to one
 * thread (a proxy worker): nothing here locks.
 */
#ifndef PGVALVE_CLASSIFY_CACHE_H
#define PGVALVE_CLASSIFY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "pgvalve/classify.h"

/* What is worth keeping of a classify_result, in as many bytes as it needs. */
struct classify_compact {
	unsigned flags;
	const char *unknown_reason; /* static text, as in classify_result */
	int n_refs;
	struct classify_ref refs[]; /* exactly n_refs */
};

/* The size of the compact copy of 'r'. */
size_t classify_compact_size(const struct classify_result *r);

/* A malloc'd compact copy of 'r', to free(); NULL when out of memory. */
struct classify_compact *classify_compact_copy(const struct classify_result *r)
	__attribute__((warn_unused_result));

/*
 * Fills 'out' from 'c': flags, unknown_reason, n_refs and refs[0..n_refs).
 * The refs past n_refs are left as they were.
 */
void classify_compact_fill(const struct classify_compact *c, struct classify_result *out);

/*
 * The kinds of literal a key blanks. In a key, each blanked literal is a NUL
 * byte followed by its kind's letter; the text itself never holds a NUL
 * (it ends at the first), so every NUL in a key starts a placeholder.
 */
enum classify_literal_kind {
	CLASSIFY_LIT_INT = 'i',     /* digits whose value fits in int32: 48213 (the scanner's ICONST) */
	CLASSIFY_LIT_NUMERIC = 'f', /* any other number: 1.5  .5  5.  1e3  99999999999 (FCONST) */
	CLASSIFY_LIT_STRING = 's',  /* '...', also the string of N'...' */
	CLASSIFY_LIT_ESTRING = 'e', /* E'...' whose escapes are all single-character ones */
	CLASSIFY_LIT_BITS = 'b',    /* B'...' */
	CLASSIFY_LIT_HEX = 'x',     /* X'...' */
	CLASSIFY_LIT_DOLLAR = 'd',  /* $$...$$, $tag$...$tag$ */
};

/* One literal a key blanked: sql[start .. start + len). */
struct classify_literal {
	size_t start, len;
	char kind; /* enum classify_literal_kind */
};

/* The most bytes the key of 'len' bytes of text takes: a 2-byte placeholder stands for >= 1 byte. */
#define CLASSIFY_CACHE_KEY_MAX(len) (2 * (size_t)(len))

/*
 * Writes the cache key of the text sql[0..len) (up to its first NUL) to
 * 'key', which has room for CLASSIFY_CACHE_KEY_MAX(len) bytes, and returns
 * its length. The key is the text with every literal whose value cannot
 * change classify_sql's answer replaced by a placeholder; everything else,
 * comments included, is kept byte for byte (see classify_cache.c for which
 * literals are blanked and why two texts with one key classify alike). When
 * 'lits' is not NULL it receives the blanked literals in order (it needs
 * room for one per byte of text) and *n_lits their number. Allocates nothing.
 */
size_t classify_cache_key(const char *sql, size_t len, char *key, struct classify_literal *lits,
			  size_t *n_lits);

struct classify_cache;

/*
 * A cache of at most 'max_entries' entries and 'max_bytes' bytes (key,
 * compact result and bookkeeping, each counted). Either bound 0: a cache that
 * keeps nothing. NULL when out of memory.
 */
struct classify_cache *classify_cache_new(size_t max_entries, size_t max_bytes)
	__attribute__((warn_unused_result));

/* Frees 'c' and every entry; NULL is a no-op. */
void classify_cache_free(struct classify_cache *c);

/*
 * Fills 'out' as classify_sql(sql, len, opt, out) would (flags,
 * unknown_reason, n_refs, refs[0..n_refs); later refs are not promised to
 * be zero), from the cache when the key of the text up to its first NUL or
 * 'len' (classify_cache_key) is there: any text that differs from one seen
 * before only in blanked literal values is a hit. A miss classifies and
 * keeps the result, evicting the least recently used entries until both
 * bounds hold; text longer than the parse limit and sessions with
 * standard_conforming_strings off are answered without the cache (so a
 * cached key never answers for a text over the limit). Never fails: out of
 * memory only means the result is not kept. Runs classify_sql, so the
 * thread rules of classify.h apply.
 */
void classify_cache_sql(struct classify_cache *c, const char *sql, size_t len,
			const struct classify_options *opt, struct classify_result *out);

struct classify_cache_stats {
	uint64_t hits;      /* answered from the cache */
	uint64_t misses;    /* cacheable text that was not there (kept or not) */
	uint64_t evictions; /* entries dropped to make room */
	size_t entries;     /* now, never above max_entries */
	size_t bytes;       /* now, never above max_bytes */
};

void classify_cache_stats(const struct classify_cache *c, struct classify_cache_stats *out);

#endif
