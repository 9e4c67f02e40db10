/*
 * Prometheus text exposition helpers shared by /metrics' writers (admin.c,
 * latency_report.c).
 */
#ifndef PGVALVE_PROXY_PROM_TEXT_H
#define PGVALVE_PROXY_PROM_TEXT_H

#include <stddef.h>

/*
 * 'src' as a label value into dst[cap]: backslash, double quote and newline
 * escaped; cut short (never mid-escape) when it does not fit.
 */
void prom_label_value(char *dst, size_t cap, const char *src);

#endif
