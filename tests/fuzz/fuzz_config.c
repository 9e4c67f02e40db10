/*
 * libFuzzer target for common/config.c, the proxy's JSON config. Each input
 * is a config file's text. Invariants: parsing never crashes or leaks
 * (config_free after success and failure alike); a refused text leaves a
 * non-empty, one-line message; an accepted one holds values in the
 * documented ranges, and printed back as JSON (every key) it parses to the
 * same config, so what is accepted is exactly what is kept. config_validate
 * and config_upstream_index run on every accepted config too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pgvalve/classify.h"
#include "pgvalve/config.h"
#include "fuzz_check.h"

#define TEXT_MAX (64u << 10)

static void check_message(const char *msg, size_t cap)
{
	FUZZ_CHECK(memchr(msg, '\0', cap) != NULL);
	FUZZ_CHECK(msg[0] != '\0');
	for (const char *s = msg; *s; s++)
		FUZZ_CHECK((unsigned char)*s >= 0x20 && *s != 0x7f);
}

static void add_string_or_null(cJSON *obj, const char *key, const char *s)
{
	if (s)
		cJSON_AddStringToObject(obj, key, s);
	else
		cJSON_AddNullToObject(obj, key);
}

static cJSON *print_upstream(const struct config_upstream *u)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "host", u->host);
	cJSON_AddNumberToObject(o, "port", u->port);
	cJSON_AddStringToObject(o, "sslmode", config_sslmode_name(u->sslmode));
	add_string_or_null(o, "sslrootcert", u->sslrootcert);
	return o;
}

/* The whole config as the JSON that should read back to it; malloc'd text. */
static char *print_config(const struct config *c)
{
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	static const char *const formats[] = { "text", "json" };
	cJSON *doc = cJSON_CreateObject(), *o;
	char *text;

	o = cJSON_AddObjectToObject(doc, "listen");
	cJSON_AddStringToObject(o, "host", c->listen_host);
	cJSON_AddNumberToObject(o, "port", c->listen_port);
	if (c->named_upstreams) {
		o = cJSON_AddObjectToObject(doc, "upstreams");
		for (int i = 0; i < c->n_upstreams; i++)
			cJSON_AddItemToObject(o, c->upstreams[i].name, print_upstream(&c->upstreams[i]));
		cJSON_AddStringToObject(doc, "active", c->upstreams[c->active].name);
	} else if (c->n_upstreams == 1) {
		cJSON_AddItemToObject(doc, "upstream", print_upstream(&c->upstreams[0]));
	}
	o = cJSON_AddObjectToObject(doc, "tls");
	add_string_or_null(o, "cert_file", c->tls_cert_file);
	add_string_or_null(o, "key_file", c->tls_key_file);
	o = cJSON_AddObjectToObject(doc, "admin");
	cJSON_AddStringToObject(o, "host", c->admin_host);
	cJSON_AddNumberToObject(o, "port", c->admin_port);
	add_string_or_null(o, "token_file", c->admin_token_file);
	cJSON_AddNumberToObject(doc, "workers", c->workers);
	o = cJSON_AddObjectToObject(doc, "limits");
	cJSON_AddNumberToObject(o, "max_clients", (double)c->max_clients);
	cJSON_AddNumberToObject(o, "max_message_bytes", (double)c->max_message_bytes);
	cJSON_AddNumberToObject(o, "parse_max_bytes", (double)c->parse_max_bytes);
	o = cJSON_AddObjectToObject(doc, "timeouts");
	cJSON_AddNumberToObject(o, "connect_ms", c->connect_ms);
	cJSON_AddNumberToObject(o, "auth_ms", c->auth_ms);
	cJSON_AddNumberToObject(o, "client_idle_ms", c->client_idle_ms);
	cJSON_AddNumberToObject(o, "shutdown_timeout_ms", c->shutdown_timeout_ms);
	o = cJSON_AddObjectToObject(doc, "log");
	cJSON_AddStringToObject(o, "level", levels[c->log_level]);
	cJSON_AddStringToObject(o, "format", formats[c->log_format]);
	o = cJSON_AddObjectToObject(doc, "auth");
	cJSON_AddStringToObject(o, "mode", config_auth_mode_name(c->auth.mode));
	add_string_or_null(o, "userlist_file", c->auth.userlist_file);
	add_string_or_null(o, "user", c->auth.user);
	add_string_or_null(o, "password_file", c->auth.password_file);
	cJSON_AddStringToObject(o, "query", c->auth.query);
	add_string_or_null(o, "dbname", c->auth.dbname);
	cJSON_AddNumberToObject(o, "cache_ttl_ms", c->auth.cache_ttl_ms);
	text = cJSON_PrintUnformatted(doc);
	FUZZ_CHECK(text != NULL);
	cJSON_Delete(doc);
	return text;
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool same_config(const struct config *a, const struct config *b)
{
	if (!same_str(a->listen_host, b->listen_host) || a->listen_port != b->listen_port ||
	    a->n_upstreams != b->n_upstreams || a->active != b->active ||
	    a->named_upstreams != b->named_upstreams || !same_str(a->tls_cert_file, b->tls_cert_file) ||
	    !same_str(a->tls_key_file, b->tls_key_file) || !same_str(a->admin_host, b->admin_host) ||
	    a->admin_port != b->admin_port || !same_str(a->admin_token_file, b->admin_token_file) ||
	    a->workers != b->workers || a->max_clients != b->max_clients ||
	    a->max_message_bytes != b->max_message_bytes || a->parse_max_bytes != b->parse_max_bytes ||
	    a->connect_ms != b->connect_ms || a->auth_ms != b->auth_ms ||
	    a->client_idle_ms != b->client_idle_ms || a->shutdown_timeout_ms != b->shutdown_timeout_ms ||
	    a->log_level != b->log_level || a->log_format != b->log_format || a->auth.mode != b->auth.mode ||
	    !same_str(a->auth.userlist_file, b->auth.userlist_file) ||
	    !same_str(a->auth.user, b->auth.user) ||
	    !same_str(a->auth.password_file, b->auth.password_file) ||
	    !same_str(a->auth.query, b->auth.query) || !same_str(a->auth.dbname, b->auth.dbname) ||
	    a->auth.cache_ttl_ms != b->auth.cache_ttl_ms)
		return false;
	for (int i = 0; i < a->n_upstreams; i++) {
		const struct config_upstream *x = &a->upstreams[i], *y = &b->upstreams[i];

		if (!same_str(x->name, y->name) || !same_str(x->host, y->host) || x->port != y->port ||
		    x->sslmode != y->sslmode || !same_str(x->sslrootcert, y->sslrootcert))
			return false;
	}
	return true;
}

static void check_ranges(const struct config *c)
{
	FUZZ_CHECK(c->listen_host && c->listen_host[0]);
	FUZZ_CHECK(c->admin_host && c->admin_host[0]);
	FUZZ_CHECK(c->listen_port >= 1 && c->listen_port <= 65535);
	FUZZ_CHECK(c->admin_port >= 0 && c->admin_port <= 65535);
	FUZZ_CHECK(c->workers >= 0 && c->workers <= CONFIG_MAX_WORKERS);
	FUZZ_CHECK(c->max_clients >= 1 && c->max_clients <= 1000000);
	FUZZ_CHECK(c->max_message_bytes >= 1024 && c->max_message_bytes <= 1073741824);
	FUZZ_CHECK(c->parse_max_bytes >= 64 && c->parse_max_bytes <= CLASSIFY_PARSE_MAX_LIMIT);
	FUZZ_CHECK(c->n_upstreams >= 0 && c->n_upstreams <= CONFIG_MAX_UPSTREAMS);
	FUZZ_CHECK(c->n_upstreams == 0 || (c->active >= 0 && c->active < c->n_upstreams));
	for (int i = 0; i < c->n_upstreams; i++) {
		const struct config_upstream *u = &c->upstreams[i];

		FUZZ_CHECK(u->name && u->host && u->host[0]);
		FUZZ_CHECK(u->port >= 1 && u->port <= 65535);
		FUZZ_CHECK(u->sslmode >= SSLMODE_DISABLE && u->sslmode <= SSLMODE_VERIFY_FULL);
		FUZZ_CHECK(config_upstream_index(c, u->name, NULL, 0) == i); /* names are unique */
	}
	FUZZ_CHECK(c->auth.mode == AUTH_MODE_RELAY || c->auth.mode == AUTH_MODE_TERMINATE);
	FUZZ_CHECK(c->auth.query && c->auth.query[0]);
	FUZZ_CHECK(c->auth.cache_ttl_ms >= 0 && c->auth.cache_ttl_ms <= 86400000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg, back;
	struct config_error err;
	char *text, *printed, why[128];
	bool ok;

	if (size > TEXT_MAX)
		return 0;
	text = malloc(size + 1);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';

	config_init_defaults(&cfg);
	memset(&err, 'x', sizeof(err));
	ok = config_parse(&cfg, text, &err);
	free(text);
	if (!ok) {
		check_message(err.msg, sizeof(err.msg));
		config_free(&cfg);
		return 0;
	}
	check_ranges(&cfg);
	memset(&err, 'x', sizeof(err));
	if (!config_validate(&cfg, &err))
		check_message(err.msg, sizeof(err.msg));
	FUZZ_CHECK(config_upstream_index(&cfg, "\x01 no such upstream", why, sizeof(why)) == -1);
	FUZZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL);

	printed = print_config(&cfg);
	config_init_defaults(&back);
	if (!config_parse(&back, printed, &err)) {
		fprintf(stderr, "printed back as %s, refused: %s\n", printed, err.msg);
		FUZZ_CHECK(!"the printed config parses");
	}
	if (!same_config(&cfg, &back)) {
		fprintf(stderr, "printed back as %s, read as another config\n", printed);
		FUZZ_CHECK(!"the printed config is the same config");
	}
	free(printed);
	config_free(&back);
	config_free(&cfg);
	return 0;
}
