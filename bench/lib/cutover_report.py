#!/usr/bin/python3
"""Prints bench/cutover's stall table from the JSON lines cutover_run.py wrote.

Usage: cutover_report.py RESULTS.jsonl HEADER_LINE...

Rows: the baseline (load only), then each method without and with the
transaction that holds a row lock on child. With several rounds a row shows the
median over rounds of DDL time, transactions, p50 and p99, the largest
max, the summed errors, the notes of each round (| between rounds that differ); its goal is met only if it was met in every round, each round compared
with that round's baseline. Exit status 0; 1 if a run failed, 3 if a pgvalve
row missed the goal (the caller decides what to do with it).
"""
import json
import statistics
import sys
from collections import defaultdict

GOAL_MS = 15.0
NAMES = {
    "baseline": "baseline: the load alone, no DDL",
    "plain": "1. plain ADD FOREIGN KEY",
    "one-tx": "2. NOT VALID + VALIDATE, one transaction",
    "separate": "3. NOT VALID, then VALIDATE",
    "lock-timeout": "4. lock_timeout + retry NOT VALID, VALIDATE",
    "pgvalve": "5. pgvalve apply",
}
ORDER = ["baseline", "plain", "one-tx", "separate", "lock-timeout", "pgvalve"]


def ms(v):
    if v is None:
        return "-"
    return f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(r):
        cells = [str(c).ljust(widths[i]) if i in (0, 1, len(r) - 1) else str(c).rjust(widths[i])
                 for i, c in enumerate(r)]
        return "| " + " | ".join(cells) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def main():
    path, header = sys.argv[1], sys.argv[2:]
    runs = [json.loads(l) for l in open(path) if l.strip()]
    base = {r["round"]: r for r in runs if r["method"] == "baseline" and r["status"] == "ok"}
    groups = defaultdict(list)
    for r in runs:
        groups[(r["method"], r["holder"])].append(r)

    def goal(r):
        b = base.get(r["round"])
        if r["status"] != "ok" or b is None or r.get("max_ms") is None or r.get("errors") is None:
            return None
        return r["max_ms"] <= b["max_ms"] + GOAL_MS and r["errors"] == 0

    rows, failed, pgvalve_goal = [], 0, []
    for method in ORDER:
        for holder in (False, True):
            g = groups.get((method, holder))
            if not g:
                continue
            ok = [r for r in g if r["status"] == "ok"]
            failed += len(g) - len(ok)
            notes = []          # one entry per distinct round
            for r in g:
                n = "; ".join(([r["failure"]] if r.get("failure") else []) + r.get("notes", []))
                if n and n not in notes:
                    notes.append(n)
            if not ok:
                rows.append([NAMES[method], "yes" if holder else "no", "failed", "-", "-", "-", "-", "-", "-",
                             "failed", " | ".join(notes)])
                if method == "pgvalve":
                    pgvalve_goal.append(False)
                continue
            med = lambda k: statistics.median(r[k] for r in ok)   # noqa: E731
            worst = max(r["max_ms"] for r in ok)
            errors = sum(r["errors"] or 0 for r in ok)
            unknown_errors = any(r.get("errors") is None for r in ok)
            over = [r["max_ms"] - base[r["round"]]["max_ms"] for r in ok if r["round"] in base]
            if method == "baseline":
                verdict, over_txt = "-", "-"
                if len(ok) > 1:
                    notes = ["max per round: " + " / ".join(ms(r["max_ms"]) for r in ok)]
            else:
                goals = [goal(r) for r in g]
                verdict = "-" if any(x is None for x in goals) and all(x is not False for x in goals) else (
                    "met" if all(goals) else "NOT met")
                if len(g) > len(ok):
                    verdict = "NOT met"
                over_txt = f"{max(over):+,.0f} ms" if over else "-"
                if method == "pgvalve":
                    pgvalve_goal.append(verdict == "met")
            ddl = f"{med('ddl_s'):.1f} s" if method != "baseline" else f"({med('ddl_s'):.0f} s)"
            if len(g) > len(ok):
                notes.insert(0, f"{len(g) - len(ok)} of {len(g)} rounds failed")
            rows.append([NAMES[method], "-" if method == "baseline" else ("yes" if holder else "no"), ddl,
                         f"{med('txns'):,.0f}", ms(med("p50_ms")), ms(med("p99_ms")), ms(worst),
                         "?" if unknown_errors else f"{errors:,}", over_txt, verdict, " | ".join(notes)])

    print()
    for h in header:
        print(h)
    print()
    table(["method", "row lock 4 s", "DDL time", "txns", "p50", "p99", "max", "errors",
           "max - baseline max", "goal", "notes"], rows)
    print()
    print(f"  (latency: pgbench's per-transaction time from its scheduled start (-R), over every transaction in")
    print(f"   flight between DDL start and DDL end + 1 s; errors: ErrorResponses the proxy relayed to the load")
    print(f"   and the holder, plus failed transactions; goal (issue 4): max <= baseline max + {GOAL_MS:.0f} ms and 0")
    print(f"   errors, judged for every row, required for the pgvalve rows)")
    if pgvalve_goal:
        met = all(pgvalve_goal)
        print(f"  goal for pgvalve: {'met' if met else 'NOT met'} "
              f"({sum(pgvalve_goal)} of {len(pgvalve_goal)} row(s) met)")
    if failed:
        sys.exit(1)
    if pgvalve_goal and not all(pgvalve_goal):
        sys.exit(3)


if __name__ == "__main__":
    main()
