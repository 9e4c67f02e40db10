/*
 * A growing string for the coordinator's generated text (SQL steps, notes):
 * append, then take the result. Allocation dies on failure (xalloc.h), so
 * nothing here fails. What to append — quoted identifiers, say — is the
 * caller's (quote.h appends those).
 */
#ifndef PGVALVE_COORDINATOR_STRBUF_H
#define PGVALVE_COORDINATOR_STRBUF_H

#include <stddef.h>

/* Zero-initialized ({0}) is an empty string. */
struct strbuf {
	char *s; /* NUL-terminated once anything is appended; NULL before */
	size_t len, cap;
};

/* Room for n more bytes and a NUL after them. */
void strbuf_reserve(struct strbuf *b, size_t n);

void strbuf_putn(struct strbuf *b, const char *s, size_t n);
void strbuf_put(struct strbuf *b, const char *s);

/* Appends 'word' after a space, or alone when the string is empty. */
void strbuf_word(struct strbuf *b, const char *word);

/* The string built, malloc'd ("" when nothing was added), for the caller to free; b is empty again. */
char *strbuf_take(struct strbuf *b);

/* Frees what b holds; b is empty again. */
void strbuf_reset(struct strbuf *b);

#endif
