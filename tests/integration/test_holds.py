"""Table-aware holds (docs/architecture.md, holds and the admin API): the admin API (POST/GET/DELETE /holds,
renew, 400/404/409), parking (queue) and 55P03 rejection (reject) of a session's next unit
of work in the simple and the extended protocol, what `writes` and `all` mode hold, name
matching, sessions inside a transaction running on, overlapping holds, release in arrival
order, lease and max_wait expiry, COPY FROM and data-modifying CTEs, /status and /metrics
while parked, and SIGTERM with a parked session.

"Parked" is never judged by a clock: a parked unit is seen in /status (clients.parked,
sessions[].state == "parked"), its row is absent when read straight from PostgreSQL and its
client has received nothing; after release the same unit completes. Leases are judged by
events too: a hold whose lease ran out is gone without a DELETE, and a renewed hold outlives a
hold made after it with the lease it had before the renewal."""

import contextlib
import signal
import struct

import psycopg
import psycopg.errors
import pytest

import harness
import holds

from holds import (LONG_MS, admin, assert_ok, assert_rejected, bind_msg, errors_in, execute_msg,  # noqa: E402
                   hold, make_table, parse_msg, parked_count, q, read_until_ready, received_nothing,
                   raw_conns, release, rows, send_all, session_of, types, wait_parked)


# --------------------------------------------------------------------------- fixtures

pool = holds.pool  # the thread pool fixture test_holds.py and test_parked.py share


@pytest.fixture
def raw(proxy, proxy_factory):
    """raw(p=proxy) -> an authenticated RawConn through the proxy, closed at teardown (before the
    proxies proxy_factory made stop)."""
    yield from raw_conns(proxy, timeout=15)


# --------------------------------------------------------------------------- admin API

def test_hold_api_create_list_get_renew_delete(proxy):
    status, doc = admin(proxy, "GET", "/holds")
    assert (status, doc) == (200, {"holds": []})
    ans = hold(proxy, ["api_t", "public.api_u"], mode="all", policy="reject", lease_ms=30000,
               max_wait_ms=1234, on_timeout="reject", id="api-1")
    assert ans["id"] == "api-1"
    assert ans["parked"] == 0 and ans["in_transaction"] == 0 and ans["in_transaction_pids"] == []
    assert ans["lease_ms"] == 30000

    status, doc = admin(proxy, "GET", "/holds")
    assert status == 200 and [h["id"] for h in doc["holds"]] == ["api-1"], doc
    status, one = admin(proxy, "GET", "/holds/api-1")
    assert status == 200, one
    assert one["id"] == "api-1"
    assert sorted(one["tables"]) == ["api_t", "public.api_u"]
    assert (one["mode"], one["policy"], one["on_timeout"]) == ("all", "reject", "reject")
    assert (one["lease_ms"], one["max_wait_ms"]) == (30000, 1234)

    # Without an id the proxy makes one up; defaults for everything but tables.
    status, gen = admin(proxy, "POST", "/holds", {"tables": ["*"]})
    assert status == 201, gen
    assert isinstance(gen["id"], str) and gen["id"] and gen["id"] != "api-1"
    status, doc = admin(proxy, "GET", "/holds")
    assert sorted(h["id"] for h in doc["holds"]) == sorted(["api-1", gen["id"]])
    assert proxy.metrics()["pgvalve_holds"] == 2
    assert len(proxy.status()["holds"]) == 2

    status, doc = admin(proxy, "POST", "/holds/api-1/renew", {"lease_ms": 45000})
    assert status == 200, doc
    assert doc.get("lease_ms") == 45000
    assert admin(proxy, "GET", "/holds/api-1")[1]["lease_ms"] == 45000

    release(proxy, "api-1")
    release(proxy, gen["id"])
    assert admin(proxy, "GET", "/holds") == (200, {"holds": []})
    assert proxy.metrics()["pgvalve_holds"] == 0

    for method, path, body in (("GET", "/holds/api-1", None),
                               ("DELETE", "/holds/api-1", None),
                               ("POST", "/holds/api-1/renew", {"lease_ms": 1000}),
                               ("DELETE", "/holds/never-was", None)):
        status, doc = admin(proxy, method, path, body)
        assert status == 404, f"{method} {path} -> {status}: {doc}"
        assert isinstance(doc, dict) and doc.get("error"), doc


@pytest.mark.parametrize("body, key", [
    ({"tables": ["t"], "bogus": 1}, "bogus"),
    ({"tables": ["t"], "mode": "sometimes"}, "mode"),
    ({"tables": ["t"], "policy": "maybe"}, "policy"),
    ({"tables": ["t"], "on_timeout": "explode"}, "on_timeout"),
    ({"tables": ["t"], "lease_ms": -5}, "lease_ms"),
    ({"tables": ["t"], "max_wait_ms": "soon"}, "max_wait_ms"),
    ({"tables": []}, "tables"),
    ({"mode": "all"}, "tables"),
    ({"tables": "t"}, "tables"),
    ({"tables": ["a.b.c"]}, "tables"),
    ({"tables": [""]}, "tables"),
    ({"tables": [".t"]}, "tables"),
    ({"tables": [17]}, "tables"),
    ({"tables": ["t"], "id": "a b"}, '"id": expected 1 to 63 letters, digits'),
    ({"tables": ["t"], "id": "x?y"}, '"id": expected 1 to 63 letters, digits'),
])
def test_bad_hold_bodies_are_400_naming_the_key(proxy, body, key):
    status, doc = admin(proxy, "POST", "/holds", body)
    assert status == 400, f"POST /holds {body} -> {status}: {doc}"
    assert isinstance(doc, dict) and key in doc.get("error", ""), f"{body}: error {doc!r} does not name {key!r}"
    assert admin(proxy, "GET", "/holds") == (200, {"holds": []})


def test_not_json_is_400_and_duplicate_id_is_409(proxy):
    status, doc = admin(proxy, "POST", "/holds", "{tables: nope")
    assert status == 400 and isinstance(doc, dict) and doc.get("error"), (status, doc)
    hold(proxy, ["dup_t"], id="dup")
    status, doc = admin(proxy, "POST", "/holds", {"tables": ["other"], "id": "dup"})
    assert status == 409 and "dup" in doc.get("error", ""), (status, doc)
    status, doc = admin(proxy, "GET", "/holds")
    assert [(h["id"], h["tables"]) for h in doc["holds"]] == [("dup", ["dup_t"])]
    status, doc = admin(proxy, "POST", "/holds/dup/renew", {"lease_ms": "long"})
    assert status == 400 and "lease_ms" in doc.get("error", ""), (status, doc)
    release(proxy, "dup")


# --------------------------------------------------------------------------- queue

def test_queue_parks_simple_query_until_release(proxy, raw, direct):
    make_table(direct, "q_t")
    make_table(direct, "q_other")
    writer, other, reader = raw(), raw(), raw()
    ans = hold(proxy, ["public.q_t"], id="q1")
    assert ans["parked"] == 0 and ans["in_transaction"] == 0

    q(writer, "INSERT INTO q_t VALUES (1)")
    wait_parked(proxy, 1)
    s = session_of(proxy, writer.backend_pid)
    assert s["state"] == "parked" and s["parked_on"] == "q1", s
    st = proxy.status()
    assert st["clients"]["parked"] == 1
    m = proxy.metrics()
    assert (m.get("pgvalve_holds"), m.get("pgvalve_parked")) == (1, 1)
    assert rows(direct, "SELECT v FROM q_t") == []
    assert received_nothing(writer)

    # While it waits: reads of the held table and writes elsewhere go through.
    q(reader, "SELECT count(*) FROM q_t")
    msgs = read_until_ready(reader, timeout=10)
    assert_ok(msgs, "SELECT on the held table")
    assert [b for t, b in msgs if t == b"D"] == [struct.pack("!HI", 1, 1) + b"0"]
    q(other, "INSERT INTO q_other VALUES (2)")
    assert_ok(read_until_ready(other), "INSERT into another table")
    assert rows(direct, "SELECT v FROM q_other") == [(2,)]

    assert rows(direct, "SELECT v FROM q_t") == []
    assert received_nothing(writer, 0.3)
    release(proxy, "q1")
    msgs = read_until_ready(writer)
    assert_ok(msgs, "parked INSERT after release")
    assert b"C" in [t for t, _ in msgs]
    assert rows(direct, "SELECT v FROM q_t") == [(1,)]
    wait_parked(proxy, 0)
    m = proxy.metrics()
    assert m["pgvalve_holds"] == 0 and m["pgvalve_parked"] == 0
    assert session_of(proxy, writer.backend_pid)["state"] != "parked"
    # and the session carries on
    q(writer, "INSERT INTO q_t VALUES (3)")
    assert_ok(read_until_ready(writer), "INSERT after release")


def test_session_busy_before_the_hold_has_its_next_simple_query_parked(proxy, raw, direct):
    """A session whose worker already read its queries at the header only (no hold, no observation)
    must read the next one whole once a hold exists: unread, a query could touch any table, so it
    would be held whatever it names (the INSERT elsewhere below) and the held one could not be told."""
    make_table(direct, "qb_t")
    make_table(direct, "qb_other")
    s = raw()
    for _ in range(3):
        q(s, "SELECT 1")
        assert_ok(read_until_ready(s), "a query before any hold")
    hold(proxy, ["public.qb_t"], id="qb")
    q(s, "INSERT INTO qb_other VALUES (2)")
    assert_ok(read_until_ready(s, timeout=10), "an INSERT into another table under the hold")
    assert rows(direct, "SELECT v FROM qb_other") == [(2,)]
    q(s, "INSERT INTO qb_t VALUES (1)")
    wait_parked(proxy, 1)
    assert rows(direct, "SELECT v FROM qb_t") == []
    release(proxy, "qb")
    assert_ok(read_until_ready(s), "the parked INSERT after the release")
    assert rows(direct, "SELECT v FROM qb_t") == [(1,)]


def test_queue_parks_extended_protocol_psycopg(proxy, connect, direct, pool):
    make_table(direct, "qe_t")
    conn = connect(proxy, autocommit=True)
    conn.execute("SELECT 1")
    hold(proxy, ["qe_t"], id="qe")
    fut = pool.submit(lambda: conn.execute("INSERT INTO qe_t VALUES (%s)", (7,)).rowcount)
    wait_parked(proxy, 1)
    assert session_of(proxy, conn.info.backend_pid)["parked_on"] == "qe"
    assert not fut.done()
    assert rows(direct, "SELECT v FROM qe_t") == []
    release(proxy, "qe")
    assert fut.result(timeout=15) == 1
    assert rows(direct, "SELECT v FROM qe_t") == [(7,)]


def test_statement_prepared_before_hold_is_held_when_executed(proxy, raw, connect, direct, pool):
    make_table(direct, "prep_t")
    # raw: a named Parse before the hold, Bind/Execute during it
    r = raw()
    send_all(r, parse_msg("ins_prep", "INSERT INTO prep_t VALUES (42)"), (b"S", b""))
    assert types(read_until_ready(r)) == "1Z"
    # psycopg: prepare=True makes a named server-side statement on first use
    conn = connect(proxy, autocommit=True)
    conn.execute("INSERT INTO prep_t VALUES (%s)", (1,), prepare=True)
    direct.execute("DELETE FROM prep_t")

    hold(proxy, ["prep_t"], id="prep")
    send_all(r, bind_msg("", "ins_prep"), execute_msg(), (b"S", b""))
    fut = pool.submit(lambda: conn.execute("INSERT INTO prep_t VALUES (%s)", (2,), prepare=True).rowcount)
    wait_parked(proxy, 2)
    assert received_nothing(r)
    assert not fut.done()
    assert rows(direct, "SELECT v FROM prep_t") == []
    release(proxy, "prep")
    msgs = read_until_ready(r)
    assert types(msgs) == "2CZ", msgs
    assert fut.result(timeout=15) == 1
    assert sorted(rows(direct, "SELECT v FROM prep_t")) == [(2,), (42,)]


def assert_execute_held_then_run(proxy, r, direct, table, stmt, value):
    """Bind/Execute of statement `stmt` during a hold on `table`: parked, nothing written, and
    after the release it completes and its row `value` is there."""
    hold(proxy, [table], id=f"{table}-hold")
    send_all(r, bind_msg("", stmt), execute_msg(), (b"S", b""))
    wait_parked(proxy, 1)
    assert received_nothing(r)
    assert rows(direct, f"SELECT v FROM {table}") == []
    release(proxy, f"{table}-hold")
    assert types(read_until_ready(r)) == "2CZ"
    assert rows(direct, f"SELECT v FROM {table}") == [(value,)]


def test_failed_redefinition_does_not_change_what_a_name_runs(proxy, raw, direct):
    """A Parse of a name that exists fails (42P05) and the server keeps the old statement:
    executing the name during a hold must be judged by the old text (an INSERT), not by the
    text of the failed Parse (a SELECT), or held work would run."""
    make_table(direct, "redef_t")
    r = raw()
    send_all(r, parse_msg("s1", "INSERT INTO redef_t VALUES (7)"), (b"S", b""))
    assert types(read_until_ready(r)) == "1Z"
    send_all(r, parse_msg("s1", "SELECT 1"), (b"S", b""))
    msgs = read_until_ready(r)
    assert types(msgs) == "EZ" and errors_in(msgs)[0]["C"] == "42P05", msgs

    assert_execute_held_then_run(proxy, r, direct, "redef_t", "s1", 7)


def test_close_skipped_after_an_error_keeps_the_statement_known(proxy, raw, direct):
    """After an error the server skips the rest of the batch, a Close included: the statement
    still exists, and executing it during a hold is held like any write."""
    make_table(direct, "skip_t")
    r = raw()
    send_all(r, parse_msg("w", "INSERT INTO skip_t VALUES (1)"), (b"S", b""))
    assert types(read_until_ready(r)) == "1Z"
    send_all(r, parse_msg("", "SELECT * FROM no_such_table"), (b"C", b"Sw\0"), (b"S", b""))
    msgs = read_until_ready(r)
    assert types(msgs) == "EZ" and errors_in(msgs)[0]["C"] == "42P01", msgs

    assert_execute_held_then_run(proxy, r, direct, "skip_t", "w", 1)


def test_statement_prepared_with_sql_prepare_is_held_as_unknown(proxy, raw, direct):
    """SQL PREPARE shares the protocol's statement namespace but the proxy never sees a Parse
    for it: a Bind of such a name during a hold fails closed (held)."""
    make_table(direct, "sqlprep_t")
    r = raw()
    _, errs = r.query("PREPARE sp AS INSERT INTO sqlprep_t VALUES (5)")
    assert not errs
    assert_execute_held_then_run(proxy, r, direct, "sqlprep_t", "sp", 5)


def test_transaction_begun_under_a_hold_is_held_at_the_held_table(proxy, raw, direct):
    """BEGIN names no table: it passes a hold, and so do the transaction's units on other
    tables; its first unit on the held table parks like an idle session's (the transaction
    took no lock on that table, so it cannot stand in the DDL's way), and runs after the
    release. Without this every explicit transaction (psycopg's default, pgbench's TPC-B,
    Django's atomic requests) slipped past the hold."""
    make_table(direct, "txh_held")
    make_table(direct, "txh_other")
    a = raw()
    hold(proxy, ["txh_held"], id="txh")
    for sql in ("BEGIN", "INSERT INTO txh_other VALUES (1)"):
        _, errs = a.query(sql)
        assert not errs and a.status == b"T", (sql, errs, a.status)
    q(a, "INSERT INTO txh_held VALUES (2)")
    wait_parked(proxy, 1)
    assert session_of(proxy, a.backend_pid)["state"] == "parked"
    assert received_nothing(a) and rows(direct, "SELECT count(*) FROM txh_held") == [(0,)]
    release(proxy, "txh")
    msgs = read_until_ready(a)
    assert not errors_in(msgs) and msgs[-1] == (b"Z", b"T"), msgs
    q(a, "COMMIT")
    assert_ok(read_until_ready(a), "COMMIT after the release")
    assert rows(direct, "SELECT (SELECT count(*) FROM txh_held), (SELECT count(*) FROM txh_other)") == [(1, 1)]


def test_transaction_is_held_only_by_the_holds_it_began_under(proxy, raw, direct):
    """A hold placed while a transaction is open may meet a table the transaction has
    locked already: that hold lets its units run on (parking them could deadlock the DDL),
    while a hold older than the transaction still parks them. A reject hold never rejects
    inside a transaction (the server would not know the statement failed)."""
    for t in ("txo_old", "txo_new", "txo_rej"):
        make_table(direct, t)
    a = raw()
    hold(proxy, ["txo_old"], id="txo-old")
    _, errs = a.query("BEGIN")
    assert not errs and a.status == b"T"
    hold(proxy, ["txo_new"], id="txo-new")
    hold(proxy, ["txo_rej"], id="txo-rej", policy="reject")
    for sql in ("INSERT INTO txo_new VALUES (1)", "INSERT INTO txo_rej VALUES (1)"):
        q(a, sql)
        msgs = read_until_ready(a, timeout=10)
        assert not errors_in(msgs) and msgs[-1] == (b"Z", b"T"), (sql, msgs)
    q(a, "INSERT INTO txo_old VALUES (1)")
    wait_parked(proxy, 1)
    assert rows(direct, "SELECT count(*) FROM txo_old") == [(0,)]
    release(proxy, "txo-old")
    msgs = read_until_ready(a)
    assert not errors_in(msgs) and msgs[-1] == (b"Z", b"T"), msgs
    _, errs = a.query("COMMIT")
    assert not errs
    assert rows(direct, "SELECT (SELECT count(*) FROM txo_old), (SELECT count(*) FROM txo_new), "
                        "(SELECT count(*) FROM txo_rej)") == [(1, 1, 1)]
    for h in ("txo-new", "txo-rej"):
        release(proxy, h)


def test_session_in_transaction_runs_on_and_is_reported(proxy, raw, direct):
    make_table(direct, "tx_t")
    a = raw()
    for sql in ("BEGIN", "INSERT INTO tx_t VALUES (1)"):
        _, errs = a.query(sql)
        assert not errs and a.status == b"T", (sql, errs, a.status)
    idle = raw()
    ans = hold(proxy, ["tx_t"], id="tx")
    assert ans["in_transaction"] == 1, ans
    assert ans["in_transaction_pids"] == [a.backend_pid], (ans, a.backend_pid)
    assert ans["parked"] == 0
    # inside its transaction it is not parked
    q(a, "INSERT INTO tx_t VALUES (2)")
    msgs = read_until_ready(a, timeout=10)
    assert not errors_in(msgs) and msgs[-1] == (b"Z", b"T"), msgs
    q(a, "COMMIT")
    assert_ok(read_until_ready(a, timeout=10), "COMMIT during the hold")
    assert sorted(rows(direct, "SELECT v FROM tx_t")) == [(1,), (2,)]
    # once idle, its next unit of work is parked like anyone's
    q(a, "INSERT INTO tx_t VALUES (3)")
    q(idle, "INSERT INTO tx_t VALUES (4)")
    wait_parked(proxy, 2)
    assert sorted(rows(direct, "SELECT v FROM tx_t")) == [(1,), (2,)]
    release(proxy, "tx")
    assert_ok(read_until_ready(a), "INSERT 3 after release")
    assert_ok(read_until_ready(idle), "INSERT 4 after release")
    assert sorted(rows(direct, "SELECT v FROM tx_t")) == [(1,), (2,), (3,), (4,)]


def test_overlapping_holds_keep_unit_parked_until_both_released(proxy, raw, direct):
    make_table(direct, "ov_t")
    w = raw()
    hold(proxy, ["ov_t"], id="ov-a")
    hold(proxy, ["public.ov_t"], id="ov-b", mode="all")
    q(w, "INSERT INTO ov_t VALUES (1)")
    wait_parked(proxy, 1)
    release(proxy, "ov-a")
    assert received_nothing(w, 0.5)
    assert parked_count(proxy) == 1
    s = session_of(proxy, w.backend_pid)
    assert s["state"] == "parked" and s["parked_on"] == "ov-b", s
    assert rows(direct, "SELECT v FROM ov_t") == []
    release(proxy, "ov-b")
    assert_ok(read_until_ready(w), "INSERT after both holds released")
    assert rows(direct, "SELECT v FROM ov_t") == [(1,)]


@pytest.fixture
def recorder(pg):
    r = harness.UpstreamRecorder(pg.port)
    yield r
    r.close()


def park_and_release_in_order(proxy, direct, conns, table, tag):
    """Parks one INSERT per connection, one after another, releases, returns the order in
    which they went upstream (as 1-based arrival numbers) and the workers they were on."""
    hold(proxy, [table], id=f"ord-{tag}")
    for i, c in enumerate(conns, 1):
        q(c, f"INSERT INTO {table} (who) VALUES ('{tag}:c{i}')")
        wait_parked(proxy, i)   # c{i} arrived after c{i-1} was parked: the order is defined
    workers = [session_of(proxy, c.backend_pid)["worker"] for c in conns]
    assert rows(direct, f"SELECT count(*) FROM {table} WHERE who LIKE %s", (f"{tag}:%",)) == [(0,)]
    release(proxy, f"ord-{tag}")
    for c in conns:
        assert_ok(read_until_ready(c), "released INSERT")
    assert rows(direct, f"SELECT count(*) FROM {table} WHERE who LIKE %s", (f"{tag}:%",)) == [(len(conns),)]
    stamps = {i: proxy.recorder.stamp_of(f"'{tag}:c{i}'".encode()) for i in range(1, len(conns) + 1)}
    return sorted(stamps, key=stamps.get), workers


def test_release_resumes_in_arrival_order_one_worker(pg, proxy_factory, recorder, direct):
    make_table(direct, "ord_t", "id bigserial PRIMARY KEY, who text")
    p = proxy_factory(pg, overrides={"workers": 1, "upstream": {"port": recorder.port}})
    p.recorder = recorder
    conns = []
    try:
        for _ in range(4):
            conns.append(p.raw(timeout=15))
            conns[-1].startup(harness.SUPERUSER)
        for rnd in range(3):
            order, _ = park_and_release_in_order(p, direct, conns, "ord_t", f"w1r{rnd}")
            assert order == [1, 2, 3, 4], f"round {rnd}: parked in order 1,2,3,4, went upstream as {order}"
    finally:
        for c in conns:
            c.close()


def test_copy_from_and_data_modifying_cte_are_held(proxy, raw, connect, direct, pool):
    make_table(direct, "cp_t")
    direct.execute("INSERT INTO cp_t VALUES (100), (101)")
    conn = connect(proxy, autocommit=True)
    conn.execute("SELECT 1")
    cte = raw()
    hold(proxy, ["cp_t"], id="cp")

    def do_copy():
        with conn.cursor() as cur:
            with cur.copy("COPY cp_t (v) FROM STDIN") as cp:
                for i in range(3):
                    cp.write_row((i,))
            return cur.rowcount
    fut = pool.submit(do_copy)
    wait_parked(proxy, 1)
    assert session_of(proxy, conn.info.backend_pid)["parked_on"] == "cp"
    q(cte, "WITH d AS (DELETE FROM cp_t WHERE v = 100 RETURNING *) SELECT count(*) FROM d")
    wait_parked(proxy, 2)
    assert session_of(proxy, cte.backend_pid)["parked_on"] == "cp"
    assert not fut.done() and received_nothing(cte)
    assert sorted(rows(direct, "SELECT v FROM cp_t")) == [(100,), (101,)]
    release(proxy, "cp")
    assert fut.result(timeout=15) == 3
    msgs = read_until_ready(cte)
    assert_ok(msgs, "data-modifying CTE after release")
    assert sorted(rows(direct, "SELECT v FROM cp_t")) == [(0,), (1,), (2,), (101,)]


def test_all_mode_holds_select_and_star_holds_select_1(proxy, raw, direct):
    make_table(direct, "am_t")
    make_table(direct, "am_other")
    sel, other = raw(), raw()
    hold(proxy, ["am_t"], mode="all", id="am")
    q(sel, "SELECT count(*) FROM am_t")
    wait_parked(proxy, 1)
    q(other, "SELECT count(*) FROM am_other")
    assert_ok(read_until_ready(other, timeout=10), "SELECT on another table in all mode")
    q(other, "SELECT 1")
    assert_ok(read_until_ready(other, timeout=10), "SELECT 1 in all mode on am_t")
    assert received_nothing(sel)
    release(proxy, "am")
    assert_ok(read_until_ready(sel), "SELECT after release")

    hold(proxy, ["*"], mode="all", id="star")
    q(sel, "SELECT 1")
    wait_parked(proxy, 1)
    assert session_of(proxy, sel.backend_pid)["parked_on"] == "star"
    assert received_nothing(sel)
    release(proxy, "star")
    msgs = read_until_ready(sel)
    assert_ok(msgs, "SELECT 1 after the * hold")
    assert [b for t, b in msgs if t == b"D"] == [struct.pack("!HI", 1, 1) + b"1"]


def test_writes_mode_lets_selects_through_in_queue_policy(proxy, raw, direct):
    make_table(direct, "wq_t")
    direct.execute("INSERT INTO wq_t VALUES (1)")
    r = raw()
    hold(proxy, ["wq_t"], id="wq")
    for sql in ("SELECT * FROM wq_t", "SELECT * FROM wq_t FOR UPDATE",
                "SELECT lower('X'), count(*), now() FROM wq_t"):
        q(r, sql)
        assert_ok(read_until_ready(r, timeout=10), sql)
    # the same through the extended protocol
    send_all(r, parse_msg("", "SELECT v FROM wq_t FOR SHARE"), bind_msg("", ""), execute_msg(), (b"S", b""))
    assert types(read_until_ready(r, timeout=10)) == "12DCZ"
    assert parked_count(proxy) == 0
    release(proxy, "wq")


# --------------------------------------------------------------------------- expiry

def test_lease_expiry_releases_by_itself(proxy, raw, direct):
    """A coordinator that stops renewing: the hold ends by itself when its lease runs out and
    the parked INSERT runs. The short lease is set by a renew once the INSERT is parked, so
    a slow machine cannot let the lease run out before the INSERT arrives."""
    make_table(direct, "ls_t")
    w = raw()
    hold(proxy, ["ls_t"], id="ls")
    q(w, "INSERT INTO ls_t VALUES (1)")
    wait_parked(proxy, 1)
    assert rows(direct, "SELECT v FROM ls_t") == []
    status, doc = admin(proxy, "POST", "/holds/ls/renew", {"lease_ms": 300})
    assert status == 200, doc
    msgs = read_until_ready(w, timeout=30)
    assert_ok(msgs, "INSERT released by lease expiry")
    assert rows(direct, "SELECT v FROM ls_t") == [(1,)]
    assert admin(proxy, "GET", "/holds") == (200, {"holds": []})
    assert admin(proxy, "GET", "/holds/ls")[0] == 404
    assert any("ls" in line and "lease" in line for line in proxy.log_lines()), proxy.log_lines()[-10:]


def test_renew_extends_the_lease(proxy, raw, direct):
    """A hold made with a 1 s lease and renewed for 60 s outlives a witness hold made after
    it with a 1 s lease: once the witness has expired by itself, the first lease would
    have too, had the renew not extended it."""
    make_table(direct, "rn_t")
    make_table(direct, "rn_witness")
    w = raw()
    hold(proxy, ["rn_t"], id="rn", lease_ms=1000)
    status, doc = admin(proxy, "POST", "/holds/rn/renew", {"lease_ms": LONG_MS})
    assert status == 200, doc
    hold(proxy, ["rn_witness"], id="rn-witness", lease_ms=1000)
    q(w, "INSERT INTO rn_t VALUES (1)")
    wait_parked(proxy, 1)
    harness.wait_for(lambda: admin(proxy, "GET", "/holds/rn-witness")[0] == 404, 30,
                     what="the witness hold's lease to run out")
    assert admin(proxy, "GET", "/holds/rn")[0] == 200
    assert parked_count(proxy) == 1 and received_nothing(w, 0.2)
    assert rows(direct, "SELECT v FROM rn_t") == []
    release(proxy, "rn")
    assert_ok(read_until_ready(w), "INSERT after release")


def test_max_wait_release_lets_the_unit_through(proxy, raw, direct):
    make_table(direct, "mw_t")
    w = raw()
    hold(proxy, ["mw_t"], id="mw", max_wait_ms=1500, on_timeout="release")
    q(w, "INSERT INTO mw_t VALUES (1)")
    wait_parked(proxy, 1)
    assert rows(direct, "SELECT v FROM mw_t") == []
    assert_ok(read_until_ready(w, timeout=15), "INSERT after max_wait (release)")
    assert rows(direct, "SELECT v FROM mw_t") == [(1,)]
    assert admin(proxy, "GET", "/holds/mw")[0] == 200   # the hold itself stays
    release(proxy, "mw")


def test_max_wait_reject_rejects_the_unit(proxy, raw, direct):
    make_table(direct, "mr_t")
    w = raw()
    hold(proxy, ["mr_t"], id="mr", max_wait_ms=1500, on_timeout="reject")
    q(w, "INSERT INTO mr_t VALUES (1)")
    wait_parked(proxy, 1)
    assert_rejected(read_until_ready(w, timeout=15), "mr_t", "INSERT after max_wait (reject)")
    assert rows(direct, "SELECT v FROM mr_t") == []
    assert parked_count(proxy) == 0
    assert admin(proxy, "GET", "/holds/mr")[0] == 200
    q(w, "SELECT 1")
    assert_ok(read_until_ready(w, timeout=10), "session usable after max_wait reject")
    release(proxy, "mr")


# --------------------------------------------------------------------------- reject / classification

HELD_IN_WRITES = [
    "INSERT INTO cls_t VALUES (1)",
    "UPDATE cls_t SET v = v + 1",
    "DELETE FROM cls_t",
    "MERGE INTO cls_t USING (SELECT 1 AS v) s ON cls_t.v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.v)",
    "TRUNCATE cls_t",
    "ALTER TABLE cls_t ADD COLUMN IF NOT EXISTS extra int",
    "CREATE INDEX ON cls_t (v)",
    "COPY cls_t FROM STDIN",
    "WITH d AS (DELETE FROM cls_t RETURNING *) SELECT count(*) FROM d",
    "SELECT 1; INSERT INTO cls_t VALUES (1)",
    "INSERT INTO public.cls_t VALUES (1)",
]
UNCLASSIFIABLE = [
    "DO $$BEGIN PERFORM 1; END$$",
    "CALL cls_proc()",
    "SELECT cls_func()",
    "SELEC 1 FROM cls_t",
]
PASS_IN_WRITES = [
    "SELECT * FROM cls_t",
    "SELECT * FROM cls_t FOR UPDATE",
    "SELECT lower('X'), count(*) FROM cls_t",
    "INSERT INTO cls_other VALUES (1)",
    "SELECT 1",
]


@pytest.fixture
def cls_tables(direct):
    make_table(direct, "cls_t")
    make_table(direct, "cls_other")
    direct.execute("INSERT INTO cls_t VALUES (5)")
    direct.execute("CREATE OR REPLACE FUNCTION cls_func() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    direct.execute("CREATE OR REPLACE PROCEDURE cls_proc() LANGUAGE sql AS 'SELECT 1'")


def test_reject_simple_protocol_writes_mode(proxy, raw, direct, cls_tables):
    r = raw()
    hold(proxy, ["cls_t"], policy="reject", id="rej")
    problems = []
    for sql in HELD_IN_WRITES + UNCLASSIFIABLE:
        q(r, sql)
        msgs = read_until_ready(r, timeout=10)
        errs = errors_in(msgs)
        if not (types(msgs) == "EZ" and errs[0].get("C") == "55P03"
                and "cls_t" in errs[0].get("M", "") and msgs[-1][1] == b"I"):
            problems.append(f"{sql!r}: expected 55P03 naming cls_t, got {msgs!r}")
    for sql in PASS_IN_WRITES:
        q(r, sql)
        msgs = read_until_ready(r, timeout=10)
        if errors_in(msgs) or msgs[-1] != (b"Z", b"I"):
            problems.append(f"{sql!r}: expected to pass, got {msgs!r}")
    assert not problems, "\n".join(problems)
    assert rows(direct, "SELECT v FROM cls_t") == [(5,)]
    assert rows(direct, "SELECT count(*) FROM pg_indexes WHERE tablename = 'cls_t'") == [(0,)]
    assert parked_count(proxy) == 0
    release(proxy, "rej")


def test_reject_all_mode_rejects_reads_of_the_table_only(proxy, raw, direct, cls_tables):
    r = raw()
    hold(proxy, ["cls_t"], mode="all", policy="reject", id="rej-all")
    for sql in ("SELECT * FROM cls_t", "SELECT * FROM cls_t FOR UPDATE", "SELECT count(*) FROM public.cls_t"):
        q(r, sql)
        assert_rejected(read_until_ready(r, timeout=10), "cls_t", sql)
    for sql in ("SELECT 1", "SELECT count(*) FROM cls_other", "INSERT INTO cls_other VALUES (1)"):
        q(r, sql)
        assert_ok(read_until_ready(r, timeout=10), sql)
    release(proxy, "rej-all")


def test_reject_with_psql_keeps_the_session_usable(proxy, direct, cls_tables):
    hold(proxy, ["cls_t"], policy="reject", id="rej-psql")
    r = proxy.psql("-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose", "-At", check=False,
                   input="INSERT INTO cls_t VALUES (9);\nSELECT 'still-usable';\n", timeout=30)
    assert "55P03" in r.stderr and "cls_t" in r.stderr, r.stderr
    assert "still-usable" in r.stdout, (r.stdout, r.stderr)
    assert rows(direct, "SELECT v FROM cls_t") == [(5,)]
    release(proxy, "rej-psql")


def test_reject_extended_protocol(proxy, raw, connect, direct, cls_tables):
    hold(proxy, ["cls_t"], policy="reject", id="rej-ext")
    conn = connect(proxy, autocommit=True)
    with pytest.raises(psycopg.errors.LockNotAvailable) as ei:
        conn.execute("INSERT INTO cls_t VALUES (%s)", (9,))
    assert ei.value.diag.sqlstate == "55P03"
    assert "cls_t" in (ei.value.diag.message_primary or ""), ei.value.diag.message_primary
    assert conn.execute("SELECT %s::int + 1", (1,)).fetchone() == (2,)
    conn.execute("INSERT INTO cls_other VALUES (%s)", (3,))
    with pytest.raises(psycopg.errors.LockNotAvailable):
        conn.execute("UPDATE cls_t SET v = %s", (0,))
    assert conn.execute("SELECT v FROM cls_t WHERE v > %s", (0,)).fetchall() == [(5,)]

    # raw: the whole unit up to Sync is answered with one ErrorResponse and ReadyForQuery
    r = raw()
    send_all(r, parse_msg("", "DELETE FROM cls_t"), bind_msg("", ""), (b"D", b"P\0"), execute_msg(),
             (b"S", b""))
    assert_rejected(read_until_ready(r, timeout=10), "cls_t", "extended DELETE")
    send_all(r, parse_msg("", "SELECT count(*) FROM cls_t"), bind_msg("", ""), execute_msg(), (b"S", b""))
    msgs = read_until_ready(r, timeout=10)
    assert types(msgs) == "12DCZ", msgs
    assert rows(direct, "SELECT v FROM cls_t") == [(5,)]
    assert rows(direct, "SELECT v FROM cls_other") == [(3,)]
    release(proxy, "rej-ext")


@pytest.mark.parametrize("held, sql, matches", [
    ("public.sm_t", "INSERT INTO sm_t VALUES (1)", True),
    ("public.sm_t", "INSERT INTO public.sm_t VALUES (1)", True),
    ("public.sm_t", "INSERT INTO sm_s.sm_t VALUES (1)", False),
    ("sm_t", "INSERT INTO sm_s.sm_t VALUES (1)", True),
    ("sm_t", "INSERT INTO public.sm_t VALUES (1)", True),
    ("sm_t", "INSERT INTO sm_t VALUES (1)", True),
    ("sm_s.sm_t", "INSERT INTO public.sm_t VALUES (1)", False),
])
def test_table_name_matching(proxy, raw, direct, held, sql, matches):
    direct.execute("CREATE SCHEMA IF NOT EXISTS sm_s")
    make_table(direct, "public.sm_t")
    make_table(direct, "sm_s.sm_t")
    r = raw()
    hold(proxy, [held], policy="reject", id="sm")
    q(r, sql)
    msgs = read_until_ready(r, timeout=10)
    if matches:
        assert_rejected(msgs, "sm_t", f"hold {held!r}, {sql!r}")
    else:
        assert_ok(msgs, f"hold {held!r}, {sql!r}")
    release(proxy, "sm")


# --------------------------------------------------------------------------- shutdown

def test_sigterm_with_parked_session_releases_and_exits_0(pg, proxy_factory, direct):
    make_table(direct, "st_t")
    p = proxy_factory(pg)
    w = p.raw(timeout=15)
    try:
        w.startup(harness.SUPERUSER)
        hold(p, ["st_t"], id="st")
        q(w, "INSERT INTO st_t VALUES (1)")
        wait_parked(p, 1)
        p.signal(signal.SIGTERM)
        rc = p.wait_exit(20)
        p.exit_expected = True
        assert rc == 0, f"proxy exit status {rc} after SIGTERM with a parked session\n" + \
            "\n".join(p.log_lines()[-20:])
        msgs = None
        with contextlib.suppress(TimeoutError, OSError):
            msgs = w.read_until_closed(timeout=5)
        assert rows(direct, "SELECT v FROM st_t") == [(1,)], \
            f"the parked INSERT did not run when SIGTERM released the hold; client got {msgs!r}"
    finally:
        w.close()


# --------------------------------------------------------------------------- ordering across workers, pipelined batches
# (last in the file: ctest runs pytest -x, so a failure here does not hide the tests above)

def test_release_resumes_in_arrival_order_across_workers(pg, proxy_factory, recorder, direct):
    """Two workers: sessions alternate between them, and the order must hold across both.
    Several rounds, since a proxy that keeps order only per worker gets it right by chance."""
    make_table(direct, "ord2_t", "id bigserial PRIMARY KEY, who text")
    p = proxy_factory(pg, overrides={"workers": 2, "upstream": {"port": recorder.port}})
    p.recorder = recorder
    conns = []
    try:
        for _ in range(4):
            conns.append(p.raw(timeout=15))
            conns[-1].startup(harness.SUPERUSER)
        results = []
        for rnd in range(5):
            results.append(park_and_release_in_order(p, direct, conns, "ord2_t", f"w2r{rnd}"))
        workers = results[0][1]
        assert len(set(workers)) == 2, f"sessions were not spread over both workers: {workers}"
        bad = [(rnd, order) for rnd, (order, _) in enumerate(results) if order != [1, 2, 3, 4]]
        assert not bad, (f"parked in order 1,2,3,4 (on workers {workers}); went upstream out of order "
                         f"in {len(bad)} of {len(results)} rounds: {bad}")
    finally:
        for c in conns:
            c.close()


def test_reject_in_the_middle_of_an_extended_batch_keeps_the_protocol_in_step(proxy, raw, direct, cls_tables):
    """A pipelined batch (psycopg pipeline, JDBC executeBatch, pgx SendBatch) whose first
    statement is free and whose second writes the held table: the free part has already
    gone upstream when the held part is rejected. Its answers belong before the 55P03, in
    this batch; none may leak into the answer to the next query."""
    hold(proxy, ["cls_t"], policy="reject", id="rej-mid")
    r = raw()
    send_all(r, parse_msg("", "SELECT 1"), bind_msg("", ""), execute_msg(),
             parse_msg("", "INSERT INTO cls_t VALUES (9)"), bind_msg("", ""), execute_msg(), (b"S", b""))
    first = read_until_ready(r, timeout=10)
    q(r, "SELECT 42")
    second = read_until_ready(r, timeout=10)
    assert [e.get("C") for e in errors_in(first)] == ["55P03"], first
    assert first[-1] == (b"Z", b"I"), first
    assert types(second) == "TDCZ", (f"answer to the next query carries stale messages: {types(second)} "
                                     f"(batch answer was {types(first)}): {second!r}")
    assert types(first) == "12DCEZ", first
    assert rows(direct, "SELECT v FROM cls_t") == [(5,)]
    release(proxy, "rej-mid")


def test_parse_cache_answers_repeated_statements(proxy, connect, direct):
    """While a hold is in force every unit is classified; the same text twice is parsed once
    (the second answer comes from the worker's parse cache, counted in /metrics)."""
    make_table(direct, "held_pc")
    make_table(direct, "other_pc")
    hold(proxy, ["held_pc"])
    c = connect(proxy, autocommit=True)
    c.prepare_threshold = None   # keep psycopg on the unnamed statement: every Parse is classified
    raw = proxy.raw()
    raw.startup(harness.SUPERUSER)
    before = proxy.metrics()
    for i in range(50):
        raw.query("SELECT count(*) FROM other_pc")                   # simple protocol
        c.execute("SELECT count(*) FROM other_pc WHERE v > %s", (i,))  # extended, unnamed
    after = proxy.metrics()
    hits = after["pgvalve_parse_cache_hits_total"] - before["pgvalve_parse_cache_hits_total"]
    misses = after["pgvalve_parse_cache_misses_total"] - before["pgvalve_parse_cache_misses_total"]
    # Two distinct texts, each parsed at most once per worker (2 workers): the rest are hits.
    assert misses <= 4 and hits >= 100 - misses, (hits, misses)
    assert after["pgvalve_parse_cache_entries"] >= 2
    raw.close()
