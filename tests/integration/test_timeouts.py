"""Timeouts a user runs into: an upstream that accepts TCP but never answers does not hang the
client (connect/auth timeouts → ErrorResponse); timeouts.client_idle_ms closes a client that
sits idle with FATAL 57P05, but not one waiting for a query that outlasts it; with it off,
idle sessions stay."""

import socket
import threading

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
    # One FATAL 57P05 that names the setting, then the close.
    assert [t for t, _ in msgs] == [b"E"], msgs
    [err] = [harness.parse_error_fields(b) for _, b in msgs]
    assert (err.get("S"), err.get("C")) == ("FATAL", "57P05"), err
    assert "client_idle_ms" in err.get("M", ""), err
    busy = connect(proxy, autocommit=True)
    # Waiting on the server is not idling: a query that outlasts client_idle_ms (1 s) twice
    # over still gets its answer on the same session, which stays open afterwards.
    assert busy.execute("SELECT pg_sleep(2.5), 'done'").fetchone()[1] == "done"
    assert busy.execute("SELECT 'still open'").fetchone() == ("still open",)
    proxy.assert_healthy()


def test_no_idle_timeout_by_default(pg, proxy_factory):
    """With client_idle_ms off, a session left idle stays open while another session's idle
    timeout fires: a second proxy with client_idle_ms set closes its idle session, the
    default proxy's idle session is still there afterwards."""
    default = proxy_factory(pg)
    timed = proxy_factory(pg, {"timeouts": {"client_idle_ms": 500}})
    with default.raw(timeout=30) as kept, timed.raw(timeout=30) as closed:
        kept.startup("trust_user")
        closed.startup("trust_user")
        # The idle timeout of the other proxy fires: an idle stretch of well over 500 ms has
        # passed for both sessions, which were idle from the same moment.
        assert [harness.parse_error_fields(b)["C"] for _, b in closed.read_until_closed(timeout=20)] == ["57P05"]
        rows, errors = kept.query("SELECT 'still open'")
        assert (rows, errors) == ([["still open"]], [])
        assert default.status()["clients"]["total"] == 1
