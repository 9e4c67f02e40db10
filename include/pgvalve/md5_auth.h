/*
 * PostgreSQL's md5 password authentication
 * (https://www.postgresql.org/docs/15/auth-password.html), both ends, from a
 * stored hash "md5" + hex(md5(password + username)) and never a password:
 * the server end checks a client's PasswordMessage against the hash and the
 * 4-byte salt sent in AuthenticationMD5Password; the client end answers a
 * server's salt with the same hash. Both answers are "md5" +
 * hex(md5(hex_of_stored_hash + salt)). Framing the messages is the session's
 * business.
 */
#ifndef PGVALVE_MD5_AUTH_H
#define PGVALVE_MD5_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define MD5_AUTH_SALT_LEN 4
#define MD5_AUTH_LEN 35 /* "md5" + 32 hex digits, without the NUL */

/* 'text' is "md5" followed by 32 lower-case hex digits and nothing else. */
bool md5_auth_is_hash(const char *text);

/*
 * The response to 'salt' from 'stored' (an md5_auth_is_hash() string) into
 * out[MD5_AUTH_LEN + 1], NUL-terminated. False if 'stored' is not a hash or
 * the digest fails.
 */
bool md5_auth_response(const char *stored, const unsigned char salt[MD5_AUTH_SALT_LEN],
		       char out[MD5_AUTH_LEN + 1]) __attribute__((warn_unused_result));

/*
 * Whether the client's response (resp_len bytes, a trailing NUL not
 * counted) is the one md5_auth_response() computes, compared in constant
 * time. False for anything else, a malformed 'stored' included.
 */
bool md5_auth_check(const char *stored, const unsigned char salt[MD5_AUTH_SALT_LEN], const char *resp,
		    size_t resp_len) __attribute__((warn_unused_result));

/* The stored hash of a password for a role, as PostgreSQL computes it; for tests and tools. */
bool md5_auth_hash(const char *password, const char *username, char out[MD5_AUTH_LEN + 1])
	__attribute__((warn_unused_result));

#endif
