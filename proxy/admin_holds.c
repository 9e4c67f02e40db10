/*
 * The hold endpoints of the admin API (docs/architecture.md §3.3, §3.6):
 * GET and POST /holds, GET and DELETE /holds/{id}, POST /holds/{id}/renew.
 * What a hold does is hold.c's and hold_registry.c's; this file reads the
 * request and writes the answer, including the 201 that waits for units in
 * flight. Routing is admin.c's.
 */
#include <cjson/cJSON.h>
#include <event2/http.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"
#include "hold.h"
#include "hold_registry.h"
#include "pgvalve/admin_api.h"
#include "pgvalve/log.h"
#include "runtime.h"

void admin_holds_list(struct evhttp_request *req)
{
	cJSON *doc = cJSON_CreateObject();

	hold_registry_describe(cJSON_AddArrayToObject(doc, ADMIN_HOLDS_LIST));
	admin_reply_json(req, 200, doc);
}

/* A POST /holds whose 201 waits for units in flight (hold_registry_await). */
struct hold_ack {
	struct evhttp_request *req;
	cJSON *doc; /* the answer, less "in_flight" */
	struct hold_wait *wait;
};

static void on_hold_settled(void *ctx, int in_flight)
{
	struct hold_ack *ack = ctx;

	evhttp_connection_set_closecb(evhttp_request_get_connection(ack->req), NULL, NULL);
	if (in_flight > 0)
		log_warn("hold %s: %d unit(s) of work in flight when it came still run after its "
			 "in_flight_wait_ms: acknowledged anyway",
			 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ack->doc, ADMIN_HOLD_ID)),
			 in_flight);
	cJSON_AddNumberToObject(ack->doc, ADMIN_HOLD_IN_FLIGHT, in_flight);
	admin_reply_json(ack->req, 201, ack->doc);
	free(ack);
}

/* The client of a waiting POST /holds hung up: its request is about to be freed (the hold stays). */
static void on_hold_requester_gone(struct evhttp_connection *conn, void *ctx)
{
	struct hold_ack *ack = ctx;

	hold_registry_forget_wait(ack->wait);
	cJSON_Delete(ack->doc);
	free(ack);
}

void admin_holds_create(struct evhttp_request *req)
{
	cJSON *body = admin_read_json_body(req), *doc;
	struct hold_apply sum = { 0 };
	struct hold_ack *ack;
	const struct hold *held;
	struct hold *hold;
	char err[512], id[ADMIN_HOLD_ID_MAX];
	int status;

	if (!body)
		return;
	hold = hold_parse(body, err, sizeof(err));
	cJSON_Delete(body);
	if (!hold) {
		admin_reply_error(req, 400, err);
		return;
	}
	snprintf(id, sizeof(id), "%s", hold->id);
	sum.pids = cJSON_CreateArray();
	status = hold_registry_add(hold, &sum, err, sizeof(err)); /* takes 'hold' */
	if (status != 0) {
		cJSON_Delete(sum.pids);
		admin_reply_error(req, status, err);
		return;
	}
	held = hold_registry_peek(id);
	log_info("hold %s: %s mode, %s policy, %d table(s), lease %lld ms: in force on %d workers; "
		 "%d parked, %d in a transaction, %d in flight",
		 held->id, hold_mode_name(held->mode), hold_policy_name(held->policy), held->n_tables,
		 (long long)held->lease_ms, rt.n_workers, sum.parked, sum.in_transaction, sum.in_flight);
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, ADMIN_HOLD_ID, held->id);
	cJSON_AddNumberToObject(doc, ADMIN_HOLD_PARKED, sum.parked);
	cJSON_AddNumberToObject(doc, ADMIN_HOLD_IN_TRANSACTION, sum.in_transaction);
	cJSON_AddItemToObject(doc, ADMIN_HOLD_IN_TRANSACTION_PIDS, sum.pids);
	cJSON_AddNumberToObject(doc, ADMIN_HOLD_LEASE_MS, (double)held->lease_ms);
	if (sum.in_flight == 0) {
		cJSON_AddNumberToObject(doc, ADMIN_HOLD_IN_FLIGHT, 0);
		admin_reply_json(req, 201, doc);
		return;
	}
	ack = calloc(1, sizeof(*ack));
	if (!ack)
		abort(); /* defensive: a few bytes; the hold is in force and must be acknowledged */
	ack->req = req;
	ack->doc = doc;
	ack->wait = hold_registry_await(held->id, on_hold_settled, ack);
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_hold_requester_gone, ack);
}

static void handle_hold_renew(struct evhttp_request *req, const struct hold *h)
{
	cJSON *doc;
	int64_t lease_ms;

	if (!admin_read_renew(req, h->lease_ms, &lease_ms))
		return;
	(void)hold_registry_renew(h->id, lease_ms);
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, ADMIN_HOLD_ID, h->id);
	cJSON_AddNumberToObject(doc, ADMIN_HOLD_LEASE_MS, (double)lease_ms);
	admin_reply_json(req, 200, doc);
}

void admin_holds_path(struct evhttp_request *req, const char *rest)
{
	char id[ADMIN_HOLD_ID_MAX];
	const char *slash;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct hold *h;
	cJSON *doc;

	if (!admin_path_id(rest, id, &slash) || !(h = hold_registry_peek(id))) {
		admin_reply_error(req, 404, "no such hold");
		return;
	}
	if (slash && strcmp(slash, ADMIN_PATH_RENEW_SUFFIX) == 0 && cmd == EVHTTP_REQ_POST) {
		handle_hold_renew(req, h);
	} else if (!slash && cmd == EVHTTP_REQ_DELETE) {
		(void)hold_registry_release(id);
		log_info("hold %s: released", id);
		doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, ADMIN_HOLD_RELEASED, id);
		admin_reply_json(req, 200, doc);
	} else if (!slash && cmd == EVHTTP_REQ_GET) {
		doc = cJSON_CreateObject();
		hold_describe(h, doc);
		admin_reply_json(req, 200, doc);
	} else {
		admin_reply_error(req, 405, "method not allowed");
	}
}
