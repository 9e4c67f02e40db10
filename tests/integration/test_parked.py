"""Sessions parked by a hold, from the client's side (docs/architecture.md: holds): a client
that disconnects while parked (Terminate, close, reset, half-close, TLS with or without
close_notify, psql killed) is gone from /status and /metrics at once, while the hold is still
in force, and the unit it never got an answer for never runs; the other parked sessions are
unaffected. A CancelRequest for a parked session is answered as PostgreSQL answers a cancelled
statement (57014) and its unit never runs; the session stays usable. 200 parked sessions all
resume, in the order they arrived, and complete; a configuration reload (SIGHUP) keeps the
hold and its parked sessions; held names follow PostgreSQL's case folding.

Real clients only: psycopg, psql, the raw protocol client. Sanitizer reports in the proxy's
stderr fail every test at teardown (conftest.py)."""

import signal
import socket
import struct
import subprocess

import psycopg.errors
import pytest

import harness
import holds
from holds import (admin, assert_ok, assert_rejected, bind_msg, errors_in, execute_msg, hold,  # noqa: E402
                   make_table, parked_count, parse_msg, q, read_until_ready, received_nothing, release,
                   raw_conns, rows, send_all, session_of, types, wait_parked)


pool = holds.pool  # the thread pool fixture test_holds.py and test_parked.py share


@pytest.fixture
def raw(proxy):
    """raw(p=proxy, user=superuser) -> an authenticated RawConn, closed at teardown."""
    yield from raw_conns(proxy, timeout=30)


def backend_gone(direct, pid):
    return not direct.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()


def listed_pids(proxy):
    return {s["backend_pid"] for s in proxy.status()["sessions"]}


def park_two(proxy, raw, direct, table, hold_id):
    """Makes `table`, holds it as `hold_id` and parks two raw sessions on it, an INSERT of 1
    then one of 2, the second sent once the first is parked; returns the sessions in order."""
    make_table(direct, table)
    first, second = raw(), raw()
    hold(proxy, [table], id=hold_id)
    q(first, f"INSERT INTO {table} VALUES (1)")
    wait_parked(proxy, 1)
    q(second, f"INSERT INTO {table} VALUES (2)")
    wait_parked(proxy, 2)
    return first, second


# --------------------------------------------------------------------------- disconnect

def assert_departed(proxy, direct, pid, table, staying_pid, hold_id):
    """The departed client (backend `pid`) is gone while hold `hold_id` is still in force: not
    in /status, not counted in /status, /metrics or the hold; its backend ended; nothing of
    its unit ran; the session `staying_pid` is still parked."""
    harness.wait_for(lambda: pid not in listed_pids(proxy), 30, what="the departed client to leave /status")
    status, doc = admin(proxy, "GET", "/holds")
    assert status == 200 and [h["id"] for h in doc["holds"]] == [hold_id], doc
    st = proxy.status()
    assert st["clients"]["total"] == 1 and st["clients"]["parked"] == 1, st["clients"]
    assert session_of(proxy, staying_pid)["state"] == "parked"
    assert proxy.metrics()["pgvalve_parked"] == 1
    harness.wait_for(lambda: backend_gone(direct, pid), 30, what="the departed client's backend to end")
    assert rows(direct, f"SELECT v FROM {table}") == []


def finish_staying(proxy, direct, staying, table, hold_id):
    """Releases the hold: the other parked INSERT runs, alone; the session stays usable."""
    release(proxy, hold_id)
    assert_ok(read_until_ready(staying), "the other parked INSERT after release")
    assert rows(direct, f"SELECT v FROM {table}") == [(2,)], "the departed client's INSERT ran"
    q(staying, "SELECT 1")
    assert_ok(read_until_ready(staying), "the other session after release")
    st = proxy.status()
    assert st["clients"]["total"] == 1 and st["clients"]["parked"] == 0, st["clients"]
    assert proxy.metrics()["pgvalve_parked"] == 0
    proxy.assert_healthy()


@pytest.mark.parametrize("how", ["terminate", "close", "reset", "half_close"])
def test_client_disconnecting_while_parked(proxy, raw, direct, how):
    """A parked client goes away: Terminate then close, a plain close, a TCP reset, or a
    half-close (shutdown of its sending side; the protocol has no half-close, so that is
    leaving too). It is gone at once, while the hold is still in force; the INSERT it sent
    and never got an answer for does not run, then or at release; the other parked session
    completes as if nothing happened."""
    leaving, staying = park_two(proxy, raw, direct, "pk_gone", "gone")
    pid = leaving.backend_pid

    if how == "terminate":
        leaving.terminate()
    elif how == "close":
        leaving.close()
    elif how == "reset":
        leaving.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        leaving.close()
    else:
        leaving.sock.shutdown(socket.SHUT_WR)
        assert leaving.read_until_closed(timeout=30) == [], "a half-closed parked client got an answer"
    assert_departed(proxy, direct, pid, "pk_gone", staying.backend_pid, "gone")
    finish_staying(proxy, direct, staying, "pk_gone", "gone")


@pytest.fixture
def tls_proxy(pg, proxy_factory):
    return proxy_factory(pg, {"tls": {"cert_file": pg.server_crt, "key_file": pg.server_key}})


@pytest.mark.parametrize("close_notify", [True, False])
def test_tls_client_disconnecting_while_parked(tls_proxy, direct, close_notify):
    """The same over TLS: a parked client that sends close_notify and closes, or just closes
    the socket, is gone at once and its INSERT never runs."""
    make_table(direct, "pk_gone_tls")
    leaving = tls_proxy.raw(timeout=30)
    staying = tls_proxy.raw(timeout=30)
    try:
        for c in (leaving, staying):
            assert c.starttls() == b"S"
            c.startup(harness.SUPERUSER)
        hold(tls_proxy, ["pk_gone_tls"], id="gone-tls")
        q(leaving, "INSERT INTO pk_gone_tls VALUES (1)")
        wait_parked(tls_proxy, 1)
        q(staying, "INSERT INTO pk_gone_tls VALUES (2)")
        wait_parked(tls_proxy, 2)
        pid = leaving.backend_pid
        if close_notify:
            leaving.sock = leaving.sock.unwrap()   # sends close_notify
        leaving.close()
        assert_departed(tls_proxy, direct, pid, "pk_gone_tls", staying.backend_pid, "gone-tls")
        finish_staying(tls_proxy, direct, staying, "pk_gone_tls", "gone-tls")
    finally:
        leaving.close()
        staying.close()


def test_psql_killed_while_parked(proxy, direct):
    """psql waiting on a parked INSERT is killed (SIGKILL: no Terminate, the kernel closes the
    socket): the session is gone at once, while the hold lasts, and its INSERT never runs."""
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
    harness.wait_for(lambda: proxy.status()["clients"]["total"] == 0, 30, what="the killed psql to leave /status")
    assert parked_count(proxy) == 0 and proxy.metrics()["pgvalve_parked"] == 0
    harness.wait_for(lambda: backend_gone(direct, pid), 30, what="the killed psql's backend to end")
    release(proxy, "psql")
    assert rows(direct, "SELECT v FROM pk_psql") == []
    proxy.assert_healthy()


# --------------------------------------------------------------------------- cancel

CANCELED = "canceling statement due to user request"


def wait_cancel_answered(proxy, pid, mark):
    harness.wait_for(lambda: any(f"cancel request for backend_pid={pid}: its unit of work was parked" in line
                                 for line in proxy.log_lines()[mark:]), 30,
                     what="the proxy to cancel the parked unit")
    assert not any(f"cancel request for backend_pid={pid} forwarded" in line for line in proxy.log_lines()[mark:])


def test_cancel_while_parked(proxy, connect, direct, pool):
    """psycopg cancels an INSERT that is parked. The INSERT fails at once with 57014
    "canceling statement due to user request", as PostgreSQL fails a cancelled statement,
    while the hold is still in force; it never runs, not even after release; the cancel is
    not forwarded to the backend; the session is usable afterwards."""
    make_table(direct, "pk_cancel")
    conn = connect(proxy, autocommit=True)
    pid = conn.info.backend_pid
    hold(proxy, ["pk_cancel"], id="cancel")
    fut = pool.submit(lambda: conn.execute("INSERT INTO pk_cancel VALUES (%s)", (1,)).rowcount)
    wait_parked(proxy, 1)
    mark = len(proxy.log_lines())
    conn.cancel()
    with pytest.raises(psycopg.errors.QueryCanceled) as e:
        fut.result(timeout=30)
    assert e.value.sqlstate == "57014" and e.value.diag.message_primary == CANCELED, e.value
    wait_cancel_answered(proxy, pid, mark)
    assert parked_count(proxy) == 0 and session_of(proxy, pid)["state"] == "idle"
    status, doc = admin(proxy, "GET", "/holds")
    assert status == 200 and [h["id"] for h in doc["holds"]] == ["cancel"], doc
    assert conn.execute("SELECT 'after'").fetchone() == ("after",)

    release(proxy, "cancel")
    assert rows(direct, "SELECT v FROM pk_cancel") == []
    assert conn.execute("INSERT INTO pk_cancel VALUES (2)").rowcount == 1
    assert rows(direct, "SELECT v FROM pk_cancel") == [(2,)]


def test_cancel_of_parked_extended_unit(proxy, raw, direct):
    """An extended-protocol unit (Parse, Bind, Execute, Sync) parked and cancelled: 57014 and
    one ReadyForQuery, nothing of it reaches the server, and the next unit runs."""
    make_table(direct, "pk_cancel_ext")
    r = raw()
    hold(proxy, ["pk_cancel_ext"], id="cancel-ext")
    send_all(r, parse_msg("", "INSERT INTO pk_cancel_ext VALUES (1)"), bind_msg("", ""), execute_msg(),
             (b"S", b""))
    wait_parked(proxy, 1)
    mark = len(proxy.log_lines())
    with harness.RawConn(harness.HOST, proxy.port) as c:
        c.send(struct.pack("!IIII", 16, 80877102, r.backend_pid, r.backend_key))
        assert c.read_until_closed(timeout=30) == []
    msgs = read_until_ready(r, timeout=30)
    assert types(msgs) == "EZ", msgs
    [err] = errors_in(msgs)
    assert (err.get("S"), err.get("C"), err.get("M")) == ("ERROR", "57014", CANCELED), err
    assert msgs[-1] == (b"Z", b"I")
    wait_cancel_answered(proxy, r.backend_pid, mark)
    assert parked_count(proxy) == 0
    release(proxy, "cancel-ext")
    assert rows(direct, "SELECT v FROM pk_cancel_ext") == []
    q(r, "INSERT INTO pk_cancel_ext VALUES (2)")
    assert_ok(read_until_ready(r), "the next unit after a cancelled one")
    assert rows(direct, "SELECT v FROM pk_cancel_ext") == [(2,)]


def test_cancel_of_one_parked_session_leaves_the_others(proxy, raw, direct):
    """Of two parked sessions, the one cancelled gets 57014; the other stays parked, gets
    nothing, and runs at release."""
    cancelled, other = park_two(proxy, raw, direct, "pk_cancel_two", "cancel-two")
    with harness.RawConn(harness.HOST, proxy.port) as c:
        c.send(struct.pack("!IIII", 16, 80877102, cancelled.backend_pid, cancelled.backend_key))
        assert c.read_until_closed(timeout=30) == []
    msgs = read_until_ready(cancelled, timeout=30)
    assert [e.get("C") for e in errors_in(msgs)] == ["57014"] and msgs[-1] == (b"Z", b"I"), msgs
    wait_parked(proxy, 1)
    assert session_of(proxy, other.backend_pid)["state"] == "parked" and received_nothing(other)
    release(proxy, "cancel-two")
    assert_ok(read_until_ready(other), "the other parked INSERT after release")
    assert rows(direct, "SELECT v FROM pk_cancel_two") == [(2,)]


def test_ctrl_c_in_psql_while_parked(proxy, direct):
    """psql's Ctrl-C on a parked INSERT: psql reports the cancel at once (57014), while the
    hold is still in force, and the INSERT never runs."""
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
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    wait_cancel_answered(proxy, pid, mark)
    assert err.startswith("Cancel request sent\n"), (out, err)
    assert p.returncode == 1, (out, err)
    assert "57014" in err and CANCELED in err, (out, err)
    assert out.strip() == "", (out, err)
    status, doc = admin(proxy, "GET", "/holds")
    assert status == 200 and [h["id"] for h in doc["holds"]] == ["ctrlc"], doc
    release(proxy, "ctrlc")
    assert rows(direct, "SELECT v FROM pk_ctrlc") == []
    proxy.assert_healthy()


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
