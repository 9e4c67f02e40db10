/*
 * TLS configuration for both legs. The proxy terminates client TLS with its
 * own certificate and opens its own TLS session to the upstream; no
 * plaintext or key material crosses between the two.
 */
#include "tls.h"

#include "conn.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

static void tls_err(char *err, size_t errlen, const char *what, const char *file)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	snprintf(err, errlen, "%s \"%s\": %s", what, file ? file : "", buf);
	ERR_clear_error();
}

static void tls_common(SSL_CTX *ctx)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Buffers move between retries (the relay compacts) and idle sessions drop theirs. */
	SSL_CTX_set_mode(ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				 SSL_MODE_RELEASE_BUFFERS);
	/* TLS 1.3 connections leave OpenSSL after the handshake (proxy/conn.c). */
	conn_tls_ctx_setup(ctx);
}

SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		tls_err(err, errlen, "cannot create TLS context", NULL);
		return NULL;
	}
	tls_common(ctx);
	/*
	 * No TLS 1.3 tickets: they would be sent right after the handshake,
	 * when the connection is handed to proxy/tls_record.c, and clients of a
	 * database proxy do not resume sessions.
	 */
	SSL_CTX_set_num_tickets(ctx, 0);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_err(err, errlen, "\"tls.cert_file\": cannot load", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		tls_err(err, errlen, "\"tls.key_file\": cannot load", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_err(err, errlen, "\"tls.key_file\": does not match tls.cert_file", key_file);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_upstream_ctx(const struct config_upstream *up, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (up->sslmode == SSLMODE_DISABLE)
		return NULL;
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		tls_err(err, errlen, "cannot create TLS context", NULL);
		return NULL;
	}
	tls_common(ctx);
	if (up->sslmode == SSLMODE_VERIFY_FULL) {
		if (SSL_CTX_load_verify_locations(ctx, up->sslrootcert, NULL) != 1) {
			tls_err(err, errlen, "\"upstream.sslrootcert\": cannot load", up->sslrootcert);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

static int is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int tls_upstream_setup(SSL *ssl, const struct config_upstream *up)
{
	if (!is_ip_literal(up->host) && SSL_set_tlsext_host_name(ssl, up->host) != 1)
		return -1;
	if (up->sslmode == SSLMODE_VERIFY_FULL) {
		/* Checks the certificate's SAN (DNS or IP) against the configured host. */
		if (is_ip_literal(up->host)) {
			X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

			if (X509_VERIFY_PARAM_set1_ip_asc(param, up->host) != 1)
				return -1;
		} else if (SSL_set1_host(ssl, up->host) != 1) {
			return -1;
		}
	}
	return 0;
}
