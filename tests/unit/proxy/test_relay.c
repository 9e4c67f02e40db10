/*
 * Unit tests for proxy/relay.c: framing over one direction's buffer (header
 * and body tracking, every way a stream can be cut into reads, oversized
 * tracked messages, length limits, STOP and ERROR from the handler, in-place
 * shortening), the buffer bookkeeping (room, fit, consume, append, drop) and
 * the buffer pool. A small pump() here reads, scans and writes the way
 * proxy/session.c does, so a test compares what the peer would receive.
 * Buffers are malloc'd to their exact capacity, so the Asan build catches a
 * read or write past 'cap'. Sockets belong to the integration tests.
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
#include "relay.h"

#define PLUS "SCRAM-SHA-256-PLUS"
#define SCRAM "SCRAM-SHA-256"
#define MAX_LEN (1u << 30) /* the largest limits.max_message_bytes config accepts */

/* ---- byte strings --------------------------------------------------------- */

/* A growable byte string: a stream under construction, or what a peer received. */
struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static void bytes_put(struct bytes *s, const void *p, size_t n)
{
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 256;

		while (cap < s->len + n)
			cap *= 2;
		s->p = realloc(s->p, cap);
		assert_non_null(s->p);
		s->cap = cap;
	}
	if (n)
		memcpy(s->p + s->len, p, n);
	s->len += n;
}

static void bytes_free(struct bytes *s)
{
	free(s->p);
	memset(s, 0, sizeof(*s));
}

/* Appends a typed message: 'type', its length (4 + n), then the n body bytes. */
static void put_msg(struct bytes *s, uint8_t type, const void *body, size_t n)
{
	uint8_t h[PGWIRE_HEADER_LEN];

	h[0] = type;
	pgwire_put_u32(h + 1, (uint32_t)(n + 4));
	bytes_put(s, h, sizeof(h));
	bytes_put(s, body, n);
}

/* Appends a message whose body is the NUL-terminated strings given, ending with NULL. */
static void put_strs(struct bytes *s, int type, ...)
{
	struct bytes body = { 0 };
	const char *str;
	va_list ap;

	va_start(ap, type);
	while ((str = va_arg(ap, const char *)) != NULL)
		bytes_put(&body, str, strlen(str) + 1);
	va_end(ap);
	put_msg(s, (uint8_t)type, body.p, body.len);
	bytes_free(&body);
}

/* An AuthenticationSASL body offering the given mechanisms (NULL-terminated list). */
static void sasl_body(struct bytes *b, const char *const *mechs)
{
	uint8_t code[4];

	pgwire_put_u32(code, PGWIRE_AUTH_SASL);
	bytes_put(b, code, 4);
	for (; *mechs; mechs++)
		bytes_put(b, *mechs, strlen(*mechs) + 1);
	bytes_put(b, "", 1);
}

/* A message of 'type' whose length field says 'len' but with only 'body_n' body bytes (a pattern). */
static void put_claimed(struct bytes *s, uint8_t type, uint32_t len, size_t body_n)
{
	uint8_t h[PGWIRE_HEADER_LEN];

	h[0] = type;
	pgwire_put_u32(h + 1, len);
	bytes_put(s, h, sizeof(h));
	for (size_t i = 0; i < body_n; i++) {
		uint8_t c = (uint8_t)('a' + i % 26);

		bytes_put(s, &c, 1);
	}
}

/* ---- the handler ---------------------------------------------------------- */

#define MAX_CALLS 64
#define BODY_KEEP 256

/* One handler call as it was seen. */
struct call {
	uint8_t type;
	uint32_t avail, len;
	uint8_t body[BODY_KEEP]; /* the first min(avail, BODY_KEEP) body bytes */
};

/* The handler's record and its scripted answers. */
struct seen {
	struct call calls[MAX_CALLS];
	int n;
	int stop_at;     /* call number (1-based) answered with STOP; 0: none */
	int error_at;    /* call number answered with ERROR; 0: none */
	bool strip_plus; /* 'R' shown whole: remove SCRAM-SHA-256-PLUS, as the session does */
	uint32_t cut;    /* lower *new_len by this much on every message (whole or not) */
};

static enum relay_msg on_msg(void *ctx, uint8_t type, uint8_t *body, uint32_t avail, uint32_t len,
			     uint32_t *new_len)
{
	struct seen *s = ctx;
	struct call *c;

	assert_true(s->n < MAX_CALLS);
	assert_int_equal(*new_len, len); /* the relay offers the body's own length */
	assert_true(avail <= len);
	c = &s->calls[s->n++];
	c->type = type;
	c->avail = avail;
	c->len = len;
	memcpy(c->body, body, avail < BODY_KEEP ? avail : BODY_KEEP);
	if (s->n == s->error_at)
		return RELAY_MSG_ERROR;
	if (s->n == s->stop_at)
		return RELAY_MSG_STOP;
	if (type == 'R' && s->strip_plus && avail == len)
		*new_len = (uint32_t)pgwire_sasl_remove_mechanism(body, len, PLUS);
	if (s->cut && s->cut <= len)
		*new_len = len - s->cut;
	return RELAY_MSG_PASS;
}

/* Both directions' tracking in one set: header-only, whole-body and untracked types. */
static void rules_init(struct relay_rules *r, uint32_t max_len)
{
	memset(r, 0, sizeof(*r));
	r->max_len = max_len;
	r->on_msg = on_msg;
	r->track['Q'] = r->track['S'] = r->track['X'] = RELAY_TRACK_HEADER;
	r->track['P'] = r->track['C'] = r->track['R'] = RELAY_TRACK_BODY;
	r->track['E'] = r->track['Z'] = RELAY_TRACK_BODY;
}

/* ---- the buffer ----------------------------------------------------------- */

static void check_order(const struct relay_buf *b)
{
	assert_true(b->head <= b->scan);
	assert_true(b->scan <= b->tail);
	assert_true(b->tail <= b->cap);
}

/* A buffer of exactly 'cap' malloc'd bytes (realloc-able, as relay_fit needs). */
static void buf_init(struct relay_buf *b, uint32_t cap)
{
	memset(b, 0, sizeof(*b));
	b->data = malloc(cap);
	assert_non_null(b->data);
	b->cap = cap;
}

static void buf_free(struct relay_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Copies bytes after 'tail' as a read would. */
static void buf_read(struct relay_buf *b, const void *p, uint32_t n)
{
	assert_true(b->cap - b->tail >= n);
	memcpy(b->data + b->tail, p, n);
	b->tail += n;
}

/* Writes up to 'max' scanned bytes to 'out' as the session's flush would. */
static void buf_write(struct relay_buf *b, struct bytes *out, uint32_t max)
{
	uint32_t n = relay_pending(b) < max ? relay_pending(b) : max;

	bytes_put(out, b->data + b->head, n);
	relay_consume(b, n);
	check_order(b);
}

/* Where messages start and end in a stream, to check where scanning stops. */
#define MAX_MSGS 64
struct layout {
	size_t start[MAX_MSGS], end[MAX_MSGS];
	bool whole[MAX_MSGS]; /* body-tracked: never forwarded in part */
	int n;
	size_t len;
};

static void layout_of(struct layout *l, const struct bytes *s, const struct relay_rules *r)
{
	size_t off = 0;

	memset(l, 0, sizeof(*l));
	l->len = s->len;
	while (off < s->len) {
		uint32_t len = pgwire_get_u32(s->p + off + 1);

		assert_true(l->n < MAX_MSGS);
		l->start[l->n] = off;
		l->end[l->n] = off + len + 1;
		l->whole[l->n] = r->track[s->p[off]] == RELAY_TRACK_BODY;
		l->n++;
		off += len + 1;
	}
	assert_int_equal(off, s->len);
}

/*
 * 'off' is how far into the stream scanning went. It must be a message start
 * (with no body left to stream), or inside an untracked body after its whole
 * header, with msg_left the rest of that body.
 */
static void check_scan_point(const struct layout *l, size_t off, uint32_t msg_left)
{
	if (off == l->len) {
		assert_int_equal(msg_left, 0);
		return;
	}
	for (int i = 0; i < l->n; i++) {
		if (off < l->start[i] || off >= l->end[i])
			continue;
		if (off == l->start[i]) {
			assert_int_equal(msg_left, 0);
		} else {
			assert_true(off >= l->start[i] + PGWIRE_HEADER_LEN); /* never inside a header */
			assert_false(l->whole[i]);
			assert_int_equal(msg_left, l->end[i] - off);
		}
		return;
	}
	fail_msg("scan point %zu outside the stream", off);
}

/*
 * Reads 'n' bytes of 'in' into 'b' at most 'chunk' at a time, scanning after
 * each read (again after a STOP) and writing everything scanned to 'out',
 * like the session's pump with a peer that always accepts. With 'l', checks
 * each scan point against the stream's layout (only for streams the handler
 * does not shorten). Returns the last scan result, '*why' set as relay_scan
 * set it; stops reading at RELAY_ERROR.
 */
static enum relay_result pump(struct relay_buf *b, const struct relay_rules *r, struct seen *seen,
			      const uint8_t *in, size_t n, size_t chunk, struct bytes *out,
			      const struct layout *l, const char **why)
{
	enum relay_result res = RELAY_OK;
	size_t pos = 0;

	*why = NULL;
	while (pos < n) {
		uint32_t room, k;

		assert_true(relay_fit(b));
		check_order(b);
		assert_true(b->need == 0 || b->cap - b->scan >= b->need);
		room = relay_room(b);
		check_order(b);
		assert_true(room > 0); /* everything scanned was written: only fit can make room */
		k = (uint32_t)(n - pos < chunk ? n - pos : chunk);
		if (k > room)
			k = room;
		buf_read(b, in + pos, k);
		pos += k;
		do {
			res = relay_scan(b, r, seen, why);
			check_order(b);
		} while (res == RELAY_STOPPED);
		if (res != RELAY_ERROR && l)
			check_scan_point(l, out->len + relay_pending(b), b->msg_left);
		buf_write(b, out, UINT32_MAX);
		if (res == RELAY_ERROR)
			return res;
		assert_null(*why);
	}
	return res;
}

static void assert_same_calls(const struct seen *a, const struct seen *b)
{
	assert_int_equal(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		const struct call *x = &a->calls[i], *y = &b->calls[i];

		assert_int_equal(x->type, y->type);
		assert_int_equal(x->len, y->len);
		assert_int_equal(x->avail, y->avail);
		assert_memory_equal(x->body, y->body, x->avail < BODY_KEEP ? x->avail : BODY_KEEP);
	}
}

static void assert_bytes_equal(const struct bytes *a, const uint8_t *p, size_t n)
{
	assert_int_equal(a->len, n);
	if (n)
		assert_memory_equal(a->p, p, n);
}

/* A client→server and server→client mix: every tracking kind, empty bodies, a 300-byte DataRow. */
static void mixed_stream(struct bytes *s)
{
	uint8_t row[300];

	for (size_t i = 0; i < sizeof(row); i++)
		row[i] = (uint8_t)i;
	put_strs(s, 'Q', "SELECT 1", NULL);
	put_strs(s, 'P', "s1", "SELECT $1::int", NULL);
	put_msg(s, 'B', "\0s1\0\0\0\0\0\0\0", 11);
	put_msg(s, 'D', row, sizeof(row));
	put_msg(s, 'E', "", 0);
	put_strs(s, 'C', "Ss1", NULL);
	put_msg(s, 'S', "", 0);
	put_strs(s, 'E', "SERROR", "C23505", "Mduplicate key", "", NULL);
	put_msg(s, 'Z', "I", 1);
	put_msg(s, 'X', "", 0);
}

/*
 * The mixed stream, its layout, and the handler calls of one pass over it
 * read whole: the reference the read-size and split-point tests compare with.
 */
static void reference_pass(struct relay_rules *r, struct bytes *in, struct layout *l, struct seen *ref)
{
	struct relay_buf b;
	struct bytes out = { 0 };
	const char *why;

	rules_init(r, MAX_LEN);
	mixed_stream(in);
	layout_of(l, in, r);
	buf_init(&b, RELAY_BUF_SIZE);
	assert_int_equal(pump(&b, r, ref, in->p, in->len, in->len, &out, l, &why), RELAY_OK);
	assert_bytes_equal(&out, in->p, in->len);
	assert_int_equal(ref->n, 8); /* Q P E C S E Z X */
	buf_free(&b);
	bytes_free(&out);
}

/* ---- scanning ------------------------------------------------------------- */

static void test_header_tracking_shows_no_body(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 }, out = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	put_strs(&in, 'Q', "SELECT 1", NULL);
	put_msg(&in, 'B', "\0\0\0\0\0\0\0", 7); /* untracked */
	put_msg(&in, 'S', "", 0);
	buf_init(&b, 256);
	assert_int_equal(pump(&b, &r, &seen, in.p, in.len, in.len, &out, NULL, &why), RELAY_OK);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.calls[0].type, 'Q');
	assert_int_equal(seen.calls[0].avail, 0);
	assert_int_equal(seen.calls[0].len, 9);
	assert_int_equal(seen.calls[1].type, 'S');
	assert_int_equal(seen.calls[1].avail, 0);
	assert_int_equal(seen.calls[1].len, 0);
	assert_bytes_equal(&out, in.p, in.len);
	assert_true(relay_empty(&b));
	assert_true(relay_at_boundary(&b));
	buf_free(&b);
	bytes_free(&in);
	bytes_free(&out);
}

/* A header-tracked message is announced as soon as its header is in, and its body streams. */
static void test_header_tracking_announces_before_body(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	put_claimed(&in, 'Q', 4 + 100, 100);
	buf_init(&b, 256);
	buf_read(&b, in.p, PGWIRE_HEADER_LEN + 10);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_null(why);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.calls[0].len, 100);
	assert_int_equal(relay_pending(&b), PGWIRE_HEADER_LEN + 10);
	assert_int_equal(b.msg_left, 90);
	assert_false(relay_at_boundary(&b));
	buf_read(&b, in.p + PGWIRE_HEADER_LEN + 10, 90);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(seen.n, 1); /* once, at the header */
	assert_int_equal(relay_pending(&b), in.len);
	assert_true(relay_at_boundary(&b));
	buf_free(&b);
	bytes_free(&in);
}

static void test_body_tracking_waits_for_whole_body(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	put_strs(&in, 'P', "s1", "SELECT * FROM orders WHERE id = $1", NULL);
	buf_init(&b, 256);
	buf_read(&b, in.p, 3);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(b.need, PGWIRE_HEADER_LEN); /* a header first */
	assert_int_equal(relay_pending(&b), 0);
	buf_read(&b, in.p + 3, 10);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(seen.n, 0);
	assert_int_equal(b.need, in.len);       /* then the whole message */
	assert_int_equal(relay_pending(&b), 0); /* nothing of it forwarded yet */
	buf_read(&b, in.p + 13, (uint32_t)in.len - 14);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(seen.n, 0);
	assert_int_equal(relay_pending(&b), 0);
	buf_read(&b, in.p + in.len - 1, 1);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.calls[0].avail, in.len - PGWIRE_HEADER_LEN);
	assert_int_equal(seen.calls[0].len, in.len - PGWIRE_HEADER_LEN);
	assert_memory_equal(seen.calls[0].body, in.p + PGWIRE_HEADER_LEN, in.len - PGWIRE_HEADER_LEN);
	assert_int_equal(relay_pending(&b), in.len);
	assert_true(relay_at_boundary(&b));
	buf_free(&b);
	bytes_free(&in);
}

/* An untracked body streams as it arrives: one header check, no handler. */
static void test_untracked_body_streams(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	put_claimed(&in, 'D', 4 + 100000, 50);
	buf_init(&b, 256);
	buf_read(&b, in.p, (uint32_t)in.len);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(seen.n, 0);
	assert_int_equal(relay_pending(&b), in.len);
	assert_int_equal(b.msg_left, 100000 - 50);
	assert_int_equal(b.need, 0);
	buf_free(&b);
	bytes_free(&in);
}

/* Every read size from 1 byte to the whole stream: same handler calls, same bytes out. */
static void test_every_read_size_same_messages(void **state)
{
	struct relay_rules r;
	struct bytes in = { 0 };
	struct seen ref = { 0 };
	struct layout l;
	const char *why;

	reference_pass(&r, &in, &l, &ref);
	for (size_t chunk = 1; chunk <= in.len; chunk++) {
		struct relay_buf b;
		struct seen seen = { 0 };
		struct bytes out = { 0 };

		buf_init(&b, RELAY_BUF_SIZE);
		assert_int_equal(pump(&b, &r, &seen, in.p, in.len, chunk, &out, &l, &why), RELAY_OK);
		assert_same_calls(&seen, &ref);
		assert_bytes_equal(&out, in.p, in.len);
		assert_true(relay_empty(&b));
		assert_true(relay_at_boundary(&b));
		buf_free(&b);
		bytes_free(&out);
	}
	bytes_free(&in);
}

/* Every point the stream can be cut in two, in a buffer barely larger than its largest message. */
static void test_every_split_point_small_buffer(void **state)
{
	struct relay_rules r;
	struct bytes in = { 0 };
	struct seen ref = { 0 };
	struct layout l;
	const char *why;

	reference_pass(&r, &in, &l, &ref);
	for (size_t cut = 0; cut <= in.len; cut++) {
		struct relay_buf b;
		struct seen seen = { 0 };
		struct bytes out = { 0 };

		buf_init(&b, 64);
		assert_int_equal(pump(&b, &r, &seen, in.p, cut, cut ? cut : 1, &out, &l, &why), RELAY_OK);
		assert_int_equal(pump(&b, &r, &seen, in.p + cut, in.len - cut, in.len, &out, &l, &why),
				 RELAY_OK);
		assert_same_calls(&seen, &ref);
		assert_bytes_equal(&out, in.p, in.len);
		buf_free(&b);
		bytes_free(&out);
	}
	bytes_free(&in);
}

/* ---- oversized tracked messages ------------------------------------------ */

/*
 * A tracked message longer than RELAY_TRACK_MAX is not held: the handler sees
 * the prefix that has arrived, once, and the rest streams through a buffer
 * that does not grow. What follows is framed as usual.
 */
static void test_oversized_tracked_message_prefix_once_then_streams(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 }, out = { 0 };
	const uint32_t len = RELAY_TRACK_MAX; /* type byte + len: one more than RELAY_TRACK_MAX */
	const char *why;

	rules_init(&r, MAX_LEN);
	put_claimed(&in, 'P', len, len - 4);
	put_strs(&in, 'C', "Ss1", NULL);
	put_msg(&in, 'S', "", 0);
	buf_init(&b, RELAY_BUF_SIZE);
	assert_int_equal(pump(&b, &r, &seen, in.p, in.len, 4096, &out, NULL, &why), RELAY_OK);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.calls[0].type, 'P');
	assert_int_equal(seen.calls[0].len, len - 4);
	assert_true(seen.calls[0].avail < seen.calls[0].len);
	assert_memory_equal(seen.calls[0].body, in.p + PGWIRE_HEADER_LEN,
			    seen.calls[0].avail < BODY_KEEP ? seen.calls[0].avail : BODY_KEEP);
	assert_int_equal(seen.calls[1].type, 'C');
	assert_int_equal(seen.calls[1].avail, 4);
	assert_memory_equal(seen.calls[1].body, "Ss1", 4);
	assert_int_equal(seen.calls[2].type, 'S');
	assert_bytes_equal(&out, in.p, in.len);
	assert_int_equal(b.cap, RELAY_BUF_SIZE);
	buf_free(&b);
	bytes_free(&in);
	bytes_free(&out);
}

/* The largest message held whole is exactly RELAY_TRACK_MAX bytes, type byte included. */
static void test_tracked_message_of_track_max_held_whole(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 }, out = { 0 };
	const uint32_t len = RELAY_TRACK_MAX - 1;
	const char *why;

	rules_init(&r, MAX_LEN);
	put_claimed(&in, 'E', len, len - 4);
	put_msg(&in, 'Z', "I", 1);
	buf_init(&b, RELAY_BUF_SIZE);
	assert_int_equal(pump(&b, &r, &seen, in.p, in.len, 4096, &out, NULL, &why), RELAY_OK);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.calls[0].len, len - 4);
	assert_int_equal(seen.calls[0].avail, len - 4);
	assert_true(b.cap >= RELAY_TRACK_MAX);
	assert_int_equal(seen.calls[1].type, 'Z');
	assert_bytes_equal(&out, in.p, in.len);
	buf_free(&b);
	bytes_free(&in);
	bytes_free(&out);
}

/* Only a whole body can be shortened: a lower *new_len for a prefix or a header is ignored. */
static void test_shortening_needs_a_whole_body(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { .cut = 2 };
	struct bytes in = { 0 }, out = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	put_claimed(&in, 'R', RELAY_TRACK_MAX, RELAY_TRACK_MAX - 4);
	put_strs(&in, 'Q', "SELECT 1", NULL);
	buf_init(&b, RELAY_BUF_SIZE);
	assert_int_equal(pump(&b, &r, &seen, in.p, in.len, 8192, &out, NULL, &why), RELAY_OK);
	assert_int_equal(seen.n, 2);
	assert_bytes_equal(&out, in.p, in.len);
	buf_free(&b);
	bytes_free(&in);
	bytes_free(&out);
}

/* ---- limits --------------------------------------------------------------- */

static void test_max_len_is_inclusive(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 }, out = { 0 };
	const char *why;

	rules_init(&r, 100);
	put_claimed(&in, 'D', 100, 96); /* untracked, at the limit */
	put_claimed(&in, 'P', 100, 96); /* tracked, at the limit */
	buf_init(&b, 256);
	assert_int_equal(pump(&b, &r, &seen, in.p, in.len, in.len, &out, NULL, &why), RELAY_OK);
	assert_int_equal(seen.n, 1);
	assert_bytes_equal(&out, in.p, in.len);
	buf_free(&b);
	bytes_free(&in);
	bytes_free(&out);
}

/* A header over the limit is an error wherever it is, tracked or not; what came before stays. */
static void test_max_len_exceeded(void **state)
{
	static const uint8_t types[] = { 'D', 'Q', 'P' }; /* untracked, header, body */

	for (size_t t = 0; t < sizeof(types); t++) {
		struct relay_buf b;
		struct relay_rules r;
		struct seen seen = { 0 };
		struct bytes in = { 0 };
		size_t first;
		const char *why = "unset";

		rules_init(&r, 100);
		put_msg(&in, 'S', "", 0);
		first = in.len;
		put_claimed(&in, types[t], 101, 20);
		buf_init(&b, 256);
		buf_read(&b, in.p, (uint32_t)in.len);
		assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_ERROR);
		assert_non_null(why);
		assert_string_equal(why, "message exceeds limits.max_message_bytes");
		assert_int_equal(b.scan, first); /* the message before still goes */
		assert_int_equal(seen.n, 1);     /* the bad one is never shown */
		check_order(&b);
		buf_free(&b);
		bytes_free(&in);
	}
}

/* The length counts itself: anything below 4 is malformed, even with a limit below 4. */
static void test_length_below_four(void **state)
{
	static const uint32_t lens[] = { 0, 1, 3 };
	static const uint32_t limits[] = { 2, 100, MAX_LEN };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (size_t j = 0; j < sizeof(limits) / sizeof(limits[0]); j++) {
			struct relay_buf b;
			struct relay_rules r;
			struct seen seen = { 0 };
			struct bytes in = { 0 };
			const char *why = NULL;

			rules_init(&r, limits[j]);
			put_claimed(&in, 'P', lens[i], 8);
			buf_init(&b, 64);
			buf_read(&b, in.p, (uint32_t)in.len);
			assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_ERROR);
			assert_non_null(why);
			assert_string_equal(why, "invalid message length");
			assert_int_equal(b.scan, 0);
			assert_int_equal(seen.n, 0);
			buf_free(&b);
			bytes_free(&in);
		}
	}
}

/* A valid length over a limit below 4 is over the limit, not malformed. */
static void test_limit_below_four(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	const char *why = NULL;

	rules_init(&r, 2);
	buf_init(&b, 8);
	buf_read(&b, "S\0\0\0\4", 5);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_ERROR);
	assert_non_null(why);
	assert_string_equal(why, "message exceeds limits.max_message_bytes");
	buf_free(&b);
}

/* The bare minimum: a length of 4 is an empty body, for every tracking kind. */
static void test_length_four_is_empty_body(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 };
	const char *why;

	rules_init(&r, 4);
	put_msg(&in, 'D', "", 0);
	put_msg(&in, 'S', "", 0);
	put_msg(&in, 'Z', "", 0);
	buf_init(&b, 64);
	buf_read(&b, in.p, (uint32_t)in.len);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.calls[1].avail, 0);
	assert_int_equal(seen.calls[1].len, 0);
	assert_int_equal(relay_pending(&b), in.len);
	buf_free(&b);
	bytes_free(&in);
}

/* ---- STOP and ERROR ------------------------------------------------------- */

/* STOP leaves 'scan' at the message's start; the next call shows the same message again. */
static void test_stop_resumes_at_the_message(void **state)
{
	for (int stop_at = 1; stop_at <= 3; stop_at++) { /* Q (header), P (body), Z (body) */
		struct relay_buf b;
		struct relay_rules r;
		struct seen seen = { .stop_at = stop_at };
		struct bytes in = { 0 };
		size_t starts[3];
		const char *why = "unset";

		rules_init(&r, MAX_LEN);
		starts[0] = in.len;
		put_strs(&in, 'Q', "SELECT 1", NULL);
		starts[1] = in.len;
		put_strs(&in, 'P', "s1", "SELECT 2", NULL);
		starts[2] = in.len;
		put_msg(&in, 'Z', "I", 1);
		buf_init(&b, 256);
		buf_read(&b, in.p, (uint32_t)in.len);
		assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_STOPPED);
		assert_null(why);
		assert_int_equal(b.scan, starts[stop_at - 1]);
		assert_int_equal(relay_pending(&b), starts[stop_at - 1]);
		assert_true(relay_at_boundary(&b));
		assert_int_equal(seen.n, stop_at);
		assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
		assert_null(why);
		assert_int_equal(seen.n, 4);
		assert_int_equal(seen.calls[stop_at].type, seen.calls[stop_at - 1].type);
		assert_int_equal(seen.calls[stop_at].len, seen.calls[stop_at - 1].len);
		assert_int_equal(seen.calls[stop_at].avail, seen.calls[stop_at - 1].avail);
		assert_int_equal(relay_pending(&b), in.len);
		buf_free(&b);
		bytes_free(&in);
	}
}

static void test_handler_error_is_protocol_violation(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { .error_at = 2 };
	struct bytes in = { 0 };
	size_t second;
	const char *why = NULL;

	rules_init(&r, MAX_LEN);
	put_strs(&in, 'Q', "SELECT 1", NULL);
	second = in.len;
	put_msg(&in, 'Z', "", 0);
	put_msg(&in, 'Z', "I", 1);
	buf_init(&b, 256);
	buf_read(&b, in.p, (uint32_t)in.len);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_ERROR);
	assert_non_null(why);
	assert_string_equal(why, "protocol violation");
	assert_int_equal(b.scan, second);
	assert_int_equal(seen.n, 2);
	buf_free(&b);
	bytes_free(&in);
}

/* ---- shortening in place -------------------------------------------------- */

/* Server→client login with SCRAM-SHA-256-PLUS offered, then more messages, the last partial. */
static void sasl_login(struct bytes *in, struct bytes *want)
{
	static const char *const both[] = { PLUS, SCRAM, NULL }, *const one[] = { SCRAM, NULL };
	struct bytes body = { 0 }, shorter = { 0 };

	sasl_body(&body, both);
	sasl_body(&shorter, one);
	put_msg(in, 'R', body.p, body.len);
	put_msg(want, 'R', shorter.p, shorter.len);
	bytes_free(&body);
	bytes_free(&shorter);
	put_strs(in, 'E', "SFATAL", "C28P01", "Mpassword authentication failed", "", NULL);
	put_strs(want, 'E', "SFATAL", "C28P01", "Mpassword authentication failed", "", NULL);
	put_strs(in, 'N', "SNOTICE", "Mhello", "", NULL);
	put_strs(want, 'N', "SNOTICE", "Mhello", "", NULL);
	put_msg(in, 'Z', "I", 1);
	put_msg(want, 'Z', "I", 1);
}

static void test_sasl_plus_removed_in_place(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { .strip_plus = true };
	struct bytes in = { 0 }, want = { 0 }, out = { 0 };
	uint32_t tail;
	const char *why;

	rules_init(&r, MAX_LEN);
	sasl_login(&in, &want);
	buf_init(&b, (uint32_t)in.len + 3); /* full: Asan sees a move past 'tail' */
	buf_read(&b, in.p, (uint32_t)in.len);
	buf_read(&b, "D\0\0", 3); /* the start of a next message */
	tail = b.tail;
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	check_order(&b);
	assert_int_equal(b.tail, tail - (strlen(PLUS) + 1));
	assert_int_equal(b.scan, want.len);
	assert_memory_equal(b.data + b.scan, "D\0\0", 3); /* the partial message moved intact */
	assert_int_equal(seen.n, 3);                      /* R, E, Z */
	assert_int_equal(seen.calls[1].type, 'E');
	assert_int_equal(seen.calls[2].type, 'Z');
	buf_write(&b, &out, UINT32_MAX);
	assert_bytes_equal(&out, want.p, want.len);
	buf_free(&b);
	bytes_free(&in);
	bytes_free(&want);
	bytes_free(&out);
}

/* The shortened stream is the same whatever the read size (the edit moves unscanned bytes). */
static void test_sasl_plus_removed_every_read_size(void **state)
{
	struct relay_rules r;
	struct bytes in = { 0 }, want = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	sasl_login(&in, &want);
	for (size_t chunk = 1; chunk <= in.len; chunk++) {
		struct relay_buf b;
		struct seen seen = { .strip_plus = true };
		struct bytes out = { 0 };

		buf_init(&b, RELAY_BUF_SIZE);
		assert_int_equal(pump(&b, &r, &seen, in.p, in.len, chunk, &out, NULL, &why), RELAY_OK);
		assert_int_equal(seen.n, 3);
		assert_bytes_equal(&out, want.p, want.len);
		buf_free(&b);
		bytes_free(&out);
	}
	bytes_free(&in);
	bytes_free(&want);
}

/* A body shortened to nothing: length 4, and the next message follows at once. */
static void test_shortened_to_empty_body(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { .cut = 3 };
	struct bytes in = { 0 }, out = { 0 };
	static const uint8_t want[] = { 'Z', 0, 0, 0, 4, 'Z', 0, 0, 0, 5, 'I' };
	const char *why;

	rules_init(&r, MAX_LEN);
	put_msg(&in, 'Z', "abc", 3);
	put_msg(&in, 'Z', "Iabc", 4);
	buf_init(&b, 64);
	assert_int_equal(pump(&b, &r, &seen, in.p, in.len, in.len, &out, NULL, &why), RELAY_OK);
	assert_bytes_equal(&out, want, sizeof(want));
	buf_free(&b);
	bytes_free(&in);
	bytes_free(&out);
}

/* ---- room, fit, consume --------------------------------------------------- */

/*
 * A 32-byte buffer holding two 12-byte untracked messages and the first 8
 * bytes of a tracked message 'total' bytes long.
 */
static void two_sent_one_partial(struct relay_buf *b, struct bytes *in, uint32_t total)
{
	struct relay_rules r;
	struct seen seen = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	put_claimed(in, 'D', 11, 7);
	put_claimed(in, 'D', 11, 7);
	put_claimed(in, 'P', total - 1, total - 5);
	buf_init(b, 32);
	buf_read(b, in->p, 32);
	assert_int_equal(relay_scan(b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(b->scan, 24);
	assert_int_equal(b->need, total);
}

static void test_room_compacts_only_a_full_buffer(void **state)
{
	struct relay_buf b;
	struct bytes in = { 0 };

	two_sent_one_partial(&b, &in, 12);
	relay_consume(&b, 10);
	assert_int_equal(relay_room(&b), 10); /* full: sent bytes move out */
	assert_int_equal(b.head, 0);
	assert_int_equal(b.scan, 14);
	assert_int_equal(b.tail, 22);
	assert_memory_equal(b.data, in.p + 10, 22);
	check_order(&b);
	relay_consume(&b, 4);
	assert_int_equal(relay_room(&b), 10); /* not full: nothing moves */
	assert_int_equal(b.head, 4);
	assert_int_equal(b.tail, 22);
	buf_free(&b);
	bytes_free(&in);

	two_sent_one_partial(&b, &in, 12);   /* bytes_free() left 'in' empty */
	assert_int_equal(relay_room(&b), 0); /* full and nothing sent: no room */
	assert_int_equal(b.tail, 32);
	buf_free(&b);
	bytes_free(&in);
}

static void test_fit_without_need_changes_nothing(void **state)
{
	struct relay_buf b;

	buf_init(&b, 16);
	b.head = b.scan = b.tail = 16; /* full, all scanned: the writer's turn */
	b.need = 0;
	assert_true(relay_fit(&b));
	assert_int_equal(b.cap, 16);
	assert_int_equal(b.head, 16);
	buf_free(&b);
}

static void test_fit_compacts_before_growing(void **state)
{
	struct relay_buf b;
	struct bytes in = { 0 };

	two_sent_one_partial(&b, &in, 30);
	relay_consume(&b, 24);
	assert_true(relay_fit(&b));
	assert_int_equal(b.cap, 32);
	assert_int_equal(b.head, 0);
	assert_int_equal(b.scan, 0);
	assert_int_equal(b.tail, 8);
	assert_memory_equal(b.data, in.p + 24, 8);
	assert_true(b.cap - b.scan >= b.need);
	buf_free(&b);
	bytes_free(&in);
}

static void test_fit_grows_for_a_tracked_message_larger_than_the_buffer(void **state)
{
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	two_sent_one_partial(&b, &in, 100);
	relay_consume(&b, 24);
	assert_true(relay_fit(&b));
	assert_int_equal(b.cap, 100);
	assert_int_equal(b.scan, 0);
	assert_memory_equal(b.data, in.p + 24, 8);
	buf_read(&b, in.p + 32, 92);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.calls[0].avail, 95);
	assert_int_equal(relay_pending(&b), 100);
	buf_free(&b);
	bytes_free(&in);
}

/*
 * A buffer full of scanned bytes the peer has not taken yet is back-pressure:
 * RELAY_BUF_SIZE is the high watermark, and relay_fit grows only for a held
 * message larger than the whole buffer (relay.h), not because the scanner,
 * at a boundary with nothing unscanned, waits for the next header. The
 * buffer stays poolable.
 */
static void test_fit_does_not_grow_a_buffer_full_of_unsent_bytes(void **state)
{
	struct relay_pool pool;
	struct relay_buf b = { 0 };
	struct relay_rules r;
	struct seen seen = { 0 };
	uint8_t h[PGWIRE_HEADER_LEN] = { 'D' };
	uint32_t cap, room;
	const char *why;

	rules_init(&r, MAX_LEN);
	relay_pool_init(&pool, 1);
	assert_true(relay_acquire(&b, &pool));
	pgwire_put_u32(h + 1, RELAY_BUF_SIZE - 1); /* one untracked message filling the buffer */
	memset(b.data, 'x', RELAY_BUF_SIZE);
	memcpy(b.data, h, sizeof(h));
	b.tail = RELAY_BUF_SIZE;
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(b.scan, RELAY_BUF_SIZE);
	assert_true(relay_at_boundary(&b));
	assert_true(relay_fit(&b));
	cap = b.cap;
	room = relay_room(&b);
	relay_release(&b, &pool);
	relay_pool_destroy(&pool);
	assert_int_equal(cap, RELAY_BUF_SIZE);
	assert_int_equal(room, 0);
}

/*
 * The same with a tracked message that fits in RELAY_BUF_SIZE once the bytes
 * before it are sent: writing, not growing, makes its room. After the write,
 * fit moves the partial message to the front and the rest of it fits.
 */
static void test_fit_waits_for_the_writer_instead_of_growing(void **state)
{
	struct relay_pool pool;
	struct relay_buf b = { 0 };
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 }, out = { 0 };
	uint32_t cap, room;
	const char *why;

	rules_init(&r, MAX_LEN);
	put_claimed(&in, 'D', 10000 - 1, 10000 - 5);
	put_claimed(&in, 'E', 8000 - 1, 8000 - 5);
	relay_pool_init(&pool, 1);
	assert_true(relay_acquire(&b, &pool));
	buf_read(&b, in.p, RELAY_BUF_SIZE); /* the E is 6384 bytes short of whole */
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(b.scan, 10000);
	assert_int_equal(b.need, 8000);
	assert_true(relay_fit(&b));
	cap = b.cap;
	room = relay_room(&b);
	if (cap != RELAY_BUF_SIZE || room != 0) {
		relay_release(&b, &pool);
		relay_pool_destroy(&pool);
		bytes_free(&in);
		assert_int_equal(cap, RELAY_BUF_SIZE);
		assert_int_equal(room, 0);
	}
	buf_write(&b, &out, UINT32_MAX); /* the peer takes the DataRow */
	assert_true(relay_fit(&b));
	check_order(&b);
	assert_int_equal(b.cap, RELAY_BUF_SIZE);
	assert_int_equal(b.scan, 0);
	assert_int_equal(relay_room(&b), 10000); /* the DataRow's bytes, freed */
	buf_read(&b, in.p + RELAY_BUF_SIZE, (uint32_t)in.len - RELAY_BUF_SIZE);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.calls[0].avail, 8000 - 5);
	buf_write(&b, &out, UINT32_MAX);
	assert_bytes_equal(&out, in.p, in.len);
	assert_int_equal(b.cap, RELAY_BUF_SIZE);
	relay_release(&b, &pool);
	assert_int_equal(pool.n, 1); /* still the pooled size */
	relay_pool_destroy(&pool);
	bytes_free(&in);
	bytes_free(&out);
}

static void test_consume_resets_when_drained(void **state)
{
	struct relay_buf b;
	struct bytes in = { 0 };

	two_sent_one_partial(&b, &in, 12);
	relay_consume(&b, 5);
	assert_int_equal(b.head, 5);
	relay_consume(&b, 19);
	assert_int_equal(b.head, 24); /* all sent, but unscanned bytes remain: no reset */
	assert_int_equal(b.scan, 24);
	assert_int_equal(b.tail, 32);
	buf_free(&b);
	bytes_free(&in);

	buf_init(&b, 16);
	assert_true(relay_append_scanned(&b, (const uint8_t *)"Z\0\0\0\5I", 6));
	relay_consume(&b, 6);
	assert_int_equal(b.head, 0);
	assert_int_equal(b.scan, 0);
	assert_int_equal(b.tail, 0);
	assert_true(relay_empty(&b));
	buf_free(&b);
}

/* ---- append, drop --------------------------------------------------------- */

static void test_append_scanned_only_at_a_boundary(void **state)
{
	static const uint8_t err[] = { 'E', 0, 0, 0, 9, 'S', 'X', 0, 0, 0 };
	struct relay_buf b;
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	/* Unscanned bytes (a partial tracked message) would be split. */
	two_sent_one_partial(&b, &in, 12);
	assert_false(relay_append_scanned(&b, err, sizeof(err)));
	assert_int_equal(b.tail, 32);
	buf_free(&b);
	bytes_free(&in);

	/* Mid pass-through message: the appended bytes would land inside its body. */
	put_claimed(&in, 'D', 4 + 100, 10);
	buf_init(&b, 64);
	buf_read(&b, in.p, (uint32_t)in.len);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_int_equal(b.scan, b.tail);
	assert_false(relay_at_boundary(&b));
	assert_false(relay_append_scanned(&b, err, sizeof(err)));
	assert_int_equal(b.tail, in.len);
	buf_free(&b);
	bytes_free(&in);

	/* At a boundary: appended as scanned, growing the buffer if needed. */
	put_msg(&in, 'Z', "I", 1);
	buf_init(&b, 8);
	buf_read(&b, in.p, (uint32_t)in.len);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	assert_true(relay_append_scanned(&b, err, sizeof(err)));
	check_order(&b);
	assert_int_equal(b.tail, 6 + sizeof(err));
	assert_int_equal(b.scan, b.tail);
	assert_true(b.cap >= b.tail);
	assert_memory_equal(b.data, in.p, 6);
	assert_memory_equal(b.data + 6, err, sizeof(err));
	buf_free(&b);
	bytes_free(&in);
}

static void test_drop_unscanned(void **state)
{
	struct relay_buf b;
	struct bytes in = { 0 };

	two_sent_one_partial(&b, &in, 12);
	relay_drop_unscanned(&b);
	assert_int_equal(b.tail, 24);
	assert_int_equal(relay_pending(&b), 24); /* what was scanned still goes */
	relay_consume(&b, 24);
	assert_true(relay_empty(&b));
	buf_free(&b);
	bytes_free(&in);

	two_sent_one_partial(&b, &in, 12); /* bytes_free() left 'in' empty */
	relay_consume(&b, 24);
	relay_drop_unscanned(&b); /* nothing left: back to the start */
	assert_int_equal(b.head, 0);
	assert_int_equal(b.scan, 0);
	assert_int_equal(b.tail, 0);
	buf_free(&b);
	bytes_free(&in);
}

/* ---- the pool ------------------------------------------------------------- */

static void test_pool_is_bounded(void **state)
{
	struct relay_pool pool;
	struct relay_buf b[3] = { 0 };
	uint8_t *last;

	relay_pool_init(&pool, 2);
	for (int i = 0; i < 3; i++) {
		assert_true(relay_acquire(&b[i], &pool));
		assert_non_null(b[i].data);
		assert_int_equal(b[i].cap, RELAY_BUF_SIZE);
		memset(b[i].data, i, RELAY_BUF_SIZE); /* the whole buffer is ours */
	}
	assert_int_equal(pool.n, 0);
	for (int i = 0; i < 3; i++) {
		relay_release(&b[i], &pool);
		assert_null(b[i].data);
		assert_int_equal(b[i].cap, 0);
	}
	assert_int_equal(pool.n, 2); /* the third was freed (LeakSanitizer checks) */
	last = pool.free[1];
	assert_true(relay_acquire(&b[0], &pool));
	assert_ptr_equal(b[0].data, last);
	assert_int_equal(pool.n, 1);
	assert_true(relay_acquire(&b[0], &pool)); /* has one: unchanged */
	assert_ptr_equal(b[0].data, last);
	assert_int_equal(pool.n, 1);
	relay_release(&b[0], &pool);
	relay_release(&b[0], &pool); /* has none: nothing to do */
	assert_int_equal(pool.n, 2);
	relay_pool_destroy(&pool);
	assert_int_equal(pool.n, 0);
	assert_null(pool.free);

	relay_pool_init(&pool, 0); /* no pooling at all */
	assert_true(relay_acquire(&b[0], &pool));
	relay_release(&b[0], &pool);
	assert_int_equal(pool.n, 0);
	relay_pool_destroy(&pool);
}

/* A buffer grown past RELAY_BUF_SIZE is freed, not pooled: the pool holds only the usual size. */
static void test_pool_frees_grown_buffers(void **state)
{
	struct relay_pool pool;
	struct relay_buf b = { 0 };
	static uint8_t big[RELAY_BUF_SIZE + 1];

	relay_pool_init(&pool, 4);
	assert_true(relay_acquire(&b, &pool));
	assert_true(relay_append_scanned(&b, big, sizeof(big)));
	assert_true(b.cap > RELAY_BUF_SIZE);
	relay_consume(&b, sizeof(big));
	relay_release_if_empty(&b, &pool);
	assert_null(b.data);
	assert_int_equal(pool.n, 0);
	assert_true(relay_acquire(&b, &pool));
	assert_int_equal(b.cap, RELAY_BUF_SIZE);
	relay_release(&b, &pool);
	assert_int_equal(pool.n, 1);
	relay_pool_destroy(&pool);
}

static void test_release_if_empty(void **state)
{
	struct relay_pool pool;
	struct relay_buf b = { 0 };

	relay_pool_init(&pool, 1);
	relay_release_if_empty(&b, &pool); /* none held: nothing to do */
	assert_int_equal(pool.n, 0);
	assert_true(relay_acquire(&b, &pool));
	assert_true(relay_append_scanned(&b, (const uint8_t *)"S\0\0\0\4", 5));
	relay_release_if_empty(&b, &pool);
	assert_non_null(b.data); /* bytes still to send */
	relay_consume(&b, 5);
	relay_release_if_empty(&b, &pool);
	assert_null(b.data);
	assert_int_equal(pool.n, 1);
	relay_pool_destroy(&pool);
}

/*
 * An idle session gives its buffer back even mid pass-through message (all
 * read bytes sent, more body to come); the stream state stays with the
 * session, so the rest of the body still streams and the next message frames.
 */
static void test_stream_state_survives_release(void **state)
{
	struct relay_pool pool;
	struct relay_buf b = { 0 };
	struct relay_rules r;
	struct seen seen = { 0 };
	struct bytes in = { 0 }, out = { 0 };
	const char *why;

	rules_init(&r, MAX_LEN);
	put_claimed(&in, 'D', 4 + 40, 40);
	put_msg(&in, 'Z', "I", 1);
	relay_pool_init(&pool, 1);
	assert_true(relay_acquire(&b, &pool));
	buf_read(&b, in.p, 20);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	buf_write(&b, &out, UINT32_MAX);
	relay_release_if_empty(&b, &pool);
	assert_null(b.data);
	assert_int_equal(b.msg_left, 25);
	assert_true(relay_acquire(&b, &pool));
	buf_read(&b, in.p + 20, (uint32_t)in.len - 20);
	assert_int_equal(relay_scan(&b, &r, &seen, &why), RELAY_OK);
	buf_write(&b, &out, UINT32_MAX);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.calls[0].type, 'Z');
	assert_bytes_equal(&out, in.p, in.len);
	relay_release(&b, &pool);
	relay_pool_destroy(&pool);
	bytes_free(&in);
	bytes_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_tracking_shows_no_body),
		cmocka_unit_test(test_header_tracking_announces_before_body),
		cmocka_unit_test(test_body_tracking_waits_for_whole_body),
		cmocka_unit_test(test_untracked_body_streams),
		cmocka_unit_test(test_every_read_size_same_messages),
		cmocka_unit_test(test_every_split_point_small_buffer),
		cmocka_unit_test(test_oversized_tracked_message_prefix_once_then_streams),
		cmocka_unit_test(test_tracked_message_of_track_max_held_whole),
		cmocka_unit_test(test_shortening_needs_a_whole_body),
		cmocka_unit_test(test_max_len_is_inclusive),
		cmocka_unit_test(test_max_len_exceeded),
		cmocka_unit_test(test_length_below_four),
		cmocka_unit_test(test_limit_below_four),
		cmocka_unit_test(test_length_four_is_empty_body),
		cmocka_unit_test(test_stop_resumes_at_the_message),
		cmocka_unit_test(test_handler_error_is_protocol_violation),
		cmocka_unit_test(test_sasl_plus_removed_in_place),
		cmocka_unit_test(test_sasl_plus_removed_every_read_size),
		cmocka_unit_test(test_shortened_to_empty_body),
		cmocka_unit_test(test_room_compacts_only_a_full_buffer),
		cmocka_unit_test(test_fit_without_need_changes_nothing),
		cmocka_unit_test(test_fit_compacts_before_growing),
		cmocka_unit_test(test_fit_grows_for_a_tracked_message_larger_than_the_buffer),
		cmocka_unit_test(test_fit_does_not_grow_a_buffer_full_of_unsent_bytes),
		cmocka_unit_test(test_fit_waits_for_the_writer_instead_of_growing),
		cmocka_unit_test(test_consume_resets_when_drained),
		cmocka_unit_test(test_append_scanned_only_at_a_boundary),
		cmocka_unit_test(test_drop_unscanned),
		cmocka_unit_test(test_pool_is_bounded),
		cmocka_unit_test(test_pool_frees_grown_buffers),
		cmocka_unit_test(test_release_if_empty),
		cmocka_unit_test(test_stream_state_survives_release),
	};

	setvbuf(stdout, NULL, _IONBF, 0); /* a sanitizer abort must not swallow the results */
	return cmocka_run_group_tests_name("proxy/relay", tests, NULL, NULL);
}
