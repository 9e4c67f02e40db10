"""Sessions parked by a hold, from the client's side (docs/architecture.md: holds): a client
that disconnects while parked is gone from /status and /metrics once the hold is released
(what it sent before leaving runs, as PostgreSQL would run it) and the others resume;
a CancelRequest for a parked session leaves its unit parked while the hold lasts (its
backend is idle) and the unit then runs or is cancelled, exactly once; 200 parked
sessions all resume, in the order they arrived, and complete; a configuration reload
(SIGHUP) keeps the hold and its parked sessions; held names follow PostgreSQL's case folding.

Real clients only: psycopg, psql, the raw protocol client. Sanitizer reports in the proxy's
stderr fail every test at teardown (conftest.py)."""

import concurrent.futures
import signal
import socket
import struct
import subprocess

import psycopg.errors
import pytest

import harness
from holds import (admin, assert_ok, assert_rejected, hold, make_table, parked_count, q,  # noqa: E402
                   read_until_ready, received_nothing, release, rows, session_of, wait_parked)


@pytest.fixture
def raw(proxy):
    """raw(p=proxy, user=superuser) -> an authenticated RawConn, closed at teardown."""
    conns = []

    def _raw(p=None, user=harness.SUPERUSER):
        r = (p or proxy).raw(timeout=30)
        conns.append(r)
        r.startup(user)
        return r
    yield _raw
    for r in conns:
        r.close()


@pytest.fixture
def pool():
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    yield ex
    ex.shutdown(wait=False, cancel_futures=True)


def backend_gone(direct, pid):
    return not direct.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()


def listed_pids(proxy):
    return {s["backend_pid"] for s in proxy.status()["sessions"]}


# --------------------------------------------------------------------------- disconnect

@pytest.mark.parametrize("how", ["terminate", "reset"])
def test_client_disconnecting_while_parked(proxy, raw, direct, how):
    """A parked client goes away (Terminate then close, or a TCP reset without a word). The
    proxy reads nothing from a parked client, so it learns of the departure at release. Then
    what the client sent before leaving runs, as PostgreSQL runs a query whose client has
    gone; the departed client is gone from /status and /metrics, its backend ends, and the
    other parked session completes as if nothing happened."""
    make_table(direct, "pk_gone")
    leaving, staying = raw(), raw()
    hold(proxy, ["pk_gone"], id="gone")
    q(leaving, "INSERT INTO pk_gone VALUES (1)")
    wait_parked(proxy, 1)
    q(staying, "INSERT INTO pk_gone VALUES (2)")
    wait_parked(proxy, 2)
    pid = leaving.backend_pid

    if how == "terminate":
        leaving.terminate()
    else:
        leaving.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        leaving.close()
    assert rows(direct, "SELECT v FROM pk_gone") == []

    release(proxy, "gone")
    assert_ok(read_until_ready(staying), "the other parked INSERT after release")
    harness.wait_for(lambda: pid not in listed_pids(proxy), 30, what="the departed client to leave /status")
    harness.wait_for(lambda: backend_gone(direct, pid), 30, what="the departed client's backend to end")
    st = proxy.status()
    assert st["clients"]["total"] == 1 and st["clients"]["parked"] == 0, st["clients"]
    assert proxy.metrics()["pgvalve_parked"] == 0
    assert sorted(rows(direct, "SELECT v FROM pk_gone")) == [(1,), (2,)]
    q(staying, "SELECT 1")
    assert_ok(read_until_ready(staying), "the other session after release")
    proxy.assert_healthy()


def test_psql_killed_while_parked(proxy, direct):
    """psql waiting on a parked INSERT is killed (SIGKILL: no Terminate, the kernel closes the
    socket): at release its INSERT runs, the session is gone, the proxy stays healthy."""
    make_table(direct, "pk_psql")
    hold(proxy, ["pk_psql"], id="psql")
    p = subprocess.Popen(["psql", "-X", "-c", "INSERT INTO pk_psql VALUES (1)"], env=proxy.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_parked(proxy, 1)
        pid = proxy.status()["sessions"][0]["backend_pid"]
        p.kill()
        p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    release(proxy, "psql")
    harness.wait_for(lambda: proxy.status()["clients"]["total"] == 0, 30, what="the killed psql to leave /status")
    harness.wait_for(lambda: backend_gone(direct, pid), 30, what="the killed psql's backend to end")
    assert parked_count(proxy) == 0
    assert rows(direct, "SELECT v FROM pk_psql") == [(1,)]
    proxy.assert_healthy()


# --------------------------------------------------------------------------- cancel

def cancel_outcome(direct, table, value, ran, canceled):
    """What a cancelled parked unit became, checked: exactly one of "ran" (its row is there)
    and "canceled" (57014 "canceling statement due to user request", no row)."""
    present = rows(direct, f"SELECT v FROM {table}") == [(value,)]
    assert ran != canceled, (ran, canceled)
    if ran:
        assert present, f"{table}: the unit said it ran, its row is not there"
        return "ran"
    assert rows(direct, f"SELECT v FROM {table}") == [], f"{table}: cancelled, yet its row is there"
    return "canceled"


def test_cancel_while_parked(proxy, connect, direct, pool):
    """psycopg cancels an INSERT that is parked. The proxy forwards the CancelRequest to the
    session's backend, which is idle (the INSERT never reached it): nothing happens while the
    hold lasts, the INSERT stays parked and is sent nothing. After release the INSERT either
    runs (the cancel reached the idle backend, which ignores it, as PostgreSQL does between
    statements) or fails with 57014 (the cancel, on its way, met the INSERT running): either
    way exactly once, and the session stays usable."""
    make_table(direct, "pk_cancel")
    conn = connect(proxy, autocommit=True)
    pid = conn.info.backend_pid
    hold(proxy, ["pk_cancel"], id="cancel")
    fut = pool.submit(lambda: conn.execute("INSERT INTO pk_cancel VALUES (%s)", (1,)).rowcount)
    wait_parked(proxy, 1)
    mark = len(proxy.log_lines())
    conn.cancel()
    harness.wait_for(lambda: any(f"cancel request for backend_pid={pid} forwarded" in line
                                 for line in proxy.log_lines()[mark:]), 30, what="the cancel to be forwarded")
    assert direct.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == ("idle",)
    assert parked_count(proxy) == 1 and session_of(proxy, pid)["state"] == "parked"
    assert not fut.done()
    assert rows(direct, "SELECT v FROM pk_cancel") == []

    release(proxy, "cancel")
    try:
        ran, canceled = fut.result(timeout=30) == 1, False
    except psycopg.errors.QueryCanceled as e:
        assert e.diag.message_primary == "canceling statement due to user request", e
        ran, canceled = False, True
    cancel_outcome(direct, "pk_cancel", 1, ran, canceled)
    assert conn.execute("SELECT 'after'").fetchone() == ("after",)
    assert conn.execute("INSERT INTO pk_cancel VALUES (2)").rowcount == 1


def test_ctrl_c_in_psql_while_parked(proxy, direct):
    """psql's Ctrl-C on a parked INSERT: as any cancel of a parked unit, nothing happens
    until release; then the INSERT either runs or is cancelled (57014), exactly once, and
    psql says which."""
    make_table(direct, "pk_ctrlc")
    hold(proxy, ["pk_ctrlc"], id="ctrlc")
    p = subprocess.Popen(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
                          "-c", "INSERT INTO pk_ctrlc VALUES (7)"],
                         env=proxy.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_parked(proxy, 1)
        pid = proxy.status()["sessions"][0]["backend_pid"]
        mark = len(proxy.log_lines())
        p.send_signal(signal.SIGINT)   # psql sends a CancelRequest
        harness.wait_for(lambda: any(f"cancel request for backend_pid={pid} forwarded" in line
                                     for line in proxy.log_lines()[mark:]), 30,
                         what="psql's cancel to be forwarded")
        assert parked_count(proxy) == 1 and p.poll() is None
        assert rows(direct, "SELECT v FROM pk_ctrlc") == []
        release(proxy, "ctrlc")
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # psql says it sent a cancel, and reports a command during which Ctrl-C was pressed with
    # exit status 1 whatever the server answered.
    assert err.startswith("Cancel request sent\n"), (out, err)
    assert p.returncode == 1, (out, err)
    ran = out.strip() == "INSERT 0 1"
    canceled = "57014" in err and "canceling statement due to user request" in err
    cancel_outcome(direct, "pk_ctrlc", 7, ran, canceled)


# --------------------------------------------------------------------------- reload

def test_sighup_keeps_the_hold_and_its_parked_sessions(proxy, raw, direct):
    """A configuration reload while a hold is in force: the hold stays (GET /holds), the
    parked session stays parked and is sent nothing, new work on the table is still parked
    after the reload, and the release lets both through."""
    make_table(direct, "pk_hup")
    first, second = raw(), raw()
    hold(proxy, ["pk_hup"], id="hup")
    q(first, "INSERT INTO pk_hup VALUES (1)")
    wait_parked(proxy, 1)

    before = sum("configuration reloaded" in line for line in proxy.log_lines())
    proxy.update_config({"log": {"level": "debug"}, "limits": {"max_message_bytes": 2 * 1024 * 1024}})
    proxy.signal(signal.SIGHUP)
    harness.wait_for(lambda: sum("configuration reloaded" in line for line in proxy.log_lines()) > before,
                     30, what="the reload")
    status, doc = admin(proxy, "GET", "/holds")
    assert status == 200 and [h["id"] for h in doc["holds"]] == ["hup"], doc
    assert session_of(proxy, first.backend_pid)["state"] == "parked"
    assert received_nothing(first)
    # The reloaded workers still hold the table.
    q(second, "INSERT INTO pk_hup VALUES (2)")
    wait_parked(proxy, 2)
    assert rows(direct, "SELECT v FROM pk_hup") == []

    release(proxy, "hup")
    assert_ok(read_until_ready(first), "first parked INSERT after reload and release")
    assert_ok(read_until_ready(second), "second parked INSERT after reload and release")
    assert sorted(rows(direct, "SELECT v FROM pk_hup")) == [(1,), (2,)]
    assert parked_count(proxy) == 0


# --------------------------------------------------------------------------- names

@pytest.fixture
def mixed_case(direct):
    direct.execute('DROP TABLE IF EXISTS "Orders", orders')
    direct.execute('CREATE TABLE "Orders" (v int)')
    direct.execute("CREATE TABLE orders (v int)")


# Names in a hold are catalog names (what pg_class.relname says): "Orders" is the table
# created as "Orders"; orders is the one created as orders, ORDERS or "orders".
@pytest.mark.parametrize("held, sql, matches", [
    ("Orders", 'INSERT INTO "Orders" VALUES (1)', True),
    ("Orders", 'INSERT INTO public."Orders" VALUES (1)', True),
    ("Orders", "INSERT INTO orders VALUES (1)", False),
    ("Orders", "INSERT INTO Orders VALUES (1)", False),      # unquoted folds to orders
    ("Orders", "INSERT INTO ORDERS VALUES (1)", False),
    ("orders", "INSERT INTO orders VALUES (1)", True),
    ("orders", "INSERT INTO Orders VALUES (1)", True),
    ("orders", "INSERT INTO ORDERS VALUES (1)", True),
    ("orders", 'INSERT INTO "orders" VALUES (1)', True),
    ("orders", 'INSERT INTO "Orders" VALUES (1)', False),
    ("public.Orders", 'INSERT INTO PUBLIC."Orders" VALUES (1)', True),
    ("public.Orders", "INSERT INTO public.orders VALUES (1)", False),
    ("public.orders", "UPDATE Public.Orders SET v = 2", True),
])
def test_held_names_follow_case_folding(proxy, raw, direct, mixed_case, held, sql, matches):
    r = raw()
    hold(proxy, [held], policy="reject", id="case")
    q(r, sql)
    msgs = read_until_ready(r, timeout=30)
    if matches:
        assert_rejected(msgs, held.split(".")[-1], f"hold {held!r}, {sql!r}")
    else:
        assert_ok(msgs, f"hold {held!r}, {sql!r}")
    release(proxy, "case")


def test_held_mixed_case_name_parks_and_resumes(proxy, raw, direct, mixed_case):
    """The queue policy on "Orders": INSERT INTO "Orders" is parked while INSERT INTO orders
    runs at once; the release lets the parked one through."""
    quoted, plain = raw(), raw()
    hold(proxy, ["Orders"], id="case-q")
    q(quoted, 'INSERT INTO "Orders" VALUES (1)')
    wait_parked(proxy, 1)
    q(plain, "INSERT INTO orders VALUES (2)")
    assert_ok(read_until_ready(plain, timeout=30), "INSERT INTO orders during a hold on \"Orders\"")
    assert session_of(proxy, quoted.backend_pid)["parked_on"] == "case-q"
    assert rows(direct, 'SELECT v FROM "Orders"') == [] and rows(direct, "SELECT v FROM orders") == [(2,)]
    release(proxy, "case-q")
    assert_ok(read_until_ready(quoted), 'INSERT INTO "Orders" after release')
    assert rows(direct, 'SELECT v FROM "Orders"') == [(1,)]


# --------------------------------------------------------------------------- many
# (last in the file: ctest runs pytest -x, so a failure here does not hide the tests above)

MANY = 200


def test_many_parked_sessions_resume_in_arrival_order(pg, proxy_factory, direct):
    """200 sessions on two workers park one INSERT each, one after another; the release lets
    every one through, in the order they arrived (read from the bytes the proxy sent
    upstream, stamped by the kernel), and each completes."""
    make_table(direct, "pk_many", "id bigserial PRIMARY KEY, who text")
    direct.execute("GRANT ALL ON pk_many, pk_many_id_seq TO PUBLIC")
    recorder = harness.UpstreamRecorder(pg.port)
    p = proxy_factory(pg, overrides={"workers": 2, "upstream": {"port": recorder.port}})
    conns = []
    try:
        for _ in range(MANY):
            c = p.raw(timeout=60)
            conns.append(c)
            c.startup("trust_user")
        hold(p, ["pk_many"], id="many")
        for i, c in enumerate(conns, 1):
            q(c, f"INSERT INTO pk_many (who) VALUES ('many:{i:03d}')")
            wait_parked(p, i, timeout=30)
        st = p.status()
        assert st["clients"]["parked"] == MANY
        assert {s["worker"] for s in st["sessions"]} == {0, 1}, "sessions not spread over both workers"
        worker_of_pid = {s["backend_pid"]: s["worker"] for s in st["sessions"]}
        worker = {i: worker_of_pid[c.backend_pid] for i, c in enumerate(conns, 1)}
        assert rows(direct, "SELECT count(*) FROM pk_many") == [(0,)]
        assert all(received_nothing(c, 0.01) for c in conns)

        release(p, "many")
        for i, c in enumerate(conns, 1):
            assert_ok(read_until_ready(c, timeout=60), f"parked INSERT {i} after release")
        assert rows(direct, "SELECT count(*), count(DISTINCT who) FROM pk_many") == [(MANY, MANY)]
        wait_parked(p, 0)
        stamps = {i: recorder.stamp_of(f"'many:{i:03d}'".encode()) for i in range(1, MANY + 1)}
        order = sorted(stamps, key=stamps.get)
        out_of_place = [(pos, n, worker[n]) for pos, n in enumerate(order, 1) if pos != n]
        assert not out_of_place, (f"{len(out_of_place)} of {MANY} went upstream out of arrival order; "
                                  f"(position, arrival, worker) first ones: {out_of_place[:10]}")
    finally:
        for c in conns:
            c.close()
        recorder.close()
