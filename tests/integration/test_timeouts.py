"""Timeouts a user runs into: an upstream that accepts TCP but never answers does not hang the
client (connect/auth timeouts → ErrorResponse); timeouts.client_idle_ms closes a client that
sits idle, but not one waiting for a long query; with it off, idle sessions stay."""

import socket
import threading
import time

import pytest

import harness


@pytest.fixture
def black_hole():
    """A TCP listener that accepts and then never says anything."""
    srv = socket.socket()
    srv.bind((harness.HOST, 0))
    srv.listen(64)
    held = []
    stop = threading.Event()

    def loop():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except socket.timeout:
                pass
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for s in held:
        s.close()
    srv.close()


@pytest.mark.parametrize("sslmode", ["disable", "prefer"])
def test_silent_upstream_gives_error_not_hang(pg, proxy_factory, black_hole, sslmode):
    proxy = proxy_factory(pg, {"upstream": {"port": black_hole, "sslmode": sslmode},
                               "timeouts": {"connect_ms": 1000, "auth_ms": 2000}})
    with proxy.raw(timeout=30) as raw:
        with pytest.raises(harness.PgError) as e:
            raw.startup(harness.SUPERUSER)
        assert e.value.sqlstate.startswith("08"), e.value.fields
        assert raw.read_until_closed(timeout=20) == []
    proxy.assert_healthy()


def test_client_idle_timeout_closes_idle_session(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, {"timeouts": {"client_idle_ms": 1000}})
    with proxy.raw(timeout=30) as idle:
        idle.startup("trust_user")
        msgs = idle.read_until_closed(timeout=20)
        assert all(t == b"E" for t, _ in msgs), msgs
    busy = connect(proxy, autocommit=True)
    # Waiting on the server is not idling.
    assert busy.execute("SELECT pg_sleep(2.5), 'done'").fetchone()[1] == "done"
    proxy.assert_healthy()


def test_no_idle_timeout_by_default(proxy, connect):
    conn = connect(proxy, autocommit=True)
    time.sleep(2)
    assert conn.execute("SELECT 'still open'").fetchone() == ("still open",)
