/*
 * Table latency on the hot path (docs/architecture.md, table latency): while
 * an observation is active, each unit of work of a session is timed from its
 * first message to the server's ReadyForQuery, and recorded per observed
 * table it touches and kind (read, write) into the worker's one-second
 * histograms (pgvalve/latency_hist.h). Without an observation the cost is one
 * branch per client message and one per ReadyForQuery. The observe set is
 * published by observe_registry.c; reading the histograms out is
 * latency_report.c's. Worker thread only, no locks.
 */
#ifndef PGVALVE_PROXY_LATENCY_H
#define PGVALVE_PROXY_LATENCY_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pgvalve/admin_api.h"
#include "pgvalve/latency_hist.h"

#define LATENCY_WINDOW_S 330 /* seconds kept: ADMIN_LATENCY_MAX_WINDOW_S plus slack */
_Static_assert(ADMIN_LATENCY_MAX_WINDOW_S < LATENCY_WINDOW_S, "the ring covers the longest window");

struct observe_set;
struct session;
struct worker;

/* Where a session's current unit of work is, as latency sees it. */
enum latency_state {
	LATENCY_IDLE = 0, /* nothing timed: the next message that starts a unit starts the clock */
	LATENCY_OPEN,     /* timing a unit; its messages' tables are being collected */
	LATENCY_SENT,     /* its last message (Query, Sync, FunctionCall) went: waiting for ReadyForQuery */
	LATENCY_SKIP,     /* more than one unit in flight (pipelining), or the observation began
			   * mid-unit: nothing is timed until the session is quiet again */
};

/* A session's unit being timed. Only latency.c writes it. */
struct latency_unit {
	enum latency_state state;
	uint64_t generation; /* of the observe set its masks index */
	int64_t start_ns;    /* CLOCK_MONOTONIC, at its first message */
	uint64_t read_mask;  /* observed tables (set indexes) it reads */
	uint64_t write_mask; /* ... and writes (a table read and written counts as written) */
	bool runs;           /* it has a Query or an Execute: a unit that only prepares is not timed */
};

/* One table and kind of one worker: the current second dense, earlier ones compacted. */
struct latency_cell {
	uint16_t index; /* latency_hist_index */
	uint32_t count;
};

struct latency_second {
	time_t second;
	uint32_t n; /* cells */
	uint64_t count, sum_us, max_us;
	struct latency_cell *cells;
};

struct latency_series {
	time_t cur_second;
	uint64_t cur_count, cur_sum_us, cur_max_us;
	uint32_t cur[LATENCY_HIST_BUCKETS];
	struct latency_second ring[LATENCY_WINDOW_S]; /* second t at [t % LATENCY_WINDOW_S] */
	struct latency_hist *total;                   /* since the table became observed (for /metrics) */
};

/* A worker's latency state. */
struct latency_store {
	const struct observe_set *set; /* NULL: nothing observed, nothing recorded (the hot-path branch) */
	struct latency_series *series; /* set->n * ADMIN_LATENCY_KINDS: [table * KINDS + kind] */
};

/* A client message that passed the hold check, with an observe set in force. */
void latency_client_msg(struct session *s, uint8_t type, const uint8_t *body, uint32_t avail, uint32_t len);

/* The server's ReadyForQuery (s->syncs_pending already counts it), for a unit not LATENCY_IDLE. */
void latency_ready(struct session *s);

/* Job argument for latency_apply_job: the new set (NULL: none). */
struct latency_apply {
	const struct observe_set *set;
};

/*
 * Job: switches the worker to a new observe set. A table still observed
 * keeps its histograms; the others' are freed.
 */
void latency_apply_job(struct worker *w, void *arg);

/* Job argument and answer for latency_report_job. */
struct latency_report {
	int window_s;                  /* > 0: the last window_s seconds; 0: totals since observed */
	const struct observe_set *set; /* filled: the set the histograms follow */
	struct latency_hist *h;        /* the caller's, set->n * ADMIN_LATENCY_KINDS, zeroed */
};

/* Job: adds the worker's histograms into r->h. */
void latency_report_job(struct worker *w, void *arg);

/* Frees the worker's histograms (teardown). */
void latency_store_free(struct latency_store *st);

#endif
