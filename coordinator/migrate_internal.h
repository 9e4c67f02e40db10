/*
 * What the files of the migration phases share, and nothing else should use:
 * migrate.c (prepare, the wait for a window, cutover, validate, finalize,
 * commit or roll back) and migrate_watch.c (the baseline before the cutover,
 * the watch after it, and what the watch records; docs/architecture.md §4.2,
 * §4.10). The public interface is migrate.h.
 */
#ifndef PGVALVE_COORDINATOR_MIGRATE_INTERNAL_H
#define PGVALVE_COORDINATOR_MIGRATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "journal.h"
#include "migrate.h"

/* Sets the journal state; on failure reports and returns false. */
bool migrate_set_state(struct migration *a, enum mig_state s, const char *error);

/*
 * Just before the cutover: each affected table's latency over the baseline
 * (a->baseline_lat, recorded for `pgvalve report`) and the proxies' /errors
 * over WATCH_BASELINE_S (a->baseline, NULL when a proxy did not answer), the
 * numbers the watch compares with.
 */
void migrate_watch_baseline(struct migration *a);

/*
 * Watches the proxies' error counts and the affected tables' latency until
 * --watch seconds after the cutover. False when a rollback rule tripped,
 * with 'why' saying which; true otherwise (no watch, no proxies, or it ran out).
 */
bool migrate_watch(struct migration *a, char *why, size_t cap) __attribute__((warn_unused_result));

/* The affected tables' latency since the cutover beside the baseline: shown and recorded (evidence.h). */
void migrate_watch_record_latency(struct migration *a);

/* The client errors the proxies counted since the cutover, recorded for `pgvalve report` (evidence.h). */
void migrate_watch_record_errors(struct migration *a);

#endif
