/*
 * libFuzzer target for the admin API's request bodies: POST /holds
 * (hold_parse), POST /holds/{id}/renew, POST /switchover
 * (proxy/admin_body.c) and POST /observe (observe_parse). Each input is a request body, read as the admin
 * server reads it (JSON, nothing after it). Invariants: no crash, no leak; a
 * refused body leaves a non-empty terminated message (one printable line
 * from admin_body.c); an accepted hold has every field in its documented
 * range and a valid id, and hold_describe() of it is itself a body that
 * parses to the same hold; an accepted observation has 1 to
 * ADMIN_OBSERVE_MAX_TABLES distinct tables, none "*", and its description
 * parses back to it; an accepted renew or switchover is in range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "admin_body.h"
#include "hold.h"
#include "observe.h"
#include "pgvalve/admin_api.h"
#include "fuzz_check.h"

#define BODY_MAX (64u << 10)
#define MAX_DRAIN_MS 600000

static void check_message(const char *err, size_t cap, bool one_line)
{
	FUZZ_CHECK(memchr(err, '\0', cap) != NULL);
	FUZZ_CHECK(err[0] != '\0');
	for (const char *s = err; one_line && *s; s++)
		FUZZ_CHECK((unsigned char)*s >= 0x20 && *s != 0x7f);
}

static bool same_hold(const struct hold *a, const struct hold *b)
{
	if (strcmp(a->id, b->id) != 0 || a->mode != b->mode || a->policy != b->policy ||
	    a->on_timeout != b->on_timeout || a->lease_ms != b->lease_ms ||
	    a->max_wait_ms != b->max_wait_ms || strcmp(a->upstream, b->upstream) != 0 ||
	    a->n_tables != b->n_tables)
		return false;
	for (int i = 0; i < a->n_tables; i++)
		if (strcmp(a->tables[i].schema, b->tables[i].schema) != 0 ||
		    strcmp(a->tables[i].name, b->tables[i].name) != 0)
			return false;
	return true;
}

static void check_hold(const cJSON *body)
{
	char err[512];
	struct hold *h, *again;
	cJSON *desc;

	memset(err, 'x', sizeof(err));
	h = hold_parse(body, err, sizeof(err));
	if (!h) {
		check_message(err, sizeof(err), false);
		return;
	}
	FUZZ_CHECK(admin_hold_id_valid(h->id));
	FUZZ_CHECK(h->n_tables >= 1 && h->n_tables <= ADMIN_HOLD_MAX_TABLES);
	FUZZ_CHECK(h->lease_ms >= 1 && h->lease_ms <= ADMIN_HOLD_MAX_MS);
	FUZZ_CHECK(h->max_wait_ms >= 1 && h->max_wait_ms <= ADMIN_HOLD_MAX_MS);
	FUZZ_CHECK((int)h->mode >= 0 && (int)h->mode <= ADMIN_MODE_ALL);
	FUZZ_CHECK((int)h->policy >= 0 && (int)h->policy <= ADMIN_POLICY_REROUTE);
	FUZZ_CHECK((h->policy == HOLD_REROUTE) == (h->upstream[0] != '\0'));
	for (int i = 0; i < h->n_tables; i++)
		FUZZ_CHECK(h->tables[i].name[0] != '\0');

	desc = cJSON_CreateObject();
	hold_describe(h, desc);
	again = hold_parse(desc, err, sizeof(err));
	if (!again) {
		fprintf(stderr, "hold described as a body that is refused: %s\n", err);
		FUZZ_CHECK(!"a hold's description parses");
	}
	FUZZ_CHECK(same_hold(h, again));
	free(again);
	cJSON_Delete(desc);
	free(h);
}

static void check_observe(const cJSON *body)
{
	char err[512];
	struct observation *o, *again;
	cJSON *desc;

	memset(err, 'x', sizeof(err));
	o = observe_parse(body, err, sizeof(err));
	if (!o) {
		check_message(err, sizeof(err), false);
		return;
	}
	FUZZ_CHECK(admin_hold_id_valid(o->id));
	FUZZ_CHECK(o->n_tables >= 1 && o->n_tables <= ADMIN_OBSERVE_MAX_TABLES);
	FUZZ_CHECK(o->lease_ms >= 1 && o->lease_ms <= ADMIN_HOLD_MAX_MS);
	for (int i = 0; i < o->n_tables; i++) {
		FUZZ_CHECK(o->tables[i].name[0] != '\0' && strcmp(o->tables[i].name, "*") != 0);
		for (int j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(o->tables[i].schema, o->tables[j].schema) != 0 ||
				   strcmp(o->tables[i].name, o->tables[j].name) != 0);
	}
	desc = cJSON_CreateObject();
	observe_describe(o, desc);
	again = observe_parse(desc, err, sizeof(err));
	if (!again) {
		fprintf(stderr, "observation described as a body that is refused: %s\n", err);
		FUZZ_CHECK(!"an observation's description parses");
	}
	FUZZ_CHECK(strcmp(o->id, again->id) == 0 && o->lease_ms == again->lease_ms &&
		   o->n_tables == again->n_tables);
	for (int i = 0; i < o->n_tables; i++)
		FUZZ_CHECK(strcmp(o->tables[i].schema, again->tables[i].schema) == 0 &&
			   strcmp(o->tables[i].name, again->tables[i].name) == 0);
	free(again);
	cJSON_Delete(desc);
	free(o);
}

static void check_renew(const cJSON *body)
{
	char err[256];
	int64_t lease = -1;

	memset(err, 'x', sizeof(err));
	if (!admin_body_renew(body, 1234, &lease, err, sizeof(err))) {
		check_message(err, sizeof(err), true);
		return;
	}
	FUZZ_CHECK(lease >= 1 && lease <= ADMIN_HOLD_MAX_MS);
	if (!cJSON_GetObjectItemCaseSensitive(body, ADMIN_HOLD_LEASE_MS))
		FUZZ_CHECK(lease == 1234);
}

static void check_switchover(const cJSON *body)
{
	struct admin_switchover_body sw;
	char err[256];

	memset(err, 'x', sizeof(err));
	if (!admin_body_switchover(body, MAX_DRAIN_MS, &sw, err, sizeof(err))) {
		check_message(err, sizeof(err), true);
		return;
	}
	FUZZ_CHECK(sw.upstream != NULL);
	FUZZ_CHECK(sw.drain_ms >= 0 && sw.drain_ms <= MAX_DRAIN_MS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *body;
	char *text;

	if (size > BODY_MAX)
		return 0;
	/* As the admin server: the body and its NUL, nothing may follow the document. */
	text = malloc(size + 1);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	body = size ? cJSON_ParseWithLengthOpts(text, size + 1, NULL, 1) : cJSON_CreateObject();
	free(text);
	if (!body)
		return 0;
	check_hold(body);
	check_observe(body);
	check_renew(body);
	check_switchover(body);
	cJSON_Delete(body);
	return 0;
}
