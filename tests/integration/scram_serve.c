/*
 * scram_serve: plays a PostgreSQL server for one login, authenticating the
 * client with common/scram.c's server end (or common/md5_auth.c) from a
 * stored verifier, as the proxy's client leg will in terminate mode.
 * test_scram_core.py points libpq at it; it is no user tool.
 *
 *   scram_serve SECRET CERT KEY
 *
 * Listens on 127.0.0.1 (a free port, printed first as "port N"), accepts one
 * connection, answers SSLRequest with TLS (CERT and KEY, PEM) and offers
 * SCRAM-SHA-256-PLUS bound to CERT there, SCRAM-SHA-256 always (SECRET a
 * SCRAM verifier), or asks for md5 (SECRET an md5 hash). On success it sends
 * AuthenticationOk, BackendKeyData and ReadyForQuery, prints
 * "authenticated <mechanism> <ClientKey hex>" ("-" for md5), waits for the
 * client to go and exits 0; on failure it sends FATAL 28P01 and prints
 * "refused <scram result>" (exit 1).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "pgvalve/md5_auth.h"
#include "pgvalve/scram.h"
#include "wire_io.h"

/* An Authentication* message: code, then 'extra'. */
static bool send_auth(uint32_t code, const void *extra, size_t len)
{
	unsigned char body[4 + 2 * SCRAM_MESSAGE_MAX];

	put32(body, code);
	if (len > 0)
		memcpy(body + 4, extra, len);
	return send_message('R', body, 4 + len);
}

static int refuse(const char *why)
{
	static const char err[] = "SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0";

	send_message('E', err, sizeof(err));
	printf("refused %s\n", why);
	return 1;
}

static bool finish_login(void)
{
	static const unsigned char key[8] = { 0, 0, 0, 42, 1, 2, 3, 4 };
	static const char *const params[][2] = {
		{ "server_version", "15.0" },  { "client_encoding", "UTF8" },
		{ "server_encoding", "UTF8" }, { "standard_conforming_strings", "on" },
		{ "integer_datetimes", "on" }, { "DateStyle", "ISO, MDY" },
	};
	bool ok = send_auth(0, NULL, 0);

	for (size_t i = 0; ok && i < sizeof(params) / sizeof(params[0]); i++) {
		char body[128];
		int n = snprintf(body, sizeof(body), "%s%c%s", params[i][0], 0, params[i][1]);

		ok = send_message('S', body, (size_t)n + 1);
	}
	return ok && send_message('K', key, sizeof(key)) && send_message('Z', "I", 1);
}

static int serve_scram(const struct scram_verifier *v, const unsigned char *cbind, size_t cbind_len)
{
	struct scram_server *s = scram_server_new(v, cbind, cbind_len);
	char out[SCRAM_MESSAGE_MAX], type;
	const char *mechs, *mech, *msg;
	size_t n, out_len, mlen;
	unsigned char *body, key[SCRAM_KEY_LEN];
	enum scram_result r;

	mechs = scram_server_mechanisms(s, &mlen);
	if (!send_auth(10, mechs, mlen))
		return refuse("send");
	body = read_message(&type, &n);
	if (!body || type != 'p' ||
	    scram_parse_initial_response((char *)body, n, &mech, &msg, &n) != SCRAM_CONTINUE) {
		free(body);
		scram_server_free(s);
		return refuse("malformed");
	}
	r = scram_server_first(s, mech, msg, n, out, sizeof(out), &out_len);
	free(body);
	if (r != SCRAM_CONTINUE || !send_auth(11, out, out_len)) {
		scram_server_free(s);
		return refuse(scram_result_name(r));
	}
	body = read_message(&type, &n);
	r = body && type == 'p' ? scram_server_final(s, (char *)body, n, out, sizeof(out), &out_len)
				: SCRAM_MALFORMED;
	free(body);
	if (r != SCRAM_DONE || !scram_server_client_key(s, key)) {
		scram_server_free(s);
		return refuse(scram_result_name(r));
	}
	if (!send_auth(12, out, out_len) || !finish_login()) {
		scram_server_free(s);
		return refuse("send");
	}
	printf("authenticated %s ", scram_server_mechanism(s));
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		printf("%02x", key[i]);
	printf("\n");
	scram_server_free(s);
	return 0;
}

static int serve_md5(const char *hash)
{
	unsigned char salt[MD5_AUTH_SALT_LEN], *body;
	char type;
	size_t n;
	bool ok;

	if (RAND_bytes(salt, sizeof(salt)) != 1 || !send_auth(5, salt, sizeof(salt)))
		return refuse("send");
	body = read_message(&type, &n);
	/* PasswordMessage: the response, NUL-terminated. */
	ok = body && type == 'p' && n > 0 && body[n - 1] == '\0' &&
		md5_auth_check(hash, salt, (char *)body, n - 1);
	free(body);
	if (!ok)
		return refuse("failed");
	if (!finish_login())
		return refuse("send");
	printf("authenticated md5 -\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t alen = sizeof(addr);
	unsigned char first[8], cbind[SCRAM_CBIND_MAX];
	size_t cbind_len = 0;
	struct scram_verifier v;
	bool is_scram;
	SSL_CTX *ctx;
	char type;
	int lfd, rc;

	if (argc != 4) {
		fprintf(stderr, "usage: scram_serve SECRET CERT KEY\n");
		return 2;
	}
	is_scram = scram_verifier_parse(argv[1], &v);
	if (!is_scram && !md5_auth_is_hash(argv[1])) {
		fprintf(stderr, "SECRET is neither a SCRAM verifier nor an md5 hash\n");
		return 2;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
	    !scram_cert_endpoint_hash(SSL_CTX_get0_certificate(ctx), cbind, &cbind_len)) {
		fprintf(stderr, "cannot use the certificate\n");
		return 2;
	}
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0)
		return 2;
	printf("port %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	wire_fd = accept(lfd, NULL, NULL);
	if (wire_fd < 0)
		return 2;
	/* SSLRequest (answered 'S', then TLS) or straight the StartupMessage. */
	for (;;) {
		uint32_t len;
		unsigned char *rest;

		if (!recv_all(first, 8))
			return 2;
		len = get32(first);
		if (len == 8 && get32(first + 4) == 80877103 && !wire_ssl) {
			if (!send_all("S", 1))
				return 2;
			wire_ssl = SSL_new(ctx);
			if (!wire_ssl || SSL_set_fd(wire_ssl, wire_fd) != 1 || SSL_accept(wire_ssl) != 1)
				return 2;
			continue;
		}
		if (len < 8 || len > 10000 || !(rest = malloc(len - 8)) || !recv_all(rest, len - 8))
			return 2;
		free(rest); /* user and database: one verifier is served whoever asks */
		break;
	}
	rc = is_scram ? serve_scram(&v, wire_ssl ? cbind : NULL, wire_ssl ? cbind_len : 0)
		      : serve_md5(argv[1]);
	fflush(stdout);
	if (rc == 0) {
		size_t n;
		unsigned char *body;

		/* Until the client leaves (Terminate or close). */
		while ((body = read_message(&type, &n)) != NULL && type != 'X')
			free(body);
		free(body);
	}
	scram_verifier_clear(&v);
	wire_close(ctx);
	close(lfd);
	return rc;
}
