/*
 * Unit tests for coordinator/array_literal.c: the array literals the
 * coordinator sends as $n::int[], $n::oid[] and $n::text[] parameters —
 * "{}" for none, elements joined by ',', text double-quoted with '"' and
 * '\' escaped, and no length limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "array_literal.h"

static void test_empty(void **state)
{
	struct strbuf b = { 0 };
	char *s;

	(void)state;
	s = array_literal_take(&b);
	assert_string_equal(s, "{}");
	free(s);
	assert_null(b.s);
}

static void test_numbers(void **state)
{
	struct strbuf b = { 0 };
	char *s;

	(void)state;
	array_literal_add_int(&b, 42);
	array_literal_add_int(&b, -7);
	array_literal_add(&b, "16384");
	s = array_literal_take(&b);
	assert_string_equal(s, "{42,-7,16384}");
	free(s);
}

static void test_text(void **state)
{
	struct strbuf b = { 0 };
	char *s;

	(void)state;
	array_literal_add_text(&b, "a");
	array_literal_add_text(&b, "b\"c\\d");
	array_literal_add_text(&b, "");
	array_literal_add_text(&b, "x, {y}");
	s = array_literal_take(&b);
	assert_string_equal(s, "{\"a\",\"b\\\"c\\\\d\",\"\",\"x, {y}\"}");
	free(s);
}

/* Thousands of elements: none is dropped (a fixed buffer would have cut the list). */
static void test_long(void **state)
{
	struct strbuf b = { 0 };
	char *s;
	size_t commas = 0;

	(void)state;
	for (int i = 0; i < 5000; i++)
		array_literal_add_int(&b, 1000000 + i);
	s = array_literal_take(&b);
	for (const char *p = s; *p; p++)
		commas += *p == ',';
	assert_int_equal(commas, 4999);
	assert_memory_equal(s, "{1000000,1000001,", 17);
	assert_string_equal(s + strlen(s) - 9, ",1004999}");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_long),
	};

	return cmocka_run_group_tests_name("coordinator/array_literal", tests, NULL, NULL);
}
