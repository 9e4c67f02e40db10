/*
 * Quoting identifiers and literals for the SQL the coordinator generates
 * (see quote.h). Reading SQL is the lexer's business (pgvalve/sqllex.h).
 */
#include "quote.h"

#include <string.h>

/* Appends one byte at out[n] if it fits below cap - 1; returns n + 1. */
static size_t put(char *out, size_t cap, size_t n, char c)
{
	if (n + 1 < cap)
		out[n] = c;
	return n + 1;
}

static size_t finish(char *out, size_t cap, size_t n)
{
	if (cap)
		out[n < cap ? n : cap - 1] = '\0';
	return n;
}

/* Appends s between two 'q' characters, each 'q' inside doubled. */
static size_t put_quoted(char *out, size_t cap, size_t n, const char *s, char q)
{
	n = put(out, cap, n, q);
	for (; *s; s++) {
		if (*s == q)
			n = put(out, cap, n, q);
		n = put(out, cap, n, *s);
	}
	return put(out, cap, n, q);
}

size_t quote_ident(char *out, size_t cap, const char *name)
{
	return finish(out, cap, put_quoted(out, cap, 0, name, '"'));
}

size_t quote_qname(char *out, size_t cap, const char *schema, const char *name)
{
	size_t n = 0;

	if (schema && schema[0]) {
		n = put_quoted(out, cap, n, schema, '"');
		n = put(out, cap, n, '.');
	}
	return finish(out, cap, put_quoted(out, cap, n, name, '"'));
}

size_t quote_literal(char *out, size_t cap, const char *s)
{
	return finish(out, cap, put_quoted(out, cap, 0, s, '\''));
}

void quote_append_ident(struct strbuf *b, const char *name)
{
	size_t n = quote_ident(NULL, 0, name);

	strbuf_reserve(b, n);
	b->len += quote_ident(b->s + b->len, n + 1, name);
}

void quote_append_qname(struct strbuf *b, const char *schema, const char *name)
{
	size_t n = quote_qname(NULL, 0, schema, name);

	strbuf_reserve(b, n);
	b->len += quote_qname(b->s + b->len, n + 1, schema, name);
}
