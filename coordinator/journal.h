/*
 * The journal (DESIGN.md §4.3): schema pgvalve in the target database, so a
 * crash at any instant leaves it true. Every DDL statement runs in the same
 * transaction as the journal update that records it: callers put
 * journal_*_sql() text inside their own transaction. Also the one-coordinator
 * lock (a session advisory lock) and the snapshot of prior constraints.
 */
#ifndef PGVALVE_COORDINATOR_JOURNAL_H
#define PGVALVE_COORDINATOR_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "plan.h"

enum mig_state {
	MIG_PLANNED,
	MIG_CHECKED,
	MIG_SNAPSHOTTED,
	MIG_PREPARED,
	MIG_CUTOVER,
	MIG_VALIDATED,
	MIG_FINALIZED,
	MIG_WATCHING,
	MIG_COMMITTED,
	MIG_ROLLING_BACK,
	MIG_ROLLED_BACK,
	MIG_FAILED,
};

const char *journal_state_name(enum mig_state s);
bool journal_state_parse(const char *name, enum mig_state *out);

/* Creates schema pgvalve and its tables if missing. */
bool journal_ensure(PGconn *c, struct db_error *err) __attribute__((warn_unused_result));

/*
 * Takes the coordinator lock for this database (session level: held until
 * the connection ends) and records the coordinator's sessions. A holder
 * orphaned by a dead coordinator is ended or waited for (orphan.h). False
 * when a live coordinator (or one that cannot be judged, after a bounded
 * wait) holds it: '*holder_pid' says which backend (0: unknown), 'err' whose.
 */
bool journal_lock(PGconn *c, int *holder_pid, struct db_error *err) __attribute__((warn_unused_result));

/* Records a new migration (state planned) and its steps; '*id' is its id. */
bool journal_create(PGconn *c, const struct plan *p, const char *plan_json, const char *options_json,
		    int64_t *id, struct db_error *err) __attribute__((warn_unused_result));

/* UPDATE statements to run inside a caller's transaction (malloc'd; the caller frees). */
char *journal_state_sql(int64_t id, enum mig_state s);
char *journal_step_sql(int64_t id, int seq, const char *state, int attempts);

/* Sets the state in its own transaction; 'error' (may be NULL) is recorded. */
bool journal_set_state(PGconn *c, int64_t id, enum mig_state s, const char *error, struct db_error *err)
	__attribute__((warn_unused_result));

/* Counts an attempt of a step, with why it failed (NULL: cleared), in its own transaction. */
bool journal_step_attempt(PGconn *c, int64_t id, int seq, const char *error, struct db_error *err)
	__attribute__((warn_unused_result));

/*
 * Records the constraints of 'tables' (and their columns' NOT NULL, and
 * their indexes) as they are now, in pgvalve.prior_constraints, to restore
 * on rollback (contype 'n': a NOT NULL column, 'i': an index).
 */
bool journal_snapshot(PGconn *c, int64_t id, const struct qname *tables, int n, struct db_error *err)
	__attribute__((warn_unused_result));

/* The state of migration 'id'; false if there is no such migration. */
bool journal_get_state(PGconn *c, int64_t id, enum mig_state *out, struct db_error *err)
	__attribute__((warn_unused_result));

#endif
