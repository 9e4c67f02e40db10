/*
 * pgvalve recover: after a coordinator crashed or was killed, finds the
 * migration it left unfinished and either finishes it (--resume) or undoes
 * it (--rollback), from the journal alone. A backend the dead coordinator
 * left running is dealt with when the coordinator lock is taken
 * (migrate_connect, orphan.h); a migration that was being rolled back (or
 * had failed, which a rollback follows) is finished by finishing its
 * rollback, whichever was asked. See docs/recovery.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "journal.h"
#include "migrate.h"
#include "report.h"
#include "rollback.h"

int cmd_recover(struct options *o)
{
	struct migration m = { .o = o };
	enum mig_state state;
	struct db_error err;
	bool found;
	int64_t id;
	int rc;

	if (o->resume == o->rollback) {
		report_error(
			"recover needs exactly one of --resume and --rollback", NULL,
			"`pgvalve status` shows what is pending; --resume finishes it, --rollback undoes it");
		return EXIT_USAGE;
	}
	rc = migrate_connect(&m, "recover");
	if (rc != EXIT_DONE)
		goto done;
	if (!journal_find_unfinished(m.ddl, &id, &state, &found, &err)) {
		report_error("cannot read the journal", err.msg, NULL);
		rc = EXIT_ATTENTION;
		goto done;
	}
	if (!found) {
		report_event("nothing_to_recover", NULL,
			     "nothing to recover: every migration is committed or rolled back");
		rc = EXIT_DONE;
		goto done;
	}
	report_event("recovering", NULL, "migration %lld was left in state %s: %s", (long long)id,
		     journal_state_name(state), o->resume ? "resuming" : "rolling back");
	if (!migrate_load(&m, id, &state) || !migrate_settings(&m)) {
		rc = EXIT_ATTENTION;
		goto done;
	}
	if (o->resume && (state == MIG_ROLLING_BACK || state == MIG_FAILED))
		report_event("recovering", NULL,
			     "migration %lld can only be rolled back (state %s): finishing its rollback",
			     (long long)id, journal_state_name(state));
	if (o->rollback || state == MIG_ROLLING_BACK || state == MIG_FAILED) {
		migrate_release_stale_holds(&m);
		rc = rollback_run(m.ddl, m.observer, o, id,
				  o->rollback ? "pgvalve recover --rollback" : "pgvalve recover --resume")
			? EXIT_ROLLED_BACK
			: EXIT_ATTENTION;
	} else {
		rc = migrate_run(&m, state);
	}
done:
	migrate_free(&m);
	return rc;
}
