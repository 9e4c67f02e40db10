/*
 * Reading the JSON bodies of admin calls (holds, renew, switchover): only
 * known keys, integers in range, one of a set of names. Each check fills
 * 'err' with a message that starts with the key, as the API's 400 answers do.
 */
#ifndef PGVALVE_PROXY_ADMIN_BODY_H
#define PGVALVE_PROXY_ADMIN_BODY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 'body' is an object whose keys are all in 'keys' (NULL-terminated). */
bool admin_body_known_keys(const cJSON *body, const char *const *keys, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* body[key]: absent → 'def', else an integer from 'min' to 'max' (milliseconds). */
bool admin_body_ms(const cJSON *body, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out,
		   char *err, size_t errlen) __attribute__((warn_unused_result));

/* body[key]: absent → 'def', else the index of the one of 'names' (n of them) it equals. */
bool admin_body_enum(const cJSON *body, const char *key, const char *const *names, int n, int def, int *out,
		     char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
