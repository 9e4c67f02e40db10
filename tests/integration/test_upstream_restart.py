"""The upstream goes away and comes back. While PostgreSQL is down new clients get an
ErrorResponse 08006 (not a hang, not a bare close) and the proxy stays healthy; once it is up
again the proxy serves new sessions without a restart. A backend that vanishes mid-session
(killed, no goodbye) is reported to its client as 08006."""

import os
import signal

import psycopg
import pytest

import harness


def test_server_stop_and_start(own_pg, proxy_factory, connect):
    proxy = proxy_factory(own_pg)
    before = connect(proxy, autocommit=True)
    assert before.execute("SELECT 1").fetchone() == (1,)

    own_pg.stop(mode="fast")
    # The open session learns its server is gone (the server's own 57P01 or the proxy's 08006).
    with pytest.raises(psycopg.OperationalError):
        before.execute("SELECT 1")

    for _ in range(3):
        with proxy.raw() as raw:
            with pytest.raises(harness.PgError) as e:
                raw.startup(harness.SUPERUSER)
            assert e.value.sqlstate == "08006", e.value.fields
            assert raw.read_until_closed() == []
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proxy.dsn())
    proxy.assert_healthy()

    own_pg.start()
    for user in ("scram_user", "md5_user", harness.SUPERUSER):
        with psycopg.connect(proxy.dsn(user=user)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (user,)
    proxy.assert_healthy()


def test_backend_killed_mid_session(own_pg, proxy_factory, connect):
    proxy = proxy_factory(own_pg)
    survivor_check = connect(proxy, autocommit=True)
    with proxy.raw() as raw:
        raw.startup(harness.SUPERUSER)
        assert raw.query("SELECT 1")[0] == [["1"]]
        os.kill(raw.backend_pid, signal.SIGKILL)  # the backend dies without a word
        try:
            raw.send_msg(b"Q", b"SELECT 2\0")
        except OSError:
            pass
        msgs = raw.read_until_closed(timeout=20)
        errors = [harness.parse_error_fields(b) for t, b in msgs if t == b"E"]
        # PostgreSQL resets after a crashed backend, so other backends may say 57P02 first;
        # this one's last word must come from the proxy: 08006.
        assert errors and errors[-1]["C"] == "08006", msgs
    # The postmaster's crash recovery ends every other backend too; the survivor hears of it.
    harness.wait_for(lambda: _fails(survivor_check), 30, interval=0.2, what="the other session to be ended")
    harness.wait_for(lambda: _can_query(proxy), 60, interval=0.5, what="server back after crash recovery")
    proxy.assert_healthy()


def _fails(conn):
    try:
        conn.execute("SELECT 1")
        return False
    except psycopg.OperationalError:
        return True


def _can_query(proxy):
    try:
        with psycopg.connect(proxy.dsn()) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_server_restart_while_idle_sessions_open(own_pg, proxy_factory, connect):
    proxy = proxy_factory(own_pg)
    conns = [connect(proxy, autocommit=True) for _ in range(10)]
    own_pg.restart()
    for c in conns:
        with pytest.raises(psycopg.OperationalError):
            c.execute("SELECT 1")
    fresh = [connect(proxy, autocommit=True) for _ in range(10)]
    assert all(c.execute("SELECT 1").fetchone() == (1,) for c in fresh)
    harness.wait_for(lambda: proxy.status()["clients"]["total"] == 10, 10,
                     what="only the 10 new sessions in /status")
