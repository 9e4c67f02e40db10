/*
 * The journal: schema pgvalve in the target database (docs/architecture.md,
 * the journal), so a crash at any instant leaves it true. Every query of
 * the pgvalve.* tables is here, behind one function each; no other file
 * names them. Every DDL statement runs in the same transaction as the
 * journal update that records it: callers put journal_*_sql() text inside
 * their own transaction. Also the one-coordinator lock (a session advisory
 * lock) and the snapshot of prior constraints.
 *
 * Functions that read fill arrays the caller frees with the matching
 * journal_*_free(); on failure they return false with 'err' filled and
 * leave nothing to free.
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

/*
 * Creates schema pgvalve and its tables if missing, and upgrades in place a
 * journal an earlier pgvalve created (see journal.c). Idempotent; on a
 * journal that is up to date it takes no lock that waits for a running
 * coordinator.
 */
bool journal_ensure(PGconn *c, struct db_error *err) __attribute__((warn_unused_result));

/*
 * Takes the coordinator lock for this database (session level: held until
 * the connection ends) and records the coordinator's sessions. A holder
 * orphaned by a dead coordinator is ended or waited for (orphan.h). False
 * when a live coordinator (or one that cannot be judged, after a bounded
 * wait) holds it: '*holder_pid' says which backend (0: unknown), 'err' whose.
 */
bool journal_lock(PGconn *c, int *holder_pid, struct db_error *err) __attribute__((warn_unused_result));

/* ---- writing ------------------------------------------------------------ */

/* Records a new migration (state planned) and its steps; '*id' is its id. */
bool journal_create(PGconn *c, const struct plan *p, const char *plan_json, const char *options_json,
		    int64_t *id, struct db_error *err) __attribute__((warn_unused_result));

/*
 * UPDATE statements to run inside a caller's transaction, after the DDL
 * they record (the caller frees them): the migration's new state; a step
 * done (its attempt counted, its last error cleared).
 */
char *journal_state_sql(int64_t id, enum mig_state s);
char *journal_step_done_sql(int64_t id, int seq);

/* Sets the state in its own transaction; 'error' (may be NULL) is recorded. */
bool journal_set_state(PGconn *c, int64_t id, enum mig_state s, const char *error, struct db_error *err)
	__attribute__((warn_unused_result));

/* Counts an attempt of a step, with why it failed (NULL: cleared), in its own transaction. */
bool journal_step_attempt(PGconn *c, int64_t id, int seq, const char *error, struct db_error *err)
	__attribute__((warn_unused_result));

/*
 * Records the constraints of 'tables' (and their columns' NOT NULL, and
 * their indexes) as they are now, in pgvalve.prior_constraints, to restore
 * on rollback (contype 'n': a NOT NULL column, 'i': an index). A table that
 * does not exist has nothing to record.
 */
bool journal_snapshot(PGconn *c, int64_t id, const struct qname *tables, int n, struct db_error *err)
	__attribute__((warn_unused_result));

/*
 * `pgvalve cutover ID`: lets migration 'id' go on to its cutover.
 * '*found' false (and true returned) when no migration with that id is
 * still running (committed, rolled back and failed ones are not);
 * otherwise '*state' is its state.
 */
bool journal_release_cutover(PGconn *c, int64_t id, bool *found, enum mig_state *state, struct db_error *err)
	__attribute__((warn_unused_result));

/* ---- reading ------------------------------------------------------------ */

/* One migration as the journal records it; strings are owned (journal_migration_free). */
struct journal_migration {
	int64_t id;
	char *name;
	enum mig_state state;
	bool cutover_released; /* `pgvalve cutover ID` ran */
	char *started_at;      /* timestamps as the server prints them */
	char *finished_at;     /* "" until it is committed or rolled back */
	char *cutover_at;      /* "" until its cutover committed */
	int64_t cutover_epoch; /* cutover_at in whole seconds since 1970 (its second); 0 until then */
	char *error;           /* "" when none */
	char *plan_json;       /* the plan as recorded (plan_to_json's shape); NULL from journal_list */
	char *options_json; /* what apply recorded beside it (the ORM record, orm.h); NULL from journal_list */
};

void journal_migration_free(struct journal_migration *m);
void journal_migrations_free(struct journal_migration *m, int n);

/*
 * Migration 'id'. '*found' false (and true returned) when there is none. A
 * state this pgvalve does not know is an error.
 */
bool journal_read_migration(PGconn *c, int64_t id, struct journal_migration *out, bool *found,
			    struct db_error *err) __attribute__((warn_unused_result));

/* Whether `pgvalve cutover ID` released migration 'id' (false also when there is no such migration). */
bool journal_cutover_released(PGconn *c, int64_t id, bool *released, struct db_error *err)
	__attribute__((warn_unused_result));

/* The newest 'limit' migrations, newest first, without their plans. */
bool journal_list(PGconn *c, int limit, struct journal_migration **out, int *n, struct db_error *err)
	__attribute__((warn_unused_result));

/*
 * The newest migration neither committed nor rolled back (what `recover`
 * finishes or undoes): '*found' false (and true returned) when there is
 * none; otherwise its id and state.
 */
bool journal_find_unfinished(PGconn *c, int64_t *id, enum mig_state *state, bool *found, struct db_error *err)
	__attribute__((warn_unused_result));

/* One step as the journal records it. */
struct journal_step {
	struct plan_step step; /* seq, kind, phase, sql, table, other, index, lock, hold;
				  constraint, drop and input are -1 (the journal keeps none) */
	bool done;
	int attempts;
	char *error; /* why the last attempt failed; "" when none */
};

/* Steps of migration 'id' in order. A kind, phase, lock or hold this pgvalve does not know is an error. */
bool journal_read_steps(PGconn *c, int64_t id, struct journal_step **out, int *n, struct db_error *err)
	__attribute__((warn_unused_result));
void journal_steps_free(struct journal_step *s, int n);

/* A constraint, NOT NULL column or index as it was before the migration (journal_snapshot). */
struct journal_prior {
	char *table; /* as oid::regclass::text printed it then */
	char *name;  /* constraint, column ('n') or index ('i') */
	char contype;
	char *definition; /* pg_get_constraintdef / pg_get_indexdef; "NOT NULL" for 'n' */
	bool validated;
};

bool journal_read_prior(PGconn *c, int64_t id, struct journal_prior **out, int *n, struct db_error *err)
	__attribute__((warn_unused_result));
void journal_prior_free(struct journal_prior *p, int n);

/* ---- what a rollback does ------------------------------------------------ */

/* One statement that undoes part of a migration, built on the server from oids and prior definitions. */
struct journal_undo {
	char *sql;
	struct qname table; /* the table it alters */
	struct qname other; /* a restored foreign key's referenced table ("" otherwise) */
	char *validate;     /* NULL, or the VALIDATE CONSTRAINT to run after (a restored FK or CHECK) */
};

/*
 * What rolling migration 'id' back takes now, compared with the catalog:
 * drops of what it added that exists (constraints, NOT NULL), then the prior
 * constraints that are gone or differ, re-added NOT VALID when they were
 * validated. None before its cutover committed (it changed no constraint).
 */
bool journal_undo_statements(PGconn *c, int64_t id, struct journal_undo **out, int *n, struct db_error *err)
	__attribute__((warn_unused_result));
void journal_undo_free(struct journal_undo *u, int n);

/*
 * DROP INDEX CONCURRENTLY statements for the indexes migration 'id' built
 * that were not there at its snapshot and back no constraint now.
 */
bool journal_built_indexes(PGconn *c, int64_t id, char ***drops, int *n, struct db_error *err)
	__attribute__((warn_unused_result));
void journal_strings_free(char **s, int n);

/* ---- coordinator sessions ------------------------------------------------ */

/*
 * pgvalve.coordinator_sessions records whose each coordinator session is, so
 * a later coordinator can tell a session orphaned by a dead coordinator
 * (orphan.h). Machine and process identities are found by orphan.c; these
 * functions only store and read them.
 */

/* A coordinator process: which process, in which PID space. */
struct journal_coordinator {
	int pid;
	long long started; /* clock ticks after boot (/proc/PID/stat field 22); 0: unknown */
	char host[256];
	char machine[300]; /* boot id and PID namespace: equal means one PID space */
};

/* A connected backend, named exactly: a reused pid has another backend_start. */
struct journal_backend {
	int pid;
	char backend_start[64]; /* as the server prints it */
};

/* A backend as pg_stat_activity shows it and the journal records it. */
struct journal_session {
	struct journal_backend backend;
	char state[32];
	char query[256]; /* its (last) query, whitespace folded, cut to 200 characters */
	char since[40];  /* when that query started; "" when unknown */
	double running_s;
	bool recorded; /* the journal has its row: the rest is set */
	char application_name[64];
	struct journal_coordinator coordinator;
};

/*
 * Creates pgvalve.coordinator_sessions if missing. Idempotent; when the
 * table exists it takes no lock that waits for a running coordinator.
 */
bool journal_sessions_ensure(PGconn *c, struct db_error *err) __attribute__((warn_unused_result));

/*
 * Backend 'pid' and, when recorded, whose it is. '*found' false (and true
 * returned) when it is not connected. A journal without the sessions table
 * (an older pgvalve created it) records nobody.
 */
bool journal_read_session(PGconn *c, int pid, struct journal_session *out, bool *found, struct db_error *err)
	__attribute__((warn_unused_result));

/*
 * The coordinators of machine 'machine' that have a recorded session still
 * connected, other than the caller's own backend; each once, 'host' left
 * empty. The caller frees '*out' with free().
 */
bool journal_connected_coordinators(PGconn *c, const char *machine, struct journal_coordinator **out, int *n,
				    struct db_error *err) __attribute__((warn_unused_result));

/*
 * The recorded sessions of coordinator 'co' (pid, started and machine) that
 * are still connected, other than the caller's own backend. The caller
 * frees '*out' with free().
 */
bool journal_coordinator_backends(PGconn *c, const struct journal_coordinator *co,
				  struct journal_backend **out, int *n, struct db_error *err)
	__attribute__((warn_unused_result));

/* Forgets the records of backends that are no longer connected: they name nobody any more. */
bool journal_forget_ended_sessions(PGconn *c, struct db_error *err) __attribute__((warn_unused_result));

/*
 * Records backends 'pids' as sessions of coordinator 'self', the one running
 * on 'c' as holding the lock. Only a connected backend whose
 * application_name names this coordinator's pid (db.h) is recorded, so a
 * pid closed and reused is not; one already recorded is left as it is.
 */
bool journal_record_sessions(PGconn *c, const struct journal_coordinator *self, const int *pids, int n,
			     struct db_error *err) __attribute__((warn_unused_result));

/* A user's index to build again (journal_absorbed_indexes). */
struct journal_index_restore {
	char *name;   /* the index's name, as the snapshot recorded it */
	char *drop;   /* NULL, or DROP INDEX CONCURRENTLY of an invalid index of that name first */
	char *create; /* its snapshotted definition (pg_get_indexdef), built CONCURRENTLY */
};

/*
 * The indexes that existed at the snapshot of migration 'id' (valid then)
 * and that an ADD CONSTRAINT … USING INDEX step of it attaches, which are
 * not on their table under their name now, or are there but invalid: the
 * constraint took the index over (renamed it to the constraint's name), so
 * dropping the constraint would drop the user's index with it. Building
 * each again before the constraint goes keeps the table indexed throughout;
 * pg_get_indexdef prints the rebuilt one exactly as the snapshot recorded.
 */
bool journal_absorbed_indexes(PGconn *c, int64_t id, struct journal_index_restore **out, int *n,
			      struct db_error *err) __attribute__((warn_unused_result));
void journal_index_restores_free(struct journal_index_restore *r, int n);

#endif
