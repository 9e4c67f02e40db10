/*
 * libFuzzer target for coordinator/window.c, the --window SPEC grammar. Each
 * input is one spec (cut at its first NUL). Invariants: a refused spec leaves
 * a non-empty, terminated message that quotes the spec's kind; an accepted
 * one is well formed (days set, minutes in range, start != end), prints back
 * to a canonical text that parses to the same window and prints to the same
 * text again; printing into a small buffer stays terminated and in bounds;
 * and the calendar answers (contains, next open, close) agree with each other
 * at a few instants around 2026's DST changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "window.h"
#include "fuzz_check.h"

#define SPEC_MAX 512

static bool same_window(const struct window *a, const struct window *b)
{
	return a->days == b->days && a->start_min == b->start_min && a->end_min == b->end_min &&
		a->zone_kind == b->zone_kind && a->offset_min == b->offset_min &&
		strcmp(a->zone, b->zone) == 0;
}

/* A message written by a parser: terminated within its buffer and saying something. */
static void check_message(const char *err, size_t cap)
{
	FUZZ_CHECK(memchr(err, '\0', cap) != NULL);
	FUZZ_CHECK(err[0] != '\0');
}

static void check_calendar(const struct window *w)
{
	/* 2026-03-29 00:30 UTC (Europe's spring forward) and 2026-11-01 05:30 UTC (New York falls back). */
	static const time_t instants[] = { 1774744200, 1793511000, 0, 2000000000 };

	for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
		time_t t = instants[i];
		bool in = window_contains(w, 1, t);
		time_t next = window_next_open(w, 1, t);
		time_t close = window_close(w, 1, t);

		/* A window opens on some weekday, so it opens within a week and a bit. */
		FUZZ_CHECK(next != (time_t)-1);
		FUZZ_CHECK(next >= t && next <= t + 9 * 86400);
		FUZZ_CHECK(in == (next == t));
		FUZZ_CHECK(in == (close != (time_t)-1));
		if (in)
			FUZZ_CHECK(close > t);
		else
			FUZZ_CHECK(window_contains(w, 1, next));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char spec[SPEC_MAX + 1], err[256], text[256], again[256], small[8];
	struct window w, back;

	if (size > SPEC_MAX)
		size = SPEC_MAX;
	memcpy(spec, data, size);
	spec[size] = '\0';

	memset(err, 'x', sizeof(err));
	if (!window_parse(spec, &w, err, sizeof(err))) {
		check_message(err, sizeof(err));
		FUZZ_CHECK(strncmp(err, "window \"", 8) == 0);
		/* A message cut to a tiny buffer stays terminated. */
		memset(small, 'x', sizeof(small));
		FUZZ_CHECK(!window_parse(spec, &back, small, sizeof(small)));
		FUZZ_CHECK(memchr(small, '\0', sizeof(small)) != NULL);
		return 0;
	}
	FUZZ_CHECK(w.days != 0 && w.days <= 0x7f);
	FUZZ_CHECK(w.start_min >= 0 && w.start_min < 24 * 60);
	FUZZ_CHECK(w.end_min >= 1 && w.end_min <= 24 * 60);
	FUZZ_CHECK(w.start_min != w.end_min);
	FUZZ_CHECK(w.zone_kind != WINDOW_OFFSET || (w.offset_min >= -14 * 60 && w.offset_min <= 14 * 60));

	window_format(&w, text, sizeof(text));
	FUZZ_CHECK(strlen(text) > 0 && strlen(text) < sizeof(text) - 1);
	if (!window_parse(text, &back, err, sizeof(err))) {
		fprintf(stderr, "\"%s\" printed as \"%s\", which is refused: %s\n", spec, text, err);
		FUZZ_CHECK(!"the printed spec parses");
	}
	FUZZ_CHECK(same_window(&w, &back));
	window_format(&back, again, sizeof(again));
	FUZZ_CHECK(strcmp(text, again) == 0);

	memset(small, 'x', sizeof(small));
	window_format(&w, small, sizeof(small));
	FUZZ_CHECK(memchr(small, '\0', sizeof(small)) != NULL);
	FUZZ_CHECK(strncmp(small, text, strlen(small)) == 0);

	check_calendar(&w);
	return 0;
}
