/*
 * Unit tests for coordinator/watch_rules.c: every form of the --rollback-on
 * grammar and its errors, printing back, the defaults, the spans a rule set
 * asks the proxies for, summing /errors answers, and the verdict at its
 * boundaries (exactly at a limit never trips), with the sentence saying why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "watch_rules.h"
#include "unit_assert.h"

#define LATENCY_FORMS "read_p99 > Kx baseline + Tms [in Ss] (read or write; p50, p95, p99 or max)"

static struct watch_rule parse_ok(const char *text)
{
	struct watch_rule r;
	char err[512];

	if (!watch_rule_parse(text, &r, err, sizeof(err)))
		fail_msg("rejected \"%s\": %s", text, err);
	return r;
}

/* 'text' must be rejected with exactly 'message' after the 'rollback rule "TEXT": ' prefix. */
static void parse_fails(const char *text, const char *message)
{
	struct watch_rule r;
	char err[512], want[512];

	if (watch_rule_parse(text, &r, err, sizeof(err)))
		fail_msg("accepted \"%s\"", text);
	snprintf(want, sizeof(want), "rollback rule \"%s\": %s", text, message);
	assert_string_equal(err, want);
}

/* 'text' prints back as 'canonical', which parses to the same rule. */
static void assert_canonical(const char *text, const char *canonical)
{
	struct watch_rule r = parse_ok(text), again;
	char out[256];

	watch_rule_format(&r, out, sizeof(out));
	assert_string_equal(out, canonical);
	again = parse_ok(out);
	assert_memory_equal(&r, &again, sizeof(r));
}

/* -------------------------------------------------------------- a watch tick */

static const char *const new_constraints[] = { "orders_customer_id_fkey", "fk2" };

struct tick {
	struct watch_input in;
	cJSON *docs[4];
	const cJSON *answers[4];
	cJSON *baseline;
	char why[1024];
};

/* A tick 'elapsed_s' after the cutover with the given summed answers (JSON text; NULL ends). */
static void tick_init(struct tick *t, int elapsed_s, const char *baseline, const char *a1, const char *a2)
{
	const char *texts[] = { a1, a2 };

	memset(t, 0, sizeof(*t));
	t->in.elapsed_s = elapsed_s;
	t->in.new_constraints = new_constraints;
	t->in.n_new_constraints = 2;
	for (int i = 0; i < 2 && texts[i]; i++) {
		t->docs[i] = cJSON_Parse(texts[i]);
		assert_non_null(t->docs[i]);
		t->answers[i] = t->docs[i];
		t->in.n_answers++;
	}
	t->in.answers = t->answers;
	if (baseline) {
		t->baseline = cJSON_Parse(baseline);
		assert_non_null(t->baseline);
		t->in.baseline = t->baseline;
	}
}

static void tick_free(struct tick *t)
{
	for (int i = 0; i < 4; i++)
		cJSON_Delete(t->docs[i]);
	cJSON_Delete(t->baseline);
}

/* Evaluates one rule on one tick. */
static enum watch_result eval1(const char *rule, struct tick *t)
{
	struct watch_rule r = parse_ok(rule);

	return watch_evaluate(&r, 1, &t->in, t->why, sizeof(t->why));
}

/* ------------------------------------------------------------------ grammar */

static void test_parse_forms(void **state)
{
	struct watch_rule r;

	(void)state;
	r = parse_ok("constraint_violations > 1%");
	assert_int_equal(r.kind, WATCH_VIOLATION_SHARE);
	assert_int_equal(r.share_ppm, 10000);
	assert_int_equal(r.span_s, 0);
	r = parse_ok("constraint_violations > 0.25% in 60s");
	assert_int_equal(r.share_ppm, 2500);
	assert_int_equal(r.span_s, 60);
	r = parse_ok("constraint_violations > 5 in 10s");
	assert_int_equal(r.kind, WATCH_VIOLATION_COUNT);
	assert_int_equal(r.count, 5);
	assert_int_equal(r.span_s, 10);
	r = parse_ok("constraint_violations > 0");
	assert_int_equal(r.count, 0);
	assert_int_equal(r.span_s, 0);
	r = parse_ok("error_rate > 3x baseline + 1/s");
	assert_int_equal(r.kind, WATCH_ERROR_RATE);
	assert_int_equal(r.factor_milli, 3000);
	assert_int_equal(r.per_s_milli, 1000);
	assert_int_equal(r.span_s, 10);
	r = parse_ok("error_rate > 1.5x baseline in 30s");
	assert_int_equal(r.factor_milli, 1500);
	assert_int_equal(r.per_s_milli, 0);
	assert_int_equal(r.span_s, 30);
	r = parse_ok("error_rate > 0.25/s");
	assert_int_equal(r.factor_milli, 0);
	assert_int_equal(r.per_s_milli, 250);
	r = parse_ok("errors{sqlstate=23505} > 5 in 10s");
	assert_int_equal(r.kind, WATCH_SQLSTATE_COUNT);
	assert_string_equal(r.sqlstate, "23505");
	assert_int_equal(r.count, 5);
	r = parse_ok("errors{sqlstate=22p02} > 0");
	assert_string_equal(r.sqlstate, "22P02");
	assert_int_equal(r.span_s, 0);
}

static void test_parse_blanks_and_case(void **state)
{
	struct watch_rule r;

	(void)state;
	r = parse_ok("CONSTRAINT_VIOLATIONS>1%");
	assert_int_equal(r.share_ppm, 10000);
	r = parse_ok("  constraint_violations  >  1 %  IN 20 S ");
	assert_int_equal(r.share_ppm, 10000);
	assert_int_equal(r.span_s, 20);
	r = parse_ok("Error_Rate>3X BASELINE+1/S");
	assert_int_equal(r.factor_milli, 3000);
	assert_int_equal(r.per_s_milli, 1000);
	r = parse_ok("errors { SQLSTATE = 40p01 } > 2 in 5s");
	assert_string_equal(r.sqlstate, "40P01");
	assert_int_equal(r.span_s, 5);
}

static void test_parse_errors(void **state)
{
	(void)state;
	parse_fails("",
		    "empty; expected constraint_violations > P% | constraint_violations > N [in Ss] | "
		    "error_rate > Kx baseline + R/s [in Ss] | errors{sqlstate=XXXXX} > N [in Ss] "
		    "| " LATENCY_FORMS);
	parse_fails("   ",
		    "empty; expected constraint_violations > P% | constraint_violations > N [in Ss] | "
		    "error_rate > Kx baseline + R/s [in Ss] | errors{sqlstate=XXXXX} > N [in Ss] "
		    "| " LATENCY_FORMS);
	parse_fails("latency > 5",
		    "\"latency\" is not something a rule watches; expected constraint_violations "
		    "> P% | constraint_violations > N [in Ss] | error_rate > Kx baseline + R/s "
		    "[in Ss] | errors{sqlstate=XXXXX} > N [in Ss] | " LATENCY_FORMS);
	parse_fails("#$%",
		    "\"#$%\" is not something a rule watches; expected constraint_violations > P% | "
		    "constraint_violations > N [in Ss] | error_rate > Kx baseline + R/s [in Ss] | "
		    "errors{sqlstate=XXXXX} > N [in Ss] | " LATENCY_FORMS);
	parse_fails("constraint_violations 1%",
		    "expected \">\" after \"constraint_violations\", found \"1%\"");
	parse_fails("constraint_violations >= 1%",
		    "\">=\" is not supported: a rule trips on strictly more (\">\")");
	parse_fails("constraint_violations >",
		    "expected a number of violations (5) or a share of statements (1%), found \"(the end)\"");
	parse_fails("constraint_violations > 2.5",
		    "a number of violations is whole (or add \"%\" for a share)");
	parse_fails("constraint_violations > 150%", "a share of statements is at most 100%");
	parse_fails("constraint_violations > 0.00001%",
		    "\"0.00001\" has more than 4 decimals (a number of violations (5) or a share of "
		    "statements (1%))");
	parse_fails("constraint_violations > 1..2%", "\"1..2\" is not a number");
	parse_fails("constraint_violations > .5%", "\".5\" is not a number");
	parse_fails("constraint_violations > 5 in 0s",
		    "\"in 0s\" is not a span the proxies keep (1s to 300s)");
	parse_fails("constraint_violations > 5 in 301s",
		    "\"in 301s\" is not a span the proxies keep (1s to 300s)");
	parse_fails("constraint_violations > 5 in 1m",
		    "expected \"s\" after \"in 1\" (seconds), found \"m\"");
	parse_fails("constraint_violations > 5 in 1.5s",
		    "\"1.5\" is not a whole number (a span in seconds (in 10s))");
	parse_fails("constraint_violations > 5 in 10s please", "unexpected \"please\" at the end");
	parse_fails("constraint_violations > 5 within 10s", "unexpected \"within 10s\" at the end");
	parse_fails("errors > 5", "expected \"{sqlstate=XXXXX}\" after \"errors\"");
	parse_fails("errors{sqlstate=2350} > 5", "\"2350\" is not a SQLSTATE (5 characters, 0-9 and A-Z)");
	parse_fails("errors{sqlstate=23505 > 5", "expected \"}\" after \"sqlstate=23505\"");
	parse_fails("errors{sqlstate=23505} > 1.5", "\"1.5\" is not a whole number (a number of errors)");
	parse_fails("error_rate > 3y baseline",
		    "expected \"x baseline\" or \"/s\" after the number, found \"y baseline\"");
	parse_fails("error_rate > 3x", "expected \"baseline\" after \"x\", found \"(the end)\"");
	parse_fails("error_rate > 3x baseline + 1",
		    "expected \"x baseline\" or \"/s\" after the number, found "
		    "\"(the end)\"");
	parse_fails("error_rate > 3",
		    "expected \"x baseline\" or \"/s\" after the number, found \"(the end)\"");
	parse_fails("error_rate > 0.0001/s",
		    "\"0.0001\" has more than 3 decimals (a factor (3x baseline) or a rate (1/s))");
}

/* Long numbers: refused whole, never cut to a smaller one or overflowed (found by fuzz_watch_rules). */
static void test_parse_long_numbers(void **state)
{
	struct watch_rule r;

	(void)state;
	parse_fails("error_rate > 0.00019992350399999999999/s",
		    "\"0.00019992350399999999999\" has more than 3 decimals (a factor (3x baseline) or a "
		    "rate (1/s))");
	parse_fails(
		"constraint_violations > 0000000000000000000000000000000005",
		"\"0000000000000000000000000000000\xe2\x80\xa6\" is too long for a number of violations (5) "
		"or a share of statements (1%)");
	parse_fails("constraint_violations > 1234567890123",
		    "\"1234567890123\" is too large for a number of "
		    "violations (5) or a share of statements (1%)");
	/* Leading zeros are not significant digits. */
	r = parse_ok("constraint_violations > 0000000000000005");
	assert_int_equal(r.count, 5);
	r = parse_ok("constraint_violations > 999999999999");
	assert_int_equal(r.count, 999999999999LL);
}

static void test_format_round_trip(void **state)
{
	static const char *const canonical[] = {
		"constraint_violations > 1%",        "constraint_violations > 0.0001%",
		"constraint_violations > 100%",      "constraint_violations > 2.5% in 60s",
		"constraint_violations > 5 in 10s",  "constraint_violations > 0",
		"error_rate > 3x baseline + 1/s",    "error_rate > 1.25x baseline",
		"error_rate > 0.5/s in 30s",         "error_rate > 0/s",
		"errors{sqlstate=23505} > 5 in 10s", "errors{sqlstate=40P01} > 0",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(canonical) / sizeof(canonical[0]); i++)
		assert_canonical(canonical[i], canonical[i]);
	assert_canonical("error_rate > 3x baseline + 1/s in 10s", "error_rate > 3x baseline + 1/s");
	assert_canonical("constraint_violations > 1.50%", "constraint_violations > 1.5%");
	assert_canonical("ERROR_RATE > 3.000X BASELINE + 1.0/S", "error_rate > 3x baseline + 1/s");
	assert_canonical("errors{sqlstate=22p02}>3 in 5 s", "errors{sqlstate=22P02} > 3 in 5s");
	assert_canonical("error_rate > 0x baseline", "error_rate > 0/s");
}

static void test_defaults(void **state)
{
	struct watch_rule rules[WATCH_MAX_RULES];
	char out[128];
	int n;

	(void)state;
	watch_rules_default(rules, &n);
	assert_int_equal(n, 3);
	watch_rule_format(&rules[0], out, sizeof(out));
	assert_string_equal(out, "constraint_violations > 1%");
	watch_rule_format(&rules[1], out, sizeof(out));
	assert_string_equal(out, "constraint_violations > 5 in 10s");
	watch_rule_format(&rules[2], out, sizeof(out));
	assert_string_equal(out, "error_rate > 3x baseline + 1/s");
	for (int i = 0; i < n; i++) {
		struct watch_rule parsed;

		watch_rule_format(&rules[i], out, sizeof(out));
		parsed = parse_ok(out);
		assert_memory_equal(&parsed, &rules[i], sizeof(parsed));
	}
	assert_int_equal(watch_rules_longest_s(rules, n), 10);
}

static void test_spans(void **state)
{
	struct watch_rule rules[WATCH_MAX_RULES];
	int n, spans[WATCH_MAX_SPANS];

	(void)state;
	watch_rules_default(rules, &n);
	/* In the cutover's own second: "since" is 1 s, and 5-in-10s counts only since the cutover too. */
	assert_int_equal(watch_spans(rules, n, 1, spans), 2);
	assert_int_equal(spans[0], 1);
	assert_int_equal(spans[1], 10);
	assert_int_equal(watch_spans(rules, n, 5, spans), 2);
	assert_int_equal(spans[0], 5);
	assert_int_equal(spans[1], 10);
	assert_int_equal(watch_spans(rules, n, 10, spans), 1);
	assert_int_equal(spans[0], 10);
	assert_int_equal(watch_spans(rules, n, 45, spans), 2);
	assert_int_equal(spans[0], 10);
	assert_int_equal(spans[1], 45);
	/* The proxies keep 300 s: "since the cutover" stops growing there. */
	assert_int_equal(watch_spans(rules, n, 1000, spans), 2);
	assert_int_equal(spans[1], 300);
	rules[0] = parse_ok("error_rate > 2/s in 120s");
	assert_int_equal(watch_rule_span(&rules[0], 3), 120);
	assert_int_equal(watch_rules_longest_s(rules, n), 120);
	assert_int_equal(watch_spans(rules, 0, 5, spans), 0);
}

/*
 * A proxy's window_s=N is the wall-clock seconds (now - N, now]: the span
 * since a cutover must reach back to the cutover's own second.
 */
static void test_elapsed_includes_the_cutovers_second(void **state)
{
	struct watch_rule rules[WATCH_MAX_RULES];
	int n, spans[WATCH_MAX_SPANS];
	time_t cutover = 1700000000;

	(void)state;
	assert_int_equal(watch_elapsed_s(cutover, cutover), 1);
	assert_int_equal(watch_elapsed_s(cutover, cutover + 1), 2);
	assert_int_equal(watch_elapsed_s(cutover, cutover + 9), 10);
	/* A clock stepped back still asks for the current second. */
	assert_int_equal(watch_elapsed_s(cutover, cutover - 5), 1);
	/* The proxies keep 300 s. */
	assert_int_equal(watch_elapsed_s(cutover, cutover + 299), 300);
	assert_int_equal(watch_elapsed_s(cutover, cutover + 100000), 300);
	/* One second after the cutover's: "since the cutover" is two seconds, the cutover's and this one. */
	rules[0] = parse_ok("constraint_violations > 3");
	n = 1;
	assert_int_equal(watch_spans(rules, n, watch_elapsed_s(cutover, cutover + 1), spans), 1);
	assert_int_equal(spans[0], 2);
}

/* ----------------------------------------------------------------- summing */

static void test_errors_sum(void **state)
{
	cJSON *a = cJSON_Parse("{\"window_s\":10,\"statements\":100,\"errors\":4,"
			       "\"by_sqlstate\":{\"23503\":3,\"40P01\":1},\"by_table\":{\"orders\":3},"
			       "\"by_constraint\":{\"fk2\":3}}");
	cJSON *b = cJSON_Parse("{\"window_s\":10,\"statements\":50,\"errors\":2,"
			       "\"by_sqlstate\":{\"23503\":2},\"by_table\":{},"
			       "\"by_constraint\":{\"fk2\":1,\"orders_customer_id_fkey\":1}}");
	const cJSON *answers[] = { a, b };
	char err[256];
	cJSON *sum = watch_errors_sum(answers, 2, err, sizeof(err));
	char *text;

	(void)state;
	assert_non_null(sum);
	text = cJSON_PrintUnformatted(sum);
	assert_string_equal(text,
			    "{\"by_sqlstate\":{\"23503\":5,\"40P01\":1},\"by_table\":{\"orders\":3},"
			    "\"by_constraint\":{\"fk2\":4,\"orders_customer_id_fkey\":1},"
			    "\"window_s\":10,\"statements\":150,\"errors\":6}");
	cJSON_free(text);
	cJSON_Delete(sum);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

/* Summing 'json1' and 'json2' fails with 'message'. */
static void sum_fails(const char *json1, const char *json2, const char *message)
{
	cJSON *a = cJSON_Parse(json1), *b = cJSON_Parse(json2);
	const cJSON *answers[] = { a, b };
	char err[256];

	assert_null(watch_errors_sum(answers, 2, err, sizeof(err)));
	assert_string_equal(err, message);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

static void test_errors_sum_refuses(void **state)
{
	static const char *const good = "{\"window_s\":10,\"statements\":1,\"errors\":0}";
	char err[256];

	(void)state;
	assert_null(watch_errors_sum(NULL, 0, err, sizeof(err)));
	assert_string_equal(err, "no /errors answers to sum");
	sum_fails(good, "{\"window_s\":20,\"statements\":1,\"errors\":0}",
		  "/errors answer 1: window_s 20, the others 10");
	sum_fails(good, "{\"window_s\":10,\"statements\":-1,\"errors\":0}",
		  "/errors answer 1: \"statements\" is not a count");
	sum_fails(good, "{\"window_s\":10,\"statements\":1}", "/errors answer 1: \"errors\" is not a count");
	sum_fails(good, "{\"window_s\":10,\"statements\":1,\"errors\":0,\"by_constraint\":{\"fk\":\"3\"}}",
		  "/errors answer 1: \"by_constraint.fk\" is not a count");
	sum_fails(good, "{\"window_s\":10,\"statements\":1,\"errors\":0,\"by_table\":[]}",
		  "/errors answer 1: \"by_table\" is not an object");
	sum_fails("[]", good, "/errors answer 0: expected an object with window_s from 1 to 300");
	sum_fails("{\"window_s\":0.5}", good,
		  "/errors answer 0: expected an object with window_s from 1 to 300");
}

/* --------------------------------------------------------------- evaluation */

static void test_share_boundary(void **state)
{
	struct tick t;

	(void)state;
	/* Exactly 1% of the statements since the cutover does not trip ... */
	tick_init(&t, 60, NULL,
		  "{\"window_s\":60,\"statements\":1000,\"errors\":10,\"by_constraint\":{\"fk2\":10}}", NULL);
	assert_int_equal(eval1("constraint_violations > 1%", &t), WATCH_OK);
	assert_string_equal(t.why, "");
	tick_free(&t);
	/* ... one more does; violations of other constraints do not count. */
	tick_init(&t, 60, NULL,
		  "{\"window_s\":60,\"statements\":1000,\"errors\":111,"
		  "\"by_constraint\":{\"fk2\":10,\"orders_customer_id_fkey\":1,\"old_fkey\":100}}",
		  NULL);
	assert_int_equal(eval1("constraint_violations > 1%", &t), WATCH_TRIPPED);
	assert_string_equal(t.why,
			    "constraint_violations > 1%: 11 violations of orders_customer_id_fkey (1), "
			    "fk2 (10) in 1000 statements (1.1%) since the cutover");
	tick_free(&t);
	tick_init(&t, 60, NULL,
		  "{\"window_s\":60,\"statements\":1000,\"errors\":100,\"by_constraint\":{\"old_fkey\":100}}",
		  NULL);
	assert_int_equal(eval1("constraint_violations > 0%", &t), WATCH_OK);
	tick_free(&t);
}

static void test_share_zero_statements(void **state)
{
	struct tick t;

	(void)state;
	tick_init(&t, 1, NULL, "{\"window_s\":1,\"statements\":0,\"errors\":3,\"by_constraint\":{\"fk2\":3}}",
		  NULL);
	assert_int_equal(eval1("constraint_violations > 1%", &t), WATCH_OK);
	/* The count rule still sees them. */
	assert_int_equal(eval1("constraint_violations > 2", &t), WATCH_TRIPPED);
	tick_free(&t);
	tick_init(&t, 1, NULL, "{\"window_s\":1,\"statements\":0,\"errors\":0}", NULL);
	assert_int_equal(eval1("constraint_violations > 0%", &t), WATCH_OK);
	assert_int_equal(eval1("error_rate > 3x baseline + 1/s in 1s", &t), WATCH_OK);
	tick_free(&t);
}

static void test_count_boundary_and_why(void **state)
{
	struct tick t;

	(void)state;
	tick_init(&t, 30, NULL,
		  "{\"window_s\":10,\"statements\":500,\"errors\":5,\"by_constraint\":{\"fk2\":5}}", NULL);
	assert_int_equal(eval1("constraint_violations > 5 in 10s", &t), WATCH_OK);
	tick_free(&t);
	tick_init(&t, 30, NULL,
		  "{\"window_s\":10,\"statements\":500,\"errors\":12,"
		  "\"by_constraint\":{\"orders_customer_id_fkey\":9,\"fk2\":3}}",
		  NULL);
	assert_int_equal(eval1("constraint_violations > 5 in 10s", &t), WATCH_TRIPPED);
	assert_string_equal(t.why,
			    "constraint_violations > 5 in 10s: 12 violations of orders_customer_id_fkey "
			    "(9), fk2 (3) in the last 10 s");
	tick_free(&t);
	/* Four seconds in, the 10 s rule reads the 4 s since the cutover. */
	tick_init(&t, 4, NULL,
		  "{\"window_s\":4,\"statements\":50,\"errors\":6,\"by_constraint\":{\"fk2\":6}}", NULL);
	assert_int_equal(eval1("constraint_violations > 5 in 10s", &t), WATCH_TRIPPED);
	assert_string_equal(t.why,
			    "constraint_violations > 5 in 10s: 6 violations of fk2 (6) since the cutover");
	tick_free(&t);
}

static void test_new_constraint_named_twice(void **state)
{
	static const char *const twice[] = { "fk2", "fk2" };
	struct tick t;

	(void)state;
	tick_init(&t, 30, NULL,
		  "{\"window_s\":10,\"statements\":500,\"errors\":4,\"by_constraint\":{\"fk2\":4}}", NULL);
	t.in.new_constraints = twice;
	assert_int_equal(eval1("constraint_violations > 5 in 10s", &t), WATCH_OK);
	tick_free(&t);
}

static void test_rate_against_baseline(void **state)
{
	static const char *const baseline = "{\"window_s\":30,\"statements\":3000,\"errors\":30}";
	struct tick t;

	(void)state;
	/* Baseline 1/s: the limit is 3 × 1/s + 1/s = 4/s, 40 errors in 10 s. */
	tick_init(&t, 30, baseline, "{\"window_s\":10,\"statements\":1000,\"errors\":40}", NULL);
	assert_int_equal(eval1("error_rate > 3x baseline + 1/s", &t), WATCH_OK);
	tick_free(&t);
	tick_init(&t, 30, baseline, "{\"window_s\":10,\"statements\":1000,\"errors\":41}", NULL);
	assert_int_equal(eval1("error_rate > 3x baseline + 1/s", &t), WATCH_TRIPPED);
	assert_string_equal(t.why,
			    "error_rate > 3x baseline + 1/s: 4.1 errors/s in the last 10 s, above 3 × "
			    "1/s + 1/s = 4/s");
	tick_free(&t);
	/* Fractions: baseline 2/s, 1.5 × 2/s + 0.5/s = 3.5/s over 20 s is 70 errors. */
	tick_init(&t, 30, "{\"window_s\":30,\"statements\":3000,\"errors\":60}",
		  "{\"window_s\":20,\"statements\":1000,\"errors\":70}", NULL);
	assert_int_equal(eval1("error_rate > 1.5x baseline + 0.5/s in 20s", &t), WATCH_OK);
	tick_free(&t);
	tick_init(&t, 30, "{\"window_s\":30,\"statements\":3000,\"errors\":60}",
		  "{\"window_s\":20,\"statements\":1000,\"errors\":71}", NULL);
	assert_int_equal(eval1("error_rate > 1.5x baseline + 0.5/s in 20s", &t), WATCH_TRIPPED);
	tick_free(&t);
}

static void test_rate_without_baseline(void **state)
{
	struct tick t;

	(void)state;
	/* No baseline measured (or none seen): the limit is R alone. */
	tick_init(&t, 30, NULL, "{\"window_s\":10,\"statements\":1000,\"errors\":10}", NULL);
	assert_int_equal(eval1("error_rate > 3x baseline + 1/s", &t), WATCH_OK);
	tick_free(&t);
	tick_init(&t, 30, "{\"window_s\":30,\"statements\":0,\"errors\":0}",
		  "{\"window_s\":10,\"statements\":1000,\"errors\":11}", NULL);
	assert_int_equal(eval1("error_rate > 3x baseline + 1/s", &t), WATCH_TRIPPED);
	assert_contains(t.why, "1.1 errors/s in the last 10 s, above 3 × 0/s + 1/s = 1/s");
	tick_free(&t);
	/* "3x baseline" alone trips on any error when the baseline was quiet. */
	tick_init(&t, 30, NULL, "{\"window_s\":10,\"statements\":1000,\"errors\":1}", NULL);
	assert_int_equal(eval1("error_rate > 3x baseline", &t), WATCH_TRIPPED);
	tick_free(&t);
	/* The rate reads its full span even 2 s after the cutover. */
	tick_init(&t, 2, NULL, "{\"window_s\":10,\"statements\":1000,\"errors\":10}", NULL);
	assert_int_equal(eval1("error_rate > 1/s", &t), WATCH_OK);
	tick_free(&t);
}

static void test_sqlstate_rule(void **state)
{
	struct tick t;

	(void)state;
	tick_init(&t, 30, NULL,
		  "{\"window_s\":10,\"statements\":1000,\"errors\":9,\"by_sqlstate\":{\"23505\":5,\"40P01\":"
		  "4}}",
		  NULL);
	assert_int_equal(eval1("errors{sqlstate=23505} > 5 in 10s", &t), WATCH_OK);
	assert_int_equal(eval1("errors{sqlstate=40p01} > 3 in 10s", &t), WATCH_TRIPPED);
	assert_string_equal(
		t.why, "errors{sqlstate=40P01} > 3 in 10s: 4 errors with SQLSTATE 40P01 in the last 10 s");
	assert_int_equal(eval1("errors{sqlstate=22P02} > 0 in 10s", &t), WATCH_OK);
	tick_free(&t);
}

static void test_defaults_together(void **state)
{
	struct watch_rule rules[WATCH_MAX_RULES];
	struct tick t;
	int n;

	(void)state;
	watch_rules_default(rules, &n);
	tick_init(&t, 45, "{\"window_s\":30,\"statements\":3000,\"errors\":0}",
		  "{\"window_s\":45,\"statements\":4500,\"errors\":60,\"by_constraint\":{\"fk2\":46}}",
		  "{\"window_s\":10,\"statements\":1000,\"errors\":20,\"by_constraint\":{\"fk2\":4}}");
	/* 46/4500 > 1% and 2/s > 1/s; 4 in 10 s is within 5. */
	assert_int_equal(watch_evaluate(rules, n, &t.in, t.why, sizeof(t.why)), WATCH_TRIPPED);
	assert_string_equal(t.why,
			    "constraint_violations > 1%: 46 violations of fk2 (46) in 4500 statements "
			    "(1.02%) since the cutover; error_rate > 3x baseline + 1/s: 2 errors/s in the "
			    "last 10 s, above 3 × 0/s + 1/s = 1/s");
	tick_free(&t);
}

static void test_missing_answer(void **state)
{
	struct watch_rule rules[WATCH_MAX_RULES];
	struct tick t;
	int n;

	(void)state;
	watch_rules_default(rules, &n);
	tick_init(&t, 45, NULL, "{\"window_s\":10,\"statements\":1000,\"errors\":0}", NULL);
	assert_int_equal(watch_evaluate(rules, n, &t.in, t.why, sizeof(t.why)), WATCH_NO_DATA);
	assert_string_equal(t.why, "no /errors answer for window_s=45");
	tick_free(&t);
	/* A rule that trips on what is there wins over one that lacks its answer. */
	tick_init(&t, 45, NULL,
		  "{\"window_s\":10,\"statements\":1000,\"errors\":0,\"by_constraint\":{\"fk2\":6}}", NULL);
	assert_int_equal(watch_evaluate(rules, n, &t.in, t.why, sizeof(t.why)), WATCH_TRIPPED);
	assert_contains(t.why, "6 violations of fk2 (6) in the last 10 s");
	tick_free(&t);
}

static void test_why_bounded(void **state)
{
	struct watch_rule r = parse_ok("constraint_violations > 0");
	struct tick t;
	char why[24];

	(void)state;
	tick_init(&t, 5, NULL, "{\"window_s\":5,\"statements\":9,\"errors\":1,\"by_constraint\":{\"fk2\":1}}",
		  NULL);
	assert_int_equal(watch_evaluate(&r, 1, &t.in, why, sizeof(why)), WATCH_TRIPPED);
	assert_int_equal(strlen(why), sizeof(why) - 1);
	tick_free(&t);
}

/* ------------------------------------------------------------------ latency */

static void test_latency_parse(void **state)
{
	struct watch_rule r;

	(void)state;
	r = parse_ok("write_p99 > 2x baseline + 10ms");
	assert_int_equal(r.kind, WATCH_LATENCY);
	assert_int_equal(r.lat_kind, WATCH_WRITE);
	assert_int_equal(r.lat_stat, WATCH_P99);
	assert_int_equal(r.factor_milli, 2000);
	assert_int_equal(r.threshold_us, 10000);
	assert_int_equal(r.span_s, WATCH_RATE_SPAN_S);
	r = parse_ok("READ_P95 > 50ms in 30s");
	assert_int_equal(r.lat_kind, WATCH_READ);
	assert_int_equal(r.lat_stat, WATCH_P95);
	assert_int_equal(r.factor_milli, 0);
	assert_int_equal(r.threshold_us, 50000);
	assert_int_equal(r.span_s, 30);
	r = parse_ok("write_max > 1.5s");
	assert_int_equal(r.lat_stat, WATCH_MAX);
	assert_int_equal(r.threshold_us, 1500000);
	r = parse_ok("read_p50 > 1.25x baseline");
	assert_int_equal(r.factor_milli, 1250);
	assert_int_equal(r.threshold_us, 0);
	r = parse_ok("write_p99 > 0.125ms");
	assert_int_equal(r.threshold_us, 125);
	assert_canonical("write_p99   >  2x   baseline+10ms", "write_p99 > 2x baseline + 10ms");
	assert_canonical("read_p95 > 50ms in 10s", "read_p95 > 50ms");
	assert_canonical("read_max > 1.5s in 20s", "read_max > 1500ms in 20s");
	assert_canonical("write_p50 > 3x baseline", "write_p50 > 3x baseline");
	assert_canonical("write_p50 > 0ms", "write_p50 > 0ms");
	parse_fails("write_p98 > 5ms",
		    "\"write_p98\" is not something a rule watches; expected "
		    "constraint_violations > P% | constraint_violations > N [in Ss] | "
		    "error_rate > Kx baseline + R/s [in Ss] | errors{sqlstate=XXXXX} > N "
		    "[in Ss] | " LATENCY_FORMS);
	parse_fails("write_p99 > 10", "expected \"ms\" or \"s\" after the number, found \"(the end)\"");
	parse_fails("write_p99 > 10 min", "expected \"ms\" or \"s\" after the number, found \"min\"");
	parse_fails("write_p99 > 2x baseline + 10",
		    "expected \"ms\" or \"s\" after the number, found \"(the end)\"");
	parse_fails("write_p99 > 2x", "expected \"baseline\" after \"x\", found \"(the end)\"");
	parse_fails("write_p99 >= 5ms", "\">=\" is not supported: a rule trips on strictly more (\">\")");
	parse_fails("write_p99 5ms", "expected \">\" after \"write_p99\", found \"5ms\"");
	parse_fails("write_p99 > 0.0001ms",
		    "\"0.0001\" has more than 3 decimals (a factor (2x baseline) or a latency (10ms))");
	parse_fails("write_p99 > 5ms in 301s", "\"in 301s\" is not a span the proxies keep (1s to 300s)");
	parse_fails("write_p99 > 5ms and more", "unexpected \"and more\" at the end");
	parse_fails("write_p99 > 1000000000s", "a latency is at most 999999999.999s");
	assert_canonical("write_p99 > 999999999.999s", "write_p99 > 999999999999ms");
}

/* Latency rules are not error rules: watch_spans and watch_evaluate leave them to watch_latency_*. */
static void test_latency_spans_apart(void **state)
{
	struct watch_rule r[3] = { parse_ok("write_p99 > 5ms in 30s"), parse_ok("read_p50 > 1ms"),
				   parse_ok("constraint_violations > 5 in 20s") };
	int spans[WATCH_MAX_SPANS];
	struct tick t;

	(void)state;
	assert_int_equal(watch_spans(r, 3, 100, spans), 1);
	assert_int_equal(spans[0], 20);
	assert_int_equal(watch_latency_spans(r, 3, spans), 2);
	assert_int_equal(spans[0], 10);
	assert_int_equal(spans[1], 30);
	assert_true(watch_rules_latency(r, 3));
	assert_false(watch_rules_latency(&r[2], 1));
	tick_init(&t, 100, NULL, "{\"window_s\":20,\"statements\":10,\"errors\":0}", NULL);
	assert_int_equal(watch_evaluate(r, 3, &t.in, t.why, sizeof(t.why)), WATCH_OK);
	tick_free(&t);
}

/* One table, write p99 'now_us' over 10 s (count 'n') against a baseline p99 'base_us' (count 'bn'). */
static enum watch_result latency_eval(const char *rule, int64_t n, int64_t now_us, int64_t bn,
				      int64_t base_us, char *why, size_t cap)
{
	struct watch_rule r = parse_ok(rule);
	struct watch_latency_table now = { .name = "public.orders" }, base = { .name = "public.orders" };
	struct watch_latency_span span = { .span_s = 10, .tables = &now, .n_tables = 1 };
	struct watch_latency_input in = { .baseline = &base, .n_baseline = 1, .spans = &span, .n_spans = 1 };

	now.kind[WATCH_WRITE].count = n;
	base.kind[WATCH_WRITE].count = bn;
	for (int s = 0; s < WATCH_LATENCY_STATS; s++) {
		now.kind[WATCH_WRITE].us[s] = now_us;
		base.kind[WATCH_WRITE].us[s] = base_us;
	}
	return watch_latency_evaluate(&r, 1, &in, why, cap);
}

static void test_latency_boundary_and_why(void **state)
{
	char why[1024];

	(void)state;
	/* 2 × 3 ms + 10 ms = 16 ms: exactly that does not trip, a microsecond more does */
	assert_int_equal(
		latency_eval("write_p99 > 2x baseline + 10ms", 40, 16000, 100, 3000, why, sizeof(why)),
		WATCH_OK);
	assert_string_equal(why, "");
	assert_int_equal(
		latency_eval("write_p99 > 2x baseline + 10ms", 40, 16001, 100, 3000, why, sizeof(why)),
		WATCH_TRIPPED);
	assert_contains(why,
			"write_p99 > 2x baseline + 10ms: public.orders write p99 16 ms in the last 10 s "
			"(40 writes), above 2 × 3 ms + 10 ms = 16 ms");
	assert_int_equal(latency_eval("write_p99 > 50ms", 1, 50001, 0, 0, why, sizeof(why)), WATCH_TRIPPED);
	assert_contains(why, "public.orders write p99 50 ms in the last 10 s (1 writes), above 50 ms");
	/* reads are not writes */
	assert_int_equal(latency_eval("read_p99 > 50ms", 10, 90000, 10, 1000, why, sizeof(why)), WATCH_OK);
	/* nothing measured now: not judged */
	assert_int_equal(latency_eval("write_p99 > 0ms", 0, 0, 10, 1000, why, sizeof(why)), WATCH_OK);
	/* a factor with no baseline measured: not judged, however slow */
	assert_int_equal(latency_eval("write_p99 > 2x baseline + 1ms", 10, 900000, 0, 0, why, sizeof(why)),
			 WATCH_OK);
	/* without a factor the baseline does not matter */
	assert_int_equal(latency_eval("write_max > 1ms", 10, 900000, 0, 0, why, sizeof(why)), WATCH_TRIPPED);
}

static void test_latency_missing_span(void **state)
{
	struct watch_rule r = parse_ok("write_p99 > 5ms in 30s");
	struct watch_latency_input in = { 0 };
	char why[256];

	(void)state;
	assert_int_equal(watch_latency_evaluate(&r, 1, &in, why, sizeof(why)), WATCH_NO_DATA);
	assert_string_equal(why, "no /latency answer for window_s=30");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_forms),
		cmocka_unit_test(test_parse_blanks_and_case),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_long_numbers),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_spans),
		cmocka_unit_test(test_elapsed_includes_the_cutovers_second),
		cmocka_unit_test(test_errors_sum),
		cmocka_unit_test(test_errors_sum_refuses),
		cmocka_unit_test(test_share_boundary),
		cmocka_unit_test(test_share_zero_statements),
		cmocka_unit_test(test_count_boundary_and_why),
		cmocka_unit_test(test_new_constraint_named_twice),
		cmocka_unit_test(test_rate_against_baseline),
		cmocka_unit_test(test_rate_without_baseline),
		cmocka_unit_test(test_sqlstate_rule),
		cmocka_unit_test(test_defaults_together),
		cmocka_unit_test(test_missing_answer),
		cmocka_unit_test(test_why_bounded),
		cmocka_unit_test(test_latency_parse),
		cmocka_unit_test(test_latency_spans_apart),
		cmocka_unit_test(test_latency_boundary_and_why),
		cmocka_unit_test(test_latency_missing_span),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
