/*
 * SQL text the coordinator writes and reads back: quoting identifiers and
 * literals for generated SQL (DESIGN.md §4.2: every identifier quoted), and
 * a lexer that steps over one token of source SQL — whitespace, comments,
 * quoted identifiers, strings and dollar quotes — so that input.c and
 * rules.c can cut statements and expressions out of a file without being
 * fooled by a ')' or ';' inside a string. Parsing is libpg_query's job; this
 * only knows where tokens end.
 *
 * The quoting functions write like snprintf: at most 'cap' bytes including
 * the NUL, and return the length the whole result needs (excluding the NUL),
 * so a caller can measure with (NULL, 0) first. Names are C strings, so they
 * hold no NUL (PostgreSQL identifiers cannot either).
 */
#ifndef PGVALVE_COORDINATOR_QUOTE_H
#define PGVALVE_COORDINATOR_QUOTE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * 'name' as a double-quoted identifier, always quoted (so case and reserved
 * words survive), inner double quotes doubled. An empty name gives "",
 * which PostgreSQL rejects as a zero-length identifier: callers must not
 * pass one.
 */
size_t quote_ident(char *out, size_t cap, const char *name);

/* "schema"."name" when schema is non-empty (and not NULL), else "name". */
size_t quote_qname(char *out, size_t cap, const char *schema, const char *name);

/*
 * 's' as a string literal for a server with standard_conforming_strings on
 * (the default since PostgreSQL 9.1): single quotes doubled, backslashes
 * left as they are.
 */
size_t quote_literal(char *out, size_t cap, const char *s);

enum quote_token {
	QUOTE_TOK_END,          /* at the end of the text */
	QUOTE_TOK_SPACE,        /* a run of white space */
	QUOTE_TOK_COMMENT,      /* -- to the end of the line, or a (nested) slash-star comment */
	QUOTE_TOK_WORD,         /* a keyword, unquoted identifier or number */
	QUOTE_TOK_IDENT,        /* a "quoted identifier" (also U&"...") */
	QUOTE_TOK_STRING,       /* '...', E'...' (backslash escapes), U&'...' */
	QUOTE_TOK_DOLLAR,       /* $tag$ ... $tag$ */
	QUOTE_TOK_PUNCT,        /* one byte of anything else: ( ) , ; operators, $ of $1 */
	QUOTE_TOK_UNTERMINATED, /* a string, identifier, dollar quote or comment open at the end */
};

/*
 * The token that starts at s[pos] (pos <= len): its kind in *kind, and the
 * offset just past it as the result (len for END and UNTERMINATED). Reads
 * nothing outside s[0..len). Follows PostgreSQL's lexer with
 * standard_conforming_strings on.
 */
size_t quote_scan(const char *s, size_t len, size_t pos, enum quote_token *kind);

/*
 * The next token at or after *pos that is neither white space nor a
 * comment: its kind as the result, its start in *pos, the offset past it in
 * *end.
 */
enum quote_token quote_next(const char *s, size_t len, size_t *pos, size_t *end);

/*
 * The span of s[0..len) without leading and trailing white space and
 * comments: [*start, *end). False when nothing else is there.
 */
bool quote_trim(const char *s, size_t len, size_t *start, size_t *end);

/* Whether a WORD token s[0..n) is the keyword 'kw' (lower case), in any case. */
bool quote_is_keyword(const char *s, size_t n, const char *kw);

#endif
