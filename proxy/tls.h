/*
 * OpenSSL contexts: one for clients connecting to the proxy (when "tls" is
 * configured) and one per upstream (per its sslmode). Contexts are built
 * whole on (re)load and swapped in with the rest of the runtime snapshot.
 */
#ifndef PGVALVE_PROXY_TLS_H
#define PGVALVE_PROXY_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "pgvalve/config.h"

SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);
SSL_CTX *tls_upstream_ctx(const struct config_upstream *up, char *err, size_t errlen);

/* Prepares an SSL for the upstream: SNI and, for verify-full, the host name to check. */
int tls_upstream_setup(SSL *ssl, const struct config_upstream *up);

#endif
