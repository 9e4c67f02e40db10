/*
 * Latency histograms (docs/architecture.md, table latency): log-linear with
 * two significant decimal digits, so every bucket is at most 10% wide
 * (relative to its lower bound) and every decimal boundary a dashboard uses
 * (1 ms, 2.5 ms, 50 ms, 1 s) is an exact bucket edge. Values are whole
 * microseconds. Below 100 µs each microsecond is its own bucket; from 100 µs
 * bucket [m * 10^e, (m + 1) * 10^e) with m in 10..99; values of
 * LATENCY_HIST_MAX_US and more share the last bucket. A dense histogram is
 * an array of LATENCY_HIST_BUCKETS counts: histograms merge by adding them,
 * across seconds, workers or proxies alike.
 */
#ifndef PGVALVE_LATENCY_HIST_H
#define PGVALVE_LATENCY_HIST_H

#include <stdbool.h>
#include <stdint.h>

#define LATENCY_HIST_DECADES 8 /* 100 µs .. 10^10 µs (about 2.8 hours) */
#define LATENCY_HIST_BUCKETS (100 + LATENCY_HIST_DECADES * 90)
#define LATENCY_HIST_MAX_US 10000000000ull

/* The bucket of a latency of 'us' microseconds. */
int latency_hist_index(uint64_t us);

/* Bucket 'i' holds [lo, hi) microseconds (the last bucket: [lo, infinity), hi as if it were not). */
uint64_t latency_hist_lower_us(int i);
uint64_t latency_hist_upper_us(int i);

/* A merged histogram with what its quantiles need. */
struct latency_hist {
	uint64_t count;
	uint64_t sum_us;
	uint64_t max_us; /* the largest value recorded, exactly */
	uint64_t v[LATENCY_HIST_BUCKETS];
};

void latency_hist_add(struct latency_hist *into, const struct latency_hist *from);

/*
 * The q-quantile (0 < q <= 1) in microseconds: the upper edge of the bucket
 * that holds the ceil(q * count)-th smallest value, but never above the
 * largest value recorded. So the true quantile lies within one bucket below
 * the answer, and the answer is never below it. 0 when empty.
 */
uint64_t latency_hist_quantile_us(const struct latency_hist *h, double q);

/*
 * The Prometheus buckets (seconds, ascending) that /metrics reports; each is
 * an exact bucket edge, so cumulative counts are exact. LATENCY_HIST_LE_N of
 * them, then +Inf.
 */
#define LATENCY_HIST_LE_N 16
extern const uint64_t latency_hist_le_us[LATENCY_HIST_LE_N];

/* The index in latency_hist_le_us of the first 'le' bucket 'i' counts toward (LE_N: only +Inf). */
int latency_hist_le_of(int i);

#endif
