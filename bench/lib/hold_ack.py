#!/usr/bin/python3
"""Times how long pgvalve-proxy takes to acknowledge a hold and its release.

Against the admin API at --url, runs --cycles cycles of
    POST /holds {"tables": [TABLE], "mode": "writes", "policy": "queue",
                 "lease_ms": LEASE}                          -> expects 201
    DELETE /holds/{id}                                       -> expects 200
on one kept-alive HTTP/1.1 connection (http.client), timing each round trip
with time.perf_counter() from sending the request to having read the whole
answer. The first --warmup cycles are not counted. The answer to POST /holds
is only sent after every worker has applied the hold (docs/architecture.md §3.3), so the
POST time is the acknowledgement latency a coordinator sees.

Prints one tab-separated line on stdout:
    label clients cycles post_median post_p95 post_p99 post_max
          del_median del_p95 del_p99 del_max reconnects
(times in milliseconds; clients = pgvalve_clients from /metrics before the
first cycle). Any unexpected answer prints `ERROR <message>` on stderr and
exits 1. Every request is bounded by --timeout.

Usage: hold_ack.py --url http://127.0.0.1:PORT [--cycles N] [--warmup N]
                   [--table T] [--lease-ms MS] [--label L] [--token-file F]
"""
import argparse
import http.client
import json
import math
import sys
import time
import urllib.parse


class Admin:
    """A kept-alive connection to the admin API; reconnects (and counts it) if the server closes."""

    def __init__(self, url, timeout, token):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"--url must be http://HOST:PORT, not {url!r}")
        self.host, self.port, self.timeout = u.hostname, u.port or 80, timeout
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.conn = None
        self.reconnects = -1   # the first connect is not a reconnect

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.connect()
        self.reconnects += 1

    def request(self, method, path, body=None):
        """Returns (status, body bytes, seconds). Connecting is not part of the time."""
        if self.conn is None:
            self._connect()
        data = json.dumps(body).encode() if body is not None else None
        t0 = time.perf_counter()
        self.conn.request(method, path, body=data, headers=self.headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        elapsed = time.perf_counter() - t0
        if resp.will_close:
            self.conn.close()
            self.conn = None
        return resp.status, payload, elapsed

    def close(self):
        if self.conn is not None:
            self.conn.close()


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


def summary(values):
    v = sorted(values)
    mid = len(v) // 2
    median = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
    return [median, percentile(v, 95), percentile(v, 99), v[-1]]


def clients_now(admin):
    status, payload, _ = admin.request("GET", "/metrics")
    if status != 200:
        return -1
    for line in payload.decode(errors="replace").splitlines():
        if line.startswith("pgvalve_clients "):
            return int(float(line.split()[1]))
    return -1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="admin API, e.g. http://127.0.0.1:6480")
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--table", default="bench_unrelated")
    ap.add_argument("--lease-ms", type=int, default=10000)
    ap.add_argument("--label", default="-")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    ap.add_argument("--token-file", help="admin bearer token, when the proxy has one")
    args = ap.parse_args()
    if args.cycles < 1 or args.warmup < 0:
        ap.error("--cycles must be >= 1 and --warmup >= 0")

    token = None
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    admin = Admin(args.url, args.timeout, token)
    body = {"tables": [args.table], "mode": "writes", "policy": "queue", "lease_ms": args.lease_ms}
    posts, deletes = [], []
    try:
        clients = clients_now(admin)
        for i in range(args.warmup + args.cycles):
            status, payload, t_post = admin.request("POST", "/holds", body)
            if status != 201:
                raise RuntimeError(f"POST /holds answered {status}: {payload[:200]!r}")
            hold_id = json.loads(payload)["id"]
            status, payload, t_del = admin.request("DELETE", "/holds/" + urllib.parse.quote(hold_id, safe=""))
            if status != 200:
                raise RuntimeError(f"DELETE /holds/{hold_id} answered {status}: {payload[:200]!r}")
            if i >= args.warmup:
                posts.append(t_post * 1000.0)
                deletes.append(t_del * 1000.0)
    except Exception as e:
        print(f"ERROR {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        admin.close()

    fields = [args.label, str(clients), str(len(posts))]
    fields += [f"{x:.3f}" for x in summary(posts) + summary(deletes)]
    fields.append(str(admin.reconnects))
    print("\t".join(fields), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
