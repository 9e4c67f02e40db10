/*
 * A growing string (see strbuf.h).
 */
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void strbuf_reserve(struct strbuf *b, size_t n)
{
	size_t cap;

	if (b->len + n + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 128;
	while (cap < b->len + n + 1)
		cap *= 2;
	b->s = xrealloc(b->s, cap);
	b->cap = cap;
}

void strbuf_putn(struct strbuf *b, const char *s, size_t n)
{
	strbuf_reserve(b, n);
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void strbuf_put(struct strbuf *b, const char *s)
{
	strbuf_putn(b, s, strlen(s));
}

void strbuf_word(struct strbuf *b, const char *word)
{
	if (b->len)
		strbuf_put(b, " ");
	strbuf_put(b, word);
}

char *strbuf_take(struct strbuf *b)
{
	char *s = b->s ? b->s : xstrdup("");

	memset(b, 0, sizeof(*b));
	return s;
}

void strbuf_reset(struct strbuf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}
