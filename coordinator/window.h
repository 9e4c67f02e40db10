/*
 * Cutover windows (docs/architecture.md §4.2, the wait for a window; --window SPEC, config key
 * "windows"): parsing a window, printing it back, and answering when a set of
 * windows is open, opens next and closes. Pure time arithmetic: waiting,
 * and deciding whether a cutover still has time, are cmd_apply's business.
 *
 * Grammar (words case-insensitive, blanks free between the parts):
 *
 *     DAYS HH:MM-HH:MM [ZONE]
 *
 *   DAYS   daily | weekdays | weekends | a day | a range | a comma list of those.
 *          A day is Mon Tue Wed Thu Fri Sat Sun or its full name (Monday ...).
 *          A range Mon-Fri runs forward through the week, so Fri-Mon wraps
 *          (Fri, Sat, Sun, Mon). Example: "Mon,Wed,Fri-Sat".
 *   HH:MM  00:00 to 24:00 (24:00 only as an end). An end earlier than the
 *          start crosses midnight: "Fri 22:00-02:00" opens Friday 22:00 and
 *          closes Saturday 02:00 (the window belongs to the day it opens).
 *          A start equal to the end is refused (empty or a full day: say which).
 *   ZONE   UTC (the default), a fixed offset +HH:MM / -HH:MM, or an IANA name
 *          (Europe/Berlin) that must be a TZif file under /usr/share/zoneinfo.
 *
 * Wall-clock times in an IANA zone are read as "the first instant the local
 * clock shows that time or later": a time that a spring-forward skips
 * (02:30 on 2026-03-29 in Europe/Berlin) means the moment the clocks jump
 * (03:00 CEST); a time an autumn fall-back shows twice means its first
 * occurrence. Windows are half-open: [open, close).
 *
 * The IANA functions switch the TZ environment variable and call tzset(),
 * restoring TZ before they return: the coordinator is single-threaded, and
 * these must not run while another thread reads local time.
 */
#ifndef PGVALVE_COORDINATOR_WINDOW_H
#define PGVALVE_COORDINATOR_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define WINDOW_MAX 16 /* --window given at most this often */
#define WINDOW_ZONE_MAX 128
#define WINDOW_ZONEINFO_DIR "/usr/share/zoneinfo"

enum window_zone { WINDOW_UTC, WINDOW_OFFSET, WINDOW_IANA };

struct window {
	unsigned days; /* bit 0 Monday ... bit 6 Sunday: the days it opens */
	int start_min; /* minutes after local midnight it opens: 0 ... 1439 */
	int end_min;   /* minutes it closes: 1 ... 1440; <= start_min: the next day */
	enum window_zone zone_kind;
	int offset_min;             /* WINDOW_OFFSET: minutes east of UTC */
	char zone[WINDOW_ZONE_MAX]; /* WINDOW_IANA: the name under WINDOW_ZONEINFO_DIR */
};

/*
 * Parses one SPEC into '*out'. False on error, with 'err' (always
 * terminated) naming the spec and its bad part, e.g.
 * window "Mon-Fry 02:00-04:00": "Fry" is not a day (Mon … Sun, daily, weekdays, weekends)
 */
bool window_parse(const char *spec, struct window *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The canonical spec of 'w' ("weekdays 02:00-04:00 Europe/Berlin"); parses back to 'w'. */
void window_format(const struct window *w, char *out, size_t cap);

/* Whether 't' lies inside any of the 'n' windows. */
bool window_contains(const struct window *w, int n, time_t t);

/*
 * 't' itself when it lies inside a window; otherwise the earliest instant
 * after 't' at which one of the 'n' windows opens. (time_t)-1 when n == 0.
 */
time_t window_next_open(const struct window *w, int n, time_t t);

/*
 * When the window containing 't' closes: the end of the unbroken open stretch
 * through 't' (overlapping or touching windows join), so "now + the time the
 * cutover needs <= this" says whether it still fits. Looks at most a week
 * past 't', so windows that never close (daily 00:00-24:00) answer about a
 * week on. (time_t)-1 when 't' is in no window.
 */
time_t window_close(const struct window *w, int n, time_t t);

#endif
