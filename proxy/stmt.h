/*
 * A session's named prepared statements: name → SQL text, as sent in Parse
 * and forgotten at Close. Holds (DESIGN.md §3.2) classify a statement that
 * was prepared before the hold began from this text when it is executed.
 * Bounded per session; past the bounds the map says so ("overflowed"), and
 * a caller must then treat unknown names as touching anything.
 */
#ifndef PGVALVE_PROXY_STMT_H
#define PGVALVE_PROXY_STMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgvalve/classify.h"
#include "pgvalve/classify_cache.h"

#define STMT_MAX_COUNT 4096
#define STMT_MAX_BYTES (4u << 20)

struct stmt {
	struct stmt *next;       /* hash chain */
	uint32_t hash;
	char *name;
	char *sql;               /* NULL: text unknown (longer than the relay shows whole) */
	/* Its classification, made once, the first time a hold needs it (NULL: not yet). */
	struct classify_compact *res;
};

/*
 * Fills 'r' with the classification of 'st', classifying its text (through
 * 'cache') the first time and reusing that afterwards (the text of a named
 * statement never changes). 'st' is the map's own entry, hence not const.
 */
void stmt_classify(struct stmt *st, struct classify_cache *cache, const struct classify_options *opt,
		   struct classify_result *r);

struct stmt_map {
	struct stmt **slots;     /* NULL until the first named Parse */
	uint32_t n_slots;
	uint32_t count;
	size_t bytes;
	bool overflowed;         /* a statement was dropped for the bounds */
};

/* Records (or replaces) 'name'. 'sql' may be NULL for "text unknown". */
void stmt_put(struct stmt_map *m, const char *name, const char *sql, size_t sql_len);
void stmt_remove(struct stmt_map *m, const char *name);
/* Borrowed; valid until the next put/remove/clear. NULL if unknown. */
struct stmt *stmt_peek(const struct stmt_map *m, const char *name);
void stmt_clear(struct stmt_map *m);

#endif
