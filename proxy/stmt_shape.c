/*
 * Row shapes and their rewrites (see stmt_shape.h). Every reader checks
 * lengths before it reads; every rewrite only shrinks a message, except
 * Bind's, which is built anew.
 */
#include "stmt_shape.h"

#include <stdlib.h>
#include <string.h>

#include "pgvalve/pgwire.h"

#define SHADOW_MARK "_pgvalve_"
#define OLD_SUFFIX "_pgvalve_old"

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void shape_free(struct shape *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->cols[i].name);
	free(s->cols);
	s->cols = NULL;
	s->n = -1;
}

/* A RowDescription field: name, then 18 bytes (table oid, attnum, type, typlen, typmod, format). */
#define FIELD_FIXED 18

/* Offset just past field at 'off', or 0 if it does not fit in 'len'. */
static uint32_t field_end(const uint8_t *body, uint32_t len, uint32_t off)
{
	const uint8_t *nul = off < len ? memchr(body + off, 0, len - off) : NULL;
	uint32_t end;

	if (!nul)
		return 0;
	end = (uint32_t)(nul - body) + 1 + FIELD_FIXED;
	return end <= len ? end : 0;
}

bool shape_read(const uint8_t *body, uint32_t len, struct shape *out)
{
	uint32_t off = 2;
	int n;

	out->n = -1;
	out->cols = NULL;
	if (len < 2)
		return false;
	n = get_u16(body);
	if (n > SHAPE_MAX_COLS)
		return false;
	out->cols = calloc(n ? (size_t)n : 1, sizeof(*out->cols));
	if (!out->cols)
		return false;
	out->n = 0;
	for (int i = 0; i < n; i++) {
		uint32_t end = field_end(body, len, off);
		const uint8_t *fixed;

		if (!end || !(out->cols[i].name = strdup((const char *)body + off))) {
			shape_free(out);
			return false;
		}
		out->n = i + 1;
		fixed = body + end - FIELD_FIXED;
		out->cols[i].type = pgwire_get_u32(fixed + 6);
		out->cols[i].typlen = (int16_t)get_u16(fixed + 10);
		off = end;
	}
	if (off != len) {
		shape_free(out);
		return false;
	}
	return true;
}

struct shape_map *shape_map_ref(struct shape_map *m)
{
	if (m)
		m->refs++;
	return m;
}

void shape_map_unref(struct shape_map *m)
{
	if (!m || --m->refs > 0)
		return;
	free(m->src);
	free(m->narrow);
	shape_free(&m->out);
	free(m);
}

/*
 * How an integer of the server's type is presented as the shown one: 0 as
 * is (same type), 2 or 4 narrowed from int8, 8 widened from int2 or int4;
 * -1 not a change presented.
 */
static int narrowing(uint32_t shown, uint32_t server)
{
	if (shown == server)
		return 0;
	if (shown == SHAPE_OID_INT8)
		return server == SHAPE_OID_INT4 || server == SHAPE_OID_INT2 ? 8 : -1;
	if (server != SHAPE_OID_INT8)
		return -1;
	return shown == SHAPE_OID_INT4 ? 4 : shown == SHAPE_OID_INT2 ? 2 : -1;
}

static bool is_old_copy(const char *server_name, const char *shown_name)
{
	size_t n = strlen(shown_name);

	return strncmp(server_name, shown_name, n) == 0 && strcmp(server_name + n, OLD_SUFFIX) == 0;
}

/* The server column shown column 'j' comes from: its name's only match, else its position renamed. */
static int source_of(const struct shape *shown, const struct shape *server, int j)
{
	const char *name = shown->cols[j].name;
	int found = -1, same_name = 0;

	for (int k = 0; k < shown->n; k++)
		same_name += strcmp(shown->cols[k].name, name) == 0;
	if (same_name == 1) {
		for (int k = 0; k < server->n; k++) {
			if (strcmp(server->cols[k].name, name) != 0)
				continue;
			if (found >= 0)
				return -1; /* two server columns of that name: which one is not known */
			found = k;
		}
		if (found >= 0)
			return found;
	}
	if (j < server->n &&
	    (strcmp(server->cols[j].name, name) == 0 || is_old_copy(server->cols[j].name, name)))
		return j;
	return -1;
}

struct shape_map *shape_map_make(const struct shape *shown, const struct shape *server, bool *same)
{
	struct shape_map *m;
	bool *used;
	bool identity = shown->n == server->n;

	*same = false;
	if (shown->n < 0 || server->n < 0)
		return NULL;
	m = calloc(1, sizeof(*m));
	used = calloc((size_t)server->n + 1, sizeof(*used));
	if (!m || !used)
		goto fail;
	m->refs = 1;
	m->n_out = shown->n;
	m->n_in = server->n;
	m->src = calloc((size_t)shown->n + 1, sizeof(*m->src));
	m->narrow = calloc((size_t)shown->n + 1, sizeof(*m->narrow));
	m->out.cols = calloc((size_t)shown->n + 1, sizeof(*m->out.cols));
	m->out.n = 0;
	if (!m->src || !m->narrow || !m->out.cols)
		goto fail;
	for (int j = 0; j < shown->n; j++) {
		int k = source_of(shown, server, j), bytes = 0;

		if (k < 0 && !strstr(shown->cols[j].name, SHADOW_MARK))
			goto fail;
		/* A shown shadow or old column the change has dropped since: presented as NULL. */
		if (k >= 0 && (used[k] || (bytes = narrowing(shown->cols[j].type, server->cols[k].type)) < 0))
			goto fail;
		if (k >= 0)
			used[k] = true;
		m->src[j] = k;
		m->narrow[j] = (uint8_t)bytes;
		if (!(m->out.cols[j].name = strdup(shown->cols[j].name)))
			goto fail;
		m->out.n = j + 1;
		m->out.cols[j].type = shown->cols[j].type;
		m->out.cols[j].typlen = shown->cols[j].typlen;
		identity &= k == j && bytes == 0 && strcmp(server->cols[k].name, shown->cols[j].name) == 0;
	}
	/* What the client was not shown may only be the change's own columns. */
	for (int k = 0; k < server->n; k++) {
		bool known = false;

		if (used[k])
			continue;
		for (int j = 0; j < shown->n && !known; j++)
			known = strcmp(server->cols[k].name, shown->cols[j].name) == 0;
		if (!known && !strstr(server->cols[k].name, SHADOW_MARK))
			goto fail;
	}
	free(used);
	if (identity) {
		*same = true;
		shape_map_unref(m);
		return NULL;
	}
	return m;
fail:
	free(used);
	if (m) {
		m->refs = 1;
		shape_map_unref(m);
	}
	return NULL;
}

uint32_t shape_rowdesc_max(const struct shape_map *m)
{
	uint32_t n = 2;

	for (int j = 0; j < m->n_out; j++)
		n += (uint32_t)strlen(m->out.cols[j].name) + 1 + FIELD_FIXED;
	return n;
}

uint32_t shape_rewrite_rowdesc(const struct shape_map *m, const uint8_t *body, uint32_t len, uint8_t *out)
{
	static const uint8_t none[FIELD_FIXED] = { 0, 0, 0, 0,    0,    0,    0,    0, 0,
						   0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0 };
	uint32_t *start, off = 2, out_len = 2;

	if (len < 2 || get_u16(body) != m->n_in)
		return 0;
	start = calloc((size_t)m->n_in + 1, sizeof(*start));
	if (!start)
		return 0;
	for (int k = 0; k < m->n_in; k++) {
		start[k] = off;
		if (!(off = field_end(body, len, off))) {
			free(start);
			return 0;
		}
	}
	free(start);
	if (off != len)
		return 0;
	put_u16(out, (uint16_t)m->n_out);
	for (int j = 0; j < m->n_out; j++) {
		size_t name_len = strlen(m->out.cols[j].name) + 1;
		const uint8_t *fixed = none;

		if (m->src[j] >= 0) {
			/* Field m->src[j] again: names were checked whole above. */
			const uint8_t *in = body + 2;

			for (int k = 0; k < m->src[j]; k++)
				in += strlen((const char *)in) + 1 + FIELD_FIXED;
			fixed = in + strlen((const char *)in) + 1;
		}
		memcpy(out + out_len, m->out.cols[j].name, name_len);
		out_len += (uint32_t)name_len;
		memcpy(out + out_len, fixed, FIELD_FIXED);
		pgwire_put_u32(out + out_len + 6, m->out.cols[j].type);
		put_u16(out + out_len + 10, (uint16_t)m->out.cols[j].typlen);
		out_len += FIELD_FIXED;
	}
	return out_len;
}

int shape_format(const struct shape_formats *f, int i)
{
	if (f->n == 0)
		return 0;
	if (f->n == 1)
		return f->fmt[0];
	if (i >= f->n)
		return 0;
	return f->n > 64 ? f->more[i] : f->fmt[i];
}

void shape_formats_free(struct shape_formats *f)
{
	free(f->more);
	memset(f, 0, sizeof(*f));
}

static bool formats_set(struct shape_formats *f, int n)
{
	shape_formats_free(f);
	f->n = n;
	if (n > 64 && !(f->more = calloc((size_t)n, 1)))
		return false;
	return true;
}

static void format_put(struct shape_formats *f, int i, int code)
{
	if (f->n > 64)
		f->more[i] = (uint8_t)code;
	else
		f->fmt[i] = (uint8_t)code;
}

/* Text of an integer in range of a 'bytes'-wide signed integer? */
static bool text_fits(const uint8_t *p, int32_t n, int bytes)
{
	long long v = 0, max = bytes == 4 ? 2147483647LL : 32767LL;
	bool neg = false;
	int i = 0;

	if (n > 0 && p[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i >= n)
		return false;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
		if (v > max + 1)
			return false;
	}
	return neg ? v <= max + 1 : v <= max;
}

uint32_t shape_datarow_max(const struct shape_map *m, uint32_t len)
{
	return len + 6u * (uint32_t)m->n_out + 2;
}

enum shape_row shape_rewrite_datarow(const struct shape_map *m, const struct shape_formats *f,
				     const uint8_t *body, uint32_t len, uint8_t *out, uint32_t *new_len,
				     const char **col)
{
	uint32_t *start, off = 2, out_len = 2;
	enum shape_row rc = SHAPE_ROW_INVALID;

	*col = NULL;
	if (len < 2 || get_u16(body) != m->n_in)
		return SHAPE_ROW_INVALID;
	start = calloc((size_t)m->n_in + 1, sizeof(*start));
	if (!start)
		return SHAPE_ROW_INVALID;
	for (int k = 0; k < m->n_in; k++) {
		int32_t n;

		if (len - off < 4)
			goto done;
		start[k] = off;
		n = (int32_t)pgwire_get_u32(body + off);
		off += 4;
		if (n < -1 || (n > 0 && (uint32_t)n > len - off))
			goto done;
		if (n > 0)
			off += (uint32_t)n;
	}
	if (off != len)
		goto done;
	put_u16(out, (uint16_t)m->n_out);
	for (int j = 0; j < m->n_out; j++) {
		int k = m->src[j], bytes = m->narrow[j];
		const uint8_t *in;
		int32_t n;
		int64_t v;

		if (k < 0) {
			pgwire_put_u32(out + out_len, (uint32_t)-1); /* a column dropped since: NULL */
			out_len += 4;
			continue;
		}
		in = body + start[k];
		n = (int32_t)pgwire_get_u32(in);

		if (n < 0 || bytes == 0) {
			uint32_t whole = 4 + (n > 0 ? (uint32_t)n : 0);

			memcpy(out + out_len, in, whole);
			out_len += whole;
			continue;
		}
		if (shape_format(f, k) != 1) {
			/* Text: the same digits in any integer type; only the range can differ. */
			if (bytes != 8 && !text_fits(in + 4, n, bytes)) {
				*col = m->out.cols[j].name;
				rc = SHAPE_ROW_RANGE;
				goto done;
			}
			memcpy(out + out_len, in, 4 + (uint32_t)n);
			out_len += 4 + (uint32_t)n;
			continue;
		}
		/* Binary: int8 is 8 bytes; what is widened comes as int4 (4) or int2 (2). */
		if (bytes != 8 && n == 8)
			v = (int64_t)((uint64_t)pgwire_get_u32(in + 4) << 32 | pgwire_get_u32(in + 8));
		else if (bytes == 8 && n == 4)
			v = (int32_t)pgwire_get_u32(in + 4);
		else if (bytes == 8 && n == 2)
			v = (int16_t)get_u16(in + 4);
		else
			goto done;
		if ((bytes == 4 && (v < INT32_MIN || v > INT32_MAX)) ||
		    (bytes == 2 && (v < INT16_MIN || v > INT16_MAX))) {
			*col = m->out.cols[j].name;
			rc = SHAPE_ROW_RANGE;
			goto done;
		}
		pgwire_put_u32(out + out_len, (uint32_t)bytes);
		out_len += 4;
		if (bytes == 8) {
			pgwire_put_u32(out + out_len, (uint32_t)((uint64_t)v >> 32));
			pgwire_put_u32(out + out_len + 4, (uint32_t)v);
		} else if (bytes == 4) {
			pgwire_put_u32(out + out_len, (uint32_t)(int32_t)v);
		} else {
			put_u16(out + out_len, (uint16_t)(int16_t)v);
		}
		out_len += (uint32_t)bytes;
	}
	*new_len = out_len;
	rc = SHAPE_ROW_OK;
done:
	free(start);
	return rc;
}

/* Offset of Bind's result format count, or 0 if the body cannot be read. */
static uint32_t result_formats_at(const uint8_t *body, uint32_t len)
{
	const uint8_t *p = memchr(body, 0, len), *q;
	uint32_t off;
	int n;

	if (!p || !(q = memchr(p + 1, 0, len - (uint32_t)(p + 1 - body))))
		return 0;
	off = (uint32_t)(q + 1 - body);
	if (len - off < 2)
		return 0;
	n = get_u16(body + off);
	off += 2;
	if ((uint32_t)n * 2 > len - off)
		return 0;
	off += (uint32_t)n * 2;
	if (len - off < 2)
		return 0;
	n = get_u16(body + off);
	off += 2;
	for (int i = 0; i < n; i++) {
		int32_t v;

		if (len - off < 4)
			return 0;
		v = (int32_t)pgwire_get_u32(body + off);
		off += 4;
		if (v < -1 || (v > 0 && (uint32_t)v > len - off))
			return 0;
		if (v > 0)
			off += (uint32_t)v;
	}
	if (len - off < 2)
		return 0;
	n = get_u16(body + off);
	if ((uint32_t)n * 2 != len - off - 2)
		return 0;
	return off;
}

bool shape_bind_formats(const uint8_t *body, uint32_t len, struct shape_formats *f)
{
	uint32_t at = result_formats_at(body, len);
	int n;

	if (!at)
		return false;
	n = get_u16(body + at);
	if (!formats_set(f, n))
		return false;
	for (int i = 0; i < n; i++)
		format_put(f, i, get_u16(body + at + 2 + 2 * (uint32_t)i) == 1);
	return true;
}

uint8_t *shape_rewrite_bind(const struct shape_map *m, const uint8_t *body, uint32_t len, uint32_t *out_len,
			    struct shape_formats *f, bool *bad)
{
	uint32_t at = result_formats_at(body, len);
	int n;
	uint8_t *out;

	*bad = false;
	if (!at) {
		*bad = true;
		return NULL;
	}
	n = get_u16(body + at);
	if (n <= 1 || n != m->n_out) {
		/* All text, one code for all, or not per shown column (the server will say so). */
		if (!shape_bind_formats(body, len, f))
			*bad = true;
		return NULL;
	}
	if (!formats_set(f, m->n_in)) {
		*bad = true;
		return NULL;
	}
	*out_len = at + 2 + 2 * (uint32_t)m->n_in;
	out = malloc(*out_len);
	if (!out) {
		*bad = true;
		return NULL;
	}
	memcpy(out, body, at);
	put_u16(out + at, (uint16_t)m->n_in);
	for (int k = 0; k < m->n_in; k++)
		put_u16(out + at + 2 + 2 * (uint32_t)k, 0);
	for (int j = 0; j < m->n_out; j++) {
		uint16_t code = get_u16(body + at + 2 + 2 * (uint32_t)j);

		if (m->src[j] < 0)
			continue; /* presented as NULL: no server column */
		put_u16(out + at + 2 + 2 * (uint32_t)m->src[j], code);
		format_put(f, m->src[j], code == 1);
	}
	return out;
}
