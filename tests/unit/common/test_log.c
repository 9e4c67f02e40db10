/*
 * Unit tests for common/log.c: level and format names, level filtering, and
 * the lines themselves, read back from stderr redirected (dup2) to a pipe or
 * a file. JSON lines are checked with cJSON: one object per line, whatever
 * quotes, backslashes, control characters or lengths the message has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <ctype.h>
#include <pthread.h>
#include <unistd.h>

#include "pgvalve/log.h"

#define LINE_MAX_BYTES LOG_LINE_MAX /* nothing longer is ever written */

/* --------------------------------------------------------- stderr capture */

struct capture {
	int saved;
	int rd;
};

static void capture_begin(struct capture *c)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);
	close(p[1]);
	c->rd = p[0];
}

/* The last capture, kept here so that a failing assertion does not leak it. */
static char *captured;

/*
 * Restores stderr and returns everything written meanwhile, NUL-terminated.
 * The buffer stays valid until the next capture_end().
 */
static char *capture_end(struct capture *c, size_t *len_out)
{
	size_t len = 0, cap = 65536;
	ssize_t n;

	free(captured);
	captured = malloc(cap + 1);
	assert_non_null(captured);
	assert_true(dup2(c->saved, STDERR_FILENO) >= 0); /* drops the pipe's last writer */
	close(c->saved);
	while ((n = read(c->rd, captured + len, cap - len)) > 0)
		len += (size_t)n;
	close(c->rd);
	captured[len] = '\0';
	if (len_out)
		*len_out = len;
	return captured;
}

static int free_captured(void **state)
{
	(void)state;
	free(captured);
	captured = NULL;
	return 0;
}

/* Checks "YYYY-MM-DDTHH:MM:SS.mmmZ" at s. */
static void assert_timestamp(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		bool ok = shape[i] == 'd' ? isdigit((unsigned char)s[i]) : s[i] == shape[i];

		if (!ok)
			fail_msg("bad timestamp at %zu in \"%.30s\"", i, s);
	}
}

/*
 * Checks that 'out' is exactly one line holding one JSON object, with no raw
 * control character in it, and returns the object (the caller deletes it).
 */
static cJSON *one_json_line(const char *out, size_t len)
{
	const char *end = NULL;
	cJSON *obj;

	if (len == 0 || out[len - 1] != '\n')
		fail_msg("line does not end in a newline: \"%.80s\"", out);
	assert_true(len <= LINE_MAX_BYTES);
	for (size_t i = 0; i + 1 < len; i++) {
		if ((unsigned char)out[i] < 0x20)
			fail_msg("raw control byte 0x%02x at %zu of \"%.80s\"", (unsigned char)out[i], i,
				 out);
	}
	obj = cJSON_ParseWithOpts(out, &end, 1);
	if (!obj || !cJSON_IsObject(obj))
		fail_msg("not one JSON object (%zu bytes, ends \"%s\")", len,
			 len > 40 ? out + len - 40 : out);
	return obj;
}

static const char *json_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ------------------------------------------------------------------ names */

static void test_level_parse(void **state)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	static const enum log_level levels[] = { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
	static const char *const bad[] = { "DEBUG", "Info", "warning", "err", "fatal", "", "info ", " warn" };
	enum log_level l;

	(void)state;
	for (int i = 0; i < 4; i++) {
		assert_true(log_level_parse(names[i], &l));
		assert_int_equal(l, levels[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l = LOG_ERROR;
		if (log_level_parse(bad[i], &l))
			fail_msg("accepted level \"%s\"", bad[i]);
		assert_int_equal(l, LOG_ERROR);
	}
}

static void test_format_parse(void **state)
{
	static const char *const bad[] = { "JSON", "Text", "plain", "", "json\n" };
	enum log_format f;

	(void)state;
	assert_true(log_format_parse("text", &f));
	assert_int_equal(f, LOG_FORMAT_TEXT);
	assert_true(log_format_parse("json", &f));
	assert_int_equal(f, LOG_FORMAT_JSON);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = LOG_FORMAT_JSON;
		if (log_format_parse(bad[i], &f))
			fail_msg("accepted format \"%s\"", bad[i]);
		assert_int_equal(f, LOG_FORMAT_JSON);
	}
}

/* ---------------------------------------------------------------- filtering */

static void test_enabled_follows_configure(void **state)
{
	(void)state;
	log_configure(LOG_WARN, LOG_FORMAT_TEXT);
	assert_false(log_enabled(LOG_DEBUG));
	assert_false(log_enabled(LOG_INFO));
	assert_true(log_enabled(LOG_WARN));
	assert_true(log_enabled(LOG_ERROR));
	log_configure(LOG_DEBUG, LOG_FORMAT_TEXT);
	assert_true(log_enabled(LOG_DEBUG));
	log_configure(LOG_ERROR, LOG_FORMAT_TEXT);
	assert_false(log_enabled(LOG_WARN));
	assert_true(log_enabled(LOG_ERROR));
}

static void test_below_level_writes_nothing(void **state)
{
	struct capture c;
	size_t len;
	char *out;

	(void)state;
	log_configure(LOG_WARN, LOG_FORMAT_TEXT);
	capture_begin(&c);
	log_debug("debug %d", 1);
	log_info("info %d", 2);
	out = capture_end(&c, &len);
	assert_int_equal(len, 0);

	capture_begin(&c);
	log_warn("warned");
	log_error("failed");
	out = capture_end(&c, &len);
	assert_non_null(strstr(out, "warned\n"));
	assert_non_null(strstr(out, "failed\n"));
}

/* --------------------------------------------------------------------- text */

static void test_text_line(void **state)
{
	const struct log_session who = { 7, "app", "shop", "10.0.0.1:5123" };
	struct capture c;
	size_t len;
	char *out;

	(void)state;
	log_configure(LOG_INFO, LOG_FORMAT_TEXT);
	capture_begin(&c);
	log_msg(LOG_WARN, &who, "hold on %s for %d ms", "public.orders", 250);
	out = capture_end(&c, &len);
	assert_timestamp(out);
	assert_string_equal(out + 24,
			    " warn  conn=7 user=app db=shop client=10.0.0.1:5123 "
			    "hold on public.orders for 250 ms\n");

	/* Without a session, and with a partial one. */
	capture_begin(&c);
	log_info("listening on %s", "0.0.0.0:6432");
	log_msg(LOG_ERROR, &(struct log_session){ .client = "[::1]:40000" }, "bad packet");
	out = capture_end(&c, &len);
	assert_timestamp(out);
	assert_non_null(strstr(out, "Z info  listening on 0.0.0.0:6432\n"));
	assert_non_null(strstr(out, "Z error client=[::1]:40000 bad packet\n"));
}

static void test_text_long_message_is_one_bounded_line(void **state)
{
	char msg[5000];
	struct capture c;
	size_t len;
	char *out;

	(void)state;
	memset(msg, 'a', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	log_configure(LOG_INFO, LOG_FORMAT_TEXT);
	capture_begin(&c);
	log_info("%s", msg);
	out = capture_end(&c, &len);
	assert_true(len <= LINE_MAX_BYTES);
	assert_int_equal(out[len - 1], '\n');
	assert_ptr_equal(strchr(out, '\n'), out + len - 1);
}

/* --------------------------------------------------------------------- JSON */

static void test_json_line_escapes(void **state)
{
	static const char msg[] = "relation \"public.orders\" held\nby C:\\admin\tnow \x01 end";
	const struct log_session who = { 12345678901234ULL, "o\"brien", "db\\x", "10.0.0.1:5123" };
	struct capture c;
	size_t len;
	char *out;
	cJSON *obj;
	const cJSON *conn;

	(void)state;
	log_configure(LOG_INFO, LOG_FORMAT_JSON);
	capture_begin(&c);
	log_msg(LOG_INFO, &who, "%s", msg);
	out = capture_end(&c, &len);
	obj = one_json_line(out, len);
	assert_string_equal(json_str(obj, "msg"), msg);
	assert_string_equal(json_str(obj, "level"), "info");
	assert_string_equal(json_str(obj, "user"), "o\"brien");
	assert_string_equal(json_str(obj, "db"), "db\\x");
	assert_string_equal(json_str(obj, "client"), "10.0.0.1:5123");
	assert_non_null(json_str(obj, "ts"));
	assert_timestamp(json_str(obj, "ts"));
	conn = cJSON_GetObjectItemCaseSensitive(obj, "conn");
	assert_true(cJSON_IsNumber(conn));
	/* Above 2^53 a JSON number loses digits; check what the line says instead. */
	assert_non_null(strstr(out, "\"conn\":12345678901234,"));
	cJSON_Delete(obj);
}

static void test_json_every_level_without_session(void **state)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };

	(void)state;
	log_configure(LOG_DEBUG, LOG_FORMAT_JSON);
	for (int i = 0; i < 4; i++) {
		struct capture c;
		size_t len;
		char *out, want[32];
		cJSON *obj;

		capture_begin(&c);
		log_msg((enum log_level)i, NULL, "event %d", i);
		out = capture_end(&c, &len);
		obj = one_json_line(out, len);
		assert_string_equal(json_str(obj, "level"), names[i]);
		snprintf(want, sizeof(want), "event %d", i);
		assert_string_equal(json_str(obj, "msg"), want);
		assert_int_equal(cJSON_GetArraySize(obj), 3); /* ts, level, msg: no empty session keys */
		cJSON_Delete(obj);
	}
}

/* A long message is cut, but the line stays one valid object with a prefix of it. */
static void test_json_long_message_stays_valid(void **state)
{
	char msg[5000];
	struct capture c;
	size_t len;
	char *out;
	cJSON *obj;
	const char *got;

	(void)state;
	memset(msg, 'a', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	log_configure(LOG_INFO, LOG_FORMAT_JSON);
	capture_begin(&c);
	log_info("%s", msg);
	out = capture_end(&c, &len);
	obj = one_json_line(out, len);
	got = json_str(obj, "msg");
	assert_non_null(got);
	assert_true(strlen(got) >= 900);
	assert_true(strncmp(got, msg, strlen(got)) == 0);
	cJSON_Delete(obj);
}

/*
 * Messages that grow when escaped (a multi-line SQL text: newlines and tabs
 * become \u000a, \u0009) must still give valid JSON. The client address
 * varies in length so that the escaped text meets the end of the line buffer
 * at every offset an escape can straddle.
 */
static void test_json_long_escaped_message_stays_valid(void **state)
{
	static const char fill[] = { '\n', '\t', '"', '\\', '\x1f' };
	static const char *const clients[] = { "1.2.3.4:5",    "1.2.3.4:56",    "1.2.3.4:567",
					       "1.2.3.4:5678", "1.2.3.4:56789", "10.2.3.4:56789" };

	(void)state;
	log_configure(LOG_DEBUG, LOG_FORMAT_JSON);
	for (size_t f = 0; f < sizeof(fill); f++) {
		for (size_t k = 0; k < sizeof(clients) / sizeof(clients[0]); k++) {
			const struct log_session who = { .client = clients[k] };
			char msg[1000];
			struct capture c;
			size_t len;
			char *out;
			cJSON *obj;

			memset(msg, fill[f], sizeof(msg) - 1);
			msg[sizeof(msg) - 1] = '\0';
			capture_begin(&c);
			log_msg(LOG_ERROR, &who, "%s", msg);
			out = capture_end(&c, &len);
			obj = one_json_line(out, len);
			assert_string_equal(json_str(obj, "client"), clients[k]);
			cJSON_Delete(obj);
		}
	}
}

/* User, database and client come from the client's startup packet: up to ~10 kB. */
static void test_json_long_session_fields_stay_valid(void **state)
{
	char user[3000];
	struct log_session who = { 1, user, "shop", "10.0.0.1:5123" };
	struct capture c;
	size_t len;
	char *out;
	cJSON *obj;

	(void)state;
	memset(user, 'u', sizeof(user) - 1);
	user[sizeof(user) - 1] = '\0';
	log_configure(LOG_INFO, LOG_FORMAT_JSON);
	capture_begin(&c);
	log_msg(LOG_INFO, &who, "login");
	out = capture_end(&c, &len);
	obj = one_json_line(out, len);
	cJSON_Delete(obj);
}

/* -------------------------------------------------------------- concurrency */

#define THREADS 4
#define LINES_PER_THREAD 200

static void *log_lines(void *arg)
{
	char pad[901]; /* the whole message stays under log.c's 1024-byte cut */
	int id = (int)(intptr_t)arg;

	memset(pad, 'a' + id, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < LINES_PER_THREAD; i++)
		log_msg(LOG_INFO, &(struct log_session){ .conn_id = (uint64_t)id + 1 },
			"thread %d line %d \"%s\"", id, i, pad);
	return NULL;
}

/* Each line is one write(2): lines from different threads never interleave. */
static void test_json_lines_from_threads_do_not_interleave(void **state)
{
	FILE *tmp = tmpfile();
	pthread_t th[THREADS];
	int saved, count = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	(void)state;
	assert_non_null(tmp);
	log_configure(LOG_INFO, LOG_FORMAT_JSON);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, log_lines, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	dup2(saved, STDERR_FILENO);
	close(saved);

	rewind(tmp);
	while ((n = getline(&line, &cap, tmp)) > 0) {
		cJSON *obj = one_json_line(line, (size_t)n);
		const char *msg = json_str(obj, "msg");
		int id, i;

		assert_non_null(msg);
		assert_int_equal(sscanf(msg, "thread %d line %d", &id, &i), 2);
		assert_true(id >= 0 && id < THREADS);
		/* the padding is all of this thread's letter */
		assert_int_equal(strspn(strchr(msg, '"') + 1, (char[]){ (char)('a' + id), 0 }), 900);
		cJSON_Delete(obj);
		count++;
	}
	assert_int_equal(count, THREADS * LINES_PER_THREAD);
	free(line);
	fclose(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_format_parse),
		cmocka_unit_test(test_enabled_follows_configure),
		cmocka_unit_test(test_below_level_writes_nothing),
		cmocka_unit_test(test_text_line),
		cmocka_unit_test(test_text_long_message_is_one_bounded_line),
		cmocka_unit_test(test_json_line_escapes),
		cmocka_unit_test(test_json_every_level_without_session),
		cmocka_unit_test(test_json_long_message_stays_valid),
		cmocka_unit_test(test_json_long_escaped_message_stays_valid),
		cmocka_unit_test(test_json_long_session_fields_stay_valid),
		cmocka_unit_test(test_json_lines_from_threads_do_not_interleave),
	};

	setvbuf(stdout, NULL, _IONBF, 0); /* a sanitizer abort must not swallow the results */
	return cmocka_run_group_tests_name("common/log", tests, NULL, free_captured);
}
