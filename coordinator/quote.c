/*
 * Quoting for generated SQL and a token-skipping lexer for source SQL (see
 * quote.h). The lexer mirrors the parts of PostgreSQL's scan.l that decide
 * where a token ends; it does not validate what is inside one.
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

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* scan.l's ident_start and ident_cont (bytes >= 0x80 are letters to it). */
static bool ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (unsigned char)c >= 0x80;
}

static bool ident_cont(char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Past the closing quote of a '...' or "..." body starting at i (doubled quotes stay inside). */
static size_t scan_quoted(const char *s, size_t len, size_t i, char q, bool backslash, enum quote_token *kind,
			  enum quote_token done)
{
	while (i < len) {
		if (backslash && s[i] == '\\') {
			i += 2;
		} else if (s[i] == q) {
			if (i + 1 < len && s[i + 1] == q) {
				i += 2;
			} else {
				*kind = done;
				return i + 1;
			}
		} else {
			i++;
		}
	}
	*kind = QUOTE_TOK_UNTERMINATED;
	return len;
}

/* A dollar quote at s[pos] == '$': its delimiter's length, or 0 if "$" starts none. */
static size_t dollar_delimiter(const char *s, size_t len, size_t pos)
{
	size_t i = pos + 1;

	if (i < len && s[i] == '$')
		return 2;
	if (i >= len || !ident_start(s[i]))
		return 0;
	while (i < len && ident_cont(s[i]) && s[i] != '$')
		i++;
	return i < len && s[i] == '$' ? i + 1 - pos : 0;
}

static size_t scan_comment(const char *s, size_t len, size_t pos, enum quote_token *kind)
{
	size_t i = pos + 2;
	int depth = 1;

	if (s[pos] == '-') {
		while (i < len && s[i] != '\n' && s[i] != '\r')
			i++;
		*kind = QUOTE_TOK_COMMENT;
		return i;
	}
	while (i < len) {
		if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
			depth++;
			i += 2;
		} else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/') {
			i += 2;
			if (--depth == 0) {
				*kind = QUOTE_TOK_COMMENT;
				return i;
			}
		} else {
			i++;
		}
	}
	*kind = QUOTE_TOK_UNTERMINATED;
	return len;
}

size_t quote_scan(const char *s, size_t len, size_t pos, enum quote_token *kind)
{
	size_t i = pos;
	char c;

	if (pos >= len) {
		*kind = QUOTE_TOK_END;
		return len;
	}
	c = s[pos];
	if (is_space(c)) {
		while (i < len && is_space(s[i]))
			i++;
		*kind = QUOTE_TOK_SPACE;
		return i;
	}
	if ((c == '-' && pos + 1 < len && s[pos + 1] == '-') ||
	    (c == '/' && pos + 1 < len && s[pos + 1] == '*'))
		return scan_comment(s, len, pos, kind);
	if (c == '\'')
		return scan_quoted(s, len, pos + 1, '\'', false, kind, QUOTE_TOK_STRING);
	if (c == '"')
		return scan_quoted(s, len, pos + 1, '"', false, kind, QUOTE_TOK_IDENT);
	if ((c == 'e' || c == 'E') && pos + 1 < len && s[pos + 1] == '\'')
		return scan_quoted(s, len, pos + 2, '\'', true, kind, QUOTE_TOK_STRING);
	if ((c == 'u' || c == 'U') && pos + 2 < len && s[pos + 1] == '&' &&
	    (s[pos + 2] == '\'' || s[pos + 2] == '"'))
		/* U&'...' and U&"...": \ escapes are Unicode codes, but '' and "" still double. */
		return scan_quoted(s, len, pos + 3, s[pos + 2], false, kind,
				   s[pos + 2] == '"' ? QUOTE_TOK_IDENT : QUOTE_TOK_STRING);
	if (c == '$') {
		size_t d = dollar_delimiter(s, len, pos);

		if (d) {
			for (i = pos + d; i + d <= len; i++) {
				if (memcmp(s + i, s + pos, d) == 0) {
					*kind = QUOTE_TOK_DOLLAR;
					return i + d;
				}
			}
			*kind = QUOTE_TOK_UNTERMINATED;
			return len;
		}
	}
	if (ident_start(c) || (c >= '0' && c <= '9')) {
		while (i < len && ident_cont(s[i]))
			i++;
		*kind = QUOTE_TOK_WORD;
		return i;
	}
	*kind = QUOTE_TOK_PUNCT;
	return pos + 1;
}

enum quote_token quote_next(const char *s, size_t len, size_t *pos, size_t *end)
{
	enum quote_token kind;

	for (;;) {
		*end = quote_scan(s, len, *pos, &kind);
		if (kind != QUOTE_TOK_SPACE && kind != QUOTE_TOK_COMMENT)
			return kind;
		*pos = *end;
	}
}

bool quote_trim(const char *s, size_t len, size_t *start, size_t *end)
{
	enum quote_token kind;
	bool any = false;

	*start = *end = 0;
	for (size_t pos = 0, next; pos < len; pos = next) {
		next = quote_scan(s, len, pos, &kind);
		if (kind == QUOTE_TOK_SPACE || kind == QUOTE_TOK_COMMENT)
			continue;
		if (!any)
			*start = pos;
		any = true;
		*end = next;
	}
	return any;
}

bool quote_is_keyword(const char *s, size_t n, const char *kw)
{
	size_t i = 0;

	for (; i < n && kw[i]; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != kw[i])
			return false;
	}
	return i == n && kw[i] == '\0';
}
