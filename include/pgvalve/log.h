/*
 * Logging: one line per event, as text or JSON, to stderr. Safe to call from
 * any thread; the level and format may change at runtime (SIGHUP reload).
 */
#ifndef PGVALVE_LOG_H
#define PGVALVE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#define LOG_LINE_MAX 4096 /* longest line written, newline included; fields are cut to fit */

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Who an event is about; any field may be 0/NULL. */
struct log_session {
	uint64_t conn_id;
	const char *user;
	const char *database;
	const char *client;
};

void log_configure(enum log_level level, enum log_format format);
bool log_enabled(enum log_level level);
/* Parses "debug|info|warn|error"; returns false on anything else. */
bool log_level_parse(const char *s, enum log_level *out);
bool log_format_parse(const char *s, enum log_format *out);

void log_msg(enum log_level level, const struct log_session *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(...)                                         \
	do {                                                   \
		if (log_enabled(LOG_DEBUG))                    \
			log_msg(LOG_DEBUG, NULL, __VA_ARGS__); \
	} while (0)
#define log_info(...) log_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, NULL, __VA_ARGS__)

#endif
