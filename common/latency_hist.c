/*
 * Log-linear latency buckets (see latency_hist.h). Index of 'us' >= 100:
 * 100 + 90 * (decade - 2) + (m - 10), where 'us' has decade + 1 digits and
 * m is its first two digits.
 */
#include "pgvalve/latency_hist.h"

const uint64_t latency_hist_le_us[LATENCY_HIST_LE_N] = {
	100,   250,    500,    1000,   2500,    5000,    10000,   25000,
	50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

int latency_hist_index(uint64_t us)
{
	uint64_t scale = 1;
	int decade = 0;

	if (us < 100)
		return (int)us;
	if (us >= LATENCY_HIST_MAX_US)
		return LATENCY_HIST_BUCKETS - 1;
	/* us / scale ends in 10..99: scale = 10^(digits - 2). */
	while (us / scale >= 100) {
		scale *= 10;
		decade++;
	}
	return 100 + 90 * (decade - 1) + (int)(us / scale - 10);
}

uint64_t latency_hist_lower_us(int i)
{
	uint64_t scale = 10;

	if (i < 100)
		return (uint64_t)i;
	for (int d = (i - 100) / 90; d > 0; d--)
		scale *= 10;
	return (uint64_t)(10 + (i - 100) % 90) * scale;
}

uint64_t latency_hist_upper_us(int i)
{
	uint64_t scale = 10;

	if (i < 100)
		return (uint64_t)i + 1;
	for (int d = (i - 100) / 90; d > 0; d--)
		scale *= 10;
	return (uint64_t)(11 + (i - 100) % 90) * scale;
}

void latency_hist_add(struct latency_hist *into, const struct latency_hist *from)
{
	into->count += from->count;
	into->sum_us += from->sum_us;
	if (from->max_us > into->max_us)
		into->max_us = from->max_us;
	for (int i = 0; i < LATENCY_HIST_BUCKETS; i++)
		into->v[i] += from->v[i];
}

uint64_t latency_hist_quantile_us(const struct latency_hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	/* ceil(q * count), where 0.07 * 100 = 7.000000000000001 is 7 */
	rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count - 1e-9)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (int i = 0; i < LATENCY_HIST_BUCKETS; i++) {
		seen += h->v[i];
		if (seen >= rank) {
			uint64_t up = latency_hist_upper_us(i);

			return up < h->max_us ? up : h->max_us;
		}
	}
	return h->max_us; /* defensive: counts that do not add up to 'count' */
}

int latency_hist_le_of(int i)
{
	uint64_t up = latency_hist_upper_us(i);
	int k = 0;

	if (i == LATENCY_HIST_BUCKETS - 1)
		return LATENCY_HIST_LE_N;
	while (k < LATENCY_HIST_LE_N && latency_hist_le_us[k] < up)
		k++;
	return k;
}
