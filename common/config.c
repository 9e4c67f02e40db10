/*
 * JSON configuration for pgvalve-proxy: the schema (which keys, which ranges,
 * which defaults) and the rules between keys. Each value is checked with
 * jsonval.h, so the first problem reads '"dotted.key": expected X, got Y'.
 * Unknown keys are errors: a typo must not silently fall back to a default.
 * Resolving hosts and reading the files named here is the proxy's business.
 */
#include "pgvalve/config.h"

#include "pgvalve/classify.h"
#include "pgvalve/jsonval.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_init_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen_host = strdup("0.0.0.0");
	cfg->listen_port = 6432;
	cfg->admin_host = strdup("127.0.0.1");
	cfg->admin_port = 6480;
	cfg->max_clients = 10000;
	cfg->max_message_bytes = 268435456;
	cfg->parse_max_bytes = 65536;
	cfg->connect_ms = 5000;
	cfg->auth_ms = 30000;
	cfg->shutdown_timeout_ms = 30000;
	cfg->log_level = LOG_INFO;
	cfg->log_format = LOG_FORMAT_TEXT;
	cfg->auth.mode = AUTH_MODE_RELAY;
	cfg->auth.query = strdup(CONFIG_AUTH_DEFAULT_QUERY);
	cfg->auth.cache_ttl_ms = 60000;
}

static bool fail(struct config_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A message that names its key itself, or none (files, JSON syntax): one line, as jsonval's. */
static bool fail(struct config_error *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	jsonval_vfail(err->msg, sizeof(err->msg), NULL, fmt, ap);
	va_end(ap);
	return false;
}

/* The names of enum sslmode, enum log_level and enum log_format, in enum order. */
static const char *const sslmode_names[] = { "disable", "prefer", "require", "verify-full", NULL };
static const char *const log_level_names[] = { "debug", "info", "warn", "error", NULL };
static const char *const log_format_names[] = { "text", "json", NULL };
static const char *const auth_mode_names[] = { "relay", "terminate", NULL };

/* obj[key], if present, is an object whose keys are all in 'keys'. */
static bool section(const cJSON *v, const char *path, const char *const *keys, struct config_error *err)
{
	return jsonval_known_keys(v, path, keys, err->msg, sizeof(err->msg));
}

/* A string or null: optional paths and names. */
static bool get_str(const cJSON *obj, const char *path, const char *key, char **out, struct config_error *err)
{
	return jsonval_string(obj, path, key, JSONVAL_NULLABLE, out, err->msg, sizeof(err->msg));
}

/* A string that must be present if the key is: hosts. */
static bool get_required_str(const cJSON *obj, const char *path, const char *key, char **out,
			     struct config_error *err)
{
	return jsonval_string(obj, path, key, 0, out, err->msg, sizeof(err->msg));
}

static bool get_int(const cJSON *obj, const char *path, const char *key, int64_t min, int64_t max,
		    int64_t *out, struct config_error *err)
{
	return jsonval_int(obj, path, key, min, max, out, err->msg, sizeof(err->msg));
}

static bool get_int32(const cJSON *obj, const char *path, const char *key, int min, int max, int *out,
		      struct config_error *err)
{
	return jsonval_int32(obj, path, key, min, max, out, err->msg, sizeof(err->msg));
}

/* One of 'names' (enum order) into *out, which keeps its value when the key is absent. */
static bool get_enum(const cJSON *obj, const char *path, const char *key, const char *const *names, int *out,
		     struct config_error *err)
{
	return jsonval_enum(obj, path, key, names, out, err->msg, sizeof(err->msg));
}

bool config_sslmode_parse(const char *s, enum sslmode *out)
{
	for (int i = 0; sslmode_names[i]; i++) {
		if (strcmp(s, sslmode_names[i]) == 0) {
			*out = (enum sslmode)i;
			return true;
		}
	}
	return false;
}

const char *config_sslmode_name(enum sslmode m)
{
	return sslmode_names[m];
}

static bool parse_upstream(const cJSON *v, const char *path, const char *name, struct config_upstream *up,
			   struct config_error *err)
{
	static const char *const keys[] = { "host", "port", "sslmode", "sslrootcert", NULL };
	int mode = SSLMODE_PREFER;

	if (!section(v, path, keys, err))
		return false;
	up->name = strdup(name);
	up->host = strdup("127.0.0.1");
	up->port = 5432;
	up->sslmode = SSLMODE_PREFER;
	if (!up->name || !up->host)
		return fail(err, "out of memory");
	if (!get_required_str(v, path, "host", &up->host, err) ||
	    !get_int32(v, path, "port", 1, 65535, &up->port, err) ||
	    !get_enum(v, path, "sslmode", sslmode_names, &mode, err) ||
	    !get_str(v, path, "sslrootcert", &up->sslrootcert, err))
		return false;
	up->sslmode = (enum sslmode)mode;
	return true;
}

static bool parse_auth(struct config_auth *a, const cJSON *v, struct config_error *err)
{
	static const char *const keys[] = { "mode",  "userlist_file", "user",         "password_file",
					    "query", "dbname",        "cache_ttl_ms", NULL };
	int mode = (int)a->mode;

	if (!section(v, "auth", keys, err) || !get_enum(v, "auth", "mode", auth_mode_names, &mode, err) ||
	    !get_str(v, "auth", "userlist_file", &a->userlist_file, err) ||
	    !get_str(v, "auth", "user", &a->user, err) ||
	    !get_str(v, "auth", "password_file", &a->password_file, err) ||
	    !get_required_str(v, "auth", "query", &a->query, err) ||
	    !get_str(v, "auth", "dbname", &a->dbname, err) ||
	    !get_int32(v, "auth", "cache_ttl_ms", 0, 86400000, &a->cache_ttl_ms, err))
		return false;
	a->mode = (enum auth_mode)mode;
	return true;
}

static bool parse_upstreams(struct config *cfg, const cJSON *root, struct config_error *err)
{
	const cJSON *single = cJSON_GetObjectItemCaseSensitive(root, "upstream");
	const cJSON *many = cJSON_GetObjectItemCaseSensitive(root, "upstreams");
	const cJSON *active = cJSON_GetObjectItemCaseSensitive(root, "active");
	const cJSON *item;

	if (single && many)
		return fail(err, "\"upstreams\": give either \"upstream\" or \"upstreams\", not both");
	if (single) {
		if (active)
			return fail(err, "\"active\": only meaningful with \"upstreams\"");
		cfg->n_upstreams = 1; /* counted first: config_free releases a half-parsed one */
		return parse_upstream(single, "upstream", "default", &cfg->upstreams[0], err);
	}
	if (!many)
		return true; /* the command line may still give one */
	if (!jsonval_object(many, "upstreams", err->msg, sizeof(err->msg)))
		return false;
	cJSON_ArrayForEach(item, many)
	{
		char path[JSONVAL_PATH_MAX];

		if (cfg->n_upstreams == CONFIG_MAX_UPSTREAMS)
			return fail(err, "\"upstreams\": at most %d upstreams", CONFIG_MAX_UPSTREAMS);
		jsonval_join(path, sizeof(path), "upstreams", item->string);
		if (config_upstream_index(cfg, item->string, NULL, 0) >= 0)
			return fail(err, "\"%s\": given twice", path);
		cfg->n_upstreams++;
		if (!parse_upstream(item, path, item->string, &cfg->upstreams[cfg->n_upstreams - 1], err))
			return false;
	}
	cfg->named_upstreams = true;
	if (cfg->n_upstreams == 0)
		return fail(err, "\"upstreams\": expected at least one upstream");
	if (!active) {
		if (cfg->n_upstreams > 1)
			return fail(err, "\"active\": expected the name of one of the upstreams");
		return true;
	}
	if (!cJSON_IsString(active))
		return fail(err, "\"active\": expected the name of one of the upstreams");
	cfg->active = config_upstream_index(cfg, active->valuestring, NULL, 0);
	if (cfg->active < 0)
		return fail(err, "\"active\": no upstream named \"%s\"", active->valuestring);
	return true;
}

bool config_parse(struct config *cfg, const char *text, struct config_error *err)
{
	static const char *const top[] = { "listen",  "upstream", "upstreams", "active", "tls",  "admin",
					   "workers", "limits",   "timeouts",  "log",    "auth", NULL };
	static const char *const listen_keys[] = { "host", "port", NULL };
	static const char *const tls_keys[] = { "cert_file", "key_file", NULL };
	static const char *const admin_keys[] = { "host", "port", "token_file", NULL };
	static const char *const limit_keys[] = { "max_clients", "max_message_bytes", "parse_max_bytes",
						  NULL };
	static const char *const timeout_keys[] = { "connect_ms", "auth_ms", "client_idle_ms",
						    "shutdown_timeout_ms", NULL };
	static const char *const log_keys[] = { "level", "format", NULL };
	char *copy = strdup(text);
	cJSON *root, *v;
	bool ok = false;

	if (!copy)
		return fail(err, "out of memory reading the config");
	jsonval_strip_comments(copy);              /* comments allowed: config files explain themselves */
	root = cJSON_ParseWithOpts(copy, NULL, 1); /* nothing may follow the document */
	if (!root) {
		const char *at = cJSON_GetErrorPtr();
		fail(err, "config is not valid JSON near: %.40s", at ? at : "(start)");
		goto out;
	}
	if (!jsonval_object(root, "(top level)", err->msg, sizeof(err->msg)) || !section(root, "", top, err))
		goto out;

	if ((v = cJSON_GetObjectItemCaseSensitive(root, "listen"))) {
		if (!section(v, "listen", listen_keys, err) ||
		    !get_required_str(v, "listen", "host", &cfg->listen_host, err) ||
		    !get_int32(v, "listen", "port", 1, 65535, &cfg->listen_port, err))
			goto out;
	}
	if (!parse_upstreams(cfg, root, err))
		goto out;
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "tls"))) {
		if (!section(v, "tls", tls_keys, err) ||
		    !get_str(v, "tls", "cert_file", &cfg->tls_cert_file, err) ||
		    !get_str(v, "tls", "key_file", &cfg->tls_key_file, err))
			goto out;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "admin"))) {
		if (!section(v, "admin", admin_keys, err) ||
		    !get_required_str(v, "admin", "host", &cfg->admin_host, err) ||
		    !get_int32(v, "admin", "port", 0, 65535, &cfg->admin_port, err) ||
		    !get_str(v, "admin", "token_file", &cfg->admin_token_file, err))
			goto out;
	}
	if (!get_int32(root, "", "workers", 0, CONFIG_MAX_WORKERS, &cfg->workers, err))
		goto out;
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "limits"))) {
		if (!section(v, "limits", limit_keys, err) ||
		    !get_int(v, "limits", "max_clients", 1, 1000000, &cfg->max_clients, err) ||
		    !get_int(v, "limits", "max_message_bytes", 1024, 1073741824, &cfg->max_message_bytes,
			     err) ||
		    !get_int(v, "limits", "parse_max_bytes", 64, CLASSIFY_PARSE_MAX_LIMIT,
			     &cfg->parse_max_bytes, err))
			goto out;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "timeouts"))) {
		if (!section(v, "timeouts", timeout_keys, err) ||
		    !get_int32(v, "timeouts", "connect_ms", 1, 3600000, &cfg->connect_ms, err) ||
		    !get_int32(v, "timeouts", "auth_ms", 1, 3600000, &cfg->auth_ms, err) ||
		    !get_int32(v, "timeouts", "client_idle_ms", 0, 604800000, &cfg->client_idle_ms, err) ||
		    !get_int32(v, "timeouts", "shutdown_timeout_ms", 0, 3600000, &cfg->shutdown_timeout_ms,
			       err))
			goto out;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "log"))) {
		int level = (int)cfg->log_level, format = (int)cfg->log_format;

		if (!section(v, "log", log_keys, err) ||
		    !get_enum(v, "log", "level", log_level_names, &level, err) ||
		    !get_enum(v, "log", "format", log_format_names, &format, err))
			goto out;
		cfg->log_level = (enum log_level)level;
		cfg->log_format = (enum log_format)format;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "auth")) && !parse_auth(&cfg->auth, v, err))
		goto out;
	ok = true;
out:
	cJSON_Delete(root);
	free(copy);
	return ok;
}

bool config_load_file(struct config *cfg, const char *path, struct config_error *err)
{
	FILE *f = fopen(path, "rb");
	char *text;
	long size;
	bool ok;

	if (!f)
		return fail(err, "cannot open config file \"%s\": %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || size > 1 << 20 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return fail(err, "config file \"%s\": unreadable or larger than 1 MiB", path);
	}
	text = malloc((size_t)size + 1);
	if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
		free(text);
		fclose(f);
		return fail(err, "cannot read config file \"%s\"", path);
	}
	text[size] = '\0';
	fclose(f);
	ok = config_parse(cfg, text, err);
	free(text);
	return ok;
}

static bool is_loopback(const char *host)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/* The auth section's rules between keys (see config_validate()). */
static bool validate_auth(const struct config_auth *a, struct config_error *err)
{
	if (a->mode == AUTH_MODE_RELAY) {
		/* Keys that only terminate reads: set in relay mode they would be ignored without a word. */
		const char *set = a->userlist_file ? "userlist_file"
			: a->user                  ? "user"
			: a->password_file         ? "password_file"
			: a->dbname                ? "dbname"
						   : NULL;

		if (set)
			return fail(err,
				    "\"auth.%s\": only used with auth.mode \"terminate\" (mode is \"relay\")",
				    set);
		return true;
	}
	if (!a->userlist_file && !a->user)
		return fail(err,
			    "\"auth.mode\": \"terminate\" needs auth.userlist_file or auth.user (where "
			    "verifiers come from)");
	if (a->password_file && !a->user)
		return fail(err, "\"auth.password_file\": needs auth.user (the role it is the password of)");
	if (!a->query || !strstr(a->query, "$1"))
		return fail(err, "\"auth.query\": must take the role name as $1");
	return true;
}

bool config_validate(const struct config *cfg, struct config_error *err)
{
	if (cfg->n_upstreams == 0)
		return fail(err, "\"upstream\": required (in the config file or --upstream HOST:PORT)");
	if ((cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL))
		return fail(err, "\"tls\": cert_file and key_file go together");
	if (!is_loopback(cfg->admin_host) && cfg->admin_token_file == NULL)
		return fail(
			err,
			"\"admin.token_file\": required when admin.host (\"%s\") is not a loopback address",
			cfg->admin_host);
	for (int i = 0; i < cfg->n_upstreams; i++) {
		const struct config_upstream *u = &cfg->upstreams[i];

		if (u->sslmode == SSLMODE_VERIFY_FULL && u->sslrootcert == NULL) {
			if (cfg->named_upstreams)
				return fail(err,
					    "\"upstreams.%s.sslrootcert\": required with sslmode verify-full",
					    u->name);
			return fail(err, "\"upstream.sslrootcert\": required with sslmode verify-full");
		}
	}
	return validate_auth(&cfg->auth, err);
}

bool config_parse_hostport(const char *s, char **host, int *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hlen;
	char *end;
	long p;

	if (!colon)
		return false;
	hlen = (size_t)(colon - s);
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	} else if (memchr(s, ':', hlen)) {
		return false; /* an IPv6 address needs brackets: [::1]:6432 */
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
		return false;
	*host = hlen ? strndup(h, hlen) : strdup("0.0.0.0");
	*port = (int)p;
	return true;
}

int config_upstream_index(const struct config *cfg, const char *name, char *err, size_t errlen)
{
	size_t used;

	for (int i = 0; i < cfg->n_upstreams; i++)
		if (strcmp(cfg->upstreams[i].name, name) == 0)
			return i;
	if (!err)
		return -1;
	used = (size_t)snprintf(err, errlen, "no upstream named \"%.64s\" (configured:", name);
	for (int i = 0; i < cfg->n_upstreams && used < errlen; i++)
		used += (size_t)snprintf(err + used, errlen - used, " %s", cfg->upstreams[i].name);
	if (used < errlen)
		snprintf(err + used, errlen - used, ")");
	return -1;
}

const char *config_auth_mode_name(enum auth_mode m)
{
	return auth_mode_names[m];
}

const struct config_upstream *config_active_upstream(const struct config *cfg)
{
	return &cfg->upstreams[cfg->active];
}

void config_free(struct config *cfg)
{
	free(cfg->listen_host);
	free(cfg->tls_cert_file);
	free(cfg->tls_key_file);
	free(cfg->admin_host);
	free(cfg->admin_token_file);
	for (int i = 0; i < cfg->n_upstreams; i++) {
		free(cfg->upstreams[i].name);
		free(cfg->upstreams[i].host);
		free(cfg->upstreams[i].sslrootcert);
	}
	free(cfg->auth.userlist_file);
	free(cfg->auth.user);
	free(cfg->auth.password_file);
	free(cfg->auth.query);
	free(cfg->auth.dbname);
	memset(cfg, 0, sizeof(*cfg));
}
