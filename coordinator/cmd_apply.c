/*
 * pgvalve apply (docs/architecture.md, apply step by step): plan the files, preflight, record the
 * migration in the journal, snapshot the prior constraints, then run the
 * phases (migrate.c) to committed or rolled_back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "journal.h"
#include "keychange.h"
#include "migrate.h"
#include "preflight.h"
#include "proxy_dns.h"
#include "report.h"
#include "xalloc.h"

static void print_findings(const struct preflight *pf)
{
	for (int i = 0; i < pf->n; i++) {
		const struct finding *f = &pf->findings[i];
		char what[1400];

		snprintf(what, sizeof(what), "%s: %s: %s", f->check, f->subject, f->message);
		if (f->level == FINDING_ERROR)
			report_error(what, f->detail, f->hint);
		else if (f->level == FINDING_WARNING)
			report_warning(what, f->detail);
	}
}

/* The proxies found (dns:// names resolved as apply starts; again before every hold). */
static void report_proxies(const struct options *o)
{
	char fleet[4096];

	proxy_fleet_describe(o, fleet, sizeof(fleet));
	report_event("proxies", proxy_fleet_json(o), "proxies: %s", fleet);
}

int cmd_apply(struct options *o)
{
	struct migration m = { .o = o, .id = -1 };
	struct preflight pf = { 0 };
	struct db_error err;
	char *plan_text = NULL;
	cJSON *plan_json = NULL;
	cJSON *options_json = NULL;
	char *options_text = NULL;
	bool orm_table_exists;
	int holder, rc = EXIT_ATTENTION;

	rc = plan_build(&m.p, o, &m.orm);
	if (rc != EXIT_DONE) {
		plan_free(&m.p);
		return rc;
	}
	rc = EXIT_ATTENTION;
	m.done = xcalloc((size_t)m.p.n_steps + 1, sizeof(*m.done));
	if (!migrate_settings(&m)) {
		migrate_free(&m);
		return EXIT_USAGE;
	}
	m.ddl = commands_connect(o, "apply");
	m.observer = m.ddl ? commands_connect(o, "observer") : NULL;
	if (!m.ddl || !m.observer) {
		rc = EXIT_USAGE;
		goto done;
	}
	/* the key type change's steps come from the catalog (keychange.h) */
	rc = plan_resolve(m.observer, &m.p, o);
	if (rc != EXIT_DONE)
		goto done;
	rc = EXIT_ATTENTION;
	free(m.done);
	m.done = xcalloc((size_t)m.p.n_steps + 1, sizeof(*m.done));
	if (!journal_ensure(m.ddl, &err)) {
		report_error("cannot create the journal (schema pgvalve)", err.msg,
			     "the role needs CREATE on the database, or create schema pgvalve for it");
		goto done;
	}
	if (!journal_lock(m.ddl, &holder, &err)) {
		report_error("refused: another pgvalve is applying a migration to this database", err.msg,
			     "wait for it (pgvalve status), or stop it and run pgvalve recover");
		rc = EXIT_REFUSED;
		goto done;
	}
	/* A migration the ORM records as applied already: refused before anything changes. */
	if (!plan_orm_check(m.ddl, &m.orm, &orm_table_exists, &rc))
		goto done;
	if (o->n_proxies == 0)
		report_warning(
			"no --proxy given: the cutover relies on lock_timeout and retries only",
			"client stalls are then bounded only by --lock-timeout, and nothing is watched");
	else
		report_proxies(o);
	if (!preflight_run(m.observer, &m.p, o, &pf, &err)) {
		report_error("preflight could not run", err.msg, NULL);
		goto done;
	}
	print_findings(&pf);
	if (pf.errors) {
		report_error("refused by preflight: nothing was changed", NULL,
			     "`pgvalve plan` shows every finding");
		rc = EXIT_REFUSED;
		goto done;
	}
	m.rows = pf.rows_to_validate;
	plan_json = plan_to_json(&m.p);
	plan_text = cJSON_PrintUnformatted(plan_json);
	/* The ORM's record goes beside the plan, so `recover --resume` writes it at commit too. */
	options_json = cJSON_CreateObject();
	if (m.orm.tool != ORM_NONE)
		cJSON_AddItemToObject(options_json, "orm", orm_to_json(&m.orm));
	options_text = cJSON_PrintUnformatted(options_json);
	if (!journal_create(m.ddl, &m.p, plan_text, options_text, &m.id, &err)) {
		report_error("cannot record the migration in the journal", err.msg, NULL);
		goto done;
	}
	report_event("started", NULL, "migration %lld (%s): %d step(s), %d constraint(s)", (long long)m.id,
		     m.p.name, m.p.n_steps, m.p.n_constraints);
	if (!journal_set_state(m.ddl, m.id, MIG_CHECKED, NULL, &err)) {
		report_error("cannot update the journal", err.msg, NULL);
		goto done;
	}
	rc = migrate_run(&m, MIG_CHECKED);
	/* apply --finalize: a key type change drops its old columns at once (keychange_swap.c) */
	if (rc == EXIT_DONE && o->finalize && m.p.n_keychange_reqs)
		rc = keychange_finalize(&m);
done:
	cJSON_Delete(plan_json);
	cJSON_Delete(options_json);
	free(plan_text);
	free(options_text);
	preflight_free(&pf);
	migrate_free(&m);
	return rc;
}
