/*
 * Recording apply's evidence (evidence.h; docs/architecture.md §4, evidence).
 */
#include "evidence.h"

#include <stdio.h>
#include <stdlib.h>

#include "apply_latency.h"
#include "journal_evidence.h"
#include "quote.h"
#include "report.h"
#include "selftest.h"
#include "strbuf.h"
#include "xalloc.h"

static void add(PGconn *c, int64_t id, const char *kind, cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc);
	struct db_error err;

	if (!journal_evidence_add(c, id, kind, text, &err))
		report_warning("cannot record evidence in the journal (pgvalve report will miss it)",
			       err.msg);
	free(text);
	cJSON_Delete(doc);
}

/*
 * A query counting the rows of the constraint's table that violate it, built
 * by the server from the catalog (names quoted by format %I, a CHECK by
 * pg_get_expr); NULL for a kind it does not cover.
 */
static char *violation_query(PGconn *c, const char *table, const char *name)
{
	struct strbuf q = { 0 };
	struct db_error err;
	char *out = NULL;
	PGresult *r;

	strbuf_put(&q,
		   "SELECT CASE con.contype WHEN 'f' THEN format('SELECT count(*) FROM %s c WHERE %s AND NOT "
		   "EXISTS (SELECT 1 FROM %s p WHERE (%s) = (%s))', con.conrelid::regclass, ");
	selftest_cols_sql(&q, "con", "conrelid", "conkey", "'c.%I IS NOT NULL'", "' AND '");
	strbuf_put(&q, ", con.confrelid::regclass, ");
	selftest_cols_sql(&q, "con", "conrelid", "conkey", "'c.%I'", "', '");
	strbuf_put(&q, ", ");
	selftest_cols_sql(&q, "con", "confrelid", "confkey", "'p.%I'", "', '");
	strbuf_put(&q,
		   ") WHEN 'c' THEN format('SELECT count(*) FROM %s WHERE NOT (%s)', con.conrelid::regclass, "
		   "pg_catalog.pg_get_expr(con.conbin, con.conrelid)) "
		   "WHEN 'u' THEN format('SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM %s "
		   "WHERE %s GROUP BY %s HAVING count(*) > 1) d', con.conrelid::regclass, ");
	selftest_cols_sql(&q, "con", "conrelid", "conkey", "'%I IS NOT NULL'", "' AND '");
	strbuf_put(&q, ", ");
	selftest_cols_sql(&q, "con", "conrelid", "conkey", "'%I'", "', '");
	strbuf_put(&q, ") END");
	r = selftest_constraint_query(c, &q, table, name, &err);
	if (r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		out = xstrdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

void evidence_cutover(PGconn *c, int64_t id, const struct plan *p, const struct options *o, int attempts,
		      int64_t held_ms)
{
	cJSON *doc = cJSON_CreateObject(), *proxies = cJSON_AddArrayToObject(doc, "proxies");

	cJSON_AddNumberToObject(doc, "attempts", attempts);
	cJSON_AddNumberToObject(doc, "held_ms", (double)held_ms);
	for (int i = 0; i < o->n_proxies; i++)
		cJSON_AddItemToArray(proxies, cJSON_CreateString(o->proxies[i]->url));
	add(c, id, EVIDENCE_CUTOVER, doc);
	for (int i = 0; i < p->n_constraints; i++) {
		const struct plan_constraint *k = &p->constraints[i];
		char table[2 * PLAN_NAME_MAX + 8];
		char *sql;

		quote_qname(table, sizeof(table), k->table.schema, k->table.name);
		sql = violation_query(c, table, k->name);
		if (!sql)
			continue;
		doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "constraint", k->name);
		cJSON_AddStringToObject(doc, "table", table);
		cJSON_AddStringToObject(doc, "kind", con_type_name(k->type));
		cJSON_AddStringToObject(doc, "column", k->n_columns > 0 ? k->columns[0] : "");
		cJSON_AddStringToObject(doc, "sql", sql);
		add(c, id, EVIDENCE_VIOLATION_QUERY, doc);
		free(sql);
	}
}

void evidence_watch_errors(PGconn *c, int64_t id, int window_s, const cJSON *errors)
{
	cJSON *doc = errors ? cJSON_Duplicate(errors, true) : cJSON_CreateObject();

	cJSON_DeleteItemFromObjectCaseSensitive(doc, "window_s");
	cJSON_AddNumberToObject(doc, "window_s", window_s);
	cJSON_AddBoolToObject(doc, "read", errors != NULL);
	add(c, id, EVIDENCE_WATCH_ERRORS, doc);
}

void evidence_hold_acks(PGconn *c, int64_t id, const char *what, const cJSON *hold_log)
{
	cJSON *doc;

	if (!hold_log || cJSON_GetArraySize(hold_log) == 0)
		return;
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "what", what);
	cJSON_AddItemToObject(doc, "holds", cJSON_Duplicate(hold_log, true));
	add(c, id, EVIDENCE_HOLD_ACKS, doc);
}

void evidence_latency(PGconn *c, int64_t id, const char *phase, const struct latency_reading *r)
{
	for (int i = 0; i < r->n; i++) {
		for (int k = 0; k < WATCH_LATENCY_KINDS; k++) {
			struct journal_latency l = { .table = r->t[i].name, .window_s = r->window_s };
			struct watch_latency s;
			struct db_error err;

			apply_latency_summarize(&r->t[i].h[k], &s);
			snprintf(l.phase, sizeof(l.phase), "%s", phase);
			snprintf(l.kind, sizeof(l.kind), "%s",
				 watch_latency_kind_name((enum watch_latency_kind)k));
			l.count = s.count;
			for (int q = 0; q < WATCH_LATENCY_STATS; q++)
				l.ms[q] = (double)s.us[q] / 1000.0;
			if (!journal_latency_add(c, id, &l, &err)) {
				report_warning(
					"cannot record table latency in the journal (pgvalve report will "
					"miss it)",
					err.msg);
				return;
			}
		}
	}
}
