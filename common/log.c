/*
 * One line per event on stderr. Text: "2026-11-22T10:00:00.123Z LEVEL conn=7
 * user=app db=shop client=10.0.0.1:5123 message". JSON: the same as keys.
 * Each line is written with a single write(2), so lines from different
 * threads never interleave.
 */
#include "pgvalve/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int cur_level = LOG_INFO;
static atomic_int cur_format = LOG_FORMAT_TEXT;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_configure(enum log_level level, enum log_format format)
{
	atomic_store(&cur_level, level);
	atomic_store(&cur_format, format);
}

bool log_enabled(enum log_level level)
{
	return (int)level >= atomic_load_explicit(&cur_level, memory_order_relaxed);
}

bool log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

bool log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return false;
	return true;
}

/*
 * Appends at most 'budget' bytes of s to buf as the inside of a JSON string
 * (also used for text lines, so a client-chosen user name cannot forge a line).
 * Bytes >= 0x80 that are not valid UTF-8 could make the line invalid JSON, so
 * every byte >= 0x80 is written as \u00XX (a byte-exact rendering, readable).
 */
static size_t escape(char *buf, size_t cap, size_t len, const char *s, size_t budget, bool json)
{
	size_t stop = len + budget < cap ? len + budget : cap;

	for (; *s && len + 7 < stop; s++) {
		unsigned char ch = (unsigned char)*s;

		/* Text lines need only control bytes escaped (no forged lines); JSON also quotes. */
		if (json && (ch == '"' || ch == '\\')) {
			buf[len++] = '\\';
			buf[len++] = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", ch);
		} else {
			buf[len++] = (char)ch;
		}
	}
	return len;
}

static size_t append(char *buf, size_t cap, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static size_t append(char *buf, size_t cap, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (len >= cap)
		return len;
	va_start(ap, fmt);
	n = vsnprintf(buf + len, cap - len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return len;
	return len + (size_t)n < cap ? len + (size_t)n : cap - 1;
}

void log_msg(enum log_level level, const struct log_session *who, const char *fmt, ...)
{
	/* Budgets per field keep every line whole: the closing '"}' always fits. */
	char msg[1024], line[LOG_LINE_MAX], ts[40];
	struct timeval tv;
	struct tm tm;
	size_t len = 0;
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	static const char *const keys[] = { "user", "db", "client" };
	const char *vals[] = { who ? who->user : NULL, who ? who->database : NULL, who ? who->client : NULL };
	bool json = atomic_load_explicit(&cur_format, memory_order_relaxed) == LOG_FORMAT_JSON;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

	/* One walk over the fields; the format only decides the punctuation around them. */
	if (json)
		len = append(line, sizeof(line), len, "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\"", ts,
			     (int)(tv.tv_usec / 1000), level_names[level]);
	else
		len = append(line, sizeof(line), len, "%s.%03dZ %-5s", ts, (int)(tv.tv_usec / 1000),
			     level_names[level]);
	if (who && who->conn_id)
		len = append(line, sizeof(line), len, json ? ",\"conn\":%llu" : " conn=%llu",
			     (unsigned long long)who->conn_id);
	for (int i = 0; i < 3; i++) {
		if (!vals[i])
			continue;
		len = append(line, sizeof(line), len, json ? ",\"%s\":\"" : " %s=", keys[i]);
		len = escape(line, sizeof(line), len, vals[i], 400, json);
		if (json)
			len = append(line, sizeof(line), len, "\"");
	}
	len = append(line, sizeof(line), len, json ? ",\"msg\":\"" : " ");
	len = escape(line, sizeof(line), len, msg, 2400, json);
	len = append(line, sizeof(line), len, json ? "\"}\n" : "\n");
	if (len > 0 && line[len - 1] != '\n')
		line[len - 1] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}
