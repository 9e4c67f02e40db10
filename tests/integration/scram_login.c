/*
 * scram_login: logs in to a real PostgreSQL with what the proxy holds in
 * terminate mode and nothing more — a role's stored verifier and, for SCRAM,
 * the ClientKey a client's proof revealed — through common/scram.c and
 * common/md5_auth.c. test_scram_core.py drives it; it is no user tool.
 *
 *   scram_login HOST PORT USER DBNAME SECRET CLIENTKEY_HEX|- tls|plain
 *
 * SECRET is the SCRAM-SHA-256 verifier (with CLIENTKEY_HEX) or the md5
 * hash (with "-"). "tls" asks for TLS and binds SCRAM to the server's
 * certificate (SCRAM-SHA-256-PLUS when offered). Prints "authenticated
 * <method>" and exits 0 at ReadyForQuery; else prints why and exits 1
 * (the server refused: "server error <SQLSTATE> <message>"), 2 (usage or
 * I/O), 3 (our side refused a server message: "scram <result>").
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "pgvalve/md5_auth.h"
#include "pgvalve/scram.h"
#include "wire_io.h"

/* A 'p' message (PasswordMessage, SASLInitialResponse, SASLResponse) with 'len' bytes of body. */
static bool send_p(const void *body, size_t len)
{
	return send_message('p', body, len);
}

static int die(int code, const char *what)
{
	printf("%s\n", what);
	return code;
}

static int server_error(const unsigned char *body, size_t len)
{
	const char *code = "?", *msg = "?";

	for (size_t i = 0; i < len && body[i];) {
		const char *v = (const char *)body + i + 1;

		if (body[i] == 'C')
			code = v;
		else if (body[i] == 'M')
			msg = v;
		i += strlen(v) + 2;
	}
	printf("server error %s %s\n", code, msg);
	return 1;
}

static bool hex_key(const char *hex, unsigned char out[SCRAM_KEY_LEN])
{
	if (strlen(hex) != 2 * SCRAM_KEY_LEN)
		return false;
	for (int i = 0; i < SCRAM_KEY_LEN; i++) {
		unsigned int b;

		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			return false;
		out[i] = (unsigned char)b;
	}
	return true;
}

static bool connect_to(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;

	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return false;
	wire_fd = socket(ai->ai_family, ai->ai_socktype, 0);
	if (wire_fd < 0 || connect(wire_fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		freeaddrinfo(ai);
		return false;
	}
	freeaddrinfo(ai);
	return true;
}

/* SSLRequest, then a TLS handshake (no certificate check: the binding is what is tested). */
static bool start_tls(SSL_CTX **ctx)
{
	unsigned char req[8];
	char answer;

	put32(req, 8);
	put32(req + 4, 80877103);
	if (!send_all(req, 8) || !recv_all(&answer, 1) || answer != 'S')
		return false;
	*ctx = SSL_CTX_new(TLS_client_method());
	if (!*ctx)
		return false;
	wire_ssl = SSL_new(*ctx);
	return wire_ssl && SSL_set_fd(wire_ssl, wire_fd) == 1 && SSL_connect(wire_ssl) == 1;
}

int main(int argc, char **argv)
{
	unsigned char client_key[SCRAM_KEY_LEN], startup[512], cbind[SCRAM_CBIND_MAX];
	size_t cbind_len = 0, n, o;
	struct scram_verifier v = { 0 };
	struct scram_client *sc = NULL;
	SSL_CTX *ctx = NULL;
	const char *method = "?";
	bool use_tls, scram_done = false;
	int rc = 2;

	if (argc != 8)
		return die(2, "usage: scram_login HOST PORT USER DBNAME SECRET CLIENTKEY_HEX|- tls|plain");
	use_tls = strcmp(argv[7], "tls") == 0;
	if (strcmp(argv[6], "-") != 0 &&
	    (!hex_key(argv[6], client_key) || !scram_verifier_parse(argv[5], &v)))
		return die(2, "bad verifier or client key");
	if (!connect_to(argv[1], argv[2]))
		return die(2, "cannot connect");
	if (use_tls) {
		X509 *cert;

		if (!start_tls(&ctx))
			return die(2, "TLS handshake failed");
		cert = SSL_get1_peer_certificate(wire_ssl);
		if (!cert || !scram_cert_endpoint_hash(cert, cbind, &cbind_len))
			return die(2, "no usable server certificate");
		X509_free(cert);
	}

	/* StartupMessage: protocol 3.0, user, database. */
	o = 8;
	o += (size_t)snprintf((char *)startup + o, sizeof(startup) - o, "user%c%s%cdatabase%c%s%c", 0,
			      argv[3], 0, 0, argv[4], 0);
	startup[o++] = 0;
	put32(startup, (uint32_t)o);
	put32(startup + 4, 196608);
	if (!send_all(startup, o))
		return die(2, "send failed");

	for (;;) {
		char type, out[SCRAM_MESSAGE_MAX + 64];
		size_t out_len;
		unsigned char *body = read_message(&type, &n);
		enum scram_result r;
		uint32_t code;

		if (!body) {
			rc = die(2, "connection lost");
			break;
		}
		if (type == 'E') {
			rc = server_error(body, n);
			free(body);
			break;
		}
		if (type == 'Z') {
			printf("authenticated %s\n", method);
			rc = scram_done || strcmp(method, "md5") == 0 ? 0
								      : die(3, "no server signature checked");
			free(body);
			break;
		}
		if (type != 'R' || n < 4) {
			free(body);
			continue; /* ParameterStatus, BackendKeyData, NoticeResponse */
		}
		code = get32(body);
		if (code == 0) { /* AuthenticationOk */
			free(body);
			continue;
		}
		if (code == 5 && n >= 8) { /* AuthenticationMD5Password */
			char resp[MD5_AUTH_LEN + 1];

			method = "md5";
			if (!md5_auth_response(argv[5], body + 4, resp) || !send_p(resp, sizeof(resp))) {
				free(body);
				rc = die(2, "md5 response failed");
				break;
			}
		} else if (code == 10) { /* AuthenticationSASL */
			char msg[4 + sizeof(out) + 64];
			const char *mech;
			size_t mlen;

			sc = scram_client_new(client_key, &v, use_tls ? cbind : NULL, cbind_len);
			r = scram_client_first(sc, (char *)body + 4, n - 4, &mech, out, sizeof(out),
					       &out_len);
			if (r != SCRAM_CONTINUE) {
				printf("scram %s\n", scram_result_name(r));
				free(body);
				rc = 3;
				break;
			}
			method = mech;
			mlen = strlen(mech) + 1;
			memcpy(msg, mech, mlen);
			put32((unsigned char *)msg + mlen, (uint32_t)out_len);
			memcpy(msg + mlen + 4, out, out_len);
			if (!send_p(msg, mlen + 4 + out_len)) {
				free(body);
				rc = die(2, "send failed");
				break;
			}
		} else if (code == 11 || code == 12) { /* AuthenticationSASLContinue, -Final */
			r = code == 11
				? scram_client_final(sc, (char *)body + 4, n - 4, out, sizeof(out), &out_len)
				: scram_client_verify(sc, (char *)body + 4, n - 4);
			if (r != SCRAM_CONTINUE && r != SCRAM_DONE) {
				printf("scram %s\n", scram_result_name(r));
				free(body);
				rc = 3;
				break;
			}
			scram_done = r == SCRAM_DONE;
			if (code == 11 && !send_p(out, out_len)) {
				free(body);
				rc = die(2, "send failed");
				break;
			}
		} else {
			printf("unexpected authentication request %u\n", code);
			free(body);
			rc = 2;
			break;
		}
		free(body);
	}
	scram_client_free(sc);
	scram_verifier_clear(&v);
	wire_close(ctx);
	return rc;
}
