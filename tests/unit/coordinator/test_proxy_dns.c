/*
 * Unit tests for coordinator/proxy_dns.c: a dns:// entry becomes one proxy
 * per address of its name (numeric names resolve without a resolver, and
 * "localhost" from /etc/hosts), sorted and deduplicated, carrying the
 * entry's token; http:// entries pass as they are; a name with no address
 * is an error naming the entry; a command's options keep what was given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy_dns.h"
#include "xalloc.h"

static struct proxy *entry(const char *url, const char *token)
{
	struct proxy *p = xcalloc(1, sizeof(*p));
	char err[256];

	assert_true(proxy_parse_url(url, p, err, sizeof(err)));
	p->token = token ? xstrdup(token) : NULL;
	return p;
}

static void free_entries(struct proxy **p, int n)
{
	for (int i = 0; i < n; i++) {
		free(p[i]->token);
		free(p[i]);
	}
}

static void test_parse(void **state)
{
	struct proxy p;
	char err[256];

	(void)state;
	assert_true(proxy_parse_url("dns://pgvalve-admin.app.svc.cluster.local:6480", &p, err, sizeof(err)));
	assert_true(p.dns);
	assert_string_equal(p.host, "pgvalve-admin.app.svc.cluster.local");
	assert_int_equal(p.port, 6480);
	assert_true(proxy_parse_url("http://10.0.0.5:6480", &p, err, sizeof(err)));
	assert_false(p.dns);
	assert_false(proxy_parse_url("dns://name", &p, err, sizeof(err)));
	assert_false(proxy_parse_url("dns://name:0", &p, err, sizeof(err)));
	assert_string_equal(err, "proxy \"dns://name:0\": bad port");
}

/* Two dns entries naming overlapping addresses, and an http one: sorted per entry, each URL once. */
static void test_resolve_sorts_and_dedups(void **state)
{
	struct proxy *given[3];
	struct proxy_fleet f;
	char err[256];

	(void)state;
	given[0] = entry("http://127.0.0.9:7000", NULL);
	given[1] = entry("dns://127.0.0.3:6480", "a-token-of-enough-length");
	given[2] = entry("dns://127.0.0.9:7000", NULL); /* the same address as the http entry */
	assert_true(proxy_dns_resolve(given, 3, &f, err, sizeof(err)));
	assert_true(f.owned);
	assert_int_equal(f.n, 2);
	assert_string_equal(f.p[0]->url, "http://127.0.0.9:7000");
	assert_string_equal(f.p[1]->url, "http://127.0.0.3:6480");
	assert_string_equal(f.p[1]->host, "127.0.0.3");
	assert_int_equal(f.p[1]->port, 6480);
	assert_false(f.p[1]->dns);
	assert_string_equal(f.p[1]->token, "a-token-of-enough-length");
	assert_ptr_not_equal(f.p[1]->token, given[1]->token); /* a copy: the fleet frees its own */
	proxy_fleet_free(&f);
	free_entries(given, 3);
}

static void test_resolve_ipv6_in_brackets(void **state)
{
	struct proxy *given[1] = { entry("dns://[::1]:6480", NULL) };
	struct proxy_fleet f;
	char err[256];

	(void)state;
	assert_true(proxy_dns_resolve(given, 1, &f, err, sizeof(err)));
	assert_int_equal(f.n, 1);
	assert_string_equal(f.p[0]->url, "http://[::1]:6480");
	assert_string_equal(f.p[0]->host, "::1");
	proxy_fleet_free(&f);
	free_entries(given, 1);
}

static void test_unresolvable_name(void **state)
{
	struct proxy *given[1] = { entry("dns://pgvalve-no-such-name.invalid:6480", NULL) };
	struct proxy_fleet f;
	char err[256];

	(void)state;
	assert_false(proxy_dns_resolve(given, 1, &f, err, sizeof(err)));
	assert_non_null(strstr(err,
			       "proxy dns://pgvalve-no-such-name.invalid:6480: cannot resolve "
			       "pgvalve-no-such-name.invalid: "));
	assert_int_equal(f.n, 0);
	free_entries(given, 1);
}

/* A command's options: the given entries kept, o->proxies what they name; no dns: left alone. */
static void test_options(void **state)
{
	struct options o = { 0 };
	struct proxy_fleet now;
	char err[256], text[512];
	cJSON *doc;
	char *json;

	(void)state;
	o.proxies[o.n_proxies++] = entry("http://127.0.0.1:6480", NULL);
	assert_true(proxy_dns_options(&o, err, sizeof(err)));
	assert_int_equal(o.n_proxy_given, 0);
	assert_true(proxy_fleet_now(&o, &now, err, sizeof(err)));
	assert_false(now.owned);
	assert_ptr_equal(now.p[0], o.proxies[0]);
	proxy_fleet_free(&now);

	o.proxies[o.n_proxies++] = entry("dns://127.0.0.2:6480", NULL);
	assert_true(proxy_dns_options(&o, err, sizeof(err)));
	assert_int_equal(o.n_proxy_given, 2);
	assert_int_equal(o.n_proxies, 2);
	assert_string_equal(o.proxies[1]->url, "http://127.0.0.2:6480");
	assert_true(proxy_fleet_now(&o, &now, err, sizeof(err)));
	assert_true(now.owned);
	assert_int_equal(now.n, 2);
	proxy_fleet_free(&now);

	proxy_fleet_describe(&o, text, sizeof(text));
	assert_string_equal(text,
			    "2 proxies (http://127.0.0.1:6480, http://127.0.0.2:6480) found by "
			    "dns://127.0.0.2:6480");
	doc = proxy_fleet_json(&o);
	json = cJSON_PrintUnformatted(doc);
	assert_string_equal(json,
			    "{\"given\":[\"http://127.0.0.1:6480\",\"dns://127.0.0.2:6480\"],"
			    "\"found\":[\"http://127.0.0.1:6480\",\"http://127.0.0.2:6480\"]}");
	free(json);
	cJSON_Delete(doc);
	free_entries(o.proxies, o.n_proxies);
	free_entries(o.proxy_given, o.n_proxy_given);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_resolve_sorts_and_dedups),
		cmocka_unit_test(test_resolve_ipv6_in_brackets),
		cmocka_unit_test(test_unresolvable_name),
		cmocka_unit_test(test_options),
	};

	xalloc_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
