/*
 * The watch phase of a migration (docs/architecture.md §4.2 step 5, §4.10):
 * the baseline just before the cutover (each affected table's latency, the
 * proxies' /errors), the watch after it against the rollback rules, and the
 * evidence it leaves for `pgvalve report`. The other phases are migrate.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apply_latency.h"
#include "evidence.h"
#include "migrate_internal.h"
#include "proxy_dns.h"
#include "proxyctl.h"
#include "report.h"
#include "watch_rules.h"
#include "pgvalve/clock.h"
#include "pgvalve/admin_api.h"

#define WATCH_POLL_S 1
#define ERRORS_TIMEOUT_MS 3000

/* ---- /errors from every proxy ---------------------------------------------- */

/*
 * The proxies' /errors over the last 'window_s', summed; NULL (reported) if a
 * proxy did not answer. The proxies are those of 'f' (proxy_fleet_now: a
 * dns:// name is resolved again each time, so a replica that appeared is read).
 */
static cJSON *errors_from(const struct proxy_fleet *f, int window_s)
{
	cJSON *answers[OPTIONS_MAX_PROXIES] = { 0 }, *sum = NULL;
	int status[OPTIONS_MAX_PROXIES];
	char path[64], err[512];
	bool all = true;

	snprintf(path, sizeof(path), ADMIN_PATH_ERRORS "?" ADMIN_ERRORS_WINDOW_S "=%d", window_s);
	proxy_request_all(f->p, f->n, "GET", path, NULL, ERRORS_TIMEOUT_MS, status, answers);
	for (int i = 0; i < f->n && all; i++) {
		if (status[i] != 200) {
			report_warning("a proxy did not answer GET /errors", f->p[i]->url);
			all = false;
		}
	}
	if (all) {
		sum = watch_errors_sum((const cJSON *const *)answers, f->n, err, sizeof(err));
		if (!sum)
			report_warning("cannot read the proxies' error counts", err);
	}
	for (int i = 0; i < f->n; i++)
		cJSON_Delete(answers[i]);
	return sum;
}

/* errors_from() the proxies as of now. */
static cJSON *errors_now(const struct options *o, int window_s)
{
	struct proxy_fleet f;
	char err[512];
	cJSON *sum;

	if (!proxy_fleet_now(o, &f, err, sizeof(err))) {
		report_warning("cannot find the proxies", err);
		return NULL;
	}
	sum = errors_from(&f, window_s);
	proxy_fleet_free(&f);
	return sum;
}

/* ---- the baseline ------------------------------------------------------------ */

/* The baseline's length: --baseline, or 60 s but never longer than the watch (options.h). */
static int baseline_s(const struct options *o)
{
	if (o->baseline_s >= 0)
		return o->baseline_s;
	return o->watch_s < OPTIONS_BASELINE_DEFAULT_S ? o->watch_s : OPTIONS_BASELINE_DEFAULT_S;
}

/* Seconds of baseline so far: observed, and since the preparation ended. */
static int baseline_have_s(const struct migration *a)
{
	int observed = apply_latency_observed_s(&a->obs);
	int quiet = (int)((clock_mono_ms() - a->quiet_since_ms) / 1000);

	return quiet < observed ? quiet : observed;
}

/*
 * Just before the cutover: each affected table's latency over the last
 * baseline_s() seconds. Not while the preparation ran (index builds load the
 * tables and would make the baseline look slow), but the wait for a window
 * or for `pgvalve cutover` counts: only what is left is waited for here,
 * with a progress line.
 */
static void measure_baseline(struct migration *a)
{
	int want = baseline_s(a->o), have = baseline_have_s(a);
	struct latency_reading r;
	char err[512];

	if (want == 0 || !a->obs.body)
		return;
	if (have < want) {
		cJSON *fields = cJSON_CreateObject();

		cJSON_AddNumberToObject(fields, "baseline_s", want);
		cJSON_AddNumberToObject(fields, "observed_s", have);
		report_event(
			"baseline", fields,
			"measuring each affected table's latency for a baseline: %d s before the cutover "
			"(%d s since the preparation so far; --baseline 0 skips it)",
			want, have);
		while ((have = baseline_have_s(a)) < want) {
			report_progress("baseline: %d of %d s", have, want);
			sleep(1);
		}
		report_progress_done();
	}
	if (!apply_latency_read(&a->obs, want, &r, err, sizeof(err))) {
		report_warning("cannot read the baseline latency", err);
		apply_latency_reading_free(&r);
		return;
	}
	apply_latency_reading_free(&a->baseline_lat);
	a->baseline_lat = r;
	report_event("baseline_latency", apply_latency_reading_json(&r),
		     "baseline latency measured over the last %d s on %d of %d prox%s", r.window_s,
		     r.answered, r.proxies, r.proxies == 1 ? "y" : "ies");
	evidence_latency(a->ddl, a->id, "baseline", &r);
}

/* The baseline latency, and the /errors the watch compares with (migrate_internal.h). */
void migrate_watch_baseline(struct migration *a)
{
	measure_baseline(a);
	a->baseline = errors_now(a->o, WATCH_BASELINE_S);
}

/* ---- the watch --------------------------------------------------------------- */

/* Says so when the proxies the watch reads are not those of the last round (a dns:// name changed). */
static void note_fleet(struct migration *a, const struct proxy_fleet *f)
{
	char list[sizeof(a->fleet_seen)];
	size_t len = 0;
	cJSON *fields, *urls;

	list[0] = '\0';
	for (int i = 0; i < f->n && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", f->p[i]->url);
	if (strcmp(list, a->fleet_seen) == 0)
		return;
	if (a->fleet_seen[0]) {
		fields = cJSON_CreateObject();
		urls = cJSON_AddArrayToObject(fields, "proxies");
		for (int i = 0; i < f->n; i++)
			cJSON_AddItemToArray(urls, cJSON_CreateString(f->p[i]->url));
		report_event("watch_proxies", fields, "watch: now reading %d prox%s (%s)", f->n,
			     f->n == 1 ? "y" : "ies", list);
	}
	snprintf(a->fleet_seen, sizeof(a->fleet_seen), "%s", list);
}

/* The latency rules' verdict this round (WATCH_OK when there are none, or nothing is observed). */
static enum watch_result watch_latency(struct migration *a, char *why, size_t cap)
{
	int spans[WATCH_MAX_SPANS], n = watch_latency_spans(a->rules, a->n_rules, spans);
	struct latency_reading readings[WATCH_MAX_SPANS];
	struct watch_latency_table *tables[WATCH_MAX_SPANS] = { 0 }, *base;
	struct watch_latency_span in_spans[WATCH_MAX_SPANS];
	struct watch_latency_input in = { .spans = in_spans };
	enum watch_result wr = WATCH_NO_DATA;
	char err[512];
	int read = 0;

	why[0] = '\0';
	if (n == 0 || !a->obs.body)
		return WATCH_OK;
	for (read = 0; read < n; read++) {
		if (!apply_latency_read(&a->obs, spans[read], &readings[read], err, sizeof(err))) {
			apply_latency_reading_free(&readings[read]);
			break;
		}
		tables[read] = apply_latency_tables(&readings[read]);
		in_spans[read] = (struct watch_latency_span){ spans[read], tables[read], readings[read].n };
	}
	base = apply_latency_tables(&a->baseline_lat);
	in.baseline = base;
	in.n_baseline = a->baseline_lat.n;
	in.n_spans = read;
	if (read == n)
		wr = watch_latency_evaluate(a->rules, a->n_rules, &in, why, cap);
	free(base);
	for (int i = 0; i < read; i++) {
		free(tables[i]);
		apply_latency_reading_free(&readings[i]);
	}
	return wr;
}

/* Watches the proxies' error counts and latency until watch_s after the cutover; 'why' filled when a rule trips. */
bool migrate_watch(struct migration *a, char *why, size_t cap)
{
	const char *names[256];
	int n_names = 0;

	why[0] = '\0';
	if (a->o->watch_s == 0)
		return true;
	if (a->o->n_proxies == 0) {
		report_warning("no --proxy: nothing to watch, so no automatic rollback on client errors",
			       NULL);
		return true;
	}
	for (int i = 0; i < a->p.n_constraints && n_names < 256; i++)
		names[n_names++] = a->p.constraints[i].name;
	if (!migrate_set_state(a, MIG_WATCHING, NULL))
		return true;
	report_event("watching", NULL, "watching client errors%s for %d s",
		     watch_rules_latency(a->rules, a->n_rules) ? " and table latency" : "", a->o->watch_s);
	for (;;) {
		time_t now = time(NULL);
		int elapsed = (int)(now - a->cutover_at), spans[WATCH_MAX_SPANS], n_spans;
		cJSON *answers[WATCH_MAX_SPANS] = { 0 };
		/* The proxies count whole wall-clock seconds: the cutover's own second is included. */
		struct watch_input in = { .elapsed_s = watch_elapsed_s(a->cutover_at, now),
					  .new_constraints = names,
					  .n_new_constraints = n_names,
					  .baseline = a->baseline };
		enum watch_result wr = WATCH_NO_DATA;
		struct proxy_fleet f;
		char err[512];

		if (elapsed >= a->o->watch_s)
			return true;
		/* dns:// names again each round: a replica that became ready is read too (proxy_dns.h) */
		if (!proxy_fleet_now(a->o, &f, err, sizeof(err))) {
			report_warning("cannot find the proxies", err);
			f.n = 0;
		}
		note_fleet(a, &f);
		n_spans = watch_spans(a->rules, a->n_rules, in.elapsed_s, spans);
		for (int i = 0; i < n_spans && f.n; i++)
			answers[i] = errors_from(&f, spans[i]);
		proxy_fleet_free(&f);
		in.answers = (const cJSON *const *)answers;
		in.n_answers = n_spans;
		wr = watch_evaluate(a->rules, a->n_rules, &in, why, cap);
		for (int i = 0; i < n_spans; i++)
			cJSON_Delete(answers[i]);
		if (wr == WATCH_TRIPPED)
			return false;
		if (watch_latency(a, why, cap) == WATCH_TRIPPED)
			return false;
		report_progress("watching: %d of %d s, no rule tripped", elapsed, a->o->watch_s);
		sleep(WATCH_POLL_S);
	}
}

/*
 * After the watch (before a rollback, so its holds are not in the numbers):
 * each affected table's latency since the cutover beside the baseline, shown
 * and recorded for `pgvalve report`.
 */
void migrate_watch_record_latency(struct migration *a)
{
	struct latency_reading r;
	char err[512];

	if (!a->obs.body || a->o->watch_s == 0 || a->cutover_at == 0)
		return;
	if (!apply_latency_read(&a->obs, watch_elapsed_s(a->cutover_at, time(NULL)), &r, err, sizeof(err))) {
		report_warning("cannot read the table latency of the watch", err);
		apply_latency_reading_free(&r);
		return;
	}
	apply_latency_side_by_side(a->baseline_lat.n ? &a->baseline_lat : NULL, &r);
	evidence_latency(a->ddl, a->id, "watch", &r);
	apply_latency_reading_free(&r);
}

/* The client errors the proxies counted since the cutover, for `pgvalve report` (evidence.h). */
void migrate_watch_record_errors(struct migration *a)
{
	int window_s;
	cJSON *errors;

	if (a->o->n_proxies == 0 || a->o->watch_s == 0 || a->cutover_at == 0)
		return;
	window_s = watch_elapsed_s(a->cutover_at, time(NULL));
	if (window_s > WATCH_MAX_SPAN_S)
		window_s = WATCH_MAX_SPAN_S;
	errors = errors_now(a->o, window_s);
	evidence_watch_errors(a->ddl, a->id, window_s, errors);
	cJSON_Delete(errors);
}
