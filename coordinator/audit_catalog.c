/*
 * The foreign-key graph read from the catalog (see audit.h): one read-only
 * transaction, a handful of queries whatever the number of tables — the
 * schemas, the tables, the foreign keys, and with --suggest the key
 * columns, candidate columns and constraint names. Only pg_catalog is read:
 * no relation of the user's is opened, so nothing but catalog
 * AccessShareLocks is taken; a short lock_timeout and statement_timeout
 * keep the audit from queueing behind DDL. Sizes are relpages estimates for
 * the same reason (pg_relation_size() would lock each table). JIT is off:
 * compiling these plans costs more than running them.
 */
#include <stdlib.h>
#include <string.h>

#include "array_literal.h"
#include "audit.h"
#include "xalloc.h"

#define AUDIT_LOCK_TIMEOUT_MS 1000
#define AUDIT_STATEMENT_TIMEOUT_MS 60000

/* The top of a partition tree, or the table itself (pg_partition_root() is NULL for plain tables). */
#define ROOT(x) "COALESCE(pg_catalog.pg_partition_root(" x ")::oid, " x ")"

/* Schemas that are never audited unless named: the system's and pgvalve's journal. */
#define DEFAULT_SCOPE                                                                              \
	"n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgvalve') AND n.nspname NOT LIKE " \
	"'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"

/* SQL text is laid out as SQL, not as C. */
/* clang-format off */

/*
 * The tables that are nodes: $1 the schema oids in scope. Rows and pages
 * come from the tables with storage (a partitioned table's own reltuples,
 * set by ANALYZE, already counts its partitions).
 */
static const char tables_sql[] =
	"WITH base AS (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = ANY ($1::oid[]) "
	"  AND c.relkind IN ('r', 'p') AND NOT c.relispartition), "
	"ends AS (SELECT " ROOT("v.x") " AS oid FROM pg_catalog.pg_constraint con, "
	"  LATERAL (VALUES (con.conrelid), (con.confrelid)) v(x) "
	"  WHERE con.contype = 'f' AND con.conparentid = 0 "
	"  AND (" ROOT("con.conrelid") " IN (SELECT oid FROM base) "
	"    OR " ROOT("con.confrelid") " IN (SELECT oid FROM base))), "
	"nodes AS (SELECT oid FROM base UNION SELECT oid FROM ends), "
	"sizes AS (SELECT " ROOT("c.oid") " AS root, sum(GREATEST(c.reltuples, 0)) AS n, "
	"  sum(c.relpages) AS pages FROM pg_catalog.pg_class c WHERE c.relkind = 'r' "
	"  AND (c.oid IN (SELECT oid FROM nodes) OR c.relispartition) GROUP BY 1) "
	"SELECT c.oid, n.nspname, c.relname, "
	"  pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), "
	"  c.relkind = 'p', COALESCE(s.n, 0)::bigint, "
	"  COALESCE(s.pages, 0)::bigint * pg_catalog.current_setting('block_size')::bigint, "
	"  EXISTS (SELECT 1 FROM pg_catalog.pg_constraint p WHERE p.conrelid = c.oid AND p.contype = 'p'), "
	"  c.oid IN (SELECT oid FROM base), "
	"  (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_constraint p "
	"   JOIN pg_catalog.pg_attribute a ON a.attrelid = p.conrelid AND a.attnum = p.conkey[1] "
	"   WHERE p.conrelid = c.oid AND p.contype = 'p' AND pg_catalog.cardinality(p.conkey) = 1) "
	"FROM nodes JOIN pg_catalog.pg_class c ON c.oid = nodes.oid "
	"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace LEFT JOIN sizes s ON s.root = c.oid "
	"ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\"";

/* The names and types of attributes 'keys' of relation 'rel', in key order, as a lateral subquery. */
#define ATTRS(rel, keys, alias) \
	"LEFT JOIN LATERAL (SELECT pg_catalog.array_agg(a.attname ORDER BY k.i) AS names, " \
	"  pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY k.i) AS types " \
	"  FROM pg_catalog.unnest(" keys ") WITH ORDINALITY k(n, i) " \
	"  JOIN pg_catalog.pg_attribute a ON a.attrelid = " rel " AND a.attnum = k.n) " alias " ON true "

/*
 * The foreign keys touching the nodes ($1), each once: the copies PostgreSQL
 * makes on every partition (conparentid <> 0) are skipped.
 */
static const char fks_sql[] =
	"WITH nodes AS (SELECT pg_catalog.unnest($1::oid[]) AS oid), "
	"fk AS (SELECT con.*, " ROOT("con.conrelid") " AS f, " ROOT("con.confrelid") " AS t "
	"  FROM pg_catalog.pg_constraint con WHERE con.contype = 'f' AND con.conparentid = 0) "
	"SELECT fk.conname, fk.f, fk.t, fk.confdeltype, fk.confupdtype, fk.condeferrable, "
	"  fk.condeferred, fk.convalidated, fk.confmatchtype, "
	"  mine.names, theirs.names, mine.types, theirs.types, "
	"  EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = fk.conrelid AND i.indisvalid "
	"    AND i.indnkeyatts >= pg_catalog.cardinality(fk.conkey) "
	"    AND (i.indkey::int2[])[0:pg_catalog.cardinality(fk.conkey) - 1] @> fk.conkey "
	"    AND (i.indkey::int2[])[0:pg_catalog.cardinality(fk.conkey) - 1] <@ fk.conkey), "
	"  EXISTS (SELECT 1 FROM pg_catalog.pg_constraint u WHERE u.conrelid = fk.confrelid "
	"    AND u.contype IN ('p', 'u') AND u.conkey @> fk.confkey AND u.conkey <@ fk.confkey) "
	"FROM fk " ATTRS("fk.conrelid", "fk.conkey", "mine") ATTRS("fk.confrelid", "fk.confkey", "theirs")
	"WHERE fk.f IN (SELECT oid FROM nodes) OR fk.t IN (SELECT oid FROM nodes) "
	"ORDER BY 2, fk.conname COLLATE \"C\"";

/* One-column unique keys of the nodes ($1): a primary key, a UNIQUE constraint or a unique index. */
static const char keys_sql[] =
	"SELECT i.indrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), i.indisprimary "
	"FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid "
	"  AND a.attnum = i.indkey[0] "
	"WHERE i.indrelid = ANY ($1::oid[]) AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1 "
	"  AND i.indpred IS NULL AND i.indkey[0] <> 0 "
	"ORDER BY i.indrelid, NOT i.indisprimary, a.attname COLLATE \"C\"";

/* Columns of the nodes ($1) whose names look like a reference to something. */
static const char columns_sql[] =
	"SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
	"  EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid AND i.indisvalid "
	"    AND i.indkey[0] = a.attnum), "
	"  EXISTS (SELECT 1 FROM pg_catalog.pg_constraint f WHERE f.conrelid = a.attrelid "
	"    AND f.contype = 'f' AND a.attnum = ANY (f.conkey)) "
	"FROM pg_catalog.pg_attribute a WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 "
	"  AND NOT a.attisdropped AND a.attname ~* '(id|uuid)$' "
	"ORDER BY a.attrelid, a.attnum";

/*
 * Names in the nodes' schemas a chosen name must not repeat: constraints
 * ("c" first) for a new foreign key, relations ("r" first) for a new index.
 */
static const char names_sql[] =
	"WITH ns AS (SELECT DISTINCT c.relnamespace AS oid FROM pg_catalog.pg_class c "
	"  WHERE c.oid = ANY ($1::oid[])) "
	"SELECT 'c' || n.nspname || chr(31) || con.conname FROM pg_catalog.pg_constraint con "
	"JOIN pg_catalog.pg_namespace n ON n.oid = con.connamespace WHERE con.connamespace IN (SELECT oid FROM ns) "
	"UNION ALL "
	"SELECT 'r' || n.nspname || chr(31) || c.relname FROM pg_catalog.pg_class c "
	"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relnamespace IN (SELECT oid FROM ns)";

/* clang-format on */

/* Splits a text[] value as PostgreSQL prints it ({a,"b c"}) into 'n' strings. */
static char **array_parse(const char *s, int *n)
{
	char **out = NULL;
	int cap = 0;

	*n = 0;
	if (*s != '{')
		return NULL;
	s++;
	while (*s && *s != '}') {
		char *buf = xmalloc(strlen(s) + 1);
		size_t k = 0;

		if (*s == '"') {
			for (s++; *s && *s != '"'; s++) {
				if (*s == '\\' && s[1])
					s++;
				buf[k++] = *s;
			}
			if (*s == '"')
				s++;
		} else {
			while (*s && *s != ',' && *s != '}')
				buf[k++] = *s++;
		}
		buf[k] = '\0';
		if (*n == cap) {
			cap = cap ? cap * 2 : 4;
			out = xrealloc(out, sizeof(char *) * (size_t)cap);
		}
		out[(*n)++] = buf;
		if (*s == ',')
			s++;
	}
	return out;
}

static int table_by_oid(const struct audit_graph *g, unsigned oid)
{
	/* Tables are few enough and lookups rare enough (once per row read) for a binary search. */
	int lo = 0, hi = g->n_tables - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;

		if (g->tables[mid].oid == oid)
			return mid;
		if (g->tables[mid].oid < oid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* The schema oids in scope as an oid[] literal; false with 'err' naming a schema that cannot be read. */
static bool read_scope(PGconn *c, const struct audit_scope *scope, struct audit_graph *g, char **oids,
		       struct db_error *err)
{
	struct strbuf lit = { 0 };
	PGresult *r;
	bool ok = true;

	if (scope->n_schemas > 0) {
		struct strbuf list = { 0 };
		const char *params[1];
		char *names;

		for (int i = 0; i < scope->n_schemas; i++)
			array_literal_add_text(&list, scope->schemas[i]);
		params[0] = names = array_literal_take(&list);
		r = db_query(
			c,
			"SELECT s, n.oid, n.oid IS NOT NULL AND pg_catalog.has_schema_privilege(n.oid, "
			"'USAGE') FROM pg_catalog.unnest($1::text[]) s LEFT JOIN pg_catalog.pg_namespace n "
			"ON n.nspname = s",
			1, params, err);
		free(names);
	} else {
		r = db_query(c,
			     "SELECT n.nspname, n.oid, pg_catalog.has_schema_privilege(n.oid, 'USAGE') "
			     "FROM pg_catalog.pg_namespace n WHERE " DEFAULT_SCOPE
			     " ORDER BY n.nspname COLLATE \"C\"",
			     0, NULL, err);
	}
	if (!r)
		return false;
	for (int i = 0; i < PQntuples(r) && ok; i++) {
		const char *name = PQgetvalue(r, i, 0);

		if (PQgetisnull(r, i, 1)) {
			snprintf(err->msg, sizeof(err->msg), "schema \"%s\" does not exist", name);
			ok = false;
		} else if (strcmp(PQgetvalue(r, i, 2), "t") != 0) {
			if (scope->n_schemas > 0) {
				snprintf(err->msg, sizeof(err->msg),
					 "permission denied for schema \"%s\": the role has no USAGE on it",
					 name);
				ok = false;
			} else {
				g->unreadable = xrealloc(g->unreadable,
							 sizeof(char *) * (size_t)(g->n_unreadable + 1));
				g->unreadable[g->n_unreadable++] = xstrdup(name);
			}
		} else {
			array_literal_add(&lit, PQgetvalue(r, i, 1));
		}
	}
	PQclear(r);
	if (!ok) {
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", "42501");
		strbuf_reset(&lit);
		return false;
	}
	*oids = array_literal_take(&lit);
	return true;
}

static bool read_tables(PGconn *c, const char *schema_oids, struct audit_graph *g, char **node_oids,
			struct db_error *err)
{
	const char *params[1] = { schema_oids };
	PGresult *r = db_query(c, tables_sql, 1, params, err);
	struct strbuf lit = { 0 };

	if (!r)
		return false;
	g->n_tables = PQntuples(r);
	g->tables = xcalloc((size_t)g->n_tables + 1, sizeof(struct audit_table));
	for (int i = 0; i < g->n_tables; i++) {
		struct audit_table *t = &g->tables[i];

		t->oid = (unsigned)strtoul(PQgetvalue(r, i, 0), NULL, 10);
		t->schema = xstrdup(PQgetvalue(r, i, 1));
		t->name = xstrdup(PQgetvalue(r, i, 2));
		t->display = xstrdup(PQgetvalue(r, i, 3));
		t->partitioned = PQgetvalue(r, i, 4)[0] == 't';
		t->rows = strtoll(PQgetvalue(r, i, 5), NULL, 10);
		t->bytes = strtoll(PQgetvalue(r, i, 6), NULL, 10);
		t->has_pk = PQgetvalue(r, i, 7)[0] == 't';
		t->in_scope = PQgetvalue(r, i, 8)[0] == 't';
		t->pk_type = PQgetisnull(r, i, 9) ? NULL : xstrdup(PQgetvalue(r, i, 9));
		array_literal_add(&lit, PQgetvalue(r, i, 0));
	}
	PQclear(r);
	*node_oids = array_literal_take(&lit);
	return true;
}

static enum audit_action action_of(char c)
{
	switch (c) {
	case 'r':
		return ACT_RESTRICT;
	case 'c':
		return ACT_CASCADE;
	case 'n':
		return ACT_SET_NULL;
	case 'd':
		return ACT_SET_DEFAULT;
	default:
		return ACT_NO_ACTION;
	}
}

/* Frees a parsed array. */
static void strings_free(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool read_fks(PGconn *c, const char *node_oids, struct audit_graph *g, struct db_error *err)
{
	const char *params[1] = { node_oids };
	PGresult *r = db_query(c, fks_sql, 1, params, err);
	int rows;

	if (!r)
		return false;
	rows = PQntuples(r);
	g->fks = xcalloc((size_t)rows + 1, sizeof(struct audit_fk));
	for (int i = 0; i < rows; i++) {
		struct audit_fk *fk = &g->fks[g->n_fks];
		int from = table_by_oid(g, (unsigned)strtoul(PQgetvalue(r, i, 1), NULL, 10));
		int to = table_by_oid(g, (unsigned)strtoul(PQgetvalue(r, i, 2), NULL, 10));
		int n1, n2, n3, n4;
		char **cols = array_parse(PQgetvalue(r, i, 9), &n1);
		char **refs = array_parse(PQgetvalue(r, i, 10), &n2);
		char **types = array_parse(PQgetvalue(r, i, 11), &n3);
		char **rtypes = array_parse(PQgetvalue(r, i, 12), &n4);

		if (from < 0 || to < 0 || n1 == 0 || n1 != n2 || n1 != n3 || n1 != n4) {
			/* Defensive: a key whose table or columns the node query did not see. */
			strings_free(cols, n1);
			strings_free(refs, n2);
			strings_free(types, n3);
			strings_free(rtypes, n4);
			continue;
		}
		fk->name = xstrdup(PQgetvalue(r, i, 0));
		fk->from = from;
		fk->to = to;
		fk->on_delete = action_of(PQgetvalue(r, i, 3)[0]);
		fk->on_update = action_of(PQgetvalue(r, i, 4)[0]);
		fk->deferrable = PQgetvalue(r, i, 5)[0] == 't';
		fk->deferred = PQgetvalue(r, i, 6)[0] == 't';
		fk->validated = PQgetvalue(r, i, 7)[0] == 't';
		fk->match_full = PQgetvalue(r, i, 8)[0] == 'f';
		fk->n_columns = n1;
		fk->columns = cols;
		fk->ref_columns = refs;
		fk->types = types;
		fk->ref_types = rtypes;
		fk->indexed = PQgetvalue(r, i, 13)[0] == 't';
		fk->ref_is_constraint = PQgetvalue(r, i, 14)[0] == 't';
		g->n_fks++;
	}
	PQclear(r);
	return true;
}

static bool read_suggest_inputs(PGconn *c, const char *node_oids, struct audit_graph *g, struct db_error *err)
{
	const char *params[1] = { node_oids };
	PGresult *r;

	if (!(r = db_query(c, keys_sql, 1, params, err)))
		return false;
	g->keys = xcalloc((size_t)PQntuples(r) + 1, sizeof(struct audit_key));
	for (int i = 0; i < PQntuples(r); i++) {
		int t = table_by_oid(g, (unsigned)strtoul(PQgetvalue(r, i, 0), NULL, 10));

		if (t < 0)
			continue;
		g->keys[g->n_keys++] = (struct audit_key){ .table = t,
							   .column = xstrdup(PQgetvalue(r, i, 1)),
							   .type = xstrdup(PQgetvalue(r, i, 2)),
							   .primary = PQgetvalue(r, i, 3)[0] == 't' };
	}
	PQclear(r);
	if (!(r = db_query(c, columns_sql, 1, params, err)))
		return false;
	g->columns = xcalloc((size_t)PQntuples(r) + 1, sizeof(struct audit_column));
	for (int i = 0; i < PQntuples(r); i++) {
		int t = table_by_oid(g, (unsigned)strtoul(PQgetvalue(r, i, 0), NULL, 10));

		if (t < 0 || !g->tables[t].in_scope)
			continue;
		g->columns[g->n_columns++] = (struct audit_column){ .table = t,
								    .name = xstrdup(PQgetvalue(r, i, 1)),
								    .type = xstrdup(PQgetvalue(r, i, 2)),
								    .indexed = PQgetvalue(r, i, 3)[0] == 't',
								    .in_fk = PQgetvalue(r, i, 4)[0] == 't' };
	}
	PQclear(r);
	if (!(r = db_query(c, names_sql, 1, params, err)))
		return false;
	g->constraint_names = xcalloc((size_t)PQntuples(r) + 1, sizeof(char *));
	for (int i = 0; i < PQntuples(r); i++)
		g->constraint_names[g->n_constraint_names++] = xstrdup(PQgetvalue(r, i, 0));
	PQclear(r);
	return true;
}

static int cmp_oid(const void *a, const void *b)
{
	const struct audit_table *x = a, *y = b;

	return x->oid < y->oid ? -1 : x->oid > y->oid;
}

static const struct audit_table *sort_tables; /* qsort has no argument for cmp_index */

static int cmp_index(const void *a, const void *b)
{
	const struct audit_table *x = &sort_tables[*(const int *)a], *y = &sort_tables[*(const int *)b];
	int d = strcmp(x->schema, y->schema);

	return d ? d : strcmp(x->name, y->name);
}

static int cmp_fk(const void *a, const void *b)
{
	const struct audit_fk *x = a, *y = b;

	return x->from != y->from ? (x->from < y->from ? -1 : 1) : strcmp(x->name, y->name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Puts tables in name order (byte order, as the query sorted) once every row referring to them by oid is read. */
static void order_by_name(struct audit_graph *g)
{
	size_t n = (size_t)g->n_tables;
	int *order = xmalloc(sizeof(int) * (n + 1)), *renum = xmalloc(sizeof(int) * (n + 1));
	struct audit_table *sorted = xcalloc(n + 1, sizeof(struct audit_table));

	for (size_t i = 0; i < n; i++)
		order[i] = (int)i;
	sort_tables = g->tables;
	qsort(order, n, sizeof(int), cmp_index);
	for (size_t i = 0; i < n; i++) {
		sorted[i] = g->tables[order[i]];
		renum[order[i]] = (int)i;
	}
	free(g->tables);
	g->tables = sorted;
	for (int i = 0; i < g->n_fks; i++) {
		g->fks[i].from = renum[g->fks[i].from];
		g->fks[i].to = renum[g->fks[i].to];
	}
	qsort(g->fks, (size_t)g->n_fks, sizeof(struct audit_fk), cmp_fk);
	for (int i = 0; i < g->n_keys; i++)
		g->keys[i].table = renum[g->keys[i].table];
	for (int i = 0; i < g->n_columns; i++)
		g->columns[i].table = renum[g->columns[i].table];
	free(order);
	free(renum);
}

bool audit_read(PGconn *c, const struct audit_scope *scope, struct audit_graph *g, struct db_error *err)
{
	char *schema_oids = NULL, *node_oids = NULL;
	char setup[256];
	bool ok;

	memset(g, 0, sizeof(*g));
	snprintf(setup, sizeof(setup),
		 "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL lock_timeout = %d; "
		 "SET LOCAL statement_timeout = %d; SET LOCAL jit = off",
		 AUDIT_LOCK_TIMEOUT_MS, AUDIT_STATEMENT_TIMEOUT_MS);
	if (!db_exec(c, setup, err))
		return false;
	ok = read_scope(c, scope, g, &schema_oids, err) && read_tables(c, schema_oids, g, &node_oids, err);
	if (ok) {
		/* Rows below refer to tables by oid: find them by binary search, then order by name. */
		qsort(g->tables, (size_t)g->n_tables, sizeof(struct audit_table), cmp_oid);
		ok = read_fks(c, node_oids, g, err) &&
			(!scope->suggest || read_suggest_inputs(c, node_oids, g, err));
		if (ok)
			order_by_name(g);
	}
	free(schema_oids);
	free(node_oids);
	if (ok && g->n_constraint_names > 1)
		qsort(g->constraint_names, (size_t)g->n_constraint_names, sizeof(char *), cmp_str);
	if (!ok) {
		db_rollback(c);
		audit_graph_free(g);
		return false;
	}
	return db_exec(c, "COMMIT", err);
}
