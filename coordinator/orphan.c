/*
 * Orphaned coordinator backends (see orphan.h). Whether a coordinator is
 * alive is asked of this machine's kernel only when the journal shows it ran
 * in this machine's PID space (same boot, same PID namespace) and with the
 * same process start time, so a reused PID or a coordinator in another
 * container is never taken for a dead one. Backends are named by pid and
 * backend_start together, so a reused backend pid is never ended. The
 * records themselves are the journal's (journal.h, coordinator sessions):
 * this file decides from them and ends backends, it queries no pgvalve table.
 */
#include "orphan.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgvalve/clock.h"
#include "journal.h"
#include "report.h"

#define POLL_MS 200
#define REPORT_EVERY_MS 5000

enum verdict {
	HOLDER_LIVE,    /* its coordinator runs, on this machine */
	HOLDER_ORPHAN,  /* its coordinator ran on this machine and is gone */
	HOLDER_UNKNOWN, /* not recorded, or its coordinator is on another machine */
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Reads a small file's first line into 'out' (trailing newline cut); false if it cannot. */
static bool read_line(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(out, (int)cap, f) != NULL;
	fclose(f);
	if (ok)
		out[strcspn(out, "\n")] = '\0';
	return ok;
}

/* State letter and start time of process 'pid' from /proc; false when there is no such entry. */
static bool proc_stat(int pid, char *state, long long *started)
{
	char path[64], line[1024], *p, *save = NULL;
	int field = 3;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (!read_line(path, line, sizeof(line)))
		return false;
	/* "pid (comm) state ppid ...": comm may hold spaces and parentheses, so start after the last ')'. */
	p = strrchr(line, ')');
	if (!p)
		return false;
	for (p = strtok_r(p + 1, " ", &save); p; p = strtok_r(NULL, " ", &save), field++) {
		if (field == 3)
			*state = p[0];
		if (field == 22) {
			*started = strtoll(p, NULL, 10);
			return true;
		}
	}
	return false;
}

/* This process as the journal records it. */
static void identity_self(struct journal_coordinator *id)
{
	char boot[64] = "", ns[64] = "";
	ssize_t n;
	char state;

	id->pid = (int)getpid();
	if (!proc_stat(id->pid, &state, &id->started))
		id->started = 0;
	if (gethostname(id->host, sizeof(id->host)) != 0)
		snprintf(id->host, sizeof(id->host), "?");
	id->host[sizeof(id->host) - 1] = '\0';
	(void)read_line("/proc/sys/kernel/random/boot_id", boot, sizeof(boot));
	n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
	ns[n > 0 ? n : 0] = '\0';
	if (boot[0] && ns[0])
		snprintf(id->machine, sizeof(id->machine), "boot %s %s", boot, ns);
	else
		snprintf(id->machine, sizeof(id->machine), "host %s", id->host);
}

/* Whether process 'pid', started at 'started' (0: unknown), still runs here. A zombie does not. */
static bool process_alive(int pid, long long started)
{
	char state;
	long long now;

	if (pid <= 0)
		return true; /* defensive: a record this program did not write */
	if (proc_stat(pid, &state, &now))
		return state != 'Z' && state != 'X' && (started == 0 || now == started);
	return !(kill(pid, 0) != 0 && errno == ESRCH);
}

/* ---- the lock's holder ----------------------------------------------------- */

static enum verdict holder_judge(const struct journal_session *h, const struct journal_coordinator *self)
{
	if (!h->recorded || strcmp(h->coordinator.machine, self->machine) != 0)
		return HOLDER_UNKNOWN;
	return process_alive(h->coordinator.pid, h->coordinator.started) ? HOLDER_LIVE : HOLDER_ORPHAN;
}

/*
 * Who: "backend pid 12 of coordinator pid 9 on db1 (pgvalve apply)", or just
 * "backend pid 12" when not recorded. What: "active, running `VALIDATE ...`
 * since 2026-01-01 10:00:00 UTC (42 s)".
 */
static void holder_describe(const struct journal_session *h, char *who, size_t who_cap, char *what,
			    size_t what_cap)
{
	size_t n;

	if (h->recorded)
		/* The role: application_name up to its ", pid ..." (db.h). */
		snprintf(who, who_cap, "backend pid %d of coordinator pid %d on %s (%.*s)", h->backend.pid,
			 h->coordinator.pid, h->coordinator.host, (int)strcspn(h->application_name, ","),
			 h->application_name);
	else
		snprintf(who, who_cap, "backend pid %d", h->backend.pid);
	n = (size_t)snprintf(what, what_cap, "%s", h->state[0] ? h->state : "state unknown");
	if (h->query[0] && n < what_cap)
		n += (size_t)snprintf(what + n, what_cap - n, ", %s `%s`",
				      strcmp(h->state, "active") == 0 ? "running" : "last ran", h->query);
	if (h->since[0] && n < what_cap)
		snprintf(what + n, what_cap - n, " since %s (%.0f s)", h->since, h->running_s);
}

/* ---- ending a dead coordinator's sessions ---------------------------------- */

/*
 * Ends backend 'b' unless it has gone: pg_terminate_backend answers false
 * when it ended by itself meanwhile; no right to end it is an error, with
 * PostgreSQL's words.
 */
static bool end_backend(PGconn *c, const struct journal_backend *b, int coordinator_pid, struct db_error *err)
{
	char pidtext[16];
	const char *params[2] = { pidtext, b->backend_start };
	PGresult *r;

	snprintf(pidtext, sizeof(pidtext), "%d", b->pid);
	r = db_query(c,
		     "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		     "WHERE pid = $1::int AND backend_start = $2::timestamptz",
		     2, params, err);
	if (!r)
		return false;
	if (strcmp(db_value(r, 0, 0, "f"), "t") == 0)
		report_event("orphan_ended", NULL, "ended backend pid %d of dead coordinator pid %d", b->pid,
			     coordinator_pid);
	PQclear(r);
	return true;
}

/*
 * Ends every connected session the journal records for coordinator 'co'
 * (pid, started and machine), and waits, within ORPHAN_END_WAIT_MS, until
 * they are gone. False with 'err' filled when one could not be ended (this
 * role may not) or outlived the wait.
 */
static bool end_sessions_of(PGconn *c, const struct journal_coordinator *co, struct db_error *err)
{
	int64_t deadline = clock_mono_ms() + ORPHAN_END_WAIT_MS;
	struct journal_backend *b;
	int n;
	bool ok;

	if (!journal_coordinator_backends(c, co, &b, &n, err))
		return false;
	ok = true;
	for (int i = 0; ok && i < n; i++)
		ok = end_backend(c, &b[i], co->pid, err);
	free(b);
	if (!ok)
		return false;
	for (;;) {
		char left[DB_MAX_BACKENDS * 12 + 16];
		size_t k = 0;

		if (!journal_coordinator_backends(c, co, &b, &n, err))
			return false;
		if (n == 0) {
			free(b);
			return true;
		}
		left[0] = '\0';
		for (int i = 0; i < n && k < sizeof(left); i++)
			k += (size_t)snprintf(left + k, sizeof(left) - k, "%s%d", i ? ", " : "", b[i].pid);
		free(b);
		if (clock_mono_ms() >= deadline) {
			snprintf(err->msg, sizeof(err->msg),
				 "backend(s) %s of dead coordinator pid %d did not end within %d s of "
				 "pg_terminate_backend",
				 left, co->pid, ORPHAN_END_WAIT_MS / 1000);
			return false;
		}
		report_progress("waiting for the dead coordinator's backends to end");
		sleep_ms(POLL_MS);
	}
}

/* ---- the wait --------------------------------------------------------------- */

/* One round of waiting for a holder that cannot be judged: true to try again, false when the wait is over. */
static bool wait_round(struct orphan_wait *w, const char *who, struct db_error *err)
{
	int64_t now = clock_mono_ms(), waited;

	if (!w->started_ms)
		w->started_ms = w->reported_ms = now;
	waited = now - w->started_ms;
	if (waited >= ORPHAN_WAIT_MS) {
		err->sqlstate[0] = '\0';
		snprintf(err->msg, sizeof(err->msg),
			 "another pgvalve coordinator is working on this database: %.600s; still there after "
			 "%d s (if its coordinator is gone, end it: SELECT pg_terminate_backend(pid))",
			 who, ORPHAN_WAIT_MS / 1000);
		return false;
	}
	if (w->announced_pid && now - w->reported_ms >= REPORT_EVERY_MS) {
		report_event("waiting_for_lock", NULL, "still waiting for the coordinator lock: %.0f of %d s",
			     (double)waited / 1000, ORPHAN_WAIT_MS / 1000);
		w->reported_ms = now;
	}
	report_progress("waiting for the coordinator lock: %.1f of %d s", (double)waited / 1000,
			ORPHAN_WAIT_MS / 1000);
	sleep_ms(POLL_MS);
	return true;
}

bool orphan_resolve(PGconn *c, int holder_pid, struct orphan_wait *w, struct db_error *err)
{
	struct journal_coordinator self;
	struct journal_session h;
	char who[512], what[512], both[1100];
	bool found;

	if (holder_pid == 0)
		return wait_round(w, "a session pg_stat_activity does not show", err);
	if (!journal_read_session(c, holder_pid, &h, &found, err))
		return false;
	if (!found) /* it ended between the lock's answer and this look: try again */
		return wait_round(w, "a backend that has just ended", err);
	identity_self(&self);
	holder_describe(&h, who, sizeof(who), what, sizeof(what));
	snprintf(both, sizeof(both), "%s, %s", who, what);
	switch (holder_judge(&h, &self)) {
	case HOLDER_LIVE:
		err->sqlstate[0] = '\0';
		snprintf(err->msg, sizeof(err->msg),
			 "another pgvalve coordinator is working on this database: %s; that coordinator is "
			 "alive (backend %.400s)",
			 who, what);
		return false;
	case HOLDER_ORPHAN:
		report_event("orphan", NULL,
			     "the coordinator lock is held by %s, and that coordinator is gone: the backend "
			     "is orphaned (%s); ending it: its transaction rolls back, the journal stays as "
			     "it was",
			     who, what);
		return end_sessions_of(c, &h.coordinator, err);
	case HOLDER_UNKNOWN:
		if (w->announced_pid != h.backend.pid) {
			report_event(
				"waiting_for_lock", NULL,
				"the coordinator lock is held by %s; %s: waiting up to %d s for it to end "
				"(the server ends a backend whose coordinator is gone)",
				both,
				h.recorded
					? "its coordinator ran on another machine, so whether it is "
					  "alive cannot be checked from here"
					: "pgvalve did not record it (an older pgvalve, or another program)",
				ORPHAN_WAIT_MS / 1000);
			w->announced_pid = h.backend.pid;
		}
		return wait_round(w, both, err);
	}
	return false;
}

/* ---- recording this coordinator --------------------------------------------- */

/* Ends the connected sessions of this machine's coordinators that are gone. */
static bool sweep(PGconn *c, const struct journal_coordinator *self, struct db_error *err)
{
	struct journal_coordinator *co;
	int n;
	bool ok = journal_connected_coordinators(c, self->machine, &co, &n, err);

	for (int i = 0; ok && i < n; i++) {
		if (co[i].pid == self->pid || process_alive(co[i].pid, co[i].started))
			continue;
		report_event("orphan", NULL,
			     "sessions of dead coordinator pid %d are still connected: ending them",
			     co[i].pid);
		ok = end_sessions_of(c, &co[i], err);
	}
	free(co);
	return ok;
}

bool orphan_register(PGconn *c, struct db_error *err)
{
	struct journal_coordinator self;
	int backends[DB_MAX_BACKENDS], n = db_backends(backends, DB_MAX_BACKENDS);

	identity_self(&self);
	/* Under the lock, so coordinators starting together never race to create the table. */
	if (!journal_sessions_ensure(c, err) || !sweep(c, &self, err))
		return false;
	/* Records of backends that are gone name nobody any more. */
	if (!journal_forget_ended_sessions(c, err))
		return false;
	/* This process's sessions: its own pids, named after it (a pid closed and reused is not). */
	return journal_record_sessions(c, &self, backends, n, err);
}
