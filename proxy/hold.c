/*
 * Hold definitions and the conflict rule (see hold.h). The rule, per mode:
 *   writes: the unit writes a held table (or cannot be judged);
 *   all:    the unit refers to a held table at all (or cannot be judged).
 * A held table "*" matches every unit in 'all' mode and every writing unit
 * in 'writes' mode, table or not.
 */
#include "hold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "admin_body.h"
#include "pgvalve/jsonval.h"

#define TABLE_NAMES "table names (\"schema.table\", \"table\" or \"*\")"

const char *hold_mode_name(enum hold_mode m)
{
	return admin_hold_modes[m];
}

const char *hold_policy_name(enum hold_policy p)
{
	return admin_hold_policies[p];
}

const char *hold_on_timeout_name(enum hold_on_timeout t)
{
	return admin_hold_on_timeouts[t];
}

bool hold_table_parse(const char *s, struct hold_table *t)
{
	const char *dot = strchr(s, '.');

	memset(t, 0, sizeof(*t));
	if (!dot) {
		if (!*s || strlen(s) >= sizeof(t->name))
			return false;
		snprintf(t->name, sizeof(t->name), "%s", s);
		return true;
	}
	if (dot == s || !dot[1] || strchr(dot + 1, '.') || (size_t)(dot - s) >= sizeof(t->schema) ||
	    strlen(dot + 1) >= sizeof(t->name))
		return false;
	snprintf(t->schema, sizeof(t->schema), "%.*s", (int)(dot - s), s);
	snprintf(t->name, sizeof(t->name), "%s", dot + 1);
	return true;
}

/* body["tables"] is an array of 1 to ADMIN_HOLD_MAX_TABLES items; else 'err' filled. */
static bool check_tables(const cJSON *tables, char *err, size_t errlen)
{
	return admin_body_list(tables, ADMIN_HOLD_TABLES, ADMIN_HOLD_MAX_TABLES, TABLE_NAMES, err, errlen);
}

void hold_make_id(char *id, size_t len, char prefix)
{
	uint8_t rnd[8];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	snprintf(id, len, "%c-%02x%02x%02x%02x%02x%02x%02x%02x", prefix, rnd[0], rnd[1], rnd[2], rnd[3],
		 rnd[4], rnd[5], rnd[6], rnd[7]);
}

struct hold *hold_parse(const cJSON *body, char *err, size_t errlen)
{
	const cJSON *tables = cJSON_GetObjectItemCaseSensitive(body, ADMIN_HOLD_TABLES);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, ADMIN_HOLD_ID);
	const cJSON *upstream = cJSON_GetObjectItemCaseSensitive(body, ADMIN_HOLD_UPSTREAM);
	const cJSON *item;
	struct hold *h;
	int mode, policy, on_timeout;
	char got[80];

	if (!admin_body_known_keys(body, admin_hold_keys, err, errlen) ||
	    !check_tables(tables, err, errlen) || !admin_body_id(id, err, errlen))
		return NULL;
	h = calloc(1, sizeof(*h) + (size_t)cJSON_GetArraySize(tables) * sizeof(h->tables[0]));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!admin_body_enum(body, ADMIN_HOLD_MODE, admin_hold_modes, -1, HOLD_WRITES, &mode, err, errlen) ||
	    !admin_body_enum(body, ADMIN_HOLD_POLICY, admin_hold_policies, -1, HOLD_QUEUE, &policy, err,
			     errlen) ||
	    !admin_body_enum(body, ADMIN_HOLD_ON_TIMEOUT, admin_hold_on_timeouts, -1, HOLD_TIMEOUT_RELEASE,
			     &on_timeout, err, errlen) ||
	    !admin_body_ms(body, ADMIN_HOLD_LEASE_MS, ADMIN_HOLD_DEFAULT_LEASE_MS, 1, ADMIN_HOLD_MAX_MS,
			   &h->lease_ms, err, errlen) ||
	    !admin_body_ms(body, ADMIN_HOLD_MAX_WAIT_MS, ADMIN_HOLD_DEFAULT_MAX_WAIT_MS, 1, ADMIN_HOLD_MAX_MS,
			   &h->max_wait_ms, err, errlen) ||
	    !admin_body_ms(body, ADMIN_HOLD_IN_FLIGHT_WAIT_MS, ADMIN_HOLD_DEFAULT_IN_FLIGHT_WAIT_MS, 0,
			   ADMIN_HOLD_MAX_MS, &h->in_flight_wait_ms, err, errlen))
		goto fail;
	h->mode = (enum hold_mode)mode;
	h->policy = (enum hold_policy)policy;
	h->on_timeout = (enum hold_on_timeout)on_timeout;
	if (h->policy == HOLD_REROUTE) {
		if (!cJSON_IsString(upstream) || !upstream->valuestring[0] ||
		    strlen(upstream->valuestring) >= sizeof(h->upstream)) {
			jsonval_fail(err, errlen, ADMIN_HOLD_UPSTREAM,
				     "policy reroute needs the name of the upstream new sessions go to");
			goto fail;
		}
		snprintf(h->upstream, sizeof(h->upstream), "%s", upstream->valuestring);
	} else if (upstream) {
		jsonval_fail(err, errlen, ADMIN_HOLD_UPSTREAM, "only meaningful with policy reroute");
		goto fail;
	}
	cJSON_ArrayForEach(item, tables)
	{
		if (!cJSON_IsString(item) || !hold_table_parse(item->valuestring, &h->tables[h->n_tables])) {
			jsonval_fail(err, errlen, ADMIN_HOLD_TABLES, "expected " TABLE_NAMES ", got %s in it",
				     jsonval_describe(item, got, sizeof(got)));
			goto fail;
		}
		h->n_tables++;
	}
	if (id)
		snprintf(h->id, sizeof(h->id), "%s", id->valuestring);
	else
		hold_make_id(h->id, sizeof(h->id), 'h');
	return h;
fail:
	free(h);
	return NULL;
}

const struct hold *hold_conflict(const struct hold_set *set, const struct hold_scope *scope,
				 const struct classify_result *r, int upstream, const char **table)
{
	bool writes_any = r->flags & CLASSIFY_UNKNOWN;

	for (int i = 0; i < r->n_refs && !writes_any; i++)
		writes_any = r->refs[i].access & CLASSIFY_WRITE;
	for (int i = 0; set && i < set->n; i++) {
		const struct hold *h = set->holds[i];

		if (h->seq > scope->placed_by || (scope->queue_only && h->policy != HOLD_QUEUE))
			continue;
		if (h->policy == HOLD_REROUTE && h->upstream_index == upstream)
			continue; /* the session is where the hold sends new work */
		for (int t = 0; t < h->n_tables; t++) {
			const struct hold_table *ht = &h->tables[t];
			uint8_t access;

			if (strcmp(ht->name, "*") == 0) {
				if (h->mode == HOLD_ALL || writes_any) {
					*table = "*";
					return h;
				}
				continue;
			}
			access = r->flags & CLASSIFY_UNKNOWN ? CLASSIFY_READ | CLASSIFY_WRITE
							     : classify_access_to(r, ht->schema, ht->name);
			if (h->mode == HOLD_ALL ? access != 0 : (access & CLASSIFY_WRITE) != 0) {
				*table = ht->name;
				return h;
			}
		}
	}
	return NULL;
}

const char *hold_table_name(const struct hold_table *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", t->schema, t->schema[0] ? "." : "", t->name);
	return buf;
}

void hold_describe(const struct hold *h, cJSON *obj)
{
	cJSON *tables = cJSON_AddArrayToObject(obj, ADMIN_HOLD_TABLES);

	cJSON_AddStringToObject(obj, ADMIN_HOLD_ID, h->id);
	for (int t = 0; t < h->n_tables; t++) {
		char name[HOLD_TABLE_NAME_MAX];

		cJSON_AddItemToArray(tables,
				     cJSON_CreateString(hold_table_name(&h->tables[t], name, sizeof(name))));
	}
	cJSON_AddStringToObject(obj, ADMIN_HOLD_MODE, hold_mode_name(h->mode));
	cJSON_AddStringToObject(obj, ADMIN_HOLD_POLICY, hold_policy_name(h->policy));
	cJSON_AddStringToObject(obj, ADMIN_HOLD_ON_TIMEOUT, hold_on_timeout_name(h->on_timeout));
	cJSON_AddNumberToObject(obj, ADMIN_HOLD_LEASE_MS, (double)h->lease_ms);
	cJSON_AddNumberToObject(obj, ADMIN_HOLD_MAX_WAIT_MS, (double)h->max_wait_ms);
	cJSON_AddNumberToObject(obj, ADMIN_HOLD_IN_FLIGHT_WAIT_MS, (double)h->in_flight_wait_ms);
	if (h->policy == HOLD_REROUTE)
		cJSON_AddStringToObject(obj, ADMIN_HOLD_UPSTREAM, h->upstream);
}
