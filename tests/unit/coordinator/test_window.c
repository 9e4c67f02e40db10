/*
 * Unit tests for coordinator/window.c: every form of the --window grammar,
 * each error message, printing back, and contains / next open / close across
 * week boundaries, midnight, several windows, fixed offsets and the 2026 DST
 * changes in Europe/Berlin (Mar 29, Oct 25) and America/New_York (Mar 8, Nov 1).
 * Times are written in UTC; the comments give the local clock.
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

#include "window.h"

#define MON 0x01u
#define TUE 0x02u
#define WED 0x04u
#define THU 0x08u
#define FRI 0x10u
#define SAT 0x20u
#define SUN 0x40u

/* The instant y-mo-d h:mi:s UTC. */
static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {
		.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s
	};

	return timegm(&tm);
}

/* Parses 'spec', which must be accepted. */
static struct window parse_ok(const char *spec)
{
	struct window w;
	char err[512];

	if (!window_parse(spec, &w, err, sizeof(err)))
		fail_msg("rejected \"%s\": %s", spec, err);
	return w;
}

/* Parses 'spec', which must be rejected with exactly 'message'. */
static void parse_fails(const char *spec, const char *message)
{
	struct window w;
	char err[512];

	if (window_parse(spec, &w, err, sizeof(err)))
		fail_msg("accepted \"%s\"", spec);
	assert_string_equal(err, message);
}

/* Parses 'spec' and prints it back, which must give 'canonical' (and parse to the same). */
static void assert_canonical(const char *spec, const char *canonical)
{
	struct window w = parse_ok(spec), again;
	char out[256];

	window_format(&w, out, sizeof(out));
	assert_string_equal(out, canonical);
	again = parse_ok(out);
	assert_memory_equal(&w, &again, sizeof(w));
}

/* ------------------------------------------------------------------ grammar */

static void test_day_forms(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("daily 02:00-04:00").days, 0x7f);
	assert_int_equal(parse_ok("weekdays 02:00-04:00").days, MON | TUE | WED | THU | FRI);
	assert_int_equal(parse_ok("weekends 02:00-04:00").days, SAT | SUN);
	assert_int_equal(parse_ok("Mon 02:00-04:00").days, MON);
	assert_int_equal(parse_ok("wednesday 02:00-04:00").days, WED);
	assert_int_equal(parse_ok("SUNDAY 02:00-04:00").days, SUN);
	assert_int_equal(parse_ok("Mon-Fri 02:00-04:00").days, MON | TUE | WED | THU | FRI);
	assert_int_equal(parse_ok("Fri-Mon 02:00-04:00").days, FRI | SAT | SUN | MON);
	assert_int_equal(parse_ok("Sun-Sun 02:00-04:00").days, SUN);
	assert_int_equal(parse_ok("Mon,Wed,Fri-Sat 02:00-04:00").days, MON | WED | FRI | SAT);
	assert_int_equal(parse_ok("weekends,Wed 02:00-04:00").days, SAT | SUN | WED);
	assert_int_equal(parse_ok("Tuesday-thursday 02:00-04:00").days, TUE | WED | THU);
}

static void test_blanks_and_case(void **state)
{
	struct window w = parse_ok("  mOn - fRi ,  sat   2:00 - 4:30   utc  ");

	(void)state;
	assert_int_equal(w.days, MON | TUE | WED | THU | FRI | SAT);
	assert_int_equal(w.start_min, 120);
	assert_int_equal(w.end_min, 270);
	assert_int_equal(w.zone_kind, WINDOW_UTC);
	w = parse_ok("\tDAILY\t00:00-24:00\t");
	assert_int_equal(w.start_min, 0);
	assert_int_equal(w.end_min, 1440);
}

static void test_times(void **state)
{
	struct window w;

	(void)state;
	w = parse_ok("Mon 22:00-02:00");
	assert_int_equal(w.start_min, 22 * 60);
	assert_int_equal(w.end_min, 2 * 60);
	/* An end of 00:00 after a later start is the next midnight, as 24:00 says. */
	w = parse_ok("Mon 22:00-00:00");
	assert_int_equal(w.end_min, 1440);
	w = parse_ok("Mon 23:59-24:00");
	assert_int_equal(w.start_min, 23 * 60 + 59);
}

static void test_zones(void **state)
{
	struct window w;

	(void)state;
	w = parse_ok("Mon 02:00-04:00");
	assert_int_equal(w.zone_kind, WINDOW_UTC);
	w = parse_ok("Mon 02:00-04:00 UTC");
	assert_int_equal(w.zone_kind, WINDOW_UTC);
	w = parse_ok("Mon 02:00-04:00 +02:00");
	assert_int_equal(w.zone_kind, WINDOW_OFFSET);
	assert_int_equal(w.offset_min, 120);
	w = parse_ok("Mon 02:00-04:00 -05:30");
	assert_int_equal(w.offset_min, -330);
	w = parse_ok("Mon 02:00-04:00 +14:00");
	assert_int_equal(w.offset_min, 840);
	w = parse_ok("Mon-Fri 02:00-04:00 Europe/Berlin");
	assert_int_equal(w.zone_kind, WINDOW_IANA);
	assert_string_equal(w.zone, "Europe/Berlin");
	w = parse_ok("Mon 02:00-04:00 America/Argentina/Buenos_Aires");
	assert_string_equal(w.zone, "America/Argentina/Buenos_Aires");
	w = parse_ok("Mon 02:00-04:00 Etc/GMT+5");
	assert_string_equal(w.zone, "Etc/GMT+5");
}

static void test_errors(void **state)
{
	(void)state;
	parse_fails("Mon-Fry 02:00-04:00",
		    "window \"Mon-Fry 02:00-04:00\": \"Fry\" is not a day (Mon … Sun, daily, weekdays, "
		    "weekends)");
	parse_fails("Mnday 02:00-04:00",
		    "window \"Mnday 02:00-04:00\": \"Mnday\" is not a day (Mon … Sun, daily, weekdays, "
		    "weekends)");
	parse_fails("Mon 25:00-04:00",
		    "window \"Mon 25:00-04:00\": \"25:00\" is not a time (HH:MM, 00:00 to 24:00)");
	parse_fails("Mon 12:60-13:00",
		    "window \"Mon 12:60-13:00\": \"12:60\" is not a time (HH:MM, 00:00 to 24:00)");
	parse_fails("Mon 02:00-24:30",
		    "window \"Mon 02:00-24:30\": \"24:30\" is not a time (HH:MM, 00:00 to 24:00)");
	parse_fails("Mon 2-4", "window \"Mon 2-4\": \"2\" is not a time (HH:MM, 00:00 to 24:00)");
	parse_fails("Mon 02:00:00-04:00",
		    "window \"Mon 02:00:00-04:00\": \"02:00:00\" is not a time (HH:MM, 00:00 to 24:00)");
	parse_fails("Mon 24:00-02:00",
		    "window \"Mon 24:00-02:00\": \"24:00-02:00\": 24:00 can only end a window");
	parse_fails("Mon 02:00-02:00",
		    "window \"Mon 02:00-02:00\": \"02:00-02:00\" is empty: the end equals the start "
		    "(a whole day is 00:00-24:00)");
	parse_fails("Mon 02:00 04:00",
		    "window \"Mon 02:00 04:00\": expected \"-\" and an end time after the start time");
	parse_fails(
		"Mon 02:00-",
		"window \"Mon 02:00-\": expected a time range HH:MM-HH:MM after the days (end time missing)");
	parse_fails("Mon",
		    "window \"Mon\": expected a time range HH:MM-HH:MM after the days (start time missing)");
	parse_fails(
		"Mon, 02:00-04:00",
		"window \"Mon, 02:00-04:00\": \"02:00\" is not a day (Mon … Sun, daily, weekdays, weekends)");
	parse_fails("Mon,", "window \"Mon,\": expected a day after \",\"");
	parse_fails(
		"Mon- 02:00-04:00",
		"window \"Mon- 02:00-04:00\": \"02:00\" is not a day (Mon … Sun, daily, weekdays, weekends)");
	parse_fails(
		"weekdays-Sun 02:00-04:00",
		"window \"weekdays-Sun 02:00-04:00\": \"weekdays\" cannot start a range (a range joins two "
		"days: Mon-Fri)");
	parse_fails("",
		    "window \"\": empty; expected DAYS HH:MM-HH:MM [ZONE], e.g. \"Mon-Fri 02:00-04:00 UTC\"");
	parse_fails(
		"   ",
		"window \"   \": empty; expected DAYS HH:MM-HH:MM [ZONE], e.g. \"Mon-Fri 02:00-04:00 UTC\"");
	parse_fails("02:00-04:00",
		    "window \"02:00-04:00\": \"02:00\" is not a day (Mon … Sun, daily, weekdays, weekends)");
	parse_fails("hello world",
		    "window \"hello world\": \"hello\" is not a day (Mon … Sun, daily, weekdays, weekends)");
	parse_fails(",", "window \",\": expected days first (Mon … Sun, daily, weekdays, weekends)");
	parse_fails(
		"Mon 02:00-04:00 UTC tomorrow",
		"window \"Mon 02:00-04:00 UTC tomorrow\": unexpected \"tomorrow\" after the zone \"UTC\"");
}

#define NOT_A_NAME                                                                         \
	"is not a time zone name (UTC, +HH:MM, or a name such as Europe/Berlin: parts of " \
	"letters, digits and \"._+-\" joined by \"/\", none starting with \".\")"

static void test_zone_errors(void **state)
{
	(void)state;
	parse_fails("Mon 02:00-04:00 Mars/Olympus",
		    "window \"Mon 02:00-04:00 Mars/Olympus\": \"Mars/Olympus\" is not a time zone "
		    "(/usr/share/zoneinfo/Mars/Olympus is not a zone file; expected UTC, +HH:MM, or a name "
		    "such as Europe/Berlin)");
	parse_fails("Mon 02:00-04:00 ../etc/passwd",
		    "window \"Mon 02:00-04:00 ../etc/passwd\": \"../etc/passwd\" " NOT_A_NAME);
	/* Only the name check stands between these and a file outside the zone directory. */
	parse_fails("Mon 02:00-04:00 Europe/../../../etc/passwd",
		    "window \"Mon 02:00-04:00 Europe/../../../etc/passwd\": "
		    "\"Europe/../../../etc/passwd\" " NOT_A_NAME);
	parse_fails("Mon 02:00-04:00 /etc/passwd",
		    "window \"Mon 02:00-04:00 /etc/passwd\": \"/etc/passwd\" " NOT_A_NAME);
	parse_fails("Mon 02:00-04:00 Europe//Berlin",
		    "window \"Mon 02:00-04:00 Europe//Berlin\": \"Europe//Berlin\" " NOT_A_NAME);
	parse_fails("Mon 02:00-04:00 Europe/Berlin;rm",
		    "window \"Mon 02:00-04:00 Europe/Berlin;rm\": \"Europe/Berlin;rm\" " NOT_A_NAME);
	/* A directory, and a regular file that is not a compiled zone. */
	parse_fails("Mon 02:00-04:00 Europe",
		    "window \"Mon 02:00-04:00 Europe\": \"Europe\" is not a time zone "
		    "(/usr/share/zoneinfo/Europe is not a zone file; expected UTC, +HH:MM, or a name such "
		    "as Europe/Berlin)");
	parse_fails("Mon 02:00-04:00 zone.tab",
		    "window \"Mon 02:00-04:00 zone.tab\": \"zone.tab\" is not a time zone "
		    "(/usr/share/zoneinfo/zone.tab is not a zone file; expected UTC, +HH:MM, or a name such "
		    "as Europe/Berlin)");
	parse_fails("Mon 02:00-04:00 +15:00",
		    "window \"Mon 02:00-04:00 +15:00\": \"+15:00\" is not a UTC offset (+HH:MM or -HH:MM, "
		    "at most 14:00)");
	parse_fails("Mon 02:00-04:00 europe/berlin",
		    "window \"Mon 02:00-04:00 europe/berlin\": \"europe/berlin\" is not a time zone "
		    "(/usr/share/zoneinfo/europe/berlin is not a zone file; expected UTC, +HH:MM, or a name "
		    "such as Europe/Berlin)");
	parse_fails("Mon 02:00-04:00 +2",
		    "window \"Mon 02:00-04:00 +2\": \"+2\" is not a UTC offset (+HH:MM or -HH:MM, at most "
		    "14:00)");
}

static void test_zone_name_too_long(void **state)
{
	char spec[300], err[512];
	struct window w;

	(void)state;
	snprintf(spec, sizeof(spec), "Mon 02:00-04:00 Europe/%0200d", 0);
	assert_false(window_parse(spec, &w, err, sizeof(err)));
	if (!strstr(err, "is longer than 127 characters"))
		fail_msg("unexpected message: %s", err);
}

static void test_error_buffer_bounded(void **state)
{
	struct window w;
	char err[16];

	(void)state;
	memset(err, 'x', sizeof(err));
	assert_false(window_parse("Mon-Fry 02:00-04:00", &w, err, sizeof(err)));
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_false(window_parse("Mon-Fry 02:00-04:00", &w, err, 0));
}

static void test_format_canonical(void **state)
{
	(void)state;
	assert_canonical("Mon-Fri 02:00-04:00", "weekdays 02:00-04:00 UTC");
	assert_canonical("Sat,Sun 2:00-4:00 utc", "weekends 02:00-04:00 UTC");
	assert_canonical("Mon-Sun 00:00-24:00", "daily 00:00-24:00 UTC");
	assert_canonical("Fri-Mon 22:00-02:00 Europe/Berlin", "Mon,Fri-Sun 22:00-02:00 Europe/Berlin");
	assert_canonical("mon,wed,fri-sat 23:00-00:00 -05:30", "Mon,Wed,Fri-Sat 23:00-24:00 -05:30");
	assert_canonical("Tue-Wed 09:15-09:45 +02:00", "Tue-Wed 09:15-09:45 +02:00");
	assert_canonical("Thu 09:15-09:45 +00:00", "Thu 09:15-09:45 +00:00");
}

/* ---------------------------------------------------------------- UTC math */

static void test_contains_half_open(void **state)
{
	struct window w = parse_ok("Mon-Fri 02:00-04:00 UTC");

	(void)state;
	/* 2026-03-02 is a Monday. */
	assert_false(window_contains(&w, 1, utc(2026, 3, 2, 1, 59, 59)));
	assert_true(window_contains(&w, 1, utc(2026, 3, 2, 2, 0, 0)));
	assert_true(window_contains(&w, 1, utc(2026, 3, 2, 3, 59, 59)));
	assert_false(window_contains(&w, 1, utc(2026, 3, 2, 4, 0, 0)));
	assert_true(window_contains(&w, 1, utc(2026, 3, 6, 3, 0, 0)));  /* Friday */
	assert_false(window_contains(&w, 1, utc(2026, 3, 7, 3, 0, 0))); /* Saturday */
	assert_false(window_contains(&w, 0, utc(2026, 3, 2, 3, 0, 0)));
}

static void test_next_open_across_weekend(void **state)
{
	struct window w = parse_ok("Mon-Fri 02:00-04:00");
	time_t inside = utc(2026, 3, 4, 2, 30, 0);

	(void)state;
	assert_int_equal(window_next_open(&w, 1, inside), inside);
	assert_int_equal(window_next_open(&w, 1, utc(2026, 3, 4, 1, 0, 0)), utc(2026, 3, 4, 2, 0, 0));
	assert_int_equal(window_next_open(&w, 1, utc(2026, 3, 4, 4, 0, 0)), utc(2026, 3, 5, 2, 0, 0));
	/* Friday after the window, and Sunday: Monday. */
	assert_int_equal(window_next_open(&w, 1, utc(2026, 3, 6, 5, 0, 0)), utc(2026, 3, 9, 2, 0, 0));
	assert_int_equal(window_next_open(&w, 1, utc(2026, 3, 8, 23, 59, 59)), utc(2026, 3, 9, 2, 0, 0));
	assert_int_equal(window_next_open(&w, 0, inside), (time_t)-1);
}

static void test_next_open_across_new_year(void **state)
{
	struct window w = parse_ok("Mon 02:00-04:00");

	(void)state;
	/* Wednesday 2026-12-30 to Monday 2027-01-04. */
	assert_int_equal(window_next_open(&w, 1, utc(2026, 12, 30, 12, 0, 0)), utc(2027, 1, 4, 2, 0, 0));
}

static void test_midnight_crossing(void **state)
{
	struct window w = parse_ok("Fri 22:00-02:00");

	(void)state;
	assert_false(window_contains(&w, 1, utc(2026, 3, 6, 21, 59, 59)));
	assert_true(window_contains(&w, 1, utc(2026, 3, 6, 22, 0, 0)));
	assert_true(window_contains(&w, 1, utc(2026, 3, 7, 1, 0, 0))); /* Saturday morning */
	assert_false(window_contains(&w, 1, utc(2026, 3, 7, 2, 0, 0)));
	assert_false(window_contains(&w, 1, utc(2026, 3, 7, 22, 30, 0))); /* not a Saturday window */
	assert_false(window_contains(&w, 1, utc(2026, 3, 6, 1, 0, 0)));   /* Thursday's would be */
	assert_int_equal(window_close(&w, 1, utc(2026, 3, 7, 1, 0, 0)), utc(2026, 3, 7, 2, 0, 0));
	assert_int_equal(window_next_open(&w, 1, utc(2026, 3, 7, 3, 0, 0)), utc(2026, 3, 13, 22, 0, 0));
}

static void test_midnight_crossing_week_boundary(void **state)
{
	struct window w = parse_ok("Sun 23:00-01:00");

	(void)state;
	/* Sunday 2026-03-08 23:00 to Monday 01:00. */
	assert_true(window_contains(&w, 1, utc(2026, 3, 9, 0, 30, 0)));
	assert_int_equal(window_close(&w, 1, utc(2026, 3, 9, 0, 30, 0)), utc(2026, 3, 9, 1, 0, 0));
	assert_int_equal(window_next_open(&w, 1, utc(2026, 3, 9, 1, 0, 0)), utc(2026, 3, 15, 23, 0, 0));
	w = parse_ok("Fri-Mon 23:00-00:00");
	assert_true(window_contains(&w, 1, utc(2026, 3, 9, 23, 30, 0)));   /* Monday */
	assert_false(window_contains(&w, 1, utc(2026, 3, 10, 23, 30, 0))); /* Tuesday */
}

static void test_earliest_of_several(void **state)
{
	struct window w[3];

	(void)state;
	w[0] = parse_ok("Wed 02:00-04:00");
	w[1] = parse_ok("Mon 23:00-01:00");
	w[2] = parse_ok("weekends 12:00-13:00");
	/* From Monday noon: Monday 23:00 wins over Wednesday. */
	assert_int_equal(window_next_open(w, 3, utc(2026, 3, 2, 12, 0, 0)), utc(2026, 3, 2, 23, 0, 0));
	/* From Tuesday 01:00 (the Monday window just closed): Wednesday. */
	assert_int_equal(window_next_open(w, 3, utc(2026, 3, 3, 1, 0, 0)), utc(2026, 3, 4, 2, 0, 0));
	/* From Thursday: Saturday noon. */
	assert_int_equal(window_next_open(w, 3, utc(2026, 3, 5, 0, 0, 0)), utc(2026, 3, 7, 12, 0, 0));
	assert_true(window_contains(w, 3, utc(2026, 3, 8, 12, 30, 0)));
	assert_false(window_contains(w, 3, utc(2026, 3, 8, 13, 30, 0)));
}

static void test_close(void **state)
{
	struct window w[2];

	(void)state;
	w[0] = parse_ok("Mon 02:00-04:00");
	w[1] = parse_ok("Mon 03:00-05:00");
	assert_int_equal(window_close(w, 1, utc(2026, 3, 2, 2, 30, 0)), utc(2026, 3, 2, 4, 0, 0));
	/* Overlapping windows join. */
	assert_int_equal(window_close(w, 2, utc(2026, 3, 2, 2, 30, 0)), utc(2026, 3, 2, 5, 0, 0));
	assert_int_equal(window_close(w, 2, utc(2026, 3, 2, 4, 30, 0)), utc(2026, 3, 2, 5, 0, 0));
	assert_int_equal(window_close(w, 2, utc(2026, 3, 2, 5, 0, 0)), (time_t)-1);
	/* Touching windows join: Monday 22:00-24:00 and Tuesday 00:00-01:00. */
	w[0] = parse_ok("Mon 22:00-24:00");
	w[1] = parse_ok("Tue 00:00-01:00");
	assert_int_equal(window_close(w, 2, utc(2026, 3, 2, 23, 0, 0)), utc(2026, 3, 3, 1, 0, 0));
	/* A window that never closes answers a week or so on. */
	w[0] = parse_ok("daily 00:00-24:00");
	assert_true(window_close(w, 1, utc(2026, 3, 2, 12, 0, 0)) >= utc(2026, 3, 9, 12, 0, 0));
	assert_true(window_close(w, 1, utc(2026, 3, 2, 12, 0, 0)) <= utc(2026, 3, 11, 0, 0, 0));
}

static void test_fixed_offsets(void **state)
{
	struct window east = parse_ok("Mon 02:00-04:00 +02:00");
	struct window west = parse_ok("Mon 23:00-01:00 -05:30");

	(void)state;
	/* Monday 02:00 at +02:00 is Monday 00:00 UTC. */
	assert_int_equal(window_next_open(&east, 1, utc(2026, 3, 1, 0, 0, 0)), utc(2026, 3, 2, 0, 0, 0));
	assert_int_equal(window_close(&east, 1, utc(2026, 3, 2, 0, 0, 0)), utc(2026, 3, 2, 2, 0, 0));
	/* ... and Sunday 23:00 UTC is Monday 01:00 there, inside. */
	assert_false(window_contains(&east, 1, utc(2026, 3, 1, 23, 0, 0)));
	assert_true(window_contains(&east, 1, utc(2026, 3, 2, 1, 0, 0)));
	/* Monday 23:00 at -05:30 is Tuesday 04:30 UTC; it closes Tuesday 06:30 UTC. */
	assert_int_equal(window_next_open(&west, 1, utc(2026, 3, 2, 12, 0, 0)), utc(2026, 3, 3, 4, 30, 0));
	assert_int_equal(window_close(&west, 1, utc(2026, 3, 3, 5, 0, 0)), utc(2026, 3, 3, 6, 30, 0));
	assert_false(window_contains(&west, 1, utc(2026, 3, 2, 23, 30, 0)));
}

/* ---------------------------------------------------------------------- DST */

static void test_berlin_spring_forward(void **state)
{
	/* 2026-03-29: 02:00 CET (01:00 UTC) jumps to 03:00 CEST. */
	struct window w = parse_ok("Sun 02:30-04:00 Europe/Berlin");
	struct window skipped = parse_ok("Sun 02:00-02:30 Europe/Berlin");
	struct window weekdays = parse_ok("Mon-Fri 02:00-04:00 Europe/Berlin");

	(void)state;
	/* 02:30 never shows: the window opens at the jump, 03:00 CEST, and closes at 04:00 CEST. */
	assert_int_equal(window_next_open(&w, 1, utc(2026, 3, 28, 12, 0, 0)), utc(2026, 3, 29, 1, 0, 0));
	assert_false(window_contains(&w, 1, utc(2026, 3, 29, 0, 59, 59)));
	assert_int_equal(window_close(&w, 1, utc(2026, 3, 29, 1, 0, 0)), utc(2026, 3, 29, 2, 0, 0));
	/* A window wholly inside the skipped hour does not happen that day: next Sunday, CEST. */
	assert_int_equal(window_next_open(&skipped, 1, utc(2026, 3, 28, 12, 0, 0)), utc(2026, 4, 5, 0, 0, 0));
	/* The week before opens at 01:00 UTC (CET), the week after at 00:00 UTC (CEST). */
	assert_int_equal(window_next_open(&weekdays, 1, utc(2026, 3, 27, 0, 0, 0)),
			 utc(2026, 3, 27, 1, 0, 0));
	assert_int_equal(window_close(&weekdays, 1, utc(2026, 3, 27, 1, 0, 0)), utc(2026, 3, 27, 3, 0, 0));
	assert_int_equal(window_next_open(&weekdays, 1, utc(2026, 3, 27, 3, 30, 0)),
			 utc(2026, 3, 30, 0, 0, 0));
	assert_int_equal(window_close(&weekdays, 1, utc(2026, 3, 30, 0, 0, 0)), utc(2026, 3, 30, 2, 0, 0));
}

static void test_berlin_fall_back(void **state)
{
	/* 2026-10-25: 03:00 CEST (01:00 UTC) falls back to 02:00 CET; 02:00-03:00 shows twice. */
	struct window w = parse_ok("Sun 02:30-03:30 Europe/Berlin");
	struct window early = parse_ok("Sun 01:00-02:30 Europe/Berlin");

	(void)state;
	/* Opens at the first 02:30 (CEST), closes at 03:30 CET: two hours long. */
	assert_int_equal(window_next_open(&w, 1, utc(2026, 10, 24, 12, 0, 0)), utc(2026, 10, 25, 0, 30, 0));
	assert_int_equal(window_close(&w, 1, utc(2026, 10, 25, 0, 30, 0)), utc(2026, 10, 25, 2, 30, 0));
	assert_true(window_contains(&w, 1, utc(2026, 10, 25, 1, 45, 0))); /* the second 02:45 */
	/* Closes at the first 02:30: the second 02:30 is outside. */
	assert_int_equal(window_next_open(&early, 1, utc(2026, 10, 24, 12, 0, 0)),
			 utc(2026, 10, 24, 23, 0, 0));
	assert_int_equal(window_close(&early, 1, utc(2026, 10, 24, 23, 0, 0)), utc(2026, 10, 25, 0, 30, 0));
	assert_false(window_contains(&early, 1, utc(2026, 10, 25, 1, 30, 0)));
}

static void test_new_york_spring_forward(void **state)
{
	/* 2026-03-08: 02:00 EST (07:00 UTC) jumps to 03:00 EDT. */
	struct window w = parse_ok("Sun 02:00-04:00 America/New_York");
	struct window skipped = parse_ok("daily 02:30-03:00 America/New_York");

	(void)state;
	assert_int_equal(window_next_open(&w, 1, utc(2026, 3, 7, 12, 0, 0)), utc(2026, 3, 8, 7, 0, 0));
	assert_int_equal(window_close(&w, 1, utc(2026, 3, 8, 7, 0, 0)), utc(2026, 3, 8, 8, 0, 0));
	/* Saturday's 02:30 EST, then none on Sunday, then Monday's 02:30 EDT. */
	assert_int_equal(window_next_open(&skipped, 1, utc(2026, 3, 7, 0, 0, 0)), utc(2026, 3, 7, 7, 30, 0));
	assert_int_equal(window_next_open(&skipped, 1, utc(2026, 3, 8, 5, 0, 0)), utc(2026, 3, 9, 6, 30, 0));
}

static void test_new_york_fall_back(void **state)
{
	/* 2026-11-01: 02:00 EDT (06:00 UTC) falls back to 01:00 EST; 01:00-02:00 shows twice. */
	struct window w = parse_ok("Sun 01:30-03:00 America/New_York");

	(void)state;
	assert_int_equal(window_next_open(&w, 1, utc(2026, 10, 31, 12, 0, 0)), utc(2026, 11, 1, 5, 30, 0));
	assert_int_equal(window_close(&w, 1, utc(2026, 11, 1, 5, 30, 0)), utc(2026, 11, 1, 8, 0, 0));
	assert_true(window_contains(&w, 1, utc(2026, 11, 1, 6, 15, 0))); /* 01:15 EST, the second time */
	/* The next Sunday is EST all along. */
	assert_int_equal(window_next_open(&w, 1, utc(2026, 11, 1, 8, 0, 0)), utc(2026, 11, 8, 6, 30, 0));
}

static void test_tz_restored(void **state)
{
	struct window w = parse_ok("Mon 02:00-04:00 Europe/Berlin");
	struct tm tm;
	time_t t = utc(2026, 3, 2, 12, 0, 0);

	(void)state;
	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	(void)window_next_open(&w, 1, t);
	assert_string_equal(getenv("TZ"), "Asia/Tokyo");
	localtime_r(&t, &tm);
	assert_int_equal(tm.tm_hour, 21);
	unsetenv("TZ");
	tzset();
	assert_false(window_contains(&w, 1, t));
	assert_null(getenv("TZ"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_day_forms),
		cmocka_unit_test(test_blanks_and_case),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_zones),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_zone_errors),
		cmocka_unit_test(test_zone_name_too_long),
		cmocka_unit_test(test_error_buffer_bounded),
		cmocka_unit_test(test_format_canonical),
		cmocka_unit_test(test_contains_half_open),
		cmocka_unit_test(test_next_open_across_weekend),
		cmocka_unit_test(test_next_open_across_new_year),
		cmocka_unit_test(test_midnight_crossing),
		cmocka_unit_test(test_midnight_crossing_week_boundary),
		cmocka_unit_test(test_earliest_of_several),
		cmocka_unit_test(test_close),
		cmocka_unit_test(test_fixed_offsets),
		cmocka_unit_test(test_berlin_spring_forward),
		cmocka_unit_test(test_berlin_fall_back),
		cmocka_unit_test(test_new_york_spring_forward),
		cmocka_unit_test(test_new_york_fall_back),
		cmocka_unit_test(test_tz_restored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
