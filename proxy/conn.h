/*
 * One socket of a session, plain or TLS, with non-blocking read and write
 * that hide OpenSSL's want-read/want-write dance, and the libevent event
 * whose interest is recomputed from state after every callback. A TLS 1.3
 * connection drops its SSL object once the handshake is done and goes on
 * with proxy/tls_record.c (docs/architecture.md §3.10).
 */
#ifndef PGVALVE_PROXY_CONN_H
#define PGVALVE_PROXY_CONN_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

enum {
	CONN_AGAIN = -2,  /* would block: retry when the event fires */
	CONN_FAILED = -1, /* hard error; errno or the OpenSSL queue says which */
};

struct tls_record;

struct conn {
	int fd;
	SSL *ssl;               /* the handshake, and TLS 1.2 after it */
	struct tls_record *rec; /* TLS 1.3 after the handshake (captures secrets during it) */
	struct event *ev;
	short interest;        /* EV_READ/EV_WRITE currently registered */
	bool read_wants_write; /* TLS: the last read needs the socket writable */
	bool write_wants_read; /* TLS: the last write needs the socket readable */
	bool drained;          /* the last read emptied the socket: another would be CONN_AGAIN */
};

/*
 * Returns bytes read (> 0), 0 at end of stream, CONN_AGAIN or CONN_FAILED.
 * Sets c->drained when the socket had no more (a short read, nothing
 * decrypted left over): the caller may wait for the event instead of
 * reading again for CONN_AGAIN.
 */
long conn_read(struct conn *c, void *buf, size_t len);
/* Returns bytes written (> 0), CONN_AGAIN or CONN_FAILED. */
long conn_write(struct conn *c, const void *buf, size_t len);

/* Sets the registered interest to 'want' (EV_READ|EV_WRITE), adjusted for TLS wants. */
void conn_set_interest(struct conn *c, short want);

/*
 * Drives a TLS handshake. Returns 1 done, 0 in progress, -1 failed. When it
 * is done on TLS 1.3 the SSL object is freed and records are the proxy's own.
 */
int conn_tls_handshake(struct conn *c);

/* Installs the keylog hook that hands TLS 1.3 traffic secrets to the connection (proxy/tls.c). */
void conn_tls_ctx_setup(SSL_CTX *ctx);

/* True if the connection is TLS (handshake done or under way). */
bool conn_is_tls(const struct conn *c);

/* True if decrypted or whole records wait that the socket will never signal again. */
bool conn_has_pending(const struct conn *c);

/*
 * tls-server-end-point channel binding data (RFC 5929) of the certificate
 * the server end of this TLS session showed (ours on a client leg, the
 * server's on a server leg), for SCRAM-PLUS on either leg. False without TLS
 * or a certificate.
 */
bool conn_cbind(const struct conn *c, unsigned char *out, size_t *len);

/* Text of the latest OpenSSL or socket error, for logs and client errors. */
const char *conn_error_text(char *buf, size_t cap);

void conn_close(struct conn *c);

/* Socket options every proxied socket gets: non-blocking, TCP_NODELAY, keepalive. */
void conn_tune_socket(int fd);

#endif
