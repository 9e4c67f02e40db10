"""A 100 MB value through the proxy both ways: bytea as a binary parameter and binary result,
text as a text parameter and text result; checksums match on the client and the server."""

import hashlib
import os
import socket
import time

import pytest

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


def test_slow_reader_does_not_make_the_proxy_buffer_everything(proxy):
    """A client that asks for 200 MB and does not read: the proxy stops reading the server
    (back-pressure) instead of holding the whole result in memory."""
    with proxy.raw(timeout=60) as raw:
        raw.startup("trust_user")
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        baseline = rss_kb(proxy.proc.pid)
        raw.send_msg(b"Q", b"SELECT repeat('r', 1000) FROM generate_series(1, 200000)\0")
        time.sleep(3)  # the server could produce all 200 MB in this time
        grown_mb = (rss_kb(proxy.proc.pid) - baseline) / 1024
        assert grown_mb < 64, f"proxy RSS grew by {grown_mb:.0f} MB for a client that reads nothing"
        rows = 0
        while True:
            typ, body = raw.read_msg()
            if typ == b"D":
                rows += 1
            elif typ == b"Z":
                break
        assert rows == 200000
