/*
 * The SQL lexer (see sqllex.h): one token at a time, by the rules of
 * PostgreSQL 15's src/backend/parser/scan.l as libpg_query 15 builds it.
 * It decides where tokens end and of what kind they are; it checks nothing
 * inside them beyond what changes where they end, and what the caller may
 * need to know (an escape whose value the scanner checks).
 */
#include "pgvalve/sqllex.h"

#include <string.h>

/* Character classes of scan.l, by byte. */
enum {
	CH_SPACE = 1, /* space: [ \t\n\r\f] (a vertical tab is not one in PostgreSQL 15) */
	CH_DIGIT = 2,
	CH_IDENT = 4, /* ident_start (also dolq_start): [A-Za-z\200-\377_] */
	CH_DOLLAR = 8,
	CH_OP = 16,   /* op_chars: [~!@#^&|`?+\-*\/%<>=] */
	CH_SELF = 32, /* self: [,()\[\].;:+\-*\/%^<>=] */
};

static const unsigned char char_class[256] = {
	[' '] = CH_SPACE,
	['\t'] = CH_SPACE,
	['\n'] = CH_SPACE,
	['\r'] = CH_SPACE,
	['\f'] = CH_SPACE,
	['0' ... '9'] = CH_DIGIT,
	['A' ... 'Z'] = CH_IDENT,
	['a' ... 'z'] = CH_IDENT,
	['_'] = CH_IDENT,
	[0x80 ... 0xff] = CH_IDENT,
	['$'] = CH_DOLLAR,
	['~'] = CH_OP,
	['!'] = CH_OP,
	['@'] = CH_OP,
	['#'] = CH_OP,
	['^'] = CH_OP | CH_SELF,
	['&'] = CH_OP,
	['|'] = CH_OP,
	['`'] = CH_OP,
	['?'] = CH_OP,
	['+'] = CH_OP | CH_SELF,
	['-'] = CH_OP | CH_SELF,
	['*'] = CH_OP | CH_SELF,
	['/'] = CH_OP | CH_SELF,
	['%'] = CH_OP | CH_SELF,
	['<'] = CH_OP | CH_SELF,
	['>'] = CH_OP | CH_SELF,
	['='] = CH_OP | CH_SELF,
	[','] = CH_SELF,
	['('] = CH_SELF,
	[')'] = CH_SELF,
	['['] = CH_SELF,
	[']'] = CH_SELF,
	['.'] = CH_SELF,
	[';'] = CH_SELF,
	[':'] = CH_SELF,
};

static bool is_class(unsigned char c, unsigned char cls)
{
	return char_class[c] & cls;
}

static bool is_digit(unsigned char c)
{
	return is_class(c, CH_DIGIT);
}

static bool is_ident_start(unsigned char c)
{
	return is_class(c, CH_IDENT);
}

/* scan.l's ident_cont: ident_start, digits and $. */
static bool is_ident_cont(unsigned char c)
{
	return is_class(c, CH_IDENT | CH_DIGIT | CH_DOLLAR);
}

static bool is_space(unsigned char c)
{
	return is_class(c, CH_SPACE);
}

static bool is_newline(unsigned char c)
{
	return c == '\n' || c == '\r';
}

void sqllex_init(struct sqllex *lx, const char *s, size_t len, unsigned options)
{
	*lx = (struct sqllex){ .s = s, .len = len, .options = options };
}

/* Whether the digits d[0..n) are an int32, as the scanner's strtoint() tells ICONST from FCONST. */
static bool fits_int32(const unsigned char *d, size_t n)
{
	while (n > 1 && *d == '0')
		d++, n--;
	return n < 10 || (n == 10 && memcmp(d, "2147483647", 10) <= 0);
}

enum string_form {
	STRING_DOUBLED, /* '...' and U&'...': '' is a quote */
	STRING_ESCAPED, /* E'...' (and '...' with standard_conforming_strings off): '' and backslash escapes */
	STRING_BITS,    /* B'...', X'...': the first quote ends it */
};

/*
 * Where the string whose body starts at s[j] ends (just past its last
 * closing quote), or 0 if it is unterminated. *checked is set if it has an
 * escape the scanner checks. After a closing quote the string continues,
 * in the same form, if what follows is white space holding at least one
 * newline and then a quote (scan.l's {quotecontinue}). The server also
 * allows -- comments in that white space; libpg_query's scanner, which
 * reports comments as tokens, does not, and it is the one followed.
 */
static size_t string_end(const unsigned char *s, size_t n, size_t j, enum string_form form, bool *checked)
{
	for (;;) {
		size_t k;
		bool newline = false;

		for (;; j++) {
			if (j >= n)
				return 0;
			if (s[j] == '\\' && form == STRING_ESCAPED) {
				if (++j >= n)
					return 0;
				if ((s[j] >= '0' && s[j] <= '7') || s[j] == 'x' || s[j] == 'u' ||
				    s[j] == 'U' || s[j] >= 0x80)
					*checked = true;
			} else if (s[j] == '\'') {
				if (form == STRING_BITS || j + 1 >= n || s[j + 1] != '\'')
					break;
				j++; /* '' */
			}
		}
		for (k = ++j; k < n && is_space(s[k]); k++)
			newline |= is_newline(s[k]);
		if (!newline || k >= n || s[k] != '\'')
			return j;
		j = k + 1;
	}
}

/*
 * The number at s[i] (a digit, or '.' and a digit): its end in *end and its
 * kind. {integer_junk}, {decimal_junk}, {real_junk} (an identifier character
 * right after it) and {realfail} (an exponent without digits) are errors in
 * PostgreSQL 15: SQLLEX_ERROR up to the end of the identifier characters.
 * {decimalfail} (1..) is the integer alone, followed by the .. token.
 */
static enum sqllex_kind number(const unsigned char *s, size_t n, size_t i, size_t *end)
{
	size_t j = i, k;
	bool integer = true;

	while (j < n && is_digit(s[j]))
		j++;
	if (j < n && s[j] == '.') {
		if (j > i && j + 1 < n && s[j + 1] == '.') {
			*end = j;
			return fits_int32(s + i, j - i) ? SQLLEX_INTEGER : SQLLEX_NUMERIC;
		}
		integer = false;
		for (j++; j < n && is_digit(s[j]); j++)
			;
	}
	if (j < n && (s[j] == 'e' || s[j] == 'E')) {
		k = j + 1;
		if (k < n && (s[k] == '+' || s[k] == '-'))
			k++;
		if (k >= n || !is_digit(s[k])) {
			for (*end = k; *end < n && is_ident_cont(s[*end]); ++*end)
				;
			return SQLLEX_ERROR;
		}
		for (j = k; j < n && is_digit(s[j]); j++)
			;
		integer = false;
	}
	if (j < n && is_ident_start(s[j])) {
		for (*end = j; *end < n && is_ident_cont(s[*end]); ++*end)
			;
		return SQLLEX_ERROR;
	}
	*end = j;
	return integer && fits_int32(s + i, j - i) ? SQLLEX_INTEGER : SQLLEX_NUMERIC;
}

/* Where the slash-star comment at s[i] ends (they nest), or 0 if it does not. */
static size_t block_comment_end(const unsigned char *s, size_t n, size_t i)
{
	size_t depth = 0;

	while (i + 1 < n) {
		if (s[i] == '/' && s[i + 1] == '*') {
			depth++;
			i += 2;
		} else if (s[i] == '*' && s[i + 1] == '/') {
			i += 2;
			if (--depth == 0)
				return i;
		} else {
			i++;
		}
	}
	return 0;
}

/* Where the quoted identifier whose body starts at s[j] ends ("" is a quote), or 0. */
static size_t quoted_ident_end(const unsigned char *s, size_t n, size_t j)
{
	for (; j < n; j++) {
		if (s[j] != '"')
			continue;
		if (j + 1 >= n || s[j + 1] != '"')
			return j + 1;
		j++;
	}
	return 0;
}

/*
 * Where the dollar quote opening with the delimiter s[i..i+d) ends: just
 * past the first copy of the delimiter after it, or 0. (The scanner finds
 * exactly that one: inside the quote, a $ starts no other token.)
 */
static size_t dollar_end(const unsigned char *s, size_t n, size_t i, size_t d)
{
	for (size_t j = i + d; j + d <= n; j++) {
		const unsigned char *p = memchr(s + j, '$', n - j);

		if (!p || (size_t)(p - s) + d > n)
			return 0;
		j = (size_t)(p - s);
		if (memcmp(p, s + i, d) == 0)
			return j + d;
	}
	return 0;
}

/*
 * The operator at s[i] (an op_chars byte that starts no comment): scan.l's
 * {operator} rule. The longest run of operator characters, cut where a
 * comment starts inside it; trailing + and - are given back unless the
 * operator holds a character SQL operators do not have (so =- is = then -,
 * but @- is one operator). What is left, if one self character, is that
 * character's token.
 */
static enum sqllex_kind operator(const unsigned char *s, size_t n, size_t i, size_t *end) {
	size_t j = i + 1, len;

	while (j < n && is_class(s[j], CH_OP)){
		if ((s[j] == '*' && s[j - 1] == '/') || (s[j] == '-' && s[j - 1] == '-')){ j--; break; }
j++;
}
len = j - i;
if (len > 1 && (s[j - 1] == '+' || s[j - 1] == '-')) {
	bool sql_only = true;

	for (size_t k = i; k + 1 < j; k++)
		if (strchr("~!@#^&|`?%", s[k]))
			sql_only = false;
	if (sql_only)
		while (len > 1 && (s[i + len - 1] == '+' || s[i + len - 1] == '-'))
			len--;
}
*end = i + len;
return len == 1 && is_class(s[i], CH_SELF) ? SQLLEX_SELF : SQLLEX_OPERATOR;
}

/* The token at lx->pos (< len): its kind, its end in *end. */
static inline __attribute__((always_inline)) enum sqllex_kind scan(const struct sqllex *lx, size_t *end,
								   bool *checked)
{
	const unsigned char *s = (const unsigned char *)lx->s;
	size_t n = lx->len, i = lx->pos, j;
	unsigned char c = s[i], next = i + 1 < n ? s[i + 1] : '\0';

	if (is_space(c)) {
		for (j = i + 1; j < n && is_space(s[j]); j++)
			;
		*end = j;
		return SQLLEX_SPACE;
	}
	if (c == '-' && next == '-') {
		for (j = i + 2; j < n && !is_newline(s[j]); j++)
			;
		*end = j;
		return SQLLEX_COMMENT;
	}
	if (c == '/' && next == '*')
		return (*end = block_comment_end(s, n, i)) ? SQLLEX_COMMENT : SQLLEX_UNTERMINATED;
	if (c == '"')
		return (*end = quoted_ident_end(s, n, i + 1)) ? SQLLEX_QIDENT : SQLLEX_UNTERMINATED;
	if (c == '\'') {
		enum string_form form = lx->options & SQLLEX_BACKSLASH_STRINGS ? STRING_ESCAPED
									       : STRING_DOUBLED;

		return (*end = string_end(s, n, i + 1, form, checked)) ? SQLLEX_STRING : SQLLEX_UNTERMINATED;
	}
	if (is_digit(c) || (c == '.' && is_digit(next)))
		return number(s, n, i, end);
	if (c == '$' && is_digit(next)) {
		/* A parameter; an identifier character after its digits is an error. */
		for (j = i + 1; j < n && is_digit(s[j]); j++)
			;
		if (j < n && is_ident_start(s[j])) {
			for (; j < n && is_ident_cont(s[j]); j++)
				;
			*end = j;
			return SQLLEX_ERROR;
		}
		*end = j;
		return SQLLEX_PARAM;
	}
	if (c == '$') {
		/* $tag$ opens a dollar quote; the tag is an identifier without $, or empty. */
		j = i + 1;
		if (j < n && is_ident_start(s[j]))
			while (j < n && (is_ident_start(s[j]) || is_digit(s[j])))
				j++;
		if (j < n && s[j] == '$')
			return (*end = dollar_end(s, n, i, j + 1 - i)) ? SQLLEX_DOLLAR : SQLLEX_UNTERMINATED;
		*end = i + 1; /* a lone $ ({dolqfailed} gives back all but it) */
		return SQLLEX_OTHER;
	}
	if (is_ident_start(c)) {
		unsigned char lower = c | 0x20;

		/* Prefixed strings start only where an identifier would: not after an identifier character. */
		if (next == '\'' && (lower == 'e' || lower == 'b' || lower == 'x')) {
			enum string_form form = lower == 'e' ? STRING_ESCAPED : STRING_BITS;

			if (!(*end = string_end(s, n, i + 2, form, checked)))
				return SQLLEX_UNTERMINATED;
			return lower == 'e' ? SQLLEX_ESTRING : lower == 'b' ? SQLLEX_BSTRING : SQLLEX_XSTRING;
		}
		if (next == '\'' && lower == 'n') {
			*end = i + 1; /* the keyword NCHAR; the string follows */
			return SQLLEX_IDENT;
		}
		if (lower == 'u' && next == '&' && i + 2 < n && s[i + 2] == '\'')
			return (*end = string_end(s, n, i + 3, STRING_DOUBLED, checked))
				? SQLLEX_USTRING
				: SQLLEX_UNTERMINATED;
		if (lower == 'u' && next == '&' && i + 2 < n && s[i + 2] == '"')
			return (*end = quoted_ident_end(s, n, i + 3)) ? SQLLEX_UIDENT : SQLLEX_UNTERMINATED;
		for (j = i + 1; j < n && is_ident_cont(s[j]); j++)
			;
		*end = j;
		return SQLLEX_IDENT;
	}
	if ((c == '.' && next == '.') || (c == ':' && (next == ':' || next == '='))) {
		*end = i + 2; /* .. :: := (..5 is .. and 5, not . and .5) */
		return SQLLEX_OPERATOR;
	}
	if (is_class(c, CH_OP) && (i + 1 >= n || !is_class(next, CH_OP))) {
		*end = i + 1; /* the common case: a one-character operator */
		return is_class(c, CH_SELF) ? SQLLEX_SELF : SQLLEX_OPERATOR;
	}
	if (is_class(c, CH_OP))
		return operator(s, n, i, end);
	*end = i + 1;
	return is_class(c, CH_SELF) ? SQLLEX_SELF : SQLLEX_OTHER;
}

/* One token into *t (sqllex_next()); inlined into both ways of asking for tokens. */
static inline __attribute__((always_inline)) enum sqllex_kind next(struct sqllex *lx, struct sqllex_token *t)
{
	size_t end = lx->len;
	bool checked = false;

	t->start = lx->pos;
	if (lx->pos >= lx->len) {
		t->kind = SQLLEX_END;
		t->start = t->end = lx->len;
		t->checked_escape = false;
		return SQLLEX_END;
	}
	t->kind = scan(lx, &end, &checked);
	if (t->kind == SQLLEX_UNTERMINATED)
		end = lx->len;
	t->end = lx->pos = end;
	t->checked_escape = checked;
	return t->kind;
}

enum sqllex_kind sqllex_next(struct sqllex *lx, struct sqllex_token *t)
{
	return next(lx, t);
}

size_t sqllex_next_many(struct sqllex *lx, struct sqllex_token *t, size_t max)
{
	struct sqllex l = *lx; /* a local: stores to t[] cannot alias it, so it stays in registers */
	size_t n = 0;

	while (n < max && next(&l, &t[n]) != SQLLEX_END)
		n++;
	*lx = l;
	return n;
}

enum sqllex_kind sqllex_next_significant(struct sqllex *lx, struct sqllex_token *t)
{
	while (sqllex_next(lx, t) == SQLLEX_SPACE || t->kind == SQLLEX_COMMENT)
		;
	return t->kind;
}

bool sqllex_trim(const char *s, size_t len, size_t *start, size_t *end)
{
	struct sqllex lx;
	struct sqllex_token t;
	bool any = false;

	*start = *end = 0;
	sqllex_init(&lx, s, len, 0);
	while (sqllex_next(&lx, &t) != SQLLEX_END) {
		if (t.kind == SQLLEX_SPACE || t.kind == SQLLEX_COMMENT)
			continue;
		if (!any)
			*start = t.start;
		any = true;
		*end = t.end;
	}
	return any;
}

bool sqllex_is_keyword(const char *s, const struct sqllex_token *t, const char *kw)
{
	size_t n = t->end - t->start, i;

	if (t->kind != SQLLEX_IDENT)
		return false;
	/* The scanner folds ASCII letters only. */
	for (i = 0; i < n && kw[i]; i++) {
		unsigned char c = (unsigned char)s[t->start + i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c != (unsigned char)kw[i])
			return false;
	}
	return i == n && kw[i] == '\0';
}

bool sqllex_is_char(const char *s, const struct sqllex_token *t, char c)
{
	return (t->kind == SQLLEX_SELF || t->kind == SQLLEX_OTHER) && t->end == t->start + 1 &&
		s[t->start] == c;
}
