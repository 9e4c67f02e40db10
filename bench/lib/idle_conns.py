#!/usr/bin/python3
"""Holds many idle PostgreSQL connections open, for measuring what each costs a proxy.

Connects COUNT sessions to the server that libpq's environment (PGHOST, PGPORT,
PGUSER, PGPASSWORD, PGDATABASE) points at, runs one `SELECT 1` on each so the
session has done a round trip, then prints `READY <count> <seconds>` and waits
for a line on stdin (or EOF) before closing them all and printing `CLOSED`.
Any failure prints `ERROR <message>` and exits 1. Every wait is bounded by
--timeout.

Usage: idle_conns.py [--count N] [--threads T] [--timeout S]
"""
import argparse
import resource
import sys
import threading
import time

# psycopg2 first: its blocking libpq calls wait with poll(). psycopg 3.1 (Debian 12)
# waits with select(), which fails on descriptors above 1023, so it can hold
# only ~1000 connections.
try:
    import psycopg2

    def connect():
        conn = psycopg2.connect(connect_timeout=30)
        conn.autocommit = True
        return conn
except ImportError:
    import psycopg

    def connect():
        return psycopg.connect(autocommit=True, connect_timeout=30)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()

    limit = raise_nofile(args.count + 64)
    if limit < args.count + 16:
        print(f"ERROR open-files limit {limit} is too low for {args.count} connections", flush=True)
        return 1

    deadline = time.monotonic() + args.timeout
    conns = []
    lock = threading.Lock()
    errors = []
    per_thread = [args.count // args.threads + (1 if i < args.count % args.threads else 0)
                  for i in range(args.threads)]

    def opener(n):
        for _ in range(n):
            if errors or time.monotonic() > deadline:
                return
            try:
                conn = connect()
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchone()
            except Exception as e:  # report the first failure, stop the others
                with lock:
                    errors.append(f"after {len(conns)} connections: {type(e).__name__}: {e}".strip())
                return
            with lock:
                conns.append(conn)

    started = time.monotonic()
    threads = [threading.Thread(target=opener, args=(n,), daemon=True) for n in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))

    if errors or len(conns) != args.count:
        msg = errors[0] if errors else f"only {len(conns)} of {args.count} connected in {args.timeout:.0f} s"
        print("ERROR " + " ".join(msg.split()), flush=True)
        for c in list(conns):
            c.close()
        return 1

    print(f"READY {len(conns)} {time.monotonic() - started:.1f}", flush=True)
    sys.stdin.readline()

    for c in conns:
        try:
            c.close()
        except Exception:
            pass
    print("CLOSED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
