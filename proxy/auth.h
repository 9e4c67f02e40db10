/*
 * Authentication of a session when the proxy terminates it (auth.mode
 * "terminate", see docs/architecture.md, authentication): the client leg
 * (the proxy is the server: SCRAM-SHA-256(-PLUS) or md5 against the role's
 * verifier from the snapshot's userlist, or from auth.query through
 * auth_lookup.c) and then the server leg (the proxy
 * is the client: SCRAM from the recovered ClientKey, -PLUS on a TLS
 * upstream, or md5 from the stored hash). The mechanisms are common/'s
 * (scram.h, md5_auth.h); this module owns the wire messages around them,
 * the per-session state, the errors the client sees, and wiping the keys.
 *
 * Session flow: client.c calls auth_client_begin() after the StartupMessage
 * (state SESSION_CLIENT_AUTH, waiting first for a lookup's answer when the
 * role is not in the userlist and auth.user is set); session.c drives auth_client_step() on client
 * I/O; once the client's proof checks, the startup packet goes back into c2s
 * and server.c connects as in relay mode; server.c hands every
 * Authentication message of the server to auth_server_msg(), which answers
 * it and keeps it from the client, except AuthenticationOk.
 */
#ifndef PGVALVE_PROXY_AUTH_H
#define PGVALVE_PROXY_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "relay.h"

struct session;
struct auth;

/* Whether the session's snapshot says auth.mode terminate. */
bool auth_terminates(const struct session *s);

/*
 * The StartupMessage (startup_len bytes at the head of c2s, s->user set) was
 * read: keeps a copy of it, looks up the role's verifier and sends the first
 * authentication request. May close the session.
 */
void auth_client_begin(struct session *s, uint32_t startup_len);

/* SESSION_CLIENT_AUTH: flushes what goes to the client and reads its answers. */
void auth_client_step(struct session *s);

/*
 * An Authentication ('R') message from the server, whole body. Answers it
 * into c2s and returns RELAY_MSG_DROP, passes AuthenticationOk (and wipes
 * the keys), or closes the session and returns RELAY_MSG_STOP.
 */
enum relay_msg auth_server_msg(struct session *s, const uint8_t *body, uint32_t avail, uint32_t len);

/*
 * An ErrorResponse from the server (its SQLSTATE, maybe NULL) while the
 * session logs in: a 28P01 means the verifier the proxy logged in with is
 * stale, and it is dropped from the cache. The error itself goes to the
 * client as usual.
 */
void auth_server_error(struct session *s, const char *sqlstate);

/* Wipes and frees the session's authentication state; NULL is fine. */
void auth_free(struct auth *a);

#endif
