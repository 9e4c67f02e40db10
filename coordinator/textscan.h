/*
 * Reading the small languages of the command line (cutover windows,
 * rollback rules): a cursor over the text that remembers what it is reading,
 * so every error quotes it ('window "Mon-Fry 02:00-04:00": ...'), and the
 * bounded appender their printers share.
 */
#ifndef PGVALVE_COORDINATOR_TEXTSCAN_H
#define PGVALVE_COORDINATOR_TEXTSCAN_H

#include <stdbool.h>
#include <stddef.h>

struct textscan {
	const char *kind; /* "window", "rollback rule": how messages name the text */
	const char *text; /* the whole text, quoted in every message */
	const char *p;    /* the next character to read */
	char *err;
	size_t errlen;
};

/* Writes '<kind> "<text>": <message>' to err; returns false, for 'return textscan_fail(...)'. */
bool textscan_fail(struct textscan *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void textscan_skip_blanks(struct textscan *c);

/*
 * Copies the run of characters at the cursor for which keep(ch, arg) holds
 * into tok[cap] and moves past the whole run. False when the run did not
 * fit: tok then holds its start, for the message.
 */
bool textscan_take(struct textscan *c, bool (*keep)(int ch, const void *arg), const void *arg, char *tok,
		   size_t cap);

/* Appends to out[cap] at *len, keeping it terminated and *len at most cap - 1. */
void textscan_append(char *out, size_t cap, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
