/*
 * Checking JSON documents against what a reader expects: the one validator
 * behind the proxy's config file, the admin API's request bodies and the
 * coordinator's config file. Every check names the value by its dotted path
 * and says what was expected and what came, in one wording:
 *
 *     "limits.max_message_bytes": expected an integer from 1024 to 1073741824, got "big"
 *     "upstream.sslmode": expected one of disable, prefer, require, verify-full, got "on"
 *     "limits.max_clinets": unknown key (known: max_clients, max_message_bytes, parse_max_bytes)
 *
 * A getter takes the containing object, its path ("" at the top) and a key.
 * An absent key leaves *out untouched (the caller's default stands) and is
 * not an error. Every failure returns false with 'err' filled: one line,
 * NUL-terminated, never empty, cut to errlen. No check allocates but
 * jsonval_string() and jsonval_strings(), which say "out of memory" when that
 * fails.
 */
#ifndef PGVALVE_JSONVAL_H
#define PGVALVE_JSONVAL_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Blanks out // and block comments in the JSON 'text', in place, so config
 * files can explain themselves: each comment character becomes a space (line
 * breaks stay), so positions in parse errors still point where they did.
 * Strings are left exactly as they are, escapes included — cJSON_Minify is
 * not used because it loses track of a string that ends in an escaped
 * backslash ("C:\\") and then strips the spaces of every later string. An
 * unterminated block comment is blanked to the end.
 */
void jsonval_strip_comments(char *text);

/* Paths and keys are cut to this in messages. */
#define JSONVAL_PATH_MAX 256

/* The path of 'key' inside 'path' ("limits" + "max_clients" = "limits.max_clients") into out[cap]. */
void jsonval_join(char *out, size_t cap, const char *path, const char *key);

/* A short rendering of 'v' for "got ...": "\"text\"" (cut), 42, 2.5, true, null, an array, an object. */
const char *jsonval_describe(const cJSON *v, char *buf, size_t cap);

/*
 * Writes '"<path>": <message>' into err[errlen]; returns false, for
 * 'return jsonval_fail(...)'. What every other check uses, and what callers
 * use for their own rules, so all messages read alike.
 */
bool jsonval_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
bool jsonval_vfail(char *err, size_t errlen, const char *path, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

/* 'v' is an object; else '"<path>": expected an object, got ...'. */
bool jsonval_object(const cJSON *v, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * 'obj' is an object whose every key is one of 'known' (NULL-terminated, at
 * most 64 of them checked for repeats), each at most once; else the first
 * stranger, '"<path>.<key>": unknown key (known: a, b, c)', or repeat,
 * '"<path>.<key>": given twice'.
 */
bool jsonval_known_keys(const cJSON *obj, const char *path, const char *const *known, char *err,
			size_t errlen) __attribute__((warn_unused_result));

/*
 * obj[key] as an integer from 'lo' to 'hi' (a JSON number with no fraction;
 * 1e3 counts, 2.5 does not). Values beyond int64 are refused like any other
 * out-of-range value.
 */
bool jsonval_int(const cJSON *obj, const char *path, const char *key, int64_t lo, int64_t hi, int64_t *out,
		 char *err, size_t errlen) __attribute__((warn_unused_result));

/* jsonval_int() for an int; 'lo' and 'hi' must lie within int's range. */
bool jsonval_int32(const cJSON *obj, const char *path, const char *key, int lo, int hi, int *out, char *err,
		   size_t errlen) __attribute__((warn_unused_result));

/*
 * obj[key] as one of 'names' (NULL-terminated, compared exactly): its index
 * into *out.
 */
bool jsonval_enum(const cJSON *obj, const char *path, const char *key, const char *const *names, int *out,
		  char *err, size_t errlen) __attribute__((warn_unused_result));

/* obj[key] as true or false. */
bool jsonval_bool(const cJSON *obj, const char *path, const char *key, bool *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* jsonval_string(): null is accepted and sets *out to NULL (an optional file, say). */
#define JSONVAL_NULLABLE 0x1u

/*
 * obj[key] as a non-empty string: *out is freed and replaced by a malloc'd
 * copy. With JSONVAL_NULLABLE, null frees *out and sets it to NULL.
 */
bool jsonval_string(const cJSON *obj, const char *path, const char *key, unsigned flags, char **out,
		    char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * obj[key] as an array of at most 'max' strings (each may be empty): the
 * 'n' strings in list[] are freed and replaced by malloc'd copies. On failure
 * list[] holds what was copied so far (*n of them), for the caller to free.
 */
bool jsonval_strings(const cJSON *obj, const char *path, const char *key, char **list, int *n, int max,
		     char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
