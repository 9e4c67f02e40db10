/*
 * Output (see report.h). Text goes to stdout, errors to stderr; JSON events
 * are one object per line on stdout with "event" and "time".
 */
#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum output_format format;
static bool progress_shown;

void report_init(enum output_format f)
{
	format = f;
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static void json_line(cJSON *o)
{
	char *text = cJSON_PrintUnformatted(o);

	printf("%s\n", text);
	free(text);
	cJSON_Delete(o);
}

static void stamp(cJSON *o, const char *event)
{
	struct timespec ts;
	char buf[64];
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ".%03ldZ", ts.tv_nsec / 1000000);
	cJSON_AddStringToObject(o, "event", event);
	cJSON_AddStringToObject(o, "time", buf);
}

void report_progress_done(void)
{
	if (progress_shown) {
		fputs("\n", stdout);
		progress_shown = false;
	}
}

/*
 * An error or a warning: 'level' ("error", "warning") is the JSON event and
 * the key of 'what', and the text's prefix. 'detail' and 'hint' may be NULL.
 */
static void problem(const char *level, const char *what, const char *detail, const char *hint)
{
	report_progress_done();
	if (format == FORMAT_JSON) {
		cJSON *o = cJSON_CreateObject();

		stamp(o, level);
		cJSON_AddStringToObject(o, level, what);
		if (detail)
			cJSON_AddStringToObject(o, "detail", detail);
		if (hint)
			cJSON_AddStringToObject(o, "hint", hint);
		json_line(o);
		return;
	}
	fprintf(stderr, "pgvalve: %s: %s\n", level, what);
	if (detail)
		fprintf(stderr, "  detail: %s\n", detail);
	if (hint)
		fprintf(stderr, "  hint: %s\n", hint);
}

void report_error(const char *what, const char *detail, const char *hint)
{
	problem("error", what, detail, hint);
}

void report_warning(const char *what, const char *detail)
{
	problem("warning", what, detail, NULL);
}

void report_event(const char *event, cJSON *fields, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report_event_text(event, fields, msg);
}

void report_event_text(const char *event, cJSON *fields, const char *text)
{
	report_progress_done();
	if (format == FORMAT_JSON) {
		cJSON *o = fields ? fields : cJSON_CreateObject();

		stamp(o, event);
		cJSON_AddStringToObject(o, "message", text);
		json_line(o);
		return;
	}
	cJSON_Delete(fields);
	printf("%s\n", text);
}

void report_document(cJSON *doc)
{
	char *text = cJSON_Print(doc);

	printf("%s\n", text);
	free(text);
	cJSON_Delete(doc);
}

void report_progress(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (format == FORMAT_JSON)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (isatty(STDOUT_FILENO)) {
		printf("\r\033[K%s", msg);
		fflush(stdout);
		progress_shown = true;
	}
}
