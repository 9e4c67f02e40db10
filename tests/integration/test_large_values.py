"""A 100 MB value through the proxy both ways: bytea as a binary parameter and binary result,
text as a text parameter and text result; checksums match on the client and the server. A
client that does not read a 200 MB result makes the server wait (back-pressure), not the
proxy's memory grow."""

import hashlib
import os
import socket

import pytest

import harness

SIZE = 100 * 1024 * 1024


@pytest.fixture
def conn(proxy, connect):
    c = connect(proxy, autocommit=True)
    c.execute("DROP TABLE IF EXISTS big_values")
    c.execute("CREATE TABLE big_values(id int primary key, b bytea, t text)")
    c.execute("ALTER TABLE big_values ALTER b SET STORAGE EXTERNAL, ALTER t SET STORAGE EXTERNAL")
    return c


def test_100mb_bytea_round_trip(conn):
    data = os.urandom(SIZE)
    digest = hashlib.md5(data).hexdigest()
    conn.cursor(binary=True).execute("INSERT INTO big_values(id, b) VALUES (1, %b)", (data,))
    assert conn.execute("SELECT length(b), md5(b) FROM big_values WHERE id = 1").fetchone() == (SIZE, digest)
    del data
    back = conn.cursor(binary=True).execute("SELECT b FROM big_values WHERE id = 1").fetchone()[0]
    assert len(back) == SIZE and hashlib.md5(back).hexdigest() == digest


def test_100mb_text_round_trip(conn):
    chunk = bytes(range(32, 127)) * 1024
    text = (chunk * (SIZE // len(chunk) + 1))[:SIZE].decode("ascii")
    digest = hashlib.md5(text.encode()).hexdigest()
    conn.execute("INSERT INTO big_values(id, t) VALUES (2, %t)", (text,))
    assert conn.execute("SELECT length(t), md5(t) FROM big_values WHERE id = 2").fetchone() == (SIZE, digest)
    del text
    back = conn.execute("SELECT t FROM big_values WHERE id = 2").fetchone()[0]
    assert len(back) == SIZE and hashlib.md5(back.encode()).hexdigest() == digest
    # A session opened afterwards works as usual.
    assert conn.execute("SELECT 'small'").fetchone() == ("small",)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


ROWS = 200000          # 200 MB of result: 1000-byte rows
ROW_BYTES = 1000


def test_slow_reader_does_not_make_the_proxy_buffer_everything(proxy, direct):
    """A client that asks for 200 MB and does not read: the proxy stops reading the server
    (back-pressure) instead of holding the whole result in memory. Seen from the server: the
    query stops producing rows and waits to write to its client (wait_event ClientWrite) with
    most of the result not produced yet; a nextval() per row counts what it produced."""
    direct.execute("DROP SEQUENCE IF EXISTS slow_reader_rows")
    direct.execute("CREATE SEQUENCE slow_reader_rows")
    direct.execute("GRANT USAGE ON SEQUENCE slow_reader_rows TO trust_user")

    def produced():
        value, called = direct.execute("SELECT last_value, is_called FROM slow_reader_rows").fetchone()
        return value if called else 0

    with proxy.raw(timeout=120) as raw:
        raw.startup("trust_user")
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        baseline = rss_kb(proxy.proc.pid)
        raw.send_msg(b"Q", f"SELECT repeat('r', {ROW_BYTES}), nextval('slow_reader_rows') "
                           f"FROM generate_series(1, {ROWS})\0".encode())
        last = [None]

        def stuck_writing():
            """The backend waits on its client and made no row since the last look."""
            # Rows first, then the state: a query seen producing and then idle has ended.
            prev, n = last[0], produced()
            last[0] = n
            state = direct.execute("SELECT state, wait_event FROM pg_stat_activity WHERE pid = %s",
                                   (raw.backend_pid,)).fetchone()
            if state is None or (state[0] != "active" and n > 0):
                raise AssertionError(f"the query ended while its client read nothing: {state}, "
                                     f"{n} of {ROWS} rows produced")
            return state[1] == "ClientWrite" and n == prev
        harness.wait_for(stuck_writing, 120, interval=0.5, what="the server to wait on its client")
        n = produced()
        assert n < ROWS // 2, f"{n} of {ROWS} rows produced for a client that reads nothing"
        # What the server produced is in the proxy or in socket buffers: the proxy's memory grew
        # by far less than the result.
        grown_kb = rss_kb(proxy.proc.pid) - baseline
        assert grown_kb * 1024 < ROWS * ROW_BYTES // 4, f"proxy RSS grew by {grown_kb} kB"
        rows = 0
        while True:
            typ, body = raw.read_msg()
            if typ == b"D":
                rows += 1
            elif typ == b"Z":
                break
        assert rows == ROWS
    assert produced() == ROWS
