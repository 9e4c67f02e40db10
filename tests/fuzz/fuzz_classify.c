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
 * bounds; and the answer keeps the shape classify.h promises. libpg_query recurses without
 * limit and leaks a pthread key per thread that parses, so all of this runs
 * on one long-lived thread with a CLASSIFY_STACK_BYTES stack. Checks are
 * FUZZ_CHECKs, which abort whatever NDEBUG says.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/classify_cache.h"
#include "fuzz_check.h"

#define CACHE_ENTRIES 64
#define CACHE_BYTES (64u << 10)    /* below 64 typical entries: byte evictions too */
/* More than any entry for 'len' bytes of text takes, whatever its refs. */
#define ENTRY_BYTES_MAX(len) \
	((len) + sizeof(struct classify_compact) + CLASSIFY_MAX_REFS * sizeof(struct classify_ref) + 256)
#define ALL_FLAGS (CLASSIFY_UNKNOWN | CLASSIFY_TX_CONTROL | CLASSIFY_DDL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A seed that starts with ' ' (0x20) gets the default options. */
static const size_t parse_limits[8] = {
	65536, 0, 1, 8, 32, 256, 4096, CLASSIFY_PARSE_MAX_LIMIT + 1,
};

/* The one input in flight, handed from libFuzzer's thread to the parsing thread. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const uint8_t *data;
	size_t size;
	bool pending;
} job = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, false };

static struct classify_cache *cache;
static struct classify_result direct[2], cached[2];   /* 8 KB each: not on the stack */

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
	limit = opt.parse_max_bytes < CLASSIFY_PARSE_MAX_LIMIT ? opt.parse_max_bytes : CLASSIFY_PARSE_MAX_LIMIT;
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
			FUZZ_CHECK(after.hits >= before.hits + 1);   /* the first call kept it */
	} else
		FUZZ_CHECK(after.hits == before.hits && after.misses == before.misses);
	free(sql);
}

/* The parsing thread: runs each input handed over, then says it is done. */
static void *parser_main(void *arg)
{
	pthread_mutex_lock(&job.lock);
	for (;;) {
		while (!job.pending)
			pthread_cond_wait(&job.cond, &job.lock);
		run(job.data, job.size);
		job.pending = false;
		pthread_cond_broadcast(&job.cond);
	}
	return NULL;
}

static void start_parser(void)
{
	pthread_attr_t attr;
	pthread_t th;

	cache = classify_cache_new(CACHE_ENTRIES, CACHE_BYTES);
	FUZZ_CHECK(cache != NULL);
	FUZZ_CHECK(pthread_attr_init(&attr) == 0);
	FUZZ_CHECK(pthread_attr_setstacksize(&attr, CLASSIFY_STACK_BYTES) == 0);
	FUZZ_CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0);
	FUZZ_CHECK(pthread_create(&th, &attr, parser_main, NULL) == 0);
	pthread_attr_destroy(&attr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, start_parser);
	pthread_mutex_lock(&job.lock);
	job.data = data;
	job.size = size;
	job.pending = true;
	pthread_cond_broadcast(&job.cond);
	while (job.pending)
		pthread_cond_wait(&job.cond, &job.lock);
	pthread_mutex_unlock(&job.lock);
	return 0;
}
