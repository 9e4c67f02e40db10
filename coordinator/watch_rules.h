/*
 * Rollback rules for the watch after a cutover (docs/architecture.md §4.2, the watch;
 * --rollback-on RULE, config key "rollback_on"): parsing a rule, printing it
 * back, which /errors spans a rule set needs, and whether what the proxies
 * counted trips a rule, with a sentence saying why. No I/O: cmd_apply
 * fetches the counts and rolls back.
 *
 * Grammar (words case-insensitive, blanks free between tokens):
 *
 *   constraint_violations > P%  [in Ss]   violations of the new constraints per statement
 *   constraint_violations > N   [in Ss]   violations of the new constraints
 *   errors{sqlstate=XXXXX} > N  [in Ss]   errors with that SQLSTATE (5 characters, 0-9 A-Z)
 *   error_rate > Kx baseline + R/s [in Ss]   errors per second (either term may be left out:
 *                                         "error_rate > 2x baseline", "error_rate > 5/s")
 *   KIND_STAT > Kx baseline + Tms [in Ss]   a latency of each affected table (GET /latency):
 *                                         KIND read or write, STAT p50, p95, p99 or max, T in
 *                                         ms or s (either term may be left out:
 *                                         "write_p99 > 2x baseline + 10ms", "read_p95 > 50ms")
 *
 *   P has up to 4 decimals, K and R up to 3, N is a whole number, S is 1 to 300
 *   (the proxies keep five minutes). Every comparison is a strict ">": exactly
 *   1% does not trip "> 1%".
 *
 * Spans. Counting rules never count the seconds before the cutover's: without
 * "in Ss" they count since the cutover (its own second whole); with it, over the last S
 * seconds, or since the cutover while that is shorter. "Since the cutover"
 * is itself capped at 300 s, so in a longer watch it means the last five
 * minutes. error_rate is over the last S seconds (10 by default) even just
 * after the cutover, so a fresh cutover's first seconds are averaged with the
 * seconds before it instead of tripping on one noisy second; its baseline is
 * the error rate over the WATCH_BASELINE_S seconds before the cutover.
 *
 * The "P%" denominator is every statement the proxies saw (Query and
 * Execute), not the statements on the constraint's table: the proxy does not
 * count statements per table. Violations are counted per constraint name as
 * the server reports it (ErrorResponse field 'n', unqualified).
 *
 * Latency rules (docs/architecture.md §4.10) compare, per affected table, the
 * stat over the last S seconds (10 by default, as error_rate) with the same
 * stat over the baseline the apply measured before the cutover; a table or
 * kind with nothing measured in the span is not judged, nor, when the rule
 * has a factor, one with nothing measured in the baseline. They are judged
 * by watch_latency_evaluate, on what the caller read from GET /latency;
 * watch_spans and watch_evaluate leave them out.
 *
 * Default rules (no --rollback-on): "constraint_violations > 1%",
 * "constraint_violations > 5 in 10s", "error_rate > 3x baseline + 1/s".
 *
 * Seconds. A proxy's GET /errors?window_s=N covers the wall-clock seconds
 * (now - N, now]: N = 1 is the current second only. The cutover's own
 * second counts as one of the seconds since the cutover (a burst right
 * after the commit lands in it), so 'elapsed_s' is
 * watch_elapsed_s(cutover, now): now - cutover + 1.
 *
 * The watch loop, every second:
 *   elapsed_s = watch_elapsed_s(cutover_at, time(NULL));
 *   n = watch_spans(rules, n_rules, elapsed_s, spans);
 *   for each spans[i]: GET /errors?window_s=spans[i] from every proxy,
 *                      answers[i] = watch_errors_sum(those answers);
 *   switch (watch_evaluate(rules, n_rules, &input, why, sizeof why)) ...
 */
#ifndef PGVALVE_COORDINATOR_WATCH_RULES_H
#define PGVALVE_COORDINATOR_WATCH_RULES_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define WATCH_MAX_RULES 16   /* --rollback-on given at most this often */
#define WATCH_MAX_SPAN_S 300 /* the longest window_s a proxy answers */
#define WATCH_BASELINE_S 30  /* the span before the cutover the baseline is measured over */
#define WATCH_RATE_SPAN_S 10 /* error_rate's span without "in Ss" */
#define WATCH_MAX_SPANS (WATCH_MAX_RULES + 1)

enum watch_rule_kind {
	WATCH_VIOLATION_SHARE, /* constraint_violations > P% */
	WATCH_VIOLATION_COUNT, /* constraint_violations > N */
	WATCH_SQLSTATE_COUNT,  /* errors{sqlstate=XXXXX} > N */
	WATCH_ERROR_RATE,      /* error_rate > Kx baseline + R/s */
	WATCH_LATENCY,         /* read_p99 > Kx baseline + Tms */
};

/* A latency rule's statistic, and the order of watch_latency.us. */
enum watch_latency_stat { WATCH_P50, WATCH_P95, WATCH_P99, WATCH_MAX, WATCH_LATENCY_STATS };
/* A latency rule's kind of unit (the proxy's "read" and "write"). */
enum watch_latency_kind { WATCH_READ, WATCH_WRITE, WATCH_LATENCY_KINDS };

struct watch_rule {
	enum watch_rule_kind kind;
	int span_s;                       /* "in Ss"; 0: since the cutover (error_rate: WATCH_RATE_SPAN_S) */
	int64_t count;                    /* N */
	int64_t share_ppm;                /* P, in millionths of the statements (1% = 10000) */
	int64_t factor_milli;             /* K, in thousandths */
	int64_t per_s_milli;              /* R, in thousandths of an error per second */
	char sqlstate[6];                 /* upper case */
	enum watch_latency_kind lat_kind; /* latency: read or write */
	enum watch_latency_stat lat_stat; /* latency: p50 ... max */
	int64_t threshold_us;             /* latency: T, in microseconds */
};

/*
 * Parses one RULE into '*out'. False on error, with 'err' (always
 * terminated) quoting the rule and naming its bad part.
 */
bool watch_rule_parse(const char *text, struct watch_rule *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The canonical text of 'r' (the grammar above, "in 10s" left out of error_rate); parses back to 'r'. */
void watch_rule_format(const struct watch_rule *r, char *out, size_t cap);

/* The default rules into out[WATCH_MAX_RULES]; their number into *n. */
void watch_rules_default(struct watch_rule *out, int *n);

/* The longest "in Ss" span of the rules (error_rate counts 10 s without one); 0 if none has a span. */
int watch_rules_longest_s(const struct watch_rule *rules, int n);

/*
 * The wall-clock seconds since a cutover whose transaction began at
 * 'cutover' (time() then), as of 'now': the cutover's own second included,
 * so at least 1.
 */
int watch_elapsed_s(time_t cutover, time_t now);

/* The window_s rule 'r' is evaluated over at 'elapsed_s' (watch_elapsed_s): 1 ... 300. */
int watch_rule_span(const struct watch_rule *r, int elapsed_s);

/* The distinct spans (ascending) the 'n' rules need at 'elapsed_s'; returns how many. */
int watch_spans(const struct watch_rule *rules, int n, int elapsed_s, int spans[WATCH_MAX_SPANS]);

/*
 * Sums 'n' proxies' answers to GET /errors?window_s=N (admin_api.h:
 * {window_s, statements, errors, by_sqlstate{}, by_table{}, by_constraint{}},
 * counts as non-negative numbers) into a new document of the same shape,
 * which the caller deletes. NULL, with 'err' filled, when n is 0, an answer
 * is malformed (naming the answer's index and key) or the answers' window_s
 * differ.
 */
cJSON *watch_errors_sum(const cJSON *const *answers, int n, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* What the caller measured, all borrowed. */
struct watch_input {
	int elapsed_s;                      /* watch_elapsed_s(): seconds since, the cutover's included */
	const char *const *new_constraints; /* the names of the constraints the cutover added */
	int n_new_constraints;
	const cJSON *baseline;       /* summed answer for WATCH_BASELINE_S before the cutover;
						  NULL: none measured, a baseline of 0/s */
	const cJSON *const *answers; /* one summed answer per span watch_spans named, any order */
	int n_answers;
};

enum watch_result {
	WATCH_OK,      /* no rule trips */
	WATCH_TRIPPED, /* a rule trips: roll back */
	WATCH_NO_DATA, /* an answer a rule needs is missing: the caller reads again */
};

/*
 * Evaluates every rule. TRIPPED: 'why' holds one sentence per tripped rule,
 * joined by "; ", e.g. "constraint_violations > 5 in 10s: 12 violations of
 * orders_customer_id_fkey (9), fk2 (3) in the last 10 s". NO_DATA: 'why'
 * names the span missing. OK: 'why' is "".
 */
enum watch_result watch_evaluate(const struct watch_rule *rules, int n, const struct watch_input *in,
				 char *why, size_t whylen) __attribute__((warn_unused_result));

/* What one span (or the baseline) measured of one table and kind; count 0: nothing. */
struct watch_latency {
	int64_t count;
	int64_t us[WATCH_LATENCY_STATS]; /* p50, p95, p99, max in microseconds */
};

struct watch_latency_table {
	const char *name; /* as the observation names it */
	struct watch_latency kind[WATCH_LATENCY_KINDS];
};

/* The tables measured over the last 'span_s' seconds. */
struct watch_latency_span {
	int span_s;
	const struct watch_latency_table *tables;
	int n_tables;
};

struct watch_latency_input {
	const struct watch_latency_table *baseline; /* before the cutover; none: factors cannot be judged */
	int n_baseline;
	const struct watch_latency_span *spans; /* one per span watch_latency_spans named */
	int n_spans;
};

/* "read" / "write", and "p50", "p95", "p99", "max". */
const char *watch_latency_kind_name(enum watch_latency_kind k);
const char *watch_latency_stat_name(enum watch_latency_stat s);

/* Whether any rule is a latency rule. */
bool watch_rules_latency(const struct watch_rule *rules, int n);

/* The distinct spans (ascending) the latency rules need; returns how many. */
int watch_latency_spans(const struct watch_rule *rules, int n, int spans[WATCH_MAX_SPANS]);

/*
 * Evaluates the latency rules, as watch_evaluate the others. TRIPPED: 'why'
 * holds one sentence per tripped rule, naming the table and the numbers,
 * e.g. "write_p99 > 2x baseline + 10ms: public.orders write p99 250 ms in
 * the last 10 s (40 writes), above 2 × 1.2 ms + 10 ms = 12.4 ms". NO_DATA:
 * a span is missing from 'in'.
 */
enum watch_result watch_latency_evaluate(const struct watch_rule *rules, int n,
					 const struct watch_latency_input *in, char *why, size_t whylen)
	__attribute__((warn_unused_result));

#endif
