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
