"""Cancel through the proxy: a CancelRequest sent to the proxy's port reaches the backend
running pg_sleep(120), which stops with SQLSTATE 57014 "canceling statement due to user
request" (a sleep that ran to its end would answer a row, not that error); the session stays
usable; the other sessions are untouched."""

import signal
import subprocess
import threading

import psycopg
import psycopg2
import psycopg2.errors
import pytest

import harness

SLEEP_S = 120  # only a cancel ends it with an error; run to its end, it answers a row


def wait_active(direct, pid):
    """Blocks until the backend 'pid' is running pg_sleep (seen straight on the server)."""
    harness.wait_for(lambda: direct.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active' AND query LIKE %s",
        (pid, "%pg_sleep%")).fetchone(), 20, what=f"backend {pid} running pg_sleep")


def test_cancel_psycopg3(proxy, connect, direct):
    conn = connect(proxy)
    bystander = connect(proxy)
    bystander.execute("BEGIN")
    bystander.execute("SELECT 1")
    pid = conn.info.backend_pid
    assert pid == conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    t = threading.Thread(target=lambda: (wait_active(direct, pid), conn.cancel()))
    t.start()
    with pytest.raises(psycopg.errors.QueryCanceled) as e:
        conn.execute(f"SELECT pg_sleep({SLEEP_S})")
    t.join()
    assert e.value.sqlstate == "57014"
    assert e.value.diag.message_primary == "canceling statement due to user request"
    conn.rollback()
    assert conn.execute("SELECT 'after cancel'").fetchone() == ("after cancel",)
    # The other session's transaction is intact.
    assert bystander.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert bystander.execute("SELECT 2").fetchone() == (2,)
    bystander.commit()


def test_cancel_psycopg2(proxy, connect, direct):
    conn = connect(proxy, driver="psycopg2")
    conn.autocommit = True
    pid = conn.get_backend_pid()
    t = threading.Thread(target=lambda: (wait_active(direct, pid), conn.cancel()))
    t.start()
    cur = conn.cursor()
    with pytest.raises(psycopg2.errors.QueryCanceled) as e:
        cur.execute(f"SELECT pg_sleep({SLEEP_S})")
    t.join()
    assert e.value.pgcode == "57014"
    assert "canceling statement due to user request" in e.value.pgerror
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)


def test_cancel_psql_ctrl_c(proxy, direct):
    p = subprocess.Popen(["psql", "-X", "-v", "VERBOSITY=verbose", "-c", f"SELECT pg_sleep({SLEEP_S})"],
                         env=proxy.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = harness.wait_for(lambda: direct.execute(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
            "AND application_name = 'psql'", (f"%pg_sleep({SLEEP_S})%",)).fetchone(), 20,
            what="psql's backend running pg_sleep")[0]
        p.send_signal(signal.SIGINT)  # psql sends a CancelRequest
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, (out, err)
    assert "57014" in err and "canceling statement due to user request" in err
    harness.wait_for(lambda: not direct.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (pid,)).fetchone(),
        10, what="canceled backend to go idle")


def test_cancel_in_transaction_leaves_it_failed(proxy, connect, direct):
    conn = connect(proxy)
    conn.execute("SELECT 1")  # opens the transaction
    pid = conn.info.backend_pid
    t = threading.Thread(target=lambda: (wait_active(direct, pid), conn.cancel()))
    t.start()
    with pytest.raises(psycopg.errors.QueryCanceled) as e:
        conn.execute(f"SELECT pg_sleep({SLEEP_S})")
    t.join()
    assert e.value.sqlstate == "57014"
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    conn.rollback()
    assert conn.execute("SELECT 3").fetchone() == (3,)
    conn.rollback()


def test_bogus_cancel_request_is_harmless(proxy, connect):
    conn = connect(proxy, autocommit=True)
    with harness.RawConn(harness.HOST, proxy.port) as raw:
        # CancelRequest: length 16, code 80877102, a pid and key nobody has.
        raw.send(b"\x00\x00\x00\x10\x04\xd2\x16\x2e" + b"\x7f\xff\xff\xfe" + b"\x12\x34\x56\x78")
        # PostgreSQL answers a CancelRequest with nothing but the close, and so does the proxy.
        assert raw.read_until_closed(timeout=10) == []
    assert conn.execute("SELECT pg_sleep(0.2), 'alive'").fetchone()[1] == "alive"
    proxy.assert_healthy()


def test_cancel_when_client_uses_tls(pg, proxy_factory, connect, direct):
    """libpq sends the CancelRequest on a new connection (plain in PostgreSQL 15's libpq): the
    proxy must take it on its TLS-enabled port too."""
    proxy = proxy_factory(pg, {"tls": {"cert_file": pg.server_crt, "key_file": pg.server_key},
                               "upstream": {"sslmode": "require"}})
    conn = connect(proxy, autocommit=True, sslmode="verify-full", sslrootcert=pg.ca_crt,
                   channel_binding="disable")
    assert conn.pgconn.ssl_in_use
    pid = conn.info.backend_pid
    t = threading.Thread(target=lambda: (wait_active(direct, pid), conn.cancel()))
    t.start()
    with pytest.raises(psycopg.errors.QueryCanceled) as e:
        conn.execute(f"SELECT pg_sleep({SLEEP_S})")
    t.join()
    assert e.value.sqlstate == "57014"
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_cancel_many_sessions_across_workers(proxy, connect, direct):
    conns = [connect(proxy, autocommit=True) for _ in range(6)]
    outcomes = [None] * len(conns)

    def run(i):
        try:
            conns[i].execute(f"SELECT pg_sleep({SLEEP_S})")
            outcomes[i] = "finished"
        except psycopg.errors.QueryCanceled as e:
            outcomes[i] = e.sqlstate
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(conns))]
    for t in threads:
        t.start()
    for c in conns:
        wait_active(direct, c.info.backend_pid)
    for c in conns:
        c.cancel()
    for t in threads:
        t.join(120)
    assert outcomes == ["57014"] * len(conns)
    assert [c.execute("SELECT 1").fetchone() for c in conns] == [(1,)] * len(conns)
