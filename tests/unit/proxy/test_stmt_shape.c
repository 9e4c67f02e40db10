/*
 * Unit tests for proxy/stmt_shape.c: how a re-prepared statement's new row
 * shape is presented as the one its client was shown (docs/architecture.md
 * §4.9, statement refresh). RowDescription read and rewritten; DataRow
 * values narrowed from int8 (binary: 8 bytes to 4 or 2; text: the same
 * digits), widened back, out of range refused naming the column, NULL kept;
 * the key change's shapes (shadow columns at the end, the swap's renamed
 * old column, finalize's reordering) mapped; changes it does not cover
 * refused; Bind result formats spread over the server's columns; malformed
 * bodies refused. The Asan build checks every read stays in its body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgvalve/pgwire.h"
#include "stmt_shape.h"

struct col {
	const char *name;
	uint32_t type;
	int16_t typlen;
	int16_t format;
};

struct buf {
	uint8_t p[4096];
	uint32_t n;
};

static void put(struct buf *b, const void *p, uint32_t n)
{
	assert_true(b->n + n <= sizeof(b->p));
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put16(struct buf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put(b, p, 2);
}

static void put32(struct buf *b, uint32_t v)
{
	uint8_t p[4];

	pgwire_put_u32(p, v);
	put(b, p, 4);
}

/* A RowDescription body. */
static struct buf rowdesc(const struct col *c, int n)
{
	struct buf b = { .n = 0 };

	put16(&b, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		put(&b, c[i].name, (uint32_t)strlen(c[i].name) + 1);
		put32(&b, 16384);             /* table oid */
		put16(&b, (uint16_t)(i + 1)); /* attnum */
		put32(&b, c[i].type);
		put16(&b, (uint16_t)c[i].typlen);
		put32(&b, (uint32_t)-1); /* typmod */
		put16(&b, (uint16_t)c[i].format);
	}
	return b;
}

static struct shape shape_of(const struct col *c, int n)
{
	struct buf b = rowdesc(c, n);
	struct shape s;

	assert_true(shape_read(b.p, b.n, &s));
	return s;
}

/* A DataRow body of 'n' values: each NULL (len -1) or 'len' bytes. */
struct val {
	int32_t len;
	const void *p;
};

static struct buf datarow(const struct val *v, int n)
{
	struct buf b = { .n = 0 };

	put16(&b, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		put32(&b, (uint32_t)v[i].len);
		if (v[i].len > 0)
			put(&b, v[i].p, (uint32_t)v[i].len);
	}
	return b;
}

static void be64(uint8_t *p, int64_t v)
{
	pgwire_put_u32(p, (uint32_t)((uint64_t)v >> 32));
	pgwire_put_u32(p + 4, (uint32_t)v);
}

static const struct col SHOWN[] = { { "id", SHAPE_OID_INT4, 4, 0 }, { "v", 25, -1, 0 } };

static struct shape_map *map_for(const struct col *server, int n, bool *same)
{
	struct shape shown = shape_of(SHOWN, 2), now = shape_of(server, n);
	struct shape_map *m = shape_map_make(&shown, &now, same);

	shape_free(&shown);
	shape_free(&now);
	return m;
}

/* Rewrites 'row' with formats 'f'; returns the result code, the output in 'out'. */
static enum shape_row rewrite(const struct shape_map *m, const struct shape_formats *f, const struct buf *row,
			      struct buf *out, const char **col)
{
	uint8_t *o = malloc(shape_datarow_max(m, row->n));
	enum shape_row rc;

	assert_non_null(o);
	out->n = 0;
	rc = shape_rewrite_datarow(m, f, row->p, row->n, o, &out->n, col);
	if (rc == SHAPE_ROW_OK)
		memcpy(out->p, o, out->n);
	free(o);
	return rc;
}

/* The RowDescription 'm' presents for 'rd', into 'rd' itself (its length), 0 when refused. */
static uint32_t present(const struct shape_map *m, struct buf *rd)
{
	uint8_t *o = malloc(shape_rowdesc_max(m));
	uint32_t n;

	assert_non_null(o);
	n = shape_rewrite_rowdesc(m, rd->p, rd->n, o);
	if (n) {
		memcpy(rd->p, o, n);
		rd->n = n;
	}
	free(o);
	return n;
}

static void test_read_and_malformed(void **state)
{
	struct buf b = rowdesc(SHOWN, 2);
	struct shape s;

	(void)state;
	assert_true(shape_read(b.p, b.n, &s));
	assert_int_equal(s.n, 2);
	assert_string_equal(s.cols[0].name, "id");
	assert_int_equal(s.cols[0].type, SHAPE_OID_INT4);
	assert_int_equal(s.cols[1].type, 25);
	shape_free(&s);
	for (uint32_t cut = 0; cut < b.n; cut++)
		assert_false(shape_read(b.p, cut, &s));
	b.p[b.n++] = 0; /* a byte too many */
	assert_false(shape_read(b.p, b.n, &s));
}

static void test_widened_key_is_narrowed(void **state)
{
	const struct col server[] = { { "id", SHAPE_OID_INT8, 8, 1 }, { "v", 25, -1, 0 } };
	struct shape_formats bin = { .n = 2, .fmt = { 1, 0 } }, text = { .n = 0 };
	struct buf rd = rowdesc(server, 2), row, out;
	uint8_t v8[8];
	const char *col;
	bool same;
	struct shape_map *m = map_for(server, 2, &same);
	struct shape seen;
	uint32_t n;

	(void)state;
	assert_non_null(m);
	assert_false(same);
	/* RowDescription: int4 again, the format code as the server gave it */
	n = rd.n;
	assert_int_equal(present(m, &rd), n);
	assert_true(shape_read(rd.p, n, &seen));
	assert_int_equal(seen.cols[0].type, SHAPE_OID_INT4);
	assert_int_equal(seen.cols[0].typlen, 4);
	assert_int_equal(rd.p[n - 1 - 18 - 2], 1); /* id's format code, low byte */
	shape_free(&seen);
	/* binary: 8 bytes become 4 */
	be64(v8, 42);
	row = datarow((struct val[]){ { 8, v8 }, { 3, "abc" } }, 2);
	assert_int_equal(rewrite(m, &bin, &row, &out, &col), SHAPE_ROW_OK);
	assert_int_equal(out.n, row.n - 4);
	assert_int_equal(pgwire_get_u32(out.p + 2), 4);
	assert_int_equal(pgwire_get_u32(out.p + 6), 42);
	assert_memory_equal(out.p + 10, "\0\0\0\3abc", 7);
	/* negative values keep their sign */
	be64(v8, -7);
	row = datarow((struct val[]){ { 8, v8 }, { -1, NULL } }, 2);
	assert_int_equal(rewrite(m, &bin, &row, &out, &col), SHAPE_ROW_OK);
	assert_int_equal((int32_t)pgwire_get_u32(out.p + 6), -7);
	assert_int_equal((int32_t)pgwire_get_u32(out.p + 10), -1);
	/* a value beyond int4: refused, naming the column, never cut */
	be64(v8, 3000000000LL);
	row = datarow((struct val[]){ { 8, v8 }, { 1, "x" } }, 2);
	assert_int_equal(rewrite(m, &bin, &row, &out, &col), SHAPE_ROW_RANGE);
	assert_string_equal(col, "id");
	/* text: the same digits; the range still checked */
	row = datarow((struct val[]){ { 10, "2147483647" }, { 1, "x" } }, 2);
	assert_int_equal(rewrite(m, &text, &row, &out, &col), SHAPE_ROW_OK);
	assert_int_equal(out.n, row.n);
	assert_memory_equal(out.p, row.p, row.n);
	row = datarow((struct val[]){ { 11, "-2147483648" }, { 1, "x" } }, 2);
	assert_int_equal(rewrite(m, &text, &row, &out, &col), SHAPE_ROW_OK);
	row = datarow((struct val[]){ { 10, "2147483648" }, { 1, "x" } }, 2);
	assert_int_equal(rewrite(m, &text, &row, &out, &col), SHAPE_ROW_RANGE);
	/* NULL key */
	row = datarow((struct val[]){ { -1, NULL }, { 1, "x" } }, 2);
	assert_int_equal(rewrite(m, &bin, &row, &out, &col), SHAPE_ROW_OK);
	assert_int_equal(out.n, row.n);
	/* malformed rows: wrong count, short value, binary int8 not 8 bytes */
	row = datarow((struct val[]){ { 1, "x" } }, 1);
	assert_int_equal(rewrite(m, &bin, &row, &out, &col), SHAPE_ROW_INVALID);
	row = datarow((struct val[]){ { 8, v8 }, { 1, "x" } }, 2);
	for (uint32_t cut = 0; cut < row.n; cut++) {
		struct buf shorter = row;

		shorter.n = cut;
		assert_int_equal(rewrite(m, &bin, &shorter, &out, &col), SHAPE_ROW_INVALID);
	}
	row = datarow((struct val[]){ { 4, "abcd" }, { 1, "x" } }, 2);
	assert_int_equal(rewrite(m, &bin, &row, &out, &col), SHAPE_ROW_INVALID);
	shape_map_unref(m);
}

static void test_key_change_shapes(void **state)
{
	/* prepare: the shadow column at the end */
	const struct col shadow[] = { { "id", SHAPE_OID_INT4, 4, 0 },
				      { "v", 25, -1, 0 },
				      { "id_pgvalve_new", SHAPE_OID_INT8, 8, 0 } };
	/* after the swap: the old column renamed in place, the new key at the end */
	const struct col swapped[] = { { "id_pgvalve_old", SHAPE_OID_INT4, 4, 0 },
				       { "v", 25, -1, 0 },
				       { "id", SHAPE_OID_INT8, 8, 0 } };
	/* after finalize: the old column gone, the key last */
	const struct col final[] = { { "v", 25, -1, 0 }, { "id", SHAPE_OID_INT8, 8, 0 } };
	struct shape_formats text = { .n = 0 }, bin = { .n = 1, .fmt = { 1 } };
	uint8_t v8[8];
	struct buf row, out, rd;
	const char *col;
	bool same;
	struct shape_map *m;
	struct shape seen;

	(void)state;
	m = map_for(shadow, 3, &same);
	assert_non_null(m);
	row = datarow((struct val[]){ { 1, "5" }, { 1, "x" }, { 1, "5" } }, 3);
	assert_int_equal(rewrite(m, &text, &row, &out, &col), SHAPE_ROW_OK);
	assert_int_equal(out.n, 2 + 5 + 5);
	assert_int_equal(out.p[1], 2);
	rd = rowdesc(shadow, 3);
	assert_true(shape_read(rd.p, present(m, &rd), &seen));
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.cols[1].name, "v");
	shape_free(&seen);
	shape_map_unref(m);

	m = map_for(swapped, 3, &same);
	assert_non_null(m);
	be64(v8, 77);
	row = datarow((struct val[]){ { 4, "\0\0\0\x4d" }, { 1, "x" }, { 8, v8 } }, 3);
	assert_int_equal(rewrite(m, &bin, &row, &out, &col), SHAPE_ROW_OK);
	assert_int_equal(out.n, 2 + 8 + 5); /* id from the new key, narrowed; v */
	assert_int_equal(pgwire_get_u32(out.p + 6), 77);
	rd = rowdesc(swapped, 3);
	assert_true(shape_read(rd.p, present(m, &rd), &seen));
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.cols[0].name, "id");
	assert_int_equal(seen.cols[0].type, SHAPE_OID_INT4);
	shape_free(&seen);
	shape_map_unref(m);

	m = map_for(final, 2, &same);
	assert_non_null(m);
	row = datarow((struct val[]){ { 1, "x" }, { 2, "12" } }, 2);
	assert_int_equal(rewrite(m, &text, &row, &out, &col), SHAPE_ROW_OK);
	assert_memory_equal(out.p,
			    "\0\2\0\0\0\2"
			    "12\0\0\0\1x",
			    out.n);
	shape_map_unref(m);
}

static void test_not_covered_and_identity(void **state)
{
	const struct col text_key[] = { { "id", 25, -1, 0 }, { "v", 25, -1, 0 } };
	const struct col extra[] = { { "id", SHAPE_OID_INT4, 4, 0 }, { "v", 25, -1, 0 }, { "w", 25, -1, 0 } };
	const struct col fewer[] = { { "id", SHAPE_OID_INT4, 4, 0 } };
	bool same;

	(void)state;
	assert_null(map_for(SHOWN, 2, &same));
	assert_true(same);
	assert_null(map_for(text_key, 2, &same));
	assert_false(same);
	assert_null(map_for(extra, 3, &same));
	assert_false(same);
	assert_null(map_for(fewer, 1, &same));
	assert_false(same);
}

static void test_widened_back(void **state)
{
	const struct col shown[] = { { "id", SHAPE_OID_INT8, 8, 0 } },
			 server[] = { { "id", SHAPE_OID_INT4, 4, 0 } };
	struct shape a = shape_of(shown, 1), b = shape_of(server, 1);
	struct shape_formats bin = { .n = 1, .fmt = { 1 } };
	bool same;
	struct shape_map *m = shape_map_make(&a, &b, &same);
	struct buf row = datarow((struct val[]){ { 4, "\xff\xff\xff\xfe" } }, 1), out;
	const char *col;

	(void)state;
	assert_non_null(m);
	assert_int_equal(rewrite(m, &bin, &row, &out, &col), SHAPE_ROW_OK);
	assert_int_equal(out.n, row.n + 4);
	assert_int_equal(pgwire_get_u32(out.p + 2), 8);
	assert_memory_equal(out.p + 6, "\xff\xff\xff\xff\xff\xff\xff\xfe", 8);
	shape_map_unref(m);
	shape_free(&a);
	shape_free(&b);
}

static void test_dropped_old_column_is_null(void **state)
{
	/* shown while the swap's old column was there; finalize dropped it since */
	const struct col shown[] = { { "id_pgvalve_old", SHAPE_OID_INT4, 4, 0 },
				     { "v", 25, -1, 0 },
				     { "id", SHAPE_OID_INT8, 8, 0 } };
	const struct col final[] = { { "v", 25, -1, 0 }, { "id", SHAPE_OID_INT8, 8, 0 } };
	struct shape a = shape_of(shown, 3), b = shape_of(final, 2), seen;
	struct shape_formats text = { .n = 0 };
	bool same;
	struct shape_map *m = shape_map_make(&a, &b, &same);
	struct buf row = datarow((struct val[]){ { 1, "x" }, { 2, "12" } }, 2), out, rd = rowdesc(final, 2);
	const char *col;
	uint8_t bind_out[64];
	struct buf bnd = { .n = 0 };
	uint32_t len;
	bool bad;
	uint8_t *nb;

	(void)state;
	(void)bind_out;
	assert_non_null(m);
	assert_int_equal(rewrite(m, &text, &row, &out, &col), SHAPE_ROW_OK);
	assert_memory_equal(out.p,
			    "\0\3\xff\xff\xff\xff\0\0\0\1x\0\0\0\2"
			    "12",
			    out.n);
	assert_true(shape_read(rd.p, present(m, &rd), &seen));
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.cols[0].name, "id_pgvalve_old");
	assert_int_equal(seen.cols[0].type, SHAPE_OID_INT4);
	shape_free(&seen);
	/* its three result formats become the server's two */
	put(&bnd, "\0S_1\0\0\0\0\0\0\3\0\1\0\0\0\1", 17);
	nb = shape_rewrite_bind(m, bnd.p, bnd.n, &len, &(struct shape_formats){ .n = 0 }, &bad);
	assert_false(bad);
	assert_non_null(nb);
	assert_int_equal(len, bnd.n - 2);
	assert_memory_equal(nb + len - 6, "\0\2\0\0\0\1", 6);
	free(nb);
	shape_map_unref(m);
	shape_free(&a);
	shape_free(&b);
}

/* A Bind body: portal, statement, no parameter formats, one text parameter, then result formats. */
static struct buf bind(const uint16_t *fmts, int n)
{
	struct buf b = { .n = 0 };

	put(&b, "", 1);
	put(&b, "S_1", 4);
	put16(&b, 0);
	put16(&b, 1);
	put32(&b, 2);
	put(&b, "42", 2);
	put16(&b, (uint16_t)n);
	for (int i = 0; i < n; i++)
		put16(&b, fmts[i]);
	return b;
}

static void test_bind_formats(void **state)
{
	const struct col shadow[] = { { "id", SHAPE_OID_INT4, 4, 0 },
				      { "v", 25, -1, 0 },
				      { "id_pgvalve_new", SHAPE_OID_INT8, 8, 0 } };
	const struct col final[] = { { "v", 25, -1, 0 }, { "id", SHAPE_OID_INT8, 8, 0 } };
	struct shape_formats f = { .n = 0 };
	struct buf b = bind((const uint16_t[]){ 1, 0 }, 2);
	uint32_t len;
	bool same, bad;
	struct shape_map *m = map_for(shadow, 3, &same);
	uint8_t *out;

	(void)state;
	out = shape_rewrite_bind(m, b.p, b.n, &len, &f, &bad);
	assert_false(bad);
	assert_non_null(out);
	assert_int_equal(len, b.n + 2);
	assert_memory_equal(out + b.n - 6, "\0\3\0\1\0\0\0\0", 8);
	assert_int_equal(shape_format(&f, 0), 1);
	assert_int_equal(shape_format(&f, 1), 0);
	assert_int_equal(shape_format(&f, 2), 0);
	free(out);
	shape_formats_free(&f);
	shape_map_unref(m);

	m = map_for(final, 2, &same);
	out = shape_rewrite_bind(m, b.p, b.n, &len, &f, &bad);
	assert_non_null(out);
	assert_memory_equal(out + b.n - 6, "\0\2\0\0\0\1", 6); /* id's binary code moves to column 2 */
	free(out);
	shape_formats_free(&f);
	/* one code for all: unchanged */
	b = bind((const uint16_t[]){ 1 }, 1);
	assert_null(shape_rewrite_bind(m, b.p, b.n, &len, &f, &bad));
	assert_false(bad);
	assert_int_equal(shape_format(&f, 1), 1);
	shape_formats_free(&f);
	/* cut short anywhere: refused */
	b = bind((const uint16_t[]){ 1, 0 }, 2);
	for (uint32_t cut = 0; cut < b.n; cut++) {
		assert_null(shape_rewrite_bind(m, b.p, cut, &len, &f, &bad));
		assert_true(bad);
		shape_formats_free(&f);
	}
	shape_map_unref(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_and_malformed),
		cmocka_unit_test(test_widened_key_is_narrowed),
		cmocka_unit_test(test_key_change_shapes),
		cmocka_unit_test(test_not_covered_and_identity),
		cmocka_unit_test(test_widened_back),
		cmocka_unit_test(test_bind_formats),
		cmocka_unit_test(test_dropped_old_column_is_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
