/*
 * Observation definitions (see observe.h): reading a POST /observe body and
 * describing an observation. Table names follow holds' rules (hold.c), less
 * "*": a latency is reported per table, and "every table" names none.
 */
#include "observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_body.h"
#include "pgvalve/jsonval.h"

#define TABLE_NAMES "table names (\"schema.table\" or \"table\")"

struct observation *observe_parse(const cJSON *body, char *err, size_t errlen)
{
	const cJSON *tables = cJSON_GetObjectItemCaseSensitive(body, ADMIN_OBSERVE_TABLES);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, ADMIN_OBSERVE_ID);
	const cJSON *item;
	struct observation *o;
	char got[80];

	if (!admin_body_known_keys(body, admin_observe_keys, err, errlen) ||
	    !admin_body_list(tables, ADMIN_OBSERVE_TABLES, ADMIN_OBSERVE_MAX_TABLES, TABLE_NAMES, err,
			     errlen) ||
	    !admin_body_id(id, err, errlen))
		return NULL;
	o = calloc(1, sizeof(*o) + (size_t)cJSON_GetArraySize(tables) * sizeof(o->tables[0]));
	if (!o) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!admin_body_ms(body, ADMIN_OBSERVE_LEASE_MS, ADMIN_OBSERVE_DEFAULT_LEASE_MS, 1, ADMIN_HOLD_MAX_MS,
			   &o->lease_ms, err, errlen))
		goto fail;
	cJSON_ArrayForEach(item, tables)
	{
		struct hold_table *t = &o->tables[o->n_tables];
		bool dup = false;

		if (!cJSON_IsString(item) || !hold_table_parse(item->valuestring, t) ||
		    strcmp(t->name, "*") == 0) {
			jsonval_fail(err, errlen, ADMIN_OBSERVE_TABLES,
				     "expected " TABLE_NAMES ", got %s in it",
				     jsonval_describe(item, got, sizeof(got)));
			goto fail;
		}
		for (int i = 0; i < o->n_tables && !dup; i++)
			dup = strcmp(o->tables[i].schema, t->schema) == 0 &&
				strcmp(o->tables[i].name, t->name) == 0;
		if (!dup) /* named twice: observed once */
			o->n_tables++;
	}
	if (id)
		snprintf(o->id, sizeof(o->id), "%s", id->valuestring);
	else
		hold_make_id(o->id, sizeof(o->id), 'o');
	return o;
fail:
	free(o);
	return NULL;
}

void observe_describe(const struct observation *o, cJSON *obj)
{
	cJSON *tables;

	cJSON_AddStringToObject(obj, ADMIN_OBSERVE_ID, o->id);
	tables = cJSON_AddArrayToObject(obj, ADMIN_OBSERVE_TABLES);
	for (int t = 0; t < o->n_tables; t++) {
		char name[HOLD_TABLE_NAME_MAX];

		cJSON_AddItemToArray(tables,
				     cJSON_CreateString(hold_table_name(&o->tables[t], name, sizeof(name))));
	}
	cJSON_AddNumberToObject(obj, ADMIN_OBSERVE_LEASE_MS, (double)o->lease_ms);
}

int observe_set_find(const struct observe_set *set, const char *name)
{
	for (int i = 0; set && i < set->n; i++)
		if (strcmp(set->tables[i].name, name) == 0)
			return i;
	return -1;
}
