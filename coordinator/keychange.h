/*
 * The online key type change (docs/architecture.md §4.9): ALTER COLUMN id
 * TYPE bigint on an integer primary key that foreign keys reference, done
 * without rewriting a table under ACCESS EXCLUSIVE: bigint shadow columns
 * kept equal by triggers and backfilled in batches, indexes and foreign keys
 * built for them beside the old ones, then one swap under an `all` hold.
 *
 * keychange.c       the rule: which statements are a key type change
 * keychange_catalog.c  the catalog: what the change involves, what refuses it
 * keychange_plan.c  the steps, the swap back kept in the journal, notes, refusals
 * keychange_prepare.c  running the shadow and backfill steps
 * keychange_swap.c  after the swap: finalize, or swap back (a rollback)
 */
#ifndef PGVALVE_COORDINATOR_KEYCHANGE_H
#define PGVALVE_COORDINATOR_KEYCHANGE_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "db.h"
#include "options.h"
#include "plan.h"

/* Suffixes of the columns the change adds (shadow, before the swap) and keeps (old, after it). */
#define KEYCHANGE_NEW_SUFFIX "pgvalve_new"
#define KEYCHANGE_OLD_SUFFIX "pgvalve_old"
/* BEFORE ROW triggers fire in name order: this one last, so it copies the key other triggers set. */
#define KEYCHANGE_TRIGGER "zz_pgvalve_keychange"

/* Whether an AlterTableCmd (its fields) is ALTER COLUMN … TYPE bigint / int8, nothing more. */
bool keychange_wants(const cJSON *at);

/*
 * Resolves p->keychange_reqs against the catalog through 'c' (read-only):
 * each key with the foreign key columns that reference it (those the file
 * leaves out added, with a note; the file's lines for them folded in), and
 * the steps of the change added to p->steps in execution order. A request
 * that cannot be carried out becomes a refusal (p->refusals) naming why.
 * False only when the catalog could not be read ('err').
 */
bool keychange_resolve(PGconn *c, struct plan *p, struct db_error *err) __attribute__((warn_unused_result));

struct migration;

/*
 * Runs a prepare step of the change (keychange_prepare.c) and records it
 * done: STEP_KEYCHANGE_SHADOW through the hold path, STEP_KEYCHANGE_BACKFILL
 * in batches, resuming where the journal says a killed run stopped. False
 * (reported) when it could not.
 */
bool keychange_prepare_step(struct migration *a, const struct plan_step *st);

/*
 * Drops what a committed key change kept for a rollback (keychange_swap.c):
 * the old columns, the triggers and their functions, through the hold path;
 * recorded in the journal. Returns the exit code (refused: not a committed
 * key change waiting for it).
 */
int keychange_finalize(struct migration *a);

/*
 * The key change's part of rolling back migration 'id' before its swap
 * (rollback.c): its shadow columns, triggers and functions dropped through
 * the hold path (true also when the migration is no key change). False
 * with 'why' when they could not be.
 */
bool keychange_rollback(PGconn *ddl, PGconn *observer, const struct options *o, int64_t id, char *why,
			size_t cap);

/*
 * Takes back the swap of migration 'id' (rollback.c), from the statements
 * its journaled plan keeps ("keychange_undo"): refused ('why') when rows
 * written since the swap hold keys the old type cannot; recorded in the
 * journal. Afterwards keychange_rollback() drops the then shadow columns.
 */
bool keychange_unswap(PGconn *ddl, PGconn *observer, const struct options *o, int64_t id, char *why,
		      size_t cap);

#endif
