/*
 * Orphaned coordinator backends (see orphan.h). Whether a coordinator is
 * alive is asked of this machine's kernel only when the journal shows it ran
 * in this machine's PID space (same boot, same PID namespace) and with the
 * same process start time, so a reused PID or a coordinator in another
 * container is never taken for a dead one. Backends are named by pid and
 * backend_start together, so a reused backend pid is never ended.
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
#include "report.h"
#include "xalloc.h"

#define POLL_MS 200
#define REPORT_EVERY_MS 5000

/* This process as the journal records it. */
struct identity {
	int pid;
	long long started; /* clock ticks after boot (/proc/PID/stat field 22); 0: unknown */
	char host[256];
	char machine[300]; /* boot id and PID namespace: equal means one PID space */
};

/* The backend that holds the lock, from pg_stat_activity and the journal. */
struct holder {
	int pid;
	char backend_start[64]; /* as text, to name exactly this backend */
	char state[32];
	char query[256];
	char since[40];
	double running_s;
	bool recorded; /* pgvalve.coordinator_sessions has its row: the rest is set */
	char application_name[64];
	int coordinator_pid;
	long long coordinator_started;
	char host[256];
	char machine[300];
};

enum verdict {
	HOLDER_LIVE,    /* its coordinator runs, on this machine */
	HOLDER_ORPHAN,  /* its coordinator ran on this machine and is gone */
	HOLDER_UNKNOWN, /* not recorded, or its coordinator is on another machine */
};

static const char sessions_ddl[] = "CREATE TABLE IF NOT EXISTS pgvalve.coordinator_sessions ("
				   "  backend_pid int NOT NULL,"
				   "  backend_start timestamptz NOT NULL,"
				   "  holds_lock boolean NOT NULL,"
				   "  application_name text NOT NULL,"
				   "  coordinator_pid int NOT NULL,"
				   "  coordinator_started bigint NOT NULL,"
				   "  host text NOT NULL,"
				   "  machine text NOT NULL,"
				   "  registered_at timestamptz NOT NULL DEFAULT now(),"
				   "  PRIMARY KEY (backend_pid, backend_start))";

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

static void identity_self(struct identity *id)
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

static bool sessions_table_exists(PGconn *c, bool *exists, struct db_error *err)
{
	PGresult *r = db_query(c, "SELECT to_regclass('pgvalve.coordinator_sessions') IS NOT NULL", 0, NULL,
			       err);

	if (!r)
		return false;
	*exists = strcmp(db_value(r, 0, 0, "f"), "t") == 0;
	PQclear(r);
	return true;
}

/* What backend 'pid' is and whose; *gone when it is not connected. */
static bool holder_inspect(PGconn *c, int pid, struct holder *h, bool *gone, struct db_error *err)
{
	static const char activity[] =
		"SELECT a.backend_start::text, coalesce(a.state, ''), "
		"coalesce(left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200), ''), "
		"coalesce(to_char(a.query_start, 'YYYY-MM-DD HH24:MI:SS TZ'), ''), "
		"coalesce(extract(epoch FROM clock_timestamp() - a.query_start), 0)::float8";
	char pidtext[16], *sql;
	const char *params[1] = { pidtext };
	bool journal;
	PGresult *r;

	memset(h, 0, sizeof(*h));
	h->pid = pid;
	*gone = false;
	if (!sessions_table_exists(c, &journal, err))
		return false;
	snprintf(pidtext, sizeof(pidtext), "%d", pid);
	sql = journal
		? xasprintf("%s, s.application_name, s.coordinator_pid, s.coordinator_started, s.host, "
			    "s.machine FROM pg_stat_activity a LEFT JOIN pgvalve.coordinator_sessions s "
			    "ON s.backend_pid = a.pid AND s.backend_start = a.backend_start "
			    "WHERE a.pid = $1::int",
			    activity)
		: xasprintf("%s FROM pg_stat_activity a WHERE a.pid = $1::int", activity);
	r = db_query(c, sql, 1, params, err);
	free(sql);
	if (!r)
		return false;
	if (PQntuples(r) == 0) {
		*gone = true;
		PQclear(r);
		return true;
	}
	snprintf(h->backend_start, sizeof(h->backend_start), "%s", PQgetvalue(r, 0, 0));
	snprintf(h->state, sizeof(h->state), "%s", PQgetvalue(r, 0, 1));
	snprintf(h->query, sizeof(h->query), "%s", PQgetvalue(r, 0, 2));
	snprintf(h->since, sizeof(h->since), "%s", PQgetvalue(r, 0, 3));
	h->running_s = strtod(PQgetvalue(r, 0, 4), NULL);
	h->recorded = journal && !PQgetisnull(r, 0, 6);
	if (h->recorded) {
		snprintf(h->application_name, sizeof(h->application_name), "%s", PQgetvalue(r, 0, 5));
		h->coordinator_pid = atoi(PQgetvalue(r, 0, 6));
		h->coordinator_started = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
		snprintf(h->host, sizeof(h->host), "%s", PQgetvalue(r, 0, 8));
		snprintf(h->machine, sizeof(h->machine), "%s", PQgetvalue(r, 0, 9));
	}
	PQclear(r);
	return true;
}

static enum verdict holder_judge(const struct holder *h, const struct identity *self)
{
	if (!h->recorded || strcmp(h->machine, self->machine) != 0)
		return HOLDER_UNKNOWN;
	return process_alive(h->coordinator_pid, h->coordinator_started) ? HOLDER_LIVE : HOLDER_ORPHAN;
}

/*
 * Who: "backend pid 12 of coordinator pid 9 on db1 (pgvalve apply)", or just
 * "backend pid 12" when not recorded. What: "active, running `VALIDATE ...`
 * since 2026-01-01 10:00:00 UTC (42 s)".
 */
static void holder_describe(const struct holder *h, char *who, size_t who_cap, char *what, size_t what_cap)
{
	size_t n;

	if (h->recorded)
		/* The role: application_name up to its ", pid ..." (db.h). */
		snprintf(who, who_cap, "backend pid %d of coordinator pid %d on %s (%.*s)", h->pid,
			 h->coordinator_pid, h->host, (int)strcspn(h->application_name, ","),
			 h->application_name);
	else
		snprintf(who, who_cap, "backend pid %d", h->pid);
	n = (size_t)snprintf(what, what_cap, "%s", h->state[0] ? h->state : "state unknown");
	if (h->query[0] && n < what_cap)
		n += (size_t)snprintf(what + n, what_cap - n, ", %s `%s`",
				      strcmp(h->state, "active") == 0 ? "running" : "last ran", h->query);
	if (h->since[0] && n < what_cap)
		snprintf(what + n, what_cap - n, " since %s (%.0f s)", h->since, h->running_s);
}

/* ---- ending a dead coordinator's sessions ---------------------------------- */

/*
 * Ends every connected session the journal records for coordinator 'pid'
 * (started 'started') of machine 'machine', and waits, within
 * ORPHAN_END_WAIT_MS, until they are gone. False with 'err' filled when one
 * could not be ended (this role may not) or outlived the wait.
 */
static bool end_sessions_of(PGconn *c, const char *machine, int pid, long long started, struct db_error *err)
{
	static const char match[] =
		"FROM pgvalve.coordinator_sessions s JOIN pg_stat_activity a "
		"ON a.pid = s.backend_pid AND a.backend_start = s.backend_start "
		"WHERE s.machine = $1 AND s.coordinator_pid = $2::int AND s.coordinator_started = $3::bigint "
		"AND a.pid <> pg_backend_pid()";
	char pidtext[16], startedtext[32], *sql;
	const char *params[3] = { machine, pidtext, startedtext };
	int64_t deadline = clock_mono_ms() + ORPHAN_END_WAIT_MS;
	PGresult *r;

	snprintf(pidtext, sizeof(pidtext), "%d", pid);
	snprintf(startedtext, sizeof(startedtext), "%lld", started);
	sql = xasprintf("SELECT a.pid, pg_terminate_backend(a.pid) %s", match);
	r = db_query(c, sql, 3, params, err);
	free(sql);
	if (!r)
		return false;
	/* false: it ended by itself meanwhile; no right to end it is an error, with PostgreSQL's words. */
	for (int i = 0; i < PQntuples(r); i++)
		if (strcmp(PQgetvalue(r, i, 1), "t") == 0)
			report_event("orphan_ended", NULL, "ended backend pid %s of dead coordinator pid %d",
				     PQgetvalue(r, i, 0), pid);
	PQclear(r);
	sql = xasprintf("SELECT string_agg(a.pid::text, ', ') %s", match);
	for (;;) {
		const char *left;

		r = db_query(c, sql, 3, params, err);
		if (!r)
			break;
		left = db_value(r, 0, 0, "");
		if (!left[0]) {
			PQclear(r);
			free(sql);
			return true;
		}
		if (clock_mono_ms() >= deadline) {
			snprintf(err->msg, sizeof(err->msg),
				 "backend(s) %s of dead coordinator pid %d did not end within %d s of "
				 "pg_terminate_backend",
				 left, pid, ORPHAN_END_WAIT_MS / 1000);
			PQclear(r);
			break;
		}
		PQclear(r);
		report_progress("waiting for the dead coordinator's backends to end");
		sleep_ms(POLL_MS);
	}
	free(sql);
	return false;
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
	struct identity self;
	struct holder h;
	char who[512], what[512], both[1100];
	bool gone;

	if (holder_pid == 0)
		return wait_round(w, "a session pg_stat_activity does not show", err);
	if (!holder_inspect(c, holder_pid, &h, &gone, err))
		return false;
	if (gone) /* it ended between the lock's answer and this look: try again */
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
		return end_sessions_of(c, h.machine, h.coordinator_pid, h.coordinator_started, err);
	case HOLDER_UNKNOWN:
		if (w->announced_pid != h.pid) {
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
			w->announced_pid = h.pid;
		}
		return wait_round(w, both, err);
	}
	return false;
}

/* ---- recording this coordinator --------------------------------------------- */

/* Ends the connected sessions of this machine's coordinators that are gone. */
static bool sweep(PGconn *c, const struct identity *self, struct db_error *err)
{
	const char *params[1] = { self->machine };
	PGresult *r = db_query(c,
			       "SELECT DISTINCT s.coordinator_pid, s.coordinator_started "
			       "FROM pgvalve.coordinator_sessions s JOIN pg_stat_activity a "
			       "ON a.pid = s.backend_pid AND a.backend_start = s.backend_start "
			       "WHERE s.machine = $1 AND a.pid <> pg_backend_pid()",
			       1, params, err);
	bool ok = r != NULL;

	for (int i = 0; ok && i < PQntuples(r); i++) {
		int pid = atoi(PQgetvalue(r, i, 0));
		long long started = strtoll(PQgetvalue(r, i, 1), NULL, 10);

		if (pid == self->pid || process_alive(pid, started))
			continue;
		report_event("orphan", NULL,
			     "sessions of dead coordinator pid %d are still connected: ending them", pid);
		ok = end_sessions_of(c, self->machine, pid, started, err);
	}
	PQclear(r);
	return ok;
}

bool orphan_register(PGconn *c, struct db_error *err)
{
	struct identity self;
	char pids[DB_MAX_BACKENDS * 12 + 4] = "{", pidtext[16], startedtext[32];
	const char *params[5] = { pidtext, startedtext, self.host, self.machine, pids };
	int backends[DB_MAX_BACKENDS], n = db_backends(backends, DB_MAX_BACKENDS);
	size_t k = 1;
	PGresult *r;

	identity_self(&self);
	snprintf(pidtext, sizeof(pidtext), "%d", self.pid);
	snprintf(startedtext, sizeof(startedtext), "%lld", self.started);
	for (int i = 0; i < n; i++)
		k += (size_t)snprintf(pids + k, sizeof(pids) - k, "%s%d", i ? "," : "", backends[i]);
	snprintf(pids + k, sizeof(pids) - k, "}");
	if (!db_exec(c, sessions_ddl, err) || !sweep(c, &self, err))
		return false;
	/* Records of backends that are gone name nobody any more. */
	if (!db_exec(c,
		     "DELETE FROM pgvalve.coordinator_sessions s WHERE NOT EXISTS (SELECT 1 FROM "
		     "pg_stat_activity a WHERE a.pid = s.backend_pid AND a.backend_start = s.backend_start)",
		     err))
		return false;
	/* This process's sessions: its own pids, named after it (a pid closed and reused is not). */
	r = db_query(c,
		     "INSERT INTO pgvalve.coordinator_sessions (backend_pid, backend_start, holds_lock, "
		     "application_name, coordinator_pid, coordinator_started, host, machine) "
		     "SELECT a.pid, a.backend_start, a.pid = pg_backend_pid(), a.application_name, $1::int, "
		     "$2::bigint, $3, $4 FROM pg_stat_activity a WHERE a.pid = ANY ($5::int[]) "
		     "AND a.application_name LIKE 'pgvalve %, pid ' || $1 || ' on %' ON CONFLICT DO NOTHING",
		     5, params, err);
	PQclear(r);
	return r != NULL;
}
