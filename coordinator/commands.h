/*
 * The coordinator's commands (docs/architecture.md, the CLI), one file each
 * (cmd_<name>.c), listed in main.c's table. Each returns an exit code
 * (report.h) and reports its own errors.
 */
#ifndef PGVALVE_COORDINATOR_COMMANDS_H
#define PGVALVE_COORDINATOR_COMMANDS_H

#include "db.h"
#include "options.h"
#include "plan.h"

struct command {
	const char *name;
	const char *usage; /* after "pgvalve <name> " */
	const char *summary;
	unsigned flags; /* enum option_flag bits it accepts */
	int (*exec)(struct options *o);
};

int cmd_plan(struct options *o);
int cmd_apply(struct options *o);
int cmd_cutover(struct options *o);
int cmd_status(struct options *o);
int cmd_rollback(struct options *o);
int cmd_recover(struct options *o);
int cmd_audit(struct options *o);
int cmd_finalize(struct options *o);

/* Loads o->args and plans them (cmd_plan.c); reports and returns false on a refusal. */
bool plan_build(struct plan *p, const struct options *o);

/*
 * Plans what only the catalog can plan (the key type change, keychange.h)
 * through 'c'; reports refusals. Returns EXIT_DONE, EXIT_REFUSED or EXIT_ATTENTION.
 */
int plan_resolve(PGconn *c, struct plan *p, const struct options *o);

#endif
