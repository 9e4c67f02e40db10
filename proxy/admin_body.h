/*
 * Reading the JSON bodies of admin calls (holds, renew, switchover): only
 * known keys, integers in range, one of a set of names, in jsonval.h's
 * wording ('"lease_ms": expected an integer from 1 to 3600000, got -5'), with
 * the key names and name lists of admin_api.h. What a valid body then does is
 * the business of hold.c, hold_registry.c and switchover.c.
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

/*
 * body[key]: absent → 'def', else the index of the one of 'names' it equals.
 * 'names' has n entries, or with n < 0 is NULL-terminated (admin_api.h's lists).
 */
bool admin_body_enum(const cJSON *body, const char *key, const char *const *names, int n, int def, int *out,
		     char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * 'list' (body[key]) is an array of 1 to 'max' items; else 'err' says so,
 * calling the items 'what' ("table names (...)").
 */
bool admin_body_list(const cJSON *list, const char *key, int max, const char *what, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* body["id"] of a hold or an observation, when given (not NULL): admin_hold_id_valid(). */
bool admin_body_id(const cJSON *id, char *err, size_t errlen) __attribute__((warn_unused_result));

/* POST /holds/{id}/renew and /observe/{id}/renew: {"lease_ms"}; absent → 'current_ms' (the hold's lease). */
bool admin_body_renew(const cJSON *body, int64_t current_ms, int64_t *lease_ms, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* POST /switchover, before the upstream's name is looked up in the config. */
struct admin_switchover_body {
	const char *upstream; /* borrowed from the body */
	int64_t drain_ms;
	bool terminate; /* on_drain_timeout "terminate" (else "close_at_idle") */
};

/* Reads a POST /switchover body; 'max_drain_ms' caps drain_ms. */
bool admin_body_switchover(const cJSON *body, int64_t max_drain_ms, struct admin_switchover_body *out,
			   char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
