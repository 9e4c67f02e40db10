"""psycopg 3 through the proxy: simple protocol (no parameters), extended protocol (with
parameters, text and binary), server-side prepared statements, pipeline mode, server-side
cursors, and transaction status as the client sees it."""

import datetime
import decimal
import uuid

import psycopg
import pytest
from psycopg import pq
from psycopg.types.json import Jsonb


def test_simple_protocol_multi_statement(proxy, connect):
    conn = connect(proxy, autocommit=True)
    cur = conn.execute("CREATE TEMP TABLE t(a int); INSERT INTO t VALUES (1), (2), (3); "
                       "SELECT sum(a) FROM t")
    while cur.nextset():
        pass
    assert cur.fetchone() == (6,)


def test_extended_protocol_parameters_round_trip(proxy, connect):
    conn = connect(proxy, autocommit=True)
    values = (
        42, -(2 ** 62), 3.5, decimal.Decimal("12345678901234567890.123456789"),
        "unicode ✓ ü 漢字 \t tab", None, True, b"\x00\x01\xffbinary\x00",
        datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.timezone.utc),
        datetime.date(1999, 12, 31), uuid.UUID("12345678-1234-5678-1234-567812345678"),
        [1, 2, 3], Jsonb({"k": [1, "v", None]}),
    )
    placeholders = ", ".join(["%s"] * len(values))
    for binary in (False, True):
        cur = conn.cursor(binary=binary)
        cur.execute(f"SELECT {placeholders}", values)
        row = cur.fetchone()
        assert row[:5] == values[:5]
        assert row[5] is None and row[6] is True and bytes(row[7]) == values[7]
        assert row[8] == values[8] and row[9] == values[9] and row[10] == values[10]
        assert row[11] == [1, 2, 3] and row[12] == {"k": [1, "v", None]}


def test_extended_protocol_many_rows(proxy, connect):
    conn = connect(proxy, autocommit=True)
    cur = conn.execute("SELECT g, md5(g::text) FROM generate_series(1, %s) g", (20000,))
    rows = cur.fetchall()
    assert len(rows) == 20000 and rows[-1][0] == 20000


def test_server_side_prepared_statement(proxy, connect):
    conn = connect(proxy, autocommit=True)
    conn.execute("DROP TABLE IF EXISTS pg3_prep")
    conn.execute("CREATE TABLE pg3_prep(id int primary key, v text)")
    for i in range(20):
        conn.execute("INSERT INTO pg3_prep VALUES (%s, %s)", (i, f"v{i}"), prepare=True)
    names = conn.execute("SELECT name, statement FROM pg_prepared_statements").fetchall()
    assert any("INSERT INTO pg3_prep" in stmt for _, stmt in names), names
    for i in range(20):
        assert conn.execute("SELECT v FROM pg3_prep WHERE id = %s", (i,), prepare=True).fetchone() == (f"v{i}",)
    assert conn.execute("SELECT count(*) FROM pg3_prep").fetchone() == (20,)


def test_prepared_statement_survives_errors(proxy, connect):
    conn = connect(proxy)
    for _ in range(3):
        conn.execute("SELECT %s::int", (1,), prepare=True)
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 / %s::int", (0,), prepare=True)
    assert conn.info.transaction_status == pq.TransactionStatus.INERROR
    conn.rollback()
    assert conn.execute("SELECT %s::int", (7,), prepare=True).fetchone() == (7,)


def test_pipeline_mode(proxy, connect):
    conn = connect(proxy, autocommit=True)
    conn.execute("DROP TABLE IF EXISTS pg3_pipe")
    conn.execute("CREATE TABLE pg3_pipe(id int primary key, v text)")
    with conn.pipeline():
        cur = conn.cursor()
        cur.executemany("INSERT INTO pg3_pipe VALUES (%s, %s)", [(i, str(i)) for i in range(1000)])
        results = [conn.execute("SELECT count(*), %s::int FROM pg3_pipe", (k,)) for k in range(50)]
    assert [r.fetchone() for r in results] == [(1000, k) for k in range(50)]


def test_pipeline_error_aborts_until_sync_then_recovers(proxy, connect):
    conn = connect(proxy, autocommit=True)
    conn.execute("DROP TABLE IF EXISTS pg3_pipe_err")
    conn.execute("CREATE TABLE pg3_pipe_err(id int primary key)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        with conn.pipeline() as p:
            conn.execute("INSERT INTO pg3_pipe_err VALUES (%s)", (1,))
            p.sync()
            conn.execute("INSERT INTO pg3_pipe_err VALUES (%s)", (1,))  # fails
            conn.execute("INSERT INTO pg3_pipe_err VALUES (%s)", (2,))  # skipped: aborted
            p.sync()
    with conn.pipeline():
        conn.execute("INSERT INTO pg3_pipe_err VALUES (%s)", (3,))
        cur = conn.execute("SELECT array_agg(id ORDER BY id) FROM pg3_pipe_err")
    assert cur.fetchone() == ([1, 3],)
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE


def test_server_side_cursor(proxy, connect):
    conn = connect(proxy)
    with conn.cursor(name="big") as cur:
        cur.itersize = 500
        cur.execute("SELECT g FROM generate_series(1, 25000) g")
        total = sum(row[0] for row in cur)
    assert total == 25000 * 25001 // 2
    conn.commit()


def test_transaction_status_follows_server(proxy, connect):
    conn = connect(proxy)
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    conn.execute("SELECT 1")
    assert conn.info.transaction_status == pq.TransactionStatus.INTRANS
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM does_not_exist_pg3")
    assert conn.info.transaction_status == pq.TransactionStatus.INERROR
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        conn.execute("SELECT 1")
    conn.rollback()
    assert conn.execute("SELECT 2").fetchone() == (2,)
    conn.commit()
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE


def test_error_fields_are_relayed(proxy, connect):
    conn = connect(proxy, autocommit=True)
    conn.execute("DROP TABLE IF EXISTS pg3_err")
    conn.execute("CREATE TABLE pg3_err(id int CONSTRAINT pg3_err_pos CHECK (id > 0))")
    with pytest.raises(psycopg.errors.CheckViolation) as e:
        conn.execute("INSERT INTO pg3_err VALUES (%s)", (-1,))
    diag = e.value.diag
    assert diag.sqlstate == "23514"
    assert diag.table_name == "pg3_err" and diag.schema_name == "public"
    assert diag.constraint_name == "pg3_err_pos"


def test_parameter_status_changes_reach_client(proxy, connect):
    conn = connect(proxy, autocommit=True)
    assert conn.info.parameter_status("application_name") == "pgvalve-it"
    conn.execute("SET application_name = 'renamed via proxy'")
    assert conn.info.parameter_status("application_name") == "renamed via proxy"
    conn.execute("SET TIME ZONE 'Asia/Kathmandu'")
    assert conn.info.parameter_status("TimeZone") == "Asia/Kathmandu"
    assert conn.execute("SELECT '2024-01-01 00:00:00+00'::timestamptz::text").fetchone() == ("2024-01-01 05:45:00+05:45",)
