/*
 * The one SQL lexer: where each token of a SQL text starts and ends, and of
 * what kind, following PostgreSQL 15's scanner (src/backend/parser/scan.l,
 * as libpg_query 15 builds it, which is the parser everything here answers
 * to). The proxy's classification cache keys on its tokens, the coordinator
 * trims, cuts and searches statements with it. It does not parse, fold case
 * or decode escapes: a token's bytes are the text's own.
 *
 * What PostgreSQL 15 reads (https://www.postgresql.org/docs/15/sql-syntax-lexical.html):
 *   - white space: space, tab, newline, carriage return, form feed. A
 *     vertical tab is not white space to PostgreSQL 15 (16 made it one): it
 *     is an SQLLEX_OTHER byte, which the grammar rejects.
 *   - comments: -- to the end of the line; slash-star ones, which nest.
 *   - "quoted identifiers" and U&"..." ones, "" standing for a quote.
 *   - '...' strings ('' is a quote; a backslash escapes too when
 *     standard_conforming_strings is off), E'...' (backslash escapes), B'...'
 *     and X'...' (the first quote ends them), U&'...', and N'...', which is
 *     the keyword NCHAR (an SQLLEX_IDENT "N") followed by a '...' string. A
 *     string continues across white space holding a newline: 'a'<newline>'b'
 *     is one token.
 *   - $tag$ ... $tag$ and $$ ... $$: the body ends at the first copy of the
 *     opening delimiter. A '$' inside an identifier (a$b) belongs to it.
 *   - numbers: 42 (an int32: ICONST), 1.5 .5 5. 1e10 99999999999 (FCONST). A
 *     number followed by an identifier character, or an exponent without
 *     digits, is an error ("trailing junk", SQLLEX_ERROR). 0x1F, 0o17, 0b101
 *     and 1_000 are PostgreSQL 16: here 0x1F is an error like 0abc.
 *   - parameters $1; operators (the longest run of operator characters, cut
 *     where a comment starts and with trailing + and - given back as scan.l
 *     does); the one-character tokens , ( ) [ ] . ; : + - * / % ^ < > =.
 *
 * Offsets are bytes. The lexer reads s[0..len) and nothing else; a NUL in
 * it is an SQLLEX_OTHER byte (callers that follow the server stop the text
 * at its first NUL). It allocates nothing and keeps no state beyond struct
 * sqllex, so any thread may use it.
 */
#ifndef PGVALVE_SQLLEX_H
#define PGVALVE_SQLLEX_H

#include <stdbool.h>
#include <stddef.h>

enum sqllex_kind {
	SQLLEX_END,          /* at the end of the text: an empty token */
	SQLLEX_SPACE,        /* a run of white space */
	SQLLEX_COMMENT,      /* -- to the end of the line (not the newline), or a slash-star one */
	SQLLEX_IDENT,        /* a keyword or unquoted identifier (also the N of N'...') */
	SQLLEX_QIDENT,       /* "a quoted identifier" */
	SQLLEX_UIDENT,       /* U&"..." */
	SQLLEX_STRING,       /* '...' */
	SQLLEX_ESTRING,      /* E'...' */
	SQLLEX_BSTRING,      /* B'...' */
	SQLLEX_XSTRING,      /* X'...' */
	SQLLEX_USTRING,      /* U&'...' */
	SQLLEX_DOLLAR,       /* $tag$...$tag$ */
	SQLLEX_INTEGER,      /* digits whose value fits in int32 (the scanner's ICONST) */
	SQLLEX_NUMERIC,      /* any other number (FCONST) */
	SQLLEX_PARAM,        /* $1 */
	SQLLEX_OPERATOR,     /* an operator, or :: .. := => <= >= <> != */
	SQLLEX_SELF,         /* one of , ( ) [ ] . ; : + - * / % ^ < > = */
	SQLLEX_OTHER,        /* one byte no rule takes: a lone $, \, {, a vertical tab, ... */
	SQLLEX_ERROR,        /* a number or parameter with trailing junk (1abc, 1e+, $1x) */
	SQLLEX_UNTERMINATED, /* a string, quoted identifier, dollar quote or comment open at the end */
};

enum sqllex_option {
	/* standard_conforming_strings off: '...' takes backslash escapes as E'...' does. */
	SQLLEX_BACKSLASH_STRINGS = 1 << 0,
};

struct sqllex_token {
	enum sqllex_kind kind;
	size_t start, end; /* s[start..end); end == start only for SQLLEX_END */
	/*
	 * A string holding an escape whose value the scanner checks (octal or
	 * hex, \u or \U, a backslash before a non-ASCII byte): it can fail to
	 * scan, or fail the encoding check, depending on what it says.
	 */
	bool checked_escape;
};

struct sqllex {
	const char *s;
	size_t len;
	size_t pos;       /* where the next token starts */
	unsigned options; /* enum sqllex_option bits */
};

/* A lexer at the start of s[0..len). */
void sqllex_init(struct sqllex *lx, const char *s, size_t len, unsigned options);

/*
 * The next token, into *t, and its kind as the result. After SQLLEX_END
 * and SQLLEX_UNTERMINATED (which runs to the end of the text) every call
 * gives SQLLEX_END; after SQLLEX_ERROR, lexing goes on after the junk.
 */
enum sqllex_kind sqllex_next(struct sqllex *lx, struct sqllex_token *t);

/*
 * Up to 'max' tokens into t[], as many calls of sqllex_next() would give
 * them, without the SQLLEX_END: returns how many (0 at the end of the
 * text). For a hot loop (the cache key), where a call per token costs more
 * than the lexing.
 */
size_t sqllex_next_many(struct sqllex *lx, struct sqllex_token *t, size_t max);

/* sqllex_next(), stepping over white space and comments. */
enum sqllex_kind sqllex_next_significant(struct sqllex *lx, struct sqllex_token *t);

/*
 * The span of s[0..len) without leading and trailing white space and
 * comments: [*start, *end). False (and both 0) when nothing else is there.
 * Standard-conforming strings.
 */
bool sqllex_trim(const char *s, size_t len, size_t *start, size_t *end);

/* Whether token t of text s is the keyword 'kw' (lower case), written in any case. */
bool sqllex_is_keyword(const char *s, const struct sqllex_token *t, const char *kw);

/* Whether token t of text s is the one-character token 'c' (SQLLEX_SELF or SQLLEX_OTHER). */
bool sqllex_is_char(const char *s, const struct sqllex_token *t, char c);

#endif
