/*
 * common/latency_hist.c: bucket edges (contiguous, at most 10% wide, the
 * Prometheus le values exact edges), the index of every edge and its
 * neighbours, quantiles (never below the true value, at most one bucket
 * above, capped at the maximum), merging, and the le mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pgvalve/latency_hist.h"

static void record(struct latency_hist *h, uint64_t us)
{
	h->v[latency_hist_index(us)]++;
	h->count++;
	h->sum_us += us;
	if (us > h->max_us)
		h->max_us = us;
}

static void test_buckets_are_contiguous_and_narrow(void **state)
{
	(void)state;
	assert_int_equal(latency_hist_lower_us(0), 0);
	for (int i = 0; i < LATENCY_HIST_BUCKETS; i++) {
		uint64_t lo = latency_hist_lower_us(i), hi = latency_hist_upper_us(i);

		assert_true(lo < hi);
		if (i + 1 < LATENCY_HIST_BUCKETS)
			assert_int_equal(hi, latency_hist_lower_us(i + 1));
		/* at most 10% of the lower edge wide (1 µs below 100 µs) */
		assert_true(lo < 100 ? hi - lo == 1 : (hi - lo) * 10 <= lo);
		assert_int_equal(latency_hist_index(lo), i);
		assert_int_equal(latency_hist_index(hi - 1), i);
	}
	assert_int_equal(latency_hist_upper_us(LATENCY_HIST_BUCKETS - 1), LATENCY_HIST_MAX_US);
	assert_int_equal(latency_hist_index(LATENCY_HIST_MAX_US), LATENCY_HIST_BUCKETS - 1);
	assert_int_equal(latency_hist_index(UINT64_MAX), LATENCY_HIST_BUCKETS - 1);
}

static void test_le_values_are_edges(void **state)
{
	(void)state;
	for (int k = 0; k < LATENCY_HIST_LE_N; k++) {
		int i = latency_hist_index(latency_hist_le_us[k]);

		assert_int_equal(latency_hist_lower_us(i), latency_hist_le_us[k]);
		/* the bucket just below the edge counts toward it, the one starting there does not */
		assert_int_equal(latency_hist_le_of(i - 1), k);
		assert_true(latency_hist_le_of(i) > k);
	}
	assert_int_equal(latency_hist_le_of(LATENCY_HIST_BUCKETS - 1), LATENCY_HIST_LE_N);
}

static void test_quantiles(void **state)
{
	static struct latency_hist h, other;
	uint64_t q;

	(void)state;
	assert_int_equal(latency_hist_quantile_us(&h, 0.5), 0);
	for (uint64_t v = 1; v <= 100; v++)
		record(&h, v * 1000); /* 1 ms .. 100 ms */
	/* p50: the 50th value, 50 ms, lies in [50, 51) ms: answered 51 ms */
	assert_int_equal(latency_hist_quantile_us(&h, 0.50), 51000);
	assert_int_equal(latency_hist_quantile_us(&h, 0.99), 100000); /* [99, 100) ms */
	assert_int_equal(latency_hist_quantile_us(&h, 1.0), 100000);  /* capped at the max */
	/* never below the true value, at most 10% above */
	for (int p = 1; p <= 100; p++) {
		q = latency_hist_quantile_us(&h, p / 100.0);
		assert_true(q >= (uint64_t)p * 1000 && q * 10 <= (uint64_t)p * 1000 * 11);
	}
	/* merging: the other worker's values move the quantiles as one histogram would */
	for (int i = 0; i < 100; i++)
		record(&other, 500000);
	latency_hist_add(&h, &other);
	assert_int_equal(h.count, 200);
	assert_int_equal(h.max_us, 500000);
	assert_int_equal(latency_hist_quantile_us(&h, 0.50), 110000); /* 100 ms: in [100, 110) ms */
	assert_int_equal(latency_hist_quantile_us(&h, 0.51), 500000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets_are_contiguous_and_narrow),
		cmocka_unit_test(test_le_values_are_edges),
		cmocka_unit_test(test_quantiles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
