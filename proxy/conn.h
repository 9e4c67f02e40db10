/*
 * One socket of a session, plain or TLS, with non-blocking read and write
 * that hide OpenSSL's want-read/want-write dance, and the libevent event
 * whose interest is recomputed from state after every callback.
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

struct conn {
	int fd;
	SSL *ssl;
	struct event *ev;
	short interest;        /* EV_READ/EV_WRITE currently registered */
	bool read_wants_write; /* TLS: the last read needs the socket writable */
	bool write_wants_read; /* TLS: the last write needs the socket readable */
};

/* Returns bytes read (> 0), 0 at end of stream, CONN_AGAIN or CONN_FAILED. */
long conn_read(struct conn *c, void *buf, size_t len);
/* Returns bytes written (> 0), CONN_AGAIN or CONN_FAILED. */
long conn_write(struct conn *c, const void *buf, size_t len);

/* Sets the registered interest to 'want' (EV_READ|EV_WRITE), adjusted for TLS wants. */
void conn_set_interest(struct conn *c, short want);

/* Drives a TLS handshake. Returns 1 done, 0 in progress, -1 failed. */
int conn_tls_handshake(struct conn *c);

/* Text of the latest OpenSSL or socket error, for logs and client errors. */
const char *conn_error_text(char *buf, size_t cap);

void conn_close(struct conn *c);

/* Socket options every proxied socket gets: non-blocking, TCP_NODELAY, keepalive. */
void conn_tune_socket(int fd);

#endif
