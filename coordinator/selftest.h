/*
 * `apply --self-test` (docs/architecture.md §4, evidence): after the
 * validations and finalize steps, proves each new constraint is enforced by
 * making the database refuse a statement that would break it: a child row
 * pointing nowhere and the deletion of a referenced parent row (FK), a
 * violating value (CHECK), a null (NOT NULL), a duplicate (UNIQUE, PRIMARY
 * KEY). Each statement changes one existing row (the test row is built from
 * it: other columns, defaults and NOT NULLs stay satisfied) inside a
 * transaction that is always rolled back, under a short lock_timeout; a
 * timeout that fires is reported, not fatal. Every check is recorded in the
 * journal (journal_evidence.h) for `pgvalve report`.
 */
#ifndef PGVALVE_COORDINATOR_SELFTEST_H
#define PGVALVE_COORDINATOR_SELFTEST_H

#include <stdint.h>

#include "db.h"
#include "plan.h"
#include "strbuf.h"

/* lock_timeout of each check (lower when --lock-timeout is lower) */
#define SELFTEST_LOCK_TIMEOUT_MS 500
/* statement_timeout of each check: finding a referenced parent row may scan */
#define SELFTEST_STATEMENT_TIMEOUT_MS 30000

/*
 * Runs the self-test of migration 'id''s new constraints on 'c' (no
 * transaction open), reports each check and the summary; returns how many
 * constraints were proven enforced ('*total': of how many).
 */
int selftest_run(PGconn *c, int64_t id, const struct plan *p, int lock_timeout_ms, int *total);

/*
 * Appends SQL that lists the columns of <alias>.<arr> (conkey or confkey of
 * relation <alias>.<rel>, a pg_constraint row), each printed by
 * format(<fmt>, attname), joined by <sep> (SQL literals): the catalog quotes
 * every name (also for evidence.c's violation counts).
 */
void selftest_cols_sql(struct strbuf *b, const char *alias, const char *rel, const char *arr, const char *fmt,
		       const char *sep);

/*
 * Runs the SELECT list in 'q' (taken) over the pg_constraint row "con" of
 * constraint 'name' on 'table' (quoted, read as regclass): this appends the
 * FROM and WHERE and binds both as parameters. Returns the result (no row:
 * no such constraint), or NULL with 'err' filled. Also evidence.c's.
 */
PGresult *selftest_constraint_query(PGconn *c, struct strbuf *q, const char *table, const char *name,
				    struct db_error *err);

#endif
