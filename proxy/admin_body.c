/*
 * Admin request bodies (see admin_body.h): thin shapes over jsonval.h, whose
 * messages name a body's keys by themselves (the body is the top level).
 */
#include "admin_body.h"

#include <stdio.h>
#include <string.h>

#include "pgvalve/admin_api.h"
#include "pgvalve/jsonval.h"

#define NAMES_MAX 16 /* the longest list admin_body_enum is given */

bool admin_body_known_keys(const cJSON *body, const char *const *keys, char *err, size_t errlen)
{
	return jsonval_object(body, "(body)", err, errlen) && jsonval_known_keys(body, "", keys, err, errlen);
}

bool admin_body_ms(const cJSON *body, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out,
		   char *err, size_t errlen)
{
	*out = def;
	return jsonval_int(body, "", key, min, max, out, err, errlen);
}

bool admin_body_enum(const cJSON *body, const char *key, const char *const *names, int n, int def, int *out,
		     char *err, size_t errlen)
{
	const char *list[NAMES_MAX + 1];
	int count = 0;

	while (count < NAMES_MAX && (n < 0 ? names[count] != NULL : count < n)) {
		list[count] = names[count];
		count++;
	}
	list[count] = NULL;
	*out = def;
	return jsonval_enum(body, "", key, list, out, err, errlen);
}

bool admin_body_list(const cJSON *list, const char *key, int max, const char *what, char *err, size_t errlen)
{
	int n = cJSON_GetArraySize(list);
	char got[80];

	if (cJSON_IsArray(list) && n >= 1 && n <= max)
		return true;
	return jsonval_fail(err, errlen, key, "expected an array of 1 to %d %s, got %s", max, what,
			    !list                          ? "nothing"
				    : !cJSON_IsArray(list) ? jsonval_describe(list, got, sizeof(got))
				    : n < 1                ? "an empty one"
							   : "a longer one");
}

bool admin_body_id(const cJSON *id, char *err, size_t errlen)
{
	char got[80];

	if (!id || (cJSON_IsString(id) && admin_hold_id_valid(id->valuestring)))
		return true;
	return jsonval_fail(
		err, errlen, ADMIN_HOLD_ID,
		"expected 1 to %d letters, digits, '-', '_', '.' or ':' (not \".\" or \"..\"), got %s",
		ADMIN_HOLD_ID_MAX - 1, jsonval_describe(id, got, sizeof(got)));
}

bool admin_body_renew(const cJSON *body, int64_t current_ms, int64_t *lease_ms, char *err, size_t errlen)
{
	return admin_body_known_keys(body, admin_renew_keys, err, errlen) &&
		admin_body_ms(body, ADMIN_HOLD_LEASE_MS, current_ms, 1, ADMIN_HOLD_MAX_MS, lease_ms, err,
			      errlen);
}

bool admin_body_switchover(const cJSON *body, int64_t max_drain_ms, struct admin_switchover_body *out,
			   char *err, size_t errlen)
{
	const cJSON *up = cJSON_GetObjectItemCaseSensitive(body, ADMIN_SWITCHOVER_UPSTREAM);
	int terminate = 0;
	char got[80];

	memset(out, 0, sizeof(*out));
	if (!admin_body_known_keys(body, admin_switchover_keys, err, errlen))
		return false;
	if (!cJSON_IsString(up))
		return jsonval_fail(err, errlen, ADMIN_SWITCHOVER_UPSTREAM,
				    "expected the name of a configured upstream, got %s",
				    up ? jsonval_describe(up, got, sizeof(got)) : "nothing");
	if (!admin_body_ms(body, ADMIN_SWITCHOVER_DRAIN_MS, ADMIN_SWITCHOVER_DEFAULT_DRAIN_MS, 0,
			   max_drain_ms, &out->drain_ms, err, errlen) ||
	    !admin_body_enum(body, ADMIN_SWITCHOVER_ON_DRAIN_TIMEOUT, admin_switchover_on_drain_timeouts, -1,
			     0, &terminate, err, errlen))
		return false;
	out->upstream = up->valuestring;
	out->terminate = terminate == 1;
	return true;
}
