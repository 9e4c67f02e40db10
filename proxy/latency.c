/*
 * Table latency on the hot path (see latency.h). A unit starts at the first
 * message a quiet session sends (nothing in flight, no open batch), collects
 * the observed tables its Query, Parse and Bind messages touch (classified
 * through the worker's parse cache, as the hold check does), and ends at the
 * ReadyForQuery that answers its Query, Sync or FunctionCall; a unit that
 * runs nothing (Parse, Describe, Sync: preparing) is not timed. A session that
 * sends the next unit before that answer (pipelining) is not timed until it
 * is quiet again: one clock per session, never a wrong one. Statements that
 * cannot be classified (CLASSIFY_UNKNOWN) are attributed to no table.
 */
#include "latency.h"

#include <stdlib.h>
#include <string.h>

#include "observe.h"
#include "session.h"
#include "unit_sql.h"
#include "worker.h"

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- a series ------------------------------------------------------------- */

static void series_free(struct latency_series *se)
{
	for (int i = 0; i < LATENCY_WINDOW_S; i++)
		free(se->ring[i].cells);
	free(se->total);
}

/* Moves the current second into the ring (compacted) and the totals. */
static void series_roll(struct latency_series *se, time_t now)
{
	struct latency_second *sec;
	uint32_t n = 0;

	if (se->cur_count > 0) {
		sec = &se->ring[se->cur_second % LATENCY_WINDOW_S];
		for (int i = 0; i < LATENCY_HIST_BUCKETS; i++)
			n += se->cur[i] != 0;
		free(sec->cells);
		sec->cells = malloc(n * sizeof(*sec->cells));
		sec->second = se->cur_second;
		sec->n = 0;
		sec->count = se->cur_count;
		sec->sum_us = se->cur_sum_us;
		sec->max_us = se->cur_max_us;
		for (int i = 0; i < LATENCY_HIST_BUCKETS; i++) {
			if (!se->cur[i])
				continue;
			if (sec->cells)
				sec->cells[sec->n++] = (struct latency_cell){ (uint16_t)i, se->cur[i] };
			if (se->total)
				se->total->v[i] += se->cur[i];
		}
		if (!sec->cells) /* out of memory: the second is lost, never half-counted */
			sec->count = sec->sum_us = sec->max_us = 0;
		if (se->total) {
			se->total->count += se->cur_count;
			se->total->sum_us += se->cur_sum_us;
			if (se->cur_max_us > se->total->max_us)
				se->total->max_us = se->cur_max_us;
		}
		memset(se->cur, 0, sizeof(se->cur));
		se->cur_count = se->cur_sum_us = se->cur_max_us = 0;
	}
	se->cur_second = now;
}

static void series_record(struct latency_series *se, time_t now, uint64_t us)
{
	if (se->cur_second != now)
		series_roll(se, now);
	se->cur[latency_hist_index(us)]++;
	se->cur_count++;
	se->cur_sum_us += us;
	if (us > se->cur_max_us)
		se->cur_max_us = us;
}

/* Adds the series' seconds in (now - window_s, now] (window_s 0: its totals) into 'h'. */
static void series_read(struct latency_series *se, time_t now, int window_s, struct latency_hist *h)
{
	if (se->cur_second != now)
		series_roll(se, now);
	if (window_s == 0) {
		if (se->total)
			latency_hist_add(h, se->total);
	} else {
		for (int i = 0; i < LATENCY_WINDOW_S; i++) {
			const struct latency_second *sec = &se->ring[i];

			if (sec->count == 0 || sec->second <= now - window_s || sec->second > now)
				continue;
			h->count += sec->count;
			h->sum_us += sec->sum_us;
			if (sec->max_us > h->max_us)
				h->max_us = sec->max_us;
			for (uint32_t c = 0; c < sec->n; c++)
				h->v[sec->cells[c].index] += sec->cells[c].count;
		}
	}
	/* The current second: always inside the window (it ends now). */
	h->count += se->cur_count;
	h->sum_us += se->cur_sum_us;
	if (se->cur_max_us > h->max_us)
		h->max_us = se->cur_max_us;
	for (int i = 0; i < LATENCY_HIST_BUCKETS; i++)
		h->v[i] += se->cur[i];
}

/* ---- the hot path --------------------------------------------------------- */

/* Adds the observed tables 'r' touches to the unit's masks. */
static void unit_add(struct latency_unit *u, const struct observe_set *set, const struct classify_result *r)
{
	if (r->flags & CLASSIFY_UNKNOWN)
		return;
	for (int i = 0; i < set->n; i++) {
		uint8_t access = classify_access_to(r, set->tables[i].t.schema, set->tables[i].t.name);

		if (access & CLASSIFY_WRITE)
			u->write_mask |= 1ull << i;
		else if (access & CLASSIFY_READ)
			u->read_mask |= 1ull << i;
	}
}

void latency_client_msg(struct session *s, uint8_t type, const uint8_t *body, uint32_t avail, uint32_t len)
{
	struct latency_unit *u = &s->lat;
	const struct observe_set *set = s->w->latency.set;
	struct classify_result *r = &s->w->classify_scratch;

	if (type == 'X')
		return;
	switch (u->state) {
	case LATENCY_IDLE:
		if (s->syncs_pending > 0 || s->batch_forwarded || s->state != SESSION_READY) {
			/*
			 * Something sent before the observation began is still in flight,
			 * or the unit came before login completed (the login's
			 * ReadyForQuery would end it).
			 */
			u->state = LATENCY_SKIP;
			return;
		}
		u->state = LATENCY_OPEN;
		u->generation = set->generation;
		u->start_ns = now_ns();
		u->read_mask = u->write_mask = 0;
		u->runs = false;
		break;
	case LATENCY_OPEN:
		break;
	case LATENCY_SENT: /* the next unit before this one's answer: latency_ready sees it in flight */
	case LATENCY_SKIP:
		return;
	}
	if (u->generation == set->generation && (type == 'Q' || type == 'P' || type == 'B') &&
	    unit_sql_classify(s, type, body, avail, len, r))
		unit_add(u, set, r);
	if (type == 'Q' || type == 'E')
		u->runs = true;
	if (type == 'Q' || type == 'S' || type == 'F')
		u->state = LATENCY_SENT;
}

void latency_ready(struct session *s)
{
	struct latency_unit *u = &s->lat;
	struct latency_store *st = &s->w->latency;

	if (u->state == LATENCY_SENT && u->runs && st->set && u->generation == st->set->generation &&
	    (u->read_mask | u->write_mask)) {
		int64_t ns = now_ns() - u->start_ns;
		uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
		time_t now = worker_now(s->w);

		for (int i = 0; i < st->set->n; i++) {
			uint64_t bit = 1ull << i;

			if (u->write_mask & bit)
				series_record(&st->series[i * ADMIN_LATENCY_KINDS + ADMIN_LATENCY_WRITE], now,
					      us);
			else if (u->read_mask & bit)
				series_record(&st->series[i * ADMIN_LATENCY_KINDS + ADMIN_LATENCY_READ], now,
					      us);
		}
	}
	/* Quiet (no answer pending, no open batch): the next message starts a unit. */
	u->state = s->syncs_pending == 0 && !s->batch_forwarded ? LATENCY_IDLE : LATENCY_SKIP;
}

/* ---- worker jobs ---------------------------------------------------------- */

void latency_apply_job(struct worker *w, void *arg)
{
	const struct latency_apply *a = arg;
	struct latency_store *st = &w->latency;
	const struct observe_set *old = st->set, *set = a->set;
	struct latency_series *series = NULL;

	if (set && set->n > 0) {
		series = calloc((size_t)set->n * ADMIN_LATENCY_KINDS, sizeof(*series));
		if (!series)
			set = NULL; /* defensive: out of memory, this worker records nothing */
	} else {
		set = NULL;
	}
	for (int i = 0; set && i < set->n; i++) {
		int was = observe_set_find(old, set->tables[i].name);

		for (int k = 0; k < ADMIN_LATENCY_KINDS; k++) {
			struct latency_series *se = &series[i * ADMIN_LATENCY_KINDS + k];

			if (was >= 0) { /* still observed: keeps what it has */
				struct latency_series *from = &st->series[was * ADMIN_LATENCY_KINDS + k];

				memcpy(se, from, sizeof(*se));
				memset(from, 0, sizeof(*from));
			} else {
				se->total = calloc(1, sizeof(*se->total));
			}
		}
	}
	latency_store_free(st);
	st->set = set;
	st->series = series;
	worker_track_bodies(w);
}

void latency_report_job(struct worker *w, void *arg)
{
	struct latency_report *r = arg;
	struct latency_store *st = &w->latency;
	time_t now = worker_now(w);

	r->set = st->set;
	for (int i = 0; st->set && i < st->set->n * ADMIN_LATENCY_KINDS; i++)
		series_read(&st->series[i], now, r->window_s, &r->h[i]);
}

void latency_store_free(struct latency_store *st)
{
	for (int i = 0; st->set && i < st->set->n * ADMIN_LATENCY_KINDS; i++)
		series_free(&st->series[i]);
	free(st->series);
	st->series = NULL;
	st->set = NULL;
}
