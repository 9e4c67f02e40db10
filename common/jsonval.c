/*
 * Checks on JSON values (see jsonval.h). Numbers arrive from cJSON as doubles:
 * an integer is a double inside the range asked for that has no fraction,
 * checked in that order because converting a double outside int64's range is
 * undefined. Messages are made safe to print on one line here, whatever the
 * keys and strings of the document hold.
 */
#include "pgvalve/jsonval.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jsonval_join(char *out, size_t cap, const char *path, const char *key)
{
	if (path && path[0])
		snprintf(out, cap, "%s.%s", path, key);
	else
		snprintf(out, cap, "%s", key);
}

const char *jsonval_describe(const cJSON *v, char *buf, size_t cap)
{
	if (cJSON_IsString(v))
		snprintf(buf, cap, "\"%.60s\"", v->valuestring);
	else if (cJSON_IsNumber(v) && v->valuedouble > -9e15 && v->valuedouble < 9e15 &&
		 v->valuedouble == (double)(long long)v->valuedouble)
		snprintf(buf, cap, "%lld", (long long)v->valuedouble);
	else if (cJSON_IsNumber(v))
		snprintf(buf, cap, "%g", v->valuedouble);
	else if (cJSON_IsBool(v))
		snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
	else if (cJSON_IsNull(v))
		snprintf(buf, cap, "null");
	else if (cJSON_IsArray(v))
		snprintf(buf, cap, "an array");
	else
		snprintf(buf, cap, "an object");
	return buf;
}

bool jsonval_vfail(char *err, size_t errlen, const char *path, const char *fmt, va_list ap)
{
	int n = 0;

	if (errlen == 0)
		return false;
	if (path && path[0])
		n = snprintf(err, errlen, "\"%.*s\": ", JSONVAL_PATH_MAX, path);
	if (n < 0)
		n = 0;
	if ((size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	/* Keys and strings come from outside: one printable line whatever they hold. */
	for (char *s = err; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	if (!err[0])
		snprintf(err, errlen, "?"); /* defensive: never an empty message */
	return false;
}

bool jsonval_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	jsonval_vfail(err, errlen, path, fmt, ap);
	va_end(ap);
	return false;
}

bool jsonval_object(const cJSON *v, const char *path, char *err, size_t errlen)
{
	char got[80];

	if (cJSON_IsObject(v))
		return true;
	return jsonval_fail(err, errlen, path, "expected an object, got %s",
			    jsonval_describe(v, got, sizeof(got)));
}

/* "a, b, c" of a NULL-terminated list into out[cap]. */
static void join_names(char *out, size_t cap, const char *const *names, const char *sep)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; names[i] && used < cap; i++) {
		int n = snprintf(out + used, cap - used, "%s%s", i ? sep : "", names[i]);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

bool jsonval_known_keys(const cJSON *obj, const char *path, const char *const *known, char *err,
			size_t errlen)
{
	const cJSON *item;
	uint64_t seen = 0;

	if (!jsonval_object(obj, path, err, errlen))
		return false;
	cJSON_ArrayForEach(item, obj)
	{
		char full[JSONVAL_PATH_MAX], list[512];
		int k = 0;

		while (known[k] && strcmp(item->string, known[k]) != 0)
			k++;
		jsonval_join(full, sizeof(full), path, item->string);
		if (!known[k]) {
			join_names(list, sizeof(list), known, ", ");
			return jsonval_fail(err, errlen, full, "unknown key (known: %s)", list);
		}
		/* A second copy would be ignored (lookups find the first): refuse it, as a typo. */
		if (k < 64 && (seen & (uint64_t)1 << k))
			return jsonval_fail(err, errlen, full, "given twice");
		if (k < 64)
			seen |= (uint64_t)1 << k;
	}
	return true;
}

bool jsonval_int(const cJSON *obj, const char *path, const char *key, int64_t lo, int64_t hi, int64_t *out,
		 char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	char full[JSONVAL_PATH_MAX], got[80];

	if (!v)
		return true;
	if (cJSON_IsNumber(v) && v->valuedouble >= (double)lo && v->valuedouble <= (double)hi &&
	    v->valuedouble == (double)(int64_t)v->valuedouble) {
		*out = (int64_t)v->valuedouble;
		return true;
	}
	jsonval_join(full, sizeof(full), path, key);
	return jsonval_fail(err, errlen, full, "expected an integer from %lld to %lld, got %s", (long long)lo,
			    (long long)hi, jsonval_describe(v, got, sizeof(got)));
}

bool jsonval_int32(const cJSON *obj, const char *path, const char *key, int lo, int hi, int *out, char *err,
		   size_t errlen)
{
	int64_t v = *out;

	if (!jsonval_int(obj, path, key, lo, hi, &v, err, errlen))
		return false;
	*out = (int)v;
	return true;
}

bool jsonval_enum(const cJSON *obj, const char *path, const char *key, const char *const *names, int *out,
		  char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	char full[JSONVAL_PATH_MAX], got[80], list[512];

	if (!v)
		return true;
	for (int i = 0; cJSON_IsString(v) && names[i]; i++) {
		if (strcmp(v->valuestring, names[i]) == 0) {
			*out = i;
			return true;
		}
	}
	jsonval_join(full, sizeof(full), path, key);
	join_names(list, sizeof(list), names, ", ");
	return jsonval_fail(err, errlen, full, "expected one of %s, got %s", list,
			    jsonval_describe(v, got, sizeof(got)));
}

bool jsonval_bool(const cJSON *obj, const char *path, const char *key, bool *out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	char full[JSONVAL_PATH_MAX], got[80];

	if (!v)
		return true;
	if (cJSON_IsBool(v)) {
		*out = cJSON_IsTrue(v);
		return true;
	}
	jsonval_join(full, sizeof(full), path, key);
	return jsonval_fail(err, errlen, full, "expected true or false, got %s",
			    jsonval_describe(v, got, sizeof(got)));
}

bool jsonval_string(const cJSON *obj, const char *path, const char *key, unsigned flags, char **out,
		    char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	char full[JSONVAL_PATH_MAX], got[80];
	char *copy;

	if (!v)
		return true;
	jsonval_join(full, sizeof(full), path, key);
	if ((flags & JSONVAL_NULLABLE) && cJSON_IsNull(v)) {
		free(*out);
		*out = NULL;
		return true;
	}
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return jsonval_fail(err, errlen, full, "expected a non-empty string%s, got %s",
				    flags & JSONVAL_NULLABLE ? " or null" : "",
				    jsonval_describe(v, got, sizeof(got)));
	copy = strdup(v->valuestring);
	if (!copy)
		return jsonval_fail(err, errlen, full, "out of memory");
	free(*out);
	*out = copy;
	return true;
}

bool jsonval_strings(const cJSON *obj, const char *path, const char *key, char **list, int *n, int max,
		     char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key), *item;
	char full[JSONVAL_PATH_MAX], got[80];
	int count;

	if (!v)
		return true;
	jsonval_join(full, sizeof(full), path, key);
	count = cJSON_GetArraySize(v);
	if (!cJSON_IsArray(v) || count > max)
		return jsonval_fail(err, errlen, full, "expected an array of at most %d strings, got %s%s",
				    max, cJSON_IsArray(v) ? "" : jsonval_describe(v, got, sizeof(got)),
				    cJSON_IsArray(v) ? "a longer one" : "");
	cJSON_ArrayForEach(item, v)
	{
		if (!cJSON_IsString(item))
			return jsonval_fail(err, errlen, full, "expected an array of strings, got %s in it",
					    jsonval_describe(item, got, sizeof(got)));
	}
	for (int i = 0; i < *n; i++)
		free(list[i]);
	*n = 0;
	cJSON_ArrayForEach(item, v)
	{
		char *copy = strdup(item->valuestring);

		if (!copy)
			return jsonval_fail(err, errlen, full, "out of memory");
		list[(*n)++] = copy;
	}
	return true;
}

void jsonval_strip_comments(char *text)
{
	char *p = text;

	while (*p) {
		if (*p == '"') {
			/* A string: skip it whole, an escape and the character it escapes together. */
			for (p++; *p && *p != '"'; p++)
				if (*p == '\\' && p[1])
					p++;
			if (*p)
				p++;
		} else if (p[0] == '/' && p[1] == '/') {
			while (*p && *p != '\n')
				*p++ = ' ';
		} else if (p[0] == '/' && p[1] == '*') {
			*p++ = ' ';
			*p++ = ' ';
			while (*p && !(p[0] == '*' && p[1] == '/')) {
				if (*p != '\n')
					*p = ' ';
				p++;
			}
			if (*p) {
				*p++ = ' ';
				*p++ = ' ';
			}
		} else {
			p++;
		}
	}
}
