/*
 * The coordinator's side of the proxies' admin API (admin_api.h; the admin
 * API in docs/architecture.md): a small blocking HTTP/1.1 client (one
 * request per connection, bounded by a timeout) with JSON bodies, and the
 * calls apply makes: place a hold on every proxy or on none, renew, release.
 */
#ifndef PGVALVE_COORDINATOR_PROXYCTL_H
#define PGVALVE_COORDINATOR_PROXYCTL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy {
	char url[256]; /* as given: http://host:port (or dns://name:port) */
	char host[256];
	int port;
	char *token; /* bearer token (from token_file), or NULL */
	bool dns;    /* dns://: 'host' names many proxies (proxy_dns.h), not one to call */
};

/*
 * "http://host:port" (or host:port), or "dns://name:port" (sets 'dns').
 * False with 'err' filled.
 */
bool proxy_parse_url(const char *url, struct proxy *p, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Reads the proxy's bearer token from 'path' (token_file.h: the first line,
 * at least TOKEN_FILE_MIN characters, as the proxy itself requires).
 */
bool proxy_load_token(struct proxy *p, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * One request: 'body' (NULL: none) as JSON. Returns the HTTP status, with
 * the answer in '*out' (a JSON document, or NULL when the body is not JSON;
 * the caller deletes it), or -1 with 'err' filled when there was no answer
 * within 'timeout_ms' (connect, send and receive together).
 */
int proxy_request(const struct proxy *p, const char *method, const char *path, const cJSON *body,
		  int timeout_ms, cJSON **out, char *err, size_t errlen);

/* What placing one hold on every proxy gave. */
struct proxy_hold_result {
	int acked;                  /* proxies that answered 201 */
	int in_transaction;         /* summed */
	cJSON *in_transaction_pids; /* all proxies' PIDs (an array the caller deletes) */
	char why[512];              /* when not every proxy acknowledged: which and why */
	int status;                 /* then the refusing proxy's HTTP status (-1: no answer) */
	/* per proxy, in order: {proxy, status, ack_ms (from asking to its answer), answered_at_ms
	   (clock_mono_ms), error?} (an array the caller deletes) */
	cJSON *acks;
};

/*
 * Whether a proxy's refusal ('status' from proxy_request) comes back the
 * same on every try: 401 or 403, a missing or wrong admin token.
 */
bool proxy_refusal_is_final(int status);

/*
 * POST /holds 'hold' (with its "id") to every proxy. True when all answered
 * 201 within 'timeout_ms' each; otherwise the hold is released again on
 * those that took it, and false (why in 'res->why').
 */
bool proxy_hold_all(struct proxy *const *proxies, int n, const cJSON *hold, int timeout_ms,
		    struct proxy_hold_result *res) __attribute__((warn_unused_result));

/* POST /holds/{id}/renew on every proxy; false if any did not answer 200. */
bool proxy_renew_all(struct proxy *const *proxies, int n, const char *id, int64_t lease_ms, int timeout_ms);

/* DELETE /holds/{id} on every proxy, ignoring "no such hold". Returns how many failed. */
int proxy_release_all(struct proxy *const *proxies, int n, const char *id, int timeout_ms);

/* The same, with answered_ms[i] (NULL: not wanted) the clock_mono_ms() proxy i confirmed at, or -1. */
int proxy_release_all_timed(struct proxy *const *proxies, int n, const char *id, int timeout_ms,
			    int64_t *answered_ms);

/*
 * One request to 'n' proxies at once (a thread each, as the holds): status[i]
 * and docs[i] as proxy_request gives them (docs[i] NULL when not JSON; the
 * caller deletes each).
 */
void proxy_request_all(struct proxy *const *proxies, int n, const char *method, const char *path,
		       const cJSON *body, int timeout_ms, int *status, cJSON **docs);

/*
 * POST /statements/refresh {"tables": 'tables'} on every proxy: after a
 * change of those tables' row types committed, while the hold is still in
 * force (docs/architecture.md §4.9). Returns how many proxies did not
 * answer 200, naming the first in 'why'; '*statements' sums what they marked.
 */
int proxy_refresh_all(struct proxy *const *proxies, int n, const cJSON *tables, int timeout_ms,
		      int *statements, char *why, size_t cap);

#endif
