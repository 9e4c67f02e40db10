/*
 * Unit tests for proxy/stmt.c: a session's named prepared statements. The
 * map (put, peek, replace, remove, Close of an unknown name, growth past 16
 * slots, unknown text, the count and byte bounds, clear) driven through
 * whole batches the server accepted; then the queue of unanswered messages:
 * a Parse or Close takes effect only on its ParseComplete/CloseComplete, an
 * error drops the rest of its batch up to Sync, pipelined batches stay
 * apart, a Bind finds a statement parsed earlier in its own batch, and
 * answers that do not line up make the map forget everything. The Asan
 * build checks that nothing leaks and that SQL text is read only up to its
 * given length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stmt.h"

/* A batch Parse + Sync the server accepted ('sql' 'sql_len' bytes, NULL: text unknown). */
static void stmt_put(struct stmt_map *m, const char *name, const char *sql, size_t sql_len)
{
	stmt_parse_sent(m, name, sql, sql_len);
	stmt_sync_sent(m);
	stmt_parse_complete(m);
	stmt_ready(m);
}

/* A batch Close + Sync the server accepted. */
static void stmt_remove(struct stmt_map *m, const char *name)
{
	stmt_close_sent(m, true, name);
	stmt_sync_sent(m);
	stmt_close_complete(m);
	stmt_ready(m);
}

/* What a Bind sent now would be judged by; NULL also when stmt_lookup() is not certain. */
static const struct stmt *find(const struct stmt_map *m, const char *name)
{
	bool uncertain;

	return stmt_lookup(m, name, &uncertain);
}

static bool uncertain(const struct stmt_map *m, const char *name)
{
	bool u;

	(void)stmt_lookup(m, name, &u);
	return u;
}

/* Puts a NUL-terminated 'sql' (NULL: text unknown). */
static void put(struct stmt_map *m, const char *name, const char *sql)
{
	stmt_put(m, name, sql, sql ? strlen(sql) : 0);
}

/* 'name' is known with exactly this text (NULL: known, text unknown). */
static void assert_stmt(const struct stmt_map *m, const char *name, const char *sql)
{
	const struct stmt *st = stmt_peek(m, name);

	assert_non_null(st);
	assert_string_equal(st->name, name);
	if (sql)
		assert_string_equal(st->sql, sql);
	else
		assert_null(st->sql);
}

/* What the map charges for one entry: the same as a map holding only that entry. */
static size_t bytes_of(const char *name, const char *sql)
{
	struct stmt_map m = { 0 };
	size_t n;

	put(&m, name, sql);
	n = m.bytes;
	stmt_clear(&m);
	return n;
}

static void test_empty_map(void **state)
{
	struct stmt_map m = { 0 };

	assert_null(stmt_peek(&m, "s1"));
	stmt_remove(&m, "s1"); /* Close before any Parse */
	assert_int_equal(m.count, 0);
	assert_null(m.slots);
	stmt_clear(&m);
	assert_int_equal(m.count, 0);
}

static void test_put_peek_remove(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "s1", "SELECT 1");
	put(&m, "s2", "UPDATE orders SET paid = true WHERE id = $1");
	assert_int_equal(m.count, 2);
	assert_false(m.overflowed);
	assert_stmt(&m, "s1", "SELECT 1");
	assert_stmt(&m, "s2", "UPDATE orders SET paid = true WHERE id = $1");
	assert_null(stmt_peek(&m, "s3"));
	assert_null(stmt_peek(&m, "s")); /* names match whole, not by prefix */
	assert_null(stmt_peek(&m, "s10"));
	assert_int_equal(m.bytes,
			 bytes_of("s1", "SELECT 1") +
				 bytes_of("s2", "UPDATE orders SET paid = true WHERE id = $1"));
	stmt_remove(&m, "s1");
	assert_null(stmt_peek(&m, "s1"));
	assert_stmt(&m, "s2", "UPDATE orders SET paid = true WHERE id = $1");
	assert_int_equal(m.count, 1);
	stmt_remove(&m, "s2");
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
}

/* The text is 'sql_len' bytes, not necessarily NUL-terminated there (a body in the relay buffer). */
static void test_sql_taken_by_length(void **state)
{
	struct stmt_map m = { 0 };
	char *sql = malloc(8); /* exactly "SELECT 1", no NUL: Asan catches a read past it */

	assert_non_null(sql);
	memcpy(sql, "SELECT 1", 8);
	stmt_put(&m, "s1", sql, 8);
	free(sql);
	assert_stmt(&m, "s1", "SELECT 1");
	stmt_put(&m, "s2", "SELECT 1; DROP TABLE t", 8);
	assert_stmt(&m, "s2", "SELECT 1");
	stmt_put(&m, "s3", "", 0);
	assert_stmt(&m, "s3", ""); /* empty text is known text */
	stmt_clear(&m);
}

static void test_replace(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "s1", "SELECT 1");
	put(&m, "s1", "DELETE FROM orders");
	assert_int_equal(m.count, 1);
	assert_stmt(&m, "s1", "DELETE FROM orders");
	assert_int_equal(m.bytes, bytes_of("s1", "DELETE FROM orders"));
	put(&m, "s1", NULL);
	assert_int_equal(m.count, 1);
	assert_stmt(&m, "s1", NULL);
	assert_int_equal(m.bytes, bytes_of("s1", NULL));
	put(&m, "s1", "SELECT 2");
	assert_stmt(&m, "s1", "SELECT 2");
	assert_int_equal(m.count, 1);
	stmt_clear(&m);
}

static void test_close_of_unknown_name(void **state)
{
	struct stmt_map m = { 0 };
	size_t bytes;

	put(&m, "s1", "SELECT 1");
	bytes = m.bytes;
	stmt_remove(&m, "s2");
	stmt_remove(&m, "");
	stmt_remove(&m, "s1 ");
	assert_int_equal(m.count, 1);
	assert_int_equal(m.bytes, bytes);
	assert_false(m.overflowed);
	assert_stmt(&m, "s1", "SELECT 1");
	stmt_remove(&m, "s1");
	stmt_remove(&m, "s1"); /* twice: the second is a Close of an unknown name */
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
}

static void test_unknown_text(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "big", NULL);
	assert_int_equal(m.count, 1);
	assert_false(m.overflowed); /* known name, unknown text: not an overflow */
	assert_stmt(&m, "big", NULL);
	assert_int_equal(m.bytes, bytes_of("big", NULL));
	assert_true(m.bytes < bytes_of("big", "x"));
	stmt_remove(&m, "big");
	assert_null(stmt_peek(&m, "big"));
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
}

/* Past 16 slots the table grows, and every statement stays reachable, before and after removals. */
static void test_growth(void **state)
{
	struct stmt_map m = { 0 };
	char name[32], sql[64];
	const int n = 1000;

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		put(&m, name, sql);
		if (i == 15)
			assert_int_equal(m.n_slots, 16);
	}
	assert_int_equal(m.count, n);
	assert_false(m.overflowed);
	assert_true(m.n_slots > 16);
	assert_true(m.n_slots >= (uint32_t)n);
	assert_int_equal(m.n_slots & (m.n_slots - 1), 0); /* a power of two */
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		assert_stmt(&m, name, sql);
	}
	for (int i = 0; i < n; i += 2) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		stmt_remove(&m, name);
	}
	assert_int_equal(m.count, n / 2);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		if (i % 2)
			assert_stmt(&m, name, sql);
		else
			assert_null(stmt_peek(&m, name));
	}
	for (int i = 1; i < n; i += 2) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		stmt_remove(&m, name);
	}
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
}

/* STMT_MAX_COUNT statements fit; one more and the map forgets every name, and says so. */
static void test_count_bound(void **state)
{
	struct stmt_map m = { 0 };
	char name[32];

	for (int i = 0; i < STMT_MAX_COUNT; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		put(&m, name, "SELECT 1");
	}
	assert_int_equal(m.count, STMT_MAX_COUNT);
	assert_false(m.overflowed);
	/* Replacing a known name at the bound works: the old entry makes room. */
	put(&m, "s7", "SELECT 7");
	assert_stmt(&m, "s7", "SELECT 7");
	assert_int_equal(m.count, STMT_MAX_COUNT);
	put(&m, "one_more", "SELECT 2");
	assert_true(m.overflowed);
	assert_null(find(&m, "one_more"));
	assert_null(find(&m, "s7")); /* nothing is trusted any more */
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	/* And nothing is tracked after: a caller treats every name as unknown. */
	put(&m, "s8", "SELECT 8");
	assert_null(find(&m, "s8"));
	assert_int_equal(m.ops_n, 0);
	stmt_clear(&m);
}

/* An entry costing exactly STMT_MAX_BYTES fits; one byte more does not (and all is forgotten). */
static void test_byte_bound(void **state)
{
	struct stmt_map m = { 0 };
	size_t fixed = bytes_of("a", ""), len = STMT_MAX_BYTES - fixed;
	char *sql = malloc(len + 2);

	assert_non_null(sql);
	memset(sql, 'x', len + 1);
	sql[len + 1] = '\0';
	stmt_put(&m, "a", sql, len);
	assert_false(m.overflowed);
	assert_int_equal(m.bytes, STMT_MAX_BYTES);
	assert_non_null(stmt_peek(&m, "a"));
	assert_int_equal(strlen(stmt_peek(&m, "a")->sql), len);
	put(&m, "b", NULL); /* the smallest entry no longer fits */
	assert_true(m.overflowed);
	assert_null(find(&m, "b"));
	assert_null(find(&m, "a"));
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);

	stmt_put(&m, "a", sql, len + 1); /* one byte over on its own */
	assert_true(m.overflowed);
	assert_null(find(&m, "a"));
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);
	free(sql);
}

/* ---- the queue of unanswered messages ------------------------------------- */

/* 42P05: a Parse of a name that exists fails; the server keeps the old statement, so must we. */
static void test_failed_parse_keeps_the_old_statement(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "s1", "INSERT INTO orders VALUES (1)");
	stmt_parse_sent(&m, "s1", "SELECT 1", 8);
	assert_string_equal(find(&m, "s1")->sql, "SELECT 1"); /* what a Bind in the batch would use */
	stmt_sync_sent(&m);
	stmt_error(&m);
	stmt_ready(&m);
	assert_stmt(&m, "s1", "INSERT INTO orders VALUES (1)");
	assert_string_equal(find(&m, "s1")->sql, "INSERT INTO orders VALUES (1)");
	assert_int_equal(m.ops_n, 0);
	assert_int_equal(m.bytes, bytes_of("s1", "INSERT INTO orders VALUES (1)"));
	stmt_clear(&m);
}

/* P(a) B E P(b) C(c) S: a is confirmed, then Execute fails; b and the Close of c never happen. */
static void test_error_drops_the_rest_of_the_batch(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "c", "SELECT 3");
	stmt_parse_sent(&m, "a", "SELECT 1", 8);
	stmt_parse_sent(&m, "b", "SELECT 2", 8);
	stmt_close_sent(&m, true, "c");
	assert_null(find(&m, "c")); /* a Bind after the Close finds nothing */
	stmt_sync_sent(&m);
	stmt_parse_complete(&m); /* a */
	stmt_error(&m);          /* the Execute of a */
	stmt_ready(&m);
	assert_stmt(&m, "a", "SELECT 1");
	assert_null(find(&m, "b"));
	assert_stmt(&m, "c", "SELECT 3"); /* the Close was skipped */
	assert_false(m.overflowed);
	assert_int_equal(m.ops_n, 0);
	stmt_clear(&m);
}

/* Two pipelined batches: an error in the second leaves the first's effects alone. */
static void test_pipelined_batches_stay_apart(void **state)
{
	struct stmt_map m = { 0 };

	stmt_parse_sent(&m, "a", "SELECT 1", 8);
	stmt_sync_sent(&m);
	stmt_parse_sent(&m, "b", "SELECT 2", 8);
	assert_string_equal(find(&m, "b")->sql, "SELECT 2"); /* a Bind in b's own batch */
	stmt_sync_sent(&m);
	stmt_sync_sent(&m); /* a simple Query, pipelined too */
	/* A Bind in a later batch: b exists only if its Parse succeeds, not known yet. */
	assert_true(uncertain(&m, "b"));
	assert_null(find(&m, "b"));
	assert_false(uncertain(&m, "c")); /* untouched names are as confirmed */
	assert_null(stmt_peek(&m, "a"));  /* not confirmed yet */
	stmt_parse_complete(&m);
	assert_stmt(&m, "a", "SELECT 1");
	stmt_ready(&m);
	stmt_error(&m); /* b fails */
	stmt_ready(&m);
	assert_null(find(&m, "b"));
	assert_int_equal(m.ops_n, 1);
	stmt_error(&m); /* the Query fails: nothing queued to drop */
	stmt_ready(&m);
	assert_int_equal(m.ops_n, 0);
	assert_stmt(&m, "a", "SELECT 1");
	assert_false(m.overflowed);
	stmt_clear(&m);
}

/* A Parse or Close in the Bind's own batch settles what an unanswered earlier batch left open. */
static void test_own_batch_settles_an_uncertain_name(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "s", "SELECT 1");
	stmt_close_sent(&m, true, "s");
	stmt_parse_sent(&m, "s", "DELETE FROM t", 13);
	stmt_sync_sent(&m);
	assert_true(uncertain(&m, "s")); /* the old or the new text: depends on that batch */
	stmt_close_sent(&m, true, "s");
	assert_false(uncertain(&m, "s"));
	assert_null(find(&m, "s")); /* closed: a Bind would fail */
	stmt_parse_sent(&m, "s", "SELECT 2", 8);
	assert_string_equal(find(&m, "s")->sql, "SELECT 2");
	stmt_sync_sent(&m);
	stmt_close_complete(&m);
	stmt_parse_complete(&m);
	stmt_ready(&m);
	stmt_close_complete(&m);
	stmt_parse_complete(&m);
	stmt_ready(&m);
	assert_stmt(&m, "s", "SELECT 2");
	assert_false(uncertain(&m, "s"));
	stmt_clear(&m);
}

/* Unnamed statements and portal Closes hold a place in the queue but name nothing. */
static void test_unnamed_and_portals_keep_answers_in_line(void **state)
{
	struct stmt_map m = { 0 };

	stmt_parse_sent(&m, "", "SELECT 1", 8);
	stmt_close_sent(&m, false, "portal");
	stmt_close_sent(&m, true, "");
	stmt_parse_sent(&m, "s", "SELECT 2", 8);
	stmt_sync_sent(&m);
	stmt_parse_complete(&m);
	stmt_close_complete(&m);
	stmt_close_complete(&m);
	stmt_parse_complete(&m);
	stmt_ready(&m);
	assert_false(m.overflowed);
	assert_int_equal(m.count, 1);
	assert_stmt(&m, "s", "SELECT 2");
	assert_null(find(&m, ""));
	stmt_clear(&m);
}

/* Answers that do not match what was sent: nothing can be trusted, so everything is forgotten. */
static void test_answers_out_of_line_forget_everything(void **state)
{
	struct stmt_map m = { 0 };

	put(&m, "s1", "SELECT 1");
	stmt_parse_complete(&m); /* nothing was sent */
	assert_true(m.overflowed);
	assert_null(find(&m, "s1"));
	stmt_clear(&m);

	put(&m, "s1", "SELECT 1");
	stmt_parse_sent(&m, "s2", "SELECT 2", 8);
	stmt_sync_sent(&m);
	stmt_close_complete(&m); /* a CloseComplete for a Parse */
	assert_true(m.overflowed);
	assert_int_equal(m.count, 0);
	assert_int_equal(m.ops_n, 0);
	assert_int_equal(m.bytes, 0);
	stmt_clear(&m);

	stmt_parse_sent(&m, NULL, NULL, 0); /* a Parse whose name could not be read */
	assert_true(m.overflowed);
	stmt_clear(&m);
}

/* More than STMT_MAX_PENDING unanswered messages: forgotten, bounded. */
static void test_pending_bound(void **state)
{
	struct stmt_map m = { 0 };

	for (int i = 0; i < STMT_MAX_PENDING; i++)
		stmt_parse_sent(&m, "", "SELECT 1", 8);
	assert_false(m.overflowed);
	assert_int_equal(m.ops_n, STMT_MAX_PENDING);
	stmt_sync_sent(&m);
	assert_true(m.overflowed);
	assert_int_equal(m.ops_n, 0);
	stmt_ready(&m); /* late answers are ignored */
	stmt_parse_complete(&m);
	assert_int_equal(m.ops_n, 0);
	stmt_clear(&m);
}

/* The ring wraps around while answers keep pace with a client that always has a batch in flight. */
static void test_ring_wraps(void **state)
{
	struct stmt_map m = { 0 };
	char name[16], sql[32];

	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "s%d", i % 7);
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		stmt_parse_sent(&m, name, sql, strlen(sql));
		assert_string_equal(find(&m, name)->sql, sql);
		stmt_sync_sent(&m);
		if (i > 0) { /* answer the previous batch */
			stmt_parse_complete(&m);
			stmt_ready(&m);
		}
	}
	assert_true(m.ops_cap <= 16);
	assert_false(m.overflowed);
	stmt_clear(&m);
}

static void test_clear(void **state)
{
	struct stmt_map m = { 0 };
	char name[32];

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		put(&m, name, i % 3 ? "SELECT 1" : NULL);
	}
	m.overflowed = true;
	stmt_clear(&m);
	assert_null(m.slots);
	assert_int_equal(m.n_slots, 0);
	assert_int_equal(m.count, 0);
	assert_int_equal(m.bytes, 0);
	assert_false(m.overflowed);
	assert_null(stmt_peek(&m, "s1"));
	put(&m, "s1", "SELECT 1"); /* usable again */
	assert_stmt(&m, "s1", "SELECT 1");
	stmt_clear(&m);
	stmt_clear(&m); /* twice is harmless */
}

/* ---- statement refresh (stmt_refresh.h) --------------------------------- */

/* A RowDescription body of one column "id" of type 'type'. */
static uint32_t one_column(uint8_t *b, uint32_t type)
{
	static const uint8_t tmpl[] = { 0, 1, 'i', 'd', 0, 0,    0,    0x40, 0,    0, 1, 0,
					0, 0, 0,   0,   0, 0xff, 0xff, 0xff, 0xff, 0, 0 };

	memcpy(b, tmpl, sizeof(tmpl));
	b[14] = (uint8_t)type; /* type oid, low byte (20 int8, 23 int4) */
	b[16] = type == 20 ? 8 : 4;
	return sizeof(tmpl);
}

static void test_describe_records_what_the_client_was_shown(void **state)
{
	struct stmt_map m = { 0 };
	uint8_t rd[64], pd[6] = { 0, 1, 0, 0, 0, 23 };
	uint32_t n = one_column(rd, 23);
	struct stmt *st;

	(void)state;
	stmt_parse_sent_typed(&m, "s1", "SELECT id FROM t WHERE id = $1", 30, (const uint8_t *)"\0\0\0\0", 1);
	stmt_describe_sent(&m, "s1");
	stmt_sync_sent(&m);
	assert_false(stmt_parse_complete(&m));
	assert_false(stmt_param_desc(&m, pd, sizeof(pd), sizeof(pd)));
	assert_int_equal(stmt_row_desc(&m, rd, n, n), 0);
	stmt_ready(&m);
	st = stmt_peek(&m, "s1");
	assert_non_null(st);
	assert_int_equal(st->n_types, 1);
	assert_int_equal(st->types[0], 0);
	assert_int_equal(st->n_shown_params, 1);
	assert_int_equal(st->shown_params[0], 23);
	assert_int_equal(st->shown.n, 1);
	assert_int_equal(st->shown.cols[0].type, 23);
	/* a later Describe changes nothing of what was shown first */
	stmt_describe_sent(&m, "s1");
	stmt_sync_sent(&m);
	n = one_column(rd, 20);
	assert_false(stmt_param_desc(&m, pd, sizeof(pd), sizeof(pd)));
	assert_int_equal(stmt_row_desc(&m, rd, n, n), 0);
	stmt_ready(&m);
	assert_int_equal(stmt_peek(&m, "s1")->shown.cols[0].type, 23);
	stmt_clear(&m);
}

static void test_reprepare_answers_are_taken_out(void **state)
{
	struct stmt_map m = { 0 };
	uint8_t rd[64], pd[6] = { 0, 1, 0, 0, 0, 23 };
	uint32_t n = one_column(rd, 23);
	struct stmt *st;

	(void)state;
	stmt_put(&m, "s1", "SELECT id FROM t", 16);
	st = stmt_peek(&m, "s1");
	/* shown through a Describe: int4 */
	stmt_describe_sent(&m, "s1");
	stmt_sync_sent(&m);
	assert_false(stmt_param_desc(&m, pd, sizeof(pd), sizeof(pd)));
	assert_int_equal(stmt_row_desc(&m, rd, n, n), 0);
	stmt_ready(&m);
	st->stale = true;
	/* the re-prepare: Close, Parse, Describe, all the proxy's */
	stmt_refresh_sent(&m, st);
	assert_true(stmt_close_complete(&m));
	assert_ptr_equal(stmt_peek(&m, "s1"), st); /* the client's statement stays */
	assert_true(stmt_parse_complete(&m));
	assert_false(st->stale);
	assert_true(stmt_param_desc(&m, pd, sizeof(pd), sizeof(pd)));
	n = one_column(rd, 20);
	assert_int_equal(stmt_row_desc(&m, rd, n, n), 1);
	assert_true(m.refreshed);
	assert_non_null(st->map); /* int8 now, presented as the int4 shown */
	/* the client's own Describe of it: the int4 it was shown */
	stmt_describe_sent(&m, "s1");
	stmt_sync_sent(&m);
	assert_false(stmt_param_desc(&m, pd, sizeof(pd), sizeof(pd)));
	assert_int_equal(stmt_row_desc(&m, rd, n, n), 0); /* passed on; stmt_refresh.c presents it */
	stmt_ready(&m);
	assert_int_equal(m.injected, 0);
	stmt_clear(&m);
}

static void test_failed_reprepare_stays_stale_and_survives_forget(void **state)
{
	struct stmt_map m = { 0 };
	struct stmt *st;

	(void)state;
	stmt_put(&m, "s1", "SELECT 1", 8);
	st = stmt_peek(&m, "s1");
	st->stale = true;
	stmt_refresh_sent(&m, st);
	stmt_sync_sent(&m);
	assert_true(stmt_close_complete(&m));
	stmt_error(&m); /* Parse failed (25P02, say): Describe skipped */
	assert_true(m.refreshed);
	assert_true(stmt_peek(&m, "s1")->stale);
	stmt_ready(&m);
	/* forgetting while the proxy's own messages are unanswered keeps them in line */
	m.refreshed = false;
	st = stmt_peek(&m, "s1");
	stmt_refresh_sent(&m, st);
	stmt_forget(&m);
	assert_true(stmt_close_complete(&m));
	assert_true(stmt_parse_complete(&m));
	assert_false(stmt_parse_complete(&m)); /* past them: the client's own, and nothing known */
	stmt_clear(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_map),
		cmocka_unit_test(test_put_peek_remove),
		cmocka_unit_test(test_sql_taken_by_length),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_close_of_unknown_name),
		cmocka_unit_test(test_unknown_text),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_count_bound),
		cmocka_unit_test(test_byte_bound),
		cmocka_unit_test(test_failed_parse_keeps_the_old_statement),
		cmocka_unit_test(test_error_drops_the_rest_of_the_batch),
		cmocka_unit_test(test_pipelined_batches_stay_apart),
		cmocka_unit_test(test_own_batch_settles_an_uncertain_name),
		cmocka_unit_test(test_unnamed_and_portals_keep_answers_in_line),
		cmocka_unit_test(test_answers_out_of_line_forget_everything),
		cmocka_unit_test(test_pending_bound),
		cmocka_unit_test(test_ring_wraps),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_describe_records_what_the_client_was_shown),
		cmocka_unit_test(test_reprepare_answers_are_taken_out),
		cmocka_unit_test(test_failed_reprepare_stays_stale_and_survives_forget),
	};

	setvbuf(stdout, NULL, _IONBF, 0); /* a sanitizer abort must not swallow the results */
	return cmocka_run_group_tests_name("proxy/stmt", tests, NULL, NULL);
}
