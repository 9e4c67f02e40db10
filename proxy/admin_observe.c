/*
 * The observation endpoints of the admin API (docs/architecture.md §3.9,
 * §3.6): GET and POST /observe, GET and DELETE /observe/{id}, POST
 * /observe/{id}/renew. What an observation records is observe.c's and
 * observe_registry.c's; GET /latency, which reads it, and routing are
 * admin.c's.
 */
#include <cjson/cJSON.h>
#include <event2/http.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "admin_internal.h"
#include "observe.h"
#include "observe_registry.h"
#include "pgvalve/admin_api.h"
#include "pgvalve/log.h"
#include "runtime.h"

void admin_observe_list(struct evhttp_request *req)
{
	cJSON *doc = cJSON_CreateObject();

	observe_registry_describe(cJSON_AddArrayToObject(doc, ADMIN_OBSERVE_LIST));
	admin_reply_json(req, 200, doc);
}

void admin_observe_create(struct evhttp_request *req)
{
	cJSON *body = admin_read_json_body(req), *doc;
	const struct observation *o;
	struct observation *parsed;
	char err[512], id[ADMIN_HOLD_ID_MAX];
	int status;

	if (!body)
		return;
	parsed = observe_parse(body, err, sizeof(err));
	cJSON_Delete(body);
	if (!parsed) {
		admin_reply_error(req, 400, err);
		return;
	}
	snprintf(id, sizeof(id), "%s", parsed->id);
	status = observe_registry_add(parsed, err, sizeof(err)); /* takes 'parsed' */
	if (status != 0) {
		admin_reply_error(req, status, err);
		return;
	}
	o = observe_registry_peek(id);
	log_info("observation %s: %d table(s), lease %lld ms: recording on %d workers", o->id, o->n_tables,
		 (long long)o->lease_ms, rt.n_workers);
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, ADMIN_OBSERVE_ID, o->id);
	cJSON_AddNumberToObject(doc, ADMIN_OBSERVE_LEASE_MS, (double)o->lease_ms);
	admin_reply_json(req, 201, doc);
}

/* /observe/{id}: GET, DELETE; /observe/{id}/renew: POST. */
void admin_observe_path(struct evhttp_request *req, const char *rest)
{
	char id[ADMIN_HOLD_ID_MAX];
	const char *slash;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct observation *o;
	cJSON *doc;
	int64_t lease_ms;

	if (!admin_path_id(rest, id, &slash) || !(o = observe_registry_peek(id))) {
		admin_reply_error(req, 404, "no such observation");
		return;
	}
	doc = cJSON_CreateObject();
	if (slash && strcmp(slash, ADMIN_PATH_RENEW_SUFFIX) == 0 && cmd == EVHTTP_REQ_POST) {
		if (!admin_read_renew(req, o->lease_ms, &lease_ms)) {
			cJSON_Delete(doc);
			return;
		}
		(void)observe_registry_renew(id, lease_ms);
		cJSON_AddStringToObject(doc, ADMIN_OBSERVE_ID, id);
		cJSON_AddNumberToObject(doc, ADMIN_OBSERVE_LEASE_MS, (double)lease_ms);
	} else if (!slash && cmd == EVHTTP_REQ_DELETE) {
		(void)observe_registry_stop(id);
		log_info("observation %s: stopped", id);
		cJSON_AddStringToObject(doc, ADMIN_OBSERVE_STOPPED, id);
	} else if (!slash && cmd == EVHTTP_REQ_GET) {
		observe_describe(o, doc);
	} else {
		cJSON_Delete(doc);
		admin_reply_error(req, 405, "method not allowed");
		return;
	}
	admin_reply_json(req, 200, doc);
}
