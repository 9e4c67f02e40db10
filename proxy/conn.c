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
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgvalve/log.h"

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
	if (c->ssl) {
		ERR_clear_error();
		errno = 0;
		n = SSL_read(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
		if (n <= 0)
			n = tls_result(c, (int)n, true);
	} else {
		n = read(c->fd, buf, len);
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

int conn_tls_handshake(struct conn *c)
{
	int n;

	ERR_clear_error();
	c->read_wants_write = c->write_wants_read = false;
	n = SSL_do_handshake(c->ssl);
	if (n == 1)
		return 1;
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

const char *conn_error_text(char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();

	if (e)
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
