"""Hostile bytes on raw sockets. Each bad connection is told why when the protocol allows it
(ErrorResponse 08P01) and closed; a slowloris client trickling bytes holds nobody up; after
each case a session opened before still works, a new one works, and /healthz is ok."""

import socket
import struct
import threading
import time

import psycopg
import pytest

import harness

MAX_MESSAGE = 1024 * 1024


@pytest.fixture
def proxy(pg, proxy_factory):
    return proxy_factory(pg, {"limits": {"max_message_bytes": MAX_MESSAGE},
                              "timeouts": {"auth_ms": 2000}})


@pytest.fixture
def bystander(proxy, connect):
    conn = connect(proxy, autocommit=True)
    assert conn.execute("SELECT 1").fetchone() == (1,)
    return conn


def everything_still_works(proxy, bystander):
    assert bystander.execute("SELECT 'bystander ok'").fetchone() == ("bystander ok",)
    with psycopg.connect(proxy.dsn(user="scram_user")) as fresh:
        assert fresh.execute("SELECT current_user").fetchone() == ("scram_user",)
    proxy.assert_healthy()


def closed_with(raw, sqlstates, timeout=15):
    """Waits for the proxy to close the connection; asserts it said exactly `sqlstates` (a list
    of SQLSTATEs of ErrorResponses, in order; [] for a close without a word) and nothing else.
    Returns the error fields."""
    msgs = raw.read_until_closed(timeout=timeout)
    errors = [harness.parse_error_fields(body) for typ, body in msgs if typ == b"E"]
    assert len(errors) == len(msgs), f"non-error messages before close: {msgs!r}"
    assert [e.get("C") for e in errors] == list(sqlstates), errors
    assert all(e.get("S") == "FATAL" for e in errors), errors
    return errors


def raw_logged_in(proxy, user="trust_user"):
    raw = proxy.raw()
    raw.startup(user)
    return raw


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]) + b"\xaa" * 64,
    b"\xff" * 4096,
], ids=["http", "tls-client-hello", "ff-bytes"])
def test_garbage_first_packet(proxy, bystander, garbage):
    with proxy.raw() as raw:
        raw.send(garbage)
        closed_with(raw, ["08P01"])
    everything_still_works(proxy, bystander)


@pytest.mark.parametrize("length", [0, 4, 7, 2 ** 31, 2 ** 31 - 1, 2 ** 32 - 1, 1 << 20])
def test_bad_startup_length(proxy, bystander, length):
    with proxy.raw() as raw:
        raw.send(struct.pack("!II", length, 196608) + b"user\0trust_user\0\0")
        closed_with(raw, ["08P01"])
    everything_still_works(proxy, bystander)


def test_unsupported_protocol_version(proxy, bystander):
    with proxy.raw() as raw:
        body = struct.pack("!I", 0x12345678) + b"user\0trust_user\0\0"
        raw.send(struct.pack("!I", len(body) + 4) + body)
        closed_with(raw, ["08P01"])
    everything_still_works(proxy, bystander)


def test_truncated_startup_then_eof(proxy, bystander):
    with proxy.raw() as raw:
        packet = raw.startup_packet("trust_user", harness.DATABASE)
        raw.send(packet[:len(packet) // 2])
        raw.sock.shutdown(socket.SHUT_WR)
        closed_with(raw, [])   # the client left: there is no one to tell
    everything_still_works(proxy, bystander)


def test_truncated_startup_left_open_times_out(proxy, bystander):
    with proxy.raw(timeout=30) as raw:
        packet = raw.startup_packet("trust_user", harness.DATABASE)
        raw.send(packet[:7])
        # timeouts.auth_ms is 2 s: the proxy gives up on it by itself, and says why.
        [e] = closed_with(raw, ["08006"], timeout=60)
        assert "timeouts.auth_ms" in e["M"], e
    everything_still_works(proxy, bystander)


def test_startup_without_terminators(proxy, bystander):
    with proxy.raw() as raw:
        body = struct.pack("!I", 196608) + b"user\0trust_user"  # no NULs to end it
        raw.send(struct.pack("!I", len(body) + 4) + body)
        closed_with(raw, ["08P01"])
    everything_still_works(proxy, bystander)


def test_post_auth_length_three(proxy, bystander):
    with raw_logged_in(proxy) as raw:
        raw.send(b"Q" + struct.pack("!I", 3))
        closed_with(raw, ["08P01"])
    everything_still_works(proxy, bystander)


def test_post_auth_message_over_limit(proxy, bystander):
    with raw_logged_in(proxy) as raw:
        # Only the header and a little of the body: the proxy must not wait for the rest.
        raw.send(b"Q" + struct.pack("!I", 4 * MAX_MESSAGE) + b"SELECT '" + b"x" * 4000)
        [e] = closed_with(raw, ["08P01"])
        assert "max_message_bytes" in e["M"], e
    everything_still_works(proxy, bystander)


def test_post_auth_message_just_under_limit_is_fine(proxy, bystander):
    with raw_logged_in(proxy) as raw:
        payload = "y" * (MAX_MESSAGE - 100)
        rows, errors = raw.query(f"SELECT length('{payload}')")
        assert (rows, errors) == ([[str(len(payload))]], [])
    everything_still_works(proxy, bystander)


def test_post_auth_huge_parameter_from_real_client(proxy, bystander):
    conn = psycopg.connect(proxy.dsn(), autocommit=True)
    try:
        with pytest.raises(psycopg.OperationalError) as e:
            conn.execute("SELECT length(%s)", ("z" * (2 * MAX_MESSAGE),))
        # libpq reads the proxy's FATAL while it is still sending ("consuming input failed:"
        # and the text, no SQLSTATE): what the user reads names the limit.
        assert "message exceeds limits.max_message_bytes" in str(e.value), e.value
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    everything_still_works(proxy, bystander)


def test_unknown_message_type_after_auth(proxy, bystander):
    with raw_logged_in(proxy) as raw:
        raw.send(b"\x01" + struct.pack("!I", 8) + b"abcd")
        closed_with(raw, ["08P01"])
    everything_still_works(proxy, bystander)


class Trickler(threading.Thread):
    """Sends the bytes of 'data' but the last on each of 'count' sockets, one byte per socket
    at a time, then waits; finish() sends the last byte. `sent` counts the bytes sent on
    every socket."""

    def __init__(self, port, data, count):
        super().__init__(daemon=True)
        self.socks = [socket.create_connection((harness.HOST, port)) for _ in range(count)]
        self.data = data
        self.stop = threading.Event()
        self.sent = 0

    def run(self):
        for i in range(len(self.data) - 1):
            if self.stop.wait(0.05):
                return
            for s in self.socks:
                s.send(self.data[i:i + 1])
            self.sent = i + 1

    def finish(self):
        self.join()
        for s in self.socks:
            s.send(self.data[-1:])

    def close(self):
        self.stop.set()
        self.join()
        for s in self.socks:
            s.close()


def test_slowloris_does_not_stop_other_sessions(pg, proxy_factory, connect):
    """40 clients each trickle a startup packet and stop one byte short: while they are stuck
    half-way, new logins and queries are served; the trickling clients still complete when
    their last byte arrives."""
    # A long auth timeout: the trickling clients are not cut off while we test.
    proxy = proxy_factory(pg, {"timeouts": {"auth_ms": 600000}})
    bystander = connect(proxy, autocommit=True)
    packet = harness.RawConn.startup_packet("trust_user", harness.DATABASE)
    slow = Trickler(proxy.port, packet, count=40)
    slow.start()
    try:
        harness.wait_for(lambda: slow.sent >= 3, 60, what="the slow clients to be under way")
        for i in range(3):
            with psycopg.connect(proxy.dsn(user="scram_user")) as c:
                assert c.execute("SELECT %s::int", (i,)).fetchone() == (i,)
            assert bystander.execute("SELECT 'ok'").fetchone() == ("ok",)
        harness.wait_for(lambda: not slow.is_alive(), 120, what="the slow clients to stop one byte short")
        # All 40 are still waiting for their last byte: served logins did not need them gone.
        assert proxy.status()["clients"]["login"] == 40
        with psycopg.connect(proxy.dsn(user="scram_user")) as c:
            assert c.execute("SELECT 'during'").fetchone() == ("during",)
        slow.finish()
        for sock in slow.socks:
            conn = harness.RawConn.__new__(harness.RawConn)
            conn.sock, conn.buf = sock, b""
            sock.settimeout(30)
            types = []
            while not types or types[-1] != b"Z":
                types.append(conn.read_msg()[0])
            assert b"E" not in types and types[0] == b"R", types
    finally:
        slow.close()
    everything_still_works(proxy, bystander)


def test_slow_but_valid_client_is_served(proxy, bystander):
    with proxy.raw(timeout=30) as raw:
        packet = raw.startup_packet("trust_user", harness.DATABASE)
        query = b"Q" + struct.pack("!I", 4 + len(b"SELECT 6 * 7\0")) + b"SELECT 6 * 7\0"
        for i in range(len(packet)):
            raw.send(packet[i:i + 1])
            time.sleep(0.02)
        while raw.read_msg()[0] != b"Z":
            pass
        for i in range(len(query)):
            raw.send(query[i:i + 1])
            time.sleep(0.05)
        msgs = []
        while not msgs or msgs[-1][0] != b"Z":
            msgs.append(raw.read_msg())
        data_rows = [body for typ, body in msgs if typ == b"D"]
        assert len(data_rows) == 1 and data_rows[0].endswith(b"42")
    everything_still_works(proxy, bystander)


def test_connect_and_vanish(proxy, bystander):
    for _ in range(100):
        s = socket.create_connection((harness.HOST, proxy.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        s.close()
    for _ in range(50):
        raw = raw_logged_in(proxy)
        raw.send(b"Q" + struct.pack("!I", 20) + b"SELECT pg_sl")  # half a message, then gone
        raw.close()
    everything_still_works(proxy, bystander)


def test_client_vanishing_mid_query_frees_its_backend(proxy, bystander, direct):
    raw = raw_logged_in(proxy)
    pid = raw.backend_pid
    raw.send_msg(b"Q", b"SELECT pg_sleep(1.5)\0")
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # reset, no Terminate
    harness.wait_for(lambda: not direct.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone(), 20, interval=0.2,
        what="the abandoned backend to end")
    harness.wait_for(lambda: proxy.status()["clients"]["total"] == 1, 10, what="only the bystander left")
    everything_still_works(proxy, bystander)


def test_tls_handshake_garbage(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, {"tls": {"cert_file": pg.server_crt, "key_file": pg.server_key}})
    bystander = connect(proxy, autocommit=True, sslmode="require")
    for garbage in (b"\x16\x03\x01\x00\x05hello", b"\x00" * 64, b"GET / HTTP/1.0\r\n\r\n"):
        with proxy.raw() as raw:
            raw.send(struct.pack("!II", 8, 80877103))
            assert raw.sock.recv(1) == b"S"
            raw.send(garbage)
            raw.sock.settimeout(15)
            try:
                while raw.sock.recv(4096):
                    pass  # a TLS alert, then the close
            except ConnectionResetError:
                pass
    with proxy.raw() as raw:  # SSLRequest, then a plain startup instead of a handshake
        raw.send(struct.pack("!II", 8, 80877103))
        assert raw.sock.recv(1) == b"S"
        raw.send(raw.startup_packet("trust_user", harness.DATABASE))
        raw.sock.settimeout(15)
        try:
            while raw.sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
    assert bystander.execute("SELECT 'tls bystander'").fetchone() == ("tls bystander",)
    assert bystander.pgconn.ssl_in_use
    with psycopg.connect(proxy.dsn(sslmode="verify-full", sslrootcert=pg.ca_crt)) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    proxy.assert_healthy()
