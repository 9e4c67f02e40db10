/*
 * A migration being carried out (see migrate.c): what apply builds from the
 * files and recover rebuilds from the journal, and the phases that run it
 * from whatever state the journal records to committed or rolled_back.
 */
#ifndef PGVALVE_COORDINATOR_MIGRATE_H
#define PGVALVE_COORDINATOR_MIGRATE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "apply_latency.h"
#include "db.h"
#include "journal.h"
#include "options.h"
#include "orm.h"
#include "plan.h"
#include "preflight.h"
#include "watch_rules.h"
#include "window.h"

struct migration {
	struct options *o;
	struct plan p;    /* from the files (apply) or the journal's steps (recover) */
	bool *done;       /* per step: the journal says done */
	PGconn *ddl;      /* journal, DDL, the coordinator lock */
	PGconn *observer; /* pg_locks, preflight */
	int64_t id;
	struct window windows[WINDOW_MAX];
	int n_windows;
	struct watch_rule rules[WATCH_MAX_RULES];
	int n_rules;
	cJSON *baseline;   /* /errors over WATCH_BASELINE_S before the cutover */
	time_t cutover_at; /* when the cutover committed (0: not yet) */
	int64_t cutover_held_ms;
	double validate_rows_per_s; /* measured by the last validation, for the next estimate */
	const long long *rows;      /* per constraint: rows to validate (NULL: unknown) */
	struct orm_record orm;  /* --orm: the ORM's record, written with `committed` (tool ORM_NONE: none) */
	struct latency_obs obs; /* the affected tables observed on every proxy (apply_latency.h) */
	struct latency_reading baseline_lat; /* their latency before the cutover (n 0: not measured) */
	int64_t quiet_since_ms; /* clock_mono_ms() once the preparation ended: the baseline starts here */
	char fleet_seen[1024];  /* the proxies the watch last read, to say when that changes */
};

/* Parses the windows and rollback rules of m->o; reports and returns false on a bad one. */
bool migrate_settings(struct migration *m) __attribute__((warn_unused_result));

/*
 * Runs the migration from 'state' (the journal's) to its end. Returns the
 * exit code: done, rolled back, or needs attention.
 */
int migrate_run(struct migration *m, enum mig_state state);

/*
 * Connects m->ddl and m->observer to m->o->db and takes the one-coordinator
 * lock. Returns EXIT_DONE, or reports and returns the exit code to end with.
 */
int migrate_connect(struct migration *m, const char *role);

/*
 * Rebuilds migration 'id' from the journal, with m->ddl connected: its steps
 * (and which are done), the new constraints' names, the cutover time, and
 * '*state'. Reports and returns false when it cannot.
 */
bool migrate_load(struct migration *m, int64_t id, enum mig_state *state) __attribute__((warn_unused_result));

void migrate_free(struct migration *m);

/* Releases holds an earlier, killed run of this migration left on the proxies. */
void migrate_release_stale_holds(struct migration *m);

#endif
