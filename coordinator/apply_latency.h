/*
 * Table latency in apply (docs/architecture.md §4.10): asking every proxy to
 * observe the affected tables (the proxies' POST /observe, §3.9) for as long
 * as apply runs, its lease renewed by a keeper thread so a coordinator that
 * dies leaves nothing measuring; reading GET /latency from every proxy and
 * merging the histograms (never the quantiles); and the side-by-side table
 * of the baseline and the watch. The rules that judge the numbers are
 * watch_rules.h's; recording them is evidence.h's.
 */
#ifndef PGVALVE_COORDINATOR_APPLY_LATENCY_H
#define PGVALVE_COORDINATOR_APPLY_LATENCY_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "options.h"
#include "plan.h"
#include "watch_rules.h"
#include "pgvalve/latency_hist.h"

#define LATENCY_MAX_TABLES 64 /* the proxy observes at most this many tables at once */
#define LATENCY_TABLE_NAME_MAX (2 * PLAN_NAME_MAX + 2)

/* An observation on every proxy, kept alive until apply_latency_observe_stop. */
struct latency_obs {
	const struct options *o;
	char id[96];
	cJSON *body;        /* the POST /observe body (NULL: not observing) */
	int64_t started_ms; /* clock_mono_ms() when it was first placed */
	pthread_t keeper;
	bool keeper_running;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	bool stop; /* under mu */
};

/*
 * Starts observing 'tables' on every proxy of o (dns:// resolved now, and
 * again by the keeper every few seconds, so a proxy that appears is asked
 * too). Best effort: a proxy that does not take it is a warning. False when
 * there is nothing to observe (no proxy, no table).
 */
bool apply_latency_observe_start(struct latency_obs *ob, const struct options *o, int64_t migration_id,
				 const struct qname *tables, int n);

/* Stops the keeper and deletes the observation on every proxy (a no-op when not started). */
void apply_latency_observe_stop(struct latency_obs *ob);

/* Seconds the observation has covered so far (0: not observing). */
int apply_latency_observed_s(const struct latency_obs *ob);

/* One table's merged histograms, read and write. */
struct latency_table {
	char name[LATENCY_TABLE_NAME_MAX];
	struct latency_hist h[WATCH_LATENCY_KINDS];
};

/* What every proxy measured over the last window_s seconds, merged. */
struct latency_reading {
	int window_s;
	int proxies;  /* proxies asked */
	int answered; /* proxies whose answer is in */
	struct latency_table *t;
	int n;
};

/*
 * GET /latency?window_s=N&buckets=1 from every proxy (as of now), merged
 * into 'out' for the observation's tables (each table present, counts 0
 * when nothing was measured). False, with 'err' filled, when no proxy
 * answered; a partial answer is true with out->answered < out->proxies.
 */
bool apply_latency_read(const struct latency_obs *ob, int window_s, struct latency_reading *out, char *err,
			size_t errlen) __attribute__((warn_unused_result));
void apply_latency_reading_free(struct latency_reading *r);

/* count, p50, p95, p99, max of one histogram. */
void apply_latency_summarize(const struct latency_hist *h, struct watch_latency *out);

/* The reading as watch_rules.h's tables (summaries; names borrowed from 'r'); the caller frees. */
struct watch_latency_table *apply_latency_tables(const struct latency_reading *r);

/* {window_s, proxies, answered, tables: {name: {read: {count, p50_ms, p95_ms, p99_ms, max_ms}, write}}} */
cJSON *apply_latency_reading_json(const struct latency_reading *r);

/*
 * The baseline ('before', NULL: none) and the watch ('after') side by side,
 * per table and kind: a "latency" event (JSON: {baseline, watch}) and for
 * people a table with what the watch added to each statistic.
 */
void apply_latency_side_by_side(const struct latency_reading *before, const struct latency_reading *after);

#endif
