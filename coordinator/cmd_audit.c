/*
 * pgvalve audit: reads the foreign-key graph of the chosen schemas
 * (audit_catalog.c), analyses it (audit_graph.c), lists what is wrong
 * (audit_findings.c) and, with --suggest, the foreign keys that are missing
 * (audit_suggest.c), with --orphans the rows that would break them
 * (audit_orphans.c), and prints it all as text, JSON, DOT, Mermaid or a
 * migration file. Changes nothing. Exit 0, or 1 with --fail-on when a
 * finding of that severity (or worse) exists.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "catalog.h"
#include "commands.h"
#include "report.h"
#include "xalloc.h"

/* Each orphan count's statement_timeout. */
#define AUDIT_ORPHANS_TIMEOUT_MS 30000

/*
 * One part of a name as PostgreSQL reads it: "Quoted" as written (""
 * for a quote), unquoted folded to lower case. Advances *s past it; false
 * when empty, unterminated or longer than 63 bytes.
 */
static bool name_part(const char **s, char out[PLAN_NAME_MAX])
{
	size_t n = 0;
	const char *p = *s;

	if (*p == '"') {
		for (p++;; p++) {
			if (*p == '\0')
				return false;
			if (*p == '"') {
				if (p[1] != '"')
					break;
				p++;
			}
			if (n + 1 >= PLAN_NAME_MAX)
				return false;
			out[n++] = *p;
		}
		p++;
	} else {
		for (; *p && *p != '.'; p++) {
			if (n + 1 >= PLAN_NAME_MAX)
				return false;
			out[n++] = (char)tolower((unsigned char)*p);
		}
	}
	out[n] = '\0';
	*s = p;
	return n > 0;
}

/* --table's argument: "table", "schema.table", either part "quoted". */
static bool parse_table(const char *s, struct qname *q)
{
	char first[PLAN_NAME_MAX];

	memset(q, 0, sizeof(*q));
	if (!name_part(&s, first))
		return false;
	if (*s == '\0') {
		memcpy(q->name, first, sizeof(first));
		return true;
	}
	if (*s++ != '.')
		return false;
	memcpy(q->schema, first, sizeof(first));
	return name_part(&s, q->name) && *s == '\0';
}

/* Marks the --table tables in 'seeds'; false (reported) when one is missing or outside the graph. */
static bool find_seeds(PGconn *c, const struct options *o, const struct audit_graph *g, bool *seeds)
{
	for (int i = 0; i < o->n_tables; i++) {
		struct catalog_relation rel;
		struct db_error err;
		struct qname q;
		unsigned oid;
		bool found = false;

		if (!parse_table(o->tables[i], &q)) {
			report_error("--table: not a table name", o->tables[i],
				     "give table, schema.table, or \"Quoted\" parts");
			return false;
		}
		switch (catalog_relation(c, &q, &rel, &err)) {
		case CATALOG_ERROR:
			report_error("cannot look the table up", err.msg, NULL);
			return false;
		case CATALOG_MISSING:
			report_error("--table: no such table", o->tables[i],
				     "an unqualified name is looked up in search_path; qualify it with its "
				     "schema");
			return false;
		case CATALOG_FOUND:
			break;
		}
		oid = (unsigned)strtoul(rel.oid, NULL, 10);
		for (int v = 0; v < g->n_tables; v++)
			if (g->tables[v].oid == oid) {
				seeds[v] = true;
				found = true;
			}
		if (!found) {
			report_error("--table: the table is not in the audited schemas (or is a partition)",
				     rel.regclass,
				     "add its schema with --schema, or name its partitioned table");
			return false;
		}
	}
	return true;
}

static void describe_scope(const struct options *o, char *out, size_t cap)
{
	size_t len;

	if (o->n_schemas == 0)
		len = (size_t)snprintf(out, cap, "every schema but the system's");
	else
		len = (size_t)snprintf(out, cap, "schema%s ", o->n_schemas > 1 ? "s" : "");
	for (int i = 0; i < o->n_schemas && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : "", o->schemas[i]);
	for (int i = 0; i < o->n_tables && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : ", around ", o->tables[i]);
}

static void print_report(const struct options *o, const struct audit_report *r)
{
	switch (o->format) {
	case FORMAT_JSON:
		report_document(audit_to_json(r));
		break;
	case FORMAT_DOT:
		audit_print_dot(stdout, r);
		break;
	case FORMAT_MERMAID:
		audit_print_mermaid(stdout, r);
		break;
	case FORMAT_SQL:
		audit_print_sql(stdout, r);
		break;
	case FORMAT_TEXT:
		audit_print_text(stdout, r);
		break;
	}
}

int cmd_audit(struct options *o)
{
	struct audit_scope scope = { .schemas = o->schemas, .n_schemas = o->n_schemas };
	struct audit_graph g = { 0 };
	struct audit_analysis a = { 0 };
	struct audit_findings f = { 0 };
	struct audit_suggestions s = { 0 };
	bool suggest = o->suggest || o->format == FORMAT_SQL;
	struct audit_report r = { &g, &a, &f, suggest ? &s : NULL, NULL };
	struct db_error err = { 0 };
	char scope_text[512];
	PGconn *c;
	int rc = EXIT_DONE;

	if (o->n_args > 0) {
		report_error("pgvalve audit takes no file or id", o->args[0], "pgvalve audit --db URL");
		return EXIT_USAGE;
	}
	c = commands_connect(o, "audit");
	if (!c)
		return EXIT_USAGE;
	scope.suggest = suggest;
	if (!audit_read(c, &scope, &g, &err)) {
		bool denied = strcmp(err.sqlstate, "42501") == 0;

		report_error(
			denied ? err.msg : "cannot read the foreign-key graph", denied ? NULL : err.msg,
			denied ? "GRANT USAGE ON SCHEMA … TO the role, or leave the schema out of --schema"
			       : NULL);
		PQfinish(c);
		return denied ? EXIT_USAGE : EXIT_ATTENTION;
	}
	for (int i = 0; i < g.n_unreadable; i++) {
		char *what = xasprintf("schema \"%s\" left out: the role has no USAGE on it",
				       g.unreadable[i]);

		report_warning(what, NULL);
		free(what);
	}
	if (o->n_tables > 0) {
		bool *seeds = xcalloc((size_t)g.n_tables + 1, sizeof(bool)), *keep;

		if (!find_seeds(c, o, &g, seeds)) {
			free(seeds);
			rc = EXIT_USAGE;
			goto done;
		}
		keep = xcalloc((size_t)g.n_tables + 1, sizeof(bool));
		audit_impact(&g, seeds, keep);
		audit_graph_restrict(&g, keep);
		free(seeds);
		free(keep);
	}
	audit_analyze(&g, &a);
	audit_findings_build(&g, &a, &f);
	if (suggest)
		audit_suggest(&g, &s, &f);
	if (o->orphans && !audit_orphans(c, &g, suggest ? &s : NULL, &f, AUDIT_ORPHANS_TIMEOUT_MS, &err)) {
		report_error("lost the connection while counting orphans", err.msg, NULL);
		rc = EXIT_ATTENTION;
		goto done;
	}
	audit_findings_sort(&f, &g);
	describe_scope(o, scope_text, sizeof(scope_text));
	r.scope = scope_text;
	print_report(o, &r);
	if ((o->fail_on == FAIL_ON_ERROR && f.by_severity[SEV_ERROR] > 0) ||
	    (o->fail_on == FAIL_ON_WARNING && f.by_severity[SEV_ERROR] + f.by_severity[SEV_WARNING] > 0))
		rc = EXIT_REFUSED;
done:
	audit_suggestions_free(&s);
	audit_findings_free(&f);
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
	PQfinish(c);
	return rc;
}
