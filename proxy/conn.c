/*
 * Socket and TLS I/O for one side of a session. The session decides what
 * to read and write; this file owns how: errno, SSL_get_error, and turning
 * OpenSSL's cross-direction wants into event interest.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgvalve/log.h"
#include "pgvalve/scram.h"
#include "tls_record.h"

_Static_assert((int)CONN_AGAIN == (int)TLS_RECORD_AGAIN && (int)CONN_FAILED == (int)TLS_RECORD_FAILED,
	       "tls_record answers like conn");
_Static_assert(TLS_RECORD_CBIND_MAX == SCRAM_CBIND_MAX, "one size of channel binding data");

void conn_tune_socket(int fd)
{
	int one = 1;

	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

static long tls_result(struct conn *c, int n, bool reading)
{
	int err = SSL_get_error(c->ssl, n);

	switch (err) {
	case SSL_ERROR_WANT_READ:
		if (!reading)
			c->write_wants_read = true;
		return CONN_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		if (reading)
			c->read_wants_write = true;
		return CONN_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		/* An unclean close at a record boundary: treat it as end of stream. */
		if (ERR_peek_error() == 0 && (errno == 0 || errno == ECONNRESET))
			return reading ? 0 : CONN_FAILED;
		return CONN_FAILED;
	default:
		return CONN_FAILED;
	}
}

long conn_read(struct conn *c, void *buf, size_t len)
{
	long n;

	c->read_wants_write = false;
	c->drained = false;
	if (!c->ssl && c->rec) {
		n = tls_record_read(c->rec, c->fd, buf, len);
		c->drained = n > 0 && tls_record_drained(c->rec);
		return n;
	}
	if (c->ssl) {
		ERR_clear_error();
		errno = 0;
		n = SSL_read(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
		if (n <= 0)
			n = tls_result(c, (int)n, true);
	} else {
		n = read(c->fd, buf, len);
		c->drained = n > 0 && (size_t)n < len;
		if (n < 0)
			n = (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? CONN_AGAIN
											: CONN_FAILED;
	}
	return n;
}

long conn_write(struct conn *c, const void *buf, size_t len)
{
	long n;

	c->write_wants_read = false;
	if (!c->ssl && c->rec)
		return tls_record_write(c->rec, c->fd, buf, len);
	if (c->ssl) {
		ERR_clear_error();
		errno = 0;
		n = SSL_write(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
		if (n <= 0)
			n = tls_result(c, (int)n, false);
		if (n == 0)
			n = CONN_FAILED;
	} else {
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0)
			n = (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? CONN_AGAIN
											: CONN_FAILED;
	}
	return n;
}

void conn_set_interest(struct conn *c, short want)
{
	short effective = 0;

	if (want & EV_READ)
		effective |= c->read_wants_write ? EV_WRITE : EV_READ;
	if (want & EV_WRITE)
		effective |= c->write_wants_read ? EV_READ : EV_WRITE;
	if (effective == c->interest || !c->ev)
		return;
	/* A persistent event's flags cannot change while it is added: re-add it. */
	event_del(c->ev);
	event_assign(c->ev, event_get_base(c->ev), c->fd, effective | EV_PERSIST, event_get_callback(c->ev),
		     event_get_callback_arg(c->ev));
	if (effective)
		event_add(c->ev, NULL);
	c->interest = effective;
}

/* The keylog hook: TLS 1.3 traffic secrets go to the connection the SSL belongs to. */
static void keylog(const SSL *ssl, const char *line)
{
	struct conn *c = SSL_get_app_data(ssl);

	if (!c || strncmp(line + 6, "_TRAFFIC_SECRET_0 ", 18) != 0)
		return;
	if (!c->rec)
		c->rec = calloc(1, sizeof(*c->rec));
	if (c->rec)
		tls_record_keylog(c->rec, line, SSL_is_server(ssl));
}

void conn_tls_ctx_setup(SSL_CTX *ctx)
{
	SSL_CTX_set_keylog_callback(ctx, keylog);
}

static void drop_capture(struct conn *c)
{
	if (c->rec) {
		tls_record_end(c->rec, -1);
		free(c->rec);
		c->rec = NULL;
	}
}

/*
 * After a finished handshake: TLS 1.3 with both secrets captured, a suite
 * tls_record does, and nothing read ahead inside OpenSSL, goes on without
 * the SSL object (docs/architecture.md §3.9). Anything else keeps OpenSSL.
 */
/*
 * tls-server-end-point (RFC 5929) of the server's certificate of 'ssl': our
 * own on a client leg, the peer's on a server leg — so a client is checked
 * against the certificate its handshake showed, even after a SIGHUP swapped
 * the snapshot's. False for a certificate with no such hash (Ed25519): no
 * -PLUS offered then.
 */
static bool ssl_cbind(SSL *ssl, unsigned char *out, size_t *len)
{
	X509 *cert = SSL_is_server(ssl) ? SSL_get_certificate(ssl) : SSL_get0_peer_certificate(ssl);

	*len = 0;
	return cert && scram_cert_endpoint_hash(cert, out, len) && *len > 0;
}

static void handoff(struct conn *c)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(c->ssl);
	bool server = SSL_is_server(c->ssl);

	if (!c->rec)
		return;
	if (SSL_version(c->ssl) != TLS1_3_VERSION || !cipher || SSL_has_pending(c->ssl) ||
	    SSL_pending(c->ssl) > 0 ||
	    !tls_record_start(c->rec, (uint16_t)SSL_CIPHER_get_protocol_id(cipher), server, NULL, NULL)) {
		drop_capture(c);
		return;
	}
	{
		/* Channel binding needs the server's certificate, which goes with the SSL object. */
		unsigned char hash[SCRAM_CBIND_MAX];
		size_t len = 0;

		if (ssl_cbind(c->ssl, hash, &len)) {
			memcpy(c->rec->cbind, hash, len);
			c->rec->cbind_len = (uint8_t)len;
		}
	}
	SSL_free(c->ssl); /* sends nothing: the session goes on in tls_record */
	c->ssl = NULL;
}

int conn_tls_handshake(struct conn *c)
{
	int n;

	ERR_clear_error();
	c->read_wants_write = c->write_wants_read = false;
	SSL_set_app_data(c->ssl, c);
	n = SSL_do_handshake(c->ssl);
	if (n == 1) {
		handoff(c);
		return 1;
	}
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->read_wants_write = true; /* express as "reading needs writable" */
		return 0;
	default:
		return -1;
	}
}

bool conn_is_tls(const struct conn *c)
{
	return c->ssl || c->rec;
}

bool conn_has_pending(const struct conn *c)
{
	if (c->ssl)
		return SSL_pending(c->ssl) > 0;
	return c->rec && tls_record_pending(c->rec);
}

bool conn_cbind(const struct conn *c, unsigned char *out, size_t *len)
{
	*len = 0;
	if (c->ssl)
		return ssl_cbind(c->ssl, out, len);
	if (!c->rec || c->rec->cbind_len == 0)
		return false;
	memcpy(out, c->rec->cbind, c->rec->cbind_len);
	*len = c->rec->cbind_len;
	return true;
}

const char *conn_error_text(char *buf, size_t cap)
{
	const char *rec_error = tls_record_error();
	unsigned long e = ERR_get_error();

	if (rec_error)
		snprintf(buf, cap, "%s", rec_error);
	else if (e)
		ERR_error_string_n(e, buf, cap);
	else
		snprintf(buf, cap, "%s", errno ? strerror(errno) : "connection closed");
	ERR_clear_error();
	return buf;
}

void conn_close(struct conn *c)
{
	if (c->ev) {
		event_free(c->ev);
		c->ev = NULL;
	}
	if (c->rec) {
		/* After the handoff: close_notify from here; during a handshake: only the secrets go. */
		tls_record_end(c->rec, c->ssl ? -1 : c->fd);
		free(c->rec);
		c->rec = NULL;
	}
	if (c->ssl) {
		/* Best effort close_notify; never wait for the peer's. */
		SSL_set_quiet_shutdown(c->ssl, 0);
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->interest = 0;
}
