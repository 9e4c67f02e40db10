/*
 * SQL text the coordinator writes: identifiers and literals quoted for
 * generated SQL (every identifier is quoted, so case and reserved words
 * survive; see docs/architecture.md, "the rules"). Reading SQL text is the
 * one lexer's job (pgvalve/sqllex.h); parsing is libpg_query's.
 *
 * The quoting functions write like snprintf: at most 'cap' bytes including
 * the NUL, and return the length the whole result needs (excluding the NUL),
 * so a caller can measure with (NULL, 0) first. Names are C strings, so they
 * hold no NUL (PostgreSQL identifiers cannot either).
 */
#ifndef PGVALVE_COORDINATOR_QUOTE_H
#define PGVALVE_COORDINATOR_QUOTE_H

#include <stddef.h>

#include "strbuf.h"

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

/* quote_ident() and quote_qname() appended to a string being built. */
void quote_append_ident(struct strbuf *b, const char *name);
void quote_append_qname(struct strbuf *b, const char *schema, const char *name);

#endif
