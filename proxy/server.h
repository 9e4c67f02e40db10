/*
 * The server side of a session: the upstream a new session goes to, the TCP
 * connect, the SSLRequest and its answer, the upstream TLS handshake, and
 * what the server sends (transaction status, backend key, errors, the SASL
 * mechanism list). The relay and event dispatch are session.c's.
 */
#ifndef PGVALVE_PROXY_SERVER_H
#define PGVALVE_PROXY_SERVER_H

#include <stdint.h>

#include "relay.h"

struct session;

/* Connects to the upstream (or waits in SESSION_WAITING_UPSTREAM while a switchover drains). */
void server_connect(struct session *s);

/* SESSION_CONNECTING: the socket became writable; SSLRequest or login follows. */
void server_connected(struct session *s);

/* SESSION_UPSTREAM_SSLREQ: reads the upstream's one-byte answer. */
void server_ssl_answer(struct session *s);

/* SESSION_UPSTREAM_TLS: drives the TLS handshake with the upstream. */
void server_tls_step(struct session *s);

/* The s2c relay handler (relay_msg_fn). */
enum relay_msg server_on_msg(void *ctx, uint8_t type, uint8_t *body, uint32_t avail, uint32_t len,
			     uint32_t *new_len);

#endif
