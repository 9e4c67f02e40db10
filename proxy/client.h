/*
 * The client side of a session: the startup packet, SSL and GSSAPI
 * encryption negotiation, the client's TLS handshake, what the client sends
 * once logged in (statement bookkeeping, the hold check, retiring), and the
 * linger after the last words. The relay and event dispatch are session.c's.
 */
#ifndef PGVALVE_PROXY_CLIENT_H
#define PGVALVE_PROXY_CLIENT_H

#include <stdint.h>

#include "relay.h"

struct session;

/* SESSION_STARTUP: reads the client's first packet and acts on it. */
void client_startup(struct session *s);

/* SESSION_CLIENT_TLS: drives the TLS handshake with the client. */
void client_tls_step(struct session *s);

/* SESSION_CLOSING: flushes the last words, then lingers (see client.c). */
void client_closing_step(struct session *s);

/* The c2s relay handler (relay_msg_fn). */
enum relay_msg client_on_msg(void *ctx, uint8_t type, uint8_t *body, uint32_t avail, uint32_t len,
			     uint32_t *new_len);

#endif
