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
#include "stmt_shape.h"

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

	/* Statement refresh (docs/architecture.md §4.9, stmt_refresh.h). */
	uint32_t *types; /* parameter types as the client's Parse gave them */
	int n_types;
	uint32_t *shown_params; /* the first ParameterDescription the client got (n -1: none) */
	int n_shown_params;
	struct shape shown;    /* the first RowDescription a Describe of it showed (n -1: none) */
	bool stale;            /* re-prepare before its next use: its tables' row types changed */
	struct shape_map *map; /* re-prepared with a new row type: how it is presented (NULL: as is) */
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
	/*
	 * 'P' Parse, 'C' Close, 'S' Sync (or Query, FunctionCall), 'D' Describe
	 * of a statement; lower case: the same, sent by the proxy itself to
	 * re-prepare a statement (its answers never reach the client).
	 */
	uint8_t kind;
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
	uint32_t injected; /* of those, sent by the proxy: kept across stmt_forget so their answers are still taken out */

	/* A ParameterDescription answered a Describe of a statement: its RowDescription or NoData comes next. */
	struct stmt *describing; /* the Describe's op (owned): name, and op kind in 'describing_kind' */
	uint8_t describing_kind;
	bool refreshed; /* a re-prepare's Describe was answered (stmt_refresh.c resumes the client) */
};

/*
 * The client sent Parse ('name' "" is the unnamed statement, NULL one that
 * could not be read; 'sql' NULL: text unknown).
 */
void stmt_parse_sent(struct stmt_map *m, const char *name, const char *sql, size_t sql_len);
/* The same, with the parameter types the Parse gave ('n' of them at 'types', big-endian as sent). */
void stmt_parse_sent_typed(struct stmt_map *m, const char *name, const char *sql, size_t sql_len,
			   const uint8_t *types, int n);
/* The client sent Describe of statement 'name' (NULL: could not be read). */
void stmt_describe_sent(struct stmt_map *m, const char *name);
/*
 * The proxy sent Close, Parse and Describe of 'st' (a map entry) to
 * re-prepare it: their answers are to be taken out of the stream.
 */
void stmt_refresh_sent(struct stmt_map *m, const struct stmt *st);
/* The client sent Close of a statement ('statement') or portal. 'name' NULL: could not be read. */
void stmt_close_sent(struct stmt_map *m, bool statement, const char *name);
/* The client sent Sync, Query or FunctionCall: a ReadyForQuery will answer it. */
void stmt_sync_sent(struct stmt_map *m);

/* From now on no name is trusted (past a bound, or what the server will answer is unknowable). */
void stmt_forget(struct stmt_map *m);

/* The server's answers. Those returning bool: true when the proxy sent what it answers (drop it). */
bool stmt_parse_complete(struct stmt_map *m);
bool stmt_close_complete(struct stmt_map *m);
/* ParameterDescription ('t') body. */
bool stmt_param_desc(struct stmt_map *m, const uint8_t *body, uint32_t avail, uint32_t len);
/*
 * RowDescription ('T', body) or NoData ('n', body NULL): records what a
 * Describe of a statement showed; returns 1 when it answers the proxy's own
 * re-prepare (drop it), else 0.
 */
int stmt_row_desc(struct stmt_map *m, const uint8_t *body, uint32_t avail, uint32_t len);
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

/*
 * Calls fn on every statement of the map and every one a Parse not yet
 * answered will put there; returns how many it returned true for.
 */
int stmt_each(struct stmt_map *m, bool (*fn)(struct stmt *st, void *arg), void *arg);

#endif
