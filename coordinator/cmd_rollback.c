/*
 * pgvalve rollback ID: undoes a migration — committed or stopped half way —
 * through the hold path, restoring the prior constraints from the journal.
 */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "journal.h"
#include "migrate.h"
#include "report.h"
#include "rollback.h"

int cmd_rollback(struct options *o)
{
	struct migration m = { .o = o };
	enum mig_state state;
	char *end;
	long long id;
	int rc;

	if (o->n_args != 1 || (id = strtoll(o->args[0], &end, 10)) <= 0 || *end) {
		report_error("rollback needs one migration id", NULL,
			     "pgvalve rollback ID --db URL (pgvalve status lists ids)");
		return EXIT_USAGE;
	}
	rc = migrate_connect(&m, "rollback");
	if (rc != EXIT_DONE)
		goto done;
	if (!migrate_load(&m, id, &state)) {
		rc = EXIT_USAGE;
		goto done;
	}
	if (state == MIG_ROLLED_BACK) {
		report_event("rolled_back", NULL, "migration %lld is rolled back already", id);
		rc = EXIT_ROLLED_BACK;
		goto done;
	}
	if (o->n_proxies == 0)
		report_warning("no --proxy given: the rollback relies on lock_timeout and retries only",
			       NULL);
	if (state == MIG_COMMITTED && m.orm.tool != ORM_NONE) {
		char what[600];

		/* The rollback restores constraints; columns and tables the migration added stay. */
		snprintf(what, sizeof(what),
			 "the ORM's record of %s in %s stays: the rollback restores constraints only, so "
			 "the ORM would fail running the migration again on what stays",
			 m.orm.name, orm_table(m.orm.tool));
		report_warning(what, "revert the rest with the ORM, then remove its record by hand");
	}
	migrate_release_stale_holds(&m);
	rc = rollback_run(m.ddl, m.observer, o, id, "pgvalve rollback") ? EXIT_ROLLED_BACK : EXIT_ATTENTION;
done:
	migrate_free(&m);
	return rc;
}
