/*
 * Table latency in apply (see apply_latency.h). The keeper thread only talks
 * to the proxies (no output, no database): every KEEP_EVERY_MS it resolves
 * the fleet again, renews the observation on each proxy, and places it on a
 * proxy that does not know it (a replica that appeared, or one restarted).
 */
#include "apply_latency.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy_dns.h"
#include "proxyctl.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"
#include "pgvalve/admin_api.h"
#include "pgvalve/clock.h"

#define OBSERVE_LEASE_MS 30000 /* a dead coordinator's observation stops this long after */
#define KEEP_EVERY_MS 2000
#define REQUEST_TIMEOUT_MS 3000

/* Places the observation on 'n' proxies (POST; a 409 is an earlier run's of the same id); how many took it. */
static int place(const struct latency_obs *ob, struct proxy *const *p, int n)
{
	int status[OPTIONS_MAX_PROXIES], placed = 0;
	cJSON *docs[OPTIONS_MAX_PROXIES];

	proxy_request_all(p, n, "POST", ADMIN_PATH_OBSERVE, ob->body, REQUEST_TIMEOUT_MS, status, docs);
	for (int i = 0; i < n; i++) {
		placed += status[i] == 201 || status[i] == 409;
		cJSON_Delete(docs[i]);
	}
	return placed;
}

/* One round of the keeper: renew everywhere, place where the proxy does not know the id. */
static void keep(const struct latency_obs *ob)
{
	struct proxy_fleet f;
	struct proxy *missing[OPTIONS_MAX_PROXIES];
	int status[OPTIONS_MAX_PROXIES], n_missing = 0;
	cJSON *docs[OPTIONS_MAX_PROXIES], *body = cJSON_CreateObject();
	char path[256], err[256];

	if (!proxy_fleet_now(ob->o, &f, err, sizeof(err))) {
		cJSON_Delete(body);
		return; /* the next round resolves again; the lease covers a few misses */
	}
	cJSON_AddNumberToObject(body, ADMIN_OBSERVE_LEASE_MS, OBSERVE_LEASE_MS);
	snprintf(path, sizeof(path), ADMIN_PATH_OBSERVE_PREFIX "%s" ADMIN_PATH_RENEW_SUFFIX, ob->id);
	proxy_request_all(f.p, f.n, "POST", path, body, REQUEST_TIMEOUT_MS, status, docs);
	for (int i = 0; i < f.n; i++) {
		if (status[i] == 404)
			missing[n_missing++] = f.p[i];
		cJSON_Delete(docs[i]);
	}
	if (n_missing)
		(void)place(ob, missing, n_missing);
	cJSON_Delete(body);
	proxy_fleet_free(&f);
}

static void *keeper_run(void *arg)
{
	struct latency_obs *ob = arg;

	pthread_mutex_lock(&ob->mu);
	while (!ob->stop) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += KEEP_EVERY_MS / 1000;
		until.tv_nsec += (long)(KEEP_EVERY_MS % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		(void)pthread_cond_timedwait(&ob->wake, &ob->mu, &until);
		if (ob->stop)
			break;
		pthread_mutex_unlock(&ob->mu);
		keep(ob);
		pthread_mutex_lock(&ob->mu);
	}
	pthread_mutex_unlock(&ob->mu);
	return NULL;
}

/* "schema.table" or "table", as the hold bodies name tables (cutover.c). */
static void table_name(const struct qname *q, char *out, size_t cap)
{
	snprintf(out, cap, "%s%s%s", q->schema, q->schema[0] ? "." : "", q->name);
}

bool apply_latency_observe_start(struct latency_obs *ob, const struct options *o, int64_t migration_id,
				 const struct qname *tables, int n)
{
	struct proxy_fleet f;
	cJSON *arr;
	char err[512];
	int placed;

	memset(ob, 0, sizeof(*ob));
	ob->o = o;
	if (o->n_proxies == 0 && o->n_proxy_given == 0)
		return false;
	if (n == 0)
		return false;
	if (n > LATENCY_MAX_TABLES) {
		report_warning("more tables than a proxy observes at once: latency is measured for the first",
			       "64");
		n = LATENCY_MAX_TABLES;
	}
	/* The id names the migration, so a later run (recover) finds and renews what a killed one left. */
	snprintf(ob->id, sizeof(ob->id), "pgvalve-%lld-observe", (long long)migration_id);
	ob->body = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(ob->body, ADMIN_OBSERVE_TABLES);
	for (int i = 0; i < n; i++) {
		char name[LATENCY_TABLE_NAME_MAX];

		table_name(&tables[i], name, sizeof(name));
		cJSON_AddItemToArray(arr, cJSON_CreateString(name));
	}
	cJSON_AddNumberToObject(ob->body, ADMIN_OBSERVE_LEASE_MS, OBSERVE_LEASE_MS);
	cJSON_AddStringToObject(ob->body, ADMIN_OBSERVE_ID, ob->id);
	if (!proxy_fleet_now(o, &f, err, sizeof(err))) {
		report_warning("cannot find the proxies to observe table latency", err);
		f.n = 0;
	}
	placed = place(ob, f.p, f.n);
	if (placed < f.n)
		report_warning("a proxy did not start observing table latency: its numbers are missing",
			       ob->id);
	proxy_fleet_free(&f);
	ob->started_ms = clock_mono_ms();
	pthread_mutex_init(&ob->mu, NULL);
	pthread_cond_init(&ob->wake, NULL);
	ob->keeper_running = pthread_create(&ob->keeper, NULL, keeper_run, ob) == 0;
	if (!ob->keeper_running)
		report_warning("cannot start the thread that renews the latency observation",
			       "its lease may end it before the watch");
	return true;
}

void apply_latency_observe_stop(struct latency_obs *ob)
{
	struct proxy_fleet f;
	char path[256], err[256];

	if (!ob->body)
		return;
	if (ob->keeper_running) {
		pthread_mutex_lock(&ob->mu);
		ob->stop = true;
		pthread_cond_signal(&ob->wake);
		pthread_mutex_unlock(&ob->mu);
		pthread_join(ob->keeper, NULL);
		ob->keeper_running = false;
	}
	pthread_mutex_destroy(&ob->mu);
	pthread_cond_destroy(&ob->wake);
	if (proxy_fleet_now(ob->o, &f, err, sizeof(err))) {
		int status[OPTIONS_MAX_PROXIES];
		cJSON *docs[OPTIONS_MAX_PROXIES];

		/* Best effort: a proxy that does not answer stops it when the lease runs out. */
		snprintf(path, sizeof(path), ADMIN_PATH_OBSERVE_PREFIX "%s", ob->id);
		proxy_request_all(f.p, f.n, "DELETE", path, NULL, REQUEST_TIMEOUT_MS, status, docs);
		for (int i = 0; i < f.n; i++)
			cJSON_Delete(docs[i]);
		proxy_fleet_free(&f);
	}
	cJSON_Delete(ob->body);
	ob->body = NULL;
}

int apply_latency_observed_s(const struct latency_obs *ob)
{
	return ob->body ? (int)((clock_mono_ms() - ob->started_ms) / 1000) : 0;
}

/* Adds one proxy's answer for one kind ({count, max_ms, buckets: [[upper_us, count]...]}) into 'h'. */
static void merge_kind(struct latency_hist *h, const cJSON *kind)
{
	const cJSON *pair, *max = cJSON_GetObjectItemCaseSensitive(kind, ADMIN_LATENCY_MAX_MS);

	cJSON_ArrayForEach(pair, cJSON_GetObjectItemCaseSensitive(kind, ADMIN_LATENCY_BUCKETS))
	{
		const cJSON *up = cJSON_GetArrayItem(pair, 0), *count = cJSON_GetArrayItem(pair, 1);

		if (!cJSON_IsNumber(up) || !cJSON_IsNumber(count) || up->valuedouble < 1 ||
		    count->valuedouble < 0)
			continue; /* defensive: a proxy's answer we do not understand adds nothing */
		/* a bucket's upper edge is exclusive: its last value is upper - 1 */
		h->v[latency_hist_index((uint64_t)up->valuedouble - 1)] += (uint64_t)count->valuedouble;
		h->count += (uint64_t)count->valuedouble;
	}
	if (cJSON_IsNumber(max) && max->valuedouble * 1000.0 + 0.5 > (double)h->max_us)
		h->max_us = (uint64_t)(max->valuedouble * 1000.0 + 0.5);
}

bool apply_latency_read(const struct latency_obs *ob, int window_s, struct latency_reading *out, char *err,
			size_t errlen)
{
	const cJSON *tables = cJSON_GetObjectItemCaseSensitive(ob->body, ADMIN_OBSERVE_TABLES), *t;
	int status[OPTIONS_MAX_PROXIES];
	cJSON *docs[OPTIONS_MAX_PROXIES];
	struct proxy_fleet f;
	char path[128];

	memset(out, 0, sizeof(*out));
	if (window_s < 1)
		window_s = 1;
	if (window_s > ADMIN_LATENCY_MAX_WINDOW_S)
		window_s = ADMIN_LATENCY_MAX_WINDOW_S;
	out->window_s = window_s;
	out->t = xcalloc((size_t)cJSON_GetArraySize(tables) + 1, sizeof(*out->t));
	cJSON_ArrayForEach(t, tables)
	{
		snprintf(out->t[out->n++].name, LATENCY_TABLE_NAME_MAX, "%s", t->valuestring);
	}
	if (!proxy_fleet_now(ob->o, &f, err, errlen))
		return false;
	snprintf(path, sizeof(path),
		 ADMIN_PATH_LATENCY "?" ADMIN_LATENCY_WINDOW_S "=%d&" ADMIN_LATENCY_BUCKETS "=1", window_s);
	proxy_request_all(f.p, f.n, "GET", path, NULL, REQUEST_TIMEOUT_MS, status, docs);
	out->proxies = f.n;
	for (int i = 0; i < f.n; i++) {
		const cJSON *by_table = cJSON_GetObjectItemCaseSensitive(docs[i], ADMIN_LATENCY_TABLES);

		if (status[i] == 200 && cJSON_IsObject(by_table)) {
			out->answered++;
			for (int k = 0; k < out->n; k++) {
				const cJSON *kinds = cJSON_GetObjectItemCaseSensitive(by_table,
										      out->t[k].name);

				for (int kind = 0; kind < WATCH_LATENCY_KINDS; kind++)
					merge_kind(&out->t[k].h[kind],
						   cJSON_GetObjectItemCaseSensitive(
							   kinds,
							   watch_latency_kind_name(
								   (enum watch_latency_kind)kind)));
			}
		}
		cJSON_Delete(docs[i]);
	}
	proxy_fleet_free(&f);
	if (out->answered == 0) {
		snprintf(err, errlen, "no proxy answered GET /latency (of %d asked)", out->proxies);
		return false;
	}
	return true;
}

void apply_latency_reading_free(struct latency_reading *r)
{
	free(r->t);
	r->t = NULL;
	r->n = 0;
}

void apply_latency_summarize(const struct latency_hist *h, struct watch_latency *out)
{
	static const double q[3] = { 0.50, 0.95, 0.99 };

	out->count = (int64_t)h->count;
	for (int s = 0; s < 3; s++)
		out->us[s] = (int64_t)latency_hist_quantile_us(h, q[s]);
	out->us[WATCH_MAX] = h->count ? (int64_t)h->max_us : 0;
}

struct watch_latency_table *apply_latency_tables(const struct latency_reading *r)
{
	struct watch_latency_table *t = xcalloc((size_t)r->n + 1, sizeof(*t));

	for (int i = 0; i < r->n; i++) {
		t[i].name = r->t[i].name;
		for (int k = 0; k < WATCH_LATENCY_KINDS; k++)
			apply_latency_summarize(&r->t[i].h[k], &t[i].kind[k]);
	}
	return t;
}

/* {count, p50_ms, p95_ms, p99_ms, max_ms} (the stats null when nothing was measured). */
static cJSON *summary_json(const struct watch_latency *s)
{
	static const char *const keys[WATCH_LATENCY_STATS] = { "p50_ms", "p95_ms", "p99_ms", "max_ms" };
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "count", (double)s->count);
	for (int i = 0; i < WATCH_LATENCY_STATS; i++)
		cJSON_AddItemToObject(o, keys[i],
				      s->count ? cJSON_CreateNumber((double)s->us[i] / 1000.0)
					       : cJSON_CreateNull());
	return o;
}

cJSON *apply_latency_reading_json(const struct latency_reading *r)
{
	cJSON *doc = cJSON_CreateObject(), *tables;

	cJSON_AddNumberToObject(doc, "window_s", r->window_s);
	cJSON_AddNumberToObject(doc, "proxies", r->proxies);
	cJSON_AddNumberToObject(doc, "answered", r->answered);
	tables = cJSON_AddObjectToObject(doc, "tables");
	for (int i = 0; i < r->n; i++) {
		cJSON *t = cJSON_AddObjectToObject(tables, r->t[i].name);

		for (int k = 0; k < WATCH_LATENCY_KINDS; k++) {
			struct watch_latency s;

			apply_latency_summarize(&r->t[i].h[k], &s);
			cJSON_AddItemToObject(t, watch_latency_kind_name((enum watch_latency_kind)k),
					      summary_json(&s));
		}
	}
	return doc;
}

static void __attribute__((format(printf, 2, 3))) putf(struct strbuf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	strbuf_put(b, line);
}

/* "  12.30" ms, or "      -" when nothing was measured. */
static void put_ms(struct strbuf *b, const struct watch_latency *s, int stat)
{
	if (s->count)
		putf(b, " %8.2f", (double)s->us[stat] / 1000.0);
	else
		putf(b, " %8s", "-");
}

void apply_latency_side_by_side(const struct latency_reading *before, const struct latency_reading *after)
{
	cJSON *fields = cJSON_CreateObject();
	struct strbuf b = { 0 };
	char *text;

	cJSON_AddItemToObject(fields, "baseline",
			      before ? apply_latency_reading_json(before) : cJSON_CreateNull());
	cJSON_AddItemToObject(fields, "watch", apply_latency_reading_json(after));
	if (before)
		putf(&b,
		     "table latency (ms), merged over %d prox%s: baseline the last %d s before the cutover, "
		     "watch the last %d s\n",
		     after->answered, after->answered == 1 ? "y" : "ies", before->window_s, after->window_s);
	else
		putf(&b, "table latency (ms), merged over %d prox%s: no baseline, watch the last %d s\n",
		     after->answered, after->answered == 1 ? "y" : "ies", after->window_s);
	putf(&b, "  %-28s %-5s %9s %8s %8s %8s %8s | %9s %8s %8s %8s %8s | %8s %8s", "table", "kind",
	     "base n", "p50", "p95", "p99", "max", "watch n", "p50", "p95", "p99", "max", "+p50", "+p99");
	for (int i = 0; i < after->n; i++) {
		for (int k = 0; k < WATCH_LATENCY_KINDS; k++) {
			struct watch_latency w, base = { 0 };

			apply_latency_summarize(&after->t[i].h[k], &w);
			for (int j = 0; before && j < before->n; j++)
				if (strcmp(before->t[j].name, after->t[i].name) == 0)
					apply_latency_summarize(&before->t[j].h[k], &base);
			putf(&b, "\n  %-28s %-5s %9lld", after->t[i].name,
			     watch_latency_kind_name((enum watch_latency_kind)k), (long long)base.count);
			for (int s = 0; s < WATCH_LATENCY_STATS; s++)
				put_ms(&b, &base, s);
			putf(&b, " | %9lld", (long long)w.count);
			for (int s = 0; s < WATCH_LATENCY_STATS; s++)
				put_ms(&b, &w, s);
			putf(&b, " |");
			for (int s = WATCH_P50; s <= WATCH_P99; s += WATCH_P99 - WATCH_P50) {
				if (base.count && w.count)
					putf(&b, " %+8.2f", (double)(w.us[s] - base.us[s]) / 1000.0);
				else
					putf(&b, " %8s", "-");
			}
		}
	}
	text = strbuf_take(&b);
	report_event_text("latency", fields, text);
	free(text);
}
