"""Hundreds of sessions at once through the proxy: 500 clients connect (SCRAM), all stay open
together, each runs its own query and gets its own answer from its own backend."""

import asyncio
import struct
import threading

import psycopg

import harness

SESSIONS = 500


async def open_all(dsn, n):
    sem = asyncio.Semaphore(100)  # bounded connect burst; all stay open afterwards

    async def one():
        async with sem:
            return await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    return await asyncio.gather(*(one() for _ in range(n)))


async def query_all(conns):
    async def one(i, conn):
        cur = await conn.execute(
            "SELECT %s::int, pg_backend_pid(), (SELECT count(*) FROM generate_series(1, %s::int))",
            (i, 1000 + i))
        return await cur.fetchone()
    return await asyncio.gather(*(one(i, c) for i, c in enumerate(conns)))


async def close_all(conns):
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


def test_500_concurrent_sessions(proxy, direct):
    async def scenario():
        conns = await open_all(proxy.dsn(), SESSIONS)
        try:
            rows = await query_all(conns)
            assert [r[0] for r in rows] == list(range(SESSIONS))
            assert [r[2] for r in rows] == [1000 + i for i in range(SESSIONS)]
            pids = {r[1] for r in rows}
            assert len(pids) == SESSIONS  # one backend per session
            assert [c.info.backend_pid for c in conns] == [r[1] for r in rows]
            on_server = direct.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)).fetchone()[0]
            assert on_server == SESSIONS
            assert proxy.status()["clients"]["total"] == SESSIONS
            # A second round on the same sessions, all at once again.
            rows = await query_all(conns)
            assert {r[1] for r in rows} == pids
        finally:
            await close_all(conns)
        return pids

    pids = asyncio.run(scenario())
    harness.wait_for(lambda: direct.execute(
        "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)).fetchone()[0],
        30, what="backends to go away after the clients closed")
    harness.wait_for(lambda: proxy.status()["clients"]["total"] == 0, 30, what="/status clients.total == 0")
    proxy.assert_healthy()


def test_connect_disconnect_churn(proxy):
    async def churn():
        async def one(i):
            async with await psycopg.AsyncConnection.connect(proxy.dsn(user="trust_user")) as c:
                cur = await c.execute("SELECT %s::int", (i,))
                return (await cur.fetchone())[0]
        results = []
        for batch in range(5):
            results += await asyncio.gather(*(one(batch * 60 + i) for i in range(60)))
        return results
    assert asyncio.run(churn()) == list(range(300))
    proxy.assert_healthy()


def test_pipelined_queries_with_backpressure(proxy):
    """One client writes 20,000 queries without waiting while another thread reads ~20 MB of
    answers: the proxy's back-pressure must neither deadlock nor drop or reorder anything."""
    n = 20000
    with proxy.raw(timeout=60) as raw:
        raw.startup("trust_user")
        msgs = b"".join(
            b"Q" + struct.pack("!I", 4 + len(q) + 1) + q + b"\0"
            for q in (f"SELECT {i}, repeat('x', 1000)".encode() for i in range(n)))
        sender = threading.Thread(target=raw.sock.sendall, args=(msgs,))
        sender.start()
        seen, ready = [], 0
        while ready < n:
            typ, body = raw.read_msg()
            if typ == b"D":
                first_len = struct.unpack("!i", body[2:6])[0]
                seen.append(int(body[6:6 + first_len]))
            elif typ == b"Z":
                ready += 1
            elif typ == b"E":
                raise AssertionError(harness.parse_error_fields(body))
        sender.join()
        assert seen == list(range(n))
    proxy.assert_healthy()
