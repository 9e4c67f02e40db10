"""Table latency at the proxy (docs/architecture.md, table latency): POST /observe with a lease,
GET /latency's quantiles per table and kind, the pgvalve_table_latency_seconds histogram on
/metrics.

Quantiles are never judged by a clock. Each statement sleeps a known time on the server
(pg_sleep), and the client times each one itself. The proxy's time for a unit lies between
the two (it starts after the client sent and ends before the client read the answer), so for
each quantile the k-th smallest proxy time lies between the k-th smallest sleep and the k-th
smallest client time. The answer is the upper edge of the histogram bucket holding it (never
above the largest value seen), buckets being at most 10% wide: so
    k-th sleep <= reported <= 1.1 * k-th client time."""

import math
import time

import psycopg
import pytest

import harness

OBSERVED = "public.lat_obs"
BUCKET_WIDTH = 0.10  # pgvalve/latency_hist.h: two significant digits
QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}


@pytest.fixture
def tables(direct):
    direct.execute("DROP TABLE IF EXISTS lat_obs, lat_other")
    direct.execute("CREATE TABLE lat_obs (id int PRIMARY KEY, v int NOT NULL)")
    direct.execute("CREATE TABLE lat_other (id int PRIMARY KEY, v int NOT NULL)")
    direct.execute("INSERT INTO lat_obs VALUES (1, 0)")
    direct.execute("INSERT INTO lat_other VALUES (1, 0)")
    yield
    direct.execute("DROP TABLE IF EXISTS lat_obs, lat_other")


def observe(proxy, tables, lease_ms=60000, **extra):
    status, body = proxy.admin("POST", "/observe", {"tables": tables, "lease_ms": lease_ms, **extra})
    assert status == 201, body
    assert body["lease_ms"] == lease_ms
    return body["id"]


def latency(proxy, query="window_s=300"):
    status, body = proxy.admin("GET", f"/latency?{query}")
    assert status == 200, body
    return body


def timed(conn, sql, params=None, **kw):
    """Runs one statement, result read: the client's own latency in ms."""
    t0 = time.perf_counter()
    cur = conn.execute(sql, params, **kw)
    if cur.description:
        cur.fetchall()
    return (time.perf_counter() - t0) * 1000.0


def kth(values, q):
    """The ceil(q * n)-th smallest, as the proxy ranks."""
    values = sorted(values)
    return values[max(1, math.ceil(q * len(values) - 1e-9)) - 1]


def assert_quantiles(kind, sleeps_ms, client_ms):
    assert kind["count"] == len(sleeps_ms) == len(client_ms)
    for key, q in QUANTILES.items():
        low, high = kth(sleeps_ms, q), kth(client_ms, q)
        assert low <= kind[key] <= high * (1 + BUCKET_WIDTH), \
            f"{key} = {kind[key]} ms, not within [{low}, {high} * 1.1] (sleeps {sorted(sleeps_ms)}, " \
            f"client {sorted(client_ms)})"
    assert max(sleeps_ms) <= kind["max_ms"] <= max(client_ms)


def worker_of(proxy, conn):
    pid = conn.info.backend_pid
    return next(s["worker"] for s in proxy.status()["sessions"] if s.get("backend_pid") == pid)


def test_quantiles_match_the_client_and_merge_across_workers(pg, proxy_factory, connect, tables):
    proxy = proxy_factory(pg, overrides={"workers": 2})
    a = connect(proxy, autocommit=True)
    b = connect(proxy, autocommit=True)
    assert worker_of(proxy, a) != worker_of(proxy, b), "the two sessions share a worker"
    oid = observe(proxy, [OBSERVED])
    assert oid.startswith("o-")

    reads_sleep, reads_client = [], []
    writes_sleep, writes_client = [], []
    # Short reads on one worker (extended protocol, unnamed and named statements), long ones
    # on the other: the merged quantiles are right only if both workers' histograms add up.
    for i in range(12):
        reads_client.append(timed(a, "SELECT pg_sleep(%s::float8 / 1000) FROM lat_obs", (4,),
                                  prepare=i % 2 == 0))
        reads_sleep.append(4)
    for i in range(8):
        reads_client.append(timed(b, "SELECT pg_sleep(%s::float8 / 1000) FROM lat_obs", (40,)))
        reads_sleep.append(40)
    # Writes, in the simple protocol (a multi-statement Query is one unit).
    for ms in (10, 20, 30, 25, 15):
        writes_client.append(timed(b, f"SELECT pg_sleep({ms} / 1000.0); UPDATE lat_obs SET v = v + 1"))
        writes_sleep.append(ms)
    # Statements on a table nobody observes, and ones touching no table: not counted anywhere.
    for _ in range(3):
        timed(a, "SELECT pg_sleep(0.05) FROM lat_other")
        timed(b, "UPDATE lat_other SET v = v + 1")
        timed(a, "SELECT 1")

    doc = latency(proxy)
    assert doc["window_s"] == 300
    assert list(doc["tables"]) == [OBSERVED]
    assert_quantiles(doc["tables"][OBSERVED]["read"], reads_sleep, reads_client)
    assert_quantiles(doc["tables"][OBSERVED]["write"], writes_sleep, writes_client)
    # Half the reads were 4 ms and half 40 ms on another worker: p50 is short, p95 long.
    assert doc["tables"][OBSERVED]["read"]["p50_ms"] < 40 <= doc["tables"][OBSERVED]["read"]["p95_ms"]

    # ?table= picks tables; buckets=1 adds the histogram, which adds up to the count.
    picked = latency(proxy, f"window_s=300&table={OBSERVED}&buckets=1")
    read = picked["tables"][OBSERVED]["read"]
    assert sum(count for _, count in read["buckets"]) == read["count"]
    assert [le for le, _ in read["buckets"]] == sorted(le for le, _ in read["buckets"])

    # A table nobody observes is not reported, and asking for it says why.
    status, body = proxy.admin("GET", "/latency?window_s=60&table=public.lat_other")
    assert status == 404 and "not observed" in body["error"], body

    status, body = proxy.admin("DELETE", f"/observe/{oid}")
    assert status == 200 and body == {"stopped": oid}
    timed(a, "SELECT pg_sleep(0.001) FROM lat_obs")
    assert latency(proxy)["tables"] == {}
    proxy.assert_healthy()


def test_observation_begun_inside_a_transaction_and_extended_batches(pg, proxy_factory, connect, tables):
    """Units in a transaction are timed one by one; a unit already in flight when the
    observation begins is not timed (its start was never seen)."""
    proxy = proxy_factory(pg, overrides={"workers": 1})
    c = connect(proxy)  # not autocommit: psycopg sends BEGIN first
    c.execute("SELECT 1 FROM lat_obs").fetchall()
    observe(proxy, ["lat_obs"])
    sleeps, client = [], []
    for ms in (3, 6, 9):
        client.append(timed(c, "SELECT pg_sleep(%s / 1000.0), v FROM lat_obs WHERE id = %s", (ms, 1)))
        sleeps.append(ms)
    c.commit()
    doc = latency(proxy)
    assert list(doc["tables"]) == ["lat_obs"]
    assert_quantiles(doc["tables"]["lat_obs"]["read"], sleeps, client)
    assert doc["tables"]["lat_obs"]["write"]["count"] == 0
    assert doc["tables"]["lat_obs"]["write"]["p99_ms"] is None


def test_lease_expiry_stops_the_observation(proxy, connect, tables):
    c = connect(proxy, autocommit=True)
    oid = observe(proxy, [OBSERVED], lease_ms=60000)
    timed(c, "SELECT v FROM lat_obs")
    assert latency(proxy)["tables"][OBSERVED]["read"]["count"] == 1
    # Renewing sets a new lease: this short one then runs out, as a dead coordinator's would.
    status, body = proxy.admin("POST", f"/observe/{oid}/renew", {"lease_ms": 300})
    assert status == 200 and body == {"id": oid, "lease_ms": 300}
    harness.wait_for(lambda: proxy.admin("GET", f"/observe/{oid}")[0] == 404, 20,
                     what="the observation's lease to run out")
    assert proxy.admin("GET", "/observe")[1] == {"observations": []}
    assert latency(proxy)["tables"] == {}
    timed(c, "SELECT v FROM lat_obs")
    assert latency(proxy)["tables"] == {}
    assert ("pgvalve_table_latency_seconds_count", frozenset({("table", OBSERVED), ("kind", "read")})) \
        not in proxy.metrics()
    assert "lease of 300 ms ran out" in proxy.log_text()
    status, body = proxy.admin("POST", f"/observe/{oid}/renew", {"lease_ms": 1000})
    assert status == 404 and body == {"error": "no such observation"}


def test_metrics_histogram(proxy, connect, tables):
    c = connect(proxy, autocommit=True)
    observe(proxy, [OBSERVED, "lat_other"])
    for ms in (1, 2, 3, 60):
        timed(c, f"SELECT pg_sleep({ms} / 1000.0) FROM lat_obs")
    timed(c, "INSERT INTO lat_other VALUES (2, 0)")
    status, text = proxy.admin_get("/metrics")
    assert status == 200
    assert "# TYPE pgvalve_table_latency_seconds histogram" in text
    series = {}
    for line in text.splitlines():
        if not line.startswith("pgvalve_table_latency_seconds"):
            continue
        name, rest = line.split("{", 1)
        labels_s, value = rest.rsplit("} ", 1)
        labels = dict(part.split("=", 1) for part in harness._split_labels(labels_s))
        labels = {k: v.strip('"') for k, v in labels.items()}
        key = (labels["table"], labels["kind"])
        entry = series.setdefault(key, {"buckets": []})
        if name.endswith("_bucket"):
            entry["buckets"].append((labels["le"], float(value)))
        else:
            entry[name.rsplit("_", 1)[1]] = float(value)
    assert set(series) == {(OBSERVED, "read"), (OBSERVED, "write"), ("lat_other", "read"),
                           ("lat_other", "write")}
    for key, entry in series.items():
        les = [le for le, _ in entry["buckets"]]
        counts = [n for _, n in entry["buckets"]]
        assert les[-1] == "+Inf" and [float(le) for le in les[:-1]] == sorted(float(le) for le in les[:-1])
        assert counts == sorted(counts), f"{key}: buckets are not cumulative"
        assert counts[-1] == entry["count"]
    reads = series[(OBSERVED, "read")]
    assert reads["count"] == 4
    assert 0.066 <= reads["sum"]
    le = dict(reads["buckets"])
    assert le["0.05"] <= 3 and le["+Inf"] == 4  # the 60 ms one is above 50 ms
    assert le["0.001"] == 0                     # none was under the 1 ms it slept
    assert series[("lat_other", "write")]["count"] == 1
    assert series[(OBSERVED, "write")]["count"] == 0


@pytest.mark.parametrize("body, status, words", [
    ("{not json", 400, "body: expected a JSON object"),
    ([], 400, "(body)"),
    ({"tables": ["t"], "lease_ms": 1000, "mode": "all"}, 400, "mode"),
    ({"lease_ms": 1000}, 400, "\"tables\": expected an array of 1 to 64 table names"),
    ({"tables": [], "lease_ms": 1000}, 400, "an empty one"),
    ({"tables": ["t%d" % i for i in range(65)]}, 400, "a longer one"),
    ({"tables": ["*"]}, 400, "\"tables\": expected table names (\"schema.table\" or \"table\"), got \"*\""),
    ({"tables": ["a.b.c"]}, 400, "got \"a.b.c\""),
    ({"tables": [5]}, 400, "got 5"),
    ({"tables": ["t"], "lease_ms": 0}, 400, "\"lease_ms\": expected an integer from 1 to 3600000"),
    ({"tables": ["t"], "lease_ms": "soon"}, 400, "\"lease_ms\""),
    ({"tables": ["t"], "id": "a/b"}, 400, "\"id\": expected 1 to 63 letters"),
])
def test_bad_bodies_get_clear_400s(proxy, body, status, words):
    got_status, got = proxy.admin("POST", "/observe", body)
    assert got_status == status and words in got["error"], got
    assert proxy.admin("GET", "/observe")[1] == {"observations": []}


def test_limits_and_unknown_ids(proxy):
    observe(proxy, ["a"], id="first")
    status, body = proxy.admin("POST", "/observe", {"tables": ["b"], "id": "first"})
    assert status == 409 and "exists already" in body["error"]
    status, body = proxy.admin("POST", "/observe", {"tables": ["t%d" % i for i in range(64)]})
    assert status == 409 and "more than 64 distinct observed tables" in body["error"]
    for i in range(15):
        observe(proxy, ["a"])
    status, body = proxy.admin("POST", "/observe", {"tables": ["a"]})
    assert status == 409 and "16 observations are active already" in body["error"]
    assert len(proxy.admin("GET", "/observe")[1]["observations"]) == 16
    status, body = proxy.admin("GET", "/observe/first")
    assert status == 200 and body == {"id": "first", "tables": ["a"], "lease_ms": 60000}
    assert proxy.admin("POST", "/observe/first/renew", {"lease_ms": -1})[0] == 400
    assert proxy.admin("POST", "/observe/first/renew", {"lease": 5})[0] == 400
    assert proxy.admin("DELETE", "/observe/nope")[0] == 404
    assert proxy.admin("PUT", "/observe/first")[0] in (405, 501)
    for query in ("window_s=0", "window_s=301", "window_s=abc", "buckets=yes"):
        status, body = proxy.admin("GET", f"/latency?{query}")
        assert status == 400 and body["error"].startswith(f"\"{query.split('=')[0]}\""), body
    assert latency(proxy, "window_s=5")["tables"] == {"a": {
        "read": {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None},
        "write": {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}}}
