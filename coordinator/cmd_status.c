/*
 * pgvalve status [ID]: the journal, read. Without an ID, every migration
 * (newest first); with one, its steps and the prior constraints kept for a
 * rollback. Says what a migration in a non-final state is waiting for.
 */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "db.h"
#include "journal.h"
#include "journal_keychange.h"
#include "report.h"

#define LIST_LIMIT 50

/* What a migration in 'state' needs from a person (NULL: nothing). */
static const char *next_move(enum mig_state state, bool released)
{
	if (state == MIG_COMMITTED || state == MIG_ROLLED_BACK)
		return NULL;
	if (state == MIG_PREPARED && !released)
		return "waiting for its window or for `pgvalve cutover ID` (if it was postponed)";
	/* migrate_run refuses to resume these: a rollback is the only way on. */
	if (state == MIG_FAILED)
		return "needs attention: see the error; it can only be rolled back: `pgvalve recover "
		       "--rollback`";
	if (state == MIG_ROLLING_BACK)
		return "being rolled back, or the rollback stopped (see the error): if no coordinator "
		       "runs, `pgvalve recover --rollback`";
	return "in progress, or interrupted: if no coordinator runs, `pgvalve recover --resume` or "
	       "`--rollback`";
}

/* A key type change that is committed with its old columns still there (false when unknown). */
static bool waiting_for_finalize(PGconn *c, int64_t id)
{
	struct db_error err;
	bool waiting = false;

	if (!journal_keychange_waiting(c, id, &waiting, &err))
		report_warning("cannot tell whether a key type change waits for finalize", err.msg);
	return waiting;
}

#define FINALIZE_MOVE \
	"committed; the old key columns stay (and follow the new ones) until `pgvalve finalize %lld`"

static int list(PGconn *c, const struct options *o)
{
	struct journal_migration *ms;
	struct db_error err;
	int n;

	if (!journal_list(c, LIST_LIMIT, &ms, &n, &err)) {
		report_error("cannot read the journal", err.msg, NULL);
		return EXIT_ATTENTION;
	}
	if (o->format == FORMAT_JSON) {
		cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "migrations");

		for (int i = 0; i < n; i++) {
			cJSON *m = cJSON_CreateObject();

			cJSON_AddNumberToObject(m, "id", (double)ms[i].id);
			cJSON_AddStringToObject(m, "name", ms[i].name);
			cJSON_AddStringToObject(m, "state", journal_state_name(ms[i].state));
			cJSON_AddStringToObject(m, "started_at", ms[i].started_at);
			cJSON_AddStringToObject(m, "finished_at", ms[i].finished_at);
			cJSON_AddStringToObject(m, "error", ms[i].error);
			cJSON_AddBoolToObject(m, "waiting_for_finalize", waiting_for_finalize(c, ms[i].id));
			cJSON_AddItemToArray(arr, m);
		}
		report_document(doc);
	} else if (n == 0) {
		printf("no migrations in this database's journal (schema pgvalve)\n");
	} else {
		printf("%-6s %-28s %-12s %s\n", "id", "name", "state", "started");
		for (int i = 0; i < n; i++) {
			const char *move = next_move(ms[i].state, ms[i].cutover_released);

			printf("%-6lld %-28.28s %-12s %s\n", (long long)ms[i].id, ms[i].name,
			       journal_state_name(ms[i].state), ms[i].started_at);
			if (ms[i].error[0])
				printf("       error: %s\n", ms[i].error);
			if (move)
				printf("       %s\n", move);
			if (waiting_for_finalize(c, ms[i].id))
				printf("       " FINALIZE_MOVE "\n", (long long)ms[i].id);
		}
	}
	journal_migrations_free(ms, n);
	return EXIT_DONE;
}

static void print_json(const struct journal_migration *m, const struct journal_step *s, int n_steps,
		       const struct journal_prior *p, int n_prior, bool finalize)
{
	cJSON *doc = cJSON_CreateObject(), *arr;

	cJSON_AddNumberToObject(doc, "id", (double)m->id);
	cJSON_AddStringToObject(doc, "name", m->name);
	cJSON_AddStringToObject(doc, "state", journal_state_name(m->state));
	cJSON_AddStringToObject(doc, "error", m->error);
	cJSON_AddStringToObject(doc, "cutover_at", m->cutover_at);
	cJSON_AddBoolToObject(doc, "waiting_for_finalize", finalize);
	arr = cJSON_AddArrayToObject(doc, "steps");
	for (int i = 0; i < n_steps; i++) {
		cJSON *st = cJSON_CreateObject();

		cJSON_AddNumberToObject(st, "seq", s[i].step.seq);
		cJSON_AddStringToObject(st, "phase", plan_phase_name(s[i].step.phase));
		cJSON_AddStringToObject(st, "kind", plan_step_kind_name(s[i].step.kind));
		cJSON_AddStringToObject(st, "state", s[i].done ? "done" : "pending");
		cJSON_AddNumberToObject(st, "attempts", s[i].attempts);
		cJSON_AddStringToObject(st, "error", s[i].error);
		cJSON_AddStringToObject(st, "sql", s[i].step.sql);
		cJSON_AddItemToArray(arr, st);
	}
	arr = cJSON_AddArrayToObject(doc, "prior_constraints");
	for (int i = 0; i < n_prior; i++) {
		cJSON *pc = cJSON_CreateObject();

		cJSON_AddStringToObject(pc, "table", p[i].table);
		cJSON_AddStringToObject(pc, "name", p[i].name);
		cJSON_AddStringToObject(pc, "definition", p[i].definition);
		cJSON_AddItemToArray(arr, pc);
	}
	report_document(doc);
}

static void print_text(const struct journal_migration *m, const struct journal_step *s, int n_steps,
		       int n_prior, bool finalize)
{
	const char *move = next_move(m->state, m->cutover_released);

	printf("migration %lld (%s): %s\n", (long long)m->id, m->name, journal_state_name(m->state));
	printf("  started %s%s%s\n", m->started_at, m->finished_at[0] ? ", finished " : "", m->finished_at);
	if (m->cutover_at[0])
		printf("  cutover committed %s\n", m->cutover_at);
	if (m->error[0])
		printf("  error: %s\n", m->error);
	if (move)
		printf("  %s\n", move);
	if (finalize)
		printf("  " FINALIZE_MOVE "\n", (long long)m->id);
	printf("  steps:\n");
	for (int i = 0; i < n_steps; i++) {
		printf("    %2d %-9s %-8s %s\n", s[i].step.seq, plan_phase_name(s[i].step.phase),
		       s[i].done ? "done" : "pending", s[i].step.sql);
		if (s[i].error[0])
			printf("       after %d attempt(s): %s\n", s[i].attempts, s[i].error);
		else if (s[i].done && s[i].attempts > 1)
			printf("       done at attempt %d\n", s[i].attempts);
	}
	if (n_prior > 0)
		printf("  prior constraints kept for rollback: %d\n", n_prior);
}

static int show(PGconn *c, const struct options *o, const char *idtext)
{
	struct journal_migration m = { 0 };
	struct journal_step *s = NULL;
	struct journal_prior *p = NULL;
	struct db_error err;
	int n_steps = 0, n_prior = 0, rc = EXIT_DONE;
	bool found = false;
	char *end;
	long long id = strtoll(idtext, &end, 10);

	if (id <= 0 || *end) {
		report_error("no such migration", NULL, "`pgvalve status` lists them");
		return EXIT_USAGE;
	}
	if (!journal_read_migration(c, id, &m, &found, &err) ||
	    (found &&
	     (!journal_read_steps(c, id, &s, &n_steps, &err) ||
	      !journal_read_prior(c, id, &p, &n_prior, &err)))) {
		report_error("cannot read the journal", err.msg, NULL);
		rc = EXIT_ATTENTION;
	} else if (!found) {
		report_error("no such migration", NULL, "`pgvalve status` lists them");
		rc = EXIT_USAGE;
	} else if (o->format == FORMAT_JSON) {
		print_json(&m, s, n_steps, p, n_prior, waiting_for_finalize(c, id));
	} else {
		print_text(&m, s, n_steps, n_prior, waiting_for_finalize(c, id));
	}
	journal_migration_free(&m);
	journal_steps_free(s, n_steps);
	journal_prior_free(p, n_prior);
	return rc;
}

int cmd_status(struct options *o)
{
	struct db_error err;
	PGconn *c;
	int rc;

	if (o->n_args > 1) {
		report_error("status takes at most one migration id", NULL, "pgvalve status [ID] --db URL");
		return EXIT_USAGE;
	}
	c = commands_connect(o, "status");
	if (!c)
		return EXIT_USAGE;
	if (!journal_ensure(c, &err)) {
		report_error("cannot read or create the journal (schema pgvalve)", err.msg, NULL);
		PQfinish(c);
		return EXIT_ATTENTION;
	}
	rc = o->n_args ? show(c, o, o->args[0]) : list(c, o);
	PQfinish(c);
	return rc;
}
