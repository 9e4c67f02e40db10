/*
 * The text cursor and appender (see textscan.h).
 */
#include "textscan.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>

bool textscan_fail(struct textscan *c, const char *fmt, ...)
{
	va_list ap;
	int used;

	if (c->errlen == 0)
		return false;
	used = snprintf(c->err, c->errlen, "%s \"%s\": ", c->kind, c->text);
	if (used >= 0 && (size_t)used < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + used, c->errlen - (size_t)used, fmt, ap);
		va_end(ap);
	}
	return false;
}

void textscan_skip_blanks(struct textscan *c)
{
	while (isspace((unsigned char)*c->p))
		c->p++;
}

bool textscan_take(struct textscan *c, bool (*keep)(int ch, const void *arg), const void *arg, char *tok,
		   size_t cap)
{
	size_t len = 0;
	bool fits = true;

	while (*c->p && keep((unsigned char)*c->p, arg)) {
		if (len + 1 < cap)
			tok[len++] = *c->p;
		else
			fits = false;
		c->p++;
	}
	tok[len] = '\0';
	return fits;
}

void textscan_append(char *out, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len + 1 >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}
