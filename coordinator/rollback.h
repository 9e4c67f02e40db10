/*
 * Rolling a migration back (docs/architecture.md, apply step 10): through the same hold
 * path as the cutover, drop what the migration added (its constraints, the
 * helper CHECKs, NOT NULL it set) and restore every prior constraint the
 * journal snapshotted that is gone or changed, with the same name and a
 * definition pg_get_constraintdef prints identically afterwards (foreign keys
 * and CHECKs come back NOT VALID and are validated after, without a hold).
 * A user's index that ADD CONSTRAINT … USING INDEX took over is built again
 * first (concurrently, same name and definition), since dropping the
 * constraint drops the index; an index the migration built itself is
 * dropped. Works from the journal alone, so recover can use it after a
 * crash.
 *
 * When it cannot finish, the journal keeps the state rolling_back with the
 * reason and what stopped it in the migration's error (`pgvalve status`).
 */
#ifndef PGVALVE_COORDINATOR_ROLLBACK_H
#define PGVALVE_COORDINATOR_ROLLBACK_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "options.h"

/*
 * Rolls migration 'id' back; 'reason' is recorded. True when the journal
 * says rolled_back at the end; false (reported) when it needs attention.
 */
bool rollback_run(PGconn *ddl, PGconn *observer, const struct options *o, int64_t id, const char *reason)
	__attribute__((warn_unused_result));

#endif
