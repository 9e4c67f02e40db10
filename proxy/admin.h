/*
 * The admin HTTP API (docs/architecture.md, the admin API) on libevent's evhttp, served from the
 * main thread: /healthz, /status, /metrics, /errors, /latency read; /holds
 * (admin_holds.c), /observe (admin_observe.c), /statements/refresh and
 * /switchover act (through hold_registry.c, observe_registry.c,
 * stmt_refresh.c and switchover.c). Data comes from the workers through
 * worker jobs, summed here.
 */
#ifndef PGVALVE_PROXY_ADMIN_H
#define PGVALVE_PROXY_ADMIN_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

bool admin_start(struct event_base *base, const char *host, int port, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void admin_stop(void);

#endif
