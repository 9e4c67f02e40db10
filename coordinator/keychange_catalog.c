/*
 * The key type change read from the catalog (docs/architecture.md §4.9):
 * which statements of a file name a key and which the columns that
 * reference it, the key's primary key and sequence, every foreign key
 * referencing it, the indexes on the changed columns (plain ones are
 * copied), and what else depends on them (named in a refusal).
 * Read-only: nothing here changes the database.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "keychange.h"
#include "keychange_internal.h"
#include "names.h"
#include "quote.h"
#include "strbuf.h"
#include "xalloc.h"

void keychange_catalog_refuse(struct kc *k, const char *fmt, ...)
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
		keychange_catalog_refuse(k, "column %s does not exist", name ? name : num);
		PQclear(r);
		return true;
	}
	for (*ti = 0; *ti < k->n_t; (*ti)++)
		if (strcmp(k->t[*ti].oid, oid) == 0)
			break;
	if (*ti == k->n_t) {
		if (k->n_t == KC_MAX_TABLES) {
			keychange_catalog_refuse(k, "more than %d tables reference the key",
						 KC_MAX_TABLES - 1);
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
			keychange_catalog_refuse(k, "%s is a partitioned table: not supported yet", what);
		else if (strcmp(PQgetvalue(r, 0, 3), "t") == 0 || strcmp(PQgetvalue(r, 0, 14), "t") == 0)
			keychange_catalog_refuse(
				k, "%s is a partition or takes part in inheritance: not supported yet", what);
		else if (*PQgetvalue(r, 0, 2) != 'r')
			keychange_catalog_refuse(k, "%s is not a table", what);
		if (strcmp(PQgetvalue(r, 0, 10), "t") != 0)
			keychange_catalog_refuse(k,
						 "the role lacks the TRIGGER privilege on %s (triggers keep "
						 "the shadow columns "
						 "equal to the old ones)",
						 what);
		if (strcmp(PQgetvalue(r, 0, 11), "t") != 0)
			keychange_catalog_refuse(k, "the role does not own %s (ALTER TABLE needs its owner)",
						 what);
	}
	t = &k->t[*ti];
	name_of(t, what, sizeof(what));
	for (*ci = 0; *ci < t->n_cols; (*ci)++)
		if (t->cols[*ci].attnum == atoi(PQgetvalue(r, 0, 4))) {
			PQclear(r);
			return true;
		}
	if (t->n_cols == KC_MAX_COLS) {
		keychange_catalog_refuse(k, "more than %d changed columns in %s", KC_MAX_COLS, what);
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
		keychange_catalog_refuse(
			k, "%s.%s is an identity column (GENERATED … AS IDENTITY): not carried over yet",
			what, cc->name);
	if (strcmp(PQgetvalue(r, 0, 8), "t") == 0)
		keychange_catalog_refuse(k, "%s.%s is a generated column", what, cc->name);
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
		keychange_catalog_refuse(k, "%s.%s is bigint already: nothing to change", what, key->name);
	else if (strcmp(key->type, "integer") != 0 && strcmp(key->type, "smallint") != 0)
		keychange_catalog_refuse(k, "%s.%s is %s, not an integer key (smallint or integer)", what,
					 key->name, key->type);
	r = db_query(c,
		     "SELECT conname, array_length(conkey, 1), $2::int2 = ANY (conkey) "
		     "FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND contype = 'p'",
		     2, params, err);
	if (!r)
		return false;
	if (PQntuples(r) == 0 || strcmp(PQgetvalue(r, 0, 2), "t") != 0)
		keychange_catalog_refuse(
			k,
			"%s.%s is not the primary key of %s: pgvalve changes an integer primary key together "
			"with the columns referencing it",
			what, key->name, what);
	else if (atoi(PQgetvalue(r, 0, 1)) != 1)
		keychange_catalog_refuse(k, "%s.%s is part of a composite primary key: not supported", what,
					 key->name);
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
			keychange_catalog_refuse(k, "foreign key %s on %s is composite: not supported",
						 PQgetvalue(r, i, 0), PQgetvalue(r, i, 9));
			continue;
		}
		if (k->n_fk == KC_MAX_TABLES) {
			keychange_catalog_refuse(k, "more than %d foreign keys reference the key",
						 KC_MAX_TABLES);
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

/* 'sql' run with $1 the oid of 't' and $2 its changed columns (attnums()): the catalog reads per table. */
static PGresult *query_changed_cols(PGconn *c, const struct kc_table *t, const char *sql,
				    struct db_error *err)
{
	char cols[256];
	const char *params[2] = { t->oid, cols };

	attnums(t, cols, sizeof(cols));
	return db_query(c, sql, 2, params, err);
}

/*
 * The indexes of 't' on its changed columns: plain ones (columns only, no
 * expression, predicate, INCLUDE, operator class or order: the definition
 * reads back the same rebuilt from the columns) are built again on the
 * shadow columns; the others are refused by name.
 */
static bool read_indexes(PGconn *c, struct kc *k, struct kc_table *t, struct db_error *err)
{
	char what[4 * PLAN_NAME_MAX + 8];
	PGresult *r;

	name_of(t, what, sizeof(what));
	r = query_changed_cols(
		c, t,
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
		err);
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
			keychange_catalog_refuse(
				k,
				"index %s on %s has an expression, a predicate, INCLUDE columns, an operator "
				"class or an order: not carried over yet",
				name, what);
			continue;
		}
		if (!primary && !PQgetisnull(r, i, 4)) {
			keychange_catalog_refuse(
				k,
				"constraint %s on %s (UNIQUE or EXCLUDE) contains the column: not carried "
				"over yet",
				con, what);
			continue;
		}
		if (primary && t != &k->t[0]) {
			keychange_catalog_refuse(
				k, "the primary key %s of %s contains a referencing column: not carried over yet",
				con, what);
			continue;
		}
		if (t->n_idx == KC_MAX_INDEXES) {
			keychange_catalog_refuse(k, "more than %d indexes on the changed columns of %s",
						 KC_MAX_INDEXES, what);
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
	char what[4 * PLAN_NAME_MAX + 8];
	PGresult *r;

	name_of(t, what, sizeof(what));
	r = query_changed_cols(
		c, t,
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
		err);
	if (!r)
		return false;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *cls = PQgetvalue(r, i, 0), *desc = PQgetvalue(r, i, 1);

		if (strcmp(cls, "pg_class") == 0) {
			char kind = *PQgetvalue(r, i, 3);

			if (kind == 'S' && *PQgetvalue(r, i, 2) != 'a')
				keychange_catalog_refuse(
					k, "%s (an identity sequence) on %s: not carried over yet", desc,
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
			keychange_catalog_refuse(
				k, "%s depends on a changed column of %s: not carried over yet", desc, what);
		} else if (strcmp(cls, "pg_rewrite") == 0) {
			const char *v = PQgetvalue(r, i, 5);
			const char *sp = strrchr(v, ' ');

			keychange_catalog_refuse(k,
						 "%s %.*s reads a changed column of %s: not carried over yet",
						 sp && sp[1] == 'm' ? "materialized view" : "view",
						 sp ? (int)(sp - v) : (int)strlen(v), v, what);
		} else if (strcmp(cls, "pg_attrdef") == 0) {
			if (strcmp(PQgetvalue(r, i, 6), "t") != 0)
				keychange_catalog_refuse(
					k, "%s (a generated column) reads a changed column of %s", desc,
					what);
		} else {
			/* pg_policy, pg_trigger, pg_statistic_ext, ...: named as PostgreSQL names them */
			keychange_catalog_refuse(
				k, "%s depends on a changed column of %s: not carried over yet", desc, what);
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
		keychange_catalog_refuse(
			k,
			"publication %s publishes %s (its subscribers would need the new columns): not "
			"supported yet",
			PQgetvalue(r, i, 0), what);
	PQclear(r);
	return true;
}

/*
 * The table's own triggers that fire on any UPDATE of a row (row level, no
 * column list, enabled): the backfill's UPDATE fires them for every row.
 */
static bool read_update_triggers(PGconn *c, struct kc_table *t, struct db_error *err)
{
	const char *params[1] = { t->oid };
	PGresult *r = db_query(c,
			       "SELECT string_agg(quote_ident(tgname), ', ' ORDER BY tgname) FROM "
			       "pg_catalog.pg_trigger WHERE tgrelid = $1::oid AND NOT tgisinternal AND "
			       "tgenabled <> 'D' AND tgtype & 1 = 1 AND tgtype & 16 = 16 AND "
			       "cardinality(tgattr::int2[]) = 0",
			       1, params, err);

	if (!r)
		return false;
	snprintf(t->update_triggers, sizeof(t->update_triggers), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return true;
}

/* 'name' appended to the text array literal being built in 'b' ("{" so far, or elements): quoted, escaped. */
static void put_array_element(struct strbuf *b, const char *name)
{
	strbuf_put(b, b->len > 1 ? ",\"" : "\"");
	for (const char *s = name; *s; s++) {
		char ch[3] = { '\\', *s, 0 };

		strbuf_put(b, *s == '"' || *s == '\\' ? ch : ch + 1);
	}
	strbuf_put(b, "\"");
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
			put_array_element(j == 2 ? &rels : &cols, names[j]);
		}
	}
	for (int i = 0; i < t->n_idx; i++) {
		const char *names[2] = { t->idx[i].new_name, t->idx[i].old_name };

		for (int j = 0; j < 2; j++) {
			put_array_element(&rels, names[j]);
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
		keychange_catalog_refuse(
			k, "%s exists already on %s (left by an earlier key change? drop it first)",
			PQgetvalue(r, i, 0), what);
	PQclear(r);
	return true;
}

bool keychange_catalog_read_req(PGconn *c, const struct plan_keychange_req *q, struct kc_req_info *ri,
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

void keychange_catalog_free(struct kc *k)
{
	for (int ti = 0; ti < k->n_t; ti++) {
		for (int i = 0; i < k->t[ti].n_cols; i++)
			free(k->t[ti].cols[i].default_expr);
		for (int i = 0; i < k->t[ti].n_idx; i++)
			free(k->t[ti].idx[i].create_sql);
	}
}

bool keychange_catalog_read_change(PGconn *c, const struct plan *p, int i, const struct kc_req_info *ri,
				   struct kc *k, struct db_error *err)
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
		    !read_publications(c, k, &k->t[ti], err) || !read_collisions(c, k, &k->t[ti], err) ||
		    !read_update_triggers(c, &k->t[ti], err))
			return false;
	return true;
}
