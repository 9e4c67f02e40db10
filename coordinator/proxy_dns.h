/*
 * Many proxies found by name (docs/architecture.md §4, many proxies): a
 * dns://NAME:PORT entry stands for every A/AAAA record of NAME, each one
 * proxy's admin API at http://ADDR:PORT with the entry's token. Kubernetes
 * publishes a headless Service that way, one record per ready pod, so the
 * name is resolved again before every hold. Plain http:// entries pass as
 * they are. Calling the proxies is proxyctl.h's business.
 */
#ifndef PGVALVE_COORDINATOR_PROXY_DNS_H
#define PGVALVE_COORDINATOR_PROXY_DNS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "options.h"

/* The admin addresses the entries name at one moment. */
struct proxy_fleet {
	struct proxy *p[OPTIONS_MAX_PROXIES];
	int n;
	bool owned; /* the entries are this fleet's (freed by proxy_fleet_free), not borrowed */
};

/*
 * Resolves 'given': an http:// entry is copied, a dns:// one becomes one
 * entry per address of its name (sorted); an address named twice is kept
 * once. False with 'err' filled when a name does not resolve, resolves to
 * no address, or the fleet would exceed OPTIONS_MAX_PROXIES.
 */
bool proxy_dns_resolve(struct proxy *const *given, int n_given, struct proxy_fleet *out, char *err,
		       size_t errlen) __attribute__((warn_unused_result));

/*
 * For a command that starts: when an entry of o->proxies is dns://, they
 * move to o->proxy_given and o->proxies becomes what they name now. False
 * with 'err' filled (a config error: nothing was done yet).
 */
bool proxy_dns_options(struct options *o, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * The fleet as of now, before a hold: o->proxy_given resolved again, or
 * o->proxies borrowed when nothing is dns://. False with 'err' filled.
 */
bool proxy_fleet_now(const struct options *o, struct proxy_fleet *f, char *err, size_t errlen)
	__attribute__((warn_unused_result));

void proxy_fleet_free(struct proxy_fleet *f);

/* {"given": [entries], "found": [admin URLs]} for plan and apply. */
cJSON *proxy_fleet_json(const struct options *o);

/* "3 proxies (http://..., ...) from dns://NAME:PORT" for people, into 'out'. */
void proxy_fleet_describe(const struct options *o, char *out, size_t cap);

#endif
