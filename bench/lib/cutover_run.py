#!/usr/bin/python3
"""One run of bench/cutover: a steady write load through pgvalve-proxy while one
method adds the foreign key child(parent_id) -> parent(id), and what the load's
clients saw while it did.

  1. pgbench starts through the proxy (-R RATE, so a stalled client's later
     transactions count their wait: pgbench's per-transaction latency runs from
     the scheduled start), with -l per-transaction logs and -P 1 progress.
  2. After --lead seconds the method runs. With --holder, a transaction
     through the proxy first updates child row 1 (a row lock, and
     RowExclusiveLock on child, which every ADD FOREIGN KEY waits for) and
     commits --holder-seconds after its BEGIN; the DDL starts as soon as that
     UPDATE returned. For pgvalve the DDL window is the whole `pgvalve apply`
     (preflight, cutover, validation); the holder starts when apply reports
     `started` (preflight done), i.e. just before the cutover takes its locks.
  3. After the DDL, the load runs until pgbench's progress shows it has caught
     up (lag < 50 ms) at least 2 s after the window's end; then pgbench is
     stopped (its last buffered log lines are lost: they lie after the window).
  4. Every transaction that was in flight at any time during the window
     [DDL start, DDL end + 1 s] (scheduled start <= end, completion >= start)
     counts: p50, p99, max latency. Errors are the ErrorResponses the proxy
     relayed during the run (pgvalve_errors_total, which counts the load and
     the holder, not the DDL sessions: they connect directly) plus pgbench's
     aborted clients and failed transactions.

Methods: baseline (no DDL: the window is --baseline-seconds long), plain,
one-tx (NOT VALID + VALIDATE in one transaction), separate (NOT VALID, then
VALIDATE), lock-timeout (SET lock_timeout, retry NOT VALID, then VALIDATE),
pgvalve (pgvalve apply, the proxy in front). Every DDL except pgvalve's runs on a
direct connection; pgvalve apply gets --db (direct) and --proxy (admin URL).

Connection settings come from libpq's environment (PGHOST, PGUSER, ...);
--db-port and --proxy-port choose the port. Prints one JSON object on stdout;
progress and diagnostics on stderr. Exit 0 even when the method failed (the
JSON says "status": "failed"); exit 2 on a usage error.
"""
import argparse
import glob
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg

CONSTRAINT = "child_parent_fk"
ADD = f"ALTER TABLE child ADD CONSTRAINT {CONSTRAINT} FOREIGN KEY (parent_id) REFERENCES parent (id)"
VALIDATE = f"ALTER TABLE child VALIDATE CONSTRAINT {CONSTRAINT}"
METHODS = ("baseline", "plain", "one-tx", "separate", "lock-timeout", "pgvalve")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}]     {msg}", file=sys.stderr, flush=True)


def proxy_errors(admin_url):
    """Sum of pgvalve_errors_total over its labels; None if /metrics does not answer."""
    try:
        with urllib.request.urlopen(admin_url + "/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith("pgvalve_errors_total"):
            total += int(float(line.rsplit(None, 1)[1]))
    return total


class Load:
    """pgbench through the proxy, its stderr read by a thread for progress lines."""

    PROGRESS = re.compile(r"^progress: ([0-9.]+) s, ([0-9.]+) tps, .*?lag ([0-9.]+) ms")

    def __init__(self, a, workdir):
        self.prefix = os.path.join(workdir, "pgbench")
        env = dict(os.environ, PGPORT=str(a.proxy_port), PGAPPNAME="bench-cutover-load")
        cmd = [a.pgbench, "-n", "-c", str(a.clients), "-j", str(a.threads), "-R", str(a.rate),
               "-T", "3600", "-P", "1", "-l", f"--log-prefix={self.prefix}",
               "-f", a.load_script, "-D", f"rows={a.rows}", "-D", f"parents={a.parents}"]
        self.out = open(os.path.join(workdir, "pgbench.out"), "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.out, stderr=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.progress = []          # (received wall time, tps, lag ms)
        self.other = []             # every other stderr line (errors, aborts)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            m = self.PROGRESS.match(line)
            with self.lock:
                if m:
                    self.progress.append((time.time(), float(m.group(2)), float(m.group(3))))
                else:
                    self.other.append(line)

    def alive(self):
        return self.proc.poll() is None

    def caught_up_after(self, t):
        """True once a progress line received at or after t shows lag < 50 ms."""
        with self.lock:
            return any(rt >= t and lag < 50.0 and tps > 0 for rt, tps, lag in self.progress)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(timeout=5)
        self.out.close()

    def aborted(self):
        with self.lock:
            return [l for l in self.other if "aborted" in l or l.startswith("pgbench: error")]

    def transactions(self):
        """(scheduled start, completion, latency s, failed) of every logged transaction."""
        rows = []
        for path in glob.glob(self.prefix + ".*"):
            with open(path) as f:
                for line in f:
                    p = line.split()
                    if len(p) < 6:
                        continue            # a line cut short by the stop
                    try:
                        done = int(p[4]) + int(p[5]) / 1e6
                        if p[2] in ("failed", "skipped"):
                            rows.append((done, done, 0.0, True))
                        else:
                            lat = float(p[2]) / 1e6
                            rows.append((done - lat, done, lat, False))
                    except ValueError:
                        continue
        return rows


class Holder(threading.Thread):
    """A transaction through the proxy that updates child row 1 and commits `seconds` after BEGIN."""

    def __init__(self, proxy_port, seconds):
        super().__init__(daemon=True)
        self.conn = psycopg.connect(port=proxy_port, application_name="bench-cutover-holder")
        self.seconds = seconds
        self.locked = threading.Event()
        self.began = self.locked_at = self.ended = None
        self.error = None

    def run(self):
        try:
            self.began = time.time()
            self.conn.execute("UPDATE child SET payload = payload WHERE id = 1")   # psycopg sends BEGIN first
            self.locked_at = time.time()
            self.locked.set()
            time.sleep(max(0.0, self.seconds - (time.time() - self.began)))
            self.conn.commit()
            self.ended = time.time()
        except Exception as e:      # noqa: BLE001 - reported in the result
            self.error = str(e)
            self.locked.set()
        finally:
            self.conn.close()


def ddl_conn(a):
    return psycopg.connect(port=a.db_port, autocommit=True, application_name="bench-cutover-ddl")


def run_plain(a, notes):
    with ddl_conn(a) as c:
        c.execute(ADD)


def run_one_tx(a, notes):
    with ddl_conn(a) as c:
        with c.transaction():
            c.execute(ADD + " NOT VALID")
            c.execute(VALIDATE)


def run_separate(a, notes):
    with ddl_conn(a) as c:
        c.execute(ADD + " NOT VALID")
        c.execute(VALIDATE)


def run_lock_timeout(a, notes):
    """strong_migrations style: a short lock_timeout, retried after a pause."""
    deadline = time.time() + a.deadline
    with ddl_conn(a) as c:
        c.execute(f"SET lock_timeout = '{a.lock_timeout_ms}ms'")
        for label, sql in (("NOT VALID", ADD + " NOT VALID"), ("VALIDATE", VALIDATE)):
            attempts = 0
            while True:
                attempts += 1
                try:
                    c.execute(sql)
                    break
                except psycopg.errors.LockNotAvailable:
                    if time.time() > deadline:
                        raise
                    time.sleep(a.retry_pause_ms / 1000)
            if attempts > 1 or label == "NOT VALID":
                notes.append(f"{label}: {attempts} attempt{'s' if attempts > 1 else ''}")
        c.execute("RESET lock_timeout")


def run_pgvalve(a, notes, holder, failure, extra):
    cmd = [a.pgvalve, "apply", a.migration, "--db", a.db_url, "--proxy", a.admin_url,
           "--watch", "0", "--max-stall", str(a.max_stall), "--format", "json"]
    log("$ " + " ".join(cmd).replace(a.db_url, re.sub(r":[^:@/]*@", ":***@", a.db_url)))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    cutover_seen = None
    over_budget = 0
    try:
        for line in proc.stdout:
            now = time.time()
            lines.append(line.rstrip("\n"))
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("event")
            if kind == "started" and holder is not None:
                holder.start()
                holder.locked.wait(10)
            elif kind == "cutover":
                cutover_seen = now
            elif kind == "cutover_done":
                log("pgvalve: " + ev.get("message", "").strip())
                m = re.search(r"after (\d+) attempt\(s\)", ev.get("message", ""))
                if m:
                    notes.append(f"cutover: {m.group(1)} attempt{'s' if m.group(1) != '1' else ''}")
            elif kind == "attempt_failed":
                log("pgvalve: " + ev.get("message", "").strip())
                if "stall budget" in ev.get("message", ""):
                    over_budget += 1
            elif kind == "waiting_for_blocker":
                log("pgvalve: " + ev.get("message", "").strip())
        rc = proc.wait(timeout=a.deadline)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
        lines.append(f"(killed after {a.deadline} s)")
    if over_budget:
        notes.append(f"{over_budget} attempt{'s' if over_budget > 1 else ''} held traffic for the whole "
                     f"{a.max_stall} ms stall budget, then gave up")
    if holder is not None and holder.locked_at and cutover_seen:
        extra["holder_locked_before_cutover_ms"] = round(1000 * (cutover_seen - holder.locked_at), 1)
        log(f"the holder had its lock {extra['holder_locked_before_cutover_ms']} ms before apply's cutover began")
    with open(os.path.join(a.workdir, "pgvalve-apply.log"), "w") as f:
        f.write("\n".join(lines) + "\n")
    if rc != 0:
        failure.append(f"pgvalve apply exited {rc}")
        log(f"pgvalve apply exited with status {rc}; its output:")
        for l in lines[-40:]:
            print("        " + l, file=sys.stderr)
    else:
        for l in lines:
            try:
                ev = json.loads(l)
            except ValueError:
                continue
            if ev.get("event") == "warning":
                notes.append("warning: " + ev.get("warning", ""))


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def measure(a, load, start, end, errors_before, result, notes, failure, settle_s=2.0):
    """What the load's clients saw in [start, end + 1 s]: waits until pgbench has caught up at
    least settle_s past it (pgbench's last buffered log lines are lost when it is stopped), stops
    pgbench, and fills result (p50/p99/max, errors...), notes and failure. Shared with
    bench/lib/keychange_run.py."""
    win_start, win_end = start, end + 1.0
    # Let the load run until it has caught up with its schedule, past the window.
    wait_until = time.time() + 120
    while time.time() < wait_until and load.alive() and not load.caught_up_after(win_end + settle_s):
        time.sleep(0.2)
    caught_up = load.caught_up_after(win_end + settle_s)
    died = not load.alive()
    load.stop()
    errors_after = proxy_errors(a.admin_url)

    txns = load.transactions()
    inside = [t for t in txns if t[0] <= win_end and t[1] >= win_start]
    lats = sorted(t[2] * 1000 for t in inside if not t[3])
    failed_txns = sum(1 for t in inside if t[3])
    aborted = load.aborted()
    proxy_delta = None if errors_before is None or errors_after is None else errors_after - errors_before
    if died:
        failure.append("pgbench exited early: " + " | ".join(aborted[-3:] or load.other[-3:]))
    if not caught_up and not died:
        notes.append("load had not caught up 120 s after the DDL")
    expected = a.rate * (win_end - win_start)
    if lats and len(inside) < 0.8 * expected:
        notes.append(f"only {len(inside)} of ~{expected:.0f} scheduled transactions logged in the window")
    result.update({
        "ddl_s": round(end - start, 3),
        "txns": len(inside),
        "p50_ms": percentile(lats, 0.50),
        "p99_ms": percentile(lats, 0.99),
        "max_ms": lats[-1] if lats else None,
        "proxy_errors": proxy_delta,
        "pgbench_aborted": len([l for l in aborted if "aborted" in l]),
        "failed_txns": failed_txns,
        "errors": (proxy_delta or 0) + failed_txns if proxy_delta is not None else None,
    })
    if proxy_delta is None:
        notes.append("proxy /metrics did not answer: errors unknown")
    if aborted:
        notes.append(f"pgbench: {aborted[0][:160]}")
        # An aborted client's error was relayed by the proxy and is counted there already.
        if result["errors"] is None:
            result["errors"] = len(aborted) + failed_txns


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, choices=METHODS)
    ap.add_argument("--holder", action="store_true", help="a transaction holds a row lock on child first")
    ap.add_argument("--holder-seconds", type=float, default=4.0)
    ap.add_argument("--db-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--admin-url", required=True)
    ap.add_argument("--db-url", help="for pgvalve apply --db")
    ap.add_argument("--pgvalve", help="the pgvalve binary")
    ap.add_argument("--migration", help="the migration file for pgvalve apply")
    ap.add_argument("--max-stall", type=int, default=200)
    ap.add_argument("--pgbench", required=True)
    ap.add_argument("--load-script", required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--parents", type=int, required=True)
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lead", type=float, default=3.0, help="seconds of load before the DDL")
    ap.add_argument("--baseline-seconds", type=float, default=20.0)
    ap.add_argument("--lock-timeout-ms", type=int, default=100)
    ap.add_argument("--retry-pause-ms", type=int, default=100)
    ap.add_argument("--deadline", type=float, default=600.0, help="seconds a method may take")
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    if a.method == "pgvalve" and not (a.pgvalve and a.migration and a.db_url):
        ap.error("--method pgvalve needs --pgvalve, --migration and --db-url")
    if a.method == "baseline" and a.holder:
        ap.error("the baseline runs without a holder")
    os.makedirs(a.workdir, exist_ok=True)

    result = {"method": a.method, "holder": a.holder, "round": a.round, "status": "ok", "notes": []}
    notes, failure = result["notes"], []
    errors_before = proxy_errors(a.admin_url)
    holder = Holder(a.proxy_port, a.holder_seconds) if a.holder else None
    load = Load(a, a.workdir)
    start = end = None
    try:
        time.sleep(a.lead)
        if not load.alive():
            raise RuntimeError("pgbench exited before the DDL: " + " | ".join(load.other[-5:]))
        if a.method == "pgvalve":
            start = time.time()
            run_pgvalve(a, notes, holder, failure, result)
            end = time.time()
        else:
            if holder is not None:
                holder.start()
                if not holder.locked.wait(10) or holder.error:
                    raise RuntimeError(f"the holder did not get its lock: {holder.error}")
            start = time.time()
            if a.method == "baseline":
                time.sleep(a.baseline_seconds)
            else:
                {"plain": run_plain, "one-tx": run_one_tx, "separate": run_separate,
                 "lock-timeout": run_lock_timeout}[a.method](a, notes)
            end = time.time()
    except Exception as e:      # noqa: BLE001 - the run is marked failed, the load stopped
        end = end or time.time()
        failure.append(f"{type(e).__name__}: {e}".strip())
        log(f"{a.method}: {failure[-1]}")
    if holder is not None and holder.is_alive():
        holder.join(a.holder_seconds + 30)
    elif holder is not None and holder.began is None:
        holder.conn.close()         # never started (e.g. pgvalve apply failed before its preflight ended)
        notes.append("the holder never started")
    if holder is not None and holder.error:
        failure.append(f"holder: {holder.error}")
    if start is None:
        start = time.time()
        end = start
    measure(a, load, start, end, errors_before, result, notes, failure)
    if holder is not None and holder.locked_at and a.method != "pgvalve":
        result["holder_locked_before_ddl_ms"] = round(1000 * (start - holder.locked_at), 1)
    if failure:
        result["status"] = "failed"
        result["failure"] = "; ".join(failure)
    if result["max_ms"] is None:
        result["status"] = "failed"
        result.setdefault("failure", "no transactions logged in the window")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
