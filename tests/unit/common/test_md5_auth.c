/*
 * Unit tests for common/md5_auth.c: PostgreSQL's md5 hash of a password, the
 * response to a salt computed from the stored hash alone, and the check of a
 * client's response. The expected values were computed with Python's
 * hashlib: 'md5' + md5(b'secretalice').hexdigest(), then
 * 'md5' + md5(hex.encode() + b'\x01\x02\x03\x04').hexdigest().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pgvalve/md5_auth.h"

#define STORED "md54a0a68b43b6cd5cf266fa02f196e2371"
#define RESPONSE "md598a0412b9c31436fc53776e863350083"

static const unsigned char salt[MD5_AUTH_SALT_LEN] = { 1, 2, 3, 4 };

static void test_hash(void **state)
{
	char out[MD5_AUTH_LEN + 1];

	(void)state;
	assert_true(md5_auth_hash("secret", "alice", out));
	assert_string_equal(out, STORED);
	assert_true(md5_auth_is_hash(out));
}

static void test_response_from_stored_hash(void **state)
{
	char out[MD5_AUTH_LEN + 1];

	(void)state;
	assert_true(md5_auth_response(STORED, salt, out));
	assert_string_equal(out, RESPONSE);
	assert_false(md5_auth_response("md5nothex", salt, out));
	assert_false(md5_auth_response("SCRAM-SHA-256$4096:x$y:z", salt, out));
}

static void test_check(void **state)
{
	static const unsigned char other_salt[MD5_AUTH_SALT_LEN] = { 1, 2, 3, 5 };

	(void)state;
	assert_true(md5_auth_check(STORED, salt, RESPONSE, strlen(RESPONSE)));
	/* another salt (a replayed answer), a changed digit, short, long, an upper-case copy */
	assert_false(md5_auth_check(STORED, other_salt, RESPONSE, strlen(RESPONSE)));
	assert_false(md5_auth_check(STORED, salt, "md598a0412b9c31436fc53776e863350084", MD5_AUTH_LEN));
	assert_false(md5_auth_check(STORED, salt, RESPONSE, MD5_AUTH_LEN - 1));
	assert_false(md5_auth_check(STORED, salt, RESPONSE "0", MD5_AUTH_LEN + 1));
	assert_false(md5_auth_check(STORED, salt, "MD598A0412B9C31436FC53776E863350083", MD5_AUTH_LEN));
	/* a malformed stored hash never matches, even itself */
	assert_false(md5_auth_check("md5", salt, "md5", 3));
}

static void test_is_hash(void **state)
{
	(void)state;
	assert_true(md5_auth_is_hash(STORED));
	assert_false(
		md5_auth_is_hash("md54A0A68B43B6CD5CF266FA02F196E2371")); /* PostgreSQL's are lower-case */
	assert_false(md5_auth_is_hash("md54a0a68b43b6cd5cf266fa02f196e237"));
	assert_false(md5_auth_is_hash("md54a0a68b43b6cd5cf266fa02f196e23711"));
	assert_false(md5_auth_is_hash("xyz4a0a68b43b6cd5cf266fa02f196e2371"));
	assert_false(md5_auth_is_hash(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_response_from_stored_hash),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_is_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
