/*
 * Blocking message I/O for scram_login.c and scram_serve.c, the two test
 * programs of test_scram_core.py: one socket, TLS once 'wire_ssl' is set,
 * big-endian Int32s, and reading one message (type byte, Int32 length,
 * body) whichever side sends it.
 */
#ifndef PGVALVE_TEST_WIRE_IO_H
#define PGVALVE_TEST_WIRE_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/ssl.h>

static int wire_fd = -1;
static SSL *wire_ssl;

static inline bool send_all(const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = wire_ssl ? SSL_write(wire_ssl, p, (int)len) : write(wire_fd, p, len);

		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static inline bool recv_all(void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = wire_ssl ? SSL_read(wire_ssl, p, (int)len) : read(wire_fd, p, len);

		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static inline void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static inline uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One message: its type and a malloc'd, NUL-terminated body of *len bytes; NULL on I/O errors. */
static inline unsigned char *read_message(char *type, size_t *len)
{
	unsigned char hdr[5], *body;
	uint32_t n;

	if (!recv_all(hdr, 5))
		return NULL;
	n = get32(hdr + 1);
	if (n < 4 || n > (1u << 20))
		return NULL;
	body = malloc(n - 4 + 1);
	if (!body || !recv_all(body, n - 4)) {
		free(body);
		return NULL;
	}
	body[n - 4] = '\0';
	*type = (char)hdr[0];
	*len = n - 4;
	return body;
}

/* A message of 'type' with body[len]. */
static inline bool send_message(char type, const void *body, size_t len)
{
	unsigned char hdr[5];

	hdr[0] = (unsigned char)type;
	put32(hdr + 1, (uint32_t)(len + 4));
	return send_all(hdr, 5) && (len == 0 || send_all(body, len));
}

/* Ends the connection: TLS close_notify once 'wire_ssl' is set, then 'ctx' (NULL: none) and the socket. */
static inline void wire_close(SSL_CTX *ctx)
{
	if (wire_ssl) {
		SSL_shutdown(wire_ssl);
		SSL_free(wire_ssl);
		wire_ssl = NULL;
	}
	SSL_CTX_free(ctx);
	close(wire_fd);
	wire_fd = -1;
}

#endif
