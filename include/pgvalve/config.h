/*
 * The proxy's configuration (the proxy config in docs/architecture.md):
 * loaded from JSON (comments allowed), defaults for every key but the
 * upstream, and errors that name the key and what was expected (jsonval.h's
 * wording). A loaded config is immutable; a reload builds a new one.
 */
#ifndef PGVALVE_CONFIG_H
#define PGVALVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgvalve/log.h"

enum sslmode { SSLMODE_DISABLE, SSLMODE_PREFER, SSLMODE_REQUIRE, SSLMODE_VERIFY_FULL };

struct config_upstream {
	char *name;
	char *host;
	int port;
	enum sslmode sslmode;
	char *sslrootcert;
};

/*
 * "auth": how clients are authenticated. relay (the default) passes the
 * exchange between client and server byte for byte and the proxy holds no
 * secret; terminate authenticates clients itself from verifiers (a userlist
 * file, else a lookup query) and logs in upstream with the client's SCRAM
 * keys (see docs/architecture.md, authentication).
 */
enum auth_mode { AUTH_MODE_RELAY, AUTH_MODE_TERMINATE };

#define CONFIG_AUTH_DEFAULT_QUERY "SELECT rolname, rolpassword FROM pgvalve.auth_lookup($1)"

struct config_auth {
	enum auth_mode mode;
	char *userlist_file; /* PgBouncer auth_file format; tried first */
	char *user;          /* the role the lookup connection logs in as */
	char *password_file; /* its password (first line); NULL: libpq's own sources (~/.pgpass, ...) */
	char *query;         /* the lookup, $1 the role name; never NULL */
	char *dbname;        /* the lookup's database; NULL: the one the client asked for */
	int cache_ttl_ms;    /* how long a fetched verifier is used; 0: fetched at every login */
};

#define CONFIG_MAX_UPSTREAMS 16
#define CONFIG_MAX_WORKERS 256 /* "workers" in the file; 0 there means the number of cores */

struct config {
	char *listen_host;
	int listen_port;

	struct config_upstream upstreams[CONFIG_MAX_UPSTREAMS];
	int n_upstreams;
	int active;           /* index into upstreams */
	bool named_upstreams; /* given as "upstreams" (error messages name keys that way) */

	char *tls_cert_file; /* both set, or neither: TLS to clients off */
	char *tls_key_file;

	char *admin_host;
	int admin_port;
	char *admin_token_file;

	int workers; /* 0 in the file: number of cores */

	int64_t max_clients;
	int64_t max_message_bytes;
	int64_t parse_max_bytes;

	int connect_ms;
	int auth_ms;
	int client_idle_ms; /* 0: no idle timeout */
	int shutdown_timeout_ms;

	enum log_level log_level;
	enum log_format log_format;

	struct config_auth auth;
};

struct config_error {
	char msg[512];
};

void config_init_defaults(struct config *cfg);

/* Parses JSON text over the defaults. Returns false and fills 'err' on error. */
bool config_parse(struct config *cfg, const char *text, struct config_error *err)
	__attribute__((warn_unused_result));
bool config_load_file(struct config *cfg, const char *path, struct config_error *err)
	__attribute__((warn_unused_result));

/*
 * Checks what parsing cannot: a non-loopback admin needs a token, TLS needs
 * both files, auth.mode terminate needs a source of verifiers (userlist_file
 * or user), password_file needs user, the lookup query takes the role name
 * as $1, and the terminate-only keys are not set in relay mode (where they
 * would be silently ignored). Terminate mode does not demand TLS: SCRAM is
 * safe on a plain connection, as PostgreSQL allows it; TLS adds channel
 * binding (-PLUS) on whichever leg has it.
 */
bool config_validate(const struct config *cfg, struct config_error *err) __attribute__((warn_unused_result));

/* "HOST:PORT", "[v6]:PORT" or ":PORT". Returns false if malformed; *host is malloc'd. */
bool config_parse_hostport(const char *s, char **host, int *port);

bool config_sslmode_parse(const char *s, enum sslmode *out);
const char *config_sslmode_name(enum sslmode m);

/* "relay" or "terminate". */
const char *config_auth_mode_name(enum auth_mode m);

const struct config_upstream *config_active_upstream(const struct config *cfg);

/*
 * The index of the upstream called 'name', or -1; then 'err' (unless NULL)
 * says so and lists the configured names.
 */
int config_upstream_index(const struct config *cfg, const char *name, char *err, size_t errlen);
void config_free(struct config *cfg);

#endif
