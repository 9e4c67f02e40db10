/*
 * dns:// proxy entries (see proxy_dns.h). getaddrinfo with SOCK_STREAM
 * gives each address once per name; the addresses are sorted so the fleet
 * reads the same in every event whatever order the resolver answered in.
 */
#include "proxy_dns.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "xalloc.h"

static bool fleet_has(const struct proxy_fleet *f, const char *url)
{
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->p[i]->url, url) == 0)
			return true;
	return false;
}

/* Appends a copy of 'p' unless its URL is there already; false when full. */
static bool fleet_add(struct proxy_fleet *f, const struct proxy *p)
{
	struct proxy *c;

	if (fleet_has(f, p->url))
		return true;
	if (f->n == OPTIONS_MAX_PROXIES)
		return false;
	c = xcalloc(1, sizeof(*c));
	*c = *p;
	c->token = p->token ? xstrdup(p->token) : NULL;
	f->p[f->n++] = c;
	return true;
}

static int by_url(const void *a, const void *b)
{
	return strcmp((*(struct proxy *const *)a)->url, (*(struct proxy *const *)b)->url);
}

/* Adds one proxy per address of dns entry 'd', sorted among themselves. */
static bool resolve_one(const struct proxy *d, struct proxy_fleet *f, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct proxy_fleet found = { .owned = true };
	int rc = getaddrinfo(d->host, NULL, &hints, &res);
	bool ok = true;

	if (rc != 0) {
		snprintf(err, errlen, "proxy %s: cannot resolve %s: %s", d->url, d->host, gai_strerror(rc));
		return false;
	}
	for (ai = res; ai && ok; ai = ai->ai_next) {
		struct proxy p = { .port = d->port, .token = d->token };
		const void *addr = ai->ai_family == AF_INET6
			? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
			: (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    !inet_ntop(ai->ai_family, addr, p.host, sizeof(p.host)))
			continue;
		snprintf(p.url, sizeof(p.url), ai->ai_family == AF_INET6 ? "http://[%s]:%d" : "http://%s:%d",
			 p.host, p.port);
		ok = fleet_add(&found, &p);
	}
	freeaddrinfo(res);
	if (ok && found.n == 0) {
		snprintf(err, errlen, "proxy %s: %s has no IPv4 or IPv6 address", d->url, d->host);
		ok = false;
	}
	qsort(found.p, (size_t)found.n, sizeof(found.p[0]), by_url);
	for (int i = 0; ok && i < found.n; i++)
		ok = fleet_add(f, found.p[i]);
	if (!ok && !err[0])
		snprintf(err, errlen, "proxy %s: more than %d proxies", d->url, OPTIONS_MAX_PROXIES);
	proxy_fleet_free(&found);
	return ok;
}

bool proxy_dns_resolve(struct proxy *const *given, int n_given, struct proxy_fleet *out, char *err,
		       size_t errlen)
{
	bool ok = true;

	memset(out, 0, sizeof(*out));
	out->owned = true;
	err[0] = '\0';
	for (int i = 0; i < n_given && ok; i++) {
		if (given[i]->dns)
			ok = resolve_one(given[i], out, err, errlen);
		else if (!fleet_add(out, given[i])) {
			snprintf(err, errlen, "more than %d proxies", OPTIONS_MAX_PROXIES);
			ok = false;
		}
	}
	if (!ok)
		proxy_fleet_free(out);
	return ok;
}

bool proxy_dns_options(struct options *o, char *err, size_t errlen)
{
	struct proxy_fleet f;
	bool any = false;

	for (int i = 0; i < o->n_proxies; i++)
		any |= o->proxies[i]->dns;
	if (!any)
		return true;
	if (!proxy_dns_resolve(o->proxies, o->n_proxies, &f, err, errlen))
		return false;
	memcpy(o->proxy_given, o->proxies, sizeof(o->proxies[0]) * (size_t)o->n_proxies);
	o->n_proxy_given = o->n_proxies;
	memcpy(o->proxies, f.p, sizeof(f.p[0]) * (size_t)f.n);
	o->n_proxies = f.n;
	return true;
}

bool proxy_fleet_now(const struct options *o, struct proxy_fleet *f, char *err, size_t errlen)
{
	if (o->n_proxy_given > 0)
		return proxy_dns_resolve(o->proxy_given, o->n_proxy_given, f, err, errlen);
	memset(f, 0, sizeof(*f));
	memcpy(f->p, o->proxies, sizeof(o->proxies[0]) * (size_t)o->n_proxies);
	f->n = o->n_proxies;
	return true;
}

void proxy_fleet_free(struct proxy_fleet *f)
{
	if (f->owned) {
		for (int i = 0; i < f->n; i++) {
			free(f->p[i]->token);
			free(f->p[i]);
		}
	}
	f->n = 0;
}

cJSON *proxy_fleet_json(const struct options *o)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *given = cJSON_AddArrayToObject(doc, "given"), *found = cJSON_AddArrayToObject(doc, "found");
	struct proxy *const *g = o->n_proxy_given ? o->proxy_given : o->proxies;
	int n_g = o->n_proxy_given ? o->n_proxy_given : o->n_proxies;

	for (int i = 0; i < n_g; i++)
		cJSON_AddItemToArray(given, cJSON_CreateString(g[i]->url));
	for (int i = 0; i < o->n_proxies; i++)
		cJSON_AddItemToArray(found, cJSON_CreateString(o->proxies[i]->url));
	return doc;
}

void proxy_fleet_describe(const struct options *o, char *out, size_t cap)
{
	size_t len;

	len = (size_t)snprintf(out, cap, "%d prox%s", o->n_proxies, o->n_proxies == 1 ? "y" : "ies");
	for (int i = 0; i < o->n_proxies && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : " (", o->proxies[i]->url);
	if (o->n_proxies && len < cap)
		len += (size_t)snprintf(out + len, cap - len, ")");
	for (int i = 0, k = 0; i < o->n_proxy_given && len < cap; i++)
		if (o->proxy_given[i]->dns)
			len += (size_t)snprintf(out + len, cap - len, "%s%s", k++ ? ", " : " found by ",
						o->proxy_given[i]->url);
}
