"""Stopping the proxy. SIGTERM: no new connections, idle sessions are closed with 57P01, a
session inside a transaction may finish and commit first, then the proxy exits 0; the drain
is bounded by shutdown_timeout_ms. SIGINT: every session is closed at once."""

import signal
import socket

import psycopg
import pytest

import harness


def cannot_connect(proxy):
    try:
        with psycopg.connect(proxy.dsn(connect_timeout=3)) as c:
            c.execute("SELECT 1")
        return False
    except psycopg.OperationalError:
        return True


def healthz_ok(proxy):
    try:
        status, body = proxy.healthz()
        return status == 200
    except OSError:
        return False


@pytest.fixture
def drain_table(direct):
    direct.execute("DROP TABLE IF EXISTS drain_t")
    direct.execute("CREATE TABLE drain_t(id int)")
    return direct


def test_sigterm_drains_sessions_then_exits_0(pg, proxy_factory, connect, drain_table):
    proxy = proxy_factory(pg, {"timeouts": {"shutdown_timeout_ms": 30000}})
    proxy.exit_expected = True
    idle = proxy.raw()
    idle.startup(harness.SUPERUSER)
    in_tx = connect(proxy)
    in_tx.execute("INSERT INTO drain_t VALUES (1)")
    in_tx_pid = in_tx.info.backend_pid

    proxy.signal(signal.SIGTERM)

    # The idle session is told why and closed.
    msgs = idle.read_until_closed(timeout=15)
    errors = [harness.parse_error_fields(b) for t, b in msgs if t == b"E"]
    assert [e["C"] for e in errors] == ["57P01"], msgs
    idle.close()
    # No new sessions.
    harness.wait_for(lambda: cannot_connect(proxy), 10, what="proxy to refuse new sessions")
    # Load balancers see it is going away: /healthz no longer says ok.
    assert proxy.alive()
    assert not healthz_ok(proxy)
    # The transaction goes on and commits.
    assert proxy.alive()
    in_tx.execute("INSERT INTO drain_t VALUES (2)")
    assert in_tx.info.backend_pid == in_tx_pid
    in_tx.commit()
    # ... and is closed at that idle point; the proxy then exits 0.
    assert proxy.wait_exit(20) == 0, proxy.log_text()[-2000:]
    with pytest.raises(psycopg.OperationalError):
        in_tx.execute("SELECT 1")
    rows = drain_table.execute("SELECT array_agg(id ORDER BY id) FROM drain_t").fetchone()[0]
    assert rows == [1, 2]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((harness.HOST, proxy.port), timeout=3).close()


def test_sigterm_refuses_new_connections_while_draining(pg, proxy_factory, connect, drain_table):
    """A drain kept open by a transaction must not leave new clients hanging in a backlog:
    they are refused at once, so pools fail over instead of waiting for the drain to end."""
    proxy = proxy_factory(pg, {"timeouts": {"shutdown_timeout_ms": 30000}})
    proxy.exit_expected = True
    in_tx = connect(proxy)
    in_tx.execute("INSERT INTO drain_t VALUES (1)")
    proxy.signal(signal.SIGTERM)
    harness.wait_for(lambda: not healthz_ok(proxy), 10, what="the drain to start")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((harness.HOST, proxy.port), timeout=5).close()
    in_tx.commit()
    assert proxy.wait_exit(20) == 0, proxy.log_text()[-2000:]


def test_sigterm_drain_is_bounded_by_shutdown_timeout(pg, proxy_factory, connect, drain_table):
    proxy = proxy_factory(pg, {"timeouts": {"shutdown_timeout_ms": 1500}})
    proxy.exit_expected = True
    stuck = connect(proxy)
    stuck.execute("INSERT INTO drain_t VALUES (99)")  # never committed
    pid = stuck.info.backend_pid
    proxy.signal(signal.SIGTERM)
    # The transaction is never finished: the proxy exits anyway, because the drain's bound
    # ran out, and says so.
    rc = proxy.wait_exit(120)
    assert rc == 0, proxy.log_text()[-2000:]
    assert any("shutdown_timeout_ms reached: closing 1 remaining sessions" in line
               for line in proxy.log_lines()), proxy.log_lines()[-10:]
    with pytest.raises(psycopg.OperationalError):
        stuck.execute("SELECT 1")
    # The server rolled the open transaction back when its connection closed.
    harness.wait_for(lambda: not drain_table.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone(), 15,
        what="the stuck backend to end")
    assert drain_table.execute("SELECT count(*) FROM drain_t").fetchone() == (0,)


def test_sigterm_with_no_sessions_exits_0(proxy):
    proxy.exit_expected = True
    proxy.signal(signal.SIGTERM)
    assert proxy.wait_exit(60) == 0
    assert harness.sanitizer_report(proxy.log_text()) is None, proxy.log_text()[-3000:]


def test_sigint_closes_everything_at_once(pg, proxy_factory, connect, drain_table):
    # A drain bound of an hour: an exit while the transaction is open is SIGINT's doing.
    proxy = proxy_factory(pg, {"timeouts": {"shutdown_timeout_ms": 3600000}})
    proxy.exit_expected = True
    in_tx = connect(proxy)
    in_tx.execute("INSERT INTO drain_t VALUES (5)")
    pid = in_tx.info.backend_pid
    with proxy.raw() as idle:
        idle.startup("trust_user")
        proxy.signal(signal.SIGINT)
        msgs = idle.read_until_closed(timeout=15)
        # The idle session is told why (FATAL 57P01), as on SIGTERM.
        assert [t for t, _ in msgs] == [b"E"], msgs
        assert harness.parse_error_fields(msgs[0][1])["C"] == "57P01", msgs
    assert proxy.wait_exit(120) == 0, proxy.log_text()[-2000:]
    assert not any("shutdown_timeout_ms reached" in line for line in proxy.log_lines())
    with pytest.raises(psycopg.OperationalError):
        in_tx.execute("SELECT 1")
    # The server side of the session went away too, rolling back the open transaction.
    harness.wait_for(lambda: not drain_table.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone(), 15,
        what="the backend to end")
    assert drain_table.execute("SELECT count(*) FROM drain_t").fetchone() == (0,)


def test_sigterm_lets_a_running_query_finish(pg, proxy_factory, direct):
    proxy = proxy_factory(pg, {"timeouts": {"shutdown_timeout_ms": 30000}})
    proxy.exit_expected = True
    with proxy.raw(timeout=30) as raw:
        raw.startup(harness.SUPERUSER)
        raw.send_msg(b"Q", b"SELECT pg_sleep(2), 'finished'\0")
        harness.wait_for(lambda: direct.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (raw.backend_pid,)).fetchone(),
            10, what="query running")
        proxy.signal(signal.SIGTERM)
        msgs = raw.read_until_closed(timeout=20)
    types = [t for t, _ in msgs]
    assert b"D" in types and b"C" in types and b"Z" in types, msgs
    data = [b for t, b in msgs if t == b"D"][0]
    assert data.endswith(b"finished")
    # The whole answer, then, at that idle point, the goodbye: FATAL 57P01.
    assert types[-2:] == [b"Z", b"E"] and types.count(b"E") == 1, msgs
    assert harness.parse_error_fields(msgs[-1][1])["C"] == "57P01", msgs
    assert proxy.wait_exit(20) == 0
