/*
 * What apply records on its way for `pgvalve report` (docs/architecture.md
 * §4, evidence), in pgvalve.evidence (journal_evidence.h): the cutover's
 * attempts and hold, the client errors the proxies counted during the
 * watch, each proxy's acknowledgement time of each hold, each affected
 * table's latency before the cutover and during the watch, and, right after the cutover, for each new constraint a query
 * built from the catalog that counts the rows violating it (run by the
 * report's damage assessment after a rollback, when the constraint is gone).
 * Recording is best effort: a failure is a warning, never a reason to stop.
 */
#ifndef PGVALVE_COORDINATOR_EVIDENCE_H
#define PGVALVE_COORDINATOR_EVIDENCE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "db.h"
#include "options.h"
#include "plan.h"

#define EVIDENCE_CUTOVER "cutover"
#define EVIDENCE_WATCH_ERRORS "watch_errors"
#define EVIDENCE_VIOLATION_QUERY "violation_query"
#define EVIDENCE_HOLD_ACKS "hold_acks"

/* After the cutover committed: its attempts, traffic held, the proxies; and the violation queries. */
void evidence_cutover(PGconn *c, int64_t id, const struct plan *p, const struct options *o, int attempts,
		      int64_t held_ms);

/* The proxies' /errors over the watch ('errors': watch_errors_sum's shape; NULL: not read). */
void evidence_watch_errors(PGconn *c, int64_t id, int window_s, const cJSON *errors);

/*
 * Each proxy's acknowledgement of each hold of a hold-path job ('what':
 * "cutover", "finalize"), as cutover_job.hold_log has them.
 */
void evidence_hold_acks(PGconn *c, int64_t id, const char *what, const cJSON *hold_log);

struct latency_reading;

/* Each table's read and write latency of 'phase' ("baseline" or "watch"), in pgvalve.latency. */
void evidence_latency(PGconn *c, int64_t id, const char *phase, const struct latency_reading *r);

#endif
