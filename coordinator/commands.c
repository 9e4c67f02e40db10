/*
 * What the commands (commands.h, one file each: cmd_<name>.c) share:
 * connecting to the database they were given, with one error and hint when
 * that fails. The commands themselves and their output are not here.
 */
#include "commands.h"

#include "report.h"

PGconn *commands_connect(const struct options *o, const char *role)
{
	struct db_error err;
	PGconn *c = db_connect(o->db ? o->db : "", role, &err);

	if (!c)
		report_error("cannot connect to the database", err.msg,
			     "check --db, PGVALVE_DB or the PG* variables");
	return c;
}
