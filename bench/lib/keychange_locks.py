#!/usr/bin/python3
"""What the load's sessions wait on while a key change runs (bench/keychange --lock-samples FILE).

A side connection, straight to the server, samples every --interval (20 ms):
pg_stat_activity (state, wait_event_type, wait_event, pg_blocking_pids) of every client
backend, joined to the lock each waits for in pg_locks (locktype, relation, mode), and, every
fifth sample, the proxy's /status (parked sessions, holds). Each sample is a JSON line in FILE.
summarize() then says, per phase of pgvalve apply (from its output lines), how many samples saw
a load session waiting and on what: a lock (which, held by which pgvalve statement), I/O or IPC,
or nothing at all (a load session active but not waiting: the CPU, or the client/proxy side),
and how often the proxy had sessions parked.
"""
import json
import os
import re
import threading
import time
import urllib.request

import psycopg

LOAD_APP = "bench-cutover-load"  # Load's PGAPPNAME (cutover_run.py), forwarded by the proxy

SAMPLE_SQL = """
SELECT a.pid, a.application_name, a.state, coalesce(a.wait_event_type, ''), coalesce(a.wait_event, ''),
       pg_blocking_pids(a.pid), left(regexp_replace(a.query, '\\s+', ' ', 'g'), 90),
       coalesce(l.locktype, ''), coalesce(l.relation::regclass::text, ''), coalesce(l.mode, '')
FROM pg_stat_activity a
LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
"""


class Sampler(threading.Thread):
    def __init__(self, db_port, admin_url, path, interval=0.02, renice=None):
        super().__init__(daemon=True)
        self.renice, self.reniced = renice, set()  # renice: nice value for pgvalve's backends (an experiment)
        self.db_port, self.admin_url, self.path, self.interval = db_port, admin_url, path, interval
        self.stopping = threading.Event()
        self.samples = 0
        self.error = None

    @staticmethod
    def pressure():
        """The kernel's stall counters (PSI, microseconds): some task waiting for CPU, for I/O."""
        out = {}
        try:
            with open("/proc/loadavg") as f:  # "0.5 0.4 0.3 RUNNABLE/TOTAL LASTPID"
                out["runnable"] = int(f.read().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            pass
        for what in ("cpu", "io"):
            try:
                with open(f"/proc/pressure/{what}") as f:
                    out[what] = int(f.readline().rsplit("total=", 1)[1])
            except (OSError, IndexError, ValueError):
                pass
        return out

    @staticmethod
    def proc_states(pids):
        """Each backend's scheduler state (R running or runnable, D uninterruptible I/O, S asleep)."""
        out = {}
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    out[pid] = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                pass
        return out

    def status(self):
        try:
            with urllib.request.urlopen(self.admin_url + "/status", timeout=2) as r:
                doc = json.load(r)
            return {"parked": doc.get("clients", {}).get("parked"),
                    "holds": [h.get("mode") for h in doc.get("holds", [])]}
        except (OSError, ValueError):
            return None

    def run(self):
        try:
            with psycopg.connect(port=self.db_port, autocommit=True,
                                 application_name="bench-keychange-sampler") as c, open(self.path, "w") as out:
                c.execute("SET statement_timeout = '5s'")
                n = 0
                while not self.stopping.is_set():
                    t0 = time.time()
                    try:
                        rows = c.execute(SAMPLE_SQL).fetchall()
                    except psycopg.errors.QueryCanceled:
                        continue  # a host too busy to answer within the statement_timeout: a gap
                    if self.renice is not None:
                        for r in rows:
                            if r[1].startswith("pgvalve") and r[0] not in self.reniced:
                                try:
                                    os.setpriority(os.PRIO_PROCESS, r[0], self.renice)
                                except OSError as e:
                                    self.error = f"renice {r[0]}: {e}"
                                self.reniced.add(r[0])
                    rec = {"t": t0, "s": [list(r) for r in rows], "psi": self.pressure(),
                           "ps": self.proc_states([r[0] for r in rows if r[2] == "active"])}
                    if n % 5 == 0:
                        rec["proxy"] = self.status()
                    out.write(json.dumps(rec) + "\n")
                    n += 1
                    self.samples = n
                    left = self.interval - (time.time() - t0)
                    if left > 0:
                        self.stopping.wait(left)
        except Exception as e:  # noqa: BLE001 - reported in the result's notes, the run goes on
            self.error = f"{type(e).__name__}: {e}"

    def stop(self):
        self.stopping.set()
        self.join(timeout=10)


# pgvalve apply's output lines, in order, to the phase they begin (the first match wins)
# pgvalve apply's output lines, in order, to the phase they begin (the first match wins; \1: a table)
PHASES = (
    (re.compile(r"^prepare: bigint shadow columns and their trigger on (\S+)"), "shadow columns on {} (all hold)"),
    (re.compile(r"^prepare: shadow columns on (\S+) added"), "backfill of {}"),
    (re.compile(r"^prepare: CREATE .*INDEX"), "index builds (CONCURRENTLY)"),
    (re.compile(r"^cutover committed"), "validate (FKs, checks)"),
    (re.compile(r"^cutover"), "cutover: FKs NOT VALID (writes hold)"),
    (re.compile(r"^finalize: \d+ statement"), "swap (all hold)"),
    (re.compile(r"^migration \d+ committed"), "drop old columns (all hold)"),
    (re.compile(r"^migration \d+ finalized"), "done"),
)


def phase_of(msg, current):
    for rx, name in PHASES:
        m = rx.search(msg)
        if m:
            return name.format(*m.groups())
    return current


def phases(events, start):
    """[(from time, phase)] from pgvalve apply's (received, message) lines."""
    out, cur = [(start, "start")], "start"
    for at, msg in events:
        p = phase_of(msg, cur)
        if p != cur:
            out.append((at, p))
            cur = p
    return out


def who(app, query):
    if app.startswith("pgvalve"):
        return "pgvalve: " + query
    return f"{app or '?'}: {query}"


def summarize(path, events, start, end):
    """Per phase: seconds, samples, load sessions active / waiting, what they waited on, parked."""
    spans = phases(events, start)
    stats = {}
    order = []
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            t = rec["t"]
            if t < start or t > end + 1.0:
                continue
            ph = [p for at, p in spans if at <= t][-1]
            if ph not in stats:
                stats[ph] = {"samples": 0, "active": 0, "waits": {}, "parked_samples": 0,
                             "status_samples": 0, "first": t, "last": t, "psi0": rec.get("psi", {}),
                             "psi1": rec.get("psi", {}), "max_gap": 0.0}
                order.append(ph)
            s = stats[ph]
            s["samples"] += 1
            if s["samples"] > 1:
                s["max_gap"] = max(s["max_gap"], t - s["last"])
            s["last"] = t
            s["psi1"] = rec.get("psi", {})
            if "runnable" in s["psi1"]:
                s["runnable"] = s.get("runnable", 0) + s["psi1"]["runnable"]
            ps = {int(k): v for k, v in rec.get("ps", {}).items()}
            by_pid = {r[0]: r for r in rec["s"]}
            for pid, app, state, wtype, wevent, blockers, query, ltype, rel, mode in rec["s"]:
                if app != LOAD_APP or state not in ("active", "idle in transaction"):
                    continue
                if state != "active":
                    # between the statements of its transaction: the server waits for pgbench or the proxy
                    key = "in its transaction, the server waiting for the client side (pgbench, proxy)"
                    s["waits"][key] = s["waits"].get(key, 0) + 1
                    continue
                s["active"] += 1
                if wtype == "Lock":
                    held = [who(by_pid[b][1], by_pid[b][6]) if b in by_pid else f"pid {b}" for b in blockers]
                    key = f"Lock {wevent} {rel or ltype} {mode} <- " + ("; ".join(sorted(set(held))) or "?")
                elif wtype and wtype != "Client":
                    key = f"{wtype} {wevent}"
                elif wtype == "Client":
                    continue  # waiting for the client/proxy to send: not a server-side wait
                else:
                    key = {"R": "no wait event, process running or runnable (CPU)",
                           "D": "no wait event, process in uninterruptible I/O (D)"}.get(
                               ps.get(pid), "no wait event")
                s["waits"][key] = s["waits"].get(key, 0) + 1
            px = rec.get("proxy")
            if px is not None:
                s["status_samples"] += 1
                if px.get("parked"):
                    s["parked_samples"] += 1
    out = []
    for ph in order:
        s = stats[ph]
        out.append({"phase": ph, "seconds": round(s["last"] - s["first"], 2), "samples": s["samples"],
                    "load_active": s["active"],
                    "waits": dict(sorted(s["waits"].items(), key=lambda kv: -kv[1])),
                    "proxy_parked": f"{s['parked_samples']}/{s['status_samples']}",
                    "sampler_max_gap_ms": round(s["max_gap"] * 1000),
                    "runnable_avg": round(s.get("runnable", 0) / s["samples"], 1),
                    **{f"{w}_stall_pct": round(100.0 * (s["psi1"][w] - s["psi0"][w]) / 1e6 / (s["last"] - s["first"]))
                       for w in ("cpu", "io") if w in s["psi0"] and w in s["psi1"] and s["last"] > s["first"]}})
    return out


def during(path, t_from, t_to):
    """What the load's sessions did in the samples between t_from and t_to (one slow transaction)."""
    spans = summarize(path, [], t_from, t_to - 1.0)
    if not spans:
        return None
    spans[0]["phase"] = "the slowest transaction"
    return spans[0]


def format_summary(summary):
    lines = []
    for p in summary:
        lines.append(f"  {p['phase']}: {p['seconds']} s, {p['samples']} samples, "
                     f"{p['load_active']} load-session-samples active, parked in {p['proxy_parked']} /status reads; "
                     f"host: some task stalled on CPU {p.get('cpu_stall_pct', '?')}% / on I/O {p.get('io_stall_pct', '?')}% "
                     f"of the time (PSI), {p.get('runnable_avg', '?')} tasks runnable on average, "
                     f"sampler's longest gap {p['sampler_max_gap_ms']} ms")
        for k, n in list(p["waits"].items())[:8]:
            lines.append(f"      {n:6d}  {k}")
    return "\n".join(lines)
