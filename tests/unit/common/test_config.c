/*
 * Unit tests for common/config.c: defaults, every key of the proxy config (docs/architecture.md),
 * errors that name the dotted key, the upstream/upstreams/active rules,
 * config_validate and config_parse_hostport. Every parsed config is freed,
 * so the Asan build also checks the error paths for leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgvalve/config.h"
#include "unit_assert.h"

/* Parses 'json' over fresh defaults. The caller frees cfg. */
static bool parse(const char *json, struct config *cfg, struct config_error *err)
{
	config_init_defaults(cfg);
	memset(err, 0, sizeof(*err));
	return config_parse(cfg, json, err);
}

/* Parses 'json', which must be accepted. The caller frees cfg. */
static void parse_ok(const char *json, struct config *cfg)
{
	struct config_error err;

	if (!parse(json, cfg, &err))
		fail_msg("rejected %s: %s", json, err.msg);
}

/* Parses 'json', which must be rejected with an error containing each of the needles. */
static void parse_fails(const char *json, const char *needle1, const char *needle2)
{
	struct config cfg;
	struct config_error err;
	bool ok = parse(json, &cfg, &err);

	config_free(&cfg);
	if (ok)
		fail_msg("accepted %s", json);
	if (strstr(err.msg, needle1) == NULL || (needle2 && strstr(err.msg, needle2) == NULL))
		fail_msg("%s: error \"%s\" lacks \"%s\"%s%s", json, err.msg, needle1, needle2 ? " or " : "",
			 needle2 ? needle2 : "");
}

/* ---------------------------------------------------------------- defaults */

static void assert_defaults(const struct config *cfg)
{
	assert_string_equal(cfg->listen_host, "0.0.0.0");
	assert_int_equal(cfg->listen_port, 6432);
	assert_int_equal(cfg->n_upstreams, 0);
	assert_null(cfg->tls_cert_file);
	assert_null(cfg->tls_key_file);
	assert_string_equal(cfg->admin_host, "127.0.0.1");
	assert_int_equal(cfg->admin_port, 6480);
	assert_null(cfg->admin_token_file);
	assert_int_equal(cfg->workers, 0);
	assert_int_equal(cfg->max_clients, 10000);
	assert_int_equal(cfg->max_message_bytes, 268435456);
	assert_int_equal(cfg->parse_max_bytes, 65536);
	assert_int_equal(cfg->connect_ms, 5000);
	assert_int_equal(cfg->auth_ms, 30000);
	assert_int_equal(cfg->client_idle_ms, 0);
	assert_int_equal(cfg->shutdown_timeout_ms, 30000);
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_int_equal(cfg->log_format, LOG_FORMAT_TEXT);
	assert_int_equal(cfg->auth.mode, AUTH_MODE_RELAY);
	assert_null(cfg->auth.userlist_file);
	assert_null(cfg->auth.user);
	assert_null(cfg->auth.password_file);
	assert_string_equal(cfg->auth.query, "SELECT rolname, rolpassword FROM pgvalve.auth_lookup($1)");
	assert_null(cfg->auth.dbname);
	assert_int_equal(cfg->auth.cache_ttl_ms, 60000);
}

static void test_defaults(void **state)
{
	struct config cfg;

	(void)state;
	config_init_defaults(&cfg);
	assert_defaults(&cfg);
	config_free(&cfg);
}

static void test_empty_object_keeps_defaults(void **state)
{
	struct config cfg;

	(void)state;
	parse_ok("{}", &cfg);
	assert_defaults(&cfg);
	config_free(&cfg);
}

/* The documented example config, verbatim: it is the defaults plus the upstream. */
static void test_design_example(void **state)
{
	static const char json[] =
		"{\n"
		"  \"listen\": {\"host\": \"0.0.0.0\", \"port\": 6432},\n"
		"  \"upstream\": {\"host\": \"127.0.0.1\", \"port\": 5432, \"sslmode\": \"prefer\", "
		"\"sslrootcert\": null},\n"
		"  \"tls\": {\"cert_file\": null, \"key_file\": null},\n"
		"  \"admin\": {\"host\": \"127.0.0.1\", \"port\": 6480, \"token_file\": null},\n"
		"  \"workers\": 0,\n"
		"  \"limits\": {\"max_clients\": 10000, \"max_message_bytes\": 268435456, "
		"\"parse_max_bytes\": 65536},\n"
		"  \"timeouts\": {\"connect_ms\": 5000, \"auth_ms\": 30000, \"client_idle_ms\": 0, "
		"\"shutdown_timeout_ms\": 30000},\n"
		"  \"log\": {\"level\": \"info\", \"format\": \"text\"},\n"
		"  \"auth\": {\"mode\": \"relay\", \"userlist_file\": null, \"user\": null, "
		"\"password_file\": null,\n"
		"    \"query\": \"SELECT rolname, rolpassword FROM pgvalve.auth_lookup($1)\", \"dbname\": "
		"null,\n"
		"    \"cache_ttl_ms\": 60000}\n"
		"}\n";
	struct config cfg;
	struct config_error err;
	const struct config_upstream *up;

	(void)state;
	parse_ok(json, &cfg);
	assert_int_equal(cfg.n_upstreams, 1);
	cfg.n_upstreams = 0;
	assert_defaults(&cfg);
	cfg.n_upstreams = 1;
	up = config_active_upstream(&cfg);
	assert_string_equal(up->host, "127.0.0.1");
	assert_int_equal(up->port, 5432);
	assert_int_equal(up->sslmode, SSLMODE_PREFER);
	assert_null(up->sslrootcert);
	if (!config_validate(&cfg, &err))
		fail_msg("validate: %s", err.msg);
	config_free(&cfg);
}

static void test_every_key_parsed(void **state)
{
	static const char json[] =
		"{"
		" \"listen\": {\"host\": \"127.0.0.2\", \"port\": 7432},"
		" \"upstream\": {\"host\": \"db.internal\", \"port\": 5433, \"sslmode\": \"verify-full\","
		"                \"sslrootcert\": \"/etc/pgvalve/root.crt\"},"
		" \"tls\": {\"cert_file\": \"/etc/pgvalve/server.crt\", \"key_file\": "
		"\"/etc/pgvalve/server.key\"},"
		" \"admin\": {\"host\": \"10.0.0.5\", \"port\": 7480, \"token_file\": "
		"\"/etc/pgvalve/token\"},"
		" \"workers\": 4,"
		" \"limits\": {\"max_clients\": 500, \"max_message_bytes\": 1048576, \"parse_max_bytes\": "
		"4096},"
		" \"timeouts\": {\"connect_ms\": 1000, \"auth_ms\": 2000, \"client_idle_ms\": 600000,"
		"                \"shutdown_timeout_ms\": 0},"
		" \"log\": {\"level\": \"debug\", \"format\": \"json\"}"
		"}";
	struct config cfg;
	struct config_error err;
	const struct config_upstream *up;

	(void)state;
	parse_ok(json, &cfg);
	assert_string_equal(cfg.listen_host, "127.0.0.2");
	assert_int_equal(cfg.listen_port, 7432);
	assert_int_equal(cfg.n_upstreams, 1);
	up = config_active_upstream(&cfg);
	assert_string_equal(up->name, "default");
	assert_string_equal(up->host, "db.internal");
	assert_int_equal(up->port, 5433);
	assert_int_equal(up->sslmode, SSLMODE_VERIFY_FULL);
	assert_string_equal(up->sslrootcert, "/etc/pgvalve/root.crt");
	assert_string_equal(cfg.tls_cert_file, "/etc/pgvalve/server.crt");
	assert_string_equal(cfg.tls_key_file, "/etc/pgvalve/server.key");
	assert_string_equal(cfg.admin_host, "10.0.0.5");
	assert_int_equal(cfg.admin_port, 7480);
	assert_string_equal(cfg.admin_token_file, "/etc/pgvalve/token");
	assert_int_equal(cfg.workers, 4);
	assert_int_equal(cfg.max_clients, 500);
	assert_int_equal(cfg.max_message_bytes, 1048576);
	assert_int_equal(cfg.parse_max_bytes, 4096);
	assert_int_equal(cfg.connect_ms, 1000);
	assert_int_equal(cfg.auth_ms, 2000);
	assert_int_equal(cfg.client_idle_ms, 600000);
	assert_int_equal(cfg.shutdown_timeout_ms, 0);
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
	if (!config_validate(&cfg, &err))
		fail_msg("validate: %s", err.msg);
	config_free(&cfg);
}

static void test_upstream_defaults(void **state)
{
	struct config cfg;
	const struct config_upstream *up;

	(void)state;
	parse_ok("{\"upstream\": {}}", &cfg);
	assert_int_equal(cfg.n_upstreams, 1);
	assert_int_equal(cfg.active, 0);
	up = config_active_upstream(&cfg);
	assert_string_equal(up->name, "default");
	assert_string_equal(up->host, "127.0.0.1");
	assert_int_equal(up->port, 5432);
	assert_int_equal(up->sslmode, SSLMODE_PREFER);
	assert_null(up->sslrootcert);
	config_free(&cfg);
}

static void test_every_sslmode(void **state)
{
	static const char *const names[] = { "disable", "prefer", "require", "verify-full" };
	static const enum sslmode modes[] = { SSLMODE_DISABLE, SSLMODE_PREFER, SSLMODE_REQUIRE,
					      SSLMODE_VERIFY_FULL };

	(void)state;
	for (int i = 0; i < 4; i++) {
		char json[128];
		struct config cfg;
		enum sslmode m;

		snprintf(json, sizeof(json), "{\"upstream\": {\"sslmode\": \"%s\"}}", names[i]);
		parse_ok(json, &cfg);
		assert_int_equal(cfg.upstreams[0].sslmode, modes[i]);
		config_free(&cfg);
		assert_true(config_sslmode_parse(names[i], &m));
		assert_int_equal(m, modes[i]);
		assert_string_equal(config_sslmode_name(modes[i]), names[i]);
	}
	{
		enum sslmode m = SSLMODE_REQUIRE;

		assert_false(config_sslmode_parse("verify-ca", &m));
		assert_false(config_sslmode_parse("allow", &m));
		assert_false(config_sslmode_parse("Require", &m));
		assert_false(config_sslmode_parse("", &m));
		assert_int_equal(m, SSLMODE_REQUIRE);
	}
}

/* null means "not set" for the optional strings, also over a value set earlier. */
static void test_null_strings(void **state)
{
	struct config cfg;

	(void)state;
	parse_ok("{\"tls\": {\"cert_file\": null, \"key_file\": null},"
		 " \"admin\": {\"token_file\": null},"
		 " \"upstream\": {\"sslrootcert\": null}}",
		 &cfg);
	assert_null(cfg.tls_cert_file);
	assert_null(cfg.admin_token_file);
	assert_null(cfg.upstreams[0].sslrootcert);
	config_free(&cfg);
}

/*
 * A host cannot be "not set": null for listen.host or admin.host must be
 * refused, naming the key (as it is for upstream.host). A NULL host that got
 * through parsing is reported, not passed on: config_validate() and the
 * proxy's reload strcmp() both hosts.
 */
static void host_null_refused(const char *json, const char *key)
{
	struct config cfg;
	struct config_error err;
	bool ok = parse(json, &cfg, &err);

	if (ok && (cfg.listen_host == NULL || cfg.admin_host == NULL)) {
		config_free(&cfg);
		fail_msg("%s: accepted, leaving the host NULL", json);
	}
	ok = ok && config_validate(&cfg, &err);
	config_free(&cfg);
	if (ok)
		fail_msg("accepted %s", json);
	assert_contains(err.msg, key);
}

static void test_listen_host_not_null(void **state)
{
	(void)state;
	host_null_refused("{\"upstream\": {}, \"listen\": {\"host\": null}}", "\"listen.host\"");
}

static void test_admin_host_not_null(void **state)
{
	(void)state;
	host_null_refused("{\"upstream\": {}, \"admin\": {\"host\": null}}", "\"admin.host\"");
}

/* The bounds themselves are accepted. */
static void test_limits_at_bounds(void **state)
{
	struct config cfg;

	(void)state;
	parse_ok("{\"limits\": {\"max_clients\": 1, \"max_message_bytes\": 1024, \"parse_max_bytes\": 64},"
		 " \"workers\": 0, \"listen\": {\"port\": 1}, \"admin\": {\"port\": 0},"
		 " \"timeouts\": {\"connect_ms\": 1, \"auth_ms\": 1, \"client_idle_ms\": 0,"
		 "              \"shutdown_timeout_ms\": 0}}",
		 &cfg);
	assert_int_equal(cfg.max_clients, 1);
	assert_int_equal(cfg.max_message_bytes, 1024);
	assert_int_equal(cfg.parse_max_bytes, 64);
	assert_int_equal(cfg.listen_port, 1);
	assert_int_equal(cfg.admin_port, 0);
	assert_int_equal(cfg.connect_ms, 1);
	config_free(&cfg);

	parse_ok("{\"limits\": {\"max_clients\": 1000000, \"max_message_bytes\": 1073741824,"
		 "             \"parse_max_bytes\": 262144},"
		 " \"workers\": 256, \"listen\": {\"port\": 65535}, \"admin\": {\"port\": 65535},"
		 " \"upstream\": {\"port\": 65535},"
		 " \"timeouts\": {\"connect_ms\": 3600000, \"auth_ms\": 3600000,"
		 "              \"client_idle_ms\": 604800000, \"shutdown_timeout_ms\": 3600000}}",
		 &cfg);
	assert_int_equal(cfg.max_clients, 1000000);
	assert_int_equal(cfg.max_message_bytes, 1073741824);
	assert_int_equal(cfg.parse_max_bytes, 262144);
	assert_int_equal(cfg.workers, 256);
	assert_int_equal(cfg.upstreams[0].port, 65535);
	assert_int_equal(cfg.client_idle_ms, 604800000);
	config_free(&cfg);
}

/* ------------------------------------------------------------------ errors */

/* Each bad document and the dotted key (quoted) its error must name, plus what was wrong. */
static const struct {
	const char *json;
	const char *key;
	const char *what;
} bad_docs[] = {
	/* limits */
	{ "{\"limits\": {\"max_message_bytes\": \"big\"}}", "\"limits.max_message_bytes\"", "\"big\"" },
	{ "{\"limits\": {\"max_message_bytes\": 1023}}", "\"limits.max_message_bytes\"",
	  "from 1024 to 1073741824" },
	{ "{\"limits\": {\"max_message_bytes\": 1073741825}}", "\"limits.max_message_bytes\"",
	  "from 1024 to 1073741824" },
	{ "{\"limits\": {\"max_message_bytes\": 1048576.5}}", "\"limits.max_message_bytes\"",
	  "expected an integer" },
	{ "{\"limits\": {\"max_message_bytes\": null}}", "\"limits.max_message_bytes\"", "got null" },
	{ "{\"limits\": {\"max_message_bytes\": true}}", "\"limits.max_message_bytes\"", "got true" },
	{ "{\"limits\": {\"max_message_bytes\": [1]}}", "\"limits.max_message_bytes\"", "got an array" },
	{ "{\"limits\": {\"max_clients\": 0}}", "\"limits.max_clients\"", "expected an integer" },
	{ "{\"limits\": {\"max_clients\": 1000001}}", "\"limits.max_clients\"", "expected an integer" },
	{ "{\"limits\": {\"parse_max_bytes\": 63}}", "\"limits.parse_max_bytes\"", "expected an integer" },
	{ "{\"limits\": {\"parse_max_bytes\": 262145}}", "\"limits.parse_max_bytes\"",
	  "expected an integer" },
	{ "{\"limits\": 5}", "\"limits\"", "expected an object" },
	/* upstream */
	{ "{\"upstream\": {\"sslmode\": \"verify-ca\"}}", "\"upstream.sslmode\"",
	  "verify-full, got \"verify-ca\"" },
	{ "{\"upstream\": {\"sslmode\": 1}}", "\"upstream.sslmode\"", "verify-full, got 1" },
	{ "{\"upstream\": {\"sslmode\": \"\"}}", "\"upstream.sslmode\"", "expected one of disable, prefer" },
	{ "{\"upstream\": {\"port\": 0}}", "\"upstream.port\"", "from 1 to 65535" },
	{ "{\"upstream\": {\"port\": 65536}}", "\"upstream.port\"", "from 1 to 65535" },
	{ "{\"upstream\": {\"port\": \"5432\"}}", "\"upstream.port\"", "got \"5432\"" },
	{ "{\"upstream\": {\"host\": null}}", "\"upstream.host\"", "got null" },
	{ "{\"upstream\": {\"host\": [\"a\"]}}", "\"upstream.host\"", "got an array" },
	{ "{\"upstream\": {\"sslrootcert\": 7}}", "\"upstream.sslrootcert\"", "expected a non-empty string" },
	{ "{\"upstream\": \"db:5432\"}", "\"upstream\"", "expected an object, got \"db:5432\"" },
	/* log */
	{ "{\"log\": {\"level\": \"verbose\"}}", "\"log.level\"", "got \"verbose\"" },
	{ "{\"log\": {\"level\": \"INFO\"}}", "\"log.level\"", "debug, info, warn, error" },
	{ "{\"log\": {\"level\": \"warning\"}}", "\"log.level\"", "debug, info, warn, error" },
	{ "{\"log\": {\"level\": 2}}", "\"log.level\"", "debug, info, warn, error, got 2" },
	{ "{\"log\": {\"format\": \"xml\"}}", "\"log.format\"", "expected one of text, json, got \"xml\"" },
	{ "{\"log\": \"debug\"}", "\"log\"", "expected an object" },
	/* unknown keys, top level and nested; keys given twice (a lookup would see only the first) */
	{ "{\"workers\": 1, \"workers\": 300}", "\"workers\"", "given twice" },
	{ "{\"upstream\": {\"port\": 1, \"port\": 2}}", "\"upstream.port\"", "given twice" },
	{ "{\"upstreams\": {\"a\": {}, \"a\": {}}}", "\"upstreams.a\"", "given twice" },
	{ "{\"wokers\": 2}", "\"wokers\"", "unknown key" },
	{ "{\"upstream\": {}, \"Listen\": {}}", "\"Listen\"", "unknown key" },
	{ "{\"limits\": {\"max_clinets\": 5}}", "\"limits.max_clinets\"",
	  "unknown key (known: max_clients, max_message_bytes, parse_max_bytes)" },
	{ "{\"upstream\": {\"hots\": \"db\"}}", "\"upstream.hots\"",
	  "(known: host, port, sslmode, sslrootcert)" },
	{ "{\"upstreams\": {\"a\": {\"prot\": 1}}}", "\"upstreams.a.prot\"", "unknown key" },
	{ "{\"log\": {\"levle\": \"debug\"}}", "\"log.levle\"", "unknown key" },
	{ "{\"timeouts\": {\"idle_ms\": 5}}", "\"timeouts.idle_ms\"", "unknown key" },
	{ "{\"listen\": {\"addr\": \"::\"}}", "\"listen.addr\"", "unknown key" },
	{ "{\"tls\": {\"ca_file\": \"x\"}}", "\"tls.ca_file\"", "unknown key" },
	{ "{\"admin\": {\"token\": \"x\"}}", "\"admin.token\"", "unknown key" },
	/* listen, admin, tls, workers, timeouts: wrong types and ranges */
	{ "{\"listen\": 6432}", "\"listen\"", "expected an object, got 6432" },
	{ "{\"listen\": {\"port\": \"6432\"}}", "\"listen.port\"", "got \"6432\"" },
	{ "{\"listen\": {\"port\": 0}}", "\"listen.port\"", "from 1 to 65535" },
	{ "{\"listen\": {\"port\": 65536}}", "\"listen.port\"", "from 1 to 65535" },
	{ "{\"listen\": {\"host\": 127}}", "\"listen.host\"", "expected a non-empty string" },
	{ "{\"listen\": {\"host\": \"\"}}", "\"listen.host\"", "expected a non-empty string" },
	{ "{\"admin\": {\"port\": -1}}", "\"admin.port\"", "from 0 to 65535" },
	{ "{\"admin\": {\"token_file\": false}}", "\"admin.token_file\"", "got false" },
	{ "{\"tls\": {\"cert_file\": \"\"}}", "\"tls.cert_file\"", "expected a non-empty string" },
	{ "{\"tls\": {\"key_file\": {}}}", "\"tls.key_file\"", "got an object" },
	{ "{\"tls\": []}", "\"tls\"", "expected an object, got an array" },
	{ "{\"workers\": -1}", "\"workers\"", "from 0 to 256" },
	{ "{\"workers\": 257}", "\"workers\"", "from 0 to 256" },
	{ "{\"workers\": \"4\"}", "\"workers\"", "got \"4\"" },
	{ "{\"workers\": 2.5}", "\"workers\"", "got 2.5" },
	{ "{\"timeouts\": {\"connect_ms\": 0}}", "\"timeouts.connect_ms\"", "from 1 to 3600000" },
	{ "{\"timeouts\": {\"auth_ms\": 3600001}}", "\"timeouts.auth_ms\"", "from 1 to 3600000" },
	{ "{\"timeouts\": {\"client_idle_ms\": -1}}", "\"timeouts.client_idle_ms\"", "from 0 to 604800000" },
	{ "{\"timeouts\": {\"shutdown_timeout_ms\": \"30s\"}}", "\"timeouts.shutdown_timeout_ms\"",
	  "got \"30s\"" },
	/* not an object at the top */
	{ "[]", "(top level)", "expected an object" },
	{ "\"upstream\"", "(top level)", "expected an object" },
	{ "42", "(top level)", "expected an object" },
};

static void test_errors_name_the_key(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_docs) / sizeof(bad_docs[0]); i++)
		parse_fails(bad_docs[i].json, bad_docs[i].key, bad_docs[i].what);
}

/*
 * Numbers beyond int64 are refused like any out-of-range value. Registered
 * last: converting such a double to an integer type is undefined behaviour,
 * which the clang UBSan build turns into an abort.
 */
static void test_huge_numbers_rejected(void **state)
{
	(void)state;
	parse_fails("{\"limits\": {\"max_message_bytes\": 1e19}}", "\"limits.max_message_bytes\"",
		    "expected an integer");
	parse_fails("{\"limits\": {\"max_clients\": -1e300}}", "\"limits.max_clients\"",
		    "expected an integer");
	parse_fails("{\"workers\": 1e300}", "\"workers\"", "from 0 to 256");
}

/* The first bad key is reported even when others come after it, and only it. */
static void test_error_reports_first_problem(void **state)
{
	struct config cfg;
	struct config_error err;

	(void)state;
	assert_false(parse("{\"upstream\": {\"port\": 0}, \"log\": {\"level\": \"loud\"}}", &cfg, &err));
	assert_contains(err.msg, "\"upstream.port\"");
	assert_null(strstr(err.msg, "log.level"));
	config_free(&cfg);
}

/* Errors are one line, short enough to print, even for absurd input. */
static void test_error_message_bounded(void **state)
{
	char json[2048];
	char key[1500];
	struct config cfg;
	struct config_error err;

	(void)state;
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	snprintf(json, sizeof(json), "{\"limits\": {\"%s\": 1}}", key);
	assert_false(parse(json, &cfg, &err));
	config_free(&cfg);
	assert_true(strlen(err.msg) < sizeof(err.msg));
	assert_contains(err.msg, "\"limits.kkkk");
	assert_null(strchr(err.msg, '\n'));

	snprintf(json, sizeof(json), "{\"log\": {\"level\": \"%s\"}}", key);
	assert_false(parse(json, &cfg, &err));
	config_free(&cfg);
	assert_contains(err.msg, "\"log.level\"");
}

/* ----------------------------------------------------------- JSON handling */

static void test_comments_accepted(void **state)
{
	static const char json[] =
		"// pgvalve-proxy config\n"
		"{\n"
		"  /* where clients connect */\n"
		"  \"listen\": {\"port\": 7000}, // not the default\n"
		"  \"upstream\": {\n"
		"    \"host\": \"db\" /* primary */,\n"
		"    \"sslrootcert\": \"/etc//pgvalve/*root*/.crt\"  // markers inside a string stay\n"
		"  }\n"
		"}\n"
		"// end\n";
	struct config cfg;

	(void)state;
	parse_ok(json, &cfg);
	assert_int_equal(cfg.listen_port, 7000);
	assert_string_equal(cfg.upstreams[0].host, "db");
	assert_string_equal(cfg.upstreams[0].sslrootcert, "/etc//pgvalve/*root*/.crt");
	config_free(&cfg);
}

static void test_invalid_json(void **state)
{
	static const char *const docs[] = {
		"",
		"   \n",
		"{",
		"{\"workers\": }",
		"{\"workers\": 2,}",
		"{workers: 2}",
		"{'workers': 2}",
		"{\"workers\": 2 /* unterminated comment",
		"{\"upstream\": {\"host\": \"db}}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		parse_fails(docs[i], "not valid JSON", NULL);
}

/*
 * A brace closed too early (a common hand-editing slip) must not silently
 * drop the rest of the file: the log level below would be ignored.
 */
static void test_trailing_garbage_rejected(void **state)
{
	(void)state;
	parse_fails("{\"upstream\": {\"host\": \"db\"}}, \"log\": {\"level\": \"debug\"}}", "not valid JSON",
		    NULL);
	parse_fails("{\"workers\": 2} {\"workers\": 3}", "not valid JSON", NULL);
	parse_fails("{} x", "not valid JSON", NULL);
}

/* ------------------------------------------------------ upstream/upstreams */

static void test_upstream_and_upstreams_exclusive(void **state)
{
	(void)state;
	parse_fails("{\"upstream\": {}, \"upstreams\": {\"a\": {}}}", "\"upstreams\"", "not both");
	parse_fails("{\"upstream\": {}, \"active\": \"default\"}", "\"active\"",
		    "only meaningful with \"upstreams\"");
}

static void test_upstreams_single_needs_no_active(void **state)
{
	struct config cfg;
	const struct config_upstream *up;

	(void)state;
	parse_ok("{\"upstreams\": {\"primary\": {\"host\": \"db1\", \"port\": 5433}}}", &cfg);
	assert_int_equal(cfg.n_upstreams, 1);
	assert_int_equal(cfg.active, 0);
	up = config_active_upstream(&cfg);
	assert_string_equal(up->name, "primary");
	assert_string_equal(up->host, "db1");
	assert_int_equal(up->port, 5433);
	config_free(&cfg);
}

static void test_upstreams_active_selects(void **state)
{
	struct config cfg;
	const struct config_upstream *up;

	(void)state;
	parse_ok("{\"upstreams\": {\"blue\": {\"host\": \"db1\"}, \"green\": {\"host\": \"db2\","
		 " \"sslmode\": \"require\"}}, \"active\": \"green\"}",
		 &cfg);
	assert_int_equal(cfg.n_upstreams, 2);
	assert_string_equal(cfg.upstreams[0].name, "blue");
	assert_string_equal(cfg.upstreams[1].name, "green");
	up = config_active_upstream(&cfg);
	assert_string_equal(up->name, "green");
	assert_string_equal(up->host, "db2");
	assert_int_equal(up->sslmode, SSLMODE_REQUIRE);
	config_free(&cfg);
}

static void test_upstreams_errors(void **state)
{
	(void)state;
	parse_fails("{\"upstreams\": {}}", "\"upstreams\"", "at least one");
	parse_fails("{\"upstreams\": []}", "\"upstreams\"", "expected an object");
	parse_fails("{\"upstreams\": {\"a\": {}, \"b\": {}}}", "\"active\"", "expected the name");
	parse_fails("{\"upstreams\": {\"a\": {}, \"b\": {}}, \"active\": \"c\"}", "\"active\"",
		    "no upstream named \"c\"");
	parse_fails("{\"upstreams\": {\"a\": {}, \"b\": {}}, \"active\": 1}", "\"active\"",
		    "expected the name");
	parse_fails("{\"upstreams\": {\"a\": \"db:5432\"}}", "\"upstreams.a\"", "expected an object");
	parse_fails("{\"upstreams\": {\"a\": {}, \"b\": {\"sslmode\": \"on\"}}, \"active\": \"a\"}",
		    "\"upstreams.b.sslmode\"", "got \"on\"");
	parse_fails("{\"upstreams\": {\"a\": {}, \"b\": {\"port\": 99999}}, \"active\": \"a\"}",
		    "\"upstreams.b.port\"", "from 1 to 65535");
}

static void test_upstreams_at_most_16(void **state)
{
	char json[2048];
	size_t len;
	struct config cfg;

	(void)state;
	len = (size_t)snprintf(json, sizeof(json), "{\"active\": \"u0\", \"upstreams\": {");
	for (int i = 0; i < CONFIG_MAX_UPSTREAMS; i++)
		len += (size_t)snprintf(json + len, sizeof(json) - len, "%s\"u%d\": {\"port\": %d}",
					i ? ", " : "", i, 5000 + i);
	snprintf(json + len, sizeof(json) - len, "}}");
	parse_ok(json, &cfg);
	assert_int_equal(cfg.n_upstreams, CONFIG_MAX_UPSTREAMS);
	assert_int_equal(cfg.upstreams[15].port, 5015);
	config_free(&cfg);

	snprintf(json + len, sizeof(json) - len, ", \"u16\": {}}}");
	parse_fails(json, "\"upstreams\"", "at most 16");
}

/* No upstream in the file parses (the command line may add one), but does not validate. */
static void test_no_upstream(void **state)
{
	struct config cfg;
	struct config_error err;

	(void)state;
	parse_ok("{\"workers\": 2}", &cfg);
	assert_int_equal(cfg.n_upstreams, 0);
	assert_false(config_validate(&cfg, &err));
	assert_contains(err.msg, "\"upstream\"");
	config_free(&cfg);
}

/* -------------------------------------------------------------- validation */

static void validate_fails(const char *json, const char *needle)
{
	struct config cfg;
	struct config_error err;

	parse_ok(json, &cfg);
	if (config_validate(&cfg, &err))
		fail_msg("validated %s", json);
	config_free(&cfg);
	if (strstr(err.msg, needle) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", json, err.msg, needle);
}

static void validate_ok(const char *json)
{
	struct config cfg;
	struct config_error err;

	parse_ok(json, &cfg);
	if (!config_validate(&cfg, &err))
		fail_msg("%s: %s", json, err.msg);
	config_free(&cfg);
}

static void test_validate_admin_token(void **state)
{
	static const char *const loopback[] = { "127.0.0.1", "127.10.0.1", "localhost", "::1" };
	static const char *const open[] = { "0.0.0.0", "::", "10.0.0.5", "admin.example.com" };

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		char json[256];

		snprintf(json, sizeof(json), "{\"upstream\": {}, \"admin\": {\"host\": \"%s\"}}",
			 loopback[i]);
		validate_ok(json);
		snprintf(json, sizeof(json), "{\"upstream\": {}, \"admin\": {\"host\": \"%s\"}}", open[i]);
		validate_fails(json, "\"admin.token_file\"");
		snprintf(json, sizeof(json),
			 "{\"upstream\": {}, \"admin\": {\"host\": \"%s\", \"token_file\": \"/run/t\"}}",
			 open[i]);
		validate_ok(json);
	}
}

static void test_validate_tls_pair(void **state)
{
	(void)state;
	validate_fails("{\"upstream\": {}, \"tls\": {\"cert_file\": \"/c.pem\"}}", "\"tls\"");
	validate_fails("{\"upstream\": {}, \"tls\": {\"key_file\": \"/k.pem\"}}", "\"tls\"");
	validate_ok("{\"upstream\": {}, \"tls\": {\"cert_file\": \"/c.pem\", \"key_file\": \"/k.pem\"}}");
	validate_ok("{\"upstream\": {}, \"tls\": {}}");
}

static void test_validate_verify_full_needs_root_cert(void **state)
{
	(void)state;
	validate_fails("{\"upstream\": {\"sslmode\": \"verify-full\"}}", "\"upstream.sslrootcert\"");
	validate_ok("{\"upstream\": {\"sslmode\": \"verify-full\", \"sslrootcert\": \"/root.crt\"}}");
	validate_ok("{\"upstream\": {\"sslmode\": \"require\"}}");
}

/* ------------------------------------------------------------------- auth */

static void test_auth_every_key(void **state)
{
	struct config cfg;
	struct config_error err;

	(void)state;
	parse_ok("{\"upstream\": {}, \"auth\": {\"mode\": \"terminate\", \"userlist_file\": \"/etc/u.txt\", "
		 "\"user\": \"pgvalve_auth\", \"password_file\": \"/run/pw\", "
		 "\"query\": \"SELECT u, p FROM f($1)\", \"dbname\": \"postgres\", \"cache_ttl_ms\": 0}}",
		 &cfg);
	assert_int_equal(cfg.auth.mode, AUTH_MODE_TERMINATE);
	assert_string_equal(config_auth_mode_name(cfg.auth.mode), "terminate");
	assert_string_equal(cfg.auth.userlist_file, "/etc/u.txt");
	assert_string_equal(cfg.auth.user, "pgvalve_auth");
	assert_string_equal(cfg.auth.password_file, "/run/pw");
	assert_string_equal(cfg.auth.query, "SELECT u, p FROM f($1)");
	assert_string_equal(cfg.auth.dbname, "postgres");
	assert_int_equal(cfg.auth.cache_ttl_ms, 0);
	if (!config_validate(&cfg, &err))
		fail_msg("validate: %s", err.msg);
	config_free(&cfg);
}

static void test_auth_bad_values(void **state)
{
	(void)state;
	parse_fails("{\"auth\": {\"mode\": \"trust\"}}", "\"auth.mode\"", "relay, terminate");
	parse_fails("{\"auth\": {\"mode\": null}}", "\"auth.mode\"", NULL);
	parse_fails("{\"auth\": {\"query\": null}}", "\"auth.query\"", NULL);
	parse_fails("{\"auth\": {\"query\": \"\"}}", "\"auth.query\"", NULL);
	parse_fails("{\"auth\": {\"cache_ttl_ms\": -1}}", "\"auth.cache_ttl_ms\"", "0 to 86400000");
	parse_fails("{\"auth\": {\"cache_ttl_ms\": 86400001}}", "\"auth.cache_ttl_ms\"", NULL);
	parse_fails("{\"auth\": {\"user\": 5}}", "\"auth.user\"", NULL);
	parse_fails("{\"auth\": {\"userlist\": \"/x\"}}", "\"auth.userlist\": unknown key", "userlist_file");
	parse_fails("{\"auth\": []}", "\"auth\"", NULL);
}

static void test_auth_validate(void **state)
{
	(void)state;
	/* relay: terminate-only keys would be ignored, so they are refused */
	validate_ok("{\"upstream\": {}, \"auth\": {\"mode\": \"relay\", \"userlist_file\": null}}");
	validate_fails("{\"upstream\": {}, \"auth\": {\"userlist_file\": \"/u\"}}", "\"auth.userlist_file\"");
	validate_fails("{\"upstream\": {}, \"auth\": {\"user\": \"x\"}}", "\"auth.user\"");
	validate_fails("{\"upstream\": {}, \"auth\": {\"password_file\": \"/p\"}}", "\"auth.password_file\"");
	validate_fails("{\"upstream\": {}, \"auth\": {\"dbname\": \"d\"}}", "\"auth.dbname\"");
	/* terminate: some source of verifiers; a password needs its user; the query takes $1 */
	validate_fails("{\"upstream\": {}, \"auth\": {\"mode\": \"terminate\"}}", "\"auth.mode\"");
	validate_ok("{\"upstream\": {}, \"auth\": {\"mode\": \"terminate\", \"userlist_file\": \"/u\"}}");
	validate_ok("{\"upstream\": {}, \"auth\": {\"mode\": \"terminate\", \"user\": \"a\"}}");
	validate_fails("{\"upstream\": {}, \"auth\": {\"mode\": \"terminate\", \"userlist_file\": \"/u\", "
		       "\"password_file\": \"/p\"}}",
		       "\"auth.password_file\"");
	validate_fails("{\"upstream\": {}, \"auth\": {\"mode\": \"terminate\", \"user\": \"a\", "
		       "\"query\": \"SELECT rolname, rolpassword FROM pg_authid\"}}",
		       "\"auth.query\"");
	/* no TLS demanded on either leg */
	validate_ok("{\"upstream\": {\"sslmode\": \"disable\"}, \"auth\": {\"mode\": \"terminate\", "
		    "\"user\": \"a\"}}");
}

/* With "upstreams", the key to fix is upstreams.NAME.sslrootcert: that is what the error must name. */
static void test_validate_verify_full_names_upstreams_key(void **state)
{
	(void)state;
	validate_fails(
		"{\"upstreams\": {\"a\": {}, \"b\": {\"sslmode\": \"verify-full\"}}, \"active\": \"a\"}",
		"\"upstreams.b.sslrootcert\"");
}

/* ---------------------------------------------------------------- hostport */

static void test_hostport_valid(void **state)
{
	static const struct {
		const char *in, *host;
		int port;
	} cases[] = {
		{ "127.0.0.1:5432", "127.0.0.1", 5432 },
		{ "db.internal:6432", "db.internal", 6432 },
		{ "[::1]:6432", "::1", 6432 },
		{ "[2001:db8::10]:5432", "2001:db8::10", 5432 },
		{ ":6432", "0.0.0.0", 6432 },
		{ "h:1", "h", 1 },
		{ "h:65535", "h", 65535 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *host = NULL;
		int port = -1;

		if (!config_parse_hostport(cases[i].in, &host, &port))
			fail_msg("rejected \"%s\"", cases[i].in);
		assert_string_equal(host, cases[i].host);
		assert_int_equal(port, cases[i].port);
		free(host);
	}
}

static void hostport_rejects(const char *in)
{
	char *host = NULL;
	int port = -1;

	if (config_parse_hostport(in, &host, &port))
		fail_msg("accepted \"%s\" as host \"%s\" port %d", in, host, port);
	assert_null(host);
	assert_int_equal(port, -1);
}

static void test_hostport_bad_ports(void **state)
{
	static const char *const cases[] = {
		"",      "db",     "db:",    "db:0",     "db:65536",
		"db:-1", "db:abc", "db:54x", "db:5432 ", "db:99999999999999999999",
		"[::1]", "[::1]:", ":",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		hostport_rejects(cases[i]);
}

/* An IPv6 address without brackets is ambiguous and must not be split at its last colon. */
static void test_hostport_unbracketed_ipv6(void **state)
{
	(void)state;
	hostport_rejects("::1");
	hostport_rejects("fe80::1");
	hostport_rejects("2001:db8::1:5432");
}

/* ---------------------------------------------------------------- the file */

static char *write_temp(const char *text, size_t len)
{
	char *path = strdup("/tmp/pgvalve-test-config-XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_load_file(void **state)
{
	static const char text[] = "// test\n{\"upstream\": {\"host\": \"db\"}, \"workers\": 3}\n";
	char *path = write_temp(text, sizeof(text) - 1);
	struct config cfg;
	struct config_error err;

	(void)state;
	config_init_defaults(&cfg);
	if (!config_load_file(&cfg, path, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(cfg.workers, 3);
	assert_string_equal(cfg.upstreams[0].host, "db");
	config_free(&cfg);
	unlink(path);

	config_init_defaults(&cfg);
	assert_false(config_load_file(&cfg, path, &err)); /* now gone */
	assert_contains(err.msg, path);
	assert_contains(err.msg, "No such file");
	config_free(&cfg);
	free(path);
}

static void test_load_file_errors(void **state)
{
	static const char bad_level[] = "{\"log\": {\"level\": \"loud\"}}";
	size_t big = (1u << 20) + 1;
	char *text = malloc(big);
	char *path;
	struct config cfg;
	struct config_error err;

	(void)state;
	assert_non_null(text);
	memset(text, ' ', big);
	text[0] = '{';
	text[big - 1] = '}';
	path = write_temp(text, big);
	config_init_defaults(&cfg);
	assert_false(config_load_file(&cfg, path, &err));
	assert_contains(err.msg, "larger than 1 MiB");
	config_free(&cfg);
	unlink(path);
	free(path);

	path = write_temp(bad_level, sizeof(bad_level) - 1);
	config_init_defaults(&cfg);
	assert_false(config_load_file(&cfg, path, &err));
	assert_contains(err.msg, "\"log.level\"");
	config_free(&cfg);
	unlink(path);
	free(path);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_object_keeps_defaults),
		cmocka_unit_test(test_design_example),
		cmocka_unit_test(test_every_key_parsed),
		cmocka_unit_test(test_upstream_defaults),
		cmocka_unit_test(test_every_sslmode),
		cmocka_unit_test(test_null_strings),
		cmocka_unit_test(test_limits_at_bounds),
		cmocka_unit_test(test_errors_name_the_key),
		cmocka_unit_test(test_error_reports_first_problem),
		cmocka_unit_test(test_error_message_bounded),
		cmocka_unit_test(test_comments_accepted),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_trailing_garbage_rejected),
		cmocka_unit_test(test_upstream_and_upstreams_exclusive),
		cmocka_unit_test(test_upstreams_single_needs_no_active),
		cmocka_unit_test(test_upstreams_active_selects),
		cmocka_unit_test(test_upstreams_errors),
		cmocka_unit_test(test_upstreams_at_most_16),
		cmocka_unit_test(test_no_upstream),
		cmocka_unit_test(test_auth_every_key),
		cmocka_unit_test(test_auth_bad_values),
		cmocka_unit_test(test_auth_validate),
		cmocka_unit_test(test_validate_admin_token),
		cmocka_unit_test(test_validate_tls_pair),
		cmocka_unit_test(test_validate_verify_full_needs_root_cert),
		cmocka_unit_test(test_validate_verify_full_names_upstreams_key),
		cmocka_unit_test(test_hostport_valid),
		cmocka_unit_test(test_hostport_bad_ports),
		cmocka_unit_test(test_hostport_unbracketed_ipv6),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_load_file_errors),
		cmocka_unit_test(test_listen_host_not_null),
		cmocka_unit_test(test_admin_host_not_null),
		cmocka_unit_test(test_huge_numbers_rejected),
	};

	setvbuf(stdout, NULL, _IONBF, 0); /* a sanitizer abort must not swallow the results */
	return cmocka_run_group_tests_name("common/config", tests, NULL, NULL);
}
