/*
 * Cutting foreign keys out of a statement run as written (see
 * rules_internal.h): a new table's keys to existing tables, an ADD COLUMN's
 * inline REFERENCES. Each cut is a span of the statement's text found with
 * the lexer from the constraint's position in the parse tree; the text left
 * is parsed again and must give the original tree minus those constraints,
 * or the statement is refused. The keys cut out are added the way ALTER
 * TABLE … ADD FOREIGN KEY is (rules_constraint.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/sqllex.h"
#include "rules_internal.h"
#include "xalloc.h"

/*
 * Where the element starting at 'loc' ends: before a ',' or ')' at its own
 * nesting level, or at 'stop' (the next constraint of the same column), or
 * at the end.
 */
static size_t element_end(const char *sql, size_t len, size_t loc, size_t stop)
{
	struct sqllex lx;
	struct sqllex_token t;
	size_t end = loc;
	int depth = 0;

	sqllex_init(&lx, sql + loc, len - loc, 0);
	while (sqllex_next_significant(&lx, &t) != SQLLEX_END) {
		if (loc + t.start >= stop)
			break;
		if (sqllex_is_char(sql + loc, &t, '('))
			depth++;
		else if (sqllex_is_char(sql + loc, &t, ')') && --depth < 0)
			break;
		else if (depth == 0 &&
			 (sqllex_is_char(sql + loc, &t, ',') || sqllex_is_char(sql + loc, &t, ';')))
			break;
		end = loc + t.end;
	}
	return end;
}

/* The ',' before 'loc' at the same level, after the last significant token before it; 0 if none. */
static bool comma_before(const char *sql, size_t loc, size_t *at)
{
	struct sqllex lx;
	struct sqllex_token t;
	bool found = false;

	sqllex_init(&lx, sql, loc, 0);
	while (sqllex_next_significant(&lx, &t) != SQLLEX_END) {
		found = sqllex_is_char(sql, &t, ',');
		if (found)
			*at = t.start;
	}
	return found;
}

/* A table element (a whole constraint of CREATE TABLE) with its separating comma. */
struct rules_cut rules_cut_table_element(const char *sql, size_t len, size_t loc)
{
	size_t end = element_end(sql, len, loc, len), at = 0;
	struct sqllex lx;
	struct sqllex_token t;

	sqllex_init(&lx, sql + end, len - end, 0);
	if (sqllex_next_significant(&lx, &t) != SQLLEX_END && sqllex_is_char(sql + end, &t, ','))
		return (struct rules_cut){ loc, end + t.end };
	if (comma_before(sql, loc, &at))
		return (struct rules_cut){ at, end };
	return (struct rules_cut){ loc, end };
}

static int by_start(const void *a, const void *b)
{
	const struct rules_cut *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* 'sql' without the cuts (sorted, not overlapping), or NULL when they overlap. */
char *rules_cut_apply(const char *sql, size_t len, struct rules_cut *cuts, int n)
{
	struct strbuf b = { 0 };
	size_t at = 0, n_out;
	char *out;

	qsort(cuts, (size_t)n, sizeof(*cuts), by_start);
	for (int i = 0; i < n; i++) {
		if (cuts[i].start < at || cuts[i].end > len) {
			free(strbuf_take(&b));
			return NULL;
		}
		strbuf_putn(&b, sql + at, cuts[i].start - at);
		at = cuts[i].end;
	}
	strbuf_putn(&b, sql + at, len - at);
	out = strbuf_take(&b);
	for (n_out = strlen(out); n_out > 0 && strchr(" \t\r\n", out[n_out - 1]); n_out--)
		out[n_out - 1] = '\0';
	return out;
}

/* Whether 'sql' parses to 'want' (a statement's node, its cut constraints removed). */
bool rules_cut_reads_as(const char *sql, const cJSON *want)
{
	char msg[256];
	cJSON *doc = NULL;
	const cJSON *got = rules_parse_one(sql, &doc, msg, sizeof(msg));
	bool same = got && pgtree_same(want, got, NULL);

	cJSON_Delete(doc);
	return same;
}

/*
 * A column's REFERENCES constraint as a table constraint: its fields with
 * fk_attrs set to the column, and the DEFERRABLE / INITIALLY DEFERRED that
 * the parser keeps as separate nodes after it folded in. The caller deletes it.
 */
static cJSON *column_fk(const cJSON *con, const char *column, const cJSON *attrs[], int n_attrs)
{
	cJSON *k = cJSON_Duplicate(con, 1), *list = cJSON_CreateArray(), *str = cJSON_CreateObject();

	cJSON_AddItemToObject(str, "sval", cJSON_CreateString(column));
	cJSON_AddItemToArray(list, cJSON_CreateObject());
	cJSON_AddItemToObject(cJSON_GetArrayItem(list, 0), "String", str);
	cJSON_DeleteItemFromObjectCaseSensitive(k, "fk_attrs");
	cJSON_AddItemToObject(k, "fk_attrs", list);
	for (int i = 0; i < n_attrs; i++) {
		if (pgtree_str_is(attrs[i], "contype", "CONSTR_ATTR_DEFERRABLE"))
			cJSON_AddBoolToObject(k, "deferrable", true);
		else if (pgtree_str_is(attrs[i], "contype", "CONSTR_ATTR_DEFERRED"))
			cJSON_AddBoolToObject(k, "initdeferred", true);
	}
	return k;
}

static bool is_attr(const cJSON *con)
{
	const char *t = pgtree_str(con, "contype");

	return t && strncmp(t, "CONSTR_ATTR_", 12) == 0;
}

/*
 * The foreign keys of a ColumnDef ('col', its fields; in 'copy' the same
 * node of the tree to compare with) to cut out: pushed to ks[] (as table
 * constraints, which the caller deletes), their spans to cuts[], and
 * removed from 'copy'. A key to 'self' or to a table this file creates stays inline.
 */
bool rules_cut_column_fks(struct rules_ctx *c, const cJSON *col, cJSON *copy, const struct qname *self,
			  cJSON *ks[], struct rules_cut cuts[], int *n)
{
	const cJSON *list = pgtree_get(col, "constraints");
	cJSON *copy_list = cJSON_GetObjectItemCaseSensitive(copy, "constraints");
	const char *column = pgtree_str(col, "colname");
	int len = pgtree_list_len(list);

	for (int i = 0, removed = 0; i < len; i++) {
		const cJSON *con = pgtree_node(pgtree_list_at(list, i), "Constraint");
		const cJSON *attrs[4];
		struct qname ref;
		int loc, n_attrs = 0, j;
		size_t stop = c->len;

		if (!pgtree_str_is(con, "contype", "CONSTR_FOREIGN") || !column ||
		    !rules_range_var(c, pgtree_get(con, "pktable"), &ref))
			continue;
		rules_resolve(c, &ref);
		if (rules_qname_eq(&ref, self) || rules_created(c->p, &ref))
			continue;
		if (*n == RULES_MAX_CUT || !pgtree_int(con, "location", &loc) || loc < 0)
			return false;
		for (j = i + 1; j < len; j++) {
			const cJSON *next = pgtree_node(pgtree_list_at(list, j), "Constraint");
			int nloc;

			if (!is_attr(next) || n_attrs == 4) {
				if (pgtree_int(next, "location", &nloc) && nloc > loc)
					stop = (size_t)nloc;
				break;
			}
			attrs[n_attrs++] = next;
		}
		ks[*n] = column_fk(con, column, attrs, n_attrs);
		cuts[*n] = (struct rules_cut){ (size_t)loc, element_end(c->sql, c->len, (size_t)loc, stop) };
		(*n)++;
		for (int k = 0; k <= n_attrs; k++)
			cJSON_DeleteItemFromArray(copy_list, i - removed);
		removed += n_attrs + 1;
		i = j - 1;
	}
	/* The parser's tree has no "constraints" at all when the list is empty. */
	if (copy_list && cJSON_GetArraySize(copy_list) == 0)
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "constraints");
	return true;
}

/* Adds each cut-out foreign key the way ALTER TABLE … ADD FOREIGN KEY is: NOT VALID at cutover, then VALIDATE. */
enum rules_outcome rules_cut_add_fks(struct rules_ctx *c, const struct qname *table, cJSON *ks[], int n)
{
	struct rules_target t = { .table = *table };
	enum rules_outcome o = RULE_DONE;

	for (int i = 0; i < n; i++) {
		if (o == RULE_DONE)
			o = rules_foreign_key(c, &t, ks[i]);
		cJSON_Delete(ks[i]);
	}
	return o;
}
