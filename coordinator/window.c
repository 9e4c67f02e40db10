/*
 * Cutover windows (see window.h): the SPEC parser and printer, and the
 * calendar arithmetic behind contains / next open / close. Local time in an
 * IANA zone comes from localtime_r() under a temporarily switched TZ; the
 * other direction (a wall-clock time to an instant) is worked out here, not
 * by mktime(), whose answer for skipped and doubled times varies.
 */
#include "window.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "textscan.h"
#include "xalloc.h"

#define DAY_S 86400
#define ALL_DAYS 0x7fu
#define WEEKDAYS 0x1fu
#define WEEKENDS 0x60u

static const char *const day_short[7] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
static const char *const day_long[7] = { "monday", "tuesday",  "wednesday", "thursday",
					 "friday", "saturday", "sunday" };

/* ------------------------------------------------------------------ parsing */

/* A token's character: not a blank, not one of 'stops' (a string). */
static bool is_token_char(int ch, const void *stops)
{
	return !isspace(ch) && !strchr(stops, ch);
}

/*
 * Copies the run of characters at the cursor that are not blanks or in
 * 'stops' into tok[cap] and moves past it (textscan_take).
 */
static bool take_token(struct textscan *c, const char *stops, char *tok, size_t cap)
{
	return textscan_take(c, is_token_char, stops, tok, cap);
}

/* The day 'tok' names (0 = Monday), or -1. */
static int day_index(const char *tok)
{
	for (int d = 0; d < 7; d++)
		if (strcasecmp(tok, day_short[d]) == 0 || strcasecmp(tok, day_long[d]) == 0)
			return d;
	return -1;
}

/* The day set a word names on its own: daily, weekdays, weekends; 0 if none. */
static unsigned day_group(const char *tok)
{
	if (strcasecmp(tok, "daily") == 0)
		return ALL_DAYS;
	if (strcasecmp(tok, "weekdays") == 0)
		return WEEKDAYS;
	if (strcasecmp(tok, "weekends") == 0)
		return WEEKENDS;
	return 0;
}

#define NOT_A_DAY "is not a day (Mon … Sun, daily, weekdays, weekends)"

/* DAYS: items separated by commas; an item is a group word, a day, or day-day. */
static bool parse_days(struct textscan *c, unsigned *days)
{
	char tok[64], tok2[64];

	*days = 0;
	for (;;) {
		unsigned group;
		int from, to;

		textscan_skip_blanks(c);
		(void)take_token(c, ",-", tok, sizeof(tok)); /* cut or not, no day is that long */
		if (!*tok)
			return textscan_fail(
				c,
				*days ? "expected a day after \",\""
				      : "expected days first (Mon … Sun, daily, weekdays, weekends)");
		group = day_group(tok);
		from = day_index(tok);
		if (!group && from < 0)
			return textscan_fail(c, "\"%s\" " NOT_A_DAY, tok);
		textscan_skip_blanks(c);
		if (*c->p == '-') {
			if (group)
				return textscan_fail(
					c, "\"%s\" cannot start a range (a range joins two days: Mon-Fri)",
					tok);
			c->p++;
			textscan_skip_blanks(c);
			(void)take_token(c, ",-", tok2, sizeof(tok2));
			to = day_index(tok2);
			if (!*tok2)
				return textscan_fail(c, "expected a day after \"%s-\"", tok);
			if (to < 0)
				return textscan_fail(c, "\"%s\" " NOT_A_DAY, tok2);
			for (int d = from;; d = (d + 1) % 7) {
				*days |= 1u << d;
				if (d == to)
					break;
			}
		} else {
			*days |= group ? group : 1u << from;
		}
		textscan_skip_blanks(c);
		if (*c->p != ',')
			return true;
		c->p++;
	}
}

/* "H:MM" or "HH:MM", 00:00 to 24:00, as minutes after midnight; -1 if malformed. */
static int hhmm_minutes(const char *tok)
{
	int h = 0, m, digits = 0;
	const char *s = tok;

	while (isdigit((unsigned char)*s) && digits < 3) {
		h = h * 10 + (*s++ - '0');
		digits++;
	}
	if (digits < 1 || digits > 2 || *s != ':' || !isdigit((unsigned char)s[1]) ||
	    !isdigit((unsigned char)s[2]) || s[3] != '\0')
		return -1;
	m = (s[1] - '0') * 10 + (s[2] - '0');
	if (h > 24 || m > 59 || (h == 24 && m != 0))
		return -1;
	return h * 60 + m;
}

/* One time of the range; 'what' is "start" or "end" for the message when it is missing. */
static bool parse_time(struct textscan *c, const char *what, int *minutes)
{
	char tok[64];

	textscan_skip_blanks(c);
	/* A time stops at the '-' between start and end; anything else odd stays in the token. */
	(void)take_token(c, "-", tok, sizeof(tok));
	if (!*tok)
		return textscan_fail(c, "expected a time range HH:MM-HH:MM after the days (%s time missing)",
				     what);
	*minutes = hhmm_minutes(tok);
	if (*minutes < 0)
		return textscan_fail(c, "\"%s\" is not a time (HH:MM, 00:00 to 24:00)", tok);
	return true;
}

static bool parse_range(struct textscan *c, int *start, int *end)
{
	const char *range;

	textscan_skip_blanks(c);
	range = c->p;
	if (!parse_time(c, "start", start))
		return false;
	textscan_skip_blanks(c);
	if (*c->p != '-')
		return textscan_fail(c, "expected \"-\" and an end time after the start time");
	c->p++;
	if (!parse_time(c, "end", end))
		return false;
	if (*start == 24 * 60)
		return textscan_fail(c, "\"%.*s\": 24:00 can only end a window", (int)(c->p - range), range);
	if (*start == *end)
		return textscan_fail(
			c, "\"%.*s\" is empty: the end equals the start (a whole day is 00:00-24:00)",
			(int)(c->p - range), range);
	if (*end == 0)
		*end = 24 * 60; /* "22:00-00:00" ends at the next midnight, as 24:00 says */
	return true;
}

/* "+HH:MM" / "-HH:MM", at most 14:00 either way. */
static bool parse_offset(struct textscan *c, const char *tok, int *offset_min)
{
	int m = hhmm_minutes(tok + 1);

	if (m < 0 || m > 14 * 60)
		return textscan_fail(c, "\"%s\" is not a UTC offset (+HH:MM or -HH:MM, at most 14:00)", tok);
	*offset_min = tok[0] == '-' ? -m : m;
	return true;
}

/* Whether 'path' is a regular file that starts like a compiled zone (RFC 8536: "TZif"). */
static bool is_tzif(const char *path)
{
	struct stat st;
	char magic[4];
	FILE *f;
	bool ok;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	f = fopen(path, "rb");
	if (!f)
		return false;
	ok = fread(magic, 1, sizeof(magic), f) == sizeof(magic) && memcmp(magic, "TZif", 4) == 0;
	fclose(f);
	return ok;
}

/* An IANA name: parts of [A-Za-z0-9._+-] joined by '/', none empty or starting with '.', a TZif file. */
static bool parse_iana(struct textscan *c, const char *tok, struct window *out)
{
	char path[sizeof(WINDOW_ZONEINFO_DIR) + WINDOW_ZONE_MAX + 1];
	size_t len = strlen(tok);
	bool name_ok = len > 0 && len < WINDOW_ZONE_MAX && tok[0] != '/' && tok[0] != '.' &&
		!strstr(tok, "/.") && !strstr(tok, "//") && tok[len - 1] != '/';

	for (const char *s = tok; name_ok && *s; s++)
		name_ok = isalnum((unsigned char)*s) || strchr("._+-/", *s) != NULL;
	if (!name_ok)
		return textscan_fail(
			c,
			"\"%s\" is not a time zone name (UTC, +HH:MM, or a name such as "
			"Europe/Berlin: parts of letters, digits and \"._+-\" joined by \"/\", none "
			"starting with \".\")",
			tok);
	snprintf(path, sizeof(path), "%s/%s", WINDOW_ZONEINFO_DIR, tok);
	if (!is_tzif(path))
		return textscan_fail(c,
				     "\"%s\" is not a time zone (%s is not a zone file; expected UTC, "
				     "+HH:MM, or a name such as Europe/Berlin)",
				     tok, path);
	out->zone_kind = WINDOW_IANA;
	memcpy(out->zone, tok, len + 1);
	return true;
}

static bool parse_zone(struct textscan *c, struct window *out)
{
	char tok[WINDOW_ZONE_MAX];
	bool fits;

	textscan_skip_blanks(c);
	out->zone_kind = WINDOW_UTC;
	if (!*c->p)
		return true;
	fits = take_token(c, "", tok, sizeof(tok));
	textscan_skip_blanks(c);
	if (*c->p)
		return textscan_fail(c, "unexpected \"%s\" after the zone \"%s\"", c->p, tok);
	if (!fits)
		return textscan_fail(c, "the zone \"%s…\" is longer than %d characters", tok,
				     WINDOW_ZONE_MAX - 1);
	if (strcasecmp(tok, "UTC") == 0)
		return true;
	if (tok[0] == '+' || tok[0] == '-') {
		out->zone_kind = WINDOW_OFFSET;
		return parse_offset(c, tok, &out->offset_min);
	}
	return parse_iana(c, tok, out);
}

bool window_parse(const char *spec, struct window *out, char *err, size_t errlen)
{
	struct textscan c = { .kind = "window",
			      .text = spec ? spec : "",
			      .p = spec ? spec : "",
			      .err = err,
			      .errlen = errlen };

	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	textscan_skip_blanks(&c);
	if (!*c.p)
		return textscan_fail(
			&c, "empty; expected DAYS HH:MM-HH:MM [ZONE], e.g. \"Mon-Fri 02:00-04:00 UTC\"");
	return parse_days(&c, &out->days) && parse_range(&c, &out->start_min, &out->end_min) &&
		parse_zone(&c, out);
}

/* ----------------------------------------------------------------- printing */

void window_format(const struct window *w, char *out, size_t cap)
{
	size_t len = 0;
	int zone_min = w->offset_min < 0 ? -w->offset_min : w->offset_min;

	if (cap == 0)
		return;
	out[0] = '\0';
	if (w->days == ALL_DAYS)
		textscan_append(out, cap, &len, "daily");
	else if (w->days == WEEKDAYS)
		textscan_append(out, cap, &len, "weekdays");
	else if (w->days == WEEKENDS)
		textscan_append(out, cap, &len, "weekends");
	else
		/* Runs of consecutive days within Mon … Sun: "Mon,Wed,Fri-Sun". */
		for (int d = 0; d < 7; d++) {
			int last = d;

			if (!(w->days & 1u << d))
				continue;
			while (last + 1 < 7 && w->days & 1u << (last + 1))
				last++;
			textscan_append(out, cap, &len, "%s%s", len ? "," : "", day_short[d]);
			if (last > d)
				textscan_append(out, cap, &len, "-%s", day_short[last]);
			d = last;
		}
	textscan_append(out, cap, &len, " %02d:%02d-%02d:%02d ", w->start_min / 60, w->start_min % 60,
			w->end_min / 60, w->end_min % 60);
	if (w->zone_kind == WINDOW_UTC)
		textscan_append(out, cap, &len, "UTC");
	else if (w->zone_kind == WINDOW_OFFSET)
		textscan_append(out, cap, &len, "%c%02d:%02d", w->offset_min < 0 ? '-' : '+', zone_min / 60,
				zone_min % 60);
	else
		textscan_append(out, cap, &len, "%s", w->zone);
}

/* ------------------------------------------------------------------ calendar */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* 0 = Monday for a day number of days_from_civil (1970-01-01 was a Thursday). */
static int weekday(int64_t day)
{
	return (int)(((day + 3) % 7 + 7) % 7);
}

/* TZ as it was before zone_enter, to put back. */
struct zone_scope {
	bool switched;
	char *saved; /* NULL: TZ was unset */
};

/* Makes localtime_r() answer in w's zone (IANA zones only; others need no TZ). */
static void zone_enter(const struct window *w, struct zone_scope *s)
{
	char tz[sizeof(WINDOW_ZONEINFO_DIR) + WINDOW_ZONE_MAX + 2];
	const char *old;

	s->switched = w->zone_kind == WINDOW_IANA;
	s->saved = NULL;
	if (!s->switched)
		return;
	old = getenv("TZ");
	if (old)
		s->saved = xstrdup(old);
	/* ":path" names the zone file itself: the file window_parse checked, whatever TZDIR says. */
	snprintf(tz, sizeof(tz), ":%s/%s", WINDOW_ZONEINFO_DIR, w->zone);
	setenv("TZ", tz, 1);
	tzset();
}

static void zone_leave(struct zone_scope *s)
{
	if (!s->switched)
		return;
	if (s->saved)
		setenv("TZ", s->saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(s->saved);
	s->saved = NULL;
	s->switched = false;
}

/* Seconds east of UTC in w's zone at instant t (zone entered). */
static int64_t utc_offset(const struct window *w, time_t t)
{
	struct tm tm;

	if (w->zone_kind == WINDOW_UTC)
		return 0;
	if (w->zone_kind == WINDOW_OFFSET)
		return (int64_t)w->offset_min * 60;
	if (!localtime_r(&t, &tm))
		return 0; /* defensive: only for instants beyond any calendar */
	return days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) * DAY_S +
		tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec - (int64_t)t;
}

/* The local day number (as days_from_civil) of instant t (zone entered). */
static int64_t local_day(const struct window *w, time_t t)
{
	return floor_div((int64_t)t + utc_offset(w, t), DAY_S);
}

/*
 * The first instant at which the local clock shows 'minute' of local 'day' or
 * later (zone entered): the first of two when a fall-back repeats it, the
 * jump itself when a spring-forward skips it.
 */
static time_t wall_to_utc(const struct window *w, int64_t day, int minute)
{
	int64_t wall = day * DAY_S + (int64_t)minute * 60;
	/* Offsets a day either side: the true instant is within 14 hours of 'wall'. */
	int64_t before = utc_offset(w, (time_t)(wall - DAY_S));
	int64_t after = utc_offset(w, (time_t)(wall + DAY_S));
	time_t lo, hi;
	bool before_ok = utc_offset(w, (time_t)(wall - before)) == before;
	bool after_ok = utc_offset(w, (time_t)(wall - after)) == after;

	if (before_ok && after_ok)
		return (time_t)(wall - (before > after ? before : after)); /* the earlier instant */
	if (before_ok)
		return (time_t)(wall - before);
	if (after_ok)
		return (time_t)(wall - after);
	if (after <= before)
		return (time_t)(wall - before); /* defensive: no gap can arise this way */
	/* Skipped: the jump lies in (wall - after, wall - before]; find its first second. */
	lo = (time_t)(wall - after);
	hi = (time_t)(wall - before);
	while (hi - lo > 1) {
		time_t mid = lo + (hi - lo) / 2;

		if (utc_offset(w, mid) == after)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

/* The instants the occurrence of w opening on local 'day' spans; false if DST left it empty. */
static bool occurrence(const struct window *w, int64_t day, time_t *open, time_t *close)
{
	int64_t end_day = day + (w->end_min <= w->start_min || w->end_min == 24 * 60);

	*open = wall_to_utc(w, day, w->start_min);
	*close = wall_to_utc(w, end_day, w->end_min % (24 * 60));
	return *open < *close;
}

/*
 * Looks for the occurrence of one window that contains t: true with its
 * bounds in *open and *close. Otherwise false, with *next the open of its
 * first occurrence after t ((time_t)-1 if none in two weeks, defensive).
 */
static bool window_find(const struct window *w, time_t t, time_t *open, time_t *close, time_t *next)
{
	struct zone_scope scope;
	int64_t today;
	bool inside = false;

	*next = (time_t)-1;
	zone_enter(w, &scope);
	today = local_day(w, t);
	/* From yesterday: an occurrence crossing midnight belongs to the day it opened. */
	for (int64_t d = today - 1; d <= today + 15; d++) {
		time_t o, c;

		if (!(w->days & 1u << weekday(d)) || !occurrence(w, d, &o, &c))
			continue;
		if (o <= t && t < c) {
			*open = o;
			*close = c;
			inside = true;
			break;
		}
		if (o > t) {
			*next = o;
			break;
		}
	}
	zone_leave(&scope);
	return inside;
}

bool window_contains(const struct window *w, int n, time_t t)
{
	time_t open, close, next;

	for (int i = 0; i < n; i++)
		if (window_find(&w[i], t, &open, &close, &next))
			return true;
	return false;
}

time_t window_next_open(const struct window *w, int n, time_t t)
{
	time_t best = (time_t)-1;

	for (int i = 0; i < n; i++) {
		time_t open, close, next;

		if (window_find(&w[i], t, &open, &close, &next))
			return t;
		if (next != (time_t)-1 && (best == (time_t)-1 || next < best))
			best = next;
	}
	return best;
}

time_t window_close(const struct window *w, int n, time_t t)
{
	time_t end = (time_t)-1;
	time_t horizon = t + 7 * DAY_S;
	bool extended = true;

	/* Every window open at t, then every window open at the running end, until none is. */
	while (extended && (end == (time_t)-1 || end < horizon)) {
		time_t at = end == (time_t)-1 ? t : end;

		extended = false;
		for (int i = 0; i < n; i++) {
			time_t open, close, next;

			if (window_find(&w[i], at, &open, &close, &next) && close > end) {
				end = close;
				extended = true;
			}
		}
	}
	return end;
}
