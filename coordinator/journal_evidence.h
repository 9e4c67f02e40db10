/*
 * The journal's record of a migration's evidence (docs/architecture.md §4,
 * evidence): what `apply --self-test` proved of each new constraint
 * (pgvalve.self_tests), for `pgvalve report`. The table is added to an
 * existing journal in place (journal_ensure runs journal_evidence_schema_sql).
 */
#ifndef PGVALVE_COORDINATOR_JOURNAL_EVIDENCE_H
#define PGVALVE_COORDINATOR_JOURNAL_EVIDENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"

/* CREATE TABLE IF NOT EXISTS …: idempotent, for journal_ensure. */
extern const char journal_evidence_schema_sql[];

/* One check of the self-test, as recorded. */
struct journal_selftest {
	char *constraint_name;
	char *table;   /* as the plan names it, quoted */
	char *kind;    /* foreign_key, check, not_null, unique, primary_key */
	char *check;   /* "insert a child row pointing nowhere", … */
	char *outcome; /* enforced, not_enforced, skipped, lock_timeout, inconclusive */
	char *sqlstate;
	char *detail;
};

/* Forgets migration 'id''s self-test (a new run replaces it). */
bool journal_selftest_clear(PGconn *c, int64_t id, struct db_error *err) __attribute__((warn_unused_result));

/* Records check number 'seq' of migration 'id''s self-test. */
bool journal_selftest_add(PGconn *c, int64_t id, int seq, const struct journal_selftest *t,
			  struct db_error *err) __attribute__((warn_unused_result));

/* Migration 'id''s self-test in order (none when it ran without --self-test). */
bool journal_selftest_read(PGconn *c, int64_t id, struct journal_selftest **out, int *n, struct db_error *err)
	__attribute__((warn_unused_result));
void journal_selftest_free(struct journal_selftest *t, int n);

#endif
