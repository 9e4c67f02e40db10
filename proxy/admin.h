/*
 * The admin HTTP API (DESIGN.md §3.6) on libevent's evhttp, served from the
 * main thread. Read-only endpoints: /healthz, /status, /metrics, /errors.
 * Data comes from the workers through worker jobs, summed here.
 */
#ifndef PGVALVE_PROXY_ADMIN_H
#define PGVALVE_PROXY_ADMIN_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

bool admin_start(struct event_base *base, const char *host, int port, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void admin_stop(void);
/* Releases every hold (shutdown): parked sessions resume before the drain. */
void admin_release_all_holds(void);

#endif
