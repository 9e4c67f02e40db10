/*
 * libFuzzer target for coordinator/watch_rules.c, the --rollback-on RULE
 * grammar. Each input is one rule (cut at its first NUL). Invariants: a
 * refused rule leaves a non-empty, terminated message quoting it; an
 * accepted one has values in the documented ranges, prints back to a
 * canonical text that parses to the same rule and prints to the same text;
 * its span is one the proxies answer; and evaluating it against an empty
 * and a busy /errors answer never crashes and says why when it trips.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch_rules.h"
#include "fuzz_check.h"

#define RULE_MAX 512

static bool same_rule(const struct watch_rule *a, const struct watch_rule *b)
{
	return a->kind == b->kind && a->span_s == b->span_s && a->count == b->count &&
		a->share_ppm == b->share_ppm && a->factor_milli == b->factor_milli &&
		a->per_s_milli == b->per_s_milli && strcmp(a->sqlstate, b->sqlstate) == 0 &&
		a->lat_kind == b->lat_kind && a->lat_stat == b->lat_stat &&
		a->threshold_us == b->threshold_us;
}

/* An /errors answer for 'span' seconds with 'n' of everything. */
static cJSON *answer(int span, double n, const char *sqlstate)
{
	cJSON *a = cJSON_CreateObject(), *by;

	cJSON_AddNumberToObject(a, "window_s", span);
	cJSON_AddNumberToObject(a, "statements", n * 10);
	cJSON_AddNumberToObject(a, "errors", n);
	by = cJSON_AddObjectToObject(a, "by_sqlstate");
	cJSON_AddNumberToObject(by, sqlstate, n);
	cJSON_AddObjectToObject(a, "by_table");
	by = cJSON_AddObjectToObject(a, "by_constraint");
	cJSON_AddNumberToObject(by, "new_fk", n);
	return a;
}

/* A latency rule: judged on /latency numbers, never on /errors answers. */
static void check_latency(const struct watch_rule *r)
{
	static const int64_t amounts[] = { 0, 1, (int64_t)1 << 62 };
	int spans[WATCH_MAX_SPANS];

	FUZZ_CHECK(watch_spans(r, 1, 5, spans) == 0);
	FUZZ_CHECK(watch_latency_spans(r, 1, spans) == 1);
	FUZZ_CHECK(spans[0] >= 1 && spans[0] <= WATCH_MAX_SPAN_S);
	for (size_t k = 0; k < sizeof(amounts) / sizeof(amounts[0]); k++) {
		struct watch_latency_table now = { .name = "t" }, base = { .name = "t" };
		struct watch_latency_span span = { .span_s = spans[0], .tables = &now, .n_tables = 1 };
		struct watch_latency_input in = {
			.baseline = &base, .n_baseline = 1, .spans = &span, .n_spans = 1
		};
		char why[1024];
		enum watch_result res;

		for (int kind = 0; kind < WATCH_LATENCY_KINDS; kind++) {
			now.kind[kind].count = amounts[k];
			base.kind[kind].count = amounts[k] / 2;
			for (int s = 0; s < WATCH_LATENCY_STATS; s++) {
				now.kind[kind].us[s] = amounts[k];
				base.kind[kind].us[s] = amounts[k] / 2;
			}
		}
		res = watch_latency_evaluate(r, 1, &in, why, sizeof(why));
		FUZZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL);
		FUZZ_CHECK(res != WATCH_NO_DATA);
		FUZZ_CHECK((res == WATCH_TRIPPED) == (why[0] != '\0'));
		if (amounts[k] == 0)
			FUZZ_CHECK(res == WATCH_OK); /* nothing measured: never judged */
	}
}

static void check_evaluate(const struct watch_rule *r)
{
	if (r->kind == WATCH_LATENCY) {
		check_latency(r);
		return;
	}
	static const char *const names[] = { "new_fk" };
	static const double amounts[] = { 0, 1e9 };
	int spans[WATCH_MAX_SPANS];
	int elapsed[] = { 0, 5, 400 };

	for (size_t e = 0; e < sizeof(elapsed) / sizeof(elapsed[0]); e++) {
		int n = watch_spans(r, 1, elapsed[e], spans);

		FUZZ_CHECK(n == 1);
		FUZZ_CHECK(spans[0] >= 1 && spans[0] <= WATCH_MAX_SPAN_S);
		for (size_t k = 0; k < sizeof(amounts) / sizeof(amounts[0]); k++) {
			cJSON *a = answer(spans[0], amounts[k], r->sqlstate[0] ? r->sqlstate : "23503");
			cJSON *base = answer(WATCH_BASELINE_S, amounts[k] / 2, "23503");
			const cJSON *answers[] = { a };
			struct watch_input in = { .elapsed_s = elapsed[e],
						  .new_constraints = names,
						  .n_new_constraints = 1,
						  .baseline = base,
						  .answers = answers,
						  .n_answers = 1 };
			char why[1024];
			enum watch_result res = watch_evaluate(r, 1, &in, why, sizeof(why));

			FUZZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL);
			FUZZ_CHECK(res != WATCH_NO_DATA);
			if (res == WATCH_TRIPPED)
				FUZZ_CHECK(why[0] != '\0');
			else
				FUZZ_CHECK(why[0] == '\0');
			/* Nothing happened: no rule may trip on an empty answer. */
			if (amounts[k] == 0)
				FUZZ_CHECK(res == WATCH_OK);
			cJSON_Delete(a);
			cJSON_Delete(base);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[RULE_MAX + 1], err[512], out[256], again[256], small[8];
	struct watch_rule r, back;

	if (size > RULE_MAX)
		size = RULE_MAX;
	memcpy(text, data, size);
	text[size] = '\0';

	memset(err, 'x', sizeof(err));
	if (!watch_rule_parse(text, &r, err, sizeof(err))) {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(strncmp(err, "rollback rule \"", 15) == 0);
		memset(small, 'x', sizeof(small));
		FUZZ_CHECK(!watch_rule_parse(text, &back, small, sizeof(small)));
		FUZZ_CHECK(memchr(small, '\0', sizeof(small)) != NULL);
		return 0;
	}
	FUZZ_CHECK(r.span_s >= 0 && r.span_s <= WATCH_MAX_SPAN_S);
	FUZZ_CHECK(r.count >= 0 && r.share_ppm >= 0 && r.share_ppm <= 1000000);
	FUZZ_CHECK(r.factor_milli >= 0 && r.per_s_milli >= 0);
	if (r.kind == WATCH_SQLSTATE_COUNT)
		FUZZ_CHECK(strlen(r.sqlstate) == 5);
	FUZZ_CHECK(r.threshold_us >= 0);

	watch_rule_format(&r, out, sizeof(out));
	FUZZ_CHECK(strlen(out) > 0 && strlen(out) < sizeof(out) - 1);
	if (!watch_rule_parse(out, &back, err, sizeof(err))) {
		fprintf(stderr, "\"%s\" printed as \"%s\", which is refused: %s\n", text, out, err);
		FUZZ_CHECK(!"the printed rule parses");
	}
	if (!same_rule(&r, &back)) {
		fprintf(stderr, "\"%s\" printed as \"%s\", which parses to another rule\n", text, out);
		FUZZ_CHECK(!"the printed rule is the same rule");
	}
	watch_rule_format(&back, again, sizeof(again));
	FUZZ_CHECK(strcmp(out, again) == 0);

	memset(small, 'x', sizeof(small));
	watch_rule_format(&r, small, sizeof(small));
	FUZZ_CHECK(memchr(small, '\0', sizeof(small)) != NULL);

	check_evaluate(&r);
	return 0;
}
