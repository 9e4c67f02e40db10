/*
 * A session's named prepared statements: name → SQL text, as the server
 * holds them. Holds (docs/architecture.md, the hold check) classify a statement that was prepared
 * before the hold began from this text when it is executed.
 *
 * Parse and Close take effect on the server only when it answers them
 * (ParseComplete, CloseComplete): a Parse can fail (42P05: the name exists),
 * and after any error the server skips the rest of the batch up to Sync. So
 * what the client sends is queued in order and applied, or dropped, as the
 * server's answers arrive; a Bind looks at the queue first, so a statement
 * parsed and bound in the same batch is found.
 *
 * Bounded per session; past the bounds (or if the answers ever fail to line
 * up with the queue) the map forgets everything and says so ("overflowed"):
 * a caller must then treat every name as touching anything.
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
#define STMT_MAX_PENDING 8192 /* Parse/Close/Sync sent and not yet answered */

struct stmt {
	struct stmt *next; /* hash chain */
	uint32_t hash;
	char *name;
	char *sql; /* NULL: text unknown (longer than the relay shows whole) */
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

/* One message the server has yet to answer: what to do when it does. */
struct stmt_op {
	uint8_t kind; /* 'P' Parse, 'C' Close, 'S' Sync (or Query, FunctionCall) */
	struct stmt
		*st; /* Parse: the statement (NULL: unnamed); Close: the name (NULL: not a named statement) */
};

struct stmt_map {
	struct stmt **slots; /* NULL until the first named ParseComplete */
	uint32_t n_slots;
	uint32_t count;
	size_t bytes;    /* the map's and the queue's statements */
	bool overflowed; /* something was forgotten: no name can be trusted */

	struct stmt_op *ops; /* ring of pending operations, oldest at ops_head */
	uint32_t ops_cap;
	uint32_t ops_head;
	uint32_t ops_n;
};

/*
 * The client sent Parse ('name' "" is the unnamed statement, NULL one that
 * could not be read; 'sql' NULL: text unknown).
 */
void stmt_parse_sent(struct stmt_map *m, const char *name, const char *sql, size_t sql_len);
/* The client sent Close of a statement ('statement') or portal. 'name' NULL: could not be read. */
void stmt_close_sent(struct stmt_map *m, bool statement, const char *name);
/* The client sent Sync, Query or FunctionCall: a ReadyForQuery will answer it. */
void stmt_sync_sent(struct stmt_map *m);

/* From now on no name is trusted (past a bound, or what the server will answer is unknowable). */
void stmt_forget(struct stmt_map *m);

/* The server's answers. */
void stmt_parse_complete(struct stmt_map *m);
void stmt_close_complete(struct stmt_map *m);
void stmt_error(struct stmt_map *m);
void stmt_ready(struct stmt_map *m);

/*
 * The statement a Bind of 'name' sent now will run, if the server runs it
 * at all: the last Parse or Close of it in the current batch, else the map's.
 * Borrowed; valid until the next call on 'm'. NULL: no such statement, or
 * '*uncertain': the map overflowed, or an unanswered earlier batch changes
 * the name (whether that took effect is not known yet).
 */
struct stmt *stmt_lookup(const struct stmt_map *m, const char *name, bool *uncertain);

/* The map as the server has confirmed it. Borrowed, like stmt_lookup. */
struct stmt *stmt_peek(const struct stmt_map *m, const char *name);

void stmt_clear(struct stmt_map *m);

#endif
