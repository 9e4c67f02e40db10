/*
 * The verifier lookup of auth.mode "terminate" (auth.user, auth.query): each
 * worker runs auth.query over its own libpq connections in non-blocking mode
 * on its event loop, one connection per database it looks roles up in
 * (auth.dbname, or the client's database), one query in flight per
 * connection and the rest queued in arrival order. A connection that fails
 * fails the lookups waiting on it and is opened again by the next lookup.
 * Every lookup asks the server (no cache yet: as cache_ttl_ms 0), so a
 * rotated password works at once. auth.c asks and is answered; this module
 * never sees a client.
 */
#ifndef PGVALVE_PROXY_AUTH_LOOKUP_H
#define PGVALVE_PROXY_AUTH_LOOKUP_H

#include <stdbool.h>

struct session;
struct worker;
struct auth_lookup;
struct lookup_req;

/*
 * The answer: 'ok' false when the lookup could not run ('text' then says
 * why); else 'text' is the role's verifier, NULL for no row or a NULL
 * password. Called on the worker's loop, never from inside
 * auth_lookup_start().
 */
typedef void (*auth_lookup_done_fn)(struct session *s, bool ok, const char *text);

/*
 * Queues a lookup of s->user in 'dbname' for the session, answered through
 * 'done'. Returns the request (to cancel), or NULL when it cannot even be
 * queued (out of memory).
 */
struct lookup_req *auth_lookup_start(struct session *s, const char *dbname, auth_lookup_done_fn done);

/* The session is going away: its answer is dropped. */
void auth_lookup_cancel(struct lookup_req *req);

/* Closes a worker's lookup connections (worker teardown); NULL is fine. */
void auth_lookup_free(struct auth_lookup *l);

#endif
