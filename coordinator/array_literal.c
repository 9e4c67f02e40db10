/*
 * PostgreSQL array literals (see array_literal.h).
 */
#include "array_literal.h"

#include <stdio.h>

/* "{" before the first element, "," before the others. */
static void separate(struct strbuf *b)
{
	strbuf_put(b, b->len ? "," : "{");
}

void array_literal_add(struct strbuf *b, const char *element)
{
	separate(b);
	strbuf_put(b, element);
}

void array_literal_add_int(struct strbuf *b, long long v)
{
	char text[24];

	snprintf(text, sizeof(text), "%lld", v);
	array_literal_add(b, text);
}

void array_literal_add_text(struct strbuf *b, const char *s)
{
	separate(b);
	strbuf_put(b, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			strbuf_put(b, "\\");
		strbuf_putn(b, s, 1);
	}
	strbuf_put(b, "\"");
}

char *array_literal_take(struct strbuf *b)
{
	if (!b->len)
		strbuf_put(b, "{");
	strbuf_put(b, "}");
	return strbuf_take(b);
}
