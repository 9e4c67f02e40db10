/*
 * The journal's record of the key type change (docs/architecture.md §4.9
 * and §4.3): where each table's backfill got to, so a coordinator killed in
 * the middle resumes at the next batch (pgvalve.keychange_backfill), and
 * which swapped changes are finalized (pgvalve.keychange_finalize) or
 * swapped back by a rollback (pgvalve.keychange_unswapped). The tables are added to an existing journal in place (journal_ensure runs
 * journal_keychange_schema_sql).
 */
#ifndef PGVALVE_COORDINATOR_JOURNAL_KEYCHANGE_H
#define PGVALVE_COORDINATOR_JOURNAL_KEYCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"

/* CREATE TABLE IF NOT EXISTS …: idempotent, for journal_ensure. */
extern const char journal_keychange_schema_sql[];

/* A backfill's position: pages [0, next_block) are done, of [0, end_block). */
struct journal_backfill {
	long long next_block, end_block, rows_done;
};

/* The position of step 'seq' of migration 'id'; '*found' false when it has not started. */
bool journal_backfill_read(PGconn *c, int64_t id, int seq, struct journal_backfill *b, bool *found,
			   struct db_error *err) __attribute__((warn_unused_result));

/* Records that step 'seq' starts: pages [0, end_block) to do. */
bool journal_backfill_start(PGconn *c, int64_t id, int seq, long long end_block, struct db_error *err)
	__attribute__((warn_unused_result));

/*
 * Inside the caller's transaction (with the batch it records): pages up to
 * 'next_block' done, 'rows' more rows written.
 */
bool journal_backfill_advance(PGconn *c, int64_t id, int seq, long long next_block, long long rows,
			      struct db_error *err) __attribute__((warn_unused_result));

/*
 * Whether migration 'id' is a committed key type change whose old columns
 * are still there: swapped, not finalized (pgvalve.keychange_finalize).
 */
bool journal_keychange_waiting(PGconn *c, int64_t id, bool *waiting, struct db_error *err)
	__attribute__((warn_unused_result));

/*
 * Whether a key type change of migration 'id' has swapped (a swap step is
 * done). Its keys are swapped back one by one: journal_keychange_unswapped()
 * says whether key 'key' (its place in the plan's "keychange_undo") is.
 */
bool journal_keychange_swapped(PGconn *c, int64_t id, bool *swapped, struct db_error *err)
	__attribute__((warn_unused_result));
bool journal_keychange_unswapped(PGconn *c, int64_t id, int key, bool *done, struct db_error *err)
	__attribute__((warn_unused_result));

/* INSERT recording that migration 'id' is finalized, for the finalize transaction (the caller frees it). */
char *journal_keychange_finalized_sql(int64_t id);

/* INSERT recording that key 'key' of migration 'id' was swapped back, for the swap back's transaction. */
char *journal_keychange_unswapped_sql(int64_t id, int key);

#endif
