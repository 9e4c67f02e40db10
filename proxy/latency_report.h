/*
 * Reading table latency out (docs/architecture.md, table latency): a report
 * job on every worker, the histograms merged, rendered as GET /latency's JSON
 * or as /metrics' pgvalve_table_latency_seconds histogram. Main thread only.
 */
#ifndef PGVALVE_PROXY_LATENCY_REPORT_H
#define PGVALVE_PROXY_LATENCY_REPORT_H

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * GET /latency's answer over the last 'window_s' seconds, for 'tables' (n of
 * them; n 0: every observed table), with each kind's non-empty buckets when
 * 'buckets'. NULL with 'err' filled when a table asked for is not observed
 * (a 404).
 */
cJSON *latency_report_json(int window_s, const char *const *tables, int n, bool buckets, char *err,
			   size_t errlen);

/* Appends the pgvalve_table_latency_seconds histogram (since each table became observed). */
void latency_report_metrics(struct evbuffer *out);

#endif
