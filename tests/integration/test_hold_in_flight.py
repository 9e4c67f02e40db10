"""A hold's 201 waits for the units of work in flight when it came (docs/architecture.md, holds):
a unit forwarded outside a transaction, whose ReadyForQuery has not come back, may not have
begun on the server, so a DDL the coordinator runs after the 201 could take its lock first and
run before it (the 0A000 race of the key change). The hold parks new units at once; only its
acknowledgement waits, up to the hold's in_flight_wait_ms, and then says how many still ran
(in_flight). Sessions inside a transaction are reported (in_transaction_pids), never waited for.

Nothing here is judged by a clock: the in-flight statement waits on an advisory lock the test
holds, so "the 201 has not come yet" is certain until the test lets the statement go."""

import pytest

import harness
import holds

from holds import (LONG_MS, assert_ok, hold, make_table, q, raw_conns, read_until_ready, release, rows,
                   session_of, wait_in_force, wait_parked)

pool = holds.pool  # the thread pool fixture (POST /holds waits in a thread)

LOCK_KEY = 4242


@pytest.fixture
def raw(proxy):
    """raw() -> an authenticated RawConn through the proxy, closed at teardown."""
    yield from raw_conns(proxy, timeout=15)


@pytest.fixture
def locker(pg):
    """A second direct autocommit connection: holds the advisory lock the in-flight statement waits on."""
    conn = harness.connect(pg.dsn())
    conn.autocommit = True
    yield conn
    conn.close()


def _wait_blocked(direct, pid):
    """Until the backend `pid` runs its statement and waits on a lock (it began on the server)."""
    harness.wait_for(lambda: rows(direct, "SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                  (pid,)) == [("active", "Lock")], 10, what=f"backend {pid} waiting on the lock")


def test_201_waits_for_the_unit_in_flight_not_for_a_transaction(proxy, raw, direct, locker, pool):
    make_table(direct, "inf_t")
    direct.execute("INSERT INTO inf_t VALUES (1)")
    locker.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))

    tx = raw()  # idle inside a transaction: reported, not waited for
    for sql in ("BEGIN", "INSERT INTO inf_t VALUES (2)"):
        _, errs = tx.query(sql)
        assert not errs and tx.status == b"T", (sql, errs, tx.status)

    busy = raw()  # an autocommit statement on the held table, in flight when the hold comes
    q(busy, f"SELECT v, pg_advisory_lock({LOCK_KEY}) FROM inf_t WHERE v = 1")
    _wait_blocked(direct, busy.backend_pid)

    fut = pool.submit(hold, proxy, ["inf_t"], mode="all", id="inf", in_flight_wait_ms=LONG_MS)
    # The hold acts at once: a new unit on the table parks while the 201 still waits.
    wait_in_force(proxy, "inf")
    late = raw()
    q(late, "SELECT count(*) FROM inf_t")
    wait_parked(proxy, 1)
    assert not fut.done(), "the 201 came while a unit in flight when the hold came still ran"

    locker.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    assert_ok(read_until_ready(busy), "the statement in flight")
    ans = fut.result(timeout=30)
    assert ans["in_flight"] == 0, ans
    assert ans["in_transaction"] == 1 and ans["in_transaction_pids"] == [tx.backend_pid], ans
    # The open transaction did not hold the 201 back: it is still open.
    assert session_of(proxy, tx.backend_pid)["state"] == "in_transaction"
    assert session_of(proxy, late.backend_pid)["state"] == "parked"

    release(proxy, "inf")
    assert_ok(read_until_ready(late), "the parked unit after the release")
    _, errs = tx.query("COMMIT")
    assert not errs and tx.status == b"I"
    assert rows(direct, "SELECT count(*) FROM inf_t") == [(2,)]


def test_201_stops_waiting_after_in_flight_wait_ms_and_says_how_many_still_ran(proxy, raw, direct, locker):
    make_table(direct, "infc_t")
    direct.execute("INSERT INTO infc_t VALUES (1)")
    locker.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    busy = raw()
    q(busy, f"SELECT v, pg_advisory_lock({LOCK_KEY}) FROM infc_t")
    _wait_blocked(direct, busy.backend_pid)

    # The statement cannot finish while the test holds the lock: the 201 comes at the cap.
    ans = hold(proxy, ["infc_t"], mode="all", id="infc", in_flight_wait_ms=1)
    assert ans["in_flight"] == 1, ans
    status, one = proxy.admin("GET", "/holds/infc")
    assert status == 200 and one["in_flight_wait_ms"] == 1, one

    locker.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    assert_ok(read_until_ready(busy), "the statement in flight")
    release(proxy, "infc")

    # Nothing in flight: the 201 says 0 (and came without waiting for anything).
    ans = hold(proxy, ["infc_t"], mode="all", id="infc2")
    assert ans["in_flight"] == 0, ans
    release(proxy, "infc2")


def test_in_flight_wait_ms_is_checked(proxy):
    status, doc = proxy.admin("POST", "/holds", {"tables": ["t"], "in_flight_wait_ms": -1})
    assert status == 400 and "in_flight_wait_ms" in str(doc), (status, doc)
