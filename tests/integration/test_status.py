"""GET /status and the other read-only admin endpoints: the sessions a user has open are listed
with user, database and the backend PID the server reports (pg_backend_pid()), client counts
follow transactions, the upstream is named; /healthz says ok; unknown paths are 404."""

import asyncio
import json
import threading

import psycopg

import harness


def sessions_by_pid(proxy):
    return {s["backend_pid"]: s for s in proxy.status()["sessions"]}


def test_status_lists_sessions_with_backend_pids(pg, proxy, connect):
    conns = {user: connect(proxy, user=user, autocommit=True)
             for user in ("scram_user", "md5_user", harness.SUPERUSER)}
    pids = {user: c.execute("SELECT pg_backend_pid()").fetchone()[0] for user, c in conns.items()}
    doc = proxy.status()
    assert isinstance(doc["version"], str) and doc["version"]
    assert doc["uptime_s"] >= 0
    assert doc["workers"] == 2
    assert doc["holds"] == []
    assert doc["clients"]["total"] == 3
    assert doc["clients"]["parked"] == 0
    listed = {s["backend_pid"]: s for s in doc["sessions"]}
    assert set(listed) == set(pids.values())
    for user, pid in pids.items():
        s = listed[pid]
        assert s["user"] == user and s["database"] == harness.DATABASE
        assert s["client"].startswith("127.0.0.1:")
        assert isinstance(s["id"], (int, str))
    assert len({s["id"] for s in doc["sessions"]}) == 3
    [up] = doc["upstreams"]
    assert (up["host"], up["port"], up["active"]) == ("127.0.0.1", pg.port, True)
    assert up["name"]


def test_status_counts_idle_and_in_transaction(proxy, connect):
    a = connect(proxy, autocommit=True)
    b = connect(proxy)
    c = connect(proxy)
    a.execute("SELECT 1")
    b.execute("SELECT 1")  # psycopg opened a transaction
    c.execute("SELECT 1")
    clients = proxy.status()["clients"]
    assert (clients["total"], clients["idle"], clients["in_transaction"]) == (3, 1, 2)
    states = {s["backend_pid"]: s["state"] for s in proxy.status()["sessions"]}
    assert states[b.info.backend_pid] == states[c.info.backend_pid] != states[a.info.backend_pid]
    b.commit()
    c.rollback()
    clients = proxy.status()["clients"]
    assert (clients["total"], clients["idle"], clients["in_transaction"]) == (3, 3, 0)
    b_pid = b.info.backend_pid
    b.close()
    harness.wait_for(lambda: proxy.status()["clients"]["total"] == 2, 10, what="closed session to leave /status")
    assert b_pid not in sessions_by_pid(proxy)


def test_status_backend_pid_matches_backend_key_data(proxy):
    with proxy.raw() as raw:
        raw.startup("trust_user")
        pid = int(raw.query("SELECT pg_backend_pid()")[0][0][0])
        assert raw.backend_pid == pid  # BackendKeyData passed through unchanged
        assert sessions_by_pid(proxy)[pid]["user"] == "trust_user"


def test_healthz_and_unknown_paths(proxy):
    status, body = proxy.healthz()
    assert (status, body.strip()) == (200, "ok")
    status, body = proxy.admin_get("/no/such/endpoint")
    assert status == 404
    assert "error" in json.loads(body)


def test_admin_reads_during_session_churn(proxy):
    """/status, /metrics and /errors stay answerable and consistent while sessions come and go."""
    stop = threading.Event()
    problems, polls = [], [0]

    def poll():
        while not stop.is_set():
            try:
                doc = proxy.status()
                c = doc["clients"]
                # One document is one moment: every session counted is listed, once.
                parts = c["idle"] + c["active"] + c["in_transaction"] + c["login"] + c["parked"]
                if len(doc["sessions"]) != c["total"] or parts != c["total"] \
                        or len({x["id"] for x in doc["sessions"]}) != c["total"]:
                    problems.append(doc)
                proxy.metrics()
                proxy.errors(window_s=10)
                polls[0] += 1
            except Exception as e:  # noqa: BLE001 - report whatever went wrong
                problems.append(repr(e))

    async def churn():
        async def one(i):
            async with await psycopg.AsyncConnection.connect(proxy.dsn(user="trust_user"), autocommit=True) as c:
                await c.execute("SELECT %s::int", (i,))
        for batch in range(6):
            await asyncio.gather(*(one(i) for i in range(50)))

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        asyncio.run(churn())
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert problems == []
    assert polls[0] > 0
    harness.wait_for(lambda: proxy.status()["clients"]["total"] == 0, 10, what="all sessions gone")
    assert proxy.metrics()["pgvalve_connections_total"] == 300
