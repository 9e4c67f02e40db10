/*
 * The verifier lookup of auth.mode "terminate" (auth.user, auth.query): each
 * worker runs auth.query over its own libpq connections in non-blocking mode
 * on its event loop, one connection per database it looks roles up in
 * (auth.dbname, or the client's database), one query in flight per
 * connection and the rest queued in arrival order. A connection that fails
 * fails the lookups waiting on it and is opened again by the next lookup.
 *
 * Answers are cached per worker for auth.cache_ttl_ms (0: no cache), keyed
 * by role and the database looked up in, at most AUTH_CACHE_MAX entries
 * (the least recently used goes first); a role without a verifier is cached
 * too. Cached verifiers are wiped when they expire, are evicted or dropped,
 * and on reload. auth.c drops an entry the server or a client proved stale
 * (see auth_cache_drop()). auth.c asks and is answered; this module never
 * sees a client.
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
enum auth_lookup_result {
	AUTH_LOOKUP_OK,
	AUTH_LOOKUP_FAILED,      /* could not run: 'text' says why */
	AUTH_LOOKUP_NO_DATABASE, /* the server says the database looked up in does not exist */
};

#define AUTH_CACHE_MAX 10000 /* entries per worker */

/*
 * The answer: AUTH_LOOKUP_OK with 'text' the role's verifier, NULL for no
 * row or a NULL password; else 'text' says why the lookup failed. Called on
 * the worker's loop, never from inside auth_lookup_start().
 */
typedef void (*auth_lookup_done_fn)(struct session *s, enum auth_lookup_result r, const char *text);

/*
 * The cached answer for s->user in 'dbname': true (and *text the verifier,
 * NULL for none, valid until the loop runs again; *gen names this answer
 * for auth_cache_drop()) when there is one that has not expired.
 */
bool auth_cache_peek(struct session *s, const char *dbname, const char **text, unsigned long *gen);

/*
 * The answer 'gen' for s->user in 'dbname' proved stale (a proof that does
 * not match it, or the server refusing a login made with it): forgets it, so
 * the next login asks the server again. 'rate_limit': forgets at most once
 * a second per role (a client's wrong password is no proof the verifier
 * changed). False when nothing was dropped (rate-limited, or replaced meanwhile).
 */
bool auth_cache_drop(struct session *s, const char *dbname, unsigned long gen, bool rate_limit);

/*
 * A client's answer does not match the cached answer 'gen' for s->user in
 * 'dbname': true when it may be fetched again to check (at most once a
 * second per role, as rate-limited drops). The entry stays until the new
 * answer replaces it, so a lookup that fails leaves the cache as it was.
 */
bool auth_cache_may_refetch(struct session *s, const char *dbname, unsigned long gen);

/* The auth section may have changed (reload): forgets every cached verifier and closes idle lookup connections. */
void auth_lookup_reload(struct auth_lookup *l);

/*
 * Queues a lookup of s->user in 'dbname' for the session, answered through
 * 'done' (and cached). Returns the request (to cancel), or NULL when it cannot even be
 * queued (out of memory).
 */
struct lookup_req *auth_lookup_start(struct session *s, const char *dbname, auth_lookup_done_fn done);

/* The session is going away: its answer is dropped. */
void auth_lookup_cancel(struct lookup_req *req);

/* Closes a worker's lookup connections (worker teardown); NULL is fine. */
void auth_lookup_free(struct auth_lookup *l);

#endif
