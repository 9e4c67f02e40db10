/*
 * Unit tests for coordinator/options.c: the config file (--config) in the
 * proxy config's wording, its proxies and their token files, and flags over
 * the file.
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

#include "options.h"

#define ALL_FLAGS 0xffffu

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pgvalve_options_XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes dir/name holding 'text'; returns its path (static). */
static const char *write_file(const char *name, const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* options_parse of "cmd --config FILE extra..." with FILE holding 'json'. */
static bool parse_with(const char *json, const char *extra, struct options *o, char *err, size_t errlen)
{
	char file[128], *argv[8];
	int argc = 0;

	snprintf(file, sizeof(file), "%s", write_file("pgvalve.json", json));
	argv[argc++] = "apply";
	argv[argc++] = "--config";
	argv[argc++] = file;
	if (extra) {
		argv[argc++] = (char *)extra;
		argv[argc++] = "20";
	}
	argv[argc] = NULL;
	return options_parse(argc, argv, ALL_FLAGS, o, err, errlen);
}

static void refused(const char *json, const char *message)
{
	struct options o;
	char err[512], want[600];

	if (parse_with(json, NULL, &o, err, sizeof(err)))
		fail_msg("accepted %s", json);
	options_free(&o);
	snprintf(want, sizeof(want), "%s/pgvalve.json: %s", dir, message);
	assert_string_equal(err, want);
}

static void test_file_values(void **state)
{
	struct options o;
	char err[512];

	(void)state;
	if (!parse_with("{ // comments are allowed\n \"db\": \"postgresql://x/app\", \"max_stall_ms\": 300,"
			" \"attempts\": 5, \"watch_s\": 0, \"windows\": [\"daily 00:00-24:00\"],"
			" \"rollback_on\": [\"error_rate > 5/s\", \"constraint_violations > 1%\"]}",
			NULL, &o, err, sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(o.db, "postgresql://x/app");
	assert_int_equal(o.max_stall_ms, 300);
	assert_int_equal(o.lock_timeout_ms, 200);
	assert_int_equal(o.attempts, 5);
	assert_int_equal(o.watch_s, 0);
	assert_int_equal(o.n_windows, 1);
	assert_string_equal(o.windows[0], "daily 00:00-24:00");
	assert_int_equal(o.n_rollback_on, 2);
	options_free(&o);

	/* A flag wins over the file. */
	if (!parse_with("{\"max_stall_ms\": 300}", "--max-stall", &o, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(o.max_stall_ms, 20);
	options_free(&o);
}

static void test_file_errors(void **state)
{
	(void)state;
	refused("{\"max_stal_ms\": 1}",
		"\"max_stal_ms\": unknown key (known: db, proxies, max_stall_ms, "
		"lock_timeout_ms, attempts, watch_s, windows, rollback_on, orm, max_lag_ms, baseline_s)");
	refused("{\"orm\": \"hibernate\"}",
		"\"orm\": expected prisma, django, flyway, golang-migrate or alembic, not \"hibernate\"");
	refused("{\"attempts\": 0}", "\"attempts\": expected an integer from 1 to 10000, got 0");
	refused("{\"watch_s\": \"60\"}", "\"watch_s\": expected an integer from 0 to 86400, got \"60\"");
	refused("{\"db\": 5}", "\"db\": expected a non-empty string, got 5");
	refused("{\"windows\": \"daily 00:00-24:00\"}",
		"\"windows\": expected an array of at most 32 strings, got \"daily 00:00-24:00\"");
	refused("{\"rollback_on\": [1]}", "\"rollback_on\": expected an array of strings, got 1 in it");
	refused("{\"attempts\": 1, \"attempts\": 2}", "\"attempts\": given twice");
	refused("[]", "\"(top level)\": expected an object, got an array");
	refused("{\"db\": \"x\"} trailing", "not valid JSON near: trailing");
	refused("{\"proxies\": {\"url\": \"http://a:1\"}}",
		"\"proxies\": expected an array of {\"url\": ..., \"token_file\": ...}, got an object");
	refused("{\"proxies\": [{\"url\": \"http://a:1\", \"tokenfile\": \"/x\"}]}",
		"\"proxies[0].tokenfile\": unknown key (known: url, token_file)");
	refused("{\"proxies\": [{\"token_file\": \"/x\"}]}",
		"\"proxies[0]\": expected an object with \"url\" (http://HOST:PORT or dns://NAME:PORT)");
	refused("{\"proxies\": [{\"url\": \"ftp://a:1\"}]}",
		"proxy \"ftp://a:1\": expected http://HOST:PORT (one proxy's admin address) or "
		"dns://NAME:PORT (every address of NAME)");
	refused("{\"proxies\": [{\"url\": \"dns://fleet\"}]}",
		"proxy \"dns://fleet\": expected dns://NAME:PORT (a name whose addresses are the proxies' "
		"admin API)");
}

/* --max-lag (the key change backfill's replication-lag throttle): a duration, or max_lag_ms in the file. */
static void test_max_lag(void **state)
{
	static const char *const bad[] = { "soon", "0", "-1s", "5 parsecs", "25h" };
	char file[128], err[512];
	struct options o;

	(void)state;
	snprintf(file, sizeof(file), "%s", write_file("lag.json", "{\"max_lag_ms\": 2500}"));
	{
		char *argv[] = { "apply", "--config", file, NULL };

		if (!options_parse(3, argv, OPT_CONFIG | OPT_MAX_LAG, &o, err, sizeof(err)))
			fail_msg("%s", err);
		assert_int_equal(o.max_lag_ms, 2500);
		options_free(&o);
	}
	{
		char *argv[] = { "apply", "--config", file, "--max-lag", "5s", NULL };

		if (!options_parse(5, argv, OPT_CONFIG | OPT_MAX_LAG, &o, err, sizeof(err)))
			fail_msg("%s", err);
		assert_int_equal(o.max_lag_ms, 5000); /* the flag wins */
		options_free(&o);
	}
	{
		char *argv[] = { "apply", NULL };

		if (!options_parse(1, argv, OPT_MAX_LAG, &o, err, sizeof(err)))
			fail_msg("%s", err);
		assert_int_equal(o.max_lag_ms, 0); /* off unless asked for */
		options_free(&o);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "apply", "--max-lag", (char *)bad[i], NULL };

		if (options_parse(3, argv, OPT_MAX_LAG, &o, err, sizeof(err)))
			fail_msg("accepted --max-lag %s", bad[i]);
		options_free(&o);
		assert_non_null(strstr(err, "--max-lag: expected a duration"));
	}
	refused("{\"max_lag_ms\": 0}", "\"max_lag_ms\": expected an integer from 1 to 86400000, got 0");
}

/* --baseline (the latency baseline before the cutover): seconds, 0 to 300, or baseline_s in the file. */
static void test_baseline(void **state)
{
	static const char *const bad[] = { "-1", "301", "1m", "" };
	char file[128], err[512];
	struct options o;

	(void)state;
	{
		char *argv[] = { "apply", NULL };

		if (!options_parse(1, argv, OPT_WATCH, &o, err, sizeof(err)))
			fail_msg("%s", err);
		assert_int_equal(o.baseline_s, -1); /* the default: 60 s, or the watch when shorter */
		options_free(&o);
	}
	snprintf(file, sizeof(file), "%s", write_file("baseline.json", "{\"baseline_s\": 30}"));
	{
		char *argv[] = { "apply", "--config", file, NULL };

		if (!options_parse(3, argv, OPT_CONFIG | OPT_WATCH, &o, err, sizeof(err)))
			fail_msg("%s", err);
		assert_int_equal(o.baseline_s, 30);
		options_free(&o);
	}
	{
		char *argv[] = { "apply", "--config", file, "--baseline", "0", NULL };

		if (!options_parse(5, argv, OPT_CONFIG | OPT_WATCH, &o, err, sizeof(err)))
			fail_msg("%s", err);
		assert_int_equal(o.baseline_s, 0); /* the flag wins */
		options_free(&o);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "apply", "--baseline", (char *)bad[i], NULL };

		if (options_parse(3, argv, OPT_WATCH, &o, err, sizeof(err)))
			fail_msg("accepted --baseline %s", bad[i]);
		options_free(&o);
		assert_non_null(strstr(err, "--baseline: expected an integer from 0 to 300"));
	}
	refused("{\"baseline_s\": 301}", "\"baseline_s\": expected an integer from 0 to 300, got 301");
}

static void test_proxy_token_files(void **state)
{
	struct options o;
	char err[512], json[512], want[512];
	const char *path;

	(void)state;
	path = write_file("good.token", "s3cret-token-0123456789\n");
	snprintf(json, sizeof(json),
		 "{\"proxies\": [{\"url\": \"http://127.0.0.1:6480\", \"token_file\": \"%s\"},"
		 " {\"url\": \"http://[::1]:6481\", \"token_file\": null}]}",
		 path);
	if (!parse_with(json, NULL, &o, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(o.n_proxies, 2);
	assert_string_equal(o.proxies[0]->token, "s3cret-token-0123456789");
	assert_string_equal(o.proxies[1]->host, "::1");
	assert_null(o.proxies[1]->token);
	options_free(&o);

	/* The proxy refuses tokens under 16 characters; the coordinator says so before calling it. */
	path = write_file("short.token", "short\n");
	snprintf(json, sizeof(json),
		 "{\"proxies\": [{\"url\": \"http://127.0.0.1:6480\", \"token_file\": \"%s\"}]}", path);
	snprintf(
		want, sizeof(want),
		"proxy http://127.0.0.1:6480: token_file: \"%s\" must hold a token of at least 16 characters",
		path);
	if (parse_with(json, NULL, &o, err, sizeof(err)))
		fail_msg("accepted a short token");
	options_free(&o);
	assert_non_null(strstr(err, want));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_token_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_lag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_baseline, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
