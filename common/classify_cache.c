/*
 * The classification cache (see classify_cache.h): a chained hash table over
 * the SQL text, with one doubly linked list in recency order for LRU
 * eviction. It owns the entries and their compact results; classify.c does
 * the classifying and knows nothing of the cache.
 */
#include "pgvalve/classify_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct cache_entry {
	struct cache_entry *chain;          /* next in the hash bucket */
	struct cache_entry *newer, *older;  /* recency list */
	uint64_t hash;
	struct classify_compact *result;
	size_t bytes;                       /* what the entry counts against max_bytes */
	size_t key_len;
	char key[];                         /* the SQL text, not NUL-terminated */
};

struct classify_cache {
	size_t max_entries, max_bytes;
	struct cache_entry **buckets;
	size_t n_buckets;                   /* a power of two */
	struct cache_entry *newest, *oldest;
	struct classify_cache_stats stats;
};

size_t classify_compact_size(const struct classify_result *r)
{
	return sizeof(struct classify_compact) + (size_t)r->n_refs * sizeof(struct classify_ref);
}

struct classify_compact *classify_compact_copy(const struct classify_result *r)
{
	struct classify_compact *c = malloc(classify_compact_size(r));

	if (!c)
		return NULL;
	c->flags = r->flags;
	c->unknown_reason = r->unknown_reason;
	c->n_refs = r->n_refs;
	memcpy(c->refs, r->refs, (size_t)r->n_refs * sizeof(c->refs[0]));
	return c;
}

void classify_compact_fill(const struct classify_compact *c, struct classify_result *out)
{
	out->flags = c->flags;
	out->unknown_reason = c->unknown_reason;
	out->n_refs = c->n_refs;
	memcpy(out->refs, c->refs, (size_t)c->n_refs * sizeof(c->refs[0]));
}

/*
 * 64-bit hash of a key, eight bytes a step (keys run to CLASSIFY_PARSE_MAX_LIMIT):
 * a multiply and a shift per word, then the MurmurHash3 finalizer so that
 * every byte reaches the low bits a bucket is picked by.
 */
static uint64_t hash_key(const char *p, size_t n)
{
	const uint64_t k = 0x9e3779b97f4a7c15u;
	uint64_t h = k ^ n, w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * k;
		h ^= h >> 29;
	}
	w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * k;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53u;
	h ^= h >> 33;
	return h;
}

struct classify_cache *classify_cache_new(size_t max_entries, size_t max_bytes)
{
	struct classify_cache *c = calloc(1, sizeof(*c));
	size_t smallest = sizeof(struct cache_entry) + sizeof(struct classify_compact);

	if (!c)
		return NULL;
	/*
	 * No more entries than the smallest fit in max_bytes, and at least a
	 * bucket an entry: chains stay short without ever resizing.
	 */
	c->max_entries = max_entries < max_bytes / smallest ? max_entries : max_bytes / smallest;
	c->max_bytes = max_bytes;
	c->n_buckets = 16;
	while (c->n_buckets < c->max_entries && c->n_buckets <= SIZE_MAX / 4)
		c->n_buckets *= 2;
	c->buckets = calloc(c->n_buckets, sizeof(c->buckets[0]));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	return c;
}

void classify_cache_free(struct classify_cache *c)
{
	struct cache_entry *e, *older;

	if (!c)
		return;
	for (e = c->newest; e; e = older) {
		older = e->older;
		free(e->result);
		free(e);
	}
	free(c->buckets);
	free(c);
}

static void list_unlink(struct classify_cache *c, struct cache_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
}

static void list_push_newest(struct classify_cache *c, struct cache_entry *e)
{
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
}

static struct cache_entry **bucket_of(const struct classify_cache *c, uint64_t hash)
{
	return &c->buckets[hash & (c->n_buckets - 1)];
}

static void evict_oldest(struct classify_cache *c)
{
	struct cache_entry *e = c->oldest, **link;

	for (link = bucket_of(c, e->hash); *link != e; link = &(*link)->chain)
		;
	*link = e->chain;
	list_unlink(c, e);
	c->stats.entries--;
	c->stats.bytes -= e->bytes;
	c->stats.evictions++;
	free(e->result);
	free(e);
}

/* Keeps 'r' as the result for key[0..len); on out of memory keeps nothing. */
static void insert(struct classify_cache *c, const char *key, size_t len, uint64_t hash,
		   const struct classify_result *r)
{
	size_t need = sizeof(struct cache_entry) + len + classify_compact_size(r);
	struct cache_entry *e, **bucket;

	if (c->max_entries == 0 || need > c->max_bytes)
		return;
	e = malloc(sizeof(*e) + len);
	if (!e || !(e->result = classify_compact_copy(r))) {
		free(e);
		return;
	}
	while (c->stats.entries >= c->max_entries || c->stats.bytes + need > c->max_bytes)
		evict_oldest(c);
	e->hash = hash;
	e->bytes = need;
	e->key_len = len;
	memcpy(e->key, key, len);
	bucket = bucket_of(c, hash);
	e->chain = *bucket;
	*bucket = e;
	list_push_newest(c, e);
	c->stats.entries++;
	c->stats.bytes += need;
}

void classify_cache_sql(struct classify_cache *c, const char *sql, size_t len,
			const struct classify_options *opt, struct classify_result *out)
{
	struct cache_entry *e;
	uint64_t hash;

	len = strnlen(sql, len);   /* classify_sql stops at a NUL: equal text, equal key */
	/*
	 * Past the parse limit, or with standard_conforming_strings off, the
	 * answer is UNKNOWN without parsing; below it, classify_sql's result
	 * depends on the text alone, so one entry serves every option set.
	 */
	if (opt->standard_conforming_strings_off || len > opt->parse_max_bytes ||
	    len > CLASSIFY_PARSE_MAX_LIMIT) {
		classify_sql(sql, len, opt, out);
		return;
	}
	hash = hash_key(sql, len);
	for (e = *bucket_of(c, hash); e; e = e->chain) {
		if (e->hash == hash && e->key_len == len && memcmp(e->key, sql, len) == 0) {
			c->stats.hits++;
			list_unlink(c, e);
			list_push_newest(c, e);
			classify_compact_fill(e->result, out);
			return;
		}
	}
	c->stats.misses++;
	classify_sql(sql, len, opt, out);
	/* Out of memory inside classify_sql is no verdict on the text: ask again next time. */
	if (!(out->flags & CLASSIFY_UNKNOWN) || strcmp(out->unknown_reason, "out of memory") != 0)
		insert(c, sql, len, hash, out);
}

void classify_cache_stats(const struct classify_cache *c, struct classify_cache_stats *out)
{
	*out = c->stats;
}
