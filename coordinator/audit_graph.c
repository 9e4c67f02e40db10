/*
 * The graph algorithms of pgvalve audit (see audit.h): strongly connected
 * components (Tarjan, iterative so 10,000 tables in one chain do not
 * overflow the stack), the longest dependency chains, what ON DELETE
 * CASCADE from each table reaches, and impact restriction for --table.
 * Pure functions of the graph: no database, no output.
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "xalloc.h"

const char *audit_action_name(enum audit_action a)
{
	switch (a) {
	case ACT_RESTRICT:
		return "restrict";
	case ACT_CASCADE:
		return "cascade";
	case ACT_SET_NULL:
		return "set null";
	case ACT_SET_DEFAULT:
		return "set default";
	case ACT_NO_ACTION:
		break;
	}
	return "no action";
}

const char *audit_action_sql(enum audit_action a)
{
	switch (a) {
	case ACT_RESTRICT:
		return "RESTRICT";
	case ACT_CASCADE:
		return "CASCADE";
	case ACT_SET_NULL:
		return "SET NULL";
	case ACT_SET_DEFAULT:
		return "SET DEFAULT";
	case ACT_NO_ACTION:
		break;
	}
	return "NO ACTION";
}

/* Adjacency in compressed rows: the edges of table v are e[start[v] .. start[v + 1]). */
struct adj {
	int *start;
	int *e; /* the other table */
};

enum adj_dir {
	ADJ_REFERENCES, /* from -> to: the tables a table references */
	ADJ_REFERENCED, /* to -> from: the tables that reference a table */
	ADJ_CASCADES,   /* to -> from, ON DELETE CASCADE only: where a delete goes */
};

static bool edge_in(const struct audit_fk *fk, enum adj_dir dir)
{
	return dir != ADJ_CASCADES || fk->on_delete == ACT_CASCADE;
}

static void adj_build(const struct audit_graph *g, enum adj_dir dir, struct adj *a)
{
	int *fill;

	a->start = xcalloc((size_t)g->n_tables + 1, sizeof(int));
	a->e = xcalloc((size_t)g->n_fks + 1, sizeof(int));
	for (int i = 0; i < g->n_fks; i++)
		if (edge_in(&g->fks[i], dir))
			a->start[(dir == ADJ_REFERENCES ? g->fks[i].from : g->fks[i].to) + 1]++;
	for (int v = 0; v < g->n_tables; v++)
		a->start[v + 1] += a->start[v];
	fill = xcalloc((size_t)g->n_tables + 1, sizeof(int));
	memcpy(fill, a->start, sizeof(int) * (size_t)g->n_tables);
	for (int i = 0; i < g->n_fks; i++) {
		const struct audit_fk *fk = &g->fks[i];

		if (!edge_in(fk, dir))
			continue;
		if (dir == ADJ_REFERENCES)
			a->e[fill[fk->from]++] = fk->to;
		else
			a->e[fill[fk->to]++] = fk->from;
	}
	free(fill);
}

static void adj_free(struct adj *a)
{
	free(a->start);
	free(a->e);
}

/*
 * Tarjan's algorithm with an explicit stack. Components are numbered in the
 * order they complete, which is a reverse topological order: every
 * component a table's edges lead to has a smaller number.
 */
static int tarjan(int n, const struct adj *a, int *comp)
{
	int *index = xmalloc(sizeof(int) * (size_t)(n + 1)), *low = xmalloc(sizeof(int) * (size_t)(n + 1));
	int *stack = xmalloc(sizeof(int) * (size_t)(n + 1)), *call = xmalloc(sizeof(int) * (size_t)(n + 1));
	int *next_edge = xmalloc(sizeof(int) * (size_t)(n + 1));
	bool *on_stack = xcalloc((size_t)n + 1, sizeof(bool));
	int counter = 0, sp = 0, n_comp = 0;

	for (int v = 0; v < n; v++)
		index[v] = -1;
	for (int root = 0; root < n; root++) {
		int depth = 0;

		if (index[root] >= 0)
			continue;
		call[depth++] = root;
		index[root] = low[root] = counter++;
		next_edge[root] = a->start[root];
		stack[sp++] = root;
		on_stack[root] = true;
		while (depth > 0) {
			int v = call[depth - 1];

			if (next_edge[v] < a->start[v + 1]) {
				int w = a->e[next_edge[v]++];

				if (index[w] < 0) {
					index[w] = low[w] = counter++;
					next_edge[w] = a->start[w];
					stack[sp++] = w;
					on_stack[w] = true;
					call[depth++] = w;
				} else if (on_stack[w] && index[w] < low[v]) {
					low[v] = index[w];
				}
				continue;
			}
			/* v is done: close its component if it is a root, then return to the caller. */
			if (low[v] == index[v]) {
				int w;

				do {
					w = stack[--sp];
					on_stack[w] = false;
					comp[w] = n_comp;
				} while (w != v);
				n_comp++;
			}
			depth--;
			if (depth > 0 && low[v] < low[call[depth - 1]])
				low[call[depth - 1]] = low[v];
		}
	}
	free(index);
	free(low);
	free(stack);
	free(call);
	free(next_edge);
	free(on_stack);
	return n_comp;
}

static void list_push(struct audit_list *l, int *cap, int v)
{
	if (l->n == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		l->v = xrealloc(l->v, sizeof(int) * (size_t)*cap);
	}
	l->v[l->n++] = v;
}

static void find_cycles(const struct audit_graph *g, struct audit_analysis *a, int n_comp)
{
	int *size = xcalloc((size_t)n_comp + 1, sizeof(int));
	bool *self = xcalloc((size_t)g->n_tables + 1, sizeof(bool));
	int *slot = xmalloc(sizeof(int) * ((size_t)n_comp + 1));
	int *caps;

	for (int v = 0; v < g->n_tables; v++)
		size[a->scc[v]]++;
	for (int i = 0; i < g->n_fks; i++)
		if (g->fks[i].from == g->fks[i].to)
			self[g->fks[i].from] = true;
	/* One cycle per component of two or more, and one per self-referencing table, in table order. */
	a->cycles = xcalloc((size_t)g->n_tables + 1, sizeof(struct audit_list));
	caps = xcalloc((size_t)g->n_tables + 1, sizeof(int));
	for (int c = 0; c < n_comp; c++)
		slot[c] = -1;
	for (int v = 0; v < g->n_tables; v++) {
		int c = a->scc[v];

		if (size[c] >= 2) {
			if (slot[c] < 0)
				slot[c] = a->n_cycles++;
			list_push(&a->cycles[slot[c]], &caps[slot[c]], v);
		} else if (self[v]) {
			list_push(&a->cycles[a->n_cycles], &caps[a->n_cycles], v);
			a->n_cycles++;
		}
	}
	free(caps);
	free(slot);
	free(size);
	free(self);
}

/*
 * The longest chains of tables each referencing the next, over the graph
 * with every cycle's inner edges left out (a cycle has no longest path).
 * Only chains of the greatest length (two tables or more), at most
 * AUDIT_MAX_CHAINS, from distinct starting tables in table order.
 */
static void find_chains(const struct audit_graph *g, const struct adj *refs, struct audit_analysis *a,
			int n_comp)
{
	int n = g->n_tables, best = 0;
	int *len = xcalloc((size_t)n + 1, sizeof(int)), *next = xmalloc(sizeof(int) * ((size_t)n + 1));
	int *order = xmalloc(sizeof(int) * ((size_t)n + 1)),
	    *count = xcalloc((size_t)n_comp + 2, sizeof(int));

	/* Tables ordered by component number: every table's successors come before it. */
	for (int v = 0; v < n; v++)
		count[a->scc[v] + 1]++;
	for (int c = 0; c < n_comp; c++)
		count[c + 1] += count[c];
	for (int v = 0; v < n; v++)
		order[count[a->scc[v]]++] = v;
	for (int i = 0; i < n; i++) {
		int v = order[i];

		len[v] = 1;
		next[v] = -1;
		for (int k = refs->start[v]; k < refs->start[v + 1]; k++) {
			int w = refs->e[k];

			if (a->scc[w] == a->scc[v])
				continue;
			if (len[w] + 1 > len[v] || (len[w] + 1 == len[v] && w < next[v])) {
				len[v] = len[w] + 1;
				next[v] = w;
			}
		}
		if (len[v] > best)
			best = len[v];
	}
	a->chains = xcalloc(AUDIT_MAX_CHAINS, sizeof(struct audit_list));
	for (int v = 0; best >= 2 && v < n && a->n_chains < AUDIT_MAX_CHAINS; v++) {
		struct audit_list *l = &a->chains[a->n_chains];

		if (len[v] != best)
			continue;
		l->v = xmalloc(sizeof(int) * (size_t)len[v]);
		for (int w = v; w >= 0; w = next[w])
			l->v[l->n++] = w;
		a->n_chains++;
	}
	free(len);
	free(next);
	free(order);
	free(count);
}

/* Breadth-first from 'root' over 'a', not listing 'root' itself; 'seen' is scratch (all false). */
static void bfs(int root, const struct adj *a, bool *seen, struct audit_list *out, int **queue_scratch)
{
	int *queue = *queue_scratch, head = 0, tail = 0;

	seen[root] = true;
	queue[tail++] = root;
	while (head < tail) {
		int v = queue[head++];

		for (int k = a->start[v]; k < a->start[v + 1]; k++) {
			int w = a->e[k];

			if (!seen[w]) {
				seen[w] = true;
				queue[tail++] = w;
			}
		}
	}
	out->n = tail - 1;
	out->v = NULL;
	if (out->n > 0) {
		out->v = xmalloc(sizeof(int) * (size_t)out->n);
		memcpy(out->v, queue + 1, sizeof(int) * (size_t)out->n);
	}
	for (int i = 0; i < tail; i++)
		seen[queue[i]] = false;
}

static void find_reach(const struct audit_graph *g, struct audit_analysis *a)
{
	struct adj casc;
	bool *seen = xcalloc((size_t)g->n_tables + 1, sizeof(bool));
	int *queue = xmalloc(sizeof(int) * ((size_t)g->n_tables + 1));

	adj_build(g, ADJ_CASCADES, &casc);
	a->reach = xcalloc((size_t)g->n_tables + 1, sizeof(struct audit_list));
	a->reach_rows = xcalloc((size_t)g->n_tables + 1, sizeof(long long));
	for (int v = 0; v < g->n_tables; v++) {
		if (casc.start[v] == casc.start[v + 1])
			continue;
		bfs(v, &casc, seen, &a->reach[v], &queue);
		for (int i = 0; i < a->reach[v].n; i++)
			a->reach_rows[v] += g->tables[a->reach[v].v[i]].rows;
	}
	free(seen);
	free(queue);
	adj_free(&casc);
}

void audit_analyze(const struct audit_graph *g, struct audit_analysis *a)
{
	struct adj refs;
	int n_comp;

	memset(a, 0, sizeof(*a));
	adj_build(g, ADJ_REFERENCES, &refs);
	a->scc = xcalloc((size_t)g->n_tables + 1, sizeof(int));
	n_comp = tarjan(g->n_tables, &refs, a->scc);
	find_cycles(g, a, n_comp);
	find_chains(g, &refs, a, n_comp);
	find_reach(g, a);
	adj_free(&refs);
}

void audit_analysis_free(struct audit_analysis *a, int n_tables)
{
	for (int i = 0; i < a->n_cycles; i++)
		free(a->cycles[i].v);
	for (int i = 0; i < a->n_chains; i++)
		free(a->chains[i].v);
	for (int i = 0; a->reach && i < n_tables; i++)
		free(a->reach[i].v);
	free(a->cycles);
	free(a->chains);
	free(a->reach);
	free(a->reach_rows);
	free(a->scc);
	memset(a, 0, sizeof(*a));
}

void audit_impact(const struct audit_graph *g, const bool *seeds, bool *keep)
{
	enum adj_dir dirs[2] = { ADJ_REFERENCES, ADJ_REFERENCED };
	int *queue = xmalloc(sizeof(int) * ((size_t)g->n_tables + 1));
	bool *seen = xmalloc(sizeof(bool) * ((size_t)g->n_tables + 1));

	memset(keep, 0, sizeof(bool) * (size_t)g->n_tables);
	for (int d = 0; d < 2; d++) {
		struct adj a;
		int head = 0, tail = 0;

		adj_build(g, dirs[d], &a);
		for (int v = 0; v < g->n_tables; v++) {
			seen[v] = seeds[v];
			if (seeds[v])
				queue[tail++] = v;
		}
		while (head < tail) {
			int v = queue[head++];

			keep[v] = true;
			for (int k = a.start[v]; k < a.start[v + 1]; k++)
				if (!seen[a.e[k]]) {
					seen[a.e[k]] = true;
					queue[tail++] = a.e[k];
				}
		}
		adj_free(&a);
	}
	free(queue);
	free(seen);
}

static void fk_free(struct audit_fk *fk)
{
	for (int k = 0; k < fk->n_columns; k++) {
		free(fk->columns[k]);
		free(fk->ref_columns[k]);
		free(fk->types[k]);
		free(fk->ref_types[k]);
	}
	free(fk->columns);
	free(fk->ref_columns);
	free(fk->types);
	free(fk->ref_types);
	free(fk->name);
}

static void table_free(struct audit_table *t)
{
	free(t->schema);
	free(t->name);
	free(t->display);
	free(t->pk_type);
}

void audit_graph_restrict(struct audit_graph *g, const bool *keep)
{
	int *renum = xmalloc(sizeof(int) * ((size_t)g->n_tables + 1)), n = 0, m = 0;

	for (int v = 0; v < g->n_tables; v++) {
		if (!keep[v]) {
			renum[v] = -1;
			table_free(&g->tables[v]);
			continue;
		}
		renum[v] = n;
		g->tables[n++] = g->tables[v];
	}
	for (int i = 0; i < g->n_fks; i++) {
		struct audit_fk *fk = &g->fks[i];

		if (renum[fk->from] < 0 || renum[fk->to] < 0) {
			fk_free(fk);
			continue;
		}
		fk->from = renum[fk->from];
		fk->to = renum[fk->to];
		g->fks[m++] = *fk;
	}
	g->n_tables = n;
	g->n_fks = m;
	/* Keys and columns of removed tables go too (suggestions stay within the kept tables). */
	n = 0;
	for (int i = 0; i < g->n_keys; i++) {
		if (renum[g->keys[i].table] < 0) {
			free(g->keys[i].column);
			free(g->keys[i].type);
			continue;
		}
		g->keys[i].table = renum[g->keys[i].table];
		g->keys[n++] = g->keys[i];
	}
	g->n_keys = n;
	n = 0;
	for (int i = 0; i < g->n_columns; i++) {
		if (renum[g->columns[i].table] < 0) {
			free(g->columns[i].name);
			free(g->columns[i].type);
			continue;
		}
		g->columns[i].table = renum[g->columns[i].table];
		g->columns[n++] = g->columns[i];
	}
	g->n_columns = n;
	free(renum);
}

void audit_graph_free(struct audit_graph *g)
{
	for (int v = 0; v < g->n_tables; v++)
		table_free(&g->tables[v]);
	for (int i = 0; i < g->n_fks; i++)
		fk_free(&g->fks[i]);
	for (int i = 0; i < g->n_keys; i++) {
		free(g->keys[i].column);
		free(g->keys[i].type);
	}
	for (int i = 0; i < g->n_columns; i++) {
		free(g->columns[i].name);
		free(g->columns[i].type);
	}
	for (int i = 0; i < g->n_constraint_names; i++)
		free(g->constraint_names[i]);
	free(g->tables);
	free(g->fks);
	free(g->keys);
	free(g->columns);
	for (int i = 0; i < g->n_unreadable; i++)
		free(g->unreadable[i]);
	free(g->constraint_names);
	free(g->unreadable);
	memset(g, 0, sizeof(*g));
}
