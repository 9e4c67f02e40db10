/*
 * Rollback rules (see watch_rules.h): the RULE parser and printer, the spans
 * a rule set reads, summing the proxies' /errors answers, and the verdict.
 * Thresholds are kept as fixed-point integers and compared by
 * cross-multiplying, so "exactly at the limit" never trips on a rounding
 * error. Fetching the answers and rolling back belong to cmd_apply.
 */
#include "watch_rules.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pgvalve/admin_api.h"
#include "textscan.h"

#define MAX_COUNT ((int64_t)1 << 53) /* counts arrive as JSON numbers (doubles) */

/* ------------------------------------------------------------------ parsing */

/* textscan_take after blanks, of the characters 'keep' (one of the is_*_char below) holds for. */
static bool take(struct textscan *c, bool (*keep)(int ch, const void *unused), char *tok, size_t cap)
{
	textscan_skip_blanks(c);
	return textscan_take(c, keep, NULL, tok, cap);
}

static bool is_word_char(int ch, const void *unused)
{
	return isalpha(ch) || ch == '_';
}

/* A rule's subject: a word that may hold digits (write_p99). */
static bool is_subject_char(int ch, const void *unused)
{
	return isalnum(ch) || ch == '_';
}

static bool is_number_char(int ch, const void *unused)
{
	return isdigit(ch) || ch == '.';
}

/* Whether the next token is the punctuation 'ch'; consumed if so. */
static bool accept(struct textscan *c, char ch)
{
	textscan_skip_blanks(c);
	if (*c->p != ch)
		return false;
	c->p++;
	return true;
}

/* Whether the next token is the word 'word' (any case); consumed if so. */
static bool accept_word(struct textscan *c, const char *word)
{
	const char *save = c->p;
	char tok[32];

	(void)take(c, is_word_char, tok, sizeof(tok)); /* a cut word matches no keyword */
	if (strcasecmp(tok, word) == 0)
		return true;
	c->p = save;
	return false;
}

/* What follows the cursor, for "expected X after ...": the rest, or "the end". */
static const char *rest(struct textscan *c)
{
	textscan_skip_blanks(c);
	return *c->p ? c->p : "(the end)";
}

/*
 * A non-negative decimal with at most 'decimals' places, scaled by
 * 10^decimals into *out ("2.5" with 3 places: 2500). 'what' names the
 * quantity for the message.
 */
static bool parse_decimal(struct textscan *c, int decimals, const char *what, int64_t *out)
{
	char tok[32];
	const char *dot;
	int64_t v = 0;
	int places = 0, int_digits = 0;
	bool fits = take(c, is_number_char, tok, sizeof(tok));

	dot = strchr(tok, '.');
	if (!*tok)
		return textscan_fail(c, "expected %s, found \"%s\"", what, rest(c));
	if (!fits)
		return textscan_fail(c, "\"%s…\" is too long for %s", tok, what);
	if (tok[0] == '.' || (dot && (!dot[1] || strchr(dot + 1, '.'))))
		return textscan_fail(c, "\"%s\" is not a number", tok);
	for (const char *s = tok; *s; s++) {
		if (*s == '.')
			continue;
		if (dot && s > dot)
			places++;
		else if (v > 0 || *s != '0')
			int_digits++; /* significant digits: leading zeros do not count */
		/* Checked before the digit is taken in, so v stays below 10^(12 + decimals). */
		if (int_digits > 12)
			return textscan_fail(c, "\"%s\" is too large for %s", tok, what);
		if (places > decimals) {
			if (decimals == 0)
				return textscan_fail(c, "\"%s\" is not a whole number (%s)", tok, what);
			return textscan_fail(c, "\"%s\" has more than %d decimals (%s)", tok, decimals, what);
		}
		v = v * 10 + (*s - '0');
	}
	for (; places < decimals; places++)
		v *= 10;
	*out = v;
	return true;
}

/* Optional "in Ss" into *span_s (untouched when absent). */
static bool parse_span(struct textscan *c, int *span_s)
{
	int64_t s;

	if (!accept_word(c, "in"))
		return true;
	if (!parse_decimal(c, 0, "a span in seconds (in 10s)", &s))
		return false;
	if (!accept_word(c, "s"))
		return textscan_fail(c, "expected \"s\" after \"in %lld\" (seconds), found \"%s\"",
				     (long long)s, rest(c));
	if (s < 1 || s > WATCH_MAX_SPAN_S)
		return textscan_fail(c, "\"in %llds\" is not a span the proxies keep (1s to %ds)",
				     (long long)s, WATCH_MAX_SPAN_S);
	*span_s = (int)s;
	return true;
}

static bool expect_gt(struct textscan *c, const char *subject)
{
	if (!accept(c, '>'))
		return textscan_fail(c, "expected \">\" after \"%s\", found \"%s\"", subject, rest(c));
	if (*c->p == '=')
		return textscan_fail(c, "\">=\" is not supported: a rule trips on strictly more (\">\")");
	return true;
}

/* After "constraint_violations": "> P%" or "> N", then an optional span. */
static bool parse_violations(struct textscan *c, struct watch_rule *r)
{
	int64_t v;

	if (!expect_gt(c, "constraint_violations") ||
	    !parse_decimal(c, 4, "a number of violations (5) or a share of statements (1%)", &v))
		return false;
	if (accept(c, '%')) {
		r->kind = WATCH_VIOLATION_SHARE;
		r->share_ppm = v; /* percent with 4 decimals is millionths */
		if (v > 1000000)
			return textscan_fail(c, "a share of statements is at most 100%%");
	} else {
		r->kind = WATCH_VIOLATION_COUNT;
		if (v % 10000)
			return textscan_fail(c,
					     "a number of violations is whole (or add \"%%\" for a share)");
		r->count = v / 10000;
	}
	return parse_span(c, &r->span_s);
}

static bool is_sqlstate_char(int ch, const void *unused)
{
	return isalnum(ch);
}

/* After "errors": "{sqlstate=XXXXX} > N", then an optional span. */
static bool parse_sqlstate(struct textscan *c, struct watch_rule *r)
{
	char code[32];

	r->kind = WATCH_SQLSTATE_COUNT;
	if (!accept(c, '{') || !accept_word(c, "sqlstate") || !accept(c, '='))
		return textscan_fail(c, "expected \"{sqlstate=XXXXX}\" after \"errors\"");
	(void)take(c, is_sqlstate_char, code, sizeof(code)); /* cut: not 5 long */
	if (strlen(code) != 5)
		return textscan_fail(c, "\"%s\" is not a SQLSTATE (5 characters, 0-9 and A-Z)", code);
	for (int i = 0; i < 5; i++)
		r->sqlstate[i] = (char)toupper((unsigned char)code[i]);
	if (!accept(c, '}'))
		return textscan_fail(c, "expected \"}\" after \"sqlstate=%s\"", code);
	return expect_gt(c, "errors{sqlstate=...}") && parse_decimal(c, 0, "a number of errors", &r->count) &&
		parse_span(c, &r->span_s);
}

/* After "error_rate": "> Kx baseline [+ R/s]" or "> R/s", then an optional span. */
static bool parse_rate(struct textscan *c, struct watch_rule *r)
{
	int64_t v;

	r->kind = WATCH_ERROR_RATE;
	r->span_s = WATCH_RATE_SPAN_S;
	if (!expect_gt(c, "error_rate") || !parse_decimal(c, 3, "a factor (3x baseline) or a rate (1/s)", &v))
		return false;
	if (accept_word(c, "x")) {
		if (!accept_word(c, "baseline"))
			return textscan_fail(c, "expected \"baseline\" after \"x\", found \"%s\"", rest(c));
		r->factor_milli = v;
		if (!accept(c, '+'))
			return parse_span(c, &r->span_s);
		if (!parse_decimal(c, 3, "a rate after \"+\" (1/s)", &v))
			return false;
	}
	if (!accept(c, '/') || !accept_word(c, "s"))
		return textscan_fail(c, "expected \"x baseline\" or \"/s\" after the number, found \"%s\"",
				     rest(c));
	r->per_s_milli = v;
	return parse_span(c, &r->span_s);
}

static const char *const latency_kinds[WATCH_LATENCY_KINDS] = { "read", "write" };
static const char *const latency_stats[WATCH_LATENCY_STATS] = { "p50", "p95", "p99", "max" };

const char *watch_latency_kind_name(enum watch_latency_kind k)
{
	return latency_kinds[k];
}

const char *watch_latency_stat_name(enum watch_latency_stat s)
{
	return latency_stats[s];
}

/* "read_p99" and the like: the kind and stat into 'r'. */
static bool latency_subject(const char *subject, struct watch_rule *r)
{
	for (int k = 0; k < WATCH_LATENCY_KINDS; k++) {
		size_t kl = strlen(latency_kinds[k]);

		if (strncasecmp(subject, latency_kinds[k], kl) != 0 || subject[kl] != '_')
			continue;
		for (int s = 0; s < WATCH_LATENCY_STATS; s++) {
			if (strcasecmp(subject + kl + 1, latency_stats[s]) == 0) {
				r->lat_kind = (enum watch_latency_kind)k;
				r->lat_stat = (enum watch_latency_stat)s;
				return true;
			}
		}
	}
	return false;
}

/* A duration "10ms" or "1.5s" (3 decimals at most) into microseconds. */
static bool parse_duration_us(struct textscan *c, const char *what, int64_t *us)
{
	int64_t v;

	if (!parse_decimal(c, 3, what, &v))
		return false;
	if (accept_word(c, "ms")) {
		*us = v;
	} else if (accept_word(c, "s")) {
		/* at most 12 digits of whole milliseconds, so it prints back in ms */
		if (v >= 1000000000000LL)
			return textscan_fail(c, "a latency is at most 999999999.999s");
		*us = v * 1000;
	} else {
		return textscan_fail(c, "expected \"ms\" or \"s\" after the number, found \"%s\"", rest(c));
	}
	return true;
}

/* After "write_p99" and the like: "> Kx baseline [+ Tms]" or "> Tms", then an optional span. */
static bool parse_latency(struct textscan *c, const char *subject, struct watch_rule *r)
{
	const char *save;
	int64_t v;

	r->kind = WATCH_LATENCY;
	r->span_s = WATCH_RATE_SPAN_S;
	if (!expect_gt(c, subject))
		return false;
	save = c->p;
	if (!parse_decimal(c, 3, "a factor (2x baseline) or a latency (10ms)", &v))
		return false;
	if (!accept_word(c, "x")) {
		c->p = save; /* a latency alone: read again with its unit */
		return parse_duration_us(c, "a latency (10ms)", &r->threshold_us) &&
			parse_span(c, &r->span_s);
	}
	if (!accept_word(c, "baseline"))
		return textscan_fail(c, "expected \"baseline\" after \"x\", found \"%s\"", rest(c));
	r->factor_milli = v;
	if (accept(c, '+') && !parse_duration_us(c, "a latency after \"+\" (10ms)", &r->threshold_us))
		return false;
	return parse_span(c, &r->span_s);
}

#define RULE_FORMS                                                                       \
	"constraint_violations > P% | constraint_violations > N [in Ss] | "              \
	"error_rate > Kx baseline + R/s [in Ss] | errors{sqlstate=XXXXX} > N [in Ss] | " \
	"read_p99 > Kx baseline + Tms [in Ss] (read or write; p50, p95, p99 or max)"

bool watch_rule_parse(const char *text, struct watch_rule *out, char *err, size_t errlen)
{
	struct textscan c = { .kind = "rollback rule",
			      .text = text ? text : "",
			      .p = text ? text : "",
			      .err = err,
			      .errlen = errlen };
	char subject[64];
	bool ok;

	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	textscan_skip_blanks(&c);
	if (!*c.p)
		return textscan_fail(&c, "empty; expected %s", RULE_FORMS);
	(void)take(&c, is_subject_char, subject, sizeof(subject)); /* cut: no subject */
	if (strcasecmp(subject, "constraint_violations") == 0)
		ok = parse_violations(&c, out);
	else if (strcasecmp(subject, "errors") == 0)
		ok = parse_sqlstate(&c, out);
	else if (strcasecmp(subject, "error_rate") == 0)
		ok = parse_rate(&c, out);
	else if (latency_subject(subject, out))
		ok = parse_latency(&c, subject, out);
	else
		return textscan_fail(&c, "\"%s\" is not something a rule watches; expected %s",
				     *subject ? subject : c.p, RULE_FORMS);
	if (!ok)
		return false;
	textscan_skip_blanks(&c);
	if (*c.p)
		return textscan_fail(&c, "unexpected \"%s\" at the end", c.p);
	return true;
}

/* ----------------------------------------------------------------- printing */

/* v / 10^decimals without trailing zeros: 25000 with 4 places is "2.5". */
static void append_fixed(char *out, size_t cap, size_t *len, int64_t v, int decimals)
{
	int64_t scale = 1;
	char frac[16];
	int fl;

	for (int i = 0; i < decimals; i++)
		scale *= 10;
	textscan_append(out, cap, len, "%lld", (long long)(v / scale));
	if (v % scale == 0)
		return;
	fl = snprintf(frac, sizeof(frac), "%0*lld", decimals, (long long)(v % scale));
	while (fl > 0 && frac[fl - 1] == '0')
		frac[--fl] = '\0';
	textscan_append(out, cap, len, ".%s", frac);
}

/*
 * A rule's bound as written: "<K>x baseline", "<R><unit>" or both joined by
 * " + "; the absolute part alone (0 included) when there is no factor.
 * 'absolute' is in thousandths of 'unit' (per_s_milli, or threshold_us as ms).
 */
static void append_bound(char *out, size_t cap, size_t *len, int64_t factor_milli, int64_t absolute,
			 const char *unit)
{
	if (factor_milli) {
		append_fixed(out, cap, len, factor_milli, 3);
		textscan_append(out, cap, len, "x baseline");
	}
	if (factor_milli && absolute)
		textscan_append(out, cap, len, " + ");
	if (absolute || !factor_milli) {
		append_fixed(out, cap, len, absolute, 3);
		textscan_append(out, cap, len, "%s", unit);
	}
}

void watch_rule_format(const struct watch_rule *r, char *out, size_t cap)
{
	size_t len = 0;

	if (cap == 0)
		return;
	out[0] = '\0';
	switch (r->kind) {
	case WATCH_VIOLATION_SHARE:
		textscan_append(out, cap, &len, "constraint_violations > ");
		append_fixed(out, cap, &len, r->share_ppm, 4);
		textscan_append(out, cap, &len, "%%");
		break;
	case WATCH_VIOLATION_COUNT:
		textscan_append(out, cap, &len, "constraint_violations > %lld", (long long)r->count);
		break;
	case WATCH_SQLSTATE_COUNT:
		textscan_append(out, cap, &len, "errors{sqlstate=%s} > %lld", r->sqlstate,
				(long long)r->count);
		break;
	case WATCH_ERROR_RATE:
		textscan_append(out, cap, &len, "error_rate > ");
		append_bound(out, cap, &len, r->factor_milli, r->per_s_milli, "/s");
		break;
	case WATCH_LATENCY:
		textscan_append(out, cap, &len, "%s_%s > ", latency_kinds[r->lat_kind],
				latency_stats[r->lat_stat]);
		append_bound(out, cap, &len, r->factor_milli, r->threshold_us, "ms");
		break;
	}
	if (r->span_s &&
	    !((r->kind == WATCH_ERROR_RATE || r->kind == WATCH_LATENCY) && r->span_s == WATCH_RATE_SPAN_S))
		textscan_append(out, cap, &len, " in %ds", r->span_s);
}

void watch_rules_default(struct watch_rule *out, int *n)
{
	memset(out, 0, 3 * sizeof(*out));
	out[0].kind = WATCH_VIOLATION_SHARE;
	out[0].share_ppm = 10000;
	out[1].kind = WATCH_VIOLATION_COUNT;
	out[1].count = 5;
	out[1].span_s = 10;
	out[2].kind = WATCH_ERROR_RATE;
	out[2].factor_milli = 3000;
	out[2].per_s_milli = 1000;
	out[2].span_s = WATCH_RATE_SPAN_S;
	*n = 3;
}

/* -------------------------------------------------------------------- spans */

int watch_rules_longest_s(const struct watch_rule *rules, int n)
{
	int longest = 0;

	for (int i = 0; i < n; i++)
		if (rules[i].span_s > longest)
			longest = rules[i].span_s;
	return longest;
}

int watch_elapsed_s(time_t cutover, time_t now)
{
	/* Defensive: a clock stepped back still counts the current second. */
	if (now < cutover)
		return 1;
	return now - cutover >= WATCH_MAX_SPAN_S ? WATCH_MAX_SPAN_S : (int)(now - cutover) + 1;
}

/* The seconds since the cutover as a span a proxy answers: 1 ... WATCH_MAX_SPAN_S. */
static int since_cutover(int elapsed_s)
{
	return elapsed_s < 1 ? 1 : elapsed_s > WATCH_MAX_SPAN_S ? WATCH_MAX_SPAN_S : elapsed_s;
}

int watch_rule_span(const struct watch_rule *r, int elapsed_s)
{
	int since = since_cutover(elapsed_s);

	if (r->kind == WATCH_ERROR_RATE || r->kind == WATCH_LATENCY)
		return r->span_s ? r->span_s : WATCH_RATE_SPAN_S;
	return r->span_s && r->span_s < since ? r->span_s : since;
}

/* 's' put into 'spans' (ascending, each once; 'count' so far): the new count. */
static int add_span(int *spans, int count, int s)
{
	int at = count;

	for (int j = 0; j < count; j++)
		if (spans[j] == s)
			return count;
	while (at > 0 && spans[at - 1] > s) {
		spans[at] = spans[at - 1];
		at--;
	}
	spans[at] = s;
	return count + 1;
}

int watch_spans(const struct watch_rule *rules, int n, int elapsed_s, int spans[WATCH_MAX_SPANS])
{
	int count = 0;

	for (int i = 0; i < n && count < WATCH_MAX_SPANS; i++) {
		int s = watch_rule_span(&rules[i], elapsed_s);

		if (rules[i].kind == WATCH_LATENCY) /* read from /latency: watch_latency_spans */
			continue;
		count = add_span(spans, count, s);
	}
	return count;
}

/* ----------------------------------------------------------------- summing */

/* A count in an answer: a number from 0 to 2^53. */
static bool valid_count(const cJSON *v)
{
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= (double)MAX_COUNT;
}

/* Adds number 'v' into out[key], creating it. */
static void add_number(cJSON *out, const char *key, double v)
{
	cJSON *have = cJSON_GetObjectItemCaseSensitive(out, key);

	if (have)
		cJSON_SetNumberValue(have, have->valuedouble + v);
	else
		cJSON_AddNumberToObject(out, key, v);
}

/* Adds one answer into 'sum'; false with 'err' filled when it is malformed. */
static bool sum_one(cJSON *sum, const cJSON *a, int index, char *err, size_t errlen)
{
	static const char *const counts[] = { ADMIN_ERRORS_STATEMENTS, ADMIN_ERRORS_ERRORS };
	const cJSON *ws = cJSON_GetObjectItemCaseSensitive(a, ADMIN_ERRORS_WINDOW_S);
	const cJSON *sum_ws = cJSON_GetObjectItemCaseSensitive(sum, ADMIN_ERRORS_WINDOW_S);

	if (!cJSON_IsObject(a) || !cJSON_IsNumber(ws) || ws->valuedouble < 1 ||
	    ws->valuedouble > WATCH_MAX_SPAN_S || ws->valuedouble != (int)ws->valuedouble) {
		snprintf(err, errlen, "/errors answer %d: expected an object with window_s from 1 to %d",
			 index, WATCH_MAX_SPAN_S);
		return false;
	}
	if (sum_ws && sum_ws->valuedouble != ws->valuedouble) {
		snprintf(err, errlen, "/errors answer %d: window_s %d, the others %d", index,
			 (int)ws->valuedouble, (int)sum_ws->valuedouble);
		return false;
	}
	if (!sum_ws)
		cJSON_AddNumberToObject(sum, ADMIN_ERRORS_WINDOW_S, ws->valuedouble);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, counts[i]);

		if (!valid_count(v)) {
			snprintf(err, errlen, "/errors answer %d: \"%s\" is not a count", index, counts[i]);
			return false;
		}
		add_number(sum, counts[i], v->valuedouble);
	}
	for (int i = 0; i < ADMIN_ERRORS_GROUPS; i++) {
		const cJSON *map = cJSON_GetObjectItemCaseSensitive(a, admin_errors_groups[i]);
		cJSON *into = cJSON_GetObjectItemCaseSensitive(sum, admin_errors_groups[i]);
		const cJSON *v;

		if (map && !cJSON_IsObject(map)) {
			snprintf(err, errlen, "/errors answer %d: \"%s\" is not an object", index,
				 admin_errors_groups[i]);
			return false;
		}
		cJSON_ArrayForEach(v, map)
		{
			if (!valid_count(v)) {
				snprintf(err, errlen, "/errors answer %d: \"%s.%s\" is not a count", index,
					 admin_errors_groups[i], v->string);
				return false;
			}
			add_number(into, v->string, v->valuedouble);
		}
	}
	return true;
}

cJSON *watch_errors_sum(const cJSON *const *answers, int n, char *err, size_t errlen)
{
	cJSON *sum = cJSON_CreateObject();

	if (errlen)
		err[0] = '\0';
	for (int i = 0; i < ADMIN_ERRORS_GROUPS; i++)
		cJSON_AddObjectToObject(sum, admin_errors_groups[i]);
	if (n < 1) {
		snprintf(err, errlen, "no /errors answers to sum");
		goto fail;
	}
	for (int i = 0; i < n; i++)
		if (!sum_one(sum, answers[i], i, err, errlen))
			goto fail;
	return sum;
fail:
	cJSON_Delete(sum);
	return NULL;
}

/* --------------------------------------------------------------- evaluation */

/* A count in a summed answer (absent: 0). */
static int64_t count_of(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return valid_count(v) ? (int64_t)v->valuedouble : 0;
}

/* a * b, or INT64_MAX when that overflows: the operands are non-negative. */
static int64_t mul_sat(int64_t a, int64_t b)
{
	int64_t r;

	return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

/* The summed answer with this window_s, or NULL. */
static const cJSON *answer_for(const struct watch_input *in, int span)
{
	for (int i = 0; i < in->n_answers; i++) {
		const cJSON *ws = cJSON_GetObjectItemCaseSensitive(in->answers[i], ADMIN_ERRORS_WINDOW_S);

		if (cJSON_IsNumber(ws) && ws->valuedouble == span)
			return in->answers[i];
	}
	return NULL;
}

/* "in the last 10 s" or, when the span reaches back to the cutover, "since the cutover". */
static void append_span(char *out, size_t cap, size_t *len, const struct watch_input *in, int span)
{
	if (in->elapsed_s <= span)
		textscan_append(out, cap, len, "since the cutover");
	else
		textscan_append(out, cap, len, "in the last %d s", span);
}

/*
 * Violations of the new constraints in answer 'a' (each name counted once);
 * with 'names' non-NULL, also "name (count), ..." of those violated.
 */
static int64_t violations(const struct watch_input *in, const cJSON *a, char *names, size_t cap)
{
	const cJSON *by = cJSON_GetObjectItemCaseSensitive(a, admin_errors_groups[ADMIN_BY_CONSTRAINT]);
	int64_t total = 0;
	size_t len = 0;

	if (names && cap)
		names[0] = '\0';
	for (int i = 0; i < in->n_new_constraints; i++) {
		int64_t v = count_of(by, in->new_constraints[i]);
		bool repeat = false;

		for (int j = 0; j < i; j++)
			repeat |= strcmp(in->new_constraints[i], in->new_constraints[j]) == 0;
		if (repeat || v == 0)
			continue;
		total = add_sat(total, v);
		if (names)
			textscan_append(names, cap, &len, "%s%s (%lld)", len ? ", " : "",
					in->new_constraints[i], (long long)v);
	}
	return total;
}

/* x / 10^3 as a short number for people: 2500 -> "2.5". */
static double milli(int64_t v)
{
	return (double)v / 1000.0;
}

/* Whether rule r trips on answer 'a' (over 'span' seconds); if so, its sentence into out[cap]. */
static bool rule_trips(const struct watch_rule *r, const cJSON *a, int span, const struct watch_input *in,
		       char *out, size_t cap)
{
	char names[384];
	size_t len = 0;

	watch_rule_format(r, out, cap);
	len = strlen(out);
	switch (r->kind) {
	case WATCH_VIOLATION_SHARE: {
		int64_t v = violations(in, a, names, sizeof(names));
		int64_t statements = count_of(a, ADMIN_ERRORS_STATEMENTS);

		/* No statements: no share to speak of (the count rules still see violations). */
		if (statements == 0 || mul_sat(v, 1000000) <= mul_sat(r->share_ppm, statements))
			return false;
		textscan_append(out, cap, &len, ": %lld violations of %s in %lld statements (%.3g%%) ",
				(long long)v, names, (long long)statements,
				100.0 * (double)v / (double)statements);
		append_span(out, cap, &len, in, span);
		return true;
	}
	case WATCH_VIOLATION_COUNT: {
		int64_t v = violations(in, a, names, sizeof(names));

		if (v <= r->count)
			return false;
		textscan_append(out, cap, &len, ": %lld violations of %s ", (long long)v, names);
		append_span(out, cap, &len, in, span);
		return true;
	}
	case WATCH_SQLSTATE_COUNT: {
		int64_t v = count_of(
			cJSON_GetObjectItemCaseSensitive(a, admin_errors_groups[ADMIN_BY_SQLSTATE]),
			r->sqlstate);

		if (v <= r->count)
			return false;
		textscan_append(out, cap, &len, ": %lld errors with SQLSTATE %s ", (long long)v, r->sqlstate);
		append_span(out, cap, &len, in, span);
		return true;
	}
	case WATCH_ERROR_RATE: {
		/* errors/span > K * b_errors/b_span + R, times span * b_span * 1000, in integers. */
		int64_t errors = count_of(a, ADMIN_ERRORS_ERRORS);
		int64_t b_span = in->baseline ? count_of(in->baseline, ADMIN_ERRORS_WINDOW_S) : 0;
		int64_t b_errors = b_span ? count_of(in->baseline, ADMIN_ERRORS_ERRORS) : 0;
		double base_rate = b_span ? (double)b_errors / (double)b_span : 0;
		int64_t lhs, rhs;

		if (b_span == 0)
			b_span = 1;
		lhs = mul_sat(mul_sat(errors, b_span), 1000);
		rhs = add_sat(mul_sat(mul_sat(r->factor_milli, b_errors), span),
			      mul_sat(mul_sat(r->per_s_milli, span), b_span));
		if (lhs <= rhs)
			return false;
		textscan_append(
			out, cap, &len, ": %.3g errors/s in the last %d s, above %g × %.3g/s + %g/s = %.3g/s",
			(double)errors / span, span, milli(r->factor_milli), base_rate, milli(r->per_s_milli),
			milli(r->factor_milli) * base_rate + milli(r->per_s_milli));
		return true;
	}
	case WATCH_LATENCY:
		return false; /* watch_latency_evaluate */
	}
	return false;
}

/*
 * What the rules of one evaluation found, and its 'why': the sentence of
 * each rule that tripped, joined by "; ", or what answer was missing.
 */
struct verdict {
	char *why;
	size_t whylen, len;
	bool tripped;
	int missing; /* the span of a rule whose answer is missing; 0: none */
};

static void verdict_start(struct verdict *v, char *why, size_t whylen)
{
	*v = (struct verdict){ .why = why, .whylen = whylen };
	if (whylen)
		why[0] = '\0';
}

static void verdict_trip(struct verdict *v, const char *sentence)
{
	textscan_append(v->why, v->whylen, &v->len, "%s%s", v->tripped ? "; " : "", sentence);
	v->tripped = true;
}

/* Tripped when any rule tripped; else no data when an answer of 'endpoint' was missing. */
static enum watch_result verdict_end(struct verdict *v, const char *endpoint)
{
	if (v->tripped)
		return WATCH_TRIPPED;
	if (v->missing) {
		textscan_append(v->why, v->whylen, &v->len, "no %s answer for window_s=%d", endpoint,
				v->missing);
		return WATCH_NO_DATA;
	}
	return WATCH_OK;
}

enum watch_result watch_evaluate(const struct watch_rule *rules, int n, const struct watch_input *in,
				 char *why, size_t whylen)
{
	struct verdict v;

	verdict_start(&v, why, whylen);
	for (int i = 0; i < n; i++) {
		int span = watch_rule_span(&rules[i], in->elapsed_s);
		const cJSON *a = answer_for(in, span);
		char sentence[768];

		if (rules[i].kind == WATCH_LATENCY) /* watch_latency_evaluate */
			continue;
		if (!a) {
			v.missing = span;
			continue;
		}
		if (rule_trips(&rules[i], a, span, in, sentence, sizeof(sentence)))
			verdict_trip(&v, sentence);
	}
	return verdict_end(&v, "/errors");
}

/* ------------------------------------------------------------------ latency */

bool watch_rules_latency(const struct watch_rule *rules, int n)
{
	for (int i = 0; i < n; i++)
		if (rules[i].kind == WATCH_LATENCY)
			return true;
	return false;
}

int watch_latency_spans(const struct watch_rule *rules, int n, int spans[WATCH_MAX_SPANS])
{
	int count = 0;

	for (int i = 0; i < n && count < WATCH_MAX_SPANS; i++) {
		int s = rules[i].span_s ? rules[i].span_s : WATCH_RATE_SPAN_S;

		if (rules[i].kind != WATCH_LATENCY)
			continue;
		count = add_span(spans, count, s);
	}
	return count;
}

static const struct watch_latency *baseline_of(const struct watch_latency_input *in, const char *table,
					       enum watch_latency_kind k)
{
	for (int i = 0; i < in->n_baseline; i++)
		if (strcmp(in->baseline[i].name, table) == 0)
			return &in->baseline[i].kind[k];
	return NULL;
}

/* Whether latency rule 'r' trips on table 't' over 'span'; if so, its sentence into out[cap]. */
static bool latency_trips(const struct watch_rule *r, const struct watch_latency_table *t, int span,
			  const struct watch_latency_input *in, char *out, size_t cap)
{
	const struct watch_latency *now = &t->kind[r->lat_kind];
	const struct watch_latency *base = baseline_of(in, t->name, r->lat_kind);
	int64_t base_us = base && base->count ? base->us[r->lat_stat] : 0, lhs, rhs;
	size_t len;

	if (now->count == 0 || (r->factor_milli && (!base || base->count == 0)))
		return false; /* nothing to judge, or no baseline to judge against */
	/* now > K * baseline + T, times 1000, in integers */
	lhs = mul_sat(now->us[r->lat_stat], 1000);
	rhs = add_sat(mul_sat(r->factor_milli, base_us), mul_sat(r->threshold_us, 1000));
	if (lhs <= rhs)
		return false;
	watch_rule_format(r, out, cap);
	len = strlen(out);
	textscan_append(out, cap, &len, ": %s %s %s %.3g ms in the last %d s (%lld %ss)", t->name,
			latency_kinds[r->lat_kind], latency_stats[r->lat_stat],
			(double)now->us[r->lat_stat] / 1000.0, span, (long long)now->count,
			latency_kinds[r->lat_kind]);
	if (r->factor_milli)
		textscan_append(
			out, cap, &len, ", above %g × %.3g ms + %g ms = %.3g ms", milli(r->factor_milli),
			(double)base_us / 1000.0, (double)r->threshold_us / 1000.0,
			(milli(r->factor_milli) * (double)base_us + (double)r->threshold_us) / 1000.0);
	else
		textscan_append(out, cap, &len, ", above %g ms", (double)r->threshold_us / 1000.0);
	return true;
}

enum watch_result watch_latency_evaluate(const struct watch_rule *rules, int n,
					 const struct watch_latency_input *in, char *why, size_t whylen)
{
	struct verdict v;

	verdict_start(&v, why, whylen);
	for (int i = 0; i < n; i++) {
		const struct watch_rule *r = &rules[i];
		int span = r->span_s ? r->span_s : WATCH_RATE_SPAN_S;
		const struct watch_latency_span *s = NULL;

		if (r->kind != WATCH_LATENCY)
			continue;
		for (int j = 0; j < in->n_spans && !s; j++)
			if (in->spans[j].span_s == span)
				s = &in->spans[j];
		if (!s) {
			v.missing = span;
			continue;
		}
		for (int t = 0; t < s->n_tables; t++) {
			char sentence[768];

			if (latency_trips(r, &s->tables[t], span, in, sentence, sizeof(sentence))) {
				verdict_trip(&v, sentence);
				break; /* one table says it: the rule trips */
			}
		}
	}
	return verdict_end(&v, "/latency");
}
