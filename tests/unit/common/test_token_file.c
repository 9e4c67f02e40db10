/*
 * Unit tests for common/token_file.c: the first line without its line end,
 * the minimum and maximum length, control characters refused, and messages
 * that name the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgvalve/token_file.h"

static char path[64];

static int setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/pgvalve_token_XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void write_file(const char *bytes, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, len, f), len);
	fclose(f);
}

/* The token read from a file holding 'text', or NULL with the message in err. */
static char *read_text(const char *text, char *err, size_t errlen)
{
	write_file(text, strlen(text));
	return token_file_read(path, err, errlen);
}

static void expect_token(const char *text, const char *token)
{
	char err[512];
	char *t = read_text(text, err, sizeof(err));

	if (!t)
		fail_msg("refused \"%s\": %s", text, err);
	assert_string_equal(t, token);
	free(t);
}

static void expect_refused(const char *text, const char *needle)
{
	char err[512];
	char *t = read_text(text, err, sizeof(err));

	if (t)
		fail_msg("accepted \"%s\" as \"%s\"", text, t);
	if (!strstr(err, needle) || !strstr(err, path))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\" or the path", text, err, needle);
}

static void test_first_line(void **state)
{
	(void)state;
	expect_token("s3cret-token-0123456789", "s3cret-token-0123456789");
	expect_token("s3cret-token-0123456789\n", "s3cret-token-0123456789");
	expect_token("s3cret-token-0123456789\r\n", "s3cret-token-0123456789");
	expect_token("s3cret-token-0123456789\r", "s3cret-token-0123456789");
	expect_token("s3cret-token-0123456789\nsecond line\n", "s3cret-token-0123456789");
	expect_token("with inner spaces kept\n", "with inner spaces kept");
}

static void test_length(void **state)
{
	char big[TOKEN_FILE_MAX + 3];

	(void)state;
	expect_token("0123456789abcdef\n", "0123456789abcdef");
	expect_refused("0123456789abcde\n", "at least 16 characters");
	expect_refused("", "at least 16 characters");
	expect_refused("\n0123456789abcdef\n", "at least 16 characters");

	memset(big, 'a', TOKEN_FILE_MAX);
	big[TOKEN_FILE_MAX] = '\0';
	expect_token(big, big);
	strcpy(big + TOKEN_FILE_MAX, "\r\n");
	write_file(big, TOKEN_FILE_MAX + 2);
	{
		char err[256], *t = token_file_read(path, err, sizeof(err));

		assert_non_null(t);
		assert_int_equal(strlen(t), TOKEN_FILE_MAX);
		free(t);
	}
	big[TOKEN_FILE_MAX] = 'a';
	big[TOKEN_FILE_MAX + 1] = '\0';
	expect_refused(big, "longer than 1024 characters");
}

static void test_controls(void **state)
{
	char err[256], *t;

	(void)state;
	expect_refused("0123456789\tabcdef\n", "control character (byte 11)");
	write_file("0123456789abcdef\0zz\n", 20);
	t = token_file_read(path, err, sizeof(err));
	assert_null(t);
	assert_non_null(strstr(err, "control character (byte 17)"));
}

static void test_missing(void **state)
{
	char err[256];

	(void)state;
	assert_null(token_file_read("/nonexistent/token", err, sizeof(err)));
	assert_string_equal(err, "cannot open \"/nonexistent/token\": No such file or directory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_controls, setup, teardown),
		cmocka_unit_test(test_missing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
