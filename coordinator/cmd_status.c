/*
 * pgvalve status [ID]: the journal, read. Without an ID, every migration
 * (newest first); with one, its steps and the prior constraints kept for a
 * rollback. Says what a migration in a non-final state is waiting for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "db.h"
#include "journal.h"
#include "report.h"

/* What a migration in 'state' needs from a person (NULL: nothing). */
static const char *next_move(const char *state, const char *released)
{
	if (strcmp(state, "committed") == 0 || strcmp(state, "rolled_back") == 0)
		return NULL;
	if (strcmp(state, "prepared") == 0 && strcmp(released, "f") == 0)
		return "waiting for its window or for `pgvalve cutover ID` (if it was postponed)";
	if (strcmp(state, "failed") == 0)
		return "needs attention: see the error; `pgvalve recover --resume` or `--rollback`";
	return "in progress, or interrupted: if no coordinator runs, `pgvalve recover --resume` or "
	       "`--rollback`";
}

/* Prints 'doc' as indented JSON and deletes it. */
static void print_doc(cJSON *doc)
{
	char *text = cJSON_Print(doc);

	printf("%s\n", text ? text : "{}");
	free(text);
	cJSON_Delete(doc);
}

static int list(PGconn *c, const struct options *o)
{
	struct db_error err;
	PGresult *r = db_query(
		c,
		"SELECT id, name, state, started_at, coalesce(finished_at::text, ''), coalesce(error, ''), "
		"cutover_released FROM pgvalve.migrations ORDER BY id DESC LIMIT 50",
		0, NULL, &err);
	cJSON *doc, *arr;

	if (!r) {
		report_error("cannot read the journal", err.msg, NULL);
		return EXIT_ATTENTION;
	}
	if (o->format == FORMAT_JSON) {
		doc = cJSON_CreateObject();
		arr = cJSON_AddArrayToObject(doc, "migrations");
		for (int i = 0; i < PQntuples(r); i++) {
			cJSON *m = cJSON_CreateObject();

			cJSON_AddNumberToObject(m, "id", atof(PQgetvalue(r, i, 0)));
			cJSON_AddStringToObject(m, "name", PQgetvalue(r, i, 1));
			cJSON_AddStringToObject(m, "state", PQgetvalue(r, i, 2));
			cJSON_AddStringToObject(m, "started_at", PQgetvalue(r, i, 3));
			cJSON_AddStringToObject(m, "finished_at", PQgetvalue(r, i, 4));
			cJSON_AddStringToObject(m, "error", PQgetvalue(r, i, 5));
			cJSON_AddItemToArray(arr, m);
		}
		print_doc(doc);
	} else if (PQntuples(r) == 0) {
		printf("no migrations in this database's journal (schema pgvalve)\n");
	} else {
		printf("%-6s %-28s %-12s %s\n", "id", "name", "state", "started");
		for (int i = 0; i < PQntuples(r); i++) {
			const char *move = next_move(PQgetvalue(r, i, 2), PQgetvalue(r, i, 6));

			printf("%-6s %-28.28s %-12s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
			       PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
			if (*PQgetvalue(r, i, 5))
				printf("       error: %s\n", PQgetvalue(r, i, 5));
			if (move)
				printf("       %s\n", move);
		}
	}
	PQclear(r);
	return EXIT_DONE;
}

static int show(PGconn *c, const struct options *o, const char *id)
{
	struct db_error err;
	const char *params[1] = { id };
	PGresult *m = db_query(c,
			       "SELECT id, name, state, started_at, coalesce(finished_at::text, ''), "
			       "coalesce(error, ''), cutover_released, coalesce(cutover_at::text, '') "
			       "FROM pgvalve.migrations WHERE id = $1::bigint",
			       1, params, &err);
	PGresult *s = NULL, *p = NULL;
	int rc = EXIT_DONE;

	if (!m || PQntuples(m) == 0) {
		report_error("no such migration", m ? NULL : err.msg, "`pgvalve status` lists them");
		PQclear(m);
		return EXIT_USAGE;
	}
	s = db_query(c,
		     "SELECT seq, phase, kind, state, attempts, coalesce(error, ''), sql FROM pgvalve.steps "
		     "WHERE migration_id = $1::bigint ORDER BY seq",
		     1, params, &err);
	p = db_query(c,
		     "SELECT \"table\", name, contype, definition, validated FROM pgvalve.prior_constraints "
		     "WHERE migration_id = $1::bigint ORDER BY 1, 3, 2",
		     1, params, &err);
	if (!s || !p) {
		report_error("cannot read the journal", err.msg, NULL);
		rc = EXIT_ATTENTION;
		goto done;
	}
	if (o->format == FORMAT_JSON) {
		cJSON *doc = cJSON_CreateObject(), *arr;

		cJSON_AddNumberToObject(doc, "id", atof(PQgetvalue(m, 0, 0)));
		cJSON_AddStringToObject(doc, "name", PQgetvalue(m, 0, 1));
		cJSON_AddStringToObject(doc, "state", PQgetvalue(m, 0, 2));
		cJSON_AddStringToObject(doc, "error", PQgetvalue(m, 0, 5));
		cJSON_AddStringToObject(doc, "cutover_at", PQgetvalue(m, 0, 7));
		arr = cJSON_AddArrayToObject(doc, "steps");
		for (int i = 0; i < PQntuples(s); i++) {
			cJSON *st = cJSON_CreateObject();

			cJSON_AddNumberToObject(st, "seq", atoi(PQgetvalue(s, i, 0)));
			cJSON_AddStringToObject(st, "phase", PQgetvalue(s, i, 1));
			cJSON_AddStringToObject(st, "kind", PQgetvalue(s, i, 2));
			cJSON_AddStringToObject(st, "state", PQgetvalue(s, i, 3));
			cJSON_AddNumberToObject(st, "attempts", atoi(PQgetvalue(s, i, 4)));
			cJSON_AddStringToObject(st, "error", PQgetvalue(s, i, 5));
			cJSON_AddStringToObject(st, "sql", PQgetvalue(s, i, 6));
			cJSON_AddItemToArray(arr, st);
		}
		arr = cJSON_AddArrayToObject(doc, "prior_constraints");
		for (int i = 0; i < PQntuples(p); i++) {
			cJSON *pc = cJSON_CreateObject();

			cJSON_AddStringToObject(pc, "table", PQgetvalue(p, i, 0));
			cJSON_AddStringToObject(pc, "name", PQgetvalue(p, i, 1));
			cJSON_AddStringToObject(pc, "definition", PQgetvalue(p, i, 3));
			cJSON_AddItemToArray(arr, pc);
		}
		print_doc(doc);
		goto done;
	}
	printf("migration %s (%s): %s\n", PQgetvalue(m, 0, 0), PQgetvalue(m, 0, 1), PQgetvalue(m, 0, 2));
	printf("  started %s%s%s\n", PQgetvalue(m, 0, 3), *PQgetvalue(m, 0, 4) ? ", finished " : "",
	       PQgetvalue(m, 0, 4));
	if (*PQgetvalue(m, 0, 7))
		printf("  cutover committed %s\n", PQgetvalue(m, 0, 7));
	if (*PQgetvalue(m, 0, 5))
		printf("  error: %s\n", PQgetvalue(m, 0, 5));
	if (next_move(PQgetvalue(m, 0, 2), PQgetvalue(m, 0, 6)))
		printf("  %s\n", next_move(PQgetvalue(m, 0, 2), PQgetvalue(m, 0, 6)));
	printf("  steps:\n");
	for (int i = 0; i < PQntuples(s); i++) {
		printf("    %2s %-9s %-8s %s\n", PQgetvalue(s, i, 0), PQgetvalue(s, i, 1),
		       PQgetvalue(s, i, 3), PQgetvalue(s, i, 6));
		if (*PQgetvalue(s, i, 5))
			printf("       after %s attempt(s): %s\n", PQgetvalue(s, i, 4), PQgetvalue(s, i, 5));
	}
	if (PQntuples(p) > 0)
		printf("  prior constraints kept for rollback: %d\n", PQntuples(p));
done:
	PQclear(m);
	PQclear(s);
	PQclear(p);
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
	c = db_connect(o->db ? o->db : "", "status", &err);
	if (!c) {
		report_error("cannot connect to the database", err.msg,
			     "check --db, PGVALVE_DB or the PG* variables");
		return EXIT_USAGE;
	}
	if (!journal_ensure(c, &err)) {
		report_error("cannot read or create the journal (schema pgvalve)", err.msg, NULL);
		PQfinish(c);
		return EXIT_ATTENTION;
	}
	rc = o->n_args ? show(c, o, o->args[0]) : list(c, o);
	PQfinish(c);
	return rc;
}
