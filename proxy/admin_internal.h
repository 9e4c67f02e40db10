/*
 * What the files of the admin API share, and nothing else should use:
 * admin.c (routing, authorization, /healthz, /status, /metrics, /errors,
 * /latency, /switchover, /statements/refresh, and the helpers below),
 * admin_holds.c (/holds) and admin_observe.c (/observe); docs/architecture.md
 * §3.6. Everything here runs on the main thread. The public interface is
 * admin.h.
 */
#ifndef PGVALVE_PROXY_ADMIN_INTERNAL_H
#define PGVALVE_PROXY_ADMIN_INTERNAL_H

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

#include "pgvalve/admin_api.h"

/* Sends 'body' (a C string) with status 'code' and Content-Type 'ctype'. */
void admin_reply(struct evhttp_request *req, int code, const char *ctype, const char *body);

/* Sends 'doc' as JSON with status 'code'; takes 'doc' (frees it). */
void admin_reply_json(struct evhttp_request *req, int code, cJSON *doc);

/* Sends {"error": msg} with status 'code'. */
void admin_reply_error(struct evhttp_request *req, int code, const char *msg);

/* The request body as JSON (the caller frees it); NULL once the request is answered (400, 500). */
cJSON *admin_read_json_body(struct evhttp_request *req) __attribute__((warn_unused_result));

/*
 * POST .../{id}/renew's body for a hold or an observation whose lease is now
 * 'current_ms': the new lease in '*lease_ms'; false once the request is
 * answered (400).
 */
bool admin_read_renew(struct evhttp_request *req, int64_t current_ms, int64_t *lease_ms)
	__attribute__((warn_unused_result));

/*
 * The id at the start of 'rest' (what follows /holds/ or /observe/) into
 * 'id', '*slash' at what follows it (NULL: nothing). False when there is no
 * id or one too long to be any (the caller answers 404).
 */
bool admin_path_id(const char *rest, char id[ADMIN_HOLD_ID_MAX], const char **slash)
	__attribute__((warn_unused_result));

/* GET /holds, POST /holds, and /holds/{id}[/renew] ('rest': the path after /holds/); admin_holds.c. */
void admin_holds_list(struct evhttp_request *req);
void admin_holds_create(struct evhttp_request *req);
void admin_holds_path(struct evhttp_request *req, const char *rest);

/* GET /observe, POST /observe, and /observe/{id}[/renew] ('rest': after /observe/); admin_observe.c. */
void admin_observe_list(struct evhttp_request *req);
void admin_observe_create(struct evhttp_request *req);
void admin_observe_path(struct evhttp_request *req, const char *rest);

#endif
