#!/usr/bin/python3
"""The timing half of bench/audit/run: runs `pgvalve audit` (JSON, text, --suggest) and
`pg_dump --schema-only` alternately, --rounds times, each to /dev/null, and prints min /
median / max wall time and each command's median as a ratio of pg_dump's. Connection
settings for pg_dump come from libpq's environment; pgvalve gets --db."""
import argparse
import statistics
import subprocess
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--pg-dump", default="pg_dump")
    ap.add_argument("--tables", type=int)
    ap.add_argument("--fks", type=int)
    a = ap.parse_args()
    commands = {
        "pg_dump --schema-only": [a.pg_dump, "--schema-only"],
        "pgvalve audit --format json": [a.coordinator, "audit", "--db", a.db, "--format", "json"],
        "pgvalve audit (text)": [a.coordinator, "audit", "--db", a.db],
        "pgvalve audit --suggest --format json": [a.coordinator, "audit", "--db", a.db, "--suggest",
                                                  "--format", "json"],
    }
    times = {k: [] for k in commands}
    for name, cmd in commands.items():  # one untimed run each: caches warm alike
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    for _ in range(a.rounds):
        for name, cmd in commands.items():
            start = time.monotonic()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.monotonic() - start)
    base = statistics.median(times["pg_dump --schema-only"])
    print(f"\nbench/audit: {a.tables} tables, {a.fks} foreign keys, {a.rounds} alternated rounds\n")
    print(f"| command | min s | median s | max s | median / pg_dump |")
    print(f"|---|---:|---:|---:|---:|")
    for name, t in times.items():
        print(f"| `{name}` | {min(t):.3f} | {statistics.median(t):.3f} | {max(t):.3f} | "
              f"{statistics.median(t) / base:.2f} |")


if __name__ == "__main__":
    main()
