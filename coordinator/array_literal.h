/*
 * PostgreSQL array literals for query parameters ($1::int[], $1::oid[],
 * $1::text[]), built in a strbuf: "{" before the first element, "," before
 * each other one, "}" when taken, "{}" for none (the array input syntax:
 * https://www.postgresql.org/docs/current/arrays.html#ARRAYS-IO). Parsing
 * an array PostgreSQL prints is not here.
 */
#ifndef PGVALVE_COORDINATOR_ARRAY_LITERAL_H
#define PGVALVE_COORDINATOR_ARRAY_LITERAL_H

#include "strbuf.h"

/* Appends an element that needs no quoting, as it is: a number, an oid. */
void array_literal_add(struct strbuf *b, const char *element);

void array_literal_add_int(struct strbuf *b, long long v);

/* Appends any text, double-quoted with '"' and '\' escaped: {"a","b\"c"}. */
void array_literal_add_text(struct strbuf *b, const char *s);

/* The literal built, malloc'd, for the caller to free; b is empty again. */
char *array_literal_take(struct strbuf *b);

#endif
