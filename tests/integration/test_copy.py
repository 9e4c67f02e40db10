"""COPY through the proxy: several MB in and back out unchanged (checksums), binary format,
a COPY that fails on bad data, and a COPY the client aborts — the session stays usable."""

import functools
import hashlib
import random

import psycopg
import pytest

ROWS = 120_000  # about 8 MB of text


@functools.lru_cache(maxsize=None)
def make_rows(seed=1):
    """Canonical COPY text: COPY TO gives back exactly these bytes."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzÄÖÜ€ 0123456789"
    out = []
    for i in range(ROWS):
        word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        note = "\\N" if i % 17 == 0 else f"{rng.randint(-10**9, 10**9)}"
        out.append(f"{i}\t{word}\t{note}\n")
    return "".join(out).encode()


@pytest.fixture
def table(proxy, connect):
    conn = connect(proxy, autocommit=True)
    conn.execute("DROP TABLE IF EXISTS copy_t, copy_t2")
    conn.execute("CREATE TABLE copy_t(id int primary key, word text, note bigint)")
    conn.execute("CREATE TABLE copy_t2(LIKE copy_t)")
    return conn


def test_copy_in_and_out_round_trip(table):
    conn = table
    data = make_rows()
    assert len(data) > 4_000_000
    with conn.cursor().copy("COPY copy_t FROM STDIN") as copy:
        for off in range(0, len(data), 65536):  # chunks that split rows anywhere
            copy.write(data[off:off + 65536])
    assert conn.execute("SELECT count(*) FROM copy_t").fetchone() == (ROWS,)
    out = bytearray()
    with conn.cursor().copy("COPY (SELECT * FROM copy_t ORDER BY id) TO STDOUT") as copy:
        for chunk in copy:
            out += chunk
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(data).hexdigest()
    # The server saw the same bytes too.
    server_md5 = conn.execute(
        "SELECT md5(string_agg(id || E'\\t' || word || E'\\t' || coalesce(note::text, '\\N'), E'\\n' ORDER BY id) || E'\\n') FROM copy_t"
    ).fetchone()[0]
    assert server_md5 == hashlib.md5(data).hexdigest()


def test_binary_copy_between_tables(table):
    conn = table
    conn.execute("INSERT INTO copy_t SELECT g, md5(g::text), g * 7 FROM generate_series(1, 100000) g")
    blob = bytearray()
    with conn.cursor().copy("COPY copy_t TO STDOUT (FORMAT binary)") as copy:
        for chunk in copy:
            blob += chunk
    assert len(blob) > 3_000_000
    with conn.cursor().copy("COPY copy_t2 FROM STDIN (FORMAT binary)") as copy:
        copy.write(bytes(blob))
    digests = conn.execute(
        "SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM copy_t t), "
        "(SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM copy_t2 t)").fetchone()
    assert digests[0] == digests[1]


def test_copy_with_bad_row_fails_and_session_recovers(table):
    conn = table
    good = make_rows()
    good = good[:good.index(b"\n", 200_000) + 1]
    data = good + b"not-a-number\tx\t1\n" + b"99999999\tafter\t1\n"
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        with conn.cursor().copy("COPY copy_t FROM STDIN") as copy:
            copy.write(data)
    assert conn.execute("SELECT count(*) FROM copy_t").fetchone() == (0,)
    assert conn.execute("SELECT 'still usable'").fetchone() == ("still usable",)


def test_copy_aborted_by_client_and_session_recovers(table):
    conn = table

    class Stop(Exception):
        pass

    # psycopg turns the exception into CopyFail; the server answers 57014 naming it.
    with pytest.raises(psycopg.errors.QueryCanceled, match="COPY from stdin failed"):
        with conn.cursor().copy("COPY copy_t FROM STDIN") as copy:
            copy.write(make_rows()[:100_000])  # ends mid-row: CopyFail must still win
            raise Stop()
    assert conn.execute("SELECT count(*) FROM copy_t").fetchone() == (0,)
    with conn.cursor().copy("COPY copy_t FROM STDIN") as copy:
        copy.write(b"1\tone\t1\n2\ttwo\t\\N\n")
    assert conn.execute("SELECT count(*) FROM copy_t").fetchone() == (2,)


def test_copy_inside_transaction_with_other_statements(proxy, connect, table):
    conn = connect(proxy)
    with conn.transaction():
        conn.execute("INSERT INTO copy_t VALUES (-1, 'before', 0)")
        with conn.cursor().copy("COPY copy_t (id, word) FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((i, f"w{i}"))
        conn.execute("UPDATE copy_t SET note = id WHERE id >= 0")
    assert conn.execute("SELECT count(*), sum(note) FROM copy_t").fetchone() == (1001, sum(range(1000)))
    conn.commit()
