/*
 * Table latency read out (see latency_report.h). Every worker's histograms
 * follow the set observe_registry.c published, in its order, so merging is
 * adding them index by index.
 */
#include "latency_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latency.h"
#include "observe_registry.h"
#include "prom_text.h"
#include "pgvalve/admin_api.h"
#include "pgvalve/latency_hist.h"
#include "runtime.h"
#include "worker.h"

static struct latency_hist *hist_array(size_t n)
{
	struct latency_hist *h = calloc(n, sizeof(*h));

	if (!h)
		abort(); /* defensive: a fan-out's slots die the same way (worker_slots) */
	return h;
}

/* The merged histograms of every worker, [table * KINDS + kind] of *set; NULL when nothing is observed. */
static struct latency_hist *collect(int window_s, const struct observe_set **set_out)
{
	const struct observe_set *set = observe_registry_set();
	struct latency_report *r;
	struct latency_hist *sum;
	size_t n;

	*set_out = set;
	if (!set)
		return NULL;
	n = (size_t)set->n * ADMIN_LATENCY_KINDS;
	r = worker_slots(sizeof(*r));
	sum = hist_array(n);
	for (int i = 0; i < rt.n_workers; i++) {
		r[i].window_s = window_s;
		r[i].h = hist_array(n);
	}
	WORKER_FANOUT(latency_report_job, r);
	for (int i = 0; i < rt.n_workers; i++) {
		/* A worker that could not take the set (out of memory) has recorded nothing. */
		for (size_t k = 0; r[i].set == set && k < n; k++)
			latency_hist_add(&sum[k], &r[i].h[k]);
		free(r[i].h);
	}
	free(r);
	return sum;
}

static cJSON *ms_or_null(uint64_t us, bool any)
{
	return any ? cJSON_CreateNumber((double)us / 1000.0) : cJSON_CreateNull();
}

static cJSON *describe_kind(const struct latency_hist *h, bool buckets)
{
	static const double q[ADMIN_LATENCY_STATS] = { 0.50, 0.95, 0.99 };
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, ADMIN_LATENCY_COUNT, (double)h->count);
	for (int s = 0; s < ADMIN_LATENCY_STATS; s++)
		cJSON_AddItemToObject(o, admin_latency_stats[s],
				      ms_or_null(latency_hist_quantile_us(h, q[s]), h->count > 0));
	cJSON_AddItemToObject(o, ADMIN_LATENCY_MAX_MS, ms_or_null(h->max_us, h->count > 0));
	if (buckets) {
		cJSON *arr = cJSON_AddArrayToObject(o, ADMIN_LATENCY_BUCKETS);

		for (int i = 0; i < LATENCY_HIST_BUCKETS; i++) {
			cJSON *pair;

			if (!h->v[i])
				continue;
			pair = cJSON_CreateArray();
			cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)latency_hist_upper_us(i)));
			cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)h->v[i]));
			cJSON_AddItemToArray(arr, pair);
		}
	}
	return o;
}

cJSON *latency_report_json(int window_s, const char *const *tables, int n, bool buckets, char *err,
			   size_t errlen)
{
	const struct observe_set *set = observe_registry_set();
	struct latency_hist *h;
	cJSON *doc, *out;

	for (int i = 0; i < n; i++) {
		if (observe_set_find(set, tables[i]) < 0) {
			snprintf(err, errlen,
				 "table \"%.128s\" is not observed (POST " ADMIN_PATH_OBSERVE
				 " first, naming it as here)",
				 tables[i]);
			return NULL;
		}
	}
	h = collect(window_s, &set);
	doc = cJSON_CreateObject();
	cJSON_AddNumberToObject(doc, ADMIN_LATENCY_WINDOW_S, window_s);
	out = cJSON_AddObjectToObject(doc, ADMIN_LATENCY_TABLES);
	for (int t = 0; set && t < set->n; t++) {
		cJSON *o;
		bool wanted = n == 0;

		for (int i = 0; i < n && !wanted; i++)
			wanted = strcmp(tables[i], set->tables[t].name) == 0;
		if (!wanted)
			continue;
		o = cJSON_AddObjectToObject(out, set->tables[t].name);
		for (int k = 0; k < ADMIN_LATENCY_KINDS; k++)
			cJSON_AddItemToObject(o, admin_latency_kinds[k],
					      describe_kind(&h[t * ADMIN_LATENCY_KINDS + k], buckets));
	}
	free(h);
	return doc;
}

void latency_report_metrics(struct evbuffer *out)
{
	const struct observe_set *set;
	struct latency_hist *h = collect(0, &set);

	evbuffer_add_printf(out,
			    "# HELP pgvalve_table_latency_seconds Units of work touching an observed "
			    "table, from their first byte to the server's ReadyForQuery\n"
			    "# TYPE pgvalve_table_latency_seconds histogram\n");
	for (int t = 0; set && t < set->n; t++) {
		char table[2 * HOLD_TABLE_NAME_MAX + 1];

		prom_label_value(table, sizeof(table), set->tables[t].name);
		for (int k = 0; k < ADMIN_LATENCY_KINDS; k++) {
			const struct latency_hist *kh = &h[t * ADMIN_LATENCY_KINDS + k];
			uint64_t le[LATENCY_HIST_LE_N + 1] = { 0 }, cum = 0;
			const char *kind = admin_latency_kinds[k];

			for (int i = 0; i < LATENCY_HIST_BUCKETS; i++)
				le[latency_hist_le_of(i)] += kh->v[i];
			for (int b = 0; b < LATENCY_HIST_LE_N; b++) {
				cum += le[b];
				evbuffer_add_printf(out,
						    "pgvalve_table_latency_seconds_bucket{table=\"%s\",kind="
						    "\"%s\",le=\"%g\"} %llu\n",
						    table, kind, (double)latency_hist_le_us[b] / 1e6,
						    (unsigned long long)cum);
			}
			evbuffer_add_printf(
				out,
				"pgvalve_table_latency_seconds_bucket{table=\"%s\",kind=\"%s\",le=\"+Inf\"} "
				"%llu\n",
				table, kind, (unsigned long long)kh->count);
			evbuffer_add_printf(
				out, "pgvalve_table_latency_seconds_sum{table=\"%s\",kind=\"%s\"} %.6f\n",
				table, kind, (double)kh->sum_us / 1e6);
			evbuffer_add_printf(
				out, "pgvalve_table_latency_seconds_count{table=\"%s\",kind=\"%s\"} %llu\n",
				table, kind, (unsigned long long)kh->count);
		}
	}
	free(h);
}
