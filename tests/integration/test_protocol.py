"""Extended-query protocol sequences that drivers other than libpq use (JDBC, npgsql, Go's
pgx), sent byte for byte: Flush without Sync gets answers at once, an error discards up to the
next Sync, portals fetched a few rows at a time (PortalSuspended), named statements closed and
reused, and an empty query."""

import struct

import pytest

import harness


def msg(typ, body=b""):
    return typ + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def parse(name, sql, types=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(types)) +
               b"".join(struct.pack("!I", t) for t in types))


def bind(portal, stmt, params=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            body += struct.pack("!i", len(p)) + p
    return msg(b"B", body + struct.pack("!H", 0))


def execute(portal, max_rows=0):
    return msg(b"E", cstr(portal) + struct.pack("!i", max_rows))


def describe(kind, name):
    return msg(b"D", kind + cstr(name))


def close(kind, name):
    return msg(b"C", kind + cstr(name))


SYNC, FLUSH = msg(b"S"), msg(b"H")


def read_until(raw, stop_types):
    out = []
    while True:
        typ, body = raw.read_msg()
        out.append((typ, body))
        if typ in stop_types:
            return out


def data_values(msgs):
    rows = []
    for typ, body in msgs:
        if typ == b"D":
            n, pos, row = struct.unpack("!H", body[:2])[0], 2, []
            for _ in range(n):
                ln = struct.unpack("!i", body[pos:pos + 4])[0]
                pos += 4
                row.append(None if ln < 0 else body[pos:pos + ln].decode())
                pos += max(ln, 0)
            rows.append(row)
    return rows


@pytest.fixture
def raw(proxy):
    conn = proxy.raw(timeout=15)
    conn.startup("trust_user")
    yield conn
    conn.terminate()


def test_flush_without_sync_answers_immediately(raw):
    raw.send(parse("", "SELECT $1::int + 1") + bind("", "", [b"41"]) + describe(b"P", "") +
             execute("") + FLUSH)
    msgs = read_until(raw, {b"C"})
    assert [t for t, _ in msgs] == [b"1", b"2", b"T", b"D", b"C"]
    assert data_values(msgs) == [["42"]]
    raw.send(SYNC)
    assert raw.read_msg() == (b"Z", b"I")


def test_error_discards_until_sync(raw):
    raw.send(parse("", "SELECT 1/0") + bind("", "") + execute("") +
             parse("", "SELECT 'skipped'") + bind("", "") + execute("") + SYNC +
             parse("", "SELECT 'after'") + bind("", "") + execute("") + SYNC)
    first = read_until(raw, {b"Z"})
    types = [t for t, _ in first]
    # The error comes at Bind or Execute (constant folding); nothing after it until Sync.
    assert types[0] == b"1" and types[-2:] == [b"E", b"Z"] and b"D" not in types, types
    assert harness.parse_error_fields(first[-2][1])["C"] == "22012"
    second = read_until(raw, {b"Z"})
    assert data_values(second) == [["after"]]
    assert second[-1] == (b"Z", b"I")


def test_portal_fetched_in_pieces(raw):
    raw.send(msg(b"Q", cstr("BEGIN")))
    read_until(raw, {b"Z"})
    raw.send(parse("s1", "SELECT g FROM generate_series(1, 10) g") + bind("p1", "s1") +
             execute("p1", 4) + execute("p1", 4) + execute("p1", 4) + SYNC)
    msgs = read_until(raw, {b"Z"})
    types = [t for t, _ in msgs]
    assert types.count(b"s") == 2 and types.count(b"C") == 1, types
    assert [r[0] for r in data_values(msgs)] == [str(i) for i in range(1, 11)]
    assert msgs[-1] == (b"Z", b"T")
    raw.send(msg(b"Q", cstr("COMMIT")))
    assert read_until(raw, {b"Z"})[-1] == (b"Z", b"I")


def test_named_statement_reuse_and_close(raw):
    raw.send(parse("named", "SELECT $1::text || '!'", (25,)) + describe(b"S", "named") + SYNC)
    msgs = read_until(raw, {b"Z"})
    assert [t for t, _ in msgs] == [b"1", b"t", b"T", b"Z"]
    for word in (b"one", b"two", b"three"):
        raw.send(bind("", "named", [word]) + execute("") + SYNC)
        assert data_values(read_until(raw, {b"Z"})) == [[word.decode() + "!"]]
    raw.send(close(b"S", "named") + SYNC)
    assert [t for t, _ in read_until(raw, {b"Z"})] == [b"3", b"Z"]
    raw.send(bind("", "named", [b"x"]) + execute("") + SYNC)
    msgs = read_until(raw, {b"Z"})
    assert harness.parse_error_fields(msgs[0][1])["C"] == "26000"  # statement is gone


def test_null_parameter_and_empty_query(raw):
    raw.send(parse("", "SELECT $1::int IS NULL") + bind("", "", [None]) + execute("") + SYNC)
    assert data_values(read_until(raw, {b"Z"})) == [["t"]]
    raw.send(msg(b"Q", cstr("")))
    assert [t for t, _ in read_until(raw, {b"Z"})] == [b"I", b"Z"]
    raw.send(msg(b"Q", cstr(";;")))
    assert [t for t, _ in read_until(raw, {b"Z"})] == [b"I", b"Z"]


def test_sync_only_and_many_syncs(raw):
    raw.send(SYNC * 50)
    for _ in range(50):
        assert raw.read_msg() == (b"Z", b"I")
