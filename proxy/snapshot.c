/*
 * Building and freeing the immutable runtime snapshot (see runtime.h).
 * Host names are resolved here, on the main thread, so workers never block
 * in DNS.
 */
#include "runtime.h"

#include <netdb.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/secret.h"
#include "pgvalve/token_file.h"
#include "pgvalve/verifier.h"
#include "tls.h"

struct runtime rt;

static bool resolve(const char *host, int port, bool passive, struct sockaddr_storage *out, socklen_t *outlen,
		    char *err, size_t errlen, const char *key)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0 };
	struct addrinfo *res;
	char portstr[16];
	int rc;

	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "\"%s\": cannot resolve \"%s\": %s", key, host, gai_strerror(rc));
		return false;
	}
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*outlen = res->ai_addrlen;
	freeaddrinfo(res);
	return true;
}

/* A password file's first line, without its line end (malloc'd); NULL with 'err' filled. */
static char *read_first_line(const char *path, char *err, size_t errlen)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		snprintf(err, errlen, "\"auth.password_file\": cannot open %s", path);
		return NULL;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "\"auth.password_file\": %s has no password on its first line", path);
		return NULL;
	}
	char *out = strdup(line);
	OPENSSL_cleanse(line, sizeof(line));
	if (!out)
		snprintf(err, errlen, "out of memory");
	return out;
}

struct snapshot *snapshot_build(struct config *cfg, char *err, size_t errlen)
{
	struct snapshot *snap = calloc(1, sizeof(*snap));

	if (!snap) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!resolve(cfg->listen_host, cfg->listen_port, true, &snap->listen_addr, &snap->listen_addrlen, err,
		     errlen, "listen.host"))
		goto fail;
	for (int i = 0; i < cfg->n_upstreams; i++) {
		const struct config_upstream *up = &cfg->upstreams[i];

		if (!resolve(up->host, up->port, false, &snap->upstream_addr[i], &snap->upstream_addrlen[i],
			     err, errlen, "upstream.host"))
			goto fail;
		if (up->sslmode != SSLMODE_DISABLE &&
		    !(snap->upstream_tls[i] = tls_upstream_ctx(up, err, errlen)))
			goto fail;
	}
	if (cfg->tls_cert_file &&
	    !(snap->client_tls = tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file, err, errlen)))
		goto fail;
	if (cfg->auth.mode == AUTH_MODE_TERMINATE && cfg->auth.userlist_file) {
		char why[512];

		snap->userlist = verifier_list_load(cfg->auth.userlist_file, why, sizeof(why));
		if (!snap->userlist) {
			snprintf(err, errlen, "\"auth.userlist_file\": %s", why);
			goto fail;
		}
	}
	if (cfg->auth.mode == AUTH_MODE_TERMINATE && cfg->auth.user && cfg->auth.password_file &&
	    !(snap->lookup_password = read_first_line(cfg->auth.password_file, err, errlen)))
		goto fail;
	snap->cfg = *cfg;
	snap->active = cfg->active;
	memset(cfg, 0, sizeof(*cfg));
	return snap;
fail:
	snapshot_free(snap);
	return NULL;
}

bool runtime_load_token(const char *path, char **token, char *err, size_t errlen)
{
	char why[512];

	*token = NULL;
	if (!path)
		return true;
	*token = token_file_read(path, why, sizeof(why));
	if (!*token) {
		snprintf(err, errlen, "\"admin.token_file\": %s", why);
		return false;
	}
	return true;
}

void snapshot_free(struct snapshot *snap)
{
	if (!snap)
		return;
	for (int i = 0; i < CONFIG_MAX_UPSTREAMS; i++)
		SSL_CTX_free(snap->upstream_tls[i]);
	SSL_CTX_free(snap->client_tls);
	verifier_list_free(snap->userlist);
	secret_free(snap->lookup_password);
	config_free(&snap->cfg);
	free(snap);
}
