/*
 * Preflight (docs/architecture.md, apply step 2): read-only checks of a plan against
 * the database, each under a statement_timeout. Errors refuse the migration
 * (exit 1, nothing changed); warnings are shown and the migration goes on.
 */
#ifndef PGVALVE_COORDINATOR_PREFLIGHT_H
#define PGVALVE_COORDINATOR_PREFLIGHT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "db.h"
#include "options.h"
#include "plan.h"

enum finding_level { FINDING_INFO, FINDING_WARNING, FINDING_ERROR };

struct finding {
	enum finding_level level;
	char check[32];    /* "orphans", "violations", "type_mismatch", ... */
	char subject[256]; /* the constraint or table it is about */
	char *message;     /* what was found (malloc'd) */
	char *detail;      /* samples, PIDs, ... (malloc'd, may be NULL) */
	char *hint;        /* what to do (malloc'd, may be NULL) */
	long long count;   /* rows found, where that applies (-1: not counted) */
};

struct preflight {
	struct finding *findings;
	int n;
	int errors;
	int warnings;
	/* Per constraint (plan.constraints order): the table's estimated rows (reltuples), -1 unknown. */
	long long *rows_to_validate;
};

/*
 * Runs every check. False only when the checks themselves could not run
 * ('err'); findings (errors included) come back in 'out'.
 */
bool preflight_run(PGconn *c, const struct plan *p, const struct options *o, struct preflight *out,
		   struct db_error *err) __attribute__((warn_unused_result));

void preflight_free(struct preflight *pf);

/* Findings as JSON (an array) for plan --format json and apply events. */
cJSON *preflight_to_json(const struct preflight *pf);

const char *finding_level_name(enum finding_level l);

#endif
