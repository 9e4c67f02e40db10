/*
 * Statement refresh (docs/architecture.md §4.9): after a change of a
 * table's row type commits under a hold (the key type change's swap,
 * unswap, and its shadow columns coming and going), the coordinator asks
 * every proxy to refresh the named prepared statements that read those
 * tables (POST /statements/refresh). They are marked stale; the next Bind
 * or Describe of one is held back while the proxy re-prepares it on the
 * server (Close, Parse with the same name, text and the parameter types the
 * client was shown, Describe, Flush; their answers never reach the client),
 * so PostgreSQL never answers 0A000 "cached plan must not change result
 * type". Its results are then presented in the shape the client was shown
 * (stmt_shape.h): int8 narrowed back to int4/int2 in RowDescription and in
 * binary DataRow values, a value that does not fit ending that result with
 * 22003 instead of a wrong number, columns it was not shown left out.
 *
 * A session pays for none of this until one of its statements is marked:
 * only then does it track Bind, Describe and Execute against the server's
 * answers (which portal, which statement, which formats).
 */
#ifndef PGVALVE_PROXY_STMT_REFRESH_H
#define PGVALVE_PROXY_STMT_REFRESH_H

#include <stdbool.h>
#include <stdint.h>

#include "relay.h"

struct session;
struct worker;
struct hold;

/* One worker's share of a refresh (a fan-out job's slot). */
struct refresh_job {
	const struct hold *tables; /* the tables, as an all hold names them */
	int sessions;              /* filled: sessions with a statement marked */
	int statements;            /* filled: statements marked */
};

/* Fan-out job body: marks the statements of the worker's sessions that read job->tables. */
void refresh_mark_job(struct worker *w, void *arg);

/* Frees a session's refresh state. */
void refresh_free(struct session *s);

/* The relay rules the session scans with: the worker's, or more while it has marked statements. */
const struct relay_rules *refresh_rules(struct session *s, bool c2s);

/*
 * A client message that passed the hold check (client.c): may hold it
 * back (STOP, with bytes staged to go in front of it: refresh_take_staged)
 * while a statement is re-prepared, or replace it (a Bind whose result
 * formats must name the server's columns: the new one staged, this one
 * dropped when scanned again).
 */
enum relay_msg refresh_client_msg(struct session *s, uint8_t type, uint8_t *body, uint32_t avail,
				  uint32_t len);

/* Whether the message scanning stopped at is to be dropped now (it was replaced); clears it. */
bool refresh_drop_current(struct session *s);
/* The same, without clearing. */
bool refresh_drop_pending(const struct session *s);

/* A server message, after server.c's bookkeeping: rewrites results, or ends one with 22003. */
enum relay_msg refresh_server_msg(struct session *s, uint8_t type, uint8_t *body, uint32_t avail,
				  uint32_t len, uint32_t *new_len);

/*
 * Bytes a handler staged to go before the message scanning stopped at
 * (NULL: none). The caller inserts them and calls refresh_staged_done().
 */
const uint8_t *refresh_staged(struct session *s, uint32_t *len);
void refresh_staged_done(struct session *s);

/* A re-prepare was answered: the client's held-back message may go on (true once). */
bool refresh_take_resume(struct session *s);

#endif
