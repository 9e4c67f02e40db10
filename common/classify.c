/*
 * SQL classification (see classify.h). libpg_query parses the text into
 * PostgreSQL's own parse tree (read through pgvalve/pgtree.h); a walk over
 * it finds every table reference (RangeVar) and the lock strength its
 * position implies:
 *
 *   - the target of INSERT/UPDATE/DELETE/MERGE, COPY FROM, TRUNCATE: write;
 *   - anything named inside a utility statement (ALTER TABLE, CREATE INDEX,
 *     DROP, VACUUM, ...): write, and the DDL flag; queries nested in one
 *     (CREATE TABLE AS SELECT, CREATE VIEW) read as queries do;
 *   - every other reference: read.
 *
 * Whatever cannot be judged — a parse error, a function that is not built in,
 * CALL/DO/EXECUTE, statements that run arbitrary code — sets UNKNOWN.
 */
#include "pgvalve/classify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/pgtree.h"

static const char *const builtin_functions[] = {
#include "builtin_functions.inc"
};

#define MAX_SCOPE 256

/*
 * A reference to a CTE looks like a table reference. The names of the WITH
 * clauses enclosing the current node are kept as a stack: an unqualified
 * name found there is the CTE, not a table. Past MAX_SCOPE names, CTEs are
 * reported as tables — over-holding, never under-holding.
 */
struct walk {
	struct classify_result *out;
	int n_scope;
	char scope[MAX_SCOPE][CLASSIFY_NAME_MAX];
};

static bool in_scope(const struct walk *w, const char *name)
{
	for (int i = w->n_scope - 1; i >= 0; i--)
		if (strcmp(w->scope[i], name) == 0)
			return true;
	return false;
}

static void push_scope(struct walk *w, const char *name)
{
	if (name && w->n_scope < MAX_SCOPE)
		snprintf(w->scope[w->n_scope++], CLASSIFY_NAME_MAX, "%s", name);
}

static int compare_names(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

bool classify_is_builtin_function(const char *name)
{
	return bsearch(name, builtin_functions, sizeof(builtin_functions) / sizeof(builtin_functions[0]),
		       sizeof(builtin_functions[0]), compare_names) != NULL;
}

static void set_unknown(struct walk *w, const char *why)
{
	if (!(w->out->flags & CLASSIFY_UNKNOWN))
		w->out->unknown_reason = why;
	w->out->flags |= CLASSIFY_UNKNOWN;
}

static void add_ref(struct walk *w, const char *schema, const char *name, uint8_t access)
{
	struct classify_result *r = w->out;
	struct classify_ref ref = { .access = access };

	if (!name)
		return;
	snprintf(ref.schema, sizeof(ref.schema), "%s", schema ? schema : "");
	snprintf(ref.name, sizeof(ref.name), "%s", name);
	if (!schema && access == CLASSIFY_READ && in_scope(w, ref.name))
		return; /* a CTE of an enclosing WITH */
	for (int i = 0; i < r->n_refs; i++) {
		if (strcmp(r->refs[i].schema, ref.schema) == 0 && strcmp(r->refs[i].name, ref.name) == 0) {
			r->refs[i].access |= access;
			return;
		}
	}
	if (r->n_refs == CLASSIFY_MAX_REFS) {
		set_unknown(w, "more tables than the classifier tracks");
		return;
	}
	r->refs[r->n_refs++] = ref;
}

static void check_function(struct walk *w, const cJSON *funccall)
{
	const cJSON *names = pgtree_get(funccall, "funcname");
	int n = pgtree_list_len(names);
	const char *schema = n == 2 ? pgtree_string(pgtree_list_at(names, 0)) : NULL;
	const char *name = n >= 1 ? pgtree_string(pgtree_list_at(names, n - 1)) : NULL;

	if (!name || n > 2 || (n == 2 && (!schema || strcmp(schema, "pg_catalog") != 0)))
		set_unknown(w, "calls a function that is not built into PostgreSQL");
	else if (n == 1 && !classify_is_builtin_function(name))
		set_unknown(w, "calls a function that is not built into PostgreSQL");
}

/* Statement types that neither take table locks by themselves nor run code. */
static bool is_neutral_statement(const char *type)
{
	static const char *const neutral[] = {
		"VariableSetStmt",   "VariableShowStmt", "ListenStmt",      "UnlistenStmt",
		"NotifyStmt",        "DiscardStmt",      "DeallocateStmt",  "PrepareStmt",
		"ExplainStmt",       "TransactionStmt",  "CheckPointStmt",  "ConstraintsSetStmt",
		"DeclareCursorStmt", "FetchStmt",        "ClosePortalStmt", "CreateTableAsStmt",
		"ViewStmt",          "SelectStmt",       "InsertStmt",      "UpdateStmt",
		"DeleteStmt",        "MergeStmt",        "CopyStmt",        "TruncateStmt",
		"LockStmt",          "DropStmt",         "RawStmt",
	};

	for (size_t i = 0; i < sizeof(neutral) / sizeof(neutral[0]); i++)
		if (strcmp(type, neutral[i]) == 0)
			return true;
	return false;
}

/* Statements that run code the classifier cannot see. */
static bool runs_unseen_code(const char *type)
{
	static const char *const opaque[] = {
		"CallStmt",
		"DoStmt",
		"ExecuteStmt",
		"LoadStmt",
		"CreateExtensionStmt",
		"AlterExtensionStmt",
		"AlterExtensionContentsStmt",
		"DropOwnedStmt",
		"ReassignOwnedStmt",
		"CreateSubscriptionStmt",
		"AlterSubscriptionStmt",
		"DropSubscriptionStmt",
	};

	for (size_t i = 0; i < sizeof(opaque) / sizeof(opaque[0]); i++)
		if (strcmp(type, opaque[i]) == 0)
			return true;
	return false;
}

static void walk_value(struct walk *w, const cJSON *v, uint8_t access);

/*
 * Walks a WITH clause and leaves its CTE names in scope. Without RECURSIVE a
 * CTE sees only the ones before it (so WITH a AS (SELECT * FROM a) reads the
 * table a); with RECURSIVE it sees all of them.
 */
static void walk_with(struct walk *w, const cJSON *with)
{
	const cJSON *ctes = pgtree_get(with, "ctes"), *c;
	bool recursive = pgtree_flag(with, "recursive");

	if (recursive) {
		cJSON_ArrayForEach(c, ctes)
			push_scope(w, pgtree_str(pgtree_get(c, "CommonTableExpr"), "ctename"));
	}
	cJSON_ArrayForEach(c, ctes)
	{
		const cJSON *cte = pgtree_get(c, "CommonTableExpr");

		walk_value(w, pgtree_get(cte, "ctequery"), CLASSIFY_READ);
		if (!recursive)
			push_scope(w, pgtree_str(cte, "ctename"));
	}
}

static bool names_pg_catalog(const cJSON *names)
{
	const char *schema = pgtree_string(pgtree_list_at(names, 0));

	return schema && strcmp(schema, "pg_catalog") == 0;
}

/*
 * Utility statements whose text does not name every table they lock: an
 * index (REINDEX INDEX), a schema or database (REINDEX SCHEMA), nothing at
 * all (VACUUM, ANALYZE, CLUSTER), or an object on a table (COMMENT ON ...).
 */
static bool locks_unnamed_tables(const char *type, const cJSON *obj)
{
	if (strcmp(type, "ReindexStmt") == 0) {
		const char *kind = pgtree_str(obj, "kind");

		return !kind || strcmp(kind, "REINDEX_OBJECT_TABLE") != 0;
	}
	if (strcmp(type, "VacuumStmt") == 0)
		return pgtree_list_len(pgtree_get(obj, "rels")) == 0;
	if (strcmp(type, "ClusterStmt") == 0)
		return !pgtree_get(obj, "relation");
	return strcmp(type, "CommentStmt") == 0 || strcmp(type, "SecLabelStmt") == 0;
}

/* Walks every field of a node's object, giving 'special' fields their own access. */
static void walk_fields(struct walk *w, const cJSON *obj, uint8_t access, const char *special,
			uint8_t special_access)
{
	const cJSON *with = pgtree_get(obj, "withClause"), *field;
	int scope = w->n_scope;

	if (cJSON_IsObject(with))
		walk_with(w, with);
	cJSON_ArrayForEach(field, obj)
	{
		/* FOR UPDATE OF x names aliases of tables already seen in FROM. */
		if (field == with || strcmp(field->string, "lockingClause") == 0)
			continue;
		if (special && strcmp(field->string, special) == 0)
			walk_value(w, field, special_access);
		else
			walk_value(w, field, access);
	}
	w->n_scope = scope; /* the WITH's names end with the statement */
}

/* DROP TABLE/INDEX/VIEW/...: the objects are name lists, not RangeVars. */
static void walk_drop(struct walk *w, const cJSON *obj)
{
	static const char *const table_like[] = {
		"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE", "OBJECT_FOREIGN_TABLE",
	};
	static const char *const on_table[] = { "OBJECT_TRIGGER", "OBJECT_RULE", "OBJECT_POLICY" };
	const char *type = pgtree_str(obj, "removeType");
	const cJSON *objects = pgtree_get(obj, "objects"), *o;
	bool tables = false;

	bool on = false;

	w->out->flags |= CLASSIFY_DDL;
	for (size_t i = 0; type && i < sizeof(table_like) / sizeof(table_like[0]); i++)
		tables |= strcmp(type, table_like[i]) == 0;
	for (size_t i = 0; type && i < sizeof(on_table) / sizeof(on_table[0]); i++)
		on |= strcmp(type, on_table[i]) == 0;
	if (type && strcmp(type, "OBJECT_INDEX") == 0) {
		set_unknown(w, "drops an index: its table is not named");
		return;
	}
	if (on) {
		/* DROP TRIGGER trg ON [s.]t: the list is [s,] t, trg. */
		cJSON_ArrayForEach(o, objects)
		{
			const cJSON *items = pgtree_get(pgtree_get(o, "List"), "items");
			int n = pgtree_list_len(items);

			if (n == 2)
				add_ref(w, NULL, pgtree_string(pgtree_list_at(items, 0)), CLASSIFY_WRITE);
			else if (n >= 3)
				add_ref(w, pgtree_string(pgtree_list_at(items, n - 3)),
					pgtree_string(pgtree_list_at(items, n - 2)), CLASSIFY_WRITE);
			else
				set_unknown(w, "drops an object whose table is not named");
		}
		return;
	}
	if (!tables) {
		walk_fields(w, obj, CLASSIFY_WRITE, NULL, 0);
		return;
	}
	cJSON_ArrayForEach(o, objects)
	{
		const cJSON *items = pgtree_get(pgtree_get(o, "List"), "items");
		int n = pgtree_list_len(items);

		if (n == 1)
			add_ref(w, NULL, pgtree_string(pgtree_list_at(items, 0)), CLASSIFY_WRITE);
		else if (n >= 2)
			add_ref(w, pgtree_string(pgtree_list_at(items, n - 2)),
				pgtree_string(pgtree_list_at(items, n - 1)), CLASSIFY_WRITE);
	}
}

/* One node: {"TypeName": {...fields...}}. */
static void walk_node(struct walk *w, const char *type, const cJSON *obj, uint8_t access)
{
	if (strcmp(type, "RangeVar") == 0) {
		struct pgtree_range_var rv;

		if (pgtree_range_var(obj, &rv))
			add_ref(w, rv.schema, rv.name, access);
	} else if (strcmp(type, "InsertStmt") == 0 || strcmp(type, "UpdateStmt") == 0 ||
		   strcmp(type, "DeleteStmt") == 0 || strcmp(type, "MergeStmt") == 0) {
		walk_fields(w, obj, CLASSIFY_READ, "relation", CLASSIFY_WRITE);
	} else if (strcmp(type, "CopyStmt") == 0) {
		bool from = pgtree_flag(obj, "is_from");

		walk_fields(w, obj, CLASSIFY_READ, "relation", from ? CLASSIFY_WRITE : CLASSIFY_READ);
	} else if (strcmp(type, "TruncateStmt") == 0) {
		walk_fields(w, obj, CLASSIFY_READ, "relations", CLASSIFY_WRITE);
	} else if (strcmp(type, "LockStmt") == 0) {
		/* LOCK ... IN ACCESS SHARE (1) or ROW SHARE (2) MODE conflicts with no write hold. */
		int mode;
		uint8_t a = pgtree_int(obj, "mode", &mode) && mode <= 2 ? CLASSIFY_READ : CLASSIFY_WRITE;

		walk_fields(w, obj, a, NULL, 0);
	} else if (strcmp(type, "DropStmt") == 0) {
		walk_drop(w, obj);
	} else if (strcmp(type, "TransactionStmt") == 0) {
		w->out->flags |= CLASSIFY_TX_CONTROL;
	} else if (strcmp(type, "FuncCall") == 0) {
		check_function(w, obj);
		walk_fields(w, obj, access, NULL, 0);
	} else if (strcmp(type, "SelectStmt") == 0 || strcmp(type, "CreateTableAsStmt") == 0 ||
		   strcmp(type, "ViewStmt") == 0) {
		/* Queries read; the relation a CREATE TABLE AS / VIEW makes is written. */
		const char *made = strcmp(type, "ViewStmt") == 0 ? "view"
			: strcmp(type, "CreateTableAsStmt") == 0 ? "into"
								 : NULL;

		if (made)
			w->out->flags |= CLASSIFY_DDL;
		walk_fields(w, obj, CLASSIFY_READ, made, CLASSIFY_WRITE);
	} else if (strcmp(type, "A_Expr") == 0 && pgtree_list_len(pgtree_get(obj, "name")) == 2 &&
		   !names_pg_catalog(pgtree_get(obj, "name"))) {
		/* OPERATOR(app.===): a user operator runs a user function. */
		set_unknown(w, "uses an operator that is not built into PostgreSQL");
		walk_fields(w, obj, access, NULL, 0);
	} else if (locks_unnamed_tables(type, obj)) {
		w->out->flags |= CLASSIFY_DDL;
		set_unknown(w, "locks tables it does not name (REINDEX, VACUUM, CLUSTER, COMMENT, ...)");
	} else if (runs_unseen_code(type)) {
		set_unknown(w, "runs code the proxy cannot see (CALL, DO, EXECUTE, ...)");
		walk_fields(w, obj, CLASSIFY_WRITE, NULL, 0);
	} else if (strlen(type) > 4 && strcmp(type + strlen(type) - 4, "Stmt") == 0 &&
		   !is_neutral_statement(type)) {
		/* A utility statement: whatever table it names, it locks strongly. */
		w->out->flags |= CLASSIFY_DDL;
		walk_fields(w, obj, CLASSIFY_WRITE, NULL, 0);
	} else {
		walk_fields(w, obj, access, NULL, 0);
	}
}

static void walk_value(struct walk *w, const cJSON *v, uint8_t access)
{
	const cJSON *child;

	if (cJSON_IsArray(v)) {
		cJSON_ArrayForEach(child, v) walk_value(w, child, access);
	} else if (cJSON_IsObject(v) && pgtree_str(v, "relname")) {
		/* A field typed RangeVar* (INSERT's "relation", a FK's "pktable", ...) comes unwrapped. */
		walk_node(w, "RangeVar", v, access);
	} else if (cJSON_IsObject(v)) {
		cJSON_ArrayForEach(child, v)
		{
			/* Node types are capitalized keys holding objects; fields are lower-case. */
			if (pgtree_is_node(child))
				walk_node(w, child->string, child, access);
			else
				walk_value(w, child, access);
		}
	}
}

void classify_sql(const char *sql, size_t len, const struct classify_options *opt,
		  struct classify_result *out)
{
	struct walk *w;
	struct pgtree_error err;
	cJSON *tree;
	char *text;

	memset(out, 0, sizeof(*out));
	len = strnlen(sql, len); /* a NUL ends the query, as on the server */
	if (opt->standard_conforming_strings_off) {
		/* Backslashes in '...' would mean something else to the server than to the parser. */
		out->flags = CLASSIFY_UNKNOWN;
		out->unknown_reason = "standard_conforming_strings is off";
		return;
	}
	if (len > opt->parse_max_bytes || len > CLASSIFY_PARSE_MAX_LIMIT) {
		out->flags = CLASSIFY_UNKNOWN;
		out->unknown_reason = "longer than limits.parse_max_bytes";
		return;
	}
	text = malloc(len + 1);
	w = calloc(1, sizeof(*w));
	if (!text || !w) {
		free(text);
		free(w);
		out->flags = CLASSIFY_UNKNOWN;
		out->unknown_reason = "out of memory";
		return;
	}
	memcpy(text, sql, len);
	text[len] = '\0';
	w->out = out;

	if ((tree = pgtree_parse(text, &err))) {
		walk_value(w, pgtree_stmts(tree), CLASSIFY_READ);
		cJSON_Delete(tree);
	} else if (err.kind == PGTREE_SYNTAX) {
		set_unknown(w, "does not parse");
	} else {
		set_unknown(w, "nested too deeply to judge");
	}
	free(text);
	free(w);
}

uint8_t classify_access_to(const struct classify_result *r, const char *schema, const char *name)
{
	uint8_t access = 0;

	for (int i = 0; i < r->n_refs; i++) {
		const struct classify_ref *ref = &r->refs[i];

		if (strcmp(ref->name, name) != 0)
			continue;
		/* Unqualified on either side matches any schema (search_path is not visible here). */
		if (ref->schema[0] == '\0' || schema == NULL || schema[0] == '\0' ||
		    strcmp(ref->schema, schema) == 0)
			access |= ref->access;
	}
	return access;
}
