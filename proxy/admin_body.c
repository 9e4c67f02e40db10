/*
 * Admin request bodies (see admin_body.h). Numbers arrive as doubles: an
 * integer is one that survives the round trip through int64_t.
 */
#include "admin_body.h"

#include <stdio.h>
#include <string.h>

bool admin_body_known_keys(const cJSON *body, const char *const *keys, char *err, size_t errlen)
{
	const cJSON *item;

	if (!cJSON_IsObject(body)) {
		snprintf(err, errlen, "expected a JSON object");
		return false;
	}
	cJSON_ArrayForEach(item, body)
	{
		bool known = false;

		for (const char *const *k = keys; *k; k++)
			known |= strcmp(item->string, *k) == 0;
		if (!known) {
			snprintf(err, errlen, "%s: unknown key", item->string);
			return false;
		}
	}
	return true;
}

bool admin_body_ms(const cJSON *body, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out,
		   char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);

	*out = def;
	if (!v)
		return true;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)min && v->valuedouble <= (double)max) ||
	    v->valuedouble != (double)(int64_t)v->valuedouble) {
		snprintf(err, errlen, "%s: expected an integer from %lld to %lld (milliseconds)", key,
			 (long long)min, (long long)max);
		return false;
	}
	*out = (int64_t)v->valuedouble;
	return true;
}

bool admin_body_enum(const cJSON *body, const char *key, const char *const *names, int n, int def, int *out,
		     char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
	size_t used;

	*out = def;
	if (!v)
		return true;
	for (int i = 0; cJSON_IsString(v) && i < n; i++) {
		if (strcmp(v->valuestring, names[i]) == 0) {
			*out = i;
			return true;
		}
	}
	used = (size_t)snprintf(err, errlen, "%s: expected one of", key);
	for (int i = 0; i < n && used < errlen; i++)
		used += (size_t)snprintf(err + used, errlen - used, "%s %s", i ? "," : "", names[i]);
	return false;
}
