/*
 * pgvalve cutover ID: lets an apply that was started with
 * --postpone-cutover go on to its cutover (it polls the journal).
 */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "db.h"
#include "journal.h"
#include "report.h"

int cmd_cutover(struct options *o)
{
	struct db_error err;
	enum mig_state state;
	PGconn *c;
	bool found = false;
	char *end = "";
	long long id = o->n_args == 1 ? strtoll(o->args[0], &end, 10) : 0;
	int rc = EXIT_DONE;

	if (id <= 0 || *end) {
		report_error("cutover needs the migration id", NULL,
			     "pgvalve cutover ID --db URL (pgvalve status lists ids)");
		return EXIT_USAGE;
	}
	c = commands_connect(o, "cutover");
	if (!c)
		return EXIT_USAGE;
	if (!journal_ensure(c, &err) || !journal_release_cutover(c, id, &found, &state, &err)) {
		report_error("cannot release the cutover", err.msg, NULL);
		rc = EXIT_ATTENTION;
	} else if (!found) {
		report_error("no migration with that id is waiting", NULL,
			     "pgvalve status shows each migration's state");
		rc = EXIT_REFUSED;
	} else {
		report_event("cutover_released", NULL, "migration %lld: cutover released (state %s)", id,
			     journal_state_name(state));
	}
	PQfinish(c);
	return rc;
}
