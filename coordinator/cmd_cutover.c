/*
 * pgvalve cutover ID: lets an apply that was started with
 * --postpone-cutover go on to its cutover (it polls the journal).
 */
#include <stdio.h>

#include "commands.h"
#include "db.h"
#include "journal.h"
#include "report.h"

int cmd_cutover(struct options *o)
{
	struct db_error err;
	const char *params[1];
	PGresult *r;
	PGconn *c;
	int rc = EXIT_DONE;

	if (o->n_args != 1) {
		report_error("cutover needs the migration id", NULL,
			     "pgvalve cutover ID --db URL (pgvalve status lists ids)");
		return EXIT_USAGE;
	}
	c = db_connect(o->db ? o->db : "", "cutover", &err);
	if (!c) {
		report_error("cannot connect to the database", err.msg,
			     "check --db, PGVALVE_DB or the PG* variables");
		return EXIT_USAGE;
	}
	params[0] = o->args[0];
	r = journal_ensure(c, &err)
		? db_query(c,
			   "UPDATE pgvalve.migrations SET cutover_released = true, updated_at = now() "
			   "WHERE id = $1::bigint AND state NOT IN ('committed', 'rolled_back', 'failed') "
			   "RETURNING state",
			   1, params, &err)
		: NULL;
	if (!r) {
		report_error("cannot release the cutover", err.msg, NULL);
		rc = EXIT_ATTENTION;
	} else if (PQntuples(r) == 0) {
		report_error("no migration with that id is waiting", NULL,
			     "pgvalve status shows each migration's state");
		rc = EXIT_REFUSED;
	} else {
		report_event("cutover_released", NULL, "migration %s: cutover released (state %s)",
			     o->args[0], PQgetvalue(r, 0, 0));
	}
	PQclear(r);
	PQfinish(c);
	return rc;
}
