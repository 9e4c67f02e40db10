/*
 * Unit tests for proxy/lease.c: entries found by id, newest first, counted;
 * renewing writes the item's lease; removing hands the item back; a lease
 * nobody renews reaches the owner's callback on the loop, which takes the
 * entry off, and a removed entry's timer never fires.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lease.h"

struct item {
	char id[16];
	int64_t lease_ms;
};

static struct lease_list list;
static int n_expired;
static struct item *last_expired;

static void on_expired(struct leased *l)
{
	n_expired++;
	last_expired = lease_remove(l);
}

static struct leased *add(struct item *it, const char *id, int64_t lease_ms)
{
	struct leased *l;

	strcpy(it->id, id);
	it->lease_ms = lease_ms;
	l = lease_add(&list, it, it->id, &it->lease_ms);
	assert_non_null(l);
	return l;
}

static int setup(void **state)
{
	memset(&list, 0, sizeof(list));
	lease_list_init(&list, event_base_new(), on_expired);
	n_expired = 0;
	last_expired = NULL;
	return list.base ? 0 : -1;
}

static int teardown(void **state)
{
	while (list.head)
		(void)lease_remove(list.head);
	event_base_free(list.base);
	return 0;
}

static void test_find_and_count(void **state)
{
	struct item a, b;

	add(&a, "a", 60000);
	add(&b, "b", 60000);
	assert_int_equal(list.n, 2);
	assert_ptr_equal(list.head->item, &b); /* newest first */
	assert_ptr_equal(lease_peek(&list, "a"), &a);
	assert_ptr_equal(lease_peek(&list, "b"), &b);
	assert_null(lease_peek(&list, "c"));
	assert_null(lease_find(&list, ""));
}

static void test_renew(void **state)
{
	struct item a;

	add(&a, "a", 60000);
	assert_true(lease_renew(&list, "a", 120000));
	assert_int_equal(a.lease_ms, 120000);
	assert_false(lease_renew(&list, "nope", 5));
}

static void test_remove_returns_item(void **state)
{
	struct item a, b, c;
	struct leased *mid;

	add(&a, "a", 60000);
	mid = add(&b, "b", 60000);
	add(&c, "c", 60000);
	assert_ptr_equal(lease_remove(mid), &b);
	assert_int_equal(list.n, 2);
	assert_null(lease_peek(&list, "b"));
	assert_ptr_equal(lease_peek(&list, "a"), &a);
	assert_ptr_equal(lease_peek(&list, "c"), &c);
}

static void test_expiry_reaches_owner(void **state)
{
	struct item a;

	add(&a, "a", 1);
	/* The loop runs until no event is pending: the one timer fires, the callback removes it. */
	assert_int_equal(event_base_dispatch(list.base), 1);
	assert_int_equal(n_expired, 1);
	assert_ptr_equal(last_expired, &a);
	assert_int_equal(list.n, 0);
}

static void test_removed_never_fires(void **state)
{
	struct item a, b;

	add(&a, "a", 1);
	add(&b, "b", 2);
	(void)lease_remove(lease_find(&list, "a"));
	assert_int_equal(event_base_dispatch(list.base), 1);
	assert_int_equal(n_expired, 1);
	assert_ptr_equal(last_expired, &b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_find_and_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_returns_item, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_reaches_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removed_never_fires, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
