#!/usr/bin/python3
"""Prints bench/keychange's table from the JSON lines keychange_run.py wrote.

Usage: keychange_report.py RESULTS.jsonl HEADER_LINE...

Exit status 0; 1 if a run failed, 3 if pgvalve missed the goal of issue 12: max client latency <=
the baseline's max + 50 ms, zero client errors, zero rows lost.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cutover_report import ms, table  # noqa: E402
from keychange_locks import format_summary  # noqa: E402

GOAL_MS = 50.0
NAMES = {
    "baseline": "baseline: the load alone, no DDL",
    "plain": "plain ALTER … TYPE bigint (4 tables, one tx)",
    "pgvalve": "pgvalve apply --finalize",
}


def main():
    path, header = sys.argv[1], sys.argv[2:]
    runs = {}
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            runs[r["method"]] = r
    base = runs.get("baseline")
    rows, failed, verdict = [], 0, None
    for method in ("baseline", "plain", "pgvalve"):
        r = runs.get(method)
        if r is None:
            continue
        notes = "; ".join(([r["failure"]] if r.get("failure") else []) + r.get("notes", []))
        if r["status"] != "ok":
            failed += 1
        over = "-"
        if method != "baseline" and base and base.get("max_ms") is not None and r.get("max_ms") is not None:
            over = f"{r['max_ms'] - base['max_ms']:+,.0f} ms"
        rate = r.get("backfill_rows_per_s")
        rows.append([NAMES[method], f"{r.get('ddl_s', 0):.1f} s" if method != "baseline" else
                     f"({r.get('ddl_s', 0):.0f} s)", f"{r.get('txns', 0):,}", ms(r.get("p50_ms")),
                     ms(r.get("p99_ms")), ms(r.get("max_ms")), over,
                     "?" if r.get("errors") is None else f"{r['errors']:,}", f"{r.get('rows_lost', '?')}",
                     f"{rate:,} rows/s" if rate else "-",
                     ms(r.get("swap_held_ms")) if r.get("swap_held_ms") is not None else "-", notes])
        if method == "pgvalve":
            verdict = (r["status"] == "ok" and base is not None and base.get("max_ms") is not None
                       and r.get("max_ms") is not None and r["max_ms"] <= base["max_ms"] + GOAL_MS
                       and r.get("errors") == 0 and r.get("rows_lost") == 0)
    print()
    for h in header:
        print(h)
    print()
    table(["method", "DDL time", "txns", "p50", "p99", "max", "max - baseline max", "errors",
           "rows lost", "backfill", "swap hold", "notes"], rows)
    print()
    print("  (latency: pgbench's per-transaction time from its scheduled start (-R), over every transaction in")
    print("   flight between DDL start and DDL end + 1 s; errors: ErrorResponses the proxy relayed plus failed")
    print("   transactions; rows lost: transactions pgbench logged as committed whose rows are missing; swap hold:")
    print("   how long the proxy held traffic for the swap, as pgvalve reports it)")
    for method in ("baseline", "plain", "pgvalve"):
        r = runs.get(method)
        if r and r.get("lock_waits") is not None:
            print()
            print(f"  {NAMES[method]}: what the load's sessions waited on, per phase "
                  f"({r.get('lock_samples', 0)} samples of pg_stat_activity/pg_locks, ~20 ms apart)")
            print(format_summary(r["lock_waits"]))
            if r.get("slowest_waits"):
                print("  during its slowest transaction:")
                print(format_summary([r["slowest_waits"]]))
    if verdict is not None:
        print(f"  goal for pgvalve (issue 12: max <= baseline max + {GOAL_MS:.0f} ms, 0 errors, 0 rows lost): "
              f"{'met' if verdict else 'NOT met'}")
    if failed:
        sys.exit(1)
    if verdict is False:
        sys.exit(3)


if __name__ == "__main__":
    main()
