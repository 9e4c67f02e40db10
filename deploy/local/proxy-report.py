#!/usr/bin/python3
"""Prints what a running pgvalve-proxy has seen, from its admin API.

Reads GET /status, /metrics and /errors?window_s=N and prints sessions,
connection and statement counters, and errors by SQLSTATE, table and
constraint, for people. Standard library only.

Usage: proxy-report.py [ADMIN_URL] [--window S] [--token-file F] [--sessions N]
       (ADMIN_URL defaults to http://127.0.0.1:6480)
Exit status: 0 when every endpoint answered, 1 otherwise.
"""
import argparse
import json
import sys
import urllib.error
import urllib.request

SQLSTATE_NAMES = {
    "23502": "not_null_violation",
    "23503": "foreign_key_violation",
    "23505": "unique_violation",
    "23514": "check_violation",
    "23P01": "exclusion_violation",
    "22001": "string_data_right_truncation",
    "22003": "numeric_value_out_of_range",
    "22P02": "invalid_text_representation",
    "25P02": "in_failed_sql_transaction",
    "28P01": "invalid_password",
    "3D000": "invalid_catalog_name",
    "40001": "serialization_failure",
    "40P01": "deadlock_detected",
    "42601": "syntax_error",
    "42703": "undefined_column",
    "42P01": "undefined_table",
    "53300": "too_many_connections",
    "55P03": "lock_not_available",
    "57014": "query_canceled",
    "57P01": "admin_shutdown",
    "08P01": "protocol_violation",
}


def fetch(base, path, token):
    req = urllib.request.Request(base.rstrip("/") + path)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode("utf-8", "replace")


def count_of(v):
    """A counter value that may be a number or an object holding one."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, dict):
        for k in ("count", "errors", "total", "n"):
            if isinstance(v.get(k), (int, float)):
                return v[k]
    return None


def fmt_num(v):
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.2f}"
    return f"{int(v):,}"


def table(header, rows, indent="  "):
    if not rows:
        print(indent + "(none)")
        return
    cols = len(header)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(cols)]

    def line(r):
        return " | ".join(
            str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r))

    print(indent + line(header))
    print(indent + "-+-".join("-" * w for w in widths))
    for r in rows:
        print(indent + line(r))


def parse_metrics(text):
    """Prometheus text -> [(name, labels, value)] for the pgvalve_* samples."""
    out = []
    for raw in text.splitlines():
        s = raw.strip()
        if not s or s.startswith("#") or not s.startswith("pgvalve_"):
            continue
        try:
            head, value = s.rsplit(None, 1)
            value = float(value)
        except ValueError:
            continue
        if "{" in head:
            name, labels = head.split("{", 1)
            labels = labels.rstrip("}")
        else:
            name, labels = head, ""
        out.append((name, labels, value))
    return out


def show_status(st, max_sessions):
    print("Proxy")
    print(f"  version {st.get('version', '?')}, up {fmt_num(st.get('uptime_s'))} s, "
          f"{st.get('workers', '?')} worker(s)")
    ups = st.get("upstreams", st.get("upstream"))
    if isinstance(ups, dict) and not any(isinstance(v, dict) for v in ups.values()):
        ups = [ups]
    elif isinstance(ups, dict):
        ups = [dict(v, name=k) for k, v in ups.items()]
    for u in ups or []:
        if isinstance(u, dict):
            name = f" {u['name']}" if u.get("name") else ""
            active = " (active)" if u.get("active") else ""
            extra = ", ".join(f"{k}={u[k]}" for k in ("sslmode", "sessions", "state") if k in u)
            print(f"  upstream{name}{active}: {u.get('host', '?')}:{u.get('port', '?')}"
                  + (f"  [{extra}]" if extra else ""))
        else:
            print(f"  upstream {u}")
    c = st.get("clients", {})
    if isinstance(c, dict):
        print("  clients now: " + ", ".join(f"{k} {fmt_num(count_of(v))}" for k, v in c.items()))
    sessions = st.get("sessions") or []
    print()
    print(f"Sessions open now ({len(sessions)})")
    rows = []
    for s in sessions[:max_sessions]:
        rows.append([s.get("id", ""), s.get("user", ""), s.get("database", ""), s.get("client", ""),
                     s.get("state", ""), s.get("backend_pid", "")])
    table(["id", "user", "database", "client", "state", "backend_pid"], rows)
    if len(sessions) > max_sessions:
        print(f"  ... and {len(sessions) - max_sessions} more")
    holds = st.get("holds")
    if holds:
        print()
        print(f"Holds ({len(holds)})")
        for h in holds:
            print("  " + json.dumps(h, sort_keys=True))


def show_metrics(samples):
    print()
    print("Counters (/metrics)")
    wanted = ["pgvalve_clients", "pgvalve_connections_total", "pgvalve_statements_total",
              "pgvalve_bytes_total", "pgvalve_errors_total"]
    rows = []
    seen = set()
    for name in wanted + sorted({n for n, _, _ in samples} - set(wanted)):
        for n, labels, v in samples:
            if n == name and (n, labels) not in seen:
                seen.add((n, labels))
                rows.append([n + (f"{{{labels}}}" if labels else ""), fmt_num(v)])
    if len(rows) > 40:
        rest = len(rows) - 40
        rows = rows[:40] + [[f"... {rest} more samples", ""]]
    table(["metric", "value"], rows)


def show_errors(er):
    window = er.get("window_s", "?")
    stmts = count_of(er.get("statements"))
    errs = count_of(er.get("errors"))
    print()
    rate = f" ({100.0 * errs / stmts:.3f}% of statements)" if stmts and errs is not None else ""
    print(f"Errors in the last {window} s (/errors): {fmt_num(errs)} errors, "
          f"{fmt_num(stmts)} statements{rate}")

    def section(title, key, label, named=False):
        d = er.get(key) or {}
        print()
        print(f"  {title}")
        rows = []
        items = d.items() if isinstance(d, dict) else [(x.get("name", "?"), x) for x in d]
        for k, v in sorted(items, key=lambda kv: -(count_of(kv[1]) or 0)):
            row = [k]
            if named:
                row.append(SQLSTATE_NAMES.get(k, ""))
            row.append(fmt_num(count_of(v)))
            if isinstance(v, dict):
                detail = ", ".join(f"{a}={b}" for a, b in v.items()
                                   if a not in ("count", "errors", "total", "n"))
                row.append(detail)
            else:
                row.append("")
            rows.append(row)
        header = [label] + (["name"] if named else []) + ["count", "detail"]
        if rows and not any(r[-1] for r in rows):
            header = header[:-1]
            rows = [r[:-1] for r in rows]
        table(header, rows, indent="    ")

    section("by SQLSTATE", "by_sqlstate", "sqlstate", named=True)
    section("by table", "by_table", "table")
    section("by constraint", "by_constraint", "constraint")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("admin_url", nargs="?", default="http://127.0.0.1:6480")
    ap.add_argument("--window", type=int, default=300, help="seconds of error history (default 300)")
    ap.add_argument("--token-file", help="admin token, if the proxy requires one")
    ap.add_argument("--sessions", type=int, default=20, help="sessions to list (default 20)")
    args = ap.parse_args()
    token = open(args.token_file).read().strip() if args.token_file else None

    ok = True
    try:
        show_status(json.loads(fetch(args.admin_url, "/status", token)), args.sessions)
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"GET /status failed: {e}")
        ok = False
    try:
        show_metrics(parse_metrics(fetch(args.admin_url, "/metrics", token)))
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"GET /metrics failed: {e}")
        ok = False
    try:
        show_errors(json.loads(fetch(args.admin_url, f"/errors?window_s={args.window}", token)))
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"GET /errors failed: {e}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
