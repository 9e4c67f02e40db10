/*
 * pgvalve plan: what a migration becomes — per input statement, the steps
 * with their SQL, the lock each takes and the hold it needs, the rows each
 * validation scans — the preflight findings, and the impact: for each
 * existing table it touches, the foreign keys that reference it and what a
 * cascade from it reaches (audit_impact.c). Changes nothing. Exit 1
 * when a preflight check would refuse the migration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_impact.h"
#include "commands.h"
#include "db.h"
#include "input.h"
#include "orm.h"
#include "keychange.h"
#include "preflight.h"
#include "proxy_dns.h"
#include "report.h"
#include "rules.h"

/*
 * Every refused statement: one error each (file:line, why, the statement,
 * the safe recipe), or with 'document' one JSON document on stdout
 * ({"name", "checksum", "refused": [{file, line, statement, why, recipe}]}).
 */
static void report_refusals(const struct plan *p, bool document, bool text_output)
{
	if (document) {
		cJSON *doc = cJSON_CreateObject(), *full = plan_to_json(p);

		cJSON_AddStringToObject(doc, "name", p->name ? p->name : "");
		cJSON_AddStringToObject(doc, "checksum", p->checksum);
		cJSON_AddItemToObject(doc, "refused", cJSON_DetachItemFromObject(full, "refused"));
		cJSON_Delete(full);
		report_document(doc);
		return;
	}
	for (int i = 0; i < p->n_refusals; i++) {
		const struct plan_refusal *r = &p->refusals[i];
		const struct plan_input *in = &p->inputs[r->input];
		char what[1100];

		snprintf(what, sizeof(what), "%s:%d: %s: %.120s%s", in->file, in->line, r->why, in->text,
			 strlen(in->text) > 120 ? "…" : "");
		report_error(what, NULL, r->recipe[0] ? r->recipe : NULL);
	}
	if (p->n_refusals > 1 && text_output)
		fprintf(stderr, "pgvalve: %d statements refused; nothing was changed\n", p->n_refusals);
}

static int by_input(const void *a, const void *b)
{
	const struct plan_refusal *x = a, *y = b;

	return (x->input > y->input) - (x->input < y->input);
}

/*
 * A file the rules refuse is refused whole, but its key type changes are
 * judged from the catalog (keychange_resolve) so that one run names every
 * refused statement, in file order. Without a database only the rules' refusals are named.
 */
static void catalog_refusals(struct plan *p, const struct options *o)
{
	struct db_error err;
	PGconn *c;

	if (p->n_keychange_reqs == 0 || !(c = db_connect(o->db ? o->db : "", "plan", &err)))
		return;
	if (keychange_resolve(c, p, &err))
		qsort(p->refusals, (size_t)p->n_refusals, sizeof(*p->refusals), by_input);
	PQfinish(c);
}

/* Reports an input error: file:line: message, like psql. */
static void report_input_error(const struct input_error *ierr)
{
	char what[1100];

	if (ierr->line > 0)
		snprintf(what, sizeof(what), "%s:%d: %s", ierr->file, ierr->line, ierr->msg);
	else
		snprintf(what, sizeof(what), "%s%s%s", ierr->file, ierr->file[0] ? ": " : "", ierr->msg);
	report_error(what, NULL, NULL);
}

/*
 * plan_build(), with plan --format json's refusals as one JSON
 * document: the ORM's record (orm.h) is derived before the files are read
 * and its own statements taken out before the rules see them.
 */
static int build(struct plan *p, const struct options *o, bool document, struct orm_record *orm)
{
	struct rules_options ropt = { .allow_unsafe = o->allow_unsafe };
	struct input_error ierr = { 0 };
	char oerr[1024];

	memset(p, 0, sizeof(*p));
	if (o->n_args == 0) {
		report_error("no migration file given", NULL, "pgvalve plan FILE.sql --db URL");
		return EXIT_REFUSED;
	}
	if (!orm_derive(orm, o, oerr, sizeof(oerr))) {
		report_error(oerr, NULL, NULL);
		return EXIT_USAGE;
	}
	if (input_load(p, o->args, o->n_args, &ierr)) {
		if (!orm_take_statements(orm, p, &ierr)) {
			report_input_error(&ierr);
			return EXIT_USAGE;
		}
		if (!rules_plan(p, &ropt, &ierr) && p->n_refusals) {
			catalog_refusals(p, o);
			report_refusals(p, document, o->format != FORMAT_JSON);
			return EXIT_REFUSED;
		}
	}
	if (ierr.msg[0]) {
		report_input_error(&ierr);
		return ierr.not_text ? EXIT_USAGE : EXIT_REFUSED; /* not SQL text: a usage error */
	}
	return EXIT_DONE;
}

int plan_build(struct plan *p, const struct options *o, struct orm_record *orm)
{
	return build(p, o, false, orm);
}

bool plan_orm_check(PGconn *c, const struct orm_record *orm, bool *table_exists, int *rc)
{
	struct db_error err;
	const char *hint;
	char why[600];
	bool refused;

	*table_exists = false;
	if (orm->tool == ORM_NONE)
		return true;
	if (!orm_check(c, orm, &refused, table_exists, why, sizeof(why), &hint, &err)) {
		report_error("cannot read the ORM's record of migrations", err.msg, NULL);
		*rc = EXIT_ATTENTION;
		return false;
	}
	if (refused) {
		char what[700];

		snprintf(what, sizeof(what), "refused: %s; nothing was changed", why);
		report_error(what, NULL,
			     hint ? hint
				  : "the ORM has applied it already: there is nothing for pgvalve to do (a "
				    "changed migration needs a new name)");
		*rc = EXIT_REFUSED;
		return false;
	}
	return true;
}

int plan_resolve(PGconn *c, struct plan *p, const struct options *o)
{
	struct db_error err;

	if (!keychange_resolve(c, p, &err)) {
		report_error("cannot read the catalog for the key type change", err.msg, NULL);
		return EXIT_ATTENTION;
	}
	if (p->n_refusals) {
		report_refusals(p, o->format == FORMAT_JSON, o->format != FORMAT_JSON);
		return EXIT_REFUSED;
	}
	return EXIT_DONE;
}

static void print_tables(const struct plan_step *st)
{
	char a[2 * PLAN_NAME_MAX + 8], b[2 * PLAN_NAME_MAX + 8];

	qname_format(&st->table, a, sizeof(a));
	qname_format(&st->other, b, sizeof(b));
	if (st->lock == LOCK_NONE) {
		printf("                 no table lock that blocks reads or writes\n");
		return;
	}
	printf("                 locks %s on %s%s%s", plan_lock_name(st->lock), a,
	       st->other.name[0] ? " and " : "", st->other.name[0] ? b : "");
	if (st->hold == HOLD_NONE_NEEDED)
		printf("; no hold (reads and writes go on)\n");
	else
		printf("; holds %s on %s%s\n", st->hold == HOLD_ALL_NEEDED ? "all work" : "writes",
		       st->other.name[0] ? "both" : "it",
		       st->phase == PHASE_CUTOVER ? " for the cutover" : "");
}

static void print_text(const struct plan *p, const struct preflight *pf)
{
	int per_phase[4] = { 0 };

	printf("migration %s: %d statement(s), %d step(s), checksum %.12s\n", p->name, p->n_inputs,
	       p->n_steps, p->checksum);
	for (int i = 0; i < p->n_inputs; i++) {
		printf("\n  %s:%d  %.200s%s\n", p->inputs[i].file, p->inputs[i].line, p->inputs[i].text,
		       strlen(p->inputs[i].text) > 200 ? "…" : "");
		for (int s = 0; s < p->n_steps; s++) {
			const struct plan_step *st = &p->steps[s];

			if (st->input != i)
				continue;
			printf("    %2d. %-9s %s\n", st->seq, plan_phase_name(st->phase), st->sql);
			print_tables(st);
			if (st->kind == STEP_VALIDATE && st->constraint >= 0 && pf && pf->rows_to_validate &&
			    pf->rows_to_validate[st->constraint] >= 0)
				printf("                 scans ~%lld row(s)\n",
				       pf->rows_to_validate[st->constraint]);
		}
	}
	for (int s = 0; s < p->n_steps; s++)
		per_phase[p->steps[s].phase]++;
	printf("\nOrder: %d prepare step(s) without holds; %d in one cutover transaction under holds; "
	       "%d validation(s) without holds; %d finalize step(s) under holds.\n",
	       per_phase[PHASE_PREPARE], per_phase[PHASE_CUTOVER], per_phase[PHASE_VALIDATE],
	       per_phase[PHASE_FINALIZE]);
	for (int i = 0; i < p->n_notes; i++)
		printf("note: %s\n", p->notes[i]);
	if (!pf)
		return;
	printf("\nPreflight: %d error(s), %d warning(s)\n", pf->errors, pf->warnings);
	for (int i = 0; i < pf->n; i++) {
		const struct finding *f = &pf->findings[i];

		printf("  %-7s %-16s %s: %s\n", finding_level_name(f->level), f->check, f->subject,
		       f->message);
		if (f->detail)
			printf("          detail: %.400s\n", f->detail);
		if (f->hint)
			printf("          hint: %s\n", f->hint);
	}
	if (pf->errors)
		printf("\napply would refuse this migration (exit 1) until the errors above are fixed.\n");
}

int cmd_plan(struct options *o)
{
	struct plan p;
	struct preflight pf = { 0 };
	struct audit_impact imp = { 0 };
	struct orm_record orm;
	bool impact, orm_table_exists = false;
	struct db_error err;
	PGconn *c = NULL;
	int rc = EXIT_DONE;

	rc = build(&p, o, o->format == FORMAT_JSON, &orm);
	if (rc != EXIT_DONE) {
		plan_free(&p);
		return rc;
	}
	c = commands_connect(o, "plan");
	if (!c) {
		rc = EXIT_USAGE;
		goto done;
	}
	if (!plan_orm_check(c, &orm, &orm_table_exists, &rc))
		goto done;
	rc = plan_resolve(c, &p, o);
	if (rc != EXIT_DONE)
		goto done;
	if (!preflight_run(c, &p, o, &pf, &err)) {
		report_error("preflight could not run", err.msg, NULL);
		rc = EXIT_ATTENTION;
		goto done;
	}
	/* The impact is for people to read: without it the plan is still the plan. */
	impact = audit_impact_read(c, &p, &imp, &err);
	if (!impact && o->format != FORMAT_JSON) /* JSON: "impact" is null, the document stays one */
		report_warning("could not read the foreign keys around the migration's tables", err.msg);
	if (o->format == FORMAT_JSON) {
		cJSON *doc = plan_to_json(&p);

		cJSON_AddItemToObject(doc, "preflight", preflight_to_json(&pf));
		cJSON_AddItemToObject(doc, "impact",
				      impact ? audit_impact_to_json(&imp) : cJSON_CreateNull());
		cJSON_AddItemToObject(doc, "orm", orm_plan_json(&orm, orm_table_exists));
		cJSON_AddItemToObject(doc, "proxies", proxy_fleet_json(o));
		report_document(doc);
	} else {
		char fleet[4096];

		print_text(&p, &pf);
		proxy_fleet_describe(o, fleet, sizeof(fleet));
		if (o->n_proxies) /* none: preflight's bypass finding says so */
			printf("\nProxies: %s\n", fleet);
		orm_plan_print(&orm, orm_table_exists);
		if (impact)
			audit_impact_print(stdout, &imp);
	}
	if (pf.errors)
		rc = EXIT_REFUSED;
done:
	audit_impact_free(&imp);
	preflight_free(&pf);
	plan_free(&p);
	PQfinish(c);
	return rc;
}
