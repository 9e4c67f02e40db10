/*
 * Monotonic time in milliseconds: for deadlines, leases and durations, never
 * for wall-clock display (a monotonic clock does not jump when NTP does).
 */
#ifndef PGVALVE_CLOCK_H
#define PGVALVE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
