/*
 * The journal's record of a migration's evidence (docs/architecture.md §4,
 * evidence): what `apply --self-test` proved of each new constraint
 * (pgvalve.self_tests), and what apply saw on its way (pgvalve.evidence: the
 * cutover's attempts and hold, the client errors of the watch, the queries
 * that count rows violating each new constraint, each proxy's acknowledgement
 * of each hold) and the latency of each affected table before the cutover and
 * during the watch (pgvalve.latency), for `pgvalve report`. The table is added to an
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

/* One record of pgvalve.evidence: what kind, when, and its JSON. */
struct journal_evidence {
	char *kind; /* EVIDENCE_* (evidence.h) */
	char *at;   /* as the server prints it */
	char *data; /* JSON text */
};

/* Records 'data' (JSON text) of 'kind' for migration 'id'. */
bool journal_evidence_add(PGconn *c, int64_t id, const char *kind, const char *data, struct db_error *err)
	__attribute__((warn_unused_result));

/* Migration 'id''s evidence records, oldest first. */
bool journal_evidence_read(PGconn *c, int64_t id, struct journal_evidence **out, int *n, struct db_error *err)
	__attribute__((warn_unused_result));
void journal_evidence_free(struct journal_evidence *e, int n);

/* A step with its times, for the report. */
struct journal_step_time {
	int seq;
	char *kind;
	char *phase;
	char *sql;
	char *state;
	int attempts;
	char *finished_at; /* "" when not done */
	double duration_s; /* -1: unknown */
};

bool journal_step_times(PGconn *c, int64_t id, struct journal_step_time **out, int *n, struct db_error *err)
	__attribute__((warn_unused_result));
void journal_step_times_free(struct journal_step_time *s, int n);

/* One table's latency of one kind in one phase of a migration (pgvalve.latency). */
struct journal_latency {
	char phase[16]; /* "baseline" (before the cutover) or "watch" */
	char *table;    /* as the observation names it */
	char kind[8];   /* "read" or "write" */
	int window_s;
	int64_t count;
	double ms[4]; /* p50, p95, p99, max (count 0: not measured) */
};

bool journal_latency_add(PGconn *c, int64_t id, const struct journal_latency *l, struct db_error *err)
	__attribute__((warn_unused_result));

/* Migration 'id''s latency, the last record of each phase, table and kind, ordered by table and kind. */
bool journal_latency_read(PGconn *c, int64_t id, struct journal_latency **out, int *n, struct db_error *err)
	__attribute__((warn_unused_result));
void journal_latency_free(struct journal_latency *l, int n);

#endif
