/*
 * pgvalve finalize ID (docs/architecture.md §4.9): ends a committed key type
 * change by dropping the old columns and the triggers that kept them for a
 * rollback (keychange_swap.c). After it the change cannot be rolled back.
 */
#include <stdlib.h>

#include "commands.h"
#include "keychange.h"
#include "migrate.h"
#include "report.h"

int cmd_finalize(struct options *o)
{
	struct migration m = { .o = o, .id = -1 };
	enum mig_state state;
	char *end = "";
	long long id = o->n_args == 1 ? strtoll(o->args[0], &end, 10) : 0;
	int rc;

	if (id <= 0 || *end) {
		report_error("finalize needs the migration id", NULL,
			     "pgvalve finalize ID --db URL (pgvalve status lists ids)");
		return EXIT_USAGE;
	}
	rc = migrate_connect(&m, "finalize");
	if (rc == EXIT_DONE)
		rc = migrate_load(&m, id, &state) ? keychange_finalize(&m) : EXIT_USAGE;
	migrate_free(&m);
	return rc;
}
