/*
 * Unit tests for common/jsonval.c: each check's message in the one wording
 * (path, what was expected, what came), absent keys leave defaults alone,
 * unknown and repeated keys, integer edges (fractions, beyond int64),
 * nullable strings, string lists, and messages that stay one printable line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgvalve/jsonval.h"

static cJSON *doc(const char *json)
{
	cJSON *d = cJSON_Parse(json);

	if (!d)
		fail_msg("test JSON does not parse: %s", json);
	return d;
}

static void test_int(void **state)
{
	cJSON *d = doc("{\"a\": 5, \"b\": \"big\", \"c\": 2.5, \"d\": 1e300, \"e\": -1e300, \"f\": 1e3, "
		       "\"g\": null}");
	char err[256];
	int64_t v = 42;
	int i = 7;

	(void)state;
	assert_true(jsonval_int(d, "limits", "a", 1, 10, &v, err, sizeof(err)));
	assert_int_equal(v, 5);
	assert_true(jsonval_int(d, "limits", "absent", 1, 10, &v, err, sizeof(err)));
	assert_int_equal(v, 5);
	assert_false(jsonval_int(d, "limits", "b", 1024, 1073741824, &v, err, sizeof(err)));
	assert_string_equal(err, "\"limits.b\": expected an integer from 1024 to 1073741824, got \"big\"");
	assert_false(jsonval_int(d, "", "c", 0, 10, &v, err, sizeof(err)));
	assert_string_equal(err, "\"c\": expected an integer from 0 to 10, got 2.5");
	assert_false(jsonval_int(d, "", "d", INT64_MIN, INT64_MAX, &v, err, sizeof(err)));
	assert_string_equal(err,
			    "\"d\": expected an integer from -9223372036854775808 to 9223372036854775807, "
			    "got 1e+300");
	assert_false(jsonval_int(d, "", "e", 0, 10, &v, err, sizeof(err)));
	assert_true(jsonval_int(d, "", "f", 0, 1000, &v, err, sizeof(err)));
	assert_int_equal(v, 1000);
	assert_false(jsonval_int(d, "", "g", 0, 10, &v, err, sizeof(err)));
	assert_string_equal(err, "\"g\": expected an integer from 0 to 10, got null");
	assert_int_equal(v, 1000);
	assert_true(jsonval_int32(d, "", "a", 0, 5, &i, err, sizeof(err)));
	assert_int_equal(i, 5);
	assert_false(jsonval_int32(d, "", "a", 6, 9, &i, err, sizeof(err)));
	assert_int_equal(i, 5);
	cJSON_Delete(d);
}

static void test_enum_and_bool(void **state)
{
	static const char *const modes[] = { "writes", "all", NULL };
	cJSON *d = doc("{\"mode\": \"all\", \"bad\": \"some\", \"num\": 1, \"yes\": true, \"no\": 0}");
	char err[256];
	int m = -1;
	bool b = false;

	(void)state;
	assert_true(jsonval_enum(d, "", "mode", modes, &m, err, sizeof(err)));
	assert_int_equal(m, 1);
	m = -1;
	assert_true(jsonval_enum(d, "", "absent", modes, &m, err, sizeof(err)));
	assert_int_equal(m, -1);
	assert_false(jsonval_enum(d, "hold", "bad", modes, &m, err, sizeof(err)));
	assert_string_equal(err, "\"hold.bad\": expected one of writes, all, got \"some\"");
	assert_false(jsonval_enum(d, "", "num", modes, &m, err, sizeof(err)));
	assert_string_equal(err, "\"num\": expected one of writes, all, got 1");
	assert_true(jsonval_bool(d, "", "yes", &b, err, sizeof(err)));
	assert_true(b);
	assert_false(jsonval_bool(d, "", "no", &b, err, sizeof(err)));
	assert_string_equal(err, "\"no\": expected true or false, got 0");
	cJSON_Delete(d);
}

static void test_keys(void **state)
{
	static const char *const known[] = { "host", "port", NULL };
	char err[256];
	cJSON *d;

	(void)state;
	d = doc("{\"host\": \"a\", \"port\": 1}");
	assert_true(jsonval_known_keys(d, "listen", known, err, sizeof(err)));
	cJSON_Delete(d);

	d = doc("{\"host\": \"a\", \"prot\": 1}");
	assert_false(jsonval_known_keys(d, "listen", known, err, sizeof(err)));
	assert_string_equal(err, "\"listen.prot\": unknown key (known: host, port)");
	cJSON_Delete(d);

	/* The second copy would be ignored by every lookup: refused. */
	d = doc("{\"port\": 1, \"host\": \"a\", \"port\": 300}");
	assert_false(jsonval_known_keys(d, "", known, err, sizeof(err)));
	assert_string_equal(err, "\"port\": given twice");
	cJSON_Delete(d);

	d = doc("[1]");
	assert_false(jsonval_known_keys(d, "listen", known, err, sizeof(err)));
	assert_string_equal(err, "\"listen\": expected an object, got an array");
	assert_false(jsonval_object(d, "(top level)", err, sizeof(err)));
	assert_string_equal(err, "\"(top level)\": expected an object, got an array");
	cJSON_Delete(d);
}

static void test_strings(void **state)
{
	cJSON *d = doc("{\"s\": \"x\", \"e\": \"\", \"n\": null, \"l\": [\"a\", \"\"], \"bad\": [\"a\", 1], "
		       "\"long\": [\"a\", \"b\", \"c\"]}");
	char err[256], *s = strdup("default"), *list[4] = { strdup("old") };
	int n = 1;

	(void)state;
	assert_true(jsonval_string(d, "", "absent", 0, &s, err, sizeof(err)));
	assert_string_equal(s, "default");
	assert_true(jsonval_string(d, "", "s", 0, &s, err, sizeof(err)));
	assert_string_equal(s, "x");
	assert_false(jsonval_string(d, "tls", "e", JSONVAL_NULLABLE, &s, err, sizeof(err)));
	assert_string_equal(err, "\"tls.e\": expected a non-empty string or null, got \"\"");
	assert_false(jsonval_string(d, "", "n", 0, &s, err, sizeof(err)));
	assert_string_equal(err, "\"n\": expected a non-empty string, got null");
	assert_string_equal(s, "x");
	assert_true(jsonval_string(d, "", "n", JSONVAL_NULLABLE, &s, err, sizeof(err)));
	assert_null(s);

	assert_true(jsonval_strings(d, "", "l", list, &n, 4, err, sizeof(err)));
	assert_int_equal(n, 2);
	assert_string_equal(list[0], "a");
	assert_string_equal(list[1], "");
	assert_false(jsonval_strings(d, "", "bad", list, &n, 4, err, sizeof(err)));
	assert_string_equal(err, "\"bad\": expected an array of strings, got 1 in it");
	assert_int_equal(n, 2); /* left as it was */
	assert_false(jsonval_strings(d, "", "long", list, &n, 2, err, sizeof(err)));
	assert_string_equal(err, "\"long\": expected an array of at most 2 strings, got a longer one");
	assert_false(jsonval_strings(d, "", "s", list, &n, 2, err, sizeof(err)));
	assert_string_equal(err, "\"s\": expected an array of at most 2 strings, got \"x\"");
	for (int i = 0; i < n; i++)
		free(list[i]);
	cJSON_Delete(d);
}

/* Keys and values from outside cannot break a message into lines, and a tiny buffer stays terminated. */
static void test_messages_one_line(void **state)
{
	static const char *const known[] = { "a", NULL };
	cJSON *d = doc("{\"a\\nb\": 1, \"v\": \"x\\r\\ny\"}");
	char err[256], tiny[4];
	int64_t v;

	(void)state;
	assert_false(jsonval_known_keys(d, "", known, err, sizeof(err)));
	assert_string_equal(err, "\"a?b\": unknown key (known: a)");
	assert_false(jsonval_int(d, "", "v", 0, 1, &v, err, sizeof(err)));
	assert_string_equal(err, "\"v\": expected an integer from 0 to 1, got \"x??y\"");
	assert_false(jsonval_int(d, "", "v", 0, 1, &v, tiny, sizeof(tiny)));
	assert_string_equal(tiny, "\"v\"");
	assert_false(jsonval_fail(err, sizeof(err), NULL, "%s", ""));
	assert_string_equal(err, "?");
	cJSON_Delete(d);
}

/* Comments go, strings stay exactly as written: escaped backslashes and quotes, "//" and spaces inside. */
static void test_strip_comments(void **state)
{
	char text[] = "{ // a line comment\n"
		      "  \"host\": \"C:\\\\dir\\\\\", /* a block\n comment */ \"q\": \"SELECT a, b // not a "
		      "comment\",\n"
		      "  \"say\": \"\\\"/* quoted */\\\"\" }";
	char open_comment[] = "{\"a\": 1} /* never closed";
	cJSON *doc;

	(void)state;
	jsonval_strip_comments(text);
	assert_null(strstr(text, "a line comment"));
	assert_null(strstr(text, "a block"));
	assert_non_null(strchr(text, '\n')); /* line breaks stay: error positions do not move */
	doc = cJSON_Parse(text);
	assert_non_null(doc);
	assert_string_equal(cJSON_GetObjectItem(doc, "host")->valuestring, "C:\\dir\\");
	assert_string_equal(cJSON_GetObjectItem(doc, "q")->valuestring, "SELECT a, b // not a comment");
	assert_string_equal(cJSON_GetObjectItem(doc, "say")->valuestring, "\"/* quoted */\"");
	cJSON_Delete(doc);

	jsonval_strip_comments(open_comment);
	doc = cJSON_ParseWithOpts(open_comment, NULL, 1);
	assert_non_null(doc);
	cJSON_Delete(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_int),
		cmocka_unit_test(test_enum_and_bool),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_messages_one_line),
		cmocka_unit_test(test_strip_comments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
