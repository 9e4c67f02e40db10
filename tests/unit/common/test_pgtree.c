/*
 * Unit tests for common/pgtree.c: parsing (a tree, a syntax error with
 * PostgreSQL's message and position, a tree too deep for cJSON), the field
 * accessors on a real tree (node kinds, strings, flags left out when false,
 * integers, lists, String nodes), RangeVar names as PostgreSQL folds them,
 * and tree comparison that ignores positions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgvalve/pgtree.h"

/* The statement node of the only statement of 'sql' (its tree in *doc). */
static const cJSON *only_stmt(const char *sql, cJSON **doc)
{
	struct pgtree_error err;

	*doc = pgtree_parse(sql, &err);
	if (!*doc)
		fail_msg("%s: %s", sql, err.message);
	assert_int_equal(pgtree_list_len(pgtree_stmts(*doc)), 1);
	return pgtree_get(pgtree_list_at(pgtree_stmts(*doc), 0), "stmt");
}

static void test_parse_errors(void **state)
{
	struct pgtree_error err;
	cJSON *doc;
	char *deep;
	size_t n = 0;

	(void)state;
	assert_null(pgtree_parse("SELECT FROM WHERE", &err));
	assert_int_equal(err.kind, PGTREE_SYNTAX);
	assert_string_equal(err.message, "syntax error at or near \"WHERE\"");
	assert_int_equal(err.cursorpos, 13);
	/* Deeper than cJSON's nesting limit (1000): parsed, but not readable. */
	deep = malloc(8 * 2000 + 32);
	assert_non_null(deep);
	n += (size_t)sprintf(deep, "SELECT ");
	for (int i = 0; i < 2000; i++)
		n += (size_t)sprintf(deep + n, "(1+");
	deep[n++] = '1';
	for (int i = 0; i < 2000; i++)
		deep[n++] = ')';
	deep[n] = '\0';
	doc = pgtree_parse(deep, &err);
	assert_null(doc);
	assert_int_equal(err.kind, PGTREE_TOO_DEEP);
	free(deep);
	/* Two statements, none. */
	doc = pgtree_parse("SELECT 1; SELECT 2", &err);
	assert_int_equal(pgtree_list_len(pgtree_stmts(doc)), 2);
	cJSON_Delete(doc);
	doc = pgtree_parse("-- nothing", &err);
	assert_non_null(doc);
	assert_int_equal(pgtree_list_len(pgtree_stmts(doc)), 0);
	cJSON_Delete(doc);
}

static void test_accessors(void **state)
{
	cJSON *doc;
	const cJSON *stmt = only_stmt("ALTER TABLE ONLY \"Sales\".Orders ADD CONSTRAINT c "
				      "FOREIGN KEY (a, \"B\") REFERENCES p NOT VALID",
				      &doc);
	const cJSON *alter, *cmd, *con, *cols;
	struct pgtree_range_var rv;
	int location = -1;

	(void)state;
	assert_string_equal(pgtree_kind(stmt), "AlterTableStmt");
	alter = pgtree_node(stmt, "AlterTableStmt");
	assert_non_null(alter);
	assert_null(pgtree_node(stmt, "IndexStmt"));
	assert_true(pgtree_str_is(alter, "objtype", "OBJECT_TABLE"));
	assert_false(pgtree_str_is(alter, "objtype", "OBJECT_INDEX"));
	assert_false(pgtree_flag(alter, "missing_ok")); /* false: left out of the tree */
	assert_null(pgtree_get(alter, "missing_ok"));

	assert_true(pgtree_range_var(pgtree_get(alter, "relation"), &rv));
	assert_string_equal(rv.schema, "Sales");
	assert_string_equal(rv.name, "orders");
	assert_null(rv.catalog);
	assert_false(rv.inh);

	cmd = pgtree_node(pgtree_list_at(pgtree_get(alter, "cmds"), 0), "AlterTableCmd");
	assert_string_equal(pgtree_str(cmd, "subtype"), "AT_AddConstraint");
	con = pgtree_node(pgtree_get(cmd, "def"), "Constraint");
	assert_true(pgtree_flag(con, "skip_validation"));
	assert_true(pgtree_int(con, "location", &location));
	assert_true(location > 0);
	assert_false(pgtree_int(con, "no_such_field", &location));
	cols = pgtree_get(con, "fk_attrs");
	assert_int_equal(pgtree_list_len(cols), 2);
	assert_string_equal(pgtree_string(pgtree_list_at(cols, 0)), "a");
	assert_string_equal(pgtree_string(pgtree_list_at(cols, 1)), "B");
	assert_null(pgtree_list_at(cols, 2));
	assert_null(pgtree_list_at(cols, -1));
	assert_null(pgtree_string(con));
	assert_true(pgtree_range_var(pgtree_get(con, "pktable"), &rv));
	assert_null(rv.schema);
	assert_string_equal(rv.name, "p");
	assert_true(rv.inh);
	/* Not a RangeVar. */
	assert_false(pgtree_range_var(con, &rv));
	/* NULL anywhere reads as absent. */
	assert_null(pgtree_get(NULL, "x"));
	assert_null(pgtree_kind(NULL));
	assert_int_equal(pgtree_list_len(NULL), 0);
	cJSON_Delete(doc);

	stmt = only_stmt("SELECT * FROM db.s.t", &doc);
	assert_true(pgtree_range_var(
		pgtree_node(pgtree_list_at(pgtree_get(pgtree_node(stmt, "SelectStmt"), "fromClause"), 0),
			    "RangeVar"),
		&rv));
	assert_string_equal(rv.catalog, "db");
	cJSON_Delete(doc);
}

static void test_same(void **state)
{
	cJSON *a, *b, *c;
	const cJSON *x = only_stmt("CREATE INDEX i ON t (a)", &a);
	const cJSON *y = only_stmt("CREATE   INDEX CONCURRENTLY i ON t(a)", &b);
	const cJSON *z = only_stmt("CREATE INDEX i ON t (b)", &c);

	(void)state;
	x = pgtree_node(x, "IndexStmt");
	y = pgtree_node(y, "IndexStmt");
	z = pgtree_node(z, "IndexStmt");
	/* Positions differ, and "concurrent": the same but for the field ignored. */
	assert_false(pgtree_same(x, y, NULL));
	assert_true(pgtree_same(x, y, "concurrent"));
	assert_false(pgtree_same(x, z, "concurrent"));
	assert_false(pgtree_same(x, NULL, NULL));
	cJSON_Delete(a);
	cJSON_Delete(b);
	cJSON_Delete(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_accessors),
		cmocka_unit_test(test_same),
	};

	return cmocka_run_group_tests_name("common/pgtree", tests, NULL, NULL);
}
