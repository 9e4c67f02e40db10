/*
 * Unit tests for coordinator/audit_graph.c on hand-built graphs: strongly
 * connected components (self-references, two cycles sharing nothing, a
 * cycle inside a longer chain), the longest chains (ties, a 10,000-table
 * chain that would overflow a recursive walk), cascade reach (only through
 * ON DELETE CASCADE, transitively, with rows summed), --table impact and
 * restriction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audit.h"
#include "test_audit_lib.h"

/* The table names of list 'l', joined by ' ' ("t0 t1 t2"). */
static const char *joined(const struct audit_graph *g, const struct audit_list *l)
{
	static char buf[4096];
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < l->n && len < sizeof(buf) - 80; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? " " : "",
					g->tables[l->v[i]].name);
	return buf;
}

static void test_no_edges(void **state)
{
	struct audit_graph g;
	struct audit_analysis a;

	(void)state;
	tg_init(&g, 3);
	audit_analyze(&g, &a);
	assert_int_equal(a.n_cycles, 0);
	assert_int_equal(a.n_chains, 0);
	for (int v = 0; v < 3; v++)
		assert_int_equal(a.reach[v].n, 0);
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
}

static void test_cycles_and_self_references(void **state)
{
	struct audit_graph g;
	struct audit_analysis a;

	(void)state;
	tg_init(&g, 7);
	tg_fk(&g, 0, 1, ACT_NO_ACTION); /* t0 <-> t1: a cycle of two */
	tg_fk(&g, 1, 0, ACT_NO_ACTION);
	tg_fk(&g, 2, 2, ACT_NO_ACTION); /* t2 -> t2: a self-reference */
	tg_fk(&g, 3, 4, ACT_NO_ACTION); /* t3 -> t4 -> t5 -> t3: a cycle of three, t6 hangs off it */
	tg_fk(&g, 4, 5, ACT_NO_ACTION);
	tg_fk(&g, 5, 3, ACT_NO_ACTION);
	tg_fk(&g, 6, 3, ACT_NO_ACTION);
	tg_fk(&g, 3, 3, ACT_NO_ACTION); /* a self-reference inside a cycle is that cycle */
	audit_analyze(&g, &a);
	assert_int_equal(a.n_cycles, 3);
	assert_string_equal(joined(&g, &a.cycles[0]), "t0 t1");
	assert_string_equal(joined(&g, &a.cycles[1]), "t2");
	assert_string_equal(joined(&g, &a.cycles[2]), "t3 t4 t5");
	assert_int_equal(a.scc[3], a.scc[5]);
	assert_int_not_equal(a.scc[6], a.scc[3]);
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
}

static void test_longest_chains(void **state)
{
	struct audit_graph g;
	struct audit_analysis a;

	(void)state;
	/* t0 -> t1 -> t2 -> t3 and t4 -> t5 -> t2 -> t3: two chains of 4; t6 -> t3 is shorter. */
	tg_init(&g, 7);
	tg_fk(&g, 0, 1, ACT_NO_ACTION);
	tg_fk(&g, 1, 2, ACT_NO_ACTION);
	tg_fk(&g, 2, 3, ACT_NO_ACTION);
	tg_fk(&g, 4, 5, ACT_NO_ACTION);
	tg_fk(&g, 5, 2, ACT_NO_ACTION);
	tg_fk(&g, 6, 3, ACT_NO_ACTION);
	audit_analyze(&g, &a);
	assert_int_equal(a.n_chains, 2);
	assert_string_equal(joined(&g, &a.chains[0]), "t0 t1 t2 t3");
	assert_string_equal(joined(&g, &a.chains[1]), "t4 t5 t2 t3");
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
}

static void test_chain_through_a_cycle(void **state)
{
	struct audit_graph g;
	struct audit_analysis a;

	(void)state;
	/* t0 -> t1 <-> t2 -> t3: the cycle's inner edge is left out, so no chain loops. */
	tg_init(&g, 4);
	tg_fk(&g, 0, 1, ACT_NO_ACTION);
	tg_fk(&g, 1, 2, ACT_NO_ACTION);
	tg_fk(&g, 2, 1, ACT_NO_ACTION);
	tg_fk(&g, 2, 3, ACT_NO_ACTION);
	audit_analyze(&g, &a);
	assert_int_equal(a.n_cycles, 1);
	assert_true(a.n_chains >= 1);
	assert_string_equal(joined(&g, &a.chains[0]), "t0 t1");
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
}

static void test_ten_thousand_in_a_row(void **state)
{
	enum { N = 10000 };
	struct audit_graph g;
	struct audit_analysis a;

	(void)state;
	tg_init(&g, N);
	for (int i = 0; i + 1 < N; i++)
		tg_fk(&g, i, i + 1, i < 2000 ? ACT_CASCADE : ACT_NO_ACTION);
	tg_fk(&g, N - 1, 0, ACT_NO_ACTION); /* closes one cycle of 10,000 */
	audit_analyze(&g, &a);
	assert_int_equal(a.n_cycles, 1);
	assert_int_equal(a.cycles[0].n, N);
	/* A delete on t2000 cascades through the 2,000 tables before it. */
	assert_int_equal(a.reach[2000].n, 2000);
	assert_int_equal(a.reach[N - 1].n, 0);
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);

	tg_init(&g, N);
	for (int i = 0; i + 1 < N; i++)
		tg_fk(&g, i, i + 1, ACT_NO_ACTION);
	audit_analyze(&g, &a);
	assert_int_equal(a.n_cycles, 0);
	assert_int_equal(a.n_chains, 1);
	assert_int_equal(a.chains[0].n, N);
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
}

static void test_cascade_reach(void **state)
{
	struct audit_graph g;
	struct audit_analysis a;

	(void)state;
	/* tenants(t0) <- orders(t1) <- items(t2) <- notes(t3), all cascading; t4 references t1 but restricts. */
	tg_init(&g, 5);
	for (int v = 0; v < 5; v++)
		g.tables[v].rows = 10 * (v + 1);
	tg_fk(&g, 1, 0, ACT_CASCADE);
	tg_fk(&g, 2, 1, ACT_CASCADE);
	tg_fk(&g, 3, 2, ACT_CASCADE);
	tg_fk(&g, 4, 1, ACT_RESTRICT);
	tg_fk(&g, 3, 3, ACT_CASCADE); /* a cascading self-reference reaches nothing new */
	audit_analyze(&g, &a);
	assert_string_equal(joined(&g, &a.reach[0]), "t1 t2 t3");
	assert_int_equal(a.reach_rows[0], 20 + 30 + 40);
	assert_string_equal(joined(&g, &a.reach[1]), "t2 t3");
	assert_int_equal(a.reach[3].n, 0);
	assert_int_equal(a.reach[4].n, 0);
	audit_analysis_free(&a, g.n_tables);
	audit_graph_free(&g);
}

static void test_impact_and_restrict(void **state)
{
	struct audit_graph g;
	bool seeds[6] = { 0 }, keep[6];

	(void)state;
	/* t0 -> t1 -> t2; t3 -> t1; t4 -> t0; t5 alone. --table t1: t0, t2, t3, t4 stay; t5 goes. */
	tg_init(&g, 6);
	tg_fk(&g, 0, 1, ACT_NO_ACTION);
	tg_fk(&g, 1, 2, ACT_NO_ACTION);
	tg_fk(&g, 3, 1, ACT_NO_ACTION);
	tg_fk(&g, 4, 0, ACT_NO_ACTION);
	tg_fk(&g, 5, 5, ACT_NO_ACTION);
	seeds[1] = true;
	audit_impact(&g, seeds, keep);
	assert_true(keep[0] && keep[1] && keep[2] && keep[3] && keep[4]);
	assert_false(keep[5]);
	/* --table t2: what reaches t2 is everything but t5; t2 reaches nothing. */
	memset(seeds, 0, sizeof(seeds));
	seeds[2] = true;
	audit_impact(&g, seeds, keep);
	assert_true(keep[0] && keep[1] && keep[2] && keep[3] && keep[4]);
	/* --table t3: t3 reaches t1 and t2; nothing reaches t3. */
	memset(seeds, 0, sizeof(seeds));
	seeds[3] = true;
	audit_impact(&g, seeds, keep);
	assert_true(keep[1] && keep[2] && keep[3]);
	assert_false(keep[0] || keep[4] || keep[5]);
	audit_graph_restrict(&g, keep);
	assert_int_equal(g.n_tables, 3);
	assert_string_equal(g.tables[0].name, "t1");
	assert_int_equal(g.n_fks, 2);
	assert_string_equal(g.tables[g.fks[0].from].name, "t1");
	assert_string_equal(g.tables[g.fks[0].to].name, "t2");
	assert_string_equal(g.tables[g.fks[1].from].name, "t3");
	assert_string_equal(g.tables[g.fks[1].to].name, "t1");
	audit_graph_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_edges),
		cmocka_unit_test(test_cycles_and_self_references),
		cmocka_unit_test(test_longest_chains),
		cmocka_unit_test(test_chain_through_a_cycle),
		cmocka_unit_test(test_ten_thousand_in_a_row),
		cmocka_unit_test(test_cascade_reach),
		cmocka_unit_test(test_impact_and_restrict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
