/*
 * Preflight checks (see preflight.h). Names never travel inside SQL text
 * built here: tables are resolved to oids first and their quoted names come
 * from oid::regclass; column names go through format('%I') on the server.
 * The one piece of the migration's own SQL that is used is a CHECK
 * expression, which rules.c verified parses to the same expression tree.
 */
#include "preflight.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array_literal.h"
#include "catalog.h"
#include "proxyctl.h"
#include "xalloc.h"
#include "pgvalve/admin_api.h"
#include "pgvalve/pgtree.h"

#define CHECK_TIMEOUT "60s"
#define SAMPLES 5

const char *finding_level_name(enum finding_level l)
{
	static const char *const names[] = { "info", "warning", "error" };

	return names[l];
}

static void add(struct preflight *pf, enum finding_level level, const char *check, const char *subject,
		long long count, const char *detail, const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 8, 9)));

static void add(struct preflight *pf, enum finding_level level, const char *check, const char *subject,
		long long count, const char *detail, const char *hint, const char *fmt, ...)
{
	struct finding *f;
	char msg[1024];
	va_list ap;

	pf->findings = xrealloc(pf->findings, (size_t)(pf->n + 1) * sizeof(*pf->findings));
	f = &pf->findings[pf->n++];
	memset(f, 0, sizeof(*f));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f->level = level;
	snprintf(f->check, sizeof(f->check), "%s", check);
	snprintf(f->subject, sizeof(f->subject), "%s", subject);
	f->message = xstrdup(msg);
	f->detail = detail ? xstrdup(detail) : NULL;
	f->hint = hint ? xstrdup(hint) : NULL;
	f->count = count;
	pf->errors += level == FINDING_ERROR;
	pf->warnings += level == FINDING_WARNING;
}

/* A text[] literal of 'n' names, {"a","b\"c"}, malloc'd for the caller to free. */
static char *names_literal(const char (*names)[PLAN_NAME_MAX], int n)
{
	struct strbuf b = { 0 };

	for (int i = 0; i < n; i++)
		array_literal_add_text(&b, names[i]);
	return array_literal_take(&b);
}

/* The table's oid and its name as PostgreSQL quotes it; false when it does not exist or is no table. */
static bool table_oid(PGconn *c, const struct qname *q, char *oid, size_t oidcap, char *reg, size_t regcap)
{
	struct catalog_relation rel;
	struct db_error err;

	if (catalog_relation(c, q, &rel, &err) != CATALOG_FOUND || (rel.relkind != 'r' && rel.relkind != 'p'))
		return false;
	snprintf(oid, oidcap, "%s", rel.oid);
	snprintf(reg, regcap, "%s", rel.regclass);
	return true;
}

/*
 * Runs the query that the first query builds (one row, one column: the SQL
 * text), returning its result; NULL with 'err' on failure (a timeout included).
 */
static PGresult *run_built(PGconn *c, const char *builder, int n, const char *const *params,
			   struct db_error *err)
{
	PGresult *b = db_query(c, builder, n, params, err), *r;

	if (!b)
		return NULL;
	r = db_query(c, db_value(b, 0, 0, "SELECT NULL"), 0, NULL, err);
	PQclear(b);
	return r;
}

/* The referenced columns of an FK: as written, or the parent's primary key. */
static int ref_columns(PGconn *c, const struct plan_constraint *k, const char *parent_oid,
		       char (*out)[PLAN_NAME_MAX])
{
	const char *params[1] = { parent_oid };
	struct db_error err;
	PGresult *r;
	int n = 0;

	if (k->n_ref_columns > 0) {
		for (int i = 0; i < k->n_ref_columns; i++)
			snprintf(out[i], PLAN_NAME_MAX, "%s", k->ref_columns[i]);
		return k->n_ref_columns;
	}
	r = db_query(c,
		     "SELECT a.attname FROM pg_constraint con, unnest(con.conkey) WITH ORDINALITY AS k "
		     "(attnum, ord) "
		     "JOIN pg_attribute a ON a.attrelid = $1::oid AND a.attnum = k.attnum "
		     "WHERE con.conrelid = $1::oid AND con.contype = 'p' ORDER BY k.ord",
		     1, params, &err);
	for (int i = 0; r && i < PQntuples(r) && i < PLAN_MAX_COLUMNS; i++)
		snprintf(out[n++], PLAN_NAME_MAX, "%s", PQgetvalue(r, i, 0));
	PQclear(r);
	return n;
}

/* Whether 'a' and 'b' name the same table as a migration writes them (an unqualified name matches any schema). */
static bool same_table(const struct qname *a, const struct qname *b)
{
	return strcmp(a->name, b->name) == 0 &&
		(!a->schema[0] || !b->schema[0] || strcmp(a->schema, b->schema) == 0);
}

/*
 * Whether the migration itself builds an index whose leading columns are
 * exactly the key's columns (in any order, no WHERE clause): then the key is
 * indexed by the time it is added, and "no index" would be a false warning.
 */
static bool plan_indexes_key(const struct plan *p, const struct plan_constraint *k)
{
	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];
		const cJSON *stmt, *params;
		struct pgtree_error perr;
		bool covers = true;
		cJSON *doc;

		if (st->kind != STEP_CREATE_INDEX || !same_table(&st->table, &k->table))
			continue;
		doc = pgtree_parse(st->sql, &perr);
		stmt = doc
			? pgtree_node(pgtree_get(pgtree_list_at(pgtree_stmts(doc), 0), "stmt"), "IndexStmt")
			: NULL;
		params = stmt ? pgtree_get(stmt, "indexParams") : NULL;
		if (!stmt || pgtree_get(stmt, "whereClause") || pgtree_list_len(params) < k->n_columns)
			covers = false;
		for (int c = 0; covers && c < k->n_columns; c++) {
			bool found = false;

			for (int j = 0; j < k->n_columns && !found; j++) {
				const char *name = pgtree_str(
					pgtree_node(pgtree_list_at(params, j), "IndexElem"), "name");

				found = name && strcmp(name, k->columns[c]) == 0;
			}
			covers = found;
		}
		cJSON_Delete(doc);
		if (covers)
			return true;
	}
	return false;
}

static bool created_here(const struct plan *p, const struct qname *q);

static void check_foreign_key(PGconn *c, const struct plan *p, const struct plan_constraint *k,
			      const char *oid, const char *reg, struct preflight *pf)
{
	char poid[16], preg[300], *cols, *rcols, subject[300], detail[2048];
	char refs[PLAN_MAX_COLUMNS][PLAN_NAME_MAX];
	int n_refs;
	struct db_error err;
	PGresult *r;

	snprintf(subject, sizeof(subject), "%.63s on %.180s", k->name, reg);
	if (created_here(p, &k->ref_table))
		return; /* a table this migration creates: not there yet; the VALIDATE after the cutover checks */
	if (!table_oid(c, &k->ref_table, poid, sizeof(poid), preg, sizeof(preg))) {
		char name[2 * PLAN_NAME_MAX + 8];

		qname_format(&k->ref_table, name, sizeof(name));
		add(pf, FINDING_ERROR, "missing_table", subject, -1, NULL,
		    "create it first, or fix the REFERENCES clause", "referenced table %s does not exist",
		    name);
		return;
	}
	n_refs = ref_columns(c, k, poid, refs);
	if (n_refs != k->n_columns) {
		add(pf, FINDING_ERROR, "key_mismatch", subject, -1, NULL,
		    "name the referenced columns, or give the referenced table a primary key",
		    "%d referencing column(s) but %d referenced column(s) on %s", k->n_columns, n_refs, preg);
		return;
	}
	cols = names_literal(k->columns, k->n_columns);
	rcols = names_literal((const char(*)[PLAN_NAME_MAX])refs, n_refs);
	{
		const char *params[4] = { poid, rcols, oid, cols };

		/* The referenced columns need a unique index (PostgreSQL refuses the FK otherwise). */
		r = db_query(
			c,
			"SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::oid AND "
			"i.indisunique "
			"AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = "
			"cardinality($2::text[]) "
			"AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM "
			"unnest(i.indkey[0:i.indnkeyatts - 1]) k "
			"     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k) = "
			"    (SELECT array_agg(x ORDER BY x) FROM unnest($2::text[]) x)), "
			/* An index on the referencing side whose leading columns are the FK's. */
			"EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $3::oid AND i.indpred IS NULL "
			"AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM "
			"unnest(i.indkey[0:cardinality($4::text[]) - 1]) k "
			"     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k) = "
			"    (SELECT array_agg(x ORDER BY x) FROM unnest($4::text[]) x)), "
			/* Types, pairwise: referencing vs referenced. */
			"(SELECT string_agg(format('%I %s vs %I %s', cc, format_type(ca.atttypid, "
			"ca.atttypmod), rc, "
			"                   format_type(ra.atttypid, ra.atttypmod)), '; ') "
			" FROM unnest($4::text[], $2::text[]) AS x (cc, rc) "
			" JOIN pg_attribute ca ON ca.attrelid = $3::oid AND ca.attname = x.cc "
			" JOIN pg_attribute ra ON ra.attrelid = $1::oid AND ra.attname = x.rc "
			" WHERE ca.atttypid <> ra.atttypid)",
			4, params, &err);
		if (r) {
			if (strcmp(db_value(r, 0, 0, "f"), "t") != 0)
				add(pf, FINDING_ERROR, "no_unique_index", subject, -1, NULL,
				    "add a UNIQUE constraint or PRIMARY KEY on exactly those columns first",
				    "the referenced columns of %s have no unique index: PostgreSQL would "
				    "refuse this foreign key",
				    preg);
			if (strcmp(db_value(r, 0, 1, "f"), "t") != 0 && !plan_indexes_key(p, k))
				add(pf, FINDING_WARNING, "unindexed_fk", subject, -1, NULL,
				    "CREATE INDEX CONCURRENTLY on the referencing columns (pgvalve can do it "
				    "in the same migration)",
				    "no index on the referencing column(s) of %s: every DELETE or key UPDATE "
				    "on %s will scan %s",
				    reg, preg, reg);
			if (*db_value(r, 0, 2, ""))
				add(pf, FINDING_WARNING, "type_mismatch", subject, -1, db_value(r, 0, 2, ""),
				    "make the types equal: comparisons across types can stop index use",
				    "column types differ between %s and %s", reg, preg);
			PQclear(r);
		}
	}
	{
		const char *params[2] = { oid, cols };

		/* A column the migration adds is NULL in every row: it has no orphans to find. */
		r = db_query(c,
			     "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND "
			     "NOT attisdropped AND attname = ANY ($2::text[])",
			     2, params, &err);
		if (r && atoi(db_value(r, 0, 0, "0")) < k->n_columns) {
			PQclear(r);
			goto out;
		}
		PQclear(r);
	}
	{
		const char *params[4] = { reg, cols, preg, rcols };
		static const char builder[] =
			"SELECT format('SELECT count(*), (SELECT string_agg(s, ''; '') FROM (SELECT "
			"row(%s)::text AS s FROM %s c "
			"WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s) LIMIT "
			"5"
			") q) "
			"FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)', "
			" (SELECT string_agg(format('c.%I', x), ', ') FROM unnest($2::text[]) x), $1::text, "
			" (SELECT string_agg(format('c.%I IS NOT NULL', x), ' AND ') FROM unnest($2::text[]) "
			"x), $3::text, "
			" (SELECT string_agg(format('p.%I = c.%I', rc, cc), ' AND ') FROM unnest($4::text[], "
			"$2::text[]) AS y (rc, cc)), "
			" $1::text, "
			" (SELECT string_agg(format('c.%I IS NOT NULL', x), ' AND ') FROM unnest($2::text[]) "
			"x), $3::text, "
			" (SELECT string_agg(format('p.%I = c.%I', rc, cc), ' AND ') FROM unnest($4::text[], "
			"$2::text[]) AS y (rc, cc)))";

		r = run_built(c, builder, 4, params, &err);
		if (!r) {
			add(pf, FINDING_WARNING, "orphans", subject, -1, err.msg,
			    "run the check by hand, or raise the timeout",
			    "could not count orphan rows within " CHECK_TIMEOUT);
			goto out;
		}
		if (atoll(db_value(r, 0, 0, "0")) > 0) {
			snprintf(detail, sizeof(detail), "e.g. %s", db_value(r, 0, 1, ""));
			add(pf, FINDING_ERROR, "orphans", subject, atoll(db_value(r, 0, 0, "0")), detail,
			    "delete or fix those rows (or point them at existing rows) before adding the "
			    "foreign key",
			    "%s row(s) of %s reference no row of %s", db_value(r, 0, 0, "0"), reg, preg);
		}
		PQclear(r);
	}
out:
	free(cols);
	free(rcols);
}

static void check_rows(PGconn *c, const struct plan_constraint *k, const char *reg, struct preflight *pf)
{
	char subject[300], detail[2048], cols[256];
	struct db_error err;
	PGresult *r;

	snprintf(subject, sizeof(subject), "%.63s on %.180s", k->name, reg);
	if (k->type == CON_NOT_NULL) {
		const char *params[2] = { reg, k->columns[0] };

		r = run_built(
			c,
			"SELECT format('SELECT count(*), NULL FROM %s WHERE %I IS NULL', $1::text, $2::text)",
			2, params, &err);
	} else {
		const char *params[2] = { reg, k->check_expr };

		/* A CHECK passes on NULL: only rows where it is false violate it. */
		r = run_built(c,
			      "SELECT format('SELECT count(*), (SELECT string_agg(s, ''; '') FROM "
			      "(SELECT t::text AS s FROM %s t WHERE (%s) IS FALSE LIMIT 5) q) FROM %s WHERE "
			      "(%s) IS FALSE', "
			      "$1::text, $2::text, $1::text, $2::text)",
			      2, params, &err);
	}
	if (!r) {
		add(pf, FINDING_WARNING, "violations", subject, -1, err.msg,
		    "run the check by hand, or raise the timeout",
		    "could not count violating rows within " CHECK_TIMEOUT);
		return;
	}
	if (atoll(db_value(r, 0, 0, "0")) > 0) {
		snprintf(cols, sizeof(cols), "%s", k->type == CON_NOT_NULL ? k->columns[0] : "");
		snprintf(detail, sizeof(detail), "e.g. %s", db_value(r, 0, 1, "(rows with NULL)"));
		add(pf, FINDING_ERROR, "violations", subject, atoll(db_value(r, 0, 0, "0")),
		    k->type == CON_NOT_NULL ? NULL : detail,
		    k->type == CON_NOT_NULL ? "fill the NULLs (a backfill in batches) before SET NOT NULL"
					    : "fix those rows before adding the CHECK",
		    k->type == CON_NOT_NULL ? "%s row(s) of %s have NULL in %s"
					    : "%s row(s) of %s violate the CHECK%s",
		    db_value(r, 0, 0, "0"), reg, cols);
	}
	PQclear(r);
}

/* UNIQUE / PRIMARY KEY: duplicate keys (and NULLs, for a primary key) would make the index build fail. */
static void check_unique(PGconn *c, const struct plan_constraint *k, const char *reg, struct preflight *pf)
{
	char subject[300], *cols = names_literal(k->columns, k->n_columns);
	const char *params[3] = { reg, cols, k->type == CON_PRIMARY_KEY ? "t" : "f" };
	struct db_error err;
	PGresult *r;

	snprintf(subject, sizeof(subject), "%.63s on %.180s", k->name, reg);
	r = run_built(c,
		      "SELECT format('SELECT (SELECT count(*) FROM (SELECT 1 FROM %s WHERE %s GROUP BY %s "
		      "HAVING count(*) > 1) d), "
		      "(SELECT count(*) FROM %s WHERE %s)', $1::text, "
		      " (SELECT string_agg(format('%I IS NOT NULL', x), ' AND ') FROM unnest($2::text[]) x), "
		      " (SELECT string_agg(format('%I', x), ', ') FROM unnest($2::text[]) x), $1::text, "
		      " CASE WHEN $3 = 't' THEN (SELECT string_agg(format('%I IS NULL', x), ' OR ') FROM "
		      "unnest($2::text[]) x) "
		      "      ELSE 'false' END)",
		      3, params, &err);
	free(cols);
	if (!r) {
		add(pf, FINDING_WARNING, "duplicates", subject, -1, err.msg,
		    "run the check by hand, or raise the timeout",
		    "could not count duplicate keys within " CHECK_TIMEOUT);
		return;
	}
	if (atoll(db_value(r, 0, 0, "0")) > 0)
		add(pf, FINDING_ERROR, "duplicates", subject, atoll(db_value(r, 0, 0, "0")), NULL,
		    "remove the duplicates first: the unique index cannot be built over them",
		    "%s key value(s) occur more than once in %s", db_value(r, 0, 0, "0"), reg);
	if (atoll(db_value(r, 0, 1, "0")) > 0)
		add(pf, FINDING_ERROR, "violations", subject, atoll(db_value(r, 0, 1, "0")), NULL,
		    "fill the NULLs first: a primary key column cannot hold NULL",
		    "%s row(s) of %s have NULL in the key", db_value(r, 0, 1, "0"), reg);
	PQclear(r);
}

static bool dropped_first(const struct plan *p, const struct plan_constraint *k)
{
	for (int i = 0; i < p->n_drops; i++)
		if (strcmp(p->drops[i].name, k->name) == 0 &&
		    strcmp(p->drops[i].table.name, k->table.name) == 0)
			return true;
	return false;
}

static void check_name(PGconn *c, const struct plan *p, const struct plan_constraint *k, const char *oid,
		       const char *reg, struct preflight *pf)
{
	const char *params[2] = { oid, k->name };
	struct db_error err;
	PGresult *r = db_query(
		c,
		"SELECT 1 FROM pg_constraint WHERE conrelid = $1::oid AND conname = $2 "
		/* An invalid index (a failed build) is dropped and built again by prepare. */
		"UNION ALL SELECT 1 FROM pg_class ic JOIN pg_index i ON i.indexrelid = ic.oid "
		"WHERE ic.relname = $2 AND i.indisvalid "
		"AND ic.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::oid)",
		2, params, &err);
	char subject[300];

	snprintf(subject, sizeof(subject), "%.63s on %.180s", k->name, reg);
	if (r && PQntuples(r) > 0 && !dropped_first(p, k))
		add(pf, FINDING_ERROR, "name_collision", subject, -1, NULL,
		    "pick another name, or DROP the existing constraint earlier in the same file to replace "
		    "it",
		    "a constraint or index named %s already exists on %s", k->name, reg);
	PQclear(r);
}

/* Client backends on this database that no proxy reports: their work is not held. */
static void check_bypass(PGconn *c, const struct options *o, struct preflight *pf)
{
	char err[256], *pids;
	const char *params[1];
	struct strbuf list = { 0 };
	struct db_error dberr;
	PGresult *r;

	for (int i = 0; i < o->n_proxies; i++) {
		cJSON *doc = NULL, *s;
		int status = proxy_request(o->proxies[i], "GET", ADMIN_PATH_STATUS, NULL, 5000, &doc, err,
					   sizeof(err));

		if (status != 200) {
			add(pf, FINDING_ERROR, "proxy_unreachable", o->proxies[i]->url, -1,
			    status < 0 ? err : NULL,
			    "check --proxy (the proxy's admin address) and that it runs",
			    "proxy %s did not answer GET /status", o->proxies[i]->url);
			cJSON_Delete(doc);
			continue;
		}
		cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(doc, "sessions"))
		{
			int pid = (int)cJSON_GetNumberValue(
				cJSON_GetObjectItemCaseSensitive(s, "backend_pid"));

			if (pid > 0)
				array_literal_add_int(&list, pid);
		}
		cJSON_Delete(doc);
	}
	params[0] = pids = array_literal_take(&list);
	r = db_query(c,
		     "SELECT count(*), string_agg(format('pid %s %s@%s (%s)', pid, usename, "
		     "coalesce(client_addr::text, 'local'), coalesce(nullif(application_name, ''), 'no "
		     "name')), '; ') "
		     "FROM (SELECT * FROM pg_stat_activity WHERE datname = current_database() "
		     "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
		     "AND application_name NOT LIKE 'pgvalve%' AND pid <> ALL ($1::int[]) LIMIT 50) s",
		     1, params, &dberr);
	if (r && atoll(db_value(r, 0, 0, "0")) > 0)
		add(pf, FINDING_WARNING, "bypass", "sessions", atoll(db_value(r, 0, 0, "0")),
		    db_value(r, 0, 1, ""),
		    "point those applications at a proxy: their writes are not held and may stall behind the "
		    "DDL",
		    "%s session(s) on this database do not go through %s", db_value(r, 0, 0, "0"),
		    o->n_proxies ? "the listed proxies" : "any proxy (none given)");
	PQclear(r);
	free(pids);
}

/* Transactions already open on the plan's tables for longer than the stall budget. */
static void check_long_transactions(PGconn *c, const char *oids, const struct options *o,
				    struct preflight *pf)
{
	char budget[32];
	const char *params[2] = { oids, budget };
	struct db_error err;
	PGresult *r;

	snprintf(budget, sizeof(budget), "%d", o->max_stall_ms);
	r = db_query(c,
		     "SELECT count(DISTINCT a.pid), string_agg(DISTINCT format('pid %s on %s, open %s s: "
		     "%s', a.pid, "
		     "l.relation::regclass, round(extract(epoch FROM now() - a.xact_start)::numeric, 1), "
		     "left(a.query, 80)), '; ') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
		     "WHERE l.relation = ANY ($1::oid[]) AND a.pid <> pg_backend_pid() "
		     "AND now() - a.xact_start > make_interval(secs => $2::int / 1000.0)",
		     2, params, &err);
	if (r && atoll(db_value(r, 0, 0, "0")) > 0)
		add(pf, FINDING_WARNING, "long_transactions", "tables", atoll(db_value(r, 0, 0, "0")),
		    db_value(r, 0, 1, ""),
		    "the cutover will wait for them (holding nothing); --terminate-blockers-after can end "
		    "them",
		    "%s transaction(s) older than the stall budget hold locks on the migration's tables",
		    db_value(r, 0, 0, "0"));
	PQclear(r);
}

static bool created_here(const struct plan *p, const struct qname *q)
{
	for (int i = 0; i < p->n_created; i++)
		if (strcmp(p->created[i].schema, q->schema) == 0 && strcmp(p->created[i].name, q->name) == 0)
			return true;
	return false;
}

/* ADD COLUMN … DEFAULT calling functions whose volatility the rules could not know: pg_proc says. */
static void check_default_functions(PGconn *c, const struct plan *p, struct preflight *pf)
{
	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];
		const struct plan_input *in = &p->inputs[st->input];
		const char *params[1] = { st->check_functions };
		char subject[300];
		struct db_error err;
		PGresult *r;

		if (!st->check_functions[0])
			continue;
		snprintf(subject, sizeof(subject), "%.200s:%d", in->file, in->line);
		/* Any volatile overload counts: which one the default calls is the parser's choice. */
		r = db_query(c,
			     "SELECT (SELECT string_agg(DISTINCT proname, ', ') FROM pg_catalog.pg_proc "
			     "        WHERE proname = ANY (string_to_array($1, ',')) AND provolatile = 'v'), "
			     "       (SELECT string_agg(x, ', ') FROM unnest(string_to_array($1, ',')) x "
			     "        WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proname = x))",
			     1, params, &err);
		if (!r) {
			add(pf, FINDING_ERROR, "volatile_default", subject, -1, err.msg, NULL,
			    "cannot read the volatility of %s from pg_proc", st->check_functions);
			continue;
		}
		if (!PQgetisnull(r, 0, 0))
			add(pf, FINDING_ERROR, "volatile_default", subject, -1, NULL,
			    "add the column without a default, backfill in batches, then set the default",
			    "the default calls %s, which is volatile: computed for every row, it rewrites "
			    "the "
			    "table under ACCESS EXCLUSIVE",
			    PQgetvalue(r, 0, 0));
		if (!PQgetisnull(r, 0, 1))
			add(pf, FINDING_ERROR, "volatile_default", subject, -1, NULL,
			    "create the function before this migration (or in it, before the column)",
			    "the default calls %s, which does not exist", PQgetvalue(r, 0, 1));
		PQclear(r);
	}
}

/*
 * ALTER COLUMN … TYPE text / varchar(n): binary-coercible, so no rewrite,
 * only from varchar (or text) no longer than the new type.
 */
static void check_type_change(PGconn *c, const struct plan *p, struct preflight *pf)
{
	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];
		const struct plan_input *in = &p->inputs[st->input];
		char oid[16], reg[300], subject[300], length[16];
		const char *params[3] = { oid, st->check_type_column, length };
		struct db_error err;
		PGresult *r;

		if (!st->check_type_column[0] ||
		    !table_oid(c, &st->table, oid, sizeof(oid), reg, sizeof(reg)))
			continue;
		snprintf(subject, sizeof(subject), "%.200s:%d", in->file, in->line);
		snprintf(length, sizeof(length), "%d", st->check_type_length);
		/* atttypmod of varchar(n) is n + 4; -1 is no limit. */
		r = db_query(c,
			     "SELECT format_type(atttypid, atttypmod), "
			     "       (atttypid = 'pg_catalog.varchar'::regtype AND ($3::int < 0 OR "
			     "         (atttypmod >= 4 AND atttypmod - 4 <= $3::int))) "
			     "       OR (atttypid = 'pg_catalog.text'::regtype AND $3::int < 0) "
			     "FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 AND NOT "
			     "attisdropped",
			     3, params, &err);
		if (!r || PQntuples(r) != 1)
			add(pf, FINDING_ERROR, "type_change", subject, -1, r ? NULL : err.msg, NULL,
			    "cannot find column %s of %s", st->check_type_column, reg);
		else if (strcmp(PQgetvalue(r, 0, 1), "t") != 0)
			add(pf, FINDING_ERROR, "type_change", subject, -1, NULL,
			    "add a new column of the new type, write to both, backfill in batches, then swap "
			    "them in a brief cutover",
			    "column %s of %s is %s: changing it to this type is not a widening, and rewrites "
			    "the table under ACCESS EXCLUSIVE",
			    st->check_type_column, reg, PQgetvalue(r, 0, 0));
		PQclear(r);
	}
}

/* The steps that work only on an empty table: ADD COLUMN … NOT NULL without a default. */
static void check_table_steps(PGconn *c, const struct plan *p, struct preflight *pf)
{
	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];
		const struct plan_input *in = &p->inputs[st->input];
		char oid[16], reg[300], subject[300], *sql;
		struct db_error err;
		PGresult *r;

		if (!st->needs_empty || created_here(p, &st->table) ||
		    !table_oid(c, &st->table, oid, sizeof(oid), reg, sizeof(reg)))
			continue;
		snprintf(subject, sizeof(subject), "%.200s:%d", in->file, in->line);
		/* reg is the table's name as PostgreSQL quotes it (regclass output). */
		sql = xasprintf("SELECT 1 FROM %s LIMIT 1", reg);
		r = db_query(c, sql, 0, NULL, &err);
		free(sql);
		if (!r)
			add(pf, FINDING_ERROR, "not_empty", subject, -1, err.msg, NULL,
			    "cannot tell whether %s is empty", reg);
		else if (PQntuples(r) > 0)
			add(pf, FINDING_ERROR, "not_empty", subject, -1, NULL,
			    "add the column nullable (or with a non-volatile default), backfill in batches, "
			    "then SET NOT NULL (pgvalve proves it with a CHECK, without a long lock)",
			    "ADD COLUMN … NOT NULL without a default fails on %s, which has rows", reg);
		PQclear(r);
	}
}

/*
 * Objects created without a schema go to the session's current_schema():
 * for a role named like the journal's schema, "$user" makes that pgvalve's
 * own schema, where an application would never find them.
 */
static void check_creation_schema(PGconn *c, const struct plan *p, struct preflight *pf)
{
	bool unqualified = false;
	struct db_error err;
	PGresult *r;

	for (int i = 0; i < p->n_steps; i++)
		unqualified |= p->steps[i].kind == STEP_CREATE_OBJECT && !p->steps[i].table.schema[0] &&
			strncmp(p->steps[i].sql, "SET ", 4) != 0; /* "SET search_path …; CREATE …" */
	if (!unqualified)
		return;
	r = db_query(c, "SELECT current_schema() = 'pgvalve'", 0, NULL, &err);
	if (r && strcmp(db_value(r, 0, 0, "f"), "t") == 0)
		add(pf, FINDING_ERROR, "creation_schema", "search_path", -1, NULL,
		    "give the role a search_path without pgvalve's schema (ALTER ROLE … SET search_path = "
		    "public), or start the file with SET search_path TO your schema",
		    "objects the migration creates without a schema would land in the schema pgvalve, "
		    "pgvalve's journal (the role's search_path begins with \"$user\")");
	PQclear(r);
}

bool preflight_run(PGconn *c, const struct plan *p, const struct options *o, struct preflight *out,
		   struct db_error *err)
{
	struct strbuf list = { 0 };
	char *oids;

	memset(out, 0, sizeof(*out));
	out->rows_to_validate = xcalloc((size_t)p->n_constraints + 1, sizeof(*out->rows_to_validate));
	if (!db_exec(c, "SET statement_timeout = '" CHECK_TIMEOUT "'", err))
		return false;
	for (int i = 0; i < p->n_constraints; i++) {
		const struct plan_constraint *con = &p->constraints[i];
		char oid[16], reg[300], name[2 * PLAN_NAME_MAX + 8];
		const char *params[1] = { oid };
		PGresult *r;

		out->rows_to_validate[i] = -1;
		if (created_here(p, &con->table))
			continue; /* a new table: empty, nothing to find in it yet */
		if (!table_oid(c, &con->table, oid, sizeof(oid), reg, sizeof(reg))) {
			qname_format(&con->table, name, sizeof(name));
			add(out, FINDING_ERROR, "missing_table", con->name, -1, NULL,
			    "check the table name and search_path", "table %s does not exist", name);
			continue;
		}
		array_literal_add(&list, oid);
		r = db_query(c, "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::oid", 1,
			     params, err);
		if (r)
			out->rows_to_validate[i] = atoll(db_value(r, 0, 0, "-1"));
		PQclear(r);
		check_name(c, p, con, oid, reg, out);
		if (con->type == CON_FOREIGN_KEY)
			check_foreign_key(c, p, con, oid, reg, out);
		else if (con->type == CON_CHECK || con->type == CON_NOT_NULL)
			check_rows(c, con, reg, out);
		else
			check_unique(c, con, reg, out);
	}
	oids = array_literal_take(&list);
	check_table_steps(c, p, out);
	check_default_functions(c, p, out);
	check_type_change(c, p, out);
	check_creation_schema(c, p, out);
	check_long_transactions(c, oids, o, out);
	free(oids);
	check_bypass(c, o, out);
	return db_exec(c, "RESET statement_timeout", err);
}

void preflight_free(struct preflight *pf)
{
	for (int i = 0; i < pf->n; i++) {
		free(pf->findings[i].message);
		free(pf->findings[i].detail);
		free(pf->findings[i].hint);
	}
	free(pf->findings);
	free(pf->rows_to_validate);
	memset(pf, 0, sizeof(*pf));
}

cJSON *preflight_to_json(const struct preflight *pf)
{
	cJSON *arr = cJSON_CreateArray();

	for (int i = 0; i < pf->n; i++) {
		const struct finding *f = &pf->findings[i];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "level", finding_level_name(f->level));
		cJSON_AddStringToObject(o, "check", f->check);
		cJSON_AddStringToObject(o, "subject", f->subject);
		cJSON_AddStringToObject(o, "message", f->message);
		if (f->detail)
			cJSON_AddStringToObject(o, "detail", f->detail);
		if (f->hint)
			cJSON_AddStringToObject(o, "hint", f->hint);
		if (f->count >= 0)
			cJSON_AddNumberToObject(o, "count", (double)f->count);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}
