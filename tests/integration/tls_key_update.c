/*
 * test_tls_record.py's TLS 1.3 client: logs in through pgvalve-proxy as a
 * trust-authenticated role, then before each of a few queries asks for a
 * KeyUpdate (RFC 8446 §4.6.3, OpenSSL's SSL_key_update: "requested" or not,
 * as given), and checks every answer. It counts the KeyUpdate and
 * NewSessionTicket messages the proxy sends (OpenSSL's message callback)
 * and prints them: "ok rounds=N key_updates_received=K tickets=T".
 *
 * usage: tls_key_update HOST PORT USER DATABASE CAFILE MODES
 *        MODES: one letter per round, K = update requested, k = not requested,
 *        - = no KeyUpdate
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int key_updates, tickets;

static void die(const char *what)
{
	fprintf(stderr, "tls_key_update: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void on_message(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
		       void *arg)
{
	const uint8_t *p = buf;

	(void)version;
	(void)ssl;
	(void)arg;
	if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 1)
		return;
	if (p[0] == 24)
		key_updates++;
	else if (p[0] == 4)
		tickets++;
}

static void put_all(SSL *ssl, const void *p, size_t n)
{
	if (SSL_write(ssl, p, (int)n) != (int)n)
		die("SSL_write failed");
}

static void get_all(SSL *ssl, uint8_t *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		int r = SSL_read(ssl, p + got, (int)(n - got));

		if (r <= 0)
			die("the proxy closed the connection or sent a bad record");
		got += (size_t)r;
	}
}

/* Reads one backend message; returns its type, body malloc'd in *body. */
static uint8_t get_message(SSL *ssl, uint8_t **body, uint32_t *len)
{
	uint8_t hdr[5];

	get_all(ssl, hdr, 5);
	*len = ((uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4]) - 4;
	if (*len > (1u << 26))
		die("absurd message length");
	*body = malloc(*len + 1);
	get_all(ssl, *body, *len);
	(*body)[*len] = 0;
	return hdr[0];
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int main(int argc, char **argv)
{
	static const uint8_t ssl_request[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	uint8_t startup[512], answer;
	size_t n = 8;
	SSL_CTX *ctx;
	SSL *ssl;
	int fd, rounds;

	if (argc != 7)
		die("usage: tls_key_update HOST PORT USER DATABASE CAFILE MODES");
	sa.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
		die("bad host");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("cannot connect");
	if (write(fd, ssl_request, sizeof(ssl_request)) != sizeof(ssl_request) || read(fd, &answer, 1) != 1 ||
	    answer != 'S')
		die("the proxy did not accept SSLRequest");

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, argv[5], NULL) != 1)
		die("cannot set up TLS");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = SSL_new(ctx);
	SSL_set_msg_callback(ssl, on_message);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		die("TLS handshake failed");

	/* StartupMessage, protocol 3.0 */
	put_u32(startup + 4, 196608);
	n += (size_t)snprintf((char *)startup + n, sizeof(startup) - n, "user%c%s%cdatabase%c%s%c%c", 0,
			      argv[3], 0, 0, argv[4], 0, 0);
	put_u32(startup, (uint32_t)n);
	put_all(ssl, startup, n);
	for (;;) {
		uint8_t *body;
		uint32_t len;
		uint8_t type = get_message(ssl, &body, &len);

		if (type == 'E')
			die("the login failed");
		if (type == 'R' && (len < 4 || body[3] != 0))
			die("the role is not trust-authenticated");
		free(body);
		if (type == 'Z')
			break;
	}

	rounds = (int)strlen(argv[6]);
	for (int i = 0; i < rounds; i++) {
		char sql[128];
		uint8_t q[160];
		size_t qn;
		char want[64];
		bool got_row = false;

		if (argv[6][i] != '-' &&
		    SSL_key_update(ssl,
				   argv[6][i] == 'K' ? SSL_KEY_UPDATE_REQUESTED
						     : SSL_KEY_UPDATE_NOT_REQUESTED) != 1)
			die("SSL_key_update failed");
		/* A large answer: many records under the new keys. */
		snprintf(sql, sizeof(sql), "SELECT %d || repeat('k', 50000)", i);
		snprintf(want, sizeof(want), "%d", i);
		q[0] = 'Q';
		qn = strlen(sql) + 1;
		put_u32(q + 1, (uint32_t)(4 + qn));
		memcpy(q + 5, sql, qn);
		put_all(ssl, q, 5 + qn);
		for (;;) {
			uint8_t *body;
			uint32_t len;
			uint8_t type = get_message(ssl, &body, &len);

			if (type == 'E')
				die("the query failed");
			if (type == 'D') {
				/* one column: count(2) len(4) value */
				uint32_t vlen = (uint32_t)body[2] << 24 | (uint32_t)body[3] << 16 |
					(uint32_t)body[4] << 8 | body[5];

				if (vlen != strlen(want) + 50000 ||
				    memcmp(body + 6, want, strlen(want)) != 0 || body[6 + vlen - 1] != 'k')
					die("wrong row");
				got_row = true;
			}
			free(body);
			if (type == 'Z')
				break;
		}
		if (!got_row)
			die("no row");
	}
	put_all(ssl, "X\0\0\0\4", 5);
	SSL_shutdown(ssl);
	printf("ok rounds=%d key_updates_received=%d tickets=%d\n", rounds, key_updates, tickets);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return 0;
}
