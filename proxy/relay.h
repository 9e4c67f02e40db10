/*
 * One direction of a session: a flat byte buffer that bytes are read into,
 * scanned message by message, and written out of. Only scanned bytes (whole
 * validated headers, and bodies of messages nobody needs to look into) are
 * ever forwarded. Knows nothing about sockets: the session does the I/O.
 *
 *   0 ........ head ........ scan ........ tail ........ cap
 *     (sent)      (to send)     (unscanned)     (free)
 */
#ifndef PGVALVE_PROXY_RELAY_H
#define PGVALVE_PROXY_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#define RELAY_BUF_SIZE (16 * 1024)    /* pooled buffer size: also the high watermark */
#define RELAY_TRACK_MAX (1024 * 1024) /* largest tracked message held whole */
#define RELAY_POOL_MAX 64             /* free buffers a worker keeps (1 MiB); more are freed */

struct relay_buf {
	uint8_t *data; /* NULL while idle: an idle session holds no buffer */
	uint32_t cap;
	uint32_t head;      /* first byte not yet written to the peer */
	uint32_t scan;      /* first byte not yet scanned */
	uint32_t tail;      /* end of bytes read */
	uint32_t msg_left;  /* body bytes of the current pass-through message not yet read */
	uint32_t need;      /* contiguous bytes from 'scan' the scanner waits for */
	uint32_t drop_left; /* body bytes of a dropped message still to arrive and be discarded */
	bool track_all;     /* show every message to the handler (at least its header) */
};

/* What a message handler decides. */
enum relay_msg {
	RELAY_MSG_PASS,  /* forward it (possibly shortened in place) */
	RELAY_MSG_STOP,  /* stop scanning before it; scanning resumes on the next call */
	RELAY_MSG_DROP,  /* remove it from the stream (bytes not read yet are discarded on arrival) */
	RELAY_MSG_ERROR, /* protocol violation: close the session */
};

/*
 * Called for each tracked message. 'body' holds 'avail' bytes of a body that
 * is 'len' long: avail == len unless the message exceeds RELAY_TRACK_MAX, in
 * which case only a prefix is shown, once. A handler may shorten a whole
 * body in place by lowering *new_len.
 */
typedef enum relay_msg (*relay_msg_fn)(void *ctx, uint8_t type, uint8_t *body, uint32_t avail, uint32_t len,
				       uint32_t *new_len);

enum relay_track {
	RELAY_TRACK_NONE = 0, /* stream it; nobody looks */
	RELAY_TRACK_HEADER,   /* tell the handler at its header (body not shown: avail 0) */
	RELAY_TRACK_BODY,     /* hold it until whole, then show the body */
};

struct relay_rules {
	uint8_t track[256]; /* enum relay_track, by message type */
	uint32_t max_len;   /* limits.max_message_bytes */
	relay_msg_fn on_msg;
};

enum relay_result {
	RELAY_ERROR = -1,  /* framing error, '*why' says which */
	RELAY_OK = 0,      /* scanned all it could */
	RELAY_STOPPED = 1, /* a handler said STOP */
};

/* Scans forward from 'scan' over complete headers and tracked bodies. */
enum relay_result relay_scan(struct relay_buf *b, const struct relay_rules *rules, void *ctx,
			     const char **why);

/* Bytes scanned and ready to send. */
static inline uint32_t relay_pending(const struct relay_buf *b)
{
	return b->scan - b->head;
}

static inline bool relay_empty(const struct relay_buf *b)
{
	return b->head == b->tail;
}

/* True when scan stopped at a message boundary (no partial body forwarded). */
static inline bool relay_at_boundary(const struct relay_buf *b)
{
	return b->msg_left == 0;
}

/* Free bytes after 'tail', making room first by moving sent bytes out (no allocation). */
uint32_t relay_room(struct relay_buf *b);

/*
 * Makes room for the 'need' contiguous bytes the scanner waits for: moves
 * sent bytes out, and grows the buffer beyond RELAY_BUF_SIZE only for a
 * tracked message larger than the whole buffer. When unsent bytes are what
 * stands in the way, it leaves the buffer full: the reader waits for the
 * writer (back-pressure). Returns false on allocation failure.
 */
bool relay_fit(struct relay_buf *b) __attribute__((warn_unused_result));

/* Marks 'n' bytes as written to the peer. */
void relay_consume(struct relay_buf *b, uint32_t n);

/* Appends bytes after 'tail' as already scanned (used for messages the proxy itself sends). */
bool relay_append_scanned(struct relay_buf *b, const uint8_t *p, uint32_t n)
	__attribute__((warn_unused_result));

/* Inserts bytes at 'scan' as already scanned (before the message scanning stopped at). */
bool relay_insert_scanned(struct relay_buf *b, const uint8_t *p, uint32_t n)
	__attribute__((warn_unused_result));

/* Drops unscanned bytes (a partial message from a peer that went away). */
void relay_drop_unscanned(struct relay_buf *b);

/* Per-thread pool of RELAY_BUF_SIZE buffers, so idle sessions hold none. */
struct relay_pool {
	uint8_t **free;
	int n, max;
};

void relay_pool_init(struct relay_pool *pool, int max);
void relay_pool_destroy(struct relay_pool *pool);
/* Gives 'b' a buffer if it has none. Returns false on allocation failure. */
bool relay_acquire(struct relay_buf *b, struct relay_pool *pool) __attribute__((warn_unused_result));
/* Returns the buffer to the pool if 'b' is empty. */
void relay_release_if_empty(struct relay_buf *b, struct relay_pool *pool);
void relay_release(struct relay_buf *b, struct relay_pool *pool);

#endif
