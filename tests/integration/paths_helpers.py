"""Helpers for the coordinator path tests (test_coordinator_*.py): running `pgvalve` with an
environment the test controls entirely (no --db added, no PG* variables inherited), following
the JSON event stream of a coordinator running in the background, reading what a proxy logged
about holds, and the journal as `pgvalve status --format json` prints it."""

import calendar
import json
import os
import re
import socket
import subprocess
import time

import harness
from coordinator import Result

# Variables that would tell libpq or pgvalve where the database is: never inherited.
_DB_VARS = ("PGVALVE_DB", "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD",
            "PGSERVICE", "PGSSLMODE", "PGOPTIONS", "PGPASSFILE")


def clean_env(extra=None):
    """os.environ without any database-locating variable, plus 'extra'."""
    env = {k: v for k, v in os.environ.items() if k not in _DB_VARS}
    env.update(extra or {})
    return env


def run(*args, env=None, timeout=300):
    """Runs `pgvalve args...` exactly as given (no --db added) with clean_env(env)."""
    cmd = [harness.coordinator_binary()] + [str(a) for a in args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, env=clean_env(env))
    return Result(proc, proc.stdout, proc.stderr)


def pg_env(pg):
    """libpq's PG* variables that reach `pg` as the superuser (what --db would otherwise say)."""
    return {"PGHOST": harness.HOST, "PGPORT": str(pg.port), "PGUSER": harness.SUPERUSER,
            "PGDATABASE": harness.DATABASE, "PGPASSWORD": harness.PASSWORDS[harness.SUPERUSER],
            "PGSSLMODE": "disable"}


def db_url(pg, port=None):
    """A URL for `pg` with the password in it (run() passes no PGPASSWORD); 'port' to miss."""
    return (f"postgresql://{harness.SUPERUSER}:{harness.PASSWORDS[harness.SUPERUSER]}@{harness.HOST}:"
            f"{port or pg.port}/{harness.DATABASE}?sslmode=disable")


def with_db(pg, *args):
    """args followed by --db for `pg`."""
    return list(args) + ["--db", db_url(pg)]


def proxy_url(proxy):
    return f"http://{harness.HOST}:{proxy.admin_port}"


_reserved = []  # sockets bound and never listening: their ports refuse connections, and stay taken


def closed_port():
    """A port on 127.0.0.1 that refuses connections for the rest of this process: bound here and
    never listened on, so no other test (of this run or another) can start listening there."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((harness.HOST, 0))
    _reserved.append(s)
    return s.getsockname()[1]


def closed_port_url():
    """An admin URL on 127.0.0.1 that nothing listens on."""
    return f"http://{harness.HOST}:{closed_port()}"


def write_json(tmp_path, name, doc):
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    return path


class Background:
    """A coordinator running in the background with --format json: its stdout goes to a file
    this object reads through its own file description, so the events can be followed while
    it runs."""

    def __init__(self, args, env=None, workdir="/tmp"):
        self.out_path = os.path.join(str(workdir), f"pgvalve-{os.getpid()}-{id(self)}.out")
        self.err_path = self.out_path[:-4] + ".err"
        self._out = open(self.out_path, "w")
        self._err = open(self.err_path, "w")
        cmd = [harness.coordinator_binary()] + [str(a) for a in args]
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, text=True,
                                     env=clean_env(env))
        self._reader = open(self.out_path)
        self._pending = ""
        self.seen = []

    def _read(self):
        self._pending += self._reader.read()
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            if line.startswith("{"):
                self.seen.append(json.loads(line))

    def wait_event(self, predicate, timeout, what="an event"):
        """The first event (seen before or arriving now) for which predicate(event) is true.
        Fails with everything seen if the coordinator exits first or the time runs out."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            self._read()
            for e in self.seen[checked:]:
                if predicate(e):
                    return e
            checked = len(self.seen)
            if self.proc.poll() is not None:
                self._read()
                for e in self.seen[checked:]:
                    if predicate(e):
                        return e
                raise AssertionError(f"pgvalve exited ({self.proc.returncode}) before {what}: "
                                     f"{self.seen!r}\n--- stderr\n{self._stderr()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {timeout}s: {self.seen!r}")
            time.sleep(0.05)

    def _stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def finish(self, timeout=300):
        """Waits for the exit; a Result whose events() are the JSON lines."""
        self.proc.wait(timeout)
        self._out.close()
        self._err.close()
        with open(self.out_path) as f:
            out = f.read()
        r = Result(self.proc, out, self._stderr())
        self._reader.close()
        return r

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def event_time(event):
    """An event's "time" as seconds since the epoch."""
    return calendar.timegm(time.strptime(event["time"][:19], "%Y-%m-%dT%H:%M:%S")) + float(event["time"][19:-1])


def after_cutover_second(event):
    """Waits until the wall clock is past the second 'event' (at or after the cutover) happened in."""
    harness.wait_for(lambda: time.time() >= int(event_time(event)) + 1, 5, what="the next second")


def events_named(result_or_events, name):
    events = result_or_events.events() if isinstance(result_or_events, Result) else result_or_events
    return [e for e in events if e.get("event") == name]


def messages(result):
    """Every event's message (and error/warning text) of a --format json run, one string."""
    parts = []
    for e in result.events():
        for key in ("message", "error", "warning", "detail", "hint"):
            if key in e:
                parts.append(str(e[key]))
    return "\n".join(parts)


_HOLD_RE = re.compile(r"hold (\S+): (\w+) mode, (\w+) policy, (\d+) table\(s\), lease (\d+) ms: in force")
_RELEASED_RE = re.compile(r"hold (\S+): released")


def proxy_holds(proxy, prefix=""):
    """[(id, mode, lease_ms)] of the holds the proxy logged as in force, in order, and the set of
    ids it logged as released; only ids starting with 'prefix'."""
    taken, released = [], set()
    for line in proxy.log_lines():
        m = _HOLD_RE.search(line)
        if m and m.group(1).startswith(prefix):
            taken.append((m.group(1), m.group(2), int(m.group(5))))
        m = _RELEASED_RE.search(line)
        if m and m.group(1).startswith(prefix):
            released.add(m.group(1))
    return taken, released


def status(pg, mig_id=None):
    """`pgvalve status [ID] --format json`, parsed (exit 0 required)."""
    args = ["status"] + ([str(mig_id)] if mig_id is not None else []) + ["--format", "json"]
    r = run(*with_db(pg, *args))
    assert r.rc == 0, r
    return json.loads(r.out)


def only_migration(pg):
    """The id of the journal's one and only migration."""
    listing = status(pg)["migrations"]
    assert len(listing) == 1, listing
    return int(listing[0]["id"])


def constraint_defs(db, table):
    """{name: (contype, pg_get_constraintdef, convalidated)} of every constraint on 'table'."""
    rows = db.execute("SELECT conname, contype, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
                      "WHERE conrelid = %s::regclass", (table,)).fetchall()
    return {n: (t, d, v) for n, t, d, v in rows}
