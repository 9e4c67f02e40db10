/*
 * How the coordinator talks to people and pipelines (docs/architecture.md, the CLI): text
 * with error / detail / hint for every refusal, a live progress line on a
 * terminal; or, with --format json, one JSON document (plan) or one JSON
 * object per line per event (apply). Exit codes live here too.
 */
#ifndef PGVALVE_COORDINATOR_REPORT_H
#define PGVALVE_COORDINATOR_REPORT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "options.h"

enum exit_code {
	EXIT_DONE = 0,
	EXIT_REFUSED = 1, /* refused by a check: nothing changed */
	EXIT_USAGE = 2,   /* usage or config error */
	EXIT_ROLLED_BACK = 3,
	EXIT_ATTENTION = 4, /* needs attention: the journal says what */
};

void report_init(enum output_format format);

/* An error people can act on: what, why (detail), what to do (hint). Either may be NULL. */
void report_error(const char *what, const char *detail, const char *hint);
void report_warning(const char *what, const char *detail);

/* A progress message ("cutover: holding orders, customers on 2 proxies"): a text line or a JSON event. */
void report_event(const char *event, cJSON *fields, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* report_event with a text of any length ('text' printed as it is, several lines allowed). */
void report_event_text(const char *event, cJSON *fields, const char *text);

/* Prints 'doc' on stdout as one indented JSON document (--format json of a command's result) and deletes it. */
void report_document(cJSON *doc);

/* A live line rewritten in place on a terminal (validation progress); nothing in JSON mode. */
void report_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void report_progress_done(void);

#endif
