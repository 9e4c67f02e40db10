/*
 * pgvalve report ID (docs/architecture.md §4, evidence): a migration's
 * story from the journal: its states with their times, the cutover's
 * attempts and hold, each step with how long it took (validations), the
 * client errors the proxies counted during the watch by SQLSTATE and
 * constraint, the self-test; and after a rollback the damage assessment:
 * the errors clients saw from the rolled-back constraints, the rows that
 * violate them now (each counted by the query apply built from the catalog
 * when they were added: evidence.h), and whether every affected table's
 * constraints equal the snapshot again; each affected table's latency
 * before the cutover and during the watch with what the watch added; and
 * each proxy's acknowledgement of each hold. Builds one JSON document; the
 * text is printed from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "db.h"
#include "evidence.h"
#include "journal.h"
#include "journal_evidence.h"
#include "report.h"

/* statement_timeout of each damage count */
#define DAMAGE_TIMEOUT_MS 60000

static void add_steps(cJSON *doc, PGconn *c, int64_t id)
{
	struct journal_step_time *s;
	struct db_error err;
	int n;
	cJSON *arr = cJSON_AddArrayToObject(doc, "steps");

	if (!journal_step_times(c, id, &s, &n, &err)) {
		report_warning("cannot read the steps", err.msg);
		return;
	}
	for (int i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddNumberToObject(o, "seq", s[i].seq);
		cJSON_AddStringToObject(o, "phase", s[i].phase);
		cJSON_AddStringToObject(o, "kind", s[i].kind);
		cJSON_AddStringToObject(o, "state", s[i].state);
		cJSON_AddNumberToObject(o, "attempts", s[i].attempts);
		cJSON_AddStringToObject(o, "finished_at", s[i].finished_at);
		if (s[i].duration_s >= 0)
			cJSON_AddNumberToObject(o, "duration_s", s[i].duration_s);
		else
			cJSON_AddNullToObject(o, "duration_s");
		cJSON_AddStringToObject(o, "sql", s[i].sql);
		cJSON_AddItemToArray(arr, o);
	}
	journal_step_times_free(s, n);
}

static void add_self_test(cJSON *doc, PGconn *c, int64_t id)
{
	struct journal_selftest *t;
	struct db_error err;
	int n, proven = 0, total = 0;
	cJSON *st, *arr;

	if (!journal_selftest_read(c, id, &t, &n, &err)) {
		report_warning("cannot read the self-test", err.msg);
		return;
	}
	if (n == 0) {
		cJSON_AddNullToObject(doc, "self_test");
		journal_selftest_free(t, n);
		return;
	}
	st = cJSON_AddObjectToObject(doc, "self_test");
	arr = cJSON_AddArrayToObject(st, "checks");
	for (int i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "constraint", t[i].constraint_name);
		cJSON_AddStringToObject(o, "table", t[i].table);
		cJSON_AddStringToObject(o, "kind", t[i].kind);
		cJSON_AddStringToObject(o, "check", t[i].check);
		cJSON_AddStringToObject(o, "outcome", t[i].outcome);
		cJSON_AddStringToObject(o, "sqlstate", t[i].sqlstate);
		cJSON_AddStringToObject(o, "detail", t[i].detail);
		cJSON_AddItemToArray(arr, o);
	}
	/* a constraint is proven when one of its checks was refused and none was anything but skipped */
	for (int i = 0; i < n; i++) {
		int enforced = 0, other = 0, j = i;

		if (i > 0 && strcmp(t[i].constraint_name, t[i - 1].constraint_name) == 0)
			continue;
		for (; j < n && strcmp(t[j].constraint_name, t[i].constraint_name) == 0; j++) {
			if (strcmp(t[j].outcome, "enforced") == 0)
				enforced++;
			else if (strcmp(t[j].outcome, "skipped") != 0)
				other++;
		}
		total++;
		proven += enforced > 0 && other == 0;
	}
	cJSON_AddNumberToObject(st, "enforced", proven);
	cJSON_AddNumberToObject(st, "constraints", total);
	journal_selftest_free(t, n);
}

static const char *const stat_keys[4] = { "p50_ms", "p95_ms", "p99_ms", "max_ms" };

/* {count, p50_ms, ...} of one journal record. */
static cJSON *latency_json(const struct journal_latency *l)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "window_s", l->window_s);
	cJSON_AddNumberToObject(o, "count", (double)l->count);
	for (int s = 0; s < 4; s++)
		cJSON_AddItemToObject(o, stat_keys[s],
				      l->count ? cJSON_CreateNumber(l->ms[s]) : cJSON_CreateNull());
	return o;
}

/*
 * "latency": {tables: {name: {read|write: {baseline, watch, added_ms}}}}:
 * each table's latency before the cutover and during the watch, and the
 * difference (watch - baseline) per statistic when both were measured.
 * null when apply measured none (no proxy, or no watch).
 */
static void add_latency(cJSON *doc, PGconn *c, int64_t id)
{
	struct journal_latency *l;
	struct db_error err;
	cJSON *lat, *tables;
	int n;

	if (!journal_latency_read(c, id, &l, &n, &err)) {
		report_warning("cannot read the table latency", err.msg);
		cJSON_AddNullToObject(doc, "latency");
		return;
	}
	if (n == 0) {
		cJSON_AddNullToObject(doc, "latency");
		journal_latency_free(l, n);
		return;
	}
	lat = cJSON_AddObjectToObject(doc, "latency");
	tables = cJSON_AddObjectToObject(lat, "tables");
	for (int i = 0; i < n; i++) {
		cJSON *t = cJSON_GetObjectItemCaseSensitive(tables, l[i].table), *k;

		if (!t)
			t = cJSON_AddObjectToObject(tables, l[i].table);
		k = cJSON_GetObjectItemCaseSensitive(t, l[i].kind);
		if (!k) {
			k = cJSON_AddObjectToObject(t, l[i].kind);
			cJSON_AddNullToObject(k, "baseline");
			cJSON_AddNullToObject(k, "watch");
			cJSON_AddNullToObject(k, "added_ms");
		}
		cJSON_ReplaceItemInObjectCaseSensitive(k, l[i].phase, latency_json(&l[i]));
	}
	/* what the watch added: its statistic minus the baseline's, each measured */
	for (cJSON *t = tables->child; t; t = t->next) {
		for (cJSON *k = t->child; k; k = k->next) {
			const cJSON *b = cJSON_GetObjectItemCaseSensitive(k, "baseline");
			const cJSON *w = cJSON_GetObjectItemCaseSensitive(k, "watch");
			cJSON *added;

			if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(b, "p50_ms")) ||
			    !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(w, "p50_ms")))
				continue;
			added = cJSON_CreateObject();
			for (int s = 0; s < 4; s++)
				cJSON_AddNumberToObject(
					added, stat_keys[s],
					cJSON_GetNumberValue(
						cJSON_GetObjectItemCaseSensitive(w, stat_keys[s])) -
						cJSON_GetNumberValue(
							cJSON_GetObjectItemCaseSensitive(b, stat_keys[s])));
			cJSON_ReplaceItemInObjectCaseSensitive(k, "added_ms", added);
		}
	}
	journal_latency_free(l, n);
}

static const char *str(const cJSON *o, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));

	return s ? s : "";
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* One count in a read-only transaction; -1 when it failed ('why' says why). */
static long long run_count(PGconn *c, const char *sql, char *why, size_t cap)
{
	char setup[128];
	struct db_error err;
	PGresult *r;
	long long n = -1;

	snprintf(setup, sizeof(setup), "BEGIN READ ONLY; SET LOCAL statement_timeout = %d",
		 DAMAGE_TIMEOUT_MS);
	if (!db_exec(c, setup, &err)) {
		snprintf(why, cap, "%s", err.msg);
		db_rollback(c);
		return -1;
	}
	r = db_query(c, sql, 0, NULL, &err);
	if (r)
		n = strtoll(db_value(r, 0, 0, "-1"), NULL, 10);
	else
		snprintf(why, cap, "%s", err.msg);
	PQclear(r);
	db_rollback(c);
	return n;
}

/* After a rollback: errors clients saw from the constraints, rows violating them now, the snapshot check. */
static void add_damage(cJSON *doc, PGconn *c, int64_t id, cJSON *queries)
{
	cJSON *d = cJSON_AddObjectToObject(doc, "damage"), *arr = cJSON_AddArrayToObject(d, "constraints"),
	      *q;
	const cJSON *errs = cJSON_GetObjectItemCaseSensitive(doc, "watch_errors");
	const cJSON *by_con = cJSON_GetObjectItemCaseSensitive(errs, "by_constraint");
	struct journal_undo *u;
	struct db_error err;
	int n;

	cJSON_ArrayForEach(q, queries)
	{
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "constraint"));
		const char *sql = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "sql"));
		const cJSON *seen = name ? cJSON_GetObjectItemCaseSensitive(by_con, name) : NULL;
		cJSON *o = cJSON_CreateObject();
		char why[1024] = "";
		long long rows = sql ? run_count(c, sql, why, sizeof(why)) : -1;

		cJSON_AddStringToObject(o, "constraint", name ? name : "");
		cJSON_AddStringToObject(
			o, "table", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "table")) ?: "");
		cJSON_AddNumberToObject(o, "client_errors", cJSON_IsNumber(seen) ? seen->valuedouble : 0);
		if (rows >= 0)
			cJSON_AddNumberToObject(o, "violating_rows", (double)rows);
		else {
			cJSON_AddNullToObject(o, "violating_rows");
			cJSON_AddStringToObject(o, "error", why);
		}
		cJSON_AddItemToArray(arr, o);
	}
	cJSON_AddBoolToObject(d, "client_errors_known",
			      errs != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(errs, "read")));
	if (!journal_undo_statements(c, id, &u, &n, &err)) {
		cJSON_AddNullToObject(d, "constraints_equal_snapshot");
		cJSON_AddStringToObject(d, "snapshot_error", err.msg);
		return;
	}
	cJSON_AddBoolToObject(d, "constraints_equal_snapshot", n == 0);
	arr = cJSON_AddArrayToObject(d, "differences");
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(u[i].sql));
	journal_undo_free(u, n);
}

static cJSON *build(PGconn *c, const struct journal_migration *m)
{
	cJSON *doc = cJSON_CreateObject(), *queries = cJSON_CreateArray(), *acks = cJSON_CreateArray();
	struct journal_evidence *e;
	struct db_error err;
	int n;

	cJSON_AddNumberToObject(doc, "id", (double)m->id);
	cJSON_AddStringToObject(doc, "name", m->name);
	cJSON_AddStringToObject(doc, "state", journal_state_name(m->state));
	cJSON_AddStringToObject(doc, "started_at", m->started_at);
	cJSON_AddStringToObject(doc, "cutover_at", m->cutover_at);
	cJSON_AddStringToObject(doc, "finished_at", m->finished_at);
	cJSON_AddStringToObject(doc, "error", m->error);
	add_steps(doc, c, m->id);
	if (!journal_evidence_read(c, m->id, &e, &n, &err)) {
		report_warning("cannot read the evidence apply recorded", err.msg);
		n = 0;
		e = NULL;
	}
	for (int i = 0; i < n; i++) {
		cJSON *data = cJSON_Parse(e[i].data);

		if (!data)
			continue;
		cJSON_AddStringToObject(data, "at", e[i].at);
		if (strcmp(e[i].kind, EVIDENCE_VIOLATION_QUERY) == 0) {
			cJSON_AddItemToArray(queries, data);
		} else if (strcmp(e[i].kind, EVIDENCE_HOLD_ACKS) == 0) {
			cJSON_AddItemToArray(acks, data); /* the cutover's and the finalize's, in order */
		} else {
			/* the last of each kind (a resumed migration may have several) */
			cJSON_DeleteItemFromObjectCaseSensitive(doc, e[i].kind);
			cJSON_AddItemToObject(doc, e[i].kind, data);
		}
	}
	journal_evidence_free(e, n);
	if (!cJSON_HasObjectItem(doc, EVIDENCE_CUTOVER))
		cJSON_AddNullToObject(doc, EVIDENCE_CUTOVER);
	if (!cJSON_HasObjectItem(doc, EVIDENCE_WATCH_ERRORS))
		cJSON_AddNullToObject(doc, EVIDENCE_WATCH_ERRORS);
	cJSON_AddItemToObject(doc, EVIDENCE_HOLD_ACKS, acks);
	add_latency(doc, c, m->id);
	add_self_test(doc, c, m->id);
	if (m->state == MIG_ROLLED_BACK || m->state == MIG_ROLLING_BACK)
		add_damage(doc, c, m->id, queries);
	cJSON_Delete(queries);
	return doc;
}

static void print_counts(const char *title, const cJSON *obj)
{
	const cJSON *v;

	if (!cJSON_IsObject(obj) || !obj->child)
		return;
	printf("    %s:", title);
	cJSON_ArrayForEach(v, obj)
	{
		printf(" %s %.0f", v->string, cJSON_IsNumber(v) ? v->valuedouble : 0);
	}
	printf("\n");
}

/* Each hold of each attempt, and each proxy's acknowledgement and hold time. */
static void print_hold_acks(const cJSON *doc)
{
	const cJSON *job, *h, *p;

	cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(doc, EVIDENCE_HOLD_ACKS))
	{
		cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(job, "holds"))
		{
			printf("  %s attempt %.0f, %s hold %s: %s\n", str(job, "what"), num(h, "attempt"),
			       str(h, "mode"), str(h, "hold_id"),
			       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "acked"))
				       ? "acknowledged by every proxy"
				       : "not acknowledged by every proxy (released)");
			cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(h, "proxies"))
			{
				printf("    %s: ", str(p, "proxy"));
				if (num(p, "status") == 201)
					printf("acknowledged in %.1f ms", num(p, "ack_ms"));
				else
					printf("no acknowledgement after %.1f ms: %s", num(p, "ack_ms"),
					       str(p, "error"));
				if (num(p, "held_ms") >= 0)
					printf(", held %.1f ms", num(p, "held_ms"));
				printf("\n");
			}
		}
	}
}

/* "   12.30" or "       -" for a statistic of a latency record. */
static void print_ms(const cJSON *o, const char *key, bool sign)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (cJSON_IsNumber(v))
		printf(sign ? " %+8.2f" : " %8.2f", v->valuedouble);
	else
		printf(" %8s", "-");
}

static void print_latency(const cJSON *doc)
{
	const cJSON *lat = cJSON_GetObjectItemCaseSensitive(doc, "latency"), *t, *k;

	if (!cJSON_IsObject(lat)) {
		printf("table latency: not measured (no --proxy, or no watch)\n");
		return;
	}
	printf("table latency (ms), before the cutover (baseline) and during the watch, and what the "
	       "watch added:\n");
	printf("  %-28s %-5s %9s %8s %8s %8s %8s | %9s %8s %8s %8s %8s | %8s %8s %8s %8s\n", "table", "kind",
	       "base n", "p50", "p95", "p99", "max", "watch n", "p50", "p95", "p99", "max", "+p50", "+p95",
	       "+p99", "+max");
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(lat, "tables"))
	{
		cJSON_ArrayForEach(k, t)
		{
			const cJSON *phase[2] = { cJSON_GetObjectItemCaseSensitive(k, "baseline"),
						  cJSON_GetObjectItemCaseSensitive(k, "watch") };

			printf("  %-28s %-5s", t->string, k->string);
			for (int p = 0; p < 2; p++) {
				if (cJSON_IsObject(phase[p]))
					printf(" %9.0f", num(phase[p], "count"));
				else
					printf(" %9s", "-");
				for (int s = 0; s < 4; s++)
					print_ms(phase[p], stat_keys[s], false);
				printf(" |");
			}
			for (int s = 0; s < 4; s++)
				print_ms(cJSON_GetObjectItemCaseSensitive(k, "added_ms"), stat_keys[s], true);
			printf("\n");
		}
	}
}

static void print_text(const cJSON *doc)
{
	const cJSON *x, *y;

	printf("migration %.0f (%s): %s\n", num(doc, "id"), str(doc, "name"), str(doc, "state"));
	printf("  started   %s\n", str(doc, "started_at"));
	if (str(doc, "cutover_at")[0])
		printf("  cutover   %s\n", str(doc, "cutover_at"));
	if (str(doc, "finished_at")[0])
		printf("  finished  %s\n", str(doc, "finished_at"));
	if (str(doc, "error")[0])
		printf("  error     %s\n", str(doc, "error"));
	x = cJSON_GetObjectItemCaseSensitive(doc, EVIDENCE_CUTOVER);
	if (cJSON_IsObject(x)) {
		int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "proxies"));

		printf("holds: cutover after %.0f attempt(s), traffic held %.0f ms on %d prox%s",
		       num(x, "attempts"), num(x, "held_ms"), n, n == 1 ? "y" : "ies");
		cJSON_ArrayForEach(y, cJSON_GetObjectItemCaseSensitive(x, "proxies"))
		{
			printf(" %s", cJSON_GetStringValue(y));
		}
		printf("\n");
	}
	print_hold_acks(doc);
	printf("steps:\n");
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(doc, "steps"))
	{
		double d = num(x, "duration_s");

		printf("  %2.0f %-9s %-7s", num(x, "seq"), str(x, "phase"), str(x, "state"));
		if (d >= 0)
			printf(" %8.3f s", d);
		else
			printf(" %10s", "");
		printf("  %s\n", str(x, "sql"));
	}
	x = cJSON_GetObjectItemCaseSensitive(doc, EVIDENCE_WATCH_ERRORS);
	if (cJSON_IsObject(x)) {
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "read"))) {
			printf("client errors during the watch (%.0f s from the cutover): %.0f of %.0f "
			       "statement(s)\n",
			       num(x, "window_s"), num(x, "errors"), num(x, "statements"));
			print_counts("by SQLSTATE", cJSON_GetObjectItemCaseSensitive(x, "by_sqlstate"));
			print_counts("by constraint", cJSON_GetObjectItemCaseSensitive(x, "by_constraint"));
		} else {
			printf("client errors during the watch: not known (a proxy did not answer)\n");
		}
	} else {
		printf("client errors during the watch: none recorded (no --proxy, or no watch)\n");
	}
	print_latency(doc);
	x = cJSON_GetObjectItemCaseSensitive(doc, "self_test");
	if (cJSON_IsObject(x)) {
		printf("self-test: %.0f/%.0f constraints enforce\n", num(x, "enforced"),
		       num(x, "constraints"));
		cJSON_ArrayForEach(y, cJSON_GetObjectItemCaseSensitive(x, "checks"))
		{
			printf("  %s: %s: %s%s%s%s (%s)\n", str(y, "constraint"), str(y, "check"),
			       str(y, "outcome"), str(y, "sqlstate")[0] ? " [" : "", str(y, "sqlstate"),
			       str(y, "sqlstate")[0] ? "]" : "", str(y, "detail"));
		}
	} else {
		printf("self-test: not run (apply --self-test)\n");
	}
	x = cJSON_GetObjectItemCaseSensitive(doc, "damage");
	if (!cJSON_IsObject(x))
		return;
	printf("damage assessment (rolled back):\n");
	cJSON_ArrayForEach(y, cJSON_GetObjectItemCaseSensitive(x, "constraints"))
	{
		if (num(y, "violating_rows") >= 0)
			printf("  %s on %s: %.0f row(s) violate it now; %.0f client error(s) from it during "
			       "the watch\n",
			       str(y, "constraint"), str(y, "table"), num(y, "violating_rows"),
			       num(y, "client_errors"));
		else
			printf("  %s on %s: cannot count the rows violating it: %s\n", str(y, "constraint"),
			       str(y, "table"), str(y, "error"));
	}
	y = cJSON_GetObjectItemCaseSensitive(x, "constraints_equal_snapshot");
	if (cJSON_IsBool(y))
		printf("  constraints of every affected table equal the snapshot: %s\n",
		       cJSON_IsTrue(y) ? "yes" : "NO");
	else
		printf("  cannot compare the constraints with the snapshot: %s\n", str(x, "snapshot_error"));
	cJSON_ArrayForEach(y, cJSON_GetObjectItemCaseSensitive(x, "differences"))
	{
		printf("    still to undo: %s\n", cJSON_GetStringValue(y));
	}
}

int cmd_report(struct options *o)
{
	struct journal_migration m = { 0 };
	struct db_error err;
	bool found = false;
	char *end;
	long long id;
	PGconn *c;
	int rc = EXIT_DONE;

	if (o->n_args != 1 || (id = strtoll(o->args[0], &end, 10)) <= 0 || *end) {
		report_error("report takes one migration id", NULL, "pgvalve report ID --db URL");
		return EXIT_USAGE;
	}
	c = commands_connect(o, "report");
	if (!c)
		return EXIT_USAGE;
	if (!journal_ensure(c, &err) || !journal_read_migration(c, id, &m, &found, &err)) {
		report_error("cannot read the journal (schema pgvalve)", err.msg, NULL);
		rc = EXIT_ATTENTION;
	} else if (!found) {
		report_error("no such migration", NULL, "`pgvalve status` lists them");
		rc = EXIT_USAGE;
	} else {
		cJSON *doc = build(c, &m);

		if (o->format == FORMAT_JSON) {
			report_document(doc);
		} else {
			print_text(doc);
			cJSON_Delete(doc);
		}
	}
	journal_migration_free(&m);
	PQfinish(c);
	return rc;
}
