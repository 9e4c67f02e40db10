/*
 * Message framing over one direction's buffer (see relay.h). The scanner
 * validates every header against limits.max_message_bytes, hands tracked
 * message bodies to the session's handler, and streams everything else
 * without looking into it — a 100 MB DataRow costs one header check.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

#include "pgvalve/pgwire.h"

/* Cuts n bytes at 'at' (>= scan) out of the buffer. */
static void remove_bytes(struct relay_buf *b, uint32_t at, uint32_t n)
{
	memmove(b->data + at, b->data + at + n, b->tail - at - n);
	b->tail -= n;
}

enum relay_result relay_scan(struct relay_buf *b, const struct relay_rules *rules, void *ctx,
			     const char **why)
{
	*why = NULL;
	b->need = 0;
	for (;;) {
		struct pgwire_header h;
		uint32_t avail, total, take, body_avail, new_len;
		enum relay_msg verdict;
		uint8_t *body, mode;

		if (b->drop_left) {
			uint32_t n = b->tail - b->scan;

			if (n > b->drop_left)
				n = b->drop_left;
			remove_bytes(b, b->scan, n);
			b->drop_left -= n;
			if (b->drop_left)
				return RELAY_OK;
		}
		if (b->msg_left) {
			uint32_t n = b->tail - b->scan;

			if (n > b->msg_left)
				n = b->msg_left;
			b->scan += n;
			b->msg_left -= n;
			if (b->msg_left)
				return RELAY_OK;
		}
		avail = b->tail - b->scan;
		switch (pgwire_read_header(b->data + b->scan, avail, rules->max_len, &h)) {
		case PGWIRE_INCOMPLETE:
			b->need = PGWIRE_HEADER_LEN;
			return RELAY_OK;
		case PGWIRE_ERROR:
			*why = h.len < 4 ? "invalid message length"
					 : "message exceeds limits.max_message_bytes";
			return RELAY_ERROR;
		case PGWIRE_OK:
			break;
		}
		total = h.len + 1;
		mode = rules->track[h.type];
		if (b->track_all && mode == RELAY_TRACK_NONE)
			mode = RELAY_TRACK_HEADER;
		if (mode == RELAY_TRACK_BODY && total > avail && total <= RELAY_TRACK_MAX) {
			b->need = total; /* wait for the whole message */
			return RELAY_OK;
		}
		if (mode != RELAY_TRACK_NONE) {
			/* BODY shows the whole body, or a prefix of one too long to hold; HEADER none. */
			body = b->data + b->scan + PGWIRE_HEADER_LEN;
			body_avail = mode == RELAY_TRACK_HEADER
				? 0
				: (total <= avail ? total : avail) - PGWIRE_HEADER_LEN;
			new_len = h.len - 4;
			verdict = rules->on_msg(ctx, h.type, body, body_avail, h.len - 4, &new_len);
			if (verdict == RELAY_MSG_ERROR) {
				*why = "protocol violation";
				return RELAY_ERROR;
			}
			if (verdict == RELAY_MSG_STOP)
				return RELAY_STOPPED;
			if (verdict == RELAY_MSG_DROP) {
				uint32_t here = total < avail ? total : avail;

				remove_bytes(b, b->scan, here);
				b->drop_left = total - here;
				continue;
			}
			if (mode == RELAY_TRACK_BODY && total <= avail && new_len < h.len - 4) {
				/* The handler shortened the body: close the gap and fix the length. */
				uint32_t gap = h.len - 4 - new_len;
				uint8_t *end = body + new_len;

				memmove(end, end + gap, b->tail - (uint32_t)(end + gap - b->data));
				b->tail -= gap;
				avail -= gap;
				total -= gap;
				pgwire_put_u32(b->data + b->scan + 1, new_len + 4);
			}
		}
		/* Forward what is here; the rest of the body streams as it arrives. */
		take = total < avail ? total : avail;
		b->scan += take;
		b->msg_left = total - take;
	}
}

uint32_t relay_room(struct relay_buf *b)
{
	if (b->head > 0 && b->tail == b->cap) {
		memmove(b->data, b->data + b->head, b->tail - b->head);
		b->scan -= b->head;
		b->tail -= b->head;
		b->head = 0;
	}
	return b->cap - b->tail;
}

bool relay_fit(struct relay_buf *b)
{
	uint8_t *grown;
	uint32_t want;

	if (b->need == 0 || b->cap - b->scan >= b->need)
		return true;
	if (b->head > 0) {
		memmove(b->data, b->data + b->head, b->tail - b->head);
		b->scan -= b->head;
		b->tail -= b->head;
		b->head = 0;
		if (b->cap - b->scan >= b->need)
			return true;
	}
	/* Unsent bytes are in the way, not a message too big: wait for the writer instead. */
	if (b->need <= b->cap)
		return true;
	want = b->scan + b->need;
	grown = realloc(b->data, want);
	if (!grown)
		return false;
	b->data = grown;
	b->cap = want;
	return true;
}

void relay_consume(struct relay_buf *b, uint32_t n)
{
	b->head += n;
	if (b->head == b->tail)
		b->head = b->scan = b->tail = 0;
}

bool relay_insert_scanned(struct relay_buf *b, const uint8_t *p, uint32_t n)
{
	if (b->cap - b->tail < n) {
		uint8_t *grown = realloc(b->data, b->tail + n);

		if (!grown)
			return false;
		b->data = grown;
		b->cap = b->tail + n;
	}
	memmove(b->data + b->scan + n, b->data + b->scan, b->tail - b->scan);
	memcpy(b->data + b->scan, p, n);
	b->tail += n;
	b->scan += n;
	return true;
}

bool relay_append_scanned(struct relay_buf *b, const uint8_t *p, uint32_t n)
{
	/* Only at a boundary with nothing unscanned, or the bytes would land mid-message. */
	if (b->scan != b->tail || b->msg_left)
		return false;
	return relay_insert_scanned(b, p, n);
}

void relay_drop_unscanned(struct relay_buf *b)
{
	b->tail = b->scan;
	if (b->head == b->tail)
		b->head = b->scan = b->tail = 0;
}

void relay_pool_init(struct relay_pool *pool, int max)
{
	pool->free = calloc((size_t)max, sizeof(*pool->free));
	pool->n = 0;
	pool->max = pool->free ? max : 0;
}

void relay_pool_destroy(struct relay_pool *pool)
{
	for (int i = 0; i < pool->n; i++)
		free(pool->free[i]);
	free(pool->free);
	memset(pool, 0, sizeof(*pool));
}

bool relay_acquire(struct relay_buf *b, struct relay_pool *pool)
{
	if (b->data)
		return true;
	b->data = pool->n ? pool->free[--pool->n] : malloc(RELAY_BUF_SIZE);
	if (!b->data)
		return false;
	b->cap = RELAY_BUF_SIZE;
	b->head = b->scan = b->tail = 0;
	return true;
}

void relay_release(struct relay_buf *b, struct relay_pool *pool)
{
	if (!b->data)
		return;
	if (b->cap == RELAY_BUF_SIZE && pool->n < pool->max)
		pool->free[pool->n++] = b->data;
	else
		free(b->data);
	b->data = NULL;
	b->cap = b->head = b->scan = b->tail = 0;
}

void relay_release_if_empty(struct relay_buf *b, struct relay_pool *pool)
{
	if (b->data && b->tail == 0)
		relay_release(b, pool);
}
