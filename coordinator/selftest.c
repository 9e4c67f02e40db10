/*
 * apply --self-test (selftest.h; docs/architecture.md §4, evidence). Every
 * check is one statement between BEGIN and an unconditional ROLLBACK; the
 * statement changes at most one existing row (WHERE ctid = one row's), so
 * all other columns keep values the table already accepts. A refusal counts
 * only when it is the expected SQLSTATE naming this constraint (or, for NOT
 * NULL, this column): another constraint's refusal proves nothing.
 */
#include "selftest.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_evidence.h"
#include "quote.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"

#define CHECK_CANDIDATES_MAX 24

/* What one check found. */
struct outcome {
	const char *result; /* enforced, not_enforced, skipped, lock_timeout, inconclusive */
	char sqlstate[6];
	char detail[512];
};

/* The new constraint as the catalog has it now. */
struct target {
	const struct plan_constraint *k;
	char table[2 * PLAN_NAME_MAX + 8]; /* quoted */
	char contype;                      /* f c u p; 'n' for NOT NULL */
	char deltype;                      /* FK: a r c n d */
	int n_columns;
	char *cols;     /* "a", "b" (quoted) */
	char *oth_cols; /* o."a", o."b" */
	char *nn;       /* "a" IS NOT NULL AND … */
	char *oth_nn;   /* o."a" IS NOT NULL AND … */
	char *c_cols;   /* c."a", … (FK child) */
	char *parent;   /* FK: the referenced table, regclass text */
	char *p_cols;   /* p."x", … */
	char *ref_col;  /* the first referenced column, quoted */
	char ref_cat;   /* its type's typcategory */
	char *def;      /* pg_get_constraintdef */
	char *others;   /* FK: " AND NOT EXISTS (…)" per other refusing FK of the parent */
};

static void target_free(struct target *t)
{
	free(t->cols);
	free(t->oth_cols);
	free(t->nn);
	free(t->oth_nn);
	free(t->c_cols);
	free(t->parent);
	free(t->p_cols);
	free(t->ref_col);
	free(t->def);
	free(t->others);
}

static const char *kind_name(enum con_type t)
{
	switch (t) {
	case CON_FOREIGN_KEY:
		return "foreign_key";
	case CON_CHECK:
		return "check";
	case CON_NOT_NULL:
		return "not_null";
	case CON_UNIQUE:
		return "unique";
	case CON_PRIMARY_KEY:
		return "primary_key";
	}
	return "?";
}

void selftest_cols_sql(struct strbuf *b, const char *alias, const char *rel, const char *arr, const char *fmt,
		       const char *sep)
{
	char *s = xasprintf("(SELECT string_agg(format(%s, a.attname), %s ORDER BY k.i) FROM unnest(%s.%s) "
			    "WITH ORDINALITY k(n, i) JOIN pg_catalog.pg_attribute a ON a.attrelid = %s.%s "
			    "AND a.attnum = k.n)",
			    fmt, sep, alias, arr, alias, rel);

	strbuf_put(b, s);
	free(s);
}

PGresult *selftest_constraint_query(PGconn *c, struct strbuf *q, const char *table, const char *name,
				    struct db_error *err)
{
	const char *params[2] = { table, name };
	char *sql;
	PGresult *r;

	strbuf_put(q,
		   " FROM pg_catalog.pg_constraint con WHERE con.conrelid = $1::regclass AND "
		   "con.conname = $2");
	sql = strbuf_take(q);
	r = db_query(c, sql, 2, params, err);
	free(sql);
	return r;
}

/* Reads what the checks need from the catalog; false (reported in 'o') when it is not there. */
static bool load_target(PGconn *c, struct target *t, struct outcome *o)
{
	/* The constraint's own columns (conkey), as each check writes them: columns 3 to 7. */
	static const struct {
		const char *fmt, *sep;
	} lists[] = {
		{ "'%I'", "', '" },
		{ "'o.%I'", "', '" },
		{ "'%I IS NOT NULL'", "' AND '" },
		{ "'o.%I IS NOT NULL'", "' AND '" },
		{ "'c.%I'", "', '" },
	};
	struct strbuf q = { 0 };
	struct db_error err;
	PGresult *r;

	strbuf_put(&q, "SELECT con.contype, con.confdeltype, cardinality(con.conkey)");
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		strbuf_put(&q, ", ");
		selftest_cols_sql(&q, "con", "conrelid", "conkey", lists[i].fmt, lists[i].sep);
	}
	strbuf_put(&q, ", CASE WHEN con.confrelid <> 0 THEN con.confrelid::regclass::text END, ");
	selftest_cols_sql(&q, "con", "confrelid", "confkey", "'p.%I'", "', '");
	strbuf_put(&q,
		   ", (SELECT format('%I', a.attname) FROM pg_catalog.pg_attribute a WHERE a.attrelid = "
		   "con.confrelid AND a.attnum = con.confkey[1]), "
		   "(SELECT ty.typcategory FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON "
		   "ty.oid = a.atttypid WHERE a.attrelid = con.confrelid AND a.attnum = con.confkey[1]), "
		   "pg_catalog.pg_get_constraintdef(con.oid), ");
	/* the other foreign keys that would refuse a parent row's deletion first: the rows they
	   reference are not the test's */
	strbuf_put(&q,
		   "(SELECT string_agg(format(' AND NOT EXISTS (SELECT 1 FROM %s o WHERE (%s) = (%s))', "
		   "o.conrelid::regclass, ");
	selftest_cols_sql(&q, "o", "conrelid", "conkey", "'o.%I'", "', '");
	strbuf_put(&q, ", ");
	selftest_cols_sql(&q, "o", "confrelid", "confkey", "'p.%I'", "', '");
	strbuf_put(&q,
		   "), '') FROM pg_catalog.pg_constraint o WHERE o.contype = 'f' AND o.confrelid = "
		   "con.confrelid AND o.oid <> con.oid AND o.confdeltype IN ('a', 'r'))");
	r = selftest_constraint_query(c, &q, t->table, t->k->name, &err);
	if (!r || PQntuples(r) == 0) {
		o->result = "inconclusive";
		snprintf(o->detail, sizeof(o->detail), "the constraint is not in the catalog%s%.400s",
			 r ? "" : ": ", r ? "" : err.msg);
		PQclear(r);
		return false;
	}
	t->contype = db_value(r, 0, 0, "?")[0];
	t->deltype = db_value(r, 0, 1, " ")[0];
	t->n_columns = atoi(db_value(r, 0, 2, "0"));
	t->cols = xstrdup(db_value(r, 0, 3, ""));
	t->oth_cols = xstrdup(db_value(r, 0, 4, ""));
	t->nn = xstrdup(db_value(r, 0, 5, "true"));
	t->oth_nn = xstrdup(db_value(r, 0, 6, "true"));
	t->c_cols = xstrdup(db_value(r, 0, 7, ""));
	t->parent = xstrdup(db_value(r, 0, 8, ""));
	t->p_cols = xstrdup(db_value(r, 0, 9, ""));
	t->ref_col = xstrdup(db_value(r, 0, 10, ""));
	t->ref_cat = db_value(r, 0, 11, " ")[0];
	t->def = xstrdup(db_value(r, 0, 12, ""));
	t->others = xstrdup(db_value(r, 0, 13, ""));
	PQclear(r);
	return true;
}

/*
 * BEGIN; short timeouts; 'sql'; ROLLBACK, always. Enforced when the
 * statement fails with 'state' naming 'name' (a constraint) or 'column'.
 */
static void try_statement(PGconn *c, int lock_timeout_ms, const char *sql, const char *state,
			  const char *name, const char *column, struct outcome *o)
{
	char setup[256];
	struct db_error err;
	PGresult *r;

	snprintf(setup, sizeof(setup),
		 "BEGIN; SET LOCAL lock_timeout = %d; SET LOCAL statement_timeout = %d; "
		 "SET CONSTRAINTS ALL IMMEDIATE",
		 lock_timeout_ms, SELFTEST_STATEMENT_TIMEOUT_MS);
	o->sqlstate[0] = '\0';
	if (!db_exec(c, setup, &err)) {
		db_rollback(c);
		o->result = "inconclusive";
		snprintf(o->detail, sizeof(o->detail), "cannot begin: %.400s", err.msg);
		return;
	}
	r = PQexec(c, sql);
	if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) {
		const char *rows = PQcmdTuples(r);

		if (rows[0] == '\0' || strcmp(rows, "0") == 0) {
			o->result = "skipped";
			snprintf(o->detail, sizeof(o->detail), "no row to build the test row from");
		} else {
			o->result = "not_enforced";
			snprintf(o->detail, sizeof(o->detail), "the statement was accepted: %s", sql);
		}
	} else {
		const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		const char *con = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
		const char *col = PQresultErrorField(r, PG_DIAG_COLUMN_NAME);
		const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

		snprintf(o->sqlstate, sizeof(o->sqlstate), "%s", st ? st : "");
		if (st && strcmp(st, state) == 0 &&
		    ((name && con && strcmp(con, name) == 0) ||
		     (column && col && strcmp(col, column) == 0))) {
			o->result = "enforced";
			snprintf(o->detail, sizeof(o->detail), "%s", msg ? msg : "");
		} else if (st && strcmp(st, "55P03") == 0) {
			o->result = "lock_timeout";
			snprintf(o->detail, sizeof(o->detail),
				 "lock_timeout (%d ms) fired: another session holds a lock on the table",
				 lock_timeout_ms);
		} else {
			o->result = "inconclusive";
			snprintf(o->detail, sizeof(o->detail), "refused for another reason: %s%s%s",
				 msg ? msg : "", con ? " (constraint " : "", con ? con : "");
			if (con)
				strncat(o->detail, ")", sizeof(o->detail) - strlen(o->detail) - 1);
		}
	}
	PQclear(r);
	db_rollback(c);
}

/* The one existing row a check changes. */
static char *one_row(const struct target *t, const char *where)
{
	return xasprintf("(SELECT ctid FROM %s WHERE %s LIMIT 1)", t->table, where);
}

/* FK: a child row whose key points nowhere (a value beyond every referenced one). */
static void fk_child(PGconn *c, int lt, const struct target *t, struct outcome *o)
{
	char *row, *sql, *value;

	if (t->n_columns != 1) {
		o->result = "skipped";
		snprintf(o->detail, sizeof(o->detail),
			 "not derivable: a value pointing nowhere is only built for a one-column key");
		return;
	}
	if (t->ref_cat == 'N')
		value = xasprintf("(SELECT coalesce(max(%s), 0) + 1 FROM %s)", t->ref_col, t->parent);
	else if (t->ref_cat == 'S')
		value = xstrdup("'pgvalve self-test: no such row'");
	else {
		o->result = "skipped";
		snprintf(
			o->detail, sizeof(o->detail),
			"not derivable: no value pointing nowhere is built for the referenced column's type");
		return;
	}
	row = one_row(t, "true");
	/* the NOT EXISTS guards the text value: the update then changes nothing (skipped) */
	sql = xasprintf(
		"UPDATE %s SET %s = %s WHERE ctid = %s AND NOT EXISTS (SELECT 1 FROM %s WHERE %s = %s)",
		t->table, t->cols, value, row, t->parent, t->ref_col, value);
	try_statement(c, lt, sql, "23503", t->k->name, NULL, o);
	free(value);
	free(row);
	free(sql);
}

/* FK, NO ACTION / RESTRICT: deleting a referenced parent row is refused. */
static void fk_parent(PGconn *c, int lt, const struct target *t, struct outcome *o)
{
	char *sql;
	const char *action = t->deltype == 'c' ? "CASCADE" : t->deltype == 'n' ? "SET NULL" : "SET DEFAULT";

	if (t->deltype != 'a' && t->deltype != 'r') {
		o->result = "skipped";
		snprintf(o->detail, sizeof(o->detail),
			 "ON DELETE %s: deleting a parent row is allowed by design (it %s the child rows)",
			 action,
			 t->deltype == 'c'           ? "deletes"
				 : t->deltype == 'n' ? "nulls the key of"
						     : "resets the key of");
		return;
	}
	sql = xasprintf(
		"DELETE FROM %s WHERE ctid = (SELECT p.ctid FROM %s p WHERE EXISTS (SELECT 1 FROM %s c "
		"WHERE (%s) = (%s))%s LIMIT 1)",
		t->parent, t->parent, t->table, t->c_cols, t->p_cols, t->others);
	try_statement(c, lt, sql, "23503", t->k->name, NULL, o);
	if (strcmp(o->result, "skipped") == 0)
		snprintf(o->detail, sizeof(o->detail),
			 "no parent row is referenced by this table alone (other foreign keys would "
			 "refuse its deletion first): nothing to delete");
	free(sql);
}

/* UNIQUE / PRIMARY KEY: one row's key set to another row's. */
static void unique_dup(PGconn *c, int lt, const struct target *t, struct outcome *o)
{
	char *row = one_row(t, t->nn);
	char *sql = xasprintf(
		"UPDATE %s AS x SET (%s) = (SELECT %s FROM %s o WHERE o.ctid <> x.ctid AND %s LIMIT 1) "
		"WHERE x.ctid = %s AND EXISTS (SELECT 1 FROM %s o WHERE o.ctid <> x.ctid AND %s)",
		t->table, t->cols, t->oth_cols, t->table, t->oth_nn, row, t->table, t->oth_nn);

	try_statement(c, lt, sql, "23505", t->k->name, NULL, o);
	if (strcmp(o->result, "skipped") == 0)
		snprintf(o->detail, sizeof(o->detail), "needs two rows with a key to duplicate");
	free(row);
	free(sql);
}

static void not_null(PGconn *c, int lt, const struct target *t, struct outcome *o)
{
	char col[2 * PLAN_NAME_MAX + 4];
	char *row = one_row(t, "true"), *sql;

	quote_ident(col, sizeof(col), t->k->columns[0]);
	sql = xasprintf("UPDATE %s SET %s = NULL WHERE ctid = %s", t->table, col, row);
	try_statement(c, lt, sql, "23502", NULL, t->k->columns[0], o);
	free(row);
	free(sql);
}

/* Values to try for a CHECK: each number of its definition and its neighbours, each string, "". */
static int check_candidates(const char *def, char out[][64], int cap)
{
	int n = 0;

	for (const char *s = def; *s && n < cap;) {
		if (*s == '\'') {
			const char *e = strchr(s + 1, '\'');

			if (!e)
				break;
			snprintf(out[n++], 64, "%.*s", (int)(e - s - 1) < 60 ? (int)(e - s - 1) : 60, s + 1);
			s = e + 1;
		} else if (isdigit((unsigned char)*s) &&
			   (s == def || (!isalnum((unsigned char)s[-1]) && s[-1] != '_' && s[-1] != '"'))) {
			char *e;
			double v = strtod(s, &e);
			bool neg = s > def && s[-1] == '-';

			if (neg)
				v = -v;
			for (int d = -1; d <= 1 && n < cap; d++)
				snprintf(out[n++], 64, "%.15g", v + d);
			s = e;
		} else {
			s++;
		}
	}
	if (n < cap)
		snprintf(out[n++], 64, "%s", "");
	return n;
}

/*
 * CHECK: tries values derived from the definition on each of its columns
 * until one is refused. A definition whose constants give no violating
 * value says "not derivable" rather than guess further.
 */
static void check_violation(PGconn *c, int lt, const struct target *t, struct outcome *o)
{
	char cand[CHECK_CANDIDATES_MAX][64], lit[160];
	int n = check_candidates(t->def, cand, CHECK_CANDIDATES_MAX);
	char *row = one_row(t, "true");
	const char *col = t->cols;
	char first[2 * PLAN_NAME_MAX + 4];
	int tried = 0;

	/* the columns, one at a time: t->cols is "a, b" */
	for (;;) {
		const char *comma = NULL;
		bool q = false;

		for (const char *s = col; *s; s++) {
			if (*s == '"')
				q = !q;
			else if (*s == ',' && !q) {
				comma = s;
				break;
			}
		}
		snprintf(first, sizeof(first), "%.*s", comma ? (int)(comma - col) : (int)strlen(col), col);
		for (int i = 0; i < n; i++) {
			char *sql;

			quote_literal(lit, sizeof(lit), cand[i]);
			sql = xasprintf("UPDATE %s SET %s = %s WHERE ctid = %s", t->table, first, lit, row);
			try_statement(c, lt, sql, "23514", t->k->name, NULL, o);
			free(sql);
			tried++;
			if (strcmp(o->result, "enforced") == 0) {
				snprintf(o->detail, sizeof(o->detail), "%s = %s refused", first, lit);
				free(row);
				return;
			}
			if (strcmp(o->result, "lock_timeout") == 0 || strcmp(o->result, "skipped") == 0) {
				free(row);
				return;
			}
		}
		if (!comma || !first[0])
			break;
		col = comma + 2;
	}
	free(row);
	o->result = "skipped";
	o->sqlstate[0] = '\0';
	snprintf(o->detail, sizeof(o->detail),
		 "not derivable: none of %d values built from the definition's constants violates it", tried);
}

/* Reports and records one check; counts it into the constraint's verdict. */
static void record(PGconn *c, int64_t id, int *seq, const struct target *t, const char *check,
		   const struct outcome *o, int *enforced, int *failed)
{
	struct journal_selftest js = { .constraint_name = (char *)t->k->name,
				       .table = (char *)t->table,
				       .kind = (char *)kind_name(t->k->type),
				       .check = (char *)check,
				       .outcome = (char *)o->result,
				       .sqlstate = (char *)o->sqlstate,
				       .detail = (char *)o->detail };
	struct db_error err;
	cJSON *f = cJSON_CreateObject();

	cJSON_AddStringToObject(f, "constraint", t->k->name);
	cJSON_AddStringToObject(f, "table", t->table);
	cJSON_AddStringToObject(f, "kind", js.kind);
	cJSON_AddStringToObject(f, "check", check);
	cJSON_AddStringToObject(f, "outcome", o->result);
	cJSON_AddStringToObject(f, "sqlstate", o->sqlstate);
	cJSON_AddStringToObject(f, "detail", o->detail);
	report_event("self_test_check", f, "self-test %s on %s: %s: %s%s%s%s (%s)", t->k->name, t->table,
		     check, o->result, o->sqlstate[0] ? " [" : "", o->sqlstate, o->sqlstate[0] ? "]" : "",
		     o->detail);
	if (!journal_selftest_add(c, id, ++*seq, &js, &err))
		report_warning("cannot record a self-test check in the journal", err.msg);
	if (strcmp(o->result, "enforced") == 0)
		(*enforced)++;
	else if (strcmp(o->result, "skipped") != 0)
		(*failed)++;
}

int selftest_run(PGconn *c, int64_t id, const struct plan *p, int lock_timeout_ms, int *total)
{
	int lt = lock_timeout_ms < SELFTEST_LOCK_TIMEOUT_MS ? lock_timeout_ms : SELFTEST_LOCK_TIMEOUT_MS;
	int proven = 0, seq = 0;
	struct db_error err;
	cJSON *f;

	*total = p->n_constraints;
	if (!journal_selftest_clear(c, id, &err))
		report_warning("cannot clear an earlier self-test from the journal", err.msg);
	for (int i = 0; i < p->n_constraints; i++) {
		struct target t = { .k = &p->constraints[i] };
		struct outcome o = { .result = "inconclusive" };
		int enforced = 0, failed = 0;

		quote_qname(t.table, sizeof(t.table), t.k->table.schema, t.k->table.name);
		if (t.k->type == CON_NOT_NULL) {
			t.contype = 'n';
			not_null(c, lt, &t, &o);
			record(c, id, &seq, &t, "set the column to null (23502)", &o, &enforced, &failed);
		} else if (!load_target(c, &t, &o)) {
			record(c, id, &seq, &t, "find the constraint", &o, &enforced, &failed);
		} else if (t.contype == 'f') {
			fk_child(c, lt, &t, &o);
			record(c, id, &seq, &t, "point a child row nowhere (23503)", &o, &enforced, &failed);
			o = (struct outcome){ .result = "inconclusive" };
			fk_parent(c, lt, &t, &o);
			record(c, id, &seq, &t, "delete a referenced parent row (23503)", &o, &enforced,
			       &failed);
		} else if (t.contype == 'c') {
			check_violation(c, lt, &t, &o);
			record(c, id, &seq, &t, "set a violating value (23514)", &o, &enforced, &failed);
		} else if (t.contype == 'u' || t.contype == 'p') {
			unique_dup(c, lt, &t, &o);
			record(c, id, &seq, &t, "duplicate another row's key (23505)", &o, &enforced,
			       &failed);
		}
		if (enforced > 0 && failed == 0)
			proven++;
		target_free(&t);
	}
	f = cJSON_CreateObject();
	cJSON_AddNumberToObject(f, "enforced", proven);
	cJSON_AddNumberToObject(f, "constraints", *total);
	report_event("self_test", f, "self-test: %d/%d constraints enforce", proven, *total);
	return proven;
}
