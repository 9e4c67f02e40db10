"""Helpers for the tests of holds (test_holds.py, test_parked.py): creating and releasing holds
through the admin API, waiting for sessions to be parked, and reading what a raw protocol
client got, and the fixtures both test files share. "Parked" is read from /status, never judged
by a clock."""

import concurrent.futures
import socket
import struct

import pytest

import harness

LONG_MS = 60000  # lease / max_wait for holds that a test releases itself


def admin(proxy, method, path, body=None):
    """One admin HTTP call: (status, parsed JSON or raw text)."""
    return proxy.admin(method, path, body)


def hold(proxy, tables, **kw):
    """POST /holds with long lease and max_wait unless given; asserts 201 and returns the answer."""
    body = {"tables": tables, "lease_ms": LONG_MS, "max_wait_ms": LONG_MS}
    body.update(kw)
    status, doc = admin(proxy, "POST", "/holds", body)
    assert status == 201, f"POST /holds {body} -> {status}: {doc}"
    return doc


def release(proxy, hold_id):
    status, doc = admin(proxy, "DELETE", f"/holds/{hold_id}")
    assert (status, doc) == (200, {"released": hold_id}), f"DELETE /holds/{hold_id} -> {status}: {doc}"


def wait_in_force(proxy, hold_id, timeout=10):
    """Until GET /holds lists the hold: the proxy answers it only after every worker applied the hold
    (POST /holds publishes to the workers before the admin loop serves anything else), so from then on
    a new unit on its tables parks, even while the POST's 201 still waits for units in flight."""
    def listed():
        status, doc = admin(proxy, "GET", "/holds")
        return status == 200 and any(h.get("id") == hold_id for h in doc["holds"])
    harness.wait_for(listed, timeout, what=f"hold {hold_id} listed in GET /holds")


def parked_count(proxy):
    return proxy.status()["clients"]["parked"]


def wait_parked(proxy, n, timeout=10):
    try:
        harness.wait_for(lambda: parked_count(proxy) == n, timeout, what=f"{n} parked session(s)")
    except TimeoutError:
        st = proxy.status()
        raise AssertionError(f"expected {n} parked session(s); /status clients={st['clients']} "
                             f"sessions={[(s['backend_pid'], s['state'], s.get('parked_on')) for s in st['sessions']]}"
                             f"\n--- proxy log tail:\n" + "\n".join(proxy.log_lines()[-20:])) from None


def session_of(proxy, pid):
    for s in proxy.status()["sessions"]:
        if s["backend_pid"] == pid:
            return s
    raise AssertionError(f"no session with backend_pid {pid} in /status")


def rows(direct, sql, params=None):
    return direct.execute(sql, params).fetchall()


def make_table(direct, name, columns="v int"):
    direct.execute(f"DROP TABLE IF EXISTS {name} CASCADE")
    direct.execute(f"CREATE TABLE {name} ({columns})")


def q(raw, sql):
    """Sends a simple Query without reading the answer."""
    raw.send_msg(b"Q", sql.encode() + b"\0")


def parse_msg(name, sql):
    return b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0)


def bind_msg(portal, stmt):
    return b"B", portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!HHH", 0, 0, 0)


def execute_msg(portal=""):
    return b"E", portal.encode() + b"\0" + struct.pack("!I", 0)


def send_all(raw, *msgs):
    raw.send(b"".join(t + struct.pack("!I", len(b) + 4) + b for t, b in msgs))


def read_until_ready(raw, timeout=15):
    """Every message up to and including ReadyForQuery: [(type, body)]."""
    raw.sock.settimeout(timeout)
    out = []
    try:
        while True:
            typ, body = raw.read_msg()
            out.append((typ, body))
            if typ == b"Z":
                raw.status = body
                return out
    except socket.timeout:
        raise AssertionError(f"no ReadyForQuery within {timeout}s; got {out!r}") from None


def types(msgs):
    return b"".join(t for t, _ in msgs).decode()


def errors_in(msgs):
    return [harness.parse_error_fields(b) for t, b in msgs if t == b"E"]


def received_nothing(raw, wait=0.4):
    """True if the peer sent nothing within `wait` seconds (what it did send is kept)."""
    if raw.buf:
        return False
    raw.sock.settimeout(wait)
    try:
        chunk = raw.sock.recv(65536)
    except socket.timeout:
        return True
    raw.buf += chunk
    return False


def assert_ok(msgs, what):
    errs = errors_in(msgs)
    assert not errs, f"{what}: unexpected error(s) {errs}"
    assert msgs[-1] == (b"Z", b"I"), f"{what}: ended with {msgs[-1]!r}"


def assert_rejected(msgs, table, what):
    """A reject-policy answer: ErrorResponse 55P03 naming the table, then ReadyForQuery idle."""
    assert types(msgs) == "EZ", f"{what}: expected ErrorResponse + ReadyForQuery, got {msgs!r}"
    [e] = errors_in(msgs)
    assert e.get("C") == "55P03", f"{what}: SQLSTATE {e.get('C')} ({e.get('M')}), expected 55P03"
    assert table in e.get("M", ""), f"{what}: message {e.get('M')!r} does not name {table!r}"
    assert msgs[-1][1] == b"I", f"{what}: ReadyForQuery status {msgs[-1][1]!r}"


# --------------------------------------------------------------------------- fixtures

def raw_conns(proxy, timeout):
    """The body of a test file's `raw` fixture (`yield from raw_conns(proxy, timeout)`): yields
    raw(p=proxy, user=superuser) -> an authenticated RawConn with `timeout`, and closes every one
    it made at teardown."""
    conns = []

    def _raw(p=None, user=harness.SUPERUSER):
        r = (p or proxy).raw(timeout=timeout)
        conns.append(r)
        r.startup(user)
        return r
    yield _raw
    for r in conns:
        r.close()


@pytest.fixture
def pool():
    """Four threads for clients that must block while the test goes on (import it by name)."""
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    yield ex
    ex.shutdown(wait=False, cancel_futures=True)
