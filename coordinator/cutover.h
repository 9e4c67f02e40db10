/*
 * The hold path (docs/architecture.md, apply step 6): runs a set of strong-lock steps in
 * one transaction, with the proxies holding exactly the work that would
 * queue behind them. Per attempt: wait without holding while an old
 * transaction holds a conflicting lock; hold on every proxy (all must
 * acknowledge); wait, within the stall budget, for conflicting locks of
 * sessions already inside a transaction; BEGIN, SET LOCAL lock_timeout to
 * what is left of the budget, the DDL and its journal rows, COMMIT; release
 * on every path. Failed attempts back off with jitter. Used for the
 * cutover, the finalize steps and rollbacks.
 */
#ifndef PGVALVE_COORDINATOR_CUTOVER_H
#define PGVALVE_COORDINATOR_CUTOVER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "db.h"
#include "options.h"
#include "plan.h"

/* One statement of a hold-path transaction and what it locks. */
struct cutover_stmt {
	const char *sql;
	struct qname table;
	struct qname other; /* a second table it locks ("" if none) */
	enum plan_lock lock;
	enum plan_hold hold;
};

struct cutover_job {
	const char *what; /* "cutover", "finalize", "rollback" (for people and hold ids) */
	const struct cutover_stmt *stmts;
	int n_stmts;
	const char *const *journal_sql; /* run in the same transaction, after the DDL */
	int n_journal_sql;
	/*
	 * The migration the statements belong to. Each hold of each attempt
	 * goes into its evidence (hold_acks, pgvalve report): {attempt,
	 * hold_id, mode, acked, proxies: [{proxy, status, ack_ms, held_ms,
	 * error?}]}; a proxy's held_ms runs from its acknowledgement to its
	 * confirmed release (null: not released by us, its lease ends it).
	 */
	int64_t migration_id;
	/*
	 * Called (when not NULL) after each attempt that failed, before the
	 * back-off, with 'arg', the attempt's number and why it failed: the
	 * caller records it where a committed attempt would not undo it.
	 */
	void (*attempt_failed)(void *arg, int attempt, const char *why);
	void *arg;
	/*
	 * The DDL changes the row types of the tables it holds all traffic on:
	 * once committed, and before the hold is released, every proxy
	 * re-prepares the statements reading them (statement refresh,
	 * docs/architecture.md §4.9). A proxy that fails it is a warning.
	 */
	bool refresh_statements;
};

struct cutover_result {
	int attempts;
	int64_t held_ms;  /* traffic held, from ack to release, summed over every attempt */
	char why[1024];   /* the last failure */
	int proxy_status; /* a proxy refused the last failed attempt's hold with this HTTP status
			     (-1: it did not answer; 0: no proxy refused) */
	time_t began;     /* committed: time() when its transaction began, so the second the
			     DDL became visible in is this one or later */
};

/*
 * Runs 'job' through the hold path with 'ddl' (a connection that is not in a
 * transaction) and 'observer' (a second connection, for pg_locks). True when
 * committed; false after o->attempts failed attempts, or a failure retrying
 * cannot fix ('res->why' says which): among those, a proxy that refuses the
 * hold with 401 or 403 (a missing or wrong admin token) ends it at once.
 * Each hold every proxy acknowledged is reported as a "holding" event
 * naming the proxies (JSON: "hold_id", "mode", "tables", "proxies", "in_transaction").
 */
bool cutover_run(PGconn *ddl, PGconn *observer, const struct options *o, const struct cutover_job *job,
		 struct cutover_result *res) __attribute__((warn_unused_result));

#endif
