"""psycopg2 through the proxy: simple queries with client-side parameters, batches, SQL-level
PREPARE/EXECUTE, named (server-side) cursors, transactions, error codes, and large objects
(libpq's lo_* calls use the FunctionCall message)."""

import hashlib
import os

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import pytest


def test_simple_query_with_parameters(proxy, connect):
    conn = connect(proxy, driver="psycopg2")
    cur = conn.cursor()
    cur.execute("SELECT %s + %s, %s, %s", (1, 2, "quote ' and \\ backslash", None))
    assert cur.fetchone() == (3, "quote ' and \\ backslash", None)
    conn.commit()


def test_batch_insert_and_transaction(proxy, connect):
    conn = connect(proxy, driver="psycopg2")
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS pg2_batch; CREATE TABLE pg2_batch(id int primary key, v text)")
    conn.commit()
    psycopg2.extras.execute_values(cur, "INSERT INTO pg2_batch VALUES %s",
                                   [(i, f"row {i}") for i in range(5000)], page_size=1000)
    cur.executemany("UPDATE pg2_batch SET v = %s WHERE id = %s", [("x", i) for i in range(100)])
    conn.rollback()
    cur.execute("SELECT count(*) FROM pg2_batch")
    assert cur.fetchone() == (0,)
    psycopg2.extras.execute_values(cur, "INSERT INTO pg2_batch VALUES %s",
                                   [(i, f"row {i}") for i in range(5000)], page_size=1000)
    conn.commit()
    cur.execute("SELECT count(*), sum(id) FROM pg2_batch")
    assert cur.fetchone() == (5000, sum(range(5000)))
    conn.commit()


def test_sql_level_prepare_execute(proxy, connect):
    conn = connect(proxy, driver="psycopg2")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("PREPARE pg2_plan(int) AS SELECT $1 * 10")
    for i in range(10):
        cur.execute("EXECUTE pg2_plan(%s)", (i,))
        assert cur.fetchone() == (i * 10,)
    cur.execute("SELECT name FROM pg_prepared_statements")
    assert ("pg2_plan",) in cur.fetchall()
    cur.execute("DEALLOCATE pg2_plan")


def test_named_cursor(proxy, connect):
    conn = connect(proxy, driver="psycopg2")
    cur = conn.cursor(name="pg2_named")
    cur.itersize = 1000
    cur.execute("SELECT g, repeat('y', 50) FROM generate_series(1, 30000) g")
    count = total = 0
    for g, _ in cur:
        count += 1
        total += g
    assert (count, total) == (30000, 30000 * 30001 // 2)
    cur.close()
    conn.commit()


def test_error_codes_and_recovery(proxy, connect):
    conn = connect(proxy, driver="psycopg2")
    cur = conn.cursor()
    with pytest.raises(psycopg2.errors.UndefinedColumn) as e:
        cur.execute("SELECT no_such_column FROM pg_class")
    assert e.value.pgcode == "42703"
    assert conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR
    conn.rollback()
    cur.execute("SELECT 'ok'")
    assert cur.fetchone() == ("ok",)
    conn.commit()


def test_large_object_function_calls(proxy, connect):
    conn = connect(proxy, driver="psycopg2")
    data = os.urandom(3 * 1024 * 1024 + 17)
    lob = conn.lobject(0, "wb")
    lob.write(data)
    oid = lob.oid
    lob.close()
    conn.commit()
    lob = conn.lobject(oid, "rb")
    back = lob.read()
    lob.close()
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
    conn.lobject(oid).unlink()
    conn.commit()
