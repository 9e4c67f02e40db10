#!/usr/bin/python3
"""One run of bench/keychange: a steady write load through pgvalve-proxy while one method changes
parent.id (int, referenced by orders, sessions and payments) to bigint, and what the load's
clients saw while it did.

Methods: baseline (no DDL, the window is --baseline-seconds long); plain (what an ORM writes: the
four `ALTER … TYPE bigint` in one transaction, on a direct connection: every table rewritten under
ACCESS EXCLUSIVE); pgvalve (`pgvalve apply --finalize` with the proxy in front: shadow columns,
backfill, concurrent indexes, the swap under a hold, then the old columns dropped).

The load and the window's numbers are bench/cutover's (cutover_run.py: Load, measure): pgbench -R
through the proxy, every transaction in flight between DDL start and DDL end + 1 s, latency from
its scheduled start. After the run the tables are checked: every column bigint (except after the
baseline), each 'load' parent has exactly one row in each referencing table, and no transaction
pgbench logged as committed is missing. Prints one JSON object on stdout; progress on stderr.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cutover_run import Load, log, measure, proxy_errors  # noqa: E402
import keychange_locks  # noqa: E402

TABLES = ("orders", "sessions", "payments")
PLAIN = ["ALTER TABLE parent ALTER COLUMN id TYPE bigint"] + [
    f"ALTER TABLE {t} ALTER COLUMN parent_id TYPE bigint" for t in TABLES]


def db(a):
    return psycopg.connect(port=a.db_port, autocommit=True, application_name="bench-keychange-ddl")


def load_parents(a):
    with db(a) as c:
        return c.execute("SELECT count(*) FROM parent WHERE name = 'load'").fetchone()[0]


def run_plain(a, result):
    with db(a) as c:
        with c.transaction():
            for sql in PLAIN:
                c.execute(sql)


def run_pgvalve(a, result, failure, events):
    cmd = [a.pgvalve, "apply", a.migration, "--db", a.db_url, "--proxy", a.admin_url, "--watch", "0",
           "--finalize", "--max-stall", str(a.max_stall), "--backfill-batch", str(a.backfill_batch),
           "--format", "json"] + (["--backfill-rate", str(a.backfill_rate)] if a.backfill_rate else [])
    log("$ " + " ".join(cmd).replace(a.db_url, re.sub(r":[^:@/]*@", ":***@", a.db_url)))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, rows, seconds, held = [], 0, 0.0, {}
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        msg = ev.get("message", "")
        events.append((time.time(), msg or ev.get("warning") or ev.get("event", "")))
        m = re.search(r"^backfill of (\S+) done: (\d+) rows in ([0-9.]+) s", msg)
        if m:
            rows += int(m.group(2))
            seconds += float(m.group(3))
            log("pgvalve: " + msg)
        m = re.search(r"traffic held (\d+) ms", msg)
        if m:
            held[ev.get("event")] = max(held.get(ev.get("event"), 0), int(m.group(1)))
    rc = proc.wait()
    with open(os.path.join(a.workdir, "pgvalve-apply.log"), "w") as f:
        f.write("\n".join(lines) + "\n")
    if rc != 0:
        failure.append(f"pgvalve apply exited {rc}")
        for l in lines[-30:]:
            print("        " + l, file=sys.stderr)
    result["backfill_rows"] = rows
    result["backfill_rows_per_s"] = round(rows / seconds) if seconds > 0 else None
    result["swap_held_ms"] = held.get("finalize_done")
    result["longest_hold_ms"] = max(held.values()) if held else None


def check(a, result, failure, before, logged_ok):
    """The tables after the run: types, one row per referencing table for each load parent, nothing
    pgbench logged as committed missing."""
    with db(a) as c:
        types = dict(c.execute(
            "SELECT attrelid::regclass::text, format_type(atttypid, NULL) FROM pg_attribute "
            "WHERE (attrelid, attname) IN (('parent'::regclass, 'id'), ('orders'::regclass, 'parent_id'), "
            "('sessions'::regclass, 'parent_id'), ('payments'::regclass, 'parent_id'))").fetchall())
        want = "integer" if a.method == "baseline" else "bigint"
        if set(types.values()) != {want} or len(types) != 4:
            failure.append(f"column types after the run: {types}")
        for t in TABLES:
            bad = c.execute(f"SELECT count(*) FROM parent p WHERE p.name = 'load' AND "
                            f"(SELECT count(*) FROM {t} x WHERE x.parent_id = p.id AND x.payload = 1) <> 1"
                            ).fetchone()[0]
            if bad:
                failure.append(f"{bad} load parent(s) without exactly one {t} row")
        leftovers = c.execute("SELECT count(*) FROM pg_attribute WHERE attname LIKE '%pgvalve%' "
                              "AND NOT attisdropped AND attrelid IN ('parent'::regclass, 'orders'::regclass, "
                              "'sessions'::regclass, 'payments'::regclass)").fetchone()[0]
        if leftovers:
            failure.append(f"{leftovers} pgvalve column(s) left")
        after = c.execute("SELECT count(*) FROM parent WHERE name = 'load'").fetchone()[0]
    written = after - before
    result["load_txns_committed"] = written
    result["rows_lost"] = max(0, logged_ok - written)
    if result["rows_lost"]:
        failure.append(f"{result['rows_lost']} transaction(s) pgbench logged as committed are missing")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, choices=("baseline", "plain", "pgvalve"))
    ap.add_argument("--db-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--admin-url", required=True)
    ap.add_argument("--db-url")
    ap.add_argument("--pgvalve")
    ap.add_argument("--migration")
    ap.add_argument("--max-stall", type=int, default=200)
    ap.add_argument("--backfill-batch", type=int, default=5000)
    ap.add_argument("--backfill-rate", type=int, default=0)
    ap.add_argument("--pgbench", required=True)
    ap.add_argument("--load-script", required=True)
    ap.add_argument("--rows", type=int, required=True, help="rows in each referencing table")
    ap.add_argument("--parents", type=int, required=True)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lead", type=float, default=3.0)
    ap.add_argument("--baseline-seconds", type=float, default=10.0)
    ap.add_argument("--settle-seconds", type=float, default=5.0,
                    help="load kept running past the window, so pgbench's buffered log lines of it are written")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--lock-samples", metavar="FILE",
                    help="sample pg_stat_activity/pg_locks and the proxy's /status every 20 ms into FILE "
                         "(keychange_locks.py) and add what the load's sessions waited on, per phase")
    ap.add_argument("--renice-pgvalve", type=int, metavar="N",
                    help="with --lock-samples: renice pgvalve's server backends to N as the sampler sees them "
                         "(an experiment: the server on this host, the bench allowed to renice them)")
    a = ap.parse_args()
    if a.method == "pgvalve" and not (a.pgvalve and a.migration and a.db_url):
        ap.error("--method pgvalve needs --pgvalve, --migration and --db-url")
    os.makedirs(a.workdir, exist_ok=True)

    result = {"method": a.method, "holder": False, "round": 1, "status": "ok", "notes": []}
    notes, failure = result["notes"], []
    before = load_parents(a)
    errors_before = proxy_errors(a.admin_url)
    sampler = None
    if a.lock_samples:
        sampler = keychange_locks.Sampler(a.db_port, a.admin_url, a.lock_samples, renice=a.renice_pgvalve)
        sampler.start()
    load = Load(a, a.workdir)
    start = end = None
    events = []  # (received, message) of pgvalve apply's output
    try:
        time.sleep(a.lead)
        if not load.alive():
            raise RuntimeError("pgbench exited before the DDL: " + " | ".join(load.other[-5:]))
        start = time.time()
        if a.method == "baseline":
            time.sleep(a.baseline_seconds)
        elif a.method == "plain":
            run_plain(a, result)
        else:
            run_pgvalve(a, result, failure, events)
        end = time.time()
    except Exception as e:  # noqa: BLE001 - the run is marked failed, the load stopped
        failure.append(f"{type(e).__name__}: {e}".strip())
        log(f"{a.method}: {failure[-1]}")
    if start is None:
        start = time.time()
    end = end or time.time()
    if sampler:
        sampler.stop()
    measure(a, load, start, end, errors_before, result, notes, failure, settle_s=a.settle_seconds)
    if sampler:
        if sampler.error:
            notes.append("lock sampler: " + sampler.error)
        result["lock_samples"] = sampler.samples
        if a.renice_pgvalve is not None:
            notes.append(f"pgvalve's {len(sampler.reniced)} server backend(s) reniced to {a.renice_pgvalve}")
        result["lock_waits"] = keychange_locks.summarize(a.lock_samples, events, start, end)
        log(f"{a.method}: what the load's sessions waited on, per phase ({sampler.samples} samples, "
            f"{a.lock_samples}):\n" + keychange_locks.format_summary(result["lock_waits"]))
    txns = load.transactions()
    logged_ok = sum(1 for t in txns if not t[3])
    inside = [t for t in txns if t[0] <= end + 1.0 and t[1] >= start and not t[3]]
    if inside and events:
        # which step the slowest transactions waited through: the last output line before each
        # ended; the slowest of all may have been scheduled before the DDL began (a busy host)
        after_start = [t for t in inside if t[0] >= start]
        for what, pool in (("slowest", inside), ("slowest begun after the DDL", after_start)):
            if not pool:
                continue
            slow = max(pool, key=lambda t: t[2])
            during = [m for at, m in events if at <= slow[1]]
            notes.append(f"{what}: {slow[2] * 1000:.0f} ms, from {slow[0] - start:+.1f} s to {slow[1] - start:+.1f} s, "
                         f"after: {(during[-1] if during else 'the start')[:100]}")
            if a.lock_samples and what == "slowest":
                seen = keychange_locks.during(a.lock_samples, slow[0], slow[1])
                if seen:
                    result["slowest_waits"] = seen
                    log(f"{a.method}: the load's sessions during the slowest transaction:\n"
                        + keychange_locks.format_summary([seen]))
    check(a, result, failure, before, logged_ok)
    if failure:
        result["status"] = "failed"
        result["failure"] = "; ".join(failure)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
