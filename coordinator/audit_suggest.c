/*
 * Foreign keys that are missing (see audit.h, audit_suggest): a column
 * whose name says it refers to a table — customer_id, customerId,
 * customer_uuid naming customer or customers, in snake_case or camelCase,
 * in its own schema or another — and whose type is that table's one-column
 * primary or unique key's type, but which no foreign key covers. Each is
 * ranked and written as the ALTER TABLE that adds it, named as PostgreSQL
 * would name it; pgvalve plan/apply turn that into NOT VALID + VALIDATE.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "names.h"
#include "quote.h"
#include "xalloc.h"

_Static_assert(AUDIT_NAME_MAX == PLAN_NAME_MAX, "an audit name is a plan name: both NAMEDATALEN");

/* The addition and the choosing are names.c's, as for the names a migration's steps get. */
void audit_object_name(const char *table, const char *const *columns, int n_columns, const char *label,
		       bool (*taken)(const char *name, void *arg), void *arg, char out[AUDIT_NAME_MAX])
{
	char addition[2 * PLAN_NAME_MAX];

	names_addition_list(columns, n_columns, addition);
	names_choose_unused(table, addition, label, taken, arg, out);
}

/* Lower case with underscores dropped: how a column's stem and a table's name are compared. */
static void normalize(const char *s, size_t n, char *out, size_t cap)
{
	size_t k = 0;

	for (size_t i = 0; i < n && s[i] && k + 1 < cap; i++)
		if (s[i] != '_')
			out[k++] = (char)tolower((unsigned char)s[i]);
	out[k] = '\0';
}

/*
 * The stem of a column named like a reference (customer_id, customerId,
 * customerID, customer_uuid, customerUuid), normalized; false otherwise.
 */
static bool reference_stem(const char *col, char *stem, size_t cap)
{
	size_t n = strlen(col);
	size_t cut = 0;

	if (n > 3 && strcmp(col + n - 3, "_id") == 0)
		cut = 3;
	else if (n > 5 && strcmp(col + n - 5, "_uuid") == 0)
		cut = 5;
	else if (n > 2 && (strcmp(col + n - 2, "Id") == 0 || strcmp(col + n - 2, "ID") == 0) &&
		 (islower((unsigned char)col[n - 3]) || isdigit((unsigned char)col[n - 3])))
		cut = 2;
	else if (n > 4 && (strcmp(col + n - 4, "Uuid") == 0 || strcmp(col + n - 4, "UUID") == 0) &&
		 islower((unsigned char)col[n - 5]))
		cut = 4;
	if (!cut)
		return false;
	normalize(col, n - cut, stem, cap);
	return stem[0] != '\0';
}

/* A table by its normalized name, for finding the tables a column's stem names. */
struct norm_name {
	char name[2 * AUDIT_NAME_MAX];
	int table;
};

static int cmp_norm(const void *a, const void *b)
{
	return strcmp(((const struct norm_name *)a)->name, ((const struct norm_name *)b)->name);
}

/* The forms of a stem a table may be named by, each with how well it matches (3 best). */
struct form {
	struct norm_name key; /* key.table unused */
	int match;
};

static int stem_forms(const char *stem, struct form out[5])
{
	size_t n = strlen(stem);
	int k = 0;

	snprintf(out[k].key.name, sizeof(out[k].key.name), "%s", stem);
	out[k++].match = 3;
	snprintf(out[k].key.name, sizeof(out[k].key.name), "%ss", stem);
	out[k++].match = 2;
	snprintf(out[k].key.name, sizeof(out[k].key.name), "%ses", stem);
	out[k++].match = 2;
	if (n > 1 && stem[n - 1] == 'y') {
		snprintf(out[k].key.name, sizeof(out[k].key.name), "%.*sies", (int)(n - 1), stem);
		out[k++].match = 2;
	}
	/* The column names the plural and the table the singular (users_id -> user). */
	if (n > 1 && stem[n - 1] == 's') {
		snprintf(out[k].key.name, sizeof(out[k].key.name), "%.*s", (int)(n - 1), stem);
		out[k++].match = 1;
	}
	return k;
}

struct names_ctx {
	const struct audit_graph *g;
	const char *schema;
	const struct audit_suggestions *s; /* the suggestions named so far */
	char kind;                         /* 'c' a constraint name, 'r' a relation (index) name */
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether 'name' exists in the schema (as a constraint or a relation), or an earlier suggestion chose it there. */
static bool name_taken(const char *name, void *arg)
{
	const struct names_ctx *c = arg;
	char *key = xasprintf("%c%s\x1f%s", c->kind, c->schema, name);
	bool found = c->g->n_constraint_names > 0 &&
		bsearch(&key, c->g->constraint_names, (size_t)c->g->n_constraint_names, sizeof(char *),
			cmp_str) != NULL;

	free(key);
	for (int i = 0; !found && i < c->s->n; i++)
		found = strcmp(c->g->tables[c->s->v[i].table].schema, c->schema) == 0 &&
			strcmp(c->kind == 'c' ? c->s->v[i].name : c->s->v[i].index_name, name) == 0;
	return found;
}

static char *index_sql(const struct audit_graph *g, const struct audit_suggestion *x)
{
	const struct audit_table *t = &g->tables[x->table];
	char tq[4 * AUDIT_NAME_MAX + 8], nq[2 * AUDIT_NAME_MAX + 4], cq[2 * AUDIT_NAME_MAX + 4];

	quote_qname(tq, sizeof(tq), t->schema, t->name);
	quote_ident(nq, sizeof(nq), x->index_name);
	quote_ident(cq, sizeof(cq), g->columns[x->column].name);
	return xasprintf("CREATE INDEX %s ON %s (%s);", nq, tq, cq);
}

static char *suggestion_sql(const struct audit_graph *g, const struct audit_suggestion *x)
{
	const struct audit_table *t = &g->tables[x->table], *r = &g->tables[x->ref_table];
	char tq[4 * AUDIT_NAME_MAX + 8], rq[4 * AUDIT_NAME_MAX + 8], nq[2 * AUDIT_NAME_MAX + 4];
	char cq[2 * AUDIT_NAME_MAX + 4], kq[2 * AUDIT_NAME_MAX + 4];

	quote_qname(tq, sizeof(tq), t->schema, t->name);
	quote_qname(rq, sizeof(rq), r->schema, r->name);
	quote_ident(nq, sizeof(nq), x->name);
	quote_ident(cq, sizeof(cq), g->columns[x->column].name);
	quote_ident(kq, sizeof(kq), g->keys[x->key].column);
	return xasprintf("ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s);", tq, nq, cq,
			 rq, kq);
}

/* The best key of table 't' for a column of 'type': the primary key first. -1 when none has that type. */
static int key_of_type(const struct audit_graph *g, int t, const char *type)
{
	int best = -1;

	for (int k = 0; k < g->n_keys; k++)
		if (g->keys[k].table == t && strcmp(g->keys[k].type, type) == 0 &&
		    (best < 0 || (g->keys[k].primary && !g->keys[best].primary)))
			best = k;
	return best;
}

/* Whether table 't' has a key at all (of any type). */
static bool has_key(const struct audit_graph *g, int t)
{
	for (int k = 0; k < g->n_keys; k++)
		if (g->keys[k].table == t)
			return true;
	return false;
}

/* The column "id" of table 't' among the columns read, or -1. */
static int id_column(const struct audit_graph *g, int t)
{
	for (int i = 0; i < g->n_columns; i++)
		if (g->columns[i].table == t && strcmp(g->columns[i].name, "id") == 0)
			return i;
	return -1;
}

static int cmp_suggestion(const void *a, const void *b)
{
	const struct audit_suggestion *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->table != y->table)
		return x->table < y->table ? -1 : 1;
	return x->column < y->column ? -1 : x->column > y->column;
}

void audit_suggest(const struct audit_graph *g, struct audit_suggestions *s, struct audit_findings *f)
{
	struct norm_name *norm = xcalloc((size_t)g->n_tables + 1, sizeof(*norm));

	for (int t = 0; t < g->n_tables; t++) {
		normalize(g->tables[t].name, strlen(g->tables[t].name), norm[t].name, sizeof(norm[t].name));
		norm[t].table = t;
	}
	qsort(norm, (size_t)g->n_tables, sizeof(*norm), cmp_norm);
	memset(s, 0, sizeof(*s));
	s->v = xcalloc((size_t)g->n_columns + 1, sizeof(*s->v));
	for (int i = 0; i < g->n_columns; i++) {
		const struct audit_column *col = &g->columns[i];
		char stem[2 * AUDIT_NAME_MAX];
		int best = -1, best_score = 0, best_key = -1, keyless = -1, n_forms;
		struct form forms[5];

		if (col->in_fk || !reference_stem(col->name, stem, sizeof(stem)))
			continue;
		n_forms = stem_forms(stem, forms);
		for (int fi = 0; fi < n_forms; fi++) {
			const struct norm_name *key = &forms[fi].key;
			struct norm_name *hit = bsearch(key, norm, (size_t)g->n_tables, sizeof(*norm),
							cmp_norm);
			int lo;

			if (!hit)
				continue;
			/* Every table of that normalized name: step back to the first. */
			for (lo = (int)(hit - norm); lo > 0 && strcmp(norm[lo - 1].name, key->name) == 0;
			     lo--)
				;
			for (int h = lo; h < g->n_tables && strcmp(norm[h].name, key->name) == 0; h++) {
				int t = norm[h].table, m = forms[fi].match, score, k;

				k = key_of_type(g, t, col->type);
				if (k < 0) {
					if (!has_key(g, t) && id_column(g, t) >= 0 &&
					    strcmp(g->columns[id_column(g, t)].type, col->type) == 0)
						keyless = t;
					continue;
				}
				if (t == col->table && strcmp(g->keys[k].column, col->name) == 0)
					continue; /* the table's own key */
				score = m * 10 +
					(strcmp(g->tables[t].schema, g->tables[col->table].schema) == 0 ? 15
													: 0) +
					(g->keys[k].primary ? 2 : 0);
				if (score > best_score || (score == best_score && t < best)) {
					best = t;
					best_score = score;
					best_key = k;
				}
			}
		}
		if (best < 0 && keyless >= 0) {
			char *hint = xasprintf("add a primary key or unique constraint on %s (id), then the "
					       "foreign key from %s (%s)",
					       g->tables[keyless].display, g->tables[col->table].display,
					       col->name);

			audit_finding_add(f, "missing_unique", SEV_WARNING, keyless, NULL, hint,
					  "%s.%s looks like a reference to %s.id, but %s has no primary or "
					  "unique key a foreign key could reference",
					  g->tables[col->table].display, col->name,
					  g->tables[keyless].display, g->tables[keyless].display);
			free(hint);
		}
		if (best < 0)
			continue;
		s->v[s->n++] = (struct audit_suggestion){ .table = col->table,
							  .column = i,
							  .ref_table = best,
							  .key = best_key,
							  .score = best_score + (col->indexed ? 1 : 0),
							  .orphans = -1 };
	}
	free(norm);
	if (s->n > 1)
		qsort(s->v, (size_t)s->n, sizeof(*s->v), cmp_suggestion);
	/* Names in rank order, each seeing the ones chosen before it. */
	for (int i = 0; i < s->n; i++) {
		struct audit_suggestion *x = &s->v[i];
		struct audit_suggestions before = { .v = s->v, .n = i };
		struct names_ctx ctx = { g, g->tables[x->table].schema, &before, 'c' };
		const char *cols[1] = { g->columns[x->column].name };

		audit_fk_name(g->tables[x->table].name, cols, 1, name_taken, &ctx, x->name);
		x->sql = suggestion_sql(g, x);
		/* Without an index every delete of a referenced row scans the table: add one too. */
		if (!g->columns[x->column].indexed) {
			ctx.kind = 'r';
			audit_object_name(g->tables[x->table].name, cols, 1, "idx", name_taken, &ctx,
					  x->index_name);
			x->index_sql = index_sql(g, x);
		}
	}
}

void audit_suggestions_free(struct audit_suggestions *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->v[i].sql);
		free(s->v[i].index_sql);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}
