/*
 * The coordinator's commands (docs/architecture.md, the CLI), one file each
 * (cmd_<name>.c), listed in main.c's table. Each returns an exit code
 * (report.h) and reports its own errors.
 */
#ifndef PGVALVE_COORDINATOR_COMMANDS_H
#define PGVALVE_COORDINATOR_COMMANDS_H

#include "db.h"
#include "options.h"
#include "orm.h"
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
int cmd_report(struct options *o);

/*
 * A connection to --db (PGVALVE_DB or libpq's PG* variables when it is not
 * given) named for 'role' (db_connect); NULL when it fails, which is
 * reported with what to check: the caller exits with EXIT_USAGE
 * (commands.c).
 */
PGconn *commands_connect(const struct options *o, const char *role);

/*
 * Loads o->args and plans them (cmd_plan.c), with --orm (orm.h): '*orm'
 * derived from the flags and the file, the ORM's own statements taken out
 * of the plan. Returns the exit code: done, refused (1), or a usage error
 * (2: a file that is not SQL text, ORM names that cannot be derived), each
 * reported.
 */
int plan_build(struct plan *p, const struct options *o, struct orm_record *orm);

/*
 * Whether the ORM's records let the migration go on (orm_check): true, or
 * false reported with '*rc' set (1: the ORM records it as applied; 4: its
 * table cannot be read). '*table_exists': whether the ORM's table is there.
 */
bool plan_orm_check(PGconn *c, const struct orm_record *orm, bool *table_exists, int *rc);

/*
 * Plans what only the catalog can plan (the key type change, keychange.h)
 * through 'c'; reports refusals. Returns EXIT_DONE, EXIT_REFUSED or EXIT_ATTENTION.
 */
int plan_resolve(PGconn *c, struct plan *p, const struct options *o);

#endif
