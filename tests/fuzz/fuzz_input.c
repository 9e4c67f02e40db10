/*
 * libFuzzer target for the coordinator's migration input: coordinator/input.c
 * (a SQL file or a JSON plan cut into statements) and then
 * coordinator/rules.c (the statements planned into steps). An input is one
 * byte of options, then the file's bytes:
 *
 *   [0]   bit 0: the file is named "fuzz.json" (a JSON plan) rather than
 *         "fuzz.sql" (which is still a JSON plan if it starts with '{');
 *         bit 1: --allow-unsafe
 *   [1..] the file
 *
 * Whatever the bytes, nothing crashes or leaks, and:
 *   - a refusal names the file and a line within it (or none);
 *   - every statement accepted is non-empty, trimmed, parses alone with
 *     libpg_query, and has a line within the input: for SQL, the text is
 *     the file's own bytes starting on that line; for a JSON plan, the line
 *     is the statement's place in "statements";
 *   - a plan's steps are numbered 1..n in phase order, point at inputs,
 *     constraints and drops that exist, and their SQL (generated, or the
 *     statement as written with --allow-unsafe) parses with libpg_query as
 *     exactly one statement.
 *
 * libpg_query recurses without limit and leaks a pthread key per thread that
 * parses, so all of this runs on one long-lived thread with a
 * CLASSIFY_STACK_BYTES stack. Checks are FUZZ_CHECKs, which abort whatever
 * NDEBUG says.
 */
#define _GNU_SOURCE /* memmem */
#include <cjson/cJSON.h>
#include <pg_query.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_bigstack.h"
#include "fuzz_check.h"
#include "input.h"
#include "pgvalve/classify.h"
#include "pgvalve/sqllex.h"
#include "plan.h"
#include "rules.h"

/* Whether 'sql' parses with libpg_query as exactly 'want' statements (0: any number). */
static bool parses(const char *sql, int want)
{
	PgQueryParseResult r = pg_query_parse(sql);
	bool ok = !r.error;

	if (ok && want) {
		cJSON *tree = cJSON_Parse(r.parse_tree);

		/* A tree too deep for cJSON to read parsed all the same. */
		ok = !tree || cJSON_GetArraySize(cJSON_GetObjectItem(tree, "stmts")) == want;
		cJSON_Delete(tree);
	}
	pg_query_free_parse_result(r);
	return ok;
}

/* The line (1-based) of byte 'off' of 'text'. */
static int line_at(const char *text, size_t off)
{
	int line = 1;

	for (size_t i = 0; i < off; i++)
		line += text[i] == '\n';
	return line;
}

/* How many statements a JSON plan's "statements" holds, or -1 when 'text' is none. */
static int json_statements(const char *text, size_t len)
{
	cJSON *doc = cJSON_ParseWithLength(text, len);
	int n = -1;

	if (cJSON_IsArray(cJSON_GetObjectItem(doc, "statements")))
		n = cJSON_GetArraySize(cJSON_GetObjectItem(doc, "statements"));
	cJSON_Delete(doc);
	return n;
}

static void check_inputs(const struct plan *p, const char *file, const char *text, size_t len, int lines,
			 int json_max)
{
	FUZZ_CHECK(p->n_inputs > 0);
	FUZZ_CHECK(p->name != NULL);
	FUZZ_CHECK(strlen(p->checksum) == 64);
	for (int i = 0; i < p->n_inputs; i++) {
		const struct plan_input *in = &p->inputs[i];
		size_t n = strlen(in->text), start, end;

		FUZZ_CHECK(strcmp(in->file, file) == 0);
		FUZZ_CHECK(n > 0);
		FUZZ_CHECK(sqllex_trim(in->text, n, &start, &end) && start == 0 && end == n);
		FUZZ_CHECK(parses(in->text, 0));
		FUZZ_CHECK(in->line >= 1);
		if (json_max >= 0) {
			FUZZ_CHECK(in->line <= json_max);
		} else {
			/* The statement's own bytes, starting on its line. */
			const char *at = NULL;

			FUZZ_CHECK(in->line <= lines);
			for (const char *s = text; (s = memmem(s, len - (size_t)(s - text), in->text, n));
			     s++)
				if (line_at(text, (size_t)(s - text)) == in->line) {
					at = s;
					break;
				}
			FUZZ_CHECK(at != NULL);
		}
	}
}

static void check_plan(const struct plan *p)
{
	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];

		FUZZ_CHECK(st->seq == i + 1);
		FUZZ_CHECK(i == 0 || p->steps[i - 1].phase <= st->phase);
		FUZZ_CHECK(st->input >= 0 && st->input < p->n_inputs);
		FUZZ_CHECK(st->constraint >= -1 && st->constraint < p->n_constraints);
		FUZZ_CHECK(st->drop >= -1 && st->drop < p->n_drops);
		FUZZ_CHECK(st->sql != NULL);
		/* A statement run as written after the file's SET search_path carries it before it. */
		if (!parses(st->sql, 1) && !(strncmp(st->sql, "SET ", 4) == 0 && parses(st->sql, 2))) {
			fprintf(stderr, "step %d does not parse: %s\n", st->seq, st->sql);
			FUZZ_CHECK(!"a step's SQL parses");
		}
	}
	for (int i = 0; i < p->n_constraints; i++) {
		FUZZ_CHECK(p->constraints[i].input >= 0 && p->constraints[i].input < p->n_inputs);
		FUZZ_CHECK(p->constraints[i].fk_tail != NULL);
	}
	for (int i = 0; i < p->n_drops; i++)
		FUZZ_CHECK(p->drops[i].input >= 0 && p->drops[i].input < p->n_inputs);
	for (int i = 0; i < p->n_notes; i++)
		FUZZ_CHECK(p->notes[i] != NULL && p->notes[i][0]);
}

/* Whether input.c reads the file as a JSON plan: a ".json" name, or '{' first after blanks. */
static bool is_json(const char *file, const char *sql, size_t len)
{
	if (strcmp(file, "fuzz.json") == 0)
		return true;
	for (size_t i = 0; i < len; i++)
		if (!strchr(" \t\n\r", sql[i]) || sql[i] == '\0')
			return sql[i] == '{';
	return false;
}

static void run(const uint8_t *data, size_t size)
{
	const char *file = size && (data[0] & 1) ? "fuzz.json" : "fuzz.sql";
	struct rules_options opt = { .allow_unsafe = size && (data[0] & 2) };
	const char *text = size ? (const char *)data + 1 : "";
	size_t len = size ? size - 1 : 0, sql_len;
	int lines = line_at(text, len), json_max = -1;
	struct plan p = { 0 };
	struct input_error err;
	const char *sql = text;

	/* After a byte order mark, which input.c skips. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		sql += 3;
	sql_len = len - (size_t)(sql - text);
	if (is_json(file, sql, sql_len))
		json_max = json_statements(sql, sql_len);
	if (!input_load_text(&p, file, text, len, &err)) {
		FUZZ_CHECK(strcmp(err.file, file) == 0 || err.file[0] == '\0');
		FUZZ_CHECK(err.line >= 0 && err.line <= (lines > json_max ? lines : json_max));
		FUZZ_CHECK(err.msg[0]);
		plan_free(&p);
		return;
	}
	check_inputs(&p, file, text, len, lines, json_max);
	if (!rules_plan(&p, &opt, &err)) {
		FUZZ_CHECK(strcmp(err.file, file) == 0);
		FUZZ_CHECK(err.line >= 1 && err.line <= (json_max >= 0 ? json_max : lines));
		FUZZ_CHECK(err.msg[0]);
	} else {
		check_plan(&p);
	}
	plan_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_on_big_stack(run, NULL, data, size);
	return 0;
}
