/*
 * libFuzzer target for proxy/relay.c (the statement bookkeeping the session
 * feeds from it has its own target, fuzz_stmt.c). An input is a control
 * block, then a byte stream:
 *
 *   [0]      flags: bits 0-1 direction (1 client→server, 2 server→client,
 *            0 or 3 both, one after the other); bit 2 give the buffer back
 *            to the pool whenever it is empty, as an idle session does;
 *            bit 3 start with a buffer of 16 + [5] bytes instead of a pooled
 *            one, so that it fills, compacts and grows to exact sizes (Asan
 *            then sees any access past 'cap'); bits 4-7 STOP every Nth
 *            handler call (0: never)
 *   [1..4]   max_len, big-endian, capped at 1 GB (limits.max_message_bytes)
 *   [5..8]   read sizes, used in turn (0: as much as fits)
 *   [9..12]  write sizes, used in turn (0: none this turn, 255: all)
 *
 * The stream is read into a relay buffer chunk by chunk and scanned with
 * the session's tracking sets and handlers that do what the session's do
 * (ErrorResponse parsed, SCRAM-SHA-256-PLUS cut out of AuthenticationSASL,
 * an empty ReadyForQuery refused),
 * while a writer takes scanned bytes in uneven amounts. A reference walk of
 * the stream says what must come out: every byte, with only the SASL edit,
 * up to the first framing error or handler refusal, and no partial header
 * or partial held message. Every handler call must show the message the
 * walk expects, and the buffer's positions stay ordered throughout. Checks
 * are FUZZ_CHECKs, which abort whatever NDEBUG says.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/pgwire.h"
#include "relay.h"
#include "session.h"
#include "fuzz_check.h"

#define CTL_LEN 13
#define MAX_LEN_CAP (1u << 30) /* config's upper bound for limits.max_message_bytes */
#define PLUS "SCRAM-SHA-256-PLUS"

enum dir { C2S, S2C };

struct ctl {
	unsigned dirs; /* bit C2S, bit S2C */
	bool release_idle;
	uint32_t small_buf; /* initial capacity; 0: a pooled buffer */
	unsigned stop_every;
	uint32_t max_len;
	uint32_t reads[4];
	uint8_t writes[4];
};

/* ---- the reference walk -------------------------------------------------- */

/* A handler call the walk expects, in stream order. */
struct want_call {
	size_t off;     /* the message's start in the input */
	size_t out_off; /* where it starts in the expected output */
	uint8_t type;
	uint32_t len; /* body length */
	enum relay_track track;
	bool whole; /* body shown whole (else a prefix of an oversized one) */
};

struct walk {
	struct want_call *calls;
	size_t n_calls;
	uint8_t *out; /* the expected output, if no handler refuses */
	size_t out_len;
	const char *why; /* the framing error ending it, or NULL */
};

static void walk_call(struct walk *w, const struct want_call *c)
{
	w->calls = realloc(w->calls, (w->n_calls + 1) * sizeof(*w->calls));
	FUZZ_CHECK(w->calls != NULL);
	w->calls[w->n_calls++] = *c;
}

/*
 * What the relay must do with 'in': framed with 'r' (no handler involved but
 * the deterministic SASL edit in the server→client direction).
 */
static void walk_stream(struct walk *w, const uint8_t *in, size_t n, const struct relay_rules *r,
			enum dir dir)
{
	size_t off = 0;

	memset(w, 0, sizeof(*w));
	w->out = malloc(n ? n : 1);
	FUZZ_CHECK(w->out != NULL);
	while (n - off >= PGWIRE_HEADER_LEN) {
		uint8_t type = in[off];
		uint32_t len = pgwire_get_u32(in + off + 1);
		size_t total, have;
		struct want_call c;

		if (len < 4) {
			w->why = "invalid message length";
			break;
		}
		if (len > r->max_len) {
			w->why = "message exceeds limits.max_message_bytes";
			break;
		}
		total = (size_t)len + 1;
		have = n - off < total ? n - off : total;
		c = (struct want_call){ .off = off,
					.out_off = w->out_len,
					.type = type,
					.len = len - 4,
					.track = r->track[type],
					.whole = true };
		if (c.track == RELAY_TRACK_BODY) {
			if (total <= RELAY_TRACK_MAX && have < total)
				break; /* held until whole: never forwarded in part */
			c.whole = total <= RELAY_TRACK_MAX;
		}
		if (c.track != RELAY_TRACK_NONE)
			walk_call(w, &c);
		if (c.track == RELAY_TRACK_BODY && c.whole && dir == S2C && type == 'R') {
			uint8_t *m = w->out + w->out_len;
			size_t body;

			memcpy(m, in + off, total);
			body = pgwire_sasl_remove_mechanism(m + PGWIRE_HEADER_LEN, len - 4, PLUS);
			pgwire_put_u32(m + 1, (uint32_t)body + 4);
			w->out_len += body + PGWIRE_HEADER_LEN;
		} else {
			memcpy(w->out + w->out_len, in + off, have);
			w->out_len += have;
		}
		off += have;
	}
}

static void walk_free(struct walk *w)
{
	free(w->calls);
	free(w->out);
}

/* ---- the handlers --------------------------------------------------------- */

struct run {
	const struct ctl *ctl;
	enum dir dir;
	const uint8_t *in;
	const struct walk *walk;
	struct relay_buf *b;
	size_t next;    /* the walk's call the next handler call must match */
	size_t refused; /* the walk's call the handler answered ERROR, or SIZE_MAX */
	unsigned calls;
	bool stopped; /* the last call was a STOP: the next passes (progress) */
};

/* s must be a NUL-terminated string lying wholly inside [p, p+n). */
static void check_inside(const char *s, const uint8_t *p, size_t n)
{
	const uint8_t *u = (const uint8_t *)s;

	if (!s)
		return;
	FUZZ_CHECK(u >= p && u < p + n);
	FUZZ_CHECK(memchr(u, 0, (size_t)(p + n - u)) != NULL);
}

static enum relay_msg on_msg(void *ctx, uint8_t type, uint8_t *body, uint32_t avail, uint32_t len,
			     uint32_t *new_len)
{
	struct run *x = ctx;
	const struct want_call *c;
	struct relay_buf *b = x->b;

	/* The call is the one the walk expects, showing the bytes of the stream. */
	FUZZ_CHECK(x->next < x->walk->n_calls);
	c = &x->walk->calls[x->next];
	FUZZ_CHECK(type == c->type);
	FUZZ_CHECK(len == c->len);
	FUZZ_CHECK(*new_len == len);
	FUZZ_CHECK(body == b->data + b->scan + PGWIRE_HEADER_LEN);
	FUZZ_CHECK(avail <= b->tail - b->scan - PGWIRE_HEADER_LEN);
	if (c->track == RELAY_TRACK_HEADER)
		FUZZ_CHECK(avail == 0);
	else if (c->whole)
		FUZZ_CHECK(avail == len);
	else
		FUZZ_CHECK(avail < len);
	FUZZ_CHECK(memcmp(body, x->in + c->off + PGWIRE_HEADER_LEN, avail) == 0);

	x->calls++;
	if (x->ctl->stop_every && x->calls % x->ctl->stop_every == 0 && !x->stopped) {
		x->stopped = true;
		return RELAY_MSG_STOP;
	}
	x->stopped = false;

	if (x->dir == S2C) {
		struct pgwire_error e;

		switch (type) {
		case 'Z':
			if (avail < 1) {
				x->refused = x->next;
				return RELAY_MSG_ERROR;
			}
			break;
		case 'E':
			if (pgwire_parse_error(body, avail, &e)) {
				check_inside(e.severity, body, avail);
				check_inside(e.sqlstate, body, avail);
				check_inside(e.message, body, avail);
				check_inside(e.schema, body, avail);
				check_inside(e.table, body, avail);
				check_inside(e.constraint, body, avail);
			}
			break;
		case 'R':
			if (avail == len)
				*new_len = (uint32_t)pgwire_sasl_remove_mechanism(body, len, PLUS);
			FUZZ_CHECK(*new_len <= len);
			break;
		}
	}
	x->next++;
	return RELAY_MSG_PASS;
}

/* The session's own tracking sets, with this target's handler. */
static void rules_for(struct relay_rules *r, enum dir dir, uint32_t max_len)
{
	struct relay_rules c2s, s2c;

	session_rules(&c2s, &s2c);
	*r = dir == C2S ? c2s : s2c;
	r->max_len = max_len;
	r->on_msg = on_msg;
}

/* ---- the pump ------------------------------------------------------------- */

static void check_order(const struct relay_buf *b)
{
	FUZZ_CHECK(b->head <= b->scan);
	FUZZ_CHECK(b->scan <= b->tail);
	FUZZ_CHECK(b->tail <= b->cap);
	FUZZ_CHECK(b->data != NULL || b->cap == 0);
}

/* Where relay_scan() left off with RELAY_OK: it waits for bytes, exactly the ones it names. */
static void check_waiting(const struct relay_buf *b)
{
	if (b->msg_left) {
		FUZZ_CHECK(b->scan == b->tail); /* streaming a body: all it had went */
		FUZZ_CHECK(b->need == 0);
	} else if (b->tail - b->scan < PGWIRE_HEADER_LEN) {
		FUZZ_CHECK(b->need == PGWIRE_HEADER_LEN);
	} else {
		FUZZ_CHECK(b->need > b->tail - b->scan); /* a held message, not all here yet */
		FUZZ_CHECK(b->need <= RELAY_TRACK_MAX);
	}
}

struct sink {
	uint8_t *p;
	size_t len, cap;
};

static void sink_put(struct sink *s, const uint8_t *p, size_t n)
{
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;

		while (cap < s->len + n)
			cap *= 2;
		s->p = realloc(s->p, cap);
		FUZZ_CHECK(s->p != NULL);
		s->cap = cap;
	}
	if (n)
		memcpy(s->p + s->len, p, n);
	s->len += n;
}

static void write_some(struct relay_buf *b, struct sink *out, uint32_t n)
{
	if (n > relay_pending(b))
		n = relay_pending(b);
	sink_put(out, b->data + b->head, n);
	relay_consume(b, n);
	check_order(b);
}

static void run_dir(const struct ctl *ctl, enum dir dir, const uint8_t *in, size_t n)
{
	struct relay_rules rules;
	struct relay_pool pool;
	struct relay_buf b = { 0 }, old;
	struct walk w;
	struct run x = { .ctl = ctl, .dir = dir, .in = in, .walk = &w, .b = &b, .refused = SIZE_MAX };
	struct sink out = { 0 };
	enum relay_result res = RELAY_OK;
	const char *why = NULL;
	size_t pos = 0, want_len;
	unsigned turn = 0, idle = 0;

	rules_for(&rules, dir, ctl->max_len);
	walk_stream(&w, in, n, &rules, dir);
	relay_pool_init(&pool, 1);
	if (ctl->small_buf) {
		b.data = malloc(ctl->small_buf);
		FUZZ_CHECK(b.data != NULL);
		b.cap = ctl->small_buf;
	}

	for (;; turn++) {
		uint32_t room, k, got, scan_before = b.scan;
		unsigned calls_before = x.calls;
		bool moved;

		FUZZ_CHECK(relay_acquire(&b, &pool));
		old = b;
		FUZZ_CHECK(relay_fit(&b));
		check_order(&b);
		FUZZ_CHECK(b.tail - b.head == old.tail - old.head && b.scan - b.head == old.scan - old.head);
		/* Grown only for a held message larger than the whole buffer (relay.h). */
		if (b.cap != old.cap)
			FUZZ_CHECK(b.cap > old.cap && b.need > old.cap);
		/* Not grown: the bytes it waits for fit, or unsent bytes are in the way. */
		else if (b.need > b.cap - b.scan)
			FUZZ_CHECK(b.need <= b.cap && relay_pending(&b) > 0);
		old = b;
		room = relay_room(&b);
		check_order(&b);
		FUZZ_CHECK(room == b.cap - b.tail);
		FUZZ_CHECK(b.tail - b.head == old.tail - old.head && b.scan - b.head == old.scan - old.head);
		if (old.tail == old.cap && old.head > 0)
			FUZZ_CHECK(room >= old.head); /* a full buffer makes room from sent bytes */
		/* A buffer with no room holds bytes the writer can take: never a dead end. */
		FUZZ_CHECK(room > 0 || relay_pending(&b) > 0 || res == RELAY_STOPPED || pos == n);

		k = ctl->reads[turn % 4] ? ctl->reads[turn % 4] : room;
		if (k > room)
			k = room;
		if (k > n - pos)
			k = (uint32_t)(n - pos);
		memcpy(b.data + b.tail, in + pos, k);
		b.tail += k;
		pos += k;

		res = relay_scan(&b, &rules, &x, &why);
		check_order(&b);
		if (res == RELAY_ERROR)
			break;
		FUZZ_CHECK(why == NULL);
		if (res == RELAY_OK)
			check_waiting(&b);
		else
			FUZZ_CHECK(b.msg_left == 0 && b.scan < b.tail);

		got = k;
		k = ctl->writes[turn % 4] == 255 ? UINT32_MAX : ctl->writes[turn % 4];
		if (k == 0 && (room == 0 || pos == n))
			k = UINT32_MAX; /* the peer drains eventually */
		if (k > relay_pending(&b))
			k = relay_pending(&b);
		write_some(&b, &out, k);
		if (ctl->release_idle)
			relay_release_if_empty(&b, &pool);

		if (pos == n && res == RELAY_OK && relay_pending(&b) == 0)
			break;
		moved = got || k || b.scan != scan_before || x.calls != calls_before;
		idle = moved ? 0 : idle + 1;
		FUZZ_CHECK(idle < 4); /* no progress with input left or bytes to send: stuck */
	}
	if (b.data)
		write_some(&b, &out, UINT32_MAX);

	/* How it ended: the walk's framing error, or the handler's refusal before it. */
	if (x.refused != SIZE_MAX) {
		FUZZ_CHECK(res == RELAY_ERROR);
		FUZZ_CHECK(why && strcmp(why, "protocol violation") == 0);
		want_len = w.calls[x.refused].out_off;
	} else if (w.why) {
		FUZZ_CHECK(res == RELAY_ERROR);
		FUZZ_CHECK(why && strcmp(why, w.why) == 0);
		FUZZ_CHECK(x.next == w.n_calls);
		want_len = w.out_len;
	} else {
		FUZZ_CHECK(res == RELAY_OK);
		FUZZ_CHECK(x.next == w.n_calls);
		want_len = w.out_len;
	}
	FUZZ_CHECK(out.len == want_len);
	FUZZ_CHECK(want_len == 0 || memcmp(out.p, w.out, want_len) == 0);

	/* The proxy's own goodbye: appended whole at a boundary, refused mid-message. */
	if (b.data || relay_acquire(&b, &pool)) {
		uint8_t err[256];
		size_t e = pgwire_build_error(err, sizeof(err), "FATAL", "08P01", "fuzz");
		bool at_boundary = relay_at_boundary(&b);

		FUZZ_CHECK(e <= sizeof(err));
		relay_drop_unscanned(&b);
		check_order(&b);
		FUZZ_CHECK(relay_append_scanned(&b, err, (uint32_t)e) == at_boundary);
		check_order(&b);
		if (at_boundary) {
			out.len = 0;
			write_some(&b, &out, UINT32_MAX);
			FUZZ_CHECK(out.len == e && memcmp(out.p, err, e) == 0);
		}
		FUZZ_CHECK(relay_pending(&b) == 0);
	}
	relay_release(&b, &pool);
	relay_pool_destroy(&pool);
	free(out.p);
	walk_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl ctl;

	/* Above RELAY_TRACK_MAX an oversized tracked message could arrive whole; keep the walk simple. */
	if (size < CTL_LEN || size - CTL_LEN > RELAY_TRACK_MAX)
		return 0;
	ctl.dirs = data[0] & 3;
	if (ctl.dirs == 0)
		ctl.dirs = 3;
	ctl.release_idle = data[0] & 4;
	ctl.small_buf = data[0] & 8 ? 16u + data[5] : 0;
	ctl.stop_every = data[0] >> 4;
	ctl.max_len = pgwire_get_u32(data + 1);
	if (ctl.max_len > MAX_LEN_CAP)
		ctl.max_len = MAX_LEN_CAP;
	for (int i = 0; i < 4; i++) {
		ctl.reads[i] = data[5 + i];
		ctl.writes[i] = data[9 + i];
	}
	if (ctl.dirs & (1u << C2S))
		run_dir(&ctl, C2S, data + CTL_LEN, size - CTL_LEN);
	if (ctl.dirs & (1u << S2C))
		run_dir(&ctl, S2C, data + CTL_LEN, size - CTL_LEN);
	return 0;
}
