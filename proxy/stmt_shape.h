/*
 * The row shape a client was shown for a prepared statement, and how a
 * re-prepared statement's new shape is presented as that one
 * (docs/architecture.md §4.9, statement refresh). Pure functions over
 * message bodies: RowDescription read into a shape, a mapping from the
 * server's new columns to the shown ones, and the rewrites of
 * RowDescription, DataRow and Bind's result formats that the mapping needs.
 *
 * A mapping covers exactly what the key type change does to a row type: a
 * column widened from int2 or int4 to int8 (presented narrowed back) or
 * narrowed back from int8 (presented widened, for a client shown int8), a
 * column renamed to "<name>_pgvalve_old" (presented under its shown name),
 * and columns the client was not shown ("*_pgvalve_*" shadow columns, or a
 * shown column's new copy at the end) left out; a shown "*_pgvalve_*"
 * column dropped since is presented as NULL. Anything else is not a
 * mapping: the new shape then goes to the client as the server gives it.
 */
#ifndef PGVALVE_PROXY_STMT_SHAPE_H
#define PGVALVE_PROXY_STMT_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHAPE_OID_INT2 21
#define SHAPE_OID_INT4 23
#define SHAPE_OID_INT8 20
#define SHAPE_MAX_COLS 1664 /* PostgreSQL's MaxTupleAttributeNumber */

struct shape_col {
	char *name;
	uint32_t type;
	int16_t typlen;
};

/* A RowDescription's columns; n < 0: none shown yet. */
struct shape {
	int n;
	struct shape_col *cols;
};

/* Reads a RowDescription body ('T'); n 0 for NoData. False: malformed (or out of memory). */
bool shape_read(const uint8_t *body, uint32_t len, struct shape *out);
void shape_free(struct shape *s);

/* How the server's columns present as the shown ones. Shared by portals: refcounted. */
struct shape_map {
	int refs;
	int n_out;        /* the shown columns */
	int n_in;         /* the server's columns now */
	int *src;         /* per shown column: the server column it comes from (-1: dropped, NULL) */
	uint8_t *narrow;  /* per shown column: 0 as is, 2 or 4 bytes (from int8), 8 (from int2/int4) */
	struct shape out; /* names and types to present */
};

/*
 * The mapping from 'server' to 'shown', or NULL with '*same' true when the
 * shapes are equal (nothing to present differently), or NULL with '*same'
 * false when 'server' is not a change this covers (see above).
 */
struct shape_map *shape_map_make(const struct shape *shown, const struct shape *server, bool *same);
struct shape_map *shape_map_ref(struct shape_map *m);
void shape_map_unref(struct shape_map *m);

/* The most bytes a RowDescription body presented by 'm' takes. */
uint32_t shape_rowdesc_max(const struct shape_map *m);

/*
 * Writes the RowDescription body the client is shown into 'out'
 * (shape_rowdesc_max bytes). Returns its length, or 0 if 'body' does not
 * describe the mapping's server columns.
 */
uint32_t shape_rewrite_rowdesc(const struct shape_map *m, const uint8_t *body, uint32_t len, uint8_t *out);

/* The result format of each server column, from a Bind's format codes. */
struct shape_formats {
	int n;           /* 0: all text; 1: all fmt[0]; else per column */
	uint8_t fmt[64]; /* codes beyond 64 columns: 'more' */
	uint8_t *more;   /* n > 64: malloc'd, n entries */
};

enum shape_row {
	SHAPE_ROW_OK,
	SHAPE_ROW_RANGE,   /* a value does not fit the shown type: '*col' names the column */
	SHAPE_ROW_INVALID, /* not a DataRow of the mapping's server columns */
};

/* The most bytes a DataRow body of 'len' bytes takes rewritten (widening grows it). */
uint32_t shape_datarow_max(const struct shape_map *m, uint32_t len);

/*
 * Writes a DataRow body of the shown columns into 'out' (shape_datarow_max
 * bytes), its length in '*new_len'. 'f' are the portal's formats per server column.
 */
enum shape_row shape_rewrite_datarow(const struct shape_map *m, const struct shape_formats *f,
				     const uint8_t *body, uint32_t len, uint8_t *out, uint32_t *new_len,
				     const char **col);

/*
 * A Bind body for the server's columns: its result format codes, given per
 * shown column by the client, re-spread over the server's columns (a left
 * out column goes as text). Fills 'f' with the server columns' formats.
 * Returns a malloc'd body (length '*out_len') when the codes had to change,
 * NULL otherwise, with '*bad' true if the body could not be read.
 */
uint8_t *shape_rewrite_bind(const struct shape_map *m, const uint8_t *body, uint32_t len, uint32_t *out_len,
			    struct shape_formats *f, bool *bad);

/* Formats of a Bind that goes unchanged (statement without a mapping, or codes not per column). */
bool shape_bind_formats(const uint8_t *body, uint32_t len, struct shape_formats *f);
void shape_formats_free(struct shape_formats *f);

/* Format code of server column 'i'. */
int shape_format(const struct shape_formats *f, int i);

#endif
