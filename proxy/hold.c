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

const char *hold_mode_name(enum hold_mode m)
{
	return m == HOLD_ALL ? "all" : "writes";
}

const char *hold_policy_name(enum hold_policy p)
{
	static const char *const names[] = { "queue", "reject", "reroute" };

	return names[p];
}

static bool parse_table(const char *s, struct hold_table *t)
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

struct hold *hold_parse(const cJSON *body, char *err, size_t errlen)
{
	static const char *const modes[] = { "writes", "all" };
	static const char *const policies[] = { "queue", "reject", "reroute" };
	static const char *const timeouts[] = { "release", "reject" };
	static const char *const keys[] = { "tables",     "mode", "policy",   "lease_ms", "max_wait_ms",
					    "on_timeout", "id",   "upstream", NULL };
	const cJSON *tables = cJSON_GetObjectItemCaseSensitive(body, "tables");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
	const cJSON *upstream = cJSON_GetObjectItemCaseSensitive(body, "upstream");
	const cJSON *item;
	struct hold *h;
	int n, mode, policy, on_timeout;

	if (!admin_body_known_keys(body, keys, err, errlen))
		return NULL;
	n = cJSON_GetArraySize(tables);
	if (!cJSON_IsArray(tables) || n < 1 || n > HOLD_MAX_TABLES) {
		snprintf(err, errlen,
			 "tables: expected an array of 1 to %d table names (\"schema.table\", \"table\" or "
			 "\"*\")",
			 HOLD_MAX_TABLES);
		return NULL;
	}
	if (id &&
	    (!cJSON_IsString(id) || !id->valuestring[0] || strlen(id->valuestring) >= HOLD_ID_MAX ||
	     strchr(id->valuestring, '/'))) {
		snprintf(err, errlen, "id: expected a non-empty string of at most %d characters without '/'",
			 HOLD_ID_MAX - 1);
		return NULL;
	}
	h = calloc(1, sizeof(*h) + (size_t)n * sizeof(h->tables[0]));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!admin_body_enum(body, "mode", modes, 2, HOLD_WRITES, &mode, err, errlen) ||
	    !admin_body_enum(body, "policy", policies, 3, HOLD_QUEUE, &policy, err, errlen) ||
	    !admin_body_enum(body, "on_timeout", timeouts, 2, HOLD_TIMEOUT_RELEASE, &on_timeout, err,
			     errlen) ||
	    !admin_body_ms(body, "lease_ms", 5000, 1, HOLD_MAX_MS, &h->lease_ms, err, errlen) ||
	    !admin_body_ms(body, "max_wait_ms", 2000, 1, HOLD_MAX_MS, &h->max_wait_ms, err, errlen))
		goto fail;
	h->mode = (enum hold_mode)mode;
	h->policy = (enum hold_policy)policy;
	h->on_timeout = (enum hold_on_timeout)on_timeout;
	if (h->policy == HOLD_REROUTE) {
		if (!cJSON_IsString(upstream) || !upstream->valuestring[0] ||
		    strlen(upstream->valuestring) >= sizeof(h->upstream)) {
			snprintf(
				err, errlen,
				"upstream: policy reroute needs the name of the upstream new sessions go to");
			goto fail;
		}
		snprintf(h->upstream, sizeof(h->upstream), "%s", upstream->valuestring);
	} else if (upstream) {
		snprintf(err, errlen, "upstream: only meaningful with policy reroute");
		goto fail;
	}
	cJSON_ArrayForEach(item, tables)
	{
		if (!cJSON_IsString(item) || !parse_table(item->valuestring, &h->tables[h->n_tables])) {
			snprintf(err, errlen,
				 "tables: \"%.80s\" is not a table name (\"schema.table\", \"table\" or "
				 "\"*\")",
				 cJSON_IsString(item) ? item->valuestring : "(not a string)");
			goto fail;
		}
		h->n_tables++;
	}
	if (id) {
		snprintf(h->id, sizeof(h->id), "%s", id->valuestring);
	} else {
		uint8_t rnd[8];

		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
			memset(rnd, 0, sizeof(rnd));
		snprintf(h->id, sizeof(h->id), "h-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
			 rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	}
	return h;
fail:
	free(h);
	return NULL;
}

const struct hold *hold_conflict(const struct hold_set *set, const struct classify_result *r, int upstream,
				 const char **table)
{
	bool writes_any = r->flags & CLASSIFY_UNKNOWN;

	for (int i = 0; i < r->n_refs && !writes_any; i++)
		writes_any = r->refs[i].access & CLASSIFY_WRITE;
	for (int i = 0; set && i < set->n; i++) {
		const struct hold *h = set->holds[i];

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

void hold_describe(const struct hold *h, cJSON *obj)
{
	cJSON *tables = cJSON_AddArrayToObject(obj, "tables");

	cJSON_AddStringToObject(obj, "id", h->id);
	for (int t = 0; t < h->n_tables; t++) {
		char name[2 * CLASSIFY_NAME_MAX + 2];

		snprintf(name, sizeof(name), "%s%s%s", h->tables[t].schema, h->tables[t].schema[0] ? "." : "",
			 h->tables[t].name);
		cJSON_AddItemToArray(tables, cJSON_CreateString(name));
	}
	cJSON_AddStringToObject(obj, "mode", hold_mode_name(h->mode));
	cJSON_AddStringToObject(obj, "policy", hold_policy_name(h->policy));
	cJSON_AddStringToObject(obj, "on_timeout",
				h->on_timeout == HOLD_TIMEOUT_REJECT ? "reject" : "release");
	cJSON_AddNumberToObject(obj, "lease_ms", (double)h->lease_ms);
	cJSON_AddNumberToObject(obj, "max_wait_ms", (double)h->max_wait_ms);
	if (h->policy == HOLD_REROUTE)
		cJSON_AddStringToObject(obj, "upstream", h->upstream);
}
