/*
 * The key type change against the catalog (docs/architecture.md §4.9):
 * which statements of a file name a key and which the columns that reference
 * it, what depends on those columns (carried over, or named in a refusal),
 * and the steps — shadow columns and their trigger, the backfill, the
 * indexes, the new foreign keys and NOT NULL checks, and the swap — each
 * with its lock and hold. Read-only: nothing here changes the database.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "input.h"
#include "keychange.h"
#include "names.h"
#include "quote.h"
#include "strbuf.h"
#include "xalloc.h"

#define KC_MAX_TABLES 64
#define KC_MAX_COLS 8
#define KC_MAX_INDEXES 32
#define KC_REASONS 2048

/* A column that becomes bigint. */
struct kc_col {
	char name[PLAN_NAME_MAX];
	int attnum;
	char type[16]; /* smallint, integer, bigint */
	bool not_null;
	char *default_expr; /* pg_get_expr of its default, or NULL */
	bool shadow;        /* false: already bigint (a referencing column), only its foreign key moves */
	char shadow_name[PLAN_NAME_MAX], old_name[PLAN_NAME_MAX], check_name[PLAN_NAME_MAX];
	char check_old_name[PLAN_NAME_MAX]; /* the swap back's NOT NULL check on the old column */
};

/* An index that contains a changed column: built again on the shadow columns. */
struct kc_index {
	char name[PLAN_NAME_MAX], new_name[PLAN_NAME_MAX], old_name[PLAN_NAME_MAX];
	bool primary;
	char *create_sql;
};

struct kc_table {
	char oid[16];
	struct qname q;                      /* schema always filled */
	char display[4 * PLAN_NAME_MAX + 8]; /* oid::regclass: qualified only when not visible */
	struct kc_col cols[KC_MAX_COLS];
	int n_cols;
	struct kc_index idx[KC_MAX_INDEXES];
	int n_idx;
	long long rows;
};

/* A foreign key that references the key: dropped at the swap, its copy from the shadow column renamed. */
struct kc_fk {
	int table, col; /* in kc.tables / its cols */
	char name[PLAN_NAME_MAX], new_name[PLAN_NAME_MAX], old_name[PLAN_NAME_MAX];
	char tail[256]; /* MATCH, ON UPDATE, ON DELETE, DEFERRABLE */
};

struct kc {
	int input;
	struct kc_table t[KC_MAX_TABLES]; /* t[0]: the key's table */
	int n_t;
	char pk[PLAN_NAME_MAX];
	struct qname seq; /* the sequence its default draws from ("" none) */
	bool seq_widen;   /* the sequence is not bigint yet */
	struct kc_fk fk[KC_MAX_TABLES];
	int n_fk;
	char reasons[KC_REASONS]; /* why it is refused ("" when it is not) */
};

__attribute__((format(printf, 2, 3))) static void refuse(struct kc *k, const char *fmt, ...)
{
	size_t n = strlen(k->reasons);
	va_list ap;

	if (n + 4 >= sizeof(k->reasons))
		return;
	if (n)
		n += (size_t)snprintf(k->reasons + n, sizeof(k->reasons) - n, "; ");
	va_start(ap, fmt);
	vsnprintf(k->reasons + n, sizeof(k->reasons) - n, fmt, ap);
	va_end(ap);
}

static void push_refusal(struct plan *p, int input, char *why, char *recipe)
{
	p->refusals = xrealloc(p->refusals, sizeof(*p->refusals) * (size_t)(p->n_refusals + 1));
	p->refusals[p->n_refusals++] = (struct plan_refusal){ .input = input, .why = why, .recipe = recipe };
}

static void push_step(struct plan *p, struct plan_step s)
{
	p->steps = xrealloc(p->steps, sizeof(*p->steps) * (size_t)(p->n_steps + 1));
	p->steps[p->n_steps] = s;
	p->steps[p->n_steps].seq = p->n_steps + 1;
	p->n_steps++;
}

static void name_of(const struct kc_table *t, char *out, size_t cap)
{
	snprintf(out, cap, "%s", t->display);
}

/* ---- reading the catalog ------------------------------------------------------ */

static const char column_sql[] =
	"SELECT n.nspname, c.relname, c.relkind, c.relispartition OR c.relhassubclass, a.attnum, "
	"  pg_catalog.format_type(a.atttypid, NULL), a.attnotnull, a.attidentity <> '', "
	"  a.attgenerated <> '', pg_catalog.pg_get_expr(d.adbin, d.adrelid), "
	"  pg_catalog.has_table_privilege(c.oid, 'TRIGGER'), pg_catalog.pg_has_role(c.relowner, 'USAGE'), "
	"  greatest(c.reltuples, 0)::bigint, a.attname, "
	"  EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid), "
	"  c.oid::regclass::text "
	"FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	"JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
	"LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
	"WHERE c.oid = $1::oid AND CASE WHEN $2 = '' THEN a.attnum = $3::int2 ELSE a.attname = $2 END";

/*
 * Adds column 'name' (or number 'attnum' when name is NULL) of table 'oid'
 * to the change, and its table to k->t when new; '*ti', '*ci' say where.
 * False when the catalog could not be read ('err'); what makes the change
 * impossible goes to k->reasons.
 */
static bool add_column(PGconn *c, struct kc *k, const char *oid, const char *name, int attnum, int *ti,
		       int *ci, struct db_error *err)
{
	char num[16], what[4 * PLAN_NAME_MAX + 8];
	const char *params[3] = { oid, name ? name : "", num };
	struct kc_table *t;
	struct kc_col *cc;
	PGresult *r;

	*ti = *ci = -1;
	snprintf(num, sizeof(num), "%d", attnum);
	r = db_query(c, column_sql, 3, params, err);
	if (!r)
		return false;
	if (PQntuples(r) != 1) {
		refuse(k, "column %s does not exist", name ? name : num);
		PQclear(r);
		return true;
	}
	for (*ti = 0; *ti < k->n_t; (*ti)++)
		if (strcmp(k->t[*ti].oid, oid) == 0)
			break;
	if (*ti == k->n_t) {
		if (k->n_t == KC_MAX_TABLES) {
			refuse(k, "more than %d tables reference the key", KC_MAX_TABLES - 1);
			PQclear(r);
			*ti = -1;
			return true;
		}
		t = &k->t[k->n_t++];
		memset(t, 0, sizeof(*t));
		snprintf(t->oid, sizeof(t->oid), "%s", oid);
		snprintf(t->q.schema, sizeof(t->q.schema), "%s", PQgetvalue(r, 0, 0));
		snprintf(t->q.name, sizeof(t->q.name), "%s", PQgetvalue(r, 0, 1));
		t->rows = atoll(PQgetvalue(r, 0, 12));
		snprintf(t->display, sizeof(t->display), "%s", PQgetvalue(r, 0, 15));
		name_of(t, what, sizeof(what));
		if (*PQgetvalue(r, 0, 2) == 'p')
			refuse(k, "%s is a partitioned table: not supported yet", what);
		else if (strcmp(PQgetvalue(r, 0, 3), "t") == 0 || strcmp(PQgetvalue(r, 0, 14), "t") == 0)
			refuse(k, "%s is a partition or takes part in inheritance: not supported yet", what);
		else if (*PQgetvalue(r, 0, 2) != 'r')
			refuse(k, "%s is not a table", what);
		if (strcmp(PQgetvalue(r, 0, 10), "t") != 0)
			refuse(k,
			       "the role lacks the TRIGGER privilege on %s (triggers keep the shadow columns "
			       "equal to the old ones)",
			       what);
		if (strcmp(PQgetvalue(r, 0, 11), "t") != 0)
			refuse(k, "the role does not own %s (ALTER TABLE needs its owner)", what);
	}
	t = &k->t[*ti];
	name_of(t, what, sizeof(what));
	for (*ci = 0; *ci < t->n_cols; (*ci)++)
		if (t->cols[*ci].attnum == atoi(PQgetvalue(r, 0, 4))) {
			PQclear(r);
			return true;
		}
	if (t->n_cols == KC_MAX_COLS) {
		refuse(k, "more than %d changed columns in %s", KC_MAX_COLS, what);
		PQclear(r);
		*ci = -1;
		return true;
	}
	cc = &t->cols[t->n_cols];
	memset(cc, 0, sizeof(*cc));
	snprintf(cc->name, sizeof(cc->name), "%s", PQgetvalue(r, 0, 13));
	cc->attnum = atoi(PQgetvalue(r, 0, 4));
	snprintf(cc->type, sizeof(cc->type), "%s", PQgetvalue(r, 0, 5));
	cc->not_null = strcmp(PQgetvalue(r, 0, 6), "t") == 0;
	if (!PQgetisnull(r, 0, 9))
		cc->default_expr = xstrdup(PQgetvalue(r, 0, 9));
	cc->shadow = strcmp(cc->type, "bigint") != 0;
	if (strcmp(PQgetvalue(r, 0, 7), "t") == 0)
		refuse(k, "%s.%s is an identity column (GENERATED … AS IDENTITY): not carried over yet", what,
		       cc->name);
	if (strcmp(PQgetvalue(r, 0, 8), "t") == 0)
		refuse(k, "%s.%s is a generated column", what, cc->name);
	names_make_object(cc->shadow_name, cc->name, NULL, KEYCHANGE_NEW_SUFFIX);
	names_make_object(cc->old_name, cc->name, NULL, KEYCHANGE_OLD_SUFFIX);
	if (cc->not_null && cc->shadow) {
		names_make_object(cc->check_name, t->q.name, cc->shadow_name, "not_null");
		names_make_object(cc->check_old_name, t->q.name, cc->old_name, "not_null");
	}
	*ci = t->n_cols++;
	PQclear(r);
	return true;
}

/* The key: the only column of its table's primary key, an integer. */
static bool read_key(PGconn *c, struct kc *k, struct db_error *err)
{
	const struct kc_col *key = &k->t[0].cols[0];
	char num[16], what[4 * PLAN_NAME_MAX + 8];
	const char *params[2] = { k->t[0].oid, num };
	PGresult *r;

	snprintf(num, sizeof(num), "%d", key->attnum);
	name_of(&k->t[0], what, sizeof(what));
	if (strcmp(key->type, "bigint") == 0)
		refuse(k, "%s.%s is bigint already: nothing to change", what, key->name);
	else if (strcmp(key->type, "integer") != 0 && strcmp(key->type, "smallint") != 0)
		refuse(k, "%s.%s is %s, not an integer key (smallint or integer)", what, key->name,
		       key->type);
	r = db_query(c,
		     "SELECT conname, array_length(conkey, 1), $2::int2 = ANY (conkey) "
		     "FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND contype = 'p'",
		     2, params, err);
	if (!r)
		return false;
	if (PQntuples(r) == 0 || strcmp(PQgetvalue(r, 0, 2), "t") != 0)
		refuse(k,
		       "%s.%s is not the primary key of %s: pgvalve changes an integer primary key together "
		       "with the columns referencing it",
		       what, key->name, what);
	else if (atoi(PQgetvalue(r, 0, 1)) != 1)
		refuse(k, "%s.%s is part of a composite primary key: not supported", what, key->name);
	else
		snprintf(k->pk, sizeof(k->pk), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	/* the sequence behind its default (serial), moved to the new column at the swap */
	r = db_query(c,
		     "SELECT n.nspname, s.relname, pg_catalog.format_type(q.seqtypid, NULL) "
		     "FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s ON s.oid = d.objid "
		     "JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace "
		     "JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid "
		     "WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = "
		     "'pg_catalog.pg_class'::regclass AND d.refobjid = $1::oid AND d.refobjsubid = $2::int "
		     "AND d.deptype = 'a' AND s.relkind = 'S'",
		     2, params, err);
	if (!r)
		return false;
	if (PQntuples(r) == 1) {
		snprintf(k->seq.schema, sizeof(k->seq.schema), "%s", PQgetvalue(r, 0, 0));
		snprintf(k->seq.name, sizeof(k->seq.name), "%s", PQgetvalue(r, 0, 1));
		k->seq_widen = strcmp(PQgetvalue(r, 0, 2), "bigint") != 0;
	}
	PQclear(r);
	return true;
}

static const char *fk_action(char a)
{
	switch (a) {
	case 'r':
		return "RESTRICT";
	case 'c':
		return "CASCADE";
	case 'n':
		return "SET NULL";
	case 'd':
		return "SET DEFAULT";
	default:
		return "NO ACTION";
	}
}

/* Every foreign key that references the key, each with its column added to the change. */
static bool read_foreign_keys(PGconn *c, struct kc *k, struct db_error *err)
{
	char num[16];
	const char *params[2] = { k->t[0].oid, num };
	PGresult *r;

	snprintf(num, sizeof(num), "%d", k->t[0].cols[0].attnum);
	r = db_query(
		c,
		"SELECT conname, conrelid, array_length(conkey, 1), conkey[1], confupdtype, confdeltype, "
		"  confmatchtype, condeferrable, condeferred, conrelid::regclass::text, "
		"  array_length(confkey, 1) "
		"FROM pg_catalog.pg_constraint WHERE contype = 'f' AND confrelid = $1::oid "
		"AND $2::int2 = ANY (confkey) ORDER BY conrelid::regclass::text, conname",
		2, params, err);
	if (!r)
		return false;
	for (int i = 0; i < PQntuples(r); i++) {
		struct kc_fk *f;
		int ti, ci;

		if (atoi(PQgetvalue(r, i, 2)) != 1 || atoi(PQgetvalue(r, i, 10)) != 1) {
			refuse(k, "foreign key %s on %s is composite: not supported", PQgetvalue(r, i, 0),
			       PQgetvalue(r, i, 9));
			continue;
		}
		if (k->n_fk == KC_MAX_TABLES) {
			refuse(k, "more than %d foreign keys reference the key", KC_MAX_TABLES);
			break;
		}
		if (!add_column(c, k, PQgetvalue(r, i, 1), NULL, atoi(PQgetvalue(r, i, 3)), &ti, &ci, err)) {
			PQclear(r);
			return false;
		}
		if (ti < 0 || ci < 0)
			continue;
		f = &k->fk[k->n_fk++];
		memset(f, 0, sizeof(*f));
		f->table = ti;
		f->col = ci;
		snprintf(f->name, sizeof(f->name), "%s", PQgetvalue(r, i, 0));
		names_make_object(f->new_name, f->name, NULL, KEYCHANGE_NEW_SUFFIX);
		names_make_object(f->old_name, f->name, NULL, KEYCHANGE_OLD_SUFFIX);
		snprintf(f->tail, sizeof(f->tail), "%sON UPDATE %s ON DELETE %s%s%s",
			 *PQgetvalue(r, i, 6) == 'f' ? "MATCH FULL " : "", fk_action(*PQgetvalue(r, i, 4)),
			 fk_action(*PQgetvalue(r, i, 5)),
			 strcmp(PQgetvalue(r, i, 7), "t") == 0 ? " DEFERRABLE" : "",
			 strcmp(PQgetvalue(r, i, 8), "t") == 0 ? " INITIALLY DEFERRED" : "");
	}
	PQclear(r);
	return true;
}

/* Whether foreign key 'name' on table 'oid' is one of those the change moves. */
static bool is_moved_fk(const struct kc *k, const char *oid, const char *name)
{
	for (int i = 0; i < k->n_fk; i++)
		if (strcmp(k->t[k->fk[i].table].oid, oid) == 0 && strcmp(k->fk[i].name, name) == 0)
			return true;
	return false;
}

/* The changed columns of table 't' as an int2[] literal: "{1,3}". */
static void attnums(const struct kc_table *t, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "{");

	for (int i = 0; i < t->n_cols && n + 8 < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%d", i ? "," : "", t->cols[i].attnum);
	snprintf(out + n, cap - n, "}");
}

/*
 * The indexes of 't' on its changed columns: plain ones (columns only, no
 * expression, predicate, INCLUDE, operator class or order: the definition
 * reads back the same rebuilt from the columns) are built again on the
 * shadow columns; the others are refused by name.
 */
static bool read_indexes(PGconn *c, struct kc *k, struct kc_table *t, struct db_error *err)
{
	char cols[256], what[4 * PLAN_NAME_MAX + 8];
	const char *params[2] = { t->oid, cols };
	PGresult *r;

	attnums(t, cols, sizeof(cols));
	name_of(t, what, sizeof(what));
	r = db_query(
		c,
		"SELECT ic.relname, i.indisprimary, i.indisunique, am.amname, "
		"  (SELECT con.conname FROM pg_catalog.pg_constraint con WHERE con.conindid = i.indexrelid "
		"   AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')), "
		"  pg_catalog.pg_get_indexdef(i.indexrelid) = 'CREATE ' || CASE WHEN i.indisunique THEN "
		"  'UNIQUE ' ELSE '' END || 'INDEX ' || quote_ident(ic.relname) || ' ON ' || "
		"  quote_ident(n.nspname) || '.' || quote_ident(t.relname) || ' USING ' || am.amname || "
		"  ' (' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) FROM "
		"  unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) JOIN pg_catalog.pg_attribute a "
		"  ON a.attrelid = i.indrelid AND a.attnum = k.attnum) || ')', "
		"  (SELECT string_agg(k.attnum::text, ',' ORDER BY k.ord) FROM unnest(i.indkey::int2[]) "
		"   WITH ORDINALITY k(attnum, ord)), "
		"  (SELECT string_agg(a.attname, chr(1) ORDER BY k.ord) FROM unnest(i.indkey::int2[]) "
		"   WITH ORDINALITY k(attnum, ord) JOIN pg_catalog.pg_attribute a "
		"   ON a.attrelid = i.indrelid AND a.attnum = k.attnum) "
		"FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
		"JOIN pg_catalog.pg_class t ON t.oid = i.indrelid "
		"JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace "
		"JOIN pg_catalog.pg_am am ON am.oid = ic.relam "
		"WHERE i.indrelid = $1::oid AND (i.indkey::int2[] && $2::int2[] OR EXISTS (SELECT FROM "
		"  pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = "
		"  i.indexrelid AND d.refobjid = i.indrelid AND d.refobjsubid = ANY ($2::int2[]))) "
		"ORDER BY ic.relname",
		2, params, err);
	if (!r)
		return false;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *name = PQgetvalue(r, i, 0), *con = PQgetvalue(r, i, 4);
		bool primary = strcmp(PQgetvalue(r, i, 1), "t") == 0;
		struct kc_index *x;
		struct strbuf b = { 0 };
		char *names, *save = NULL, *nm;
		const char *num;
		bool any_shadow = false;

		if (strcmp(PQgetvalue(r, i, 5), "t") != 0) {
			refuse(k,
			       "index %s on %s has an expression, a predicate, INCLUDE columns, an operator "
			       "class or an order: not carried over yet",
			       name, what);
			continue;
		}
		if (!primary && !PQgetisnull(r, i, 4)) {
			refuse(k,
			       "constraint %s on %s (UNIQUE or EXCLUDE) contains the column: not carried "
			       "over yet",
			       con, what);
			continue;
		}
		if (primary && t != &k->t[0])
			continue; /* another table's key that contains a referencing column: refused by dependents */
		if (t->n_idx == KC_MAX_INDEXES) {
			refuse(k, "more than %d indexes on the changed columns of %s", KC_MAX_INDEXES, what);
			break;
		}
		x = &t->idx[t->n_idx];
		memset(x, 0, sizeof(*x));
		snprintf(x->name, sizeof(x->name), "%s", name);
		names_make_object(x->new_name, name, NULL, KEYCHANGE_NEW_SUFFIX);
		names_make_object(x->old_name, name, NULL, KEYCHANGE_OLD_SUFFIX);
		x->primary = primary;
		strbuf_put(&b,
			   strcmp(PQgetvalue(r, i, 2), "t") == 0 ? "CREATE UNIQUE INDEX CONCURRENTLY "
								 : "CREATE INDEX CONCURRENTLY ");
		quote_append_ident(&b, x->new_name);
		strbuf_put(&b, " ON ");
		quote_append_qname(&b, t->q.schema, t->q.name);
		strbuf_put(&b, " USING ");
		quote_append_ident(&b, PQgetvalue(r, i, 3));
		strbuf_put(&b, " (");
		names = xstrdup(PQgetvalue(r, i, 7));
		num = PQgetvalue(r, i, 6);
		for (nm = strtok_r(names, "\001", &save); nm; nm = strtok_r(NULL, "\001", &save)) {
			int attnum = atoi(num);
			const char *use = nm;

			for (int j = 0; j < t->n_cols; j++)
				if (t->cols[j].attnum == attnum && t->cols[j].shadow) {
					use = t->cols[j].shadow_name;
					any_shadow = true;
				}
			if (nm != names)
				strbuf_put(&b, ", ");
			quote_append_ident(&b, use);
			num = strchr(num, ',') ? strchr(num, ',') + 1 : "";
		}
		free(names);
		strbuf_put(&b, ")");
		x->create_sql = strbuf_take(&b);
		if (!any_shadow) { /* only already-bigint columns: nothing to build */
			free(x->create_sql);
			continue;
		}
		t->n_idx++;
	}
	PQclear(r);
	return true;
}

/*
 * What else depends on the changed columns of 't' (pg_depend): views,
 * materialized views, policies, triggers, constraints, extended statistics,
 * generated columns — named in a refusal; the column's own default, its
 * sequence, the indexes (read_indexes) and the moved foreign keys are
 * carried over.
 */
static bool read_dependents(PGconn *c, struct kc *k, const struct kc_table *t, struct db_error *err)
{
	char cols[256], what[4 * PLAN_NAME_MAX + 8];
	const char *params[2] = { t->oid, cols };
	PGresult *r;

	attnums(t, cols, sizeof(cols));
	name_of(t, what, sizeof(what));
	r = db_query(
		c,
		"SELECT DISTINCT d.classid::regclass::text, pg_catalog.pg_describe_object(d.classid, "
		"d.objid, "
		"  d.objsubid), d.deptype, "
		"  (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid AND d.classid = "
		"   'pg_catalog.pg_class'::regclass), "
		"  (SELECT contype::text || ' ' || conrelid || ' ' || conname FROM pg_catalog.pg_constraint "
		"   WHERE oid = d.objid AND d.classid = 'pg_catalog.pg_constraint'::regclass), "
		"  (SELECT ev_class::regclass::text || ' ' || (SELECT relkind::text FROM pg_catalog.pg_class "
		"WHERE "
		"   oid = ev_class) FROM pg_catalog.pg_rewrite WHERE oid = d.objid AND d.classid = "
		"   'pg_catalog.pg_rewrite'::regclass), "
		"  (SELECT adnum = ANY ($2::int2[]) FROM pg_catalog.pg_attrdef WHERE oid = d.objid AND "
		"   d.classid = 'pg_catalog.pg_attrdef'::regclass) "
		"FROM pg_catalog.pg_depend d WHERE d.refclassid = 'pg_catalog.pg_class'::regclass "
		"AND d.refobjid = $1::oid AND d.refobjsubid = ANY ($2::int2[]) ORDER BY 2",
		2, params, err);
	if (!r)
		return false;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *cls = PQgetvalue(r, i, 0), *desc = PQgetvalue(r, i, 1);

		if (strcmp(cls, "pg_class") == 0) {
			char kind = *PQgetvalue(r, i, 3);

			if (kind == 'S' && *PQgetvalue(r, i, 2) != 'a')
				refuse(k, "%s (an identity sequence) on %s: not carried over yet", desc,
				       what);
			/* 'i': read_indexes; 'S' owned by the column: moved at the swap */
		} else if (strcmp(cls, "pg_constraint") == 0) {
			char type[2] = "", oid[16] = "", name[PLAN_NAME_MAX] = "";

			sscanf(PQgetvalue(r, i, 4), "%1s %15s %63[^\n]", type, oid, name);
			if (type[0] == 'p' && strcmp(oid, k->t[0].oid) == 0)
				continue; /* the key itself */
			if (type[0] == 'f' && is_moved_fk(k, oid, name))
				continue;
			if (type[0] == 'u' || type[0] == 'x' || type[0] == 'p')
				continue; /* read_indexes names it with its index */
			refuse(k, "%s depends on a changed column of %s: not carried over yet", desc, what);
		} else if (strcmp(cls, "pg_rewrite") == 0) {
			const char *v = PQgetvalue(r, i, 5);
			const char *sp = strrchr(v, ' ');

			refuse(k, "%s %.*s reads a changed column of %s: not carried over yet",
			       sp && sp[1] == 'm' ? "materialized view" : "view",
			       sp ? (int)(sp - v) : (int)strlen(v), v, what);
		} else if (strcmp(cls, "pg_attrdef") == 0) {
			if (strcmp(PQgetvalue(r, i, 6), "t") != 0)
				refuse(k, "%s (a generated column) reads a changed column of %s", desc, what);
		} else {
			/* pg_policy, pg_trigger, pg_statistic_ext, ...: named as PostgreSQL names them */
			refuse(k, "%s depends on a changed column of %s: not carried over yet", desc, what);
		}
	}
	PQclear(r);
	return true;
}

/* Publications that publish 't': the shadow columns would reach subscribers that lack them. */
static bool read_publications(PGconn *c, struct kc *k, const struct kc_table *t, struct db_error *err)
{
	const char *params[1] = { t->oid };
	char what[4 * PLAN_NAME_MAX + 8];
	PGresult *r = db_query(
		c,
		"SELECT pubname FROM pg_catalog.pg_publication p WHERE p.puballtables OR EXISTS (SELECT FROM "
		"pg_catalog.pg_publication_rel pr WHERE pr.prpubid = p.oid AND pr.prrelid = $1::oid) OR "
		"EXISTS (SELECT FROM pg_catalog.pg_publication_namespace pn JOIN pg_catalog.pg_class c ON "
		"c.relnamespace = pn.pnnspid WHERE pn.pnpubid = p.oid AND c.oid = $1::oid) ORDER BY 1",
		1, params, err);

	if (!r)
		return false;
	name_of(t, what, sizeof(what));
	for (int i = 0; i < PQntuples(r); i++)
		refuse(k,
		       "publication %s publishes %s (its subscribers would need the new columns): not "
		       "supported yet",
		       PQgetvalue(r, i, 0), what);
	PQclear(r);
	return true;
}

/* Names the change creates that exist already (a column, an index, a constraint). */
static bool read_collisions(PGconn *c, struct kc *k, const struct kc_table *t, struct db_error *err)
{
	struct strbuf cols = { 0 }, rels = { 0 };
	char what[4 * PLAN_NAME_MAX + 8];
	const char *params[4];
	char *cl, *rl;
	PGresult *r;

	/* text arrays built with quote_literal-free element quoting: names travel as one parameter each */
	strbuf_put(&cols, "{");
	strbuf_put(&rels, "{");
	for (int i = 0; i < t->n_cols; i++) {
		const struct kc_col *cc = &t->cols[i];
		const char *names[3] = { cc->shadow_name, cc->old_name, cc->check_name };

		for (int j = 0; j < 3; j++) {
			if (!names[j][0] || (!cc->shadow && j < 2))
				continue;
			strbuf_put(j == 2 ? &rels : &cols, (j == 2 ? rels.len : cols.len) > 1 ? ",\"" : "\"");
			for (const char *s = names[j]; *s; s++) {
				char ch[3] = { '\\', *s, 0 };

				strbuf_put(j == 2 ? &rels : &cols, *s == '"' || *s == '\\' ? ch : ch + 1);
			}
			strbuf_put(j == 2 ? &rels : &cols, "\"");
		}
	}
	for (int i = 0; i < t->n_idx; i++) {
		const char *names[2] = { t->idx[i].new_name, t->idx[i].old_name };

		for (int j = 0; j < 2; j++) {
			strbuf_put(&rels, rels.len > 1 ? ",\"" : "\"");
			for (const char *s = names[j]; *s; s++) {
				char ch[3] = { '\\', *s, 0 };

				strbuf_put(&rels, *s == '"' || *s == '\\' ? ch : ch + 1);
			}
			strbuf_put(&rels, "\"");
		}
	}
	strbuf_put(&cols, "}");
	strbuf_put(&rels, "}");
	cl = strbuf_take(&cols);
	rl = strbuf_take(&rels);
	params[0] = t->oid;
	params[1] = cl;
	params[2] = rl;
	params[3] = t->q.schema;
	r = db_query(
		c,
		"SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND NOT attisdropped "
		"AND attname = ANY ($2::text[]) UNION ALL "
		"SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = "
		"c.relnamespace WHERE n.nspname = $4 AND c.relname = ANY ($3::text[]) UNION ALL "
		"SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = ANY "
		"($3::text[])",
		4, params, err);
	free(cl);
	free(rl);
	if (!r)
		return false;
	name_of(t, what, sizeof(what));
	for (int i = 0; i < PQntuples(r); i++)
		refuse(k, "%s exists already on %s (left by an earlier key change? drop it first)",
		       PQgetvalue(r, i, 0), what);
	PQclear(r);
	return true;
}

/* ---- the steps ------------------------------------------------------------------ */

static void put_table(struct strbuf *b, const struct kc_table *t)
{
	quote_append_qname(b, t->q.schema, t->q.name);
}

static void put_function(struct strbuf *b, const struct kc_table *t)
{
	char name[32];

	snprintf(name, sizeof(name), "keychange_%s", t->oid);
	quote_append_qname(b, "pgvalve", name);
}

/*
 * CREATE [OR REPLACE] FUNCTION of t's trigger: before the swap each shadow
 * column copies its old column; after it ('reversed') each old column copies
 * the new one, NULL when the value no longer fits the old type.
 */
static void put_trigger_function(struct strbuf *b, const struct kc_table *t, bool reversed, bool replace)
{
	struct strbuf body = { 0 };
	char *text, *lit;
	size_t n;

	strbuf_put(&body, "BEGIN");
	for (int i = 0; i < t->n_cols; i++) {
		const struct kc_col *cc = &t->cols[i];

		if (!cc->shadow)
			continue;
		strbuf_put(&body, " NEW.");
		quote_append_ident(&body, reversed ? cc->old_name : cc->shadow_name);
		strbuf_put(&body, " := ");
		if (reversed) {
			strbuf_put(&body, "CASE WHEN NEW.");
			quote_append_ident(&body, cc->name);
			strbuf_put(&body,
				   strcmp(cc->type, "smallint") == 0
					   ? " BETWEEN -32768 AND 32767 THEN NEW."
					   : " BETWEEN -2147483648 AND 2147483647 THEN NEW.");
			quote_append_ident(&body, cc->name);
			strbuf_put(&body, " END;");
		} else {
			strbuf_put(&body, "NEW.");
			quote_append_ident(&body, cc->name);
			strbuf_put(&body, ";");
		}
	}
	strbuf_put(&body, " RETURN NEW; END");
	text = strbuf_take(&body);
	n = quote_literal(NULL, 0, text);
	lit = xmalloc(n + 1);
	quote_literal(lit, n + 1, text);
	strbuf_put(b, replace ? "CREATE OR REPLACE FUNCTION " : "CREATE FUNCTION ");
	put_function(b, t);
	strbuf_put(b, "() RETURNS trigger LANGUAGE plpgsql AS ");
	strbuf_put(b, lit);
	free(lit);
	free(text);
}

static void put_alter(struct strbuf *b, const struct kc_table *t)
{
	strbuf_put(b, "ALTER TABLE ");
	put_table(b, t);
	strbuf_put(b, " ");
}

static bool has_shadow(const struct kc_table *t)
{
	for (int i = 0; i < t->n_cols; i++)
		if (t->cols[i].shadow)
			return true;
	return false;
}

static struct plan_step step_of(const struct kc *k, enum step_kind kind, enum plan_phase phase,
				const struct kc_table *t, const struct kc_table *other, enum plan_lock lock,
				enum plan_hold hold, char *sql)
{
	struct plan_step s = { .kind = kind,
			       .phase = phase,
			       .sql = sql,
			       .table = t->q,
			       .lock = lock,
			       .hold = hold,
			       .constraint = -1,
			       .drop = -1,
			       .input = k->input };

	if (other && other != t)
		s.other = other->q;
	return s;
}

/* Prepare: per table, its shadow columns with their trigger, then the backfill, then the indexes. */
static void push_prepare(struct plan *p, const struct kc *k)
{
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];
		struct strbuf b = { 0 };
		bool first = true;

		if (!has_shadow(t))
			continue;
		put_trigger_function(&b, t, false, false);
		strbuf_put(&b, "; ");
		put_alter(&b, t);
		for (int i = 0; i < t->n_cols; i++) {
			const struct kc_col *cc = &t->cols[i];

			if (!cc->shadow)
				continue;
			strbuf_put(&b, first ? "ADD COLUMN " : ", ADD COLUMN ");
			first = false;
			quote_append_ident(&b, cc->shadow_name);
			strbuf_put(&b, " bigint");
			if (cc->check_name[0]) {
				strbuf_put(&b, ", ADD CONSTRAINT ");
				quote_append_ident(&b, cc->check_name);
				strbuf_put(&b, " CHECK (");
				quote_append_ident(&b, cc->shadow_name);
				strbuf_put(&b, " IS NOT NULL) NOT VALID");
			}
		}
		strbuf_put(&b, "; CREATE TRIGGER ");
		quote_append_ident(&b, KEYCHANGE_TRIGGER);
		strbuf_put(&b, " BEFORE INSERT OR UPDATE ON ");
		put_table(&b, t);
		strbuf_put(&b, " FOR EACH ROW EXECUTE FUNCTION ");
		put_function(&b, t);
		strbuf_put(&b, "()");
		push_step(p,
			  step_of(k, STEP_KEYCHANGE_SHADOW, PHASE_PREPARE, t, NULL, LOCK_ACCESS_EXCLUSIVE,
				  HOLD_ALL_NEEDED, strbuf_take(&b)));

		/* one batch: the rows in a range of pages whose shadow columns differ */
		strbuf_put(&b, "UPDATE ");
		put_table(&b, t);
		first = true;
		for (int i = 0; i < t->n_cols; i++) {
			if (!t->cols[i].shadow)
				continue;
			strbuf_put(&b, first ? " SET " : ", ");
			first = false;
			quote_append_ident(&b, t->cols[i].shadow_name);
			strbuf_put(&b, " = ");
			quote_append_ident(&b, t->cols[i].name);
		}
		strbuf_put(&b, " WHERE ctid >= $1::tid AND ctid < $2::tid AND (");
		first = true;
		for (int i = 0; i < t->n_cols; i++) {
			if (!t->cols[i].shadow)
				continue;
			strbuf_put(&b, first ? "" : " OR ");
			first = false;
			quote_append_ident(&b, t->cols[i].shadow_name);
			strbuf_put(&b, " IS DISTINCT FROM ");
			quote_append_ident(&b, t->cols[i].name);
		}
		strbuf_put(&b, ")");
		push_step(p,
			  step_of(k, STEP_KEYCHANGE_BACKFILL, PHASE_PREPARE, t, NULL, LOCK_NONE,
				  HOLD_NONE_NEEDED, strbuf_take(&b)));
	}
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];

		for (int i = 0; i < t->n_idx; i++) {
			struct plan_step s = step_of(k, STEP_CREATE_INDEX, PHASE_PREPARE, t, NULL, LOCK_NONE,
						     HOLD_NONE_NEEDED, xstrdup(t->idx[i].create_sql));

			snprintf(s.index.schema, sizeof(s.index.schema), "%s", t->q.schema);
			snprintf(s.index.name, sizeof(s.index.name), "%s", t->idx[i].new_name);
			push_step(p, s);
		}
	}
}

/* Cutover and validate: the foreign keys from the shadow columns, then every new constraint validated. */
static void push_constraints(struct plan *p, const struct kc *k)
{
	const struct kc_table *key = &k->t[0];
	const struct kc_col *kcol = &key->cols[0];

	for (int i = 0; i < k->n_fk; i++) {
		const struct kc_fk *f = &k->fk[i];
		const struct kc_table *t = &k->t[f->table];
		const struct kc_col *cc = &t->cols[f->col];
		struct strbuf b = { 0 };

		put_alter(&b, t);
		strbuf_put(&b, "ADD CONSTRAINT ");
		quote_append_ident(&b, f->new_name);
		strbuf_put(&b, " FOREIGN KEY (");
		quote_append_ident(&b, cc->shadow ? cc->shadow_name : cc->name);
		strbuf_put(&b, ") REFERENCES ");
		put_table(&b, key);
		strbuf_put(&b, " (");
		quote_append_ident(&b, kcol->shadow_name);
		strbuf_put(&b, ") ");
		strbuf_put(&b, f->tail);
		strbuf_put(&b, " NOT VALID");
		push_step(p,
			  step_of(k, STEP_ADD_NOT_VALID, PHASE_CUTOVER, t, key, LOCK_SHARE_ROW_EXCLUSIVE,
				  HOLD_WRITES_NEEDED, strbuf_take(&b)));
		put_alter(&b, t);
		strbuf_put(&b, "VALIDATE CONSTRAINT ");
		quote_append_ident(&b, f->new_name);
		push_step(p,
			  step_of(k, STEP_VALIDATE, PHASE_VALIDATE, t, key, LOCK_SHARE_UPDATE_EXCLUSIVE,
				  HOLD_NONE_NEEDED, strbuf_take(&b)));
	}
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];

		for (int i = 0; i < t->n_cols; i++) {
			struct strbuf b = { 0 };

			if (!t->cols[i].check_name[0])
				continue;
			put_alter(&b, t);
			strbuf_put(&b, "VALIDATE CONSTRAINT ");
			quote_append_ident(&b, t->cols[i].check_name);
			push_step(p,
				  step_of(k, STEP_VALIDATE, PHASE_VALIDATE, t, NULL,
					  LOCK_SHARE_UPDATE_EXCLUSIVE, HOLD_NONE_NEEDED, strbuf_take(&b)));
		}
	}
}

/*
 * One table's columns swapped: NOT NULL from the validated check, default
 * moved, renamed. Forward (the swap) the shadow column becomes the column
 * and the column is kept as *_pgvalve_old; back (a rollback after the swap)
 * the old column becomes the column again and the column goes back to being
 * the shadow.
 */
static void put_swap_columns(struct strbuf *b, const struct kc_table *t, bool back)
{
	for (int i = 0; i < t->n_cols; i++) {
		const struct kc_col *cc = &t->cols[i];
		const char *becomes = back ? cc->old_name : cc->shadow_name;
		const char *kept_as = back ? cc->shadow_name : cc->old_name;

		if (!cc->shadow)
			continue;
		if (cc->not_null) {
			/* SET NOT NULL first: the validated CHECK spares it the scan; then the check goes */
			put_alter(b, t);
			strbuf_put(b, "ALTER COLUMN ");
			quote_append_ident(b, becomes);
			strbuf_put(b, " SET NOT NULL; ");
			put_alter(b, t);
			strbuf_put(b, "DROP CONSTRAINT ");
			quote_append_ident(b, back ? cc->check_old_name : cc->check_name);
			strbuf_put(b, ", ALTER COLUMN ");
			quote_append_ident(b, cc->name);
			strbuf_put(b, " DROP NOT NULL; ");
		}
		if (cc->default_expr) {
			put_alter(b, t);
			strbuf_put(b, "ALTER COLUMN ");
			quote_append_ident(b, cc->name);
			strbuf_put(b, " DROP DEFAULT, ALTER COLUMN ");
			quote_append_ident(b, becomes);
			strbuf_put(b, " SET DEFAULT ");
			strbuf_put(b, cc->default_expr); /* the server's own deparse of the default */
			strbuf_put(b, "; ");
		}
		put_alter(b, t);
		strbuf_put(b, "RENAME COLUMN ");
		quote_append_ident(b, cc->name);
		strbuf_put(b, " TO ");
		quote_append_ident(b, kept_as);
		strbuf_put(b, "; ");
		put_alter(b, t);
		strbuf_put(b, "RENAME COLUMN ");
		quote_append_ident(b, becomes);
		strbuf_put(b, " TO ");
		quote_append_ident(b, cc->name);
		strbuf_put(b, "; ");
	}
	for (int i = 0; i < t->n_idx; i++) {
		const struct kc_index *x = &t->idx[i];

		if (x->primary)
			continue;
		strbuf_put(b, "ALTER INDEX ");
		quote_append_qname(b, t->q.schema, x->name);
		strbuf_put(b, " RENAME TO ");
		quote_append_ident(b, back ? x->new_name : x->old_name);
		strbuf_put(b, "; ALTER INDEX ");
		quote_append_qname(b, t->q.schema, back ? x->old_name : x->new_name);
		strbuf_put(b, " RENAME TO ");
		quote_append_ident(b, x->name);
		strbuf_put(b, "; ");
	}
}

/*
 * The swap (finalize, one transaction under an all hold): the old foreign
 * keys dropped; the key's table swapped (sequence AS bigint, primary key on
 * the new column USING its index, sequence owned by it); each referencing
 * table swapped and its new foreign key given the old name; every trigger
 * reversed so the old columns keep following.
 */
static void push_swap(struct plan *p, const struct kc *k, bool back)
{
	const struct kc_table *key = &k->t[0];

	for (int i = 0; i < k->n_fk; i++) {
		const struct kc_table *t = &k->t[k->fk[i].table];
		struct strbuf b = { 0 };

		put_alter(&b, t);
		strbuf_put(&b, "DROP CONSTRAINT ");
		quote_append_ident(&b, k->fk[i].name);
		push_step(p,
			  step_of(k, STEP_KEYCHANGE_SWAP, PHASE_FINALIZE, t, key, LOCK_ACCESS_EXCLUSIVE,
				  HOLD_ALL_NEEDED, strbuf_take(&b)));
	}
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];
		struct strbuf b = { 0 };

		if (ti == 0) {
			const struct kc_index *pk = NULL;

			for (int i = 0; i < t->n_idx; i++)
				if (t->idx[i].primary)
					pk = &t->idx[i];
			if (k->seq_widen) {
				strbuf_put(&b, "ALTER SEQUENCE ");
				quote_append_qname(&b, k->seq.schema, k->seq.name);
				strbuf_put(&b, " AS ");
				strbuf_put(&b, back ? t->cols[0].type : "bigint");
				strbuf_put(&b, "; ");
			}
			put_alter(&b, t);
			strbuf_put(&b, "DROP CONSTRAINT ");
			quote_append_ident(&b, k->pk);
			strbuf_put(&b, "; ");
			put_swap_columns(&b, t, back);
			put_alter(&b, t);
			strbuf_put(&b, "ADD CONSTRAINT ");
			quote_append_ident(&b, k->pk);
			strbuf_put(&b, " PRIMARY KEY USING INDEX ");
			quote_append_ident(&b, pk ? (back ? pk->old_name : pk->new_name) : "");
			strbuf_put(&b, "; ");
			if (k->seq.name[0]) {
				strbuf_put(&b, "ALTER SEQUENCE ");
				quote_append_qname(&b, k->seq.schema, k->seq.name);
				strbuf_put(&b, " OWNED BY ");
				quote_append_qname(&b, t->q.schema, t->q.name);
				strbuf_put(&b, ".");
				quote_append_ident(&b, t->cols[0].name);
				strbuf_put(&b, "; ");
			}
		} else {
			put_swap_columns(&b, t, back);
		}
		for (int i = 0; i < k->n_fk; i++) {
			if (k->fk[i].table != ti)
				continue;
			put_alter(&b, t);
			strbuf_put(&b, "RENAME CONSTRAINT ");
			quote_append_ident(&b, back ? k->fk[i].old_name : k->fk[i].new_name);
			strbuf_put(&b, " TO ");
			quote_append_ident(&b, k->fk[i].name);
			strbuf_put(&b, "; ");
		}
		if (has_shadow(t))
			put_trigger_function(&b, t, !back, true);
		else if (b.len > 2)
			b.s[b.len -= 2] = '\0'; /* the last "; " */
		push_step(p,
			  step_of(k, STEP_KEYCHANGE_SWAP, PHASE_FINALIZE, t, ti ? key : NULL,
				  LOCK_ACCESS_EXCLUSIVE, HOLD_ALL_NEEDED, strbuf_take(&b)));
	}
}

/* ---- the swap back ------------------------------------------------------------------ */

/* Steps as JSON statements: [{"sql", "schema", "table", "other_schema", "other"}]; frees their SQL. */
static cJSON *statements_json(struct plan *tmp)
{
	cJSON *arr = cJSON_CreateArray();

	for (int i = 0; i < tmp->n_steps; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "sql", tmp->steps[i].sql);
		cJSON_AddStringToObject(o, "schema", tmp->steps[i].table.schema);
		cJSON_AddStringToObject(o, "table", tmp->steps[i].table.name);
		cJSON_AddStringToObject(o, "other_schema", tmp->steps[i].other.schema);
		cJSON_AddStringToObject(o, "other", tmp->steps[i].other.name);
		cJSON_AddItemToArray(arr, o);
		free(tmp->steps[i].sql);
	}
	free(tmp->steps);
	memset(tmp, 0, sizeof(*tmp));
	return arr;
}

/*
 * How to take the swap back (a rollback after it): "check" counts rows
 * whose value the old columns cannot hold; "indexes" ([drop, create]) the
 * old key's unique index, built concurrently; "held" the old columns' NOT
 * NULL checks and foreign keys NOT VALID (each drops a leftover of an
 * interrupted rollback first); "validate" them; "swap" the swap mirrored.
 */
static char *undo_json(const struct kc *k)
{
	const struct kc_table *key = &k->t[0];
	const struct kc_col *kcol = &key->cols[0];
	const struct kc_index *pk = NULL;
	cJSON *u = cJSON_CreateObject(), *arr, *pair;
	struct strbuf b = { 0 };
	struct plan tmp = { 0 };
	char *text;

	for (int i = 0; i < key->n_idx; i++)
		if (key->idx[i].primary)
			pk = &key->idx[i];
	strbuf_put(&b, "SELECT 0");
	for (int ti = 0; ti < k->n_t; ti++)
		for (int i = 0; i < k->t[ti].n_cols; i++) {
			const struct kc_col *cc = &k->t[ti].cols[i];

			if (!cc->shadow)
				continue;
			strbuf_put(&b, " + (SELECT count(*) FROM ");
			put_table(&b, &k->t[ti]);
			strbuf_put(&b, " WHERE ");
			quote_append_ident(&b, cc->old_name);
			strbuf_put(&b, " IS NULL AND ");
			quote_append_ident(&b, cc->name);
			strbuf_put(&b, " IS NOT NULL)");
		}
	text = strbuf_take(&b);
	cJSON_AddStringToObject(u, "check", text);
	free(text);
	arr = cJSON_AddArrayToObject(u, "indexes");
	pair = cJSON_CreateArray();
	strbuf_put(&b, "DROP INDEX CONCURRENTLY IF EXISTS ");
	quote_append_qname(&b, key->q.schema, pk ? pk->old_name : "");
	text = strbuf_take(&b);
	cJSON_AddItemToArray(pair, cJSON_CreateString(text));
	free(text);
	strbuf_put(&b, "CREATE UNIQUE INDEX CONCURRENTLY ");
	quote_append_ident(&b, pk ? pk->old_name : "");
	strbuf_put(&b, " ON ");
	put_table(&b, key);
	strbuf_put(&b, " (");
	quote_append_ident(&b, kcol->old_name);
	strbuf_put(&b, ")");
	text = strbuf_take(&b);
	cJSON_AddItemToArray(pair, cJSON_CreateString(text));
	free(text);
	cJSON_AddItemToArray(arr, pair);

	arr = cJSON_AddArrayToObject(u, "validate");
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];

		for (int i = 0; i < t->n_cols; i++) {
			const struct kc_col *cc = &t->cols[i];

			if (!cc->check_old_name[0])
				continue;
			put_alter(&b, t);
			strbuf_put(&b, "DROP CONSTRAINT IF EXISTS ");
			quote_append_ident(&b, cc->check_old_name);
			strbuf_put(&b, ", ADD CONSTRAINT ");
			quote_append_ident(&b, cc->check_old_name);
			strbuf_put(&b, " CHECK (");
			quote_append_ident(&b, cc->old_name);
			strbuf_put(&b, " IS NOT NULL) NOT VALID");
			push_step(&tmp,
				  step_of(k, STEP_KEYCHANGE_SWAP, PHASE_FINALIZE, t, NULL,
					  LOCK_ACCESS_EXCLUSIVE, HOLD_ALL_NEEDED, strbuf_take(&b)));
			put_alter(&b, t);
			strbuf_put(&b, "VALIDATE CONSTRAINT ");
			quote_append_ident(&b, cc->check_old_name);
			text = strbuf_take(&b);
			cJSON_AddItemToArray(arr, cJSON_CreateString(text));
			free(text);
		}
	}
	for (int i = 0; i < k->n_fk; i++) {
		const struct kc_fk *f = &k->fk[i];
		const struct kc_table *t = &k->t[f->table];
		const struct kc_col *cc = &t->cols[f->col];

		put_alter(&b, t);
		strbuf_put(&b, "DROP CONSTRAINT IF EXISTS ");
		quote_append_ident(&b, f->old_name);
		strbuf_put(&b, ", ADD CONSTRAINT ");
		quote_append_ident(&b, f->old_name);
		strbuf_put(&b, " FOREIGN KEY (");
		quote_append_ident(&b, cc->shadow ? cc->old_name : cc->name);
		strbuf_put(&b, ") REFERENCES ");
		put_table(&b, key);
		strbuf_put(&b, " (");
		quote_append_ident(&b, kcol->old_name);
		strbuf_put(&b, ") ");
		strbuf_put(&b, f->tail);
		strbuf_put(&b, " NOT VALID");
		push_step(&tmp,
			  step_of(k, STEP_KEYCHANGE_SWAP, PHASE_FINALIZE, t, key, LOCK_ACCESS_EXCLUSIVE,
				  HOLD_ALL_NEEDED, strbuf_take(&b)));
		put_alter(&b, t);
		strbuf_put(&b, "VALIDATE CONSTRAINT ");
		quote_append_ident(&b, f->old_name);
		text = strbuf_take(&b);
		cJSON_AddItemToArray(arr, cJSON_CreateString(text));
		free(text);
	}
	cJSON_AddItemToObject(u, "held", statements_json(&tmp));
	push_swap(&tmp, k, true);
	cJSON_AddItemToObject(u, "swap", statements_json(&tmp));
	text = cJSON_PrintUnformatted(u);
	cJSON_Delete(u);
	return text;
}

/* ---- resolving the file's statements ------------------------------------------------ */

/* What one ALTER COLUMN … TYPE bigint names, from the catalog. */
struct kc_req_info {
	char oid[16];
	int attnum; /* 0: no such column (or table) */
	bool key;   /* the only column of its table's primary key */
	char ref_oid[16];
	int ref_attnum; /* a single-column foreign key from it references this column (0: none) */
	char ref_name[3 * PLAN_NAME_MAX + 8];
	int folded_into; /* the request of the key it references, or -1 */
};

static bool read_req(PGconn *c, const struct plan_keychange_req *q, struct kc_req_info *ri,
		     struct db_error *err)
{
	struct catalog_relation rel;
	const char *params[2] = { rel.oid, q->column };
	PGresult *r;

	memset(ri, 0, sizeof(*ri));
	ri->folded_into = -1;
	switch (catalog_relation(c, &q->table, &rel, err)) {
	case CATALOG_ERROR:
		return false;
	case CATALOG_MISSING:
		return true;
	case CATALOG_FOUND:
		break;
	}
	snprintf(ri->oid, sizeof(ri->oid), "%s", rel.oid);
	r = db_query(c,
		     "SELECT a.attnum, EXISTS (SELECT FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid "
		     "  AND contype = 'p' AND conkey = ARRAY[a.attnum]), f.confrelid, f.confkey[1], "
		     "  f.confrelid::regclass::text || '.' || quote_ident(fa.attname) "
		     "FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_constraint f ON f.conrelid = "
		     "  a.attrelid AND f.contype = 'f' AND f.conkey = ARRAY[a.attnum] AND "
		     "  array_length(f.confkey, 1) = 1 "
		     "LEFT JOIN pg_catalog.pg_attribute fa ON fa.attrelid = f.confrelid AND fa.attnum = "
		     "  f.confkey[1] "
		     "WHERE a.attrelid = $1::oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped "
		     "ORDER BY f.conname LIMIT 1",
		     2, params, err);
	if (!r)
		return false;
	if (PQntuples(r) == 1) {
		ri->attnum = atoi(PQgetvalue(r, 0, 0));
		ri->key = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
		snprintf(ri->ref_oid, sizeof(ri->ref_oid), "%s", PQgetvalue(r, 0, 2));
		ri->ref_attnum = atoi(PQgetvalue(r, 0, 3));
		snprintf(ri->ref_name, sizeof(ri->ref_name), "%s", PQgetvalue(r, 0, 4));
	}
	PQclear(r);
	return true;
}

static void kc_free(struct kc *k)
{
	for (int ti = 0; ti < k->n_t; ti++) {
		for (int i = 0; i < k->t[ti].n_cols; i++)
			free(k->t[ti].cols[i].default_expr);
		for (int i = 0; i < k->t[ti].n_idx; i++)
			free(k->t[ti].idx[i].create_sql);
	}
}

/* Reads everything the change of key request 'i' involves into 'k'; false when the catalog failed. */
static bool read_change(PGconn *c, const struct plan *p, int i, const struct kc_req_info *ri, struct kc *k,
			struct db_error *err)
{
	int ti, ci;

	k->input = p->keychange_reqs[i].input;
	if (!add_column(c, k, ri->oid, p->keychange_reqs[i].column, 0, &ti, &ci, err))
		return false;
	if (ti != 0 || ci != 0)
		return true;
	if (!read_key(c, k, err))
		return false;
	if (k->reasons[0])
		return true; /* not a key: what depends on it does not matter */
	if (!read_foreign_keys(c, k, err))
		return false;
	for (ti = 0; ti < k->n_t; ti++)
		if (!read_indexes(c, k, &k->t[ti], err) || !read_dependents(c, k, &k->t[ti], err) ||
		    !read_publications(c, k, &k->t[ti], err) || !read_collisions(c, k, &k->t[ti], err))
			return false;
	return true;
}

static void note_change(struct plan *p, const struct kc *k, const struct kc_req_info *ri, int self)
{
	const struct plan_input *in = &p->inputs[k->input];
	char key[4 * PLAN_NAME_MAX + 8];
	long long rows = 0;

	name_of(&k->t[0], key, sizeof(key));
	for (int ti = 0; ti < k->n_t; ti++)
		rows += k->t[ti].rows;
	input_note(
		p,
		"%s:%d: ALTER COLUMN %s TYPE bigint on %s: an online key type change of %d table(s), ~%lld "
		"row(s): bigint shadow columns kept equal by triggers and backfilled in batches, indexes "
		"and foreign keys built beside the old ones, then one swap under a brief all hold; the "
		"old columns stay (and keep following) until `pgvalve finalize ID`",
		in->file, in->line, k->t[0].cols[0].name, key, k->n_t, rows);
	for (int f = 0; f < k->n_fk; f++) {
		const struct kc_table *t = &k->t[k->fk[f].table];
		const struct kc_col *cc = &t->cols[k->fk[f].col];
		char tn[4 * PLAN_NAME_MAX + 8];
		int from = -1;

		name_of(t, tn, sizeof(tn));
		for (int j = 0; j < p->n_keychange_reqs; j++)
			if (ri[j].folded_into == self && strcmp(ri[j].oid, t->oid) == 0 &&
			    ri[j].attnum == cc->attnum)
				from = j;
		if (from >= 0)
			input_note(
				p,
				"%s:%d: ALTER COLUMN %s TYPE bigint on %s: folded into the key change of %s",
				p->inputs[p->keychange_reqs[from].input].file,
				p->inputs[p->keychange_reqs[from].input].line, cc->name, tn, key);
		else
			input_note(p,
				   "%s:%d: the key change of %s also changes %s.%s (foreign key %s)%s, which "
				   "the "
				   "file leaves out",
				   in->file, in->line, key, tn, cc->name, k->fk[f].name,
				   cc->shadow ? "" : " — bigint already: only its foreign key moves");
	}
}

static int by_phase(const void *a, const void *b)
{
	const struct plan_step *x = a, *y = b;

	if (x->phase != y->phase)
		return x->phase < y->phase ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

bool keychange_resolve(PGconn *c, struct plan *p, struct db_error *err)
{
	struct kc_req_info *ri;
	struct kc *k;
	bool ok = true;

	if (p->n_keychange_reqs == 0)
		return true;
	ri = xcalloc((size_t)p->n_keychange_reqs, sizeof(*ri));
	k = xmalloc(sizeof(*k));
	for (int i = 0; i < p->n_keychange_reqs && ok; i++)
		ok = read_req(c, &p->keychange_reqs[i], &ri[i], err);
	/* a referencing column's line folds into its key's change, when the file changes that key */
	for (int i = 0; i < p->n_keychange_reqs && ok; i++)
		for (int j = 0; j < p->n_keychange_reqs && !ri[i].key; j++)
			if (ri[j].key && ri[i].ref_attnum && strcmp(ri[i].ref_oid, ri[j].oid) == 0 &&
			    ri[i].ref_attnum == ri[j].attnum)
				ri[i].folded_into = j;
	for (int i = 0; i < p->n_keychange_reqs && ok; i++) {
		const struct plan_keychange_req *q = &p->keychange_reqs[i];
		char what[4 * PLAN_NAME_MAX + 8];

		if (ri[i].folded_into >= 0)
			continue;
		memset(k, 0, sizeof(*k));
		qname_format(&q->table, what, sizeof(what));
		if (!ri[i].oid[0]) {
			push_refusal(p, q->input, xasprintf("refused: table %s does not exist", what),
				     xstrdup("check the table name and search_path"));
			continue;
		}
		if (!read_change(c, p, i, &ri[i], k, err)) {
			ok = false;
		} else if (k->reasons[0]) {
			if (!ri[i].key && ri[i].ref_attnum)
				refuse(k,
				       "it references %s, which this file does not change: pgvalve changes a "
				       "key "
				       "together with every column that references it",
				       ri[i].ref_name);
			push_refusal(
				p, q->input,
				xasprintf("refused: ALTER COLUMN %s TYPE bigint on %s: %s", q->column, what,
					  k->reasons),
				xasprintf("pgvalve changes an integer primary key (and every foreign key "
					  "column that references it) online: ALTER TABLE %s ALTER COLUMN "
					  "<key> TYPE bigint; what is named above must be removed (or "
					  "changed by hand) first",
					  what));
		} else {
			note_change(p, k, ri, i);
			push_prepare(p, k);
			push_constraints(p, k);
			push_swap(p, k, false);
			p->keychange_undo = xrealloc(p->keychange_undo,
						     sizeof(char *) * (size_t)(p->n_keychange_undo + 1));
			p->keychange_undo[p->n_keychange_undo++] = undo_json(k);
		}
		kc_free(k);
	}
	free(k);
	free(ri);
	if (ok && p->n_steps) {
		qsort(p->steps, (size_t)p->n_steps, sizeof(*p->steps), by_phase);
		for (int i = 0; i < p->n_steps; i++)
			p->steps[i].seq = i + 1;
	}
	return ok;
}
