"""Switchover between two PostgreSQL servers and reroute holds (docs/architecture.md: switchover and reroute holds): POST
/switchover holds everything, drains open transactions, moves new sessions to the new
upstream and closes old sessions with 57P01 so pools reconnect; under a concurrent write
load no acknowledged write is lost, none lands on the old server after the switch, and every
new session lands on the new server. Also: what happens to a transaction that outlives the
drain (close_at_idle and terminate), sessions that connect while the drain runs, cancel
requests for sessions left on the old server, reroute holds, reloads after a switchover, and
the endpoint's errors.

Which server a statement ran on is never guessed: each server answers inet_server_port()."""

import concurrent.futures
import signal
import threading
import time

import psycopg
import psycopg.errors
import pytest

import harness


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def green():
    """A second server: the switchover target (each test gets a fresh table and proxy)."""
    cluster = harness.start_cluster()
    yield cluster
    cluster.destroy()


def two_upstream_proxy(proxy_factory, blue, green, **overrides):
    """A proxy with upstreams blue (active) and green."""
    p = proxy_factory(blue, start=False)

    def base_config():
        return {
            "listen": {"host": harness.HOST, "port": p.port},
            "upstreams": {
                "blue": {"host": harness.HOST, "port": blue.port, "sslmode": "disable"},
                "green": {"host": harness.HOST, "port": green.port, "sslmode": "disable"},
            },
            "active": "blue",
            "admin": {"host": harness.HOST, "port": p.admin_port},
            "workers": 2,
            "timeouts": {"connect_ms": 5000, "auth_ms": 20000, "shutdown_timeout_ms": 3000},
            "log": {"level": "info", "format": "text"},
        }

    p.base_config = base_config
    p.overrides = overrides
    return p.start()


@pytest.fixture
def servers(pg, green):
    """(blue, green), each with a fresh table t, and a direct autocommit connection to each."""
    conns = []
    for cluster in (pg, green):
        c = harness.connect(cluster.dsn())
        c.autocommit = True
        c.execute("DROP TABLE IF EXISTS t")
        c.execute("CREATE TABLE t (writer int, seq int, PRIMARY KEY (writer, seq))")
        conns.append(c)
    yield pg, green, conns[0], conns[1]
    for c in conns:
        c.close()


@pytest.fixture
def setup(servers, proxy_factory):
    blue, green_pg, blue_db, green_db = servers
    proxy = two_upstream_proxy(proxy_factory, blue, green_pg)
    return proxy, blue, green_pg, blue_db, green_db


def port_of(conn):
    return conn.execute("SELECT inet_server_port()").fetchone()[0]


def switchover(proxy, body, expect=200):
    status, doc = proxy.admin("POST", "/switchover", body, timeout=60)
    assert status == expect, f"POST /switchover {body} -> {status}: {doc}"
    return doc


RETIRED = 'terminating connection: pgvalve-proxy switched to upstream "green"; reconnect'


def is_admin_shutdown(exc):
    """The FATAL 57P01 a retired session gets, as libpq reports it: with its SQLSTATE when it
    answers a statement, or (no SQLSTATE) its text ahead of "server closed the connection"
    when libpq reads it while sending or between statements. Anything else is an error."""
    if not isinstance(exc, psycopg.OperationalError) or RETIRED not in str(exc):
        return False
    return exc.sqlstate in ("57P01", None)


def session_states(proxy):
    return [s["state"] for s in proxy.status()["sessions"]]


# --------------------------------------------------------------------------- under load

class Writer(threading.Thread):
    """Inserts (writer, seq) rows through the proxy as fast as it can, reconnecting when its
    session is closed, and records each acknowledged row with the port of the server that
    committed it and the time the acknowledgement arrived. Every third row goes in a
    three-statement transaction, so the drain has transactions to wait for."""

    def __init__(self, proxy, writer_id, stop):
        super().__init__(daemon=True)
        self.proxy, self.id, self.stop_event = proxy, writer_id, stop
        self.acked = []          # (seq, port, ack_time)
        self.reconnects = 0
        self.retired = []        # (SQLSTATE, first line) of each 57P01 seen
        self.errors = []         # unexpected errors: must stay empty

    def run(self):
        seq = 0
        conn = None
        while not self.stop_event.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.proxy.dsn(), autocommit=True)
                seq += 1
                if seq % 3 == 0:
                    with conn.transaction():
                        conn.execute("SELECT 1")
                        port = conn.execute("INSERT INTO t VALUES (%s, %s) RETURNING inet_server_port()",
                                            (self.id, seq)).fetchone()[0]
                        conn.execute("SELECT 1")
                else:
                    port = conn.execute("INSERT INTO t VALUES (%s, %s) RETURNING inet_server_port()",
                                        (self.id, seq)).fetchone()[0]
                self.acked.append((seq, port, time.monotonic()))
            except Exception as e:  # noqa: BLE001 - classified below
                if is_admin_shutdown(e):
                    self.retired.append((e.sqlstate, str(e).splitlines()[0]))
                else:
                    self.errors.append(repr(e))
                # Unacknowledged: the row may or may not exist; use a fresh seq next time.
                if conn is not None:
                    conn.close()
                conn = None
                self.reconnects += 1
        if conn is not None:
            conn.close()


def rows_on(db):
    return {(w, s) for w, s in db.execute("SELECT writer, seq FROM t").fetchall()}


def test_switchover_under_write_load_loses_nothing(setup):
    proxy, blue, green_pg, blue_db, green_db = setup
    stop = threading.Event()
    writers = [Writer(proxy, i, stop) for i in range(6)]
    for w in writers:
        w.start()
    harness.wait_for(lambda: all(len(w.acked) >= 20 for w in writers), 30, what="writes on blue")

    doc = switchover(proxy, {"upstream": "green", "drain_ms": 5000})
    switched_at = time.monotonic()
    blue_rows_at_switch = rows_on(blue_db)
    assert (doc["upstream"], doc["previous"], doc["drained"]) == ("green", "blue", True), doc
    assert doc["retiring"] == 0 and doc["retiring_pids"] == [], doc

    harness.wait_for(lambda: all(any(p == green_pg.port for _, p, _ in w.acked) for w in writers),
                     30, what="every writer writing to green")
    stop.set()
    for w in writers:
        w.join(30)
        assert not w.is_alive()

    for w in writers:
        assert w.errors == [], f"writer {w.id} saw errors other than 57P01: {w.errors[:3]}"
    on_blue, on_green = rows_on(blue_db), rows_on(green_db)
    acked_blue = {(w.id, s) for w in writers for s, p, _ in w.acked if p == blue.port}
    acked_green = {(w.id, s) for w in writers for s, p, _ in w.acked if p == green_pg.port}
    # Every acknowledged write is where its acknowledgement said; nothing else is anywhere
    # (a write that was never acknowledged never ran: parked work is not sent, it is closed).
    assert acked_blue <= on_blue and acked_green <= on_green
    assert on_blue - acked_blue == set(), f"unacknowledged rows on blue: {sorted(on_blue - acked_blue)[:5]}"
    assert on_green - acked_green == set(), f"unacknowledged rows on green: {sorted(on_green - acked_green)[:5]}"
    assert len(on_blue) + len(on_green) == sum(len(w.acked) for w in writers)
    # Nothing reached blue once the switchover was answered...
    assert on_blue == blue_rows_at_switch
    # ... and every acknowledgement after it came from green.
    late = [(w.id, s, p) for w in writers for s, p, t in w.acked if t > switched_at and p != green_pg.port]
    assert late == [], f"acknowledged by blue after the switchover: {late[:5]}"
    # Each writer was moved by being closed once, told why, and reconnected to green.
    assert all(w.reconnects >= 1 for w in writers)
    assert all(w.retired for w in writers), [w.retired for w in writers]

    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        assert port_of(c) == green_pg.port
    active = [u["name"] for u in proxy.status()["upstreams"] if u["active"]]
    assert active == ["green"]
    assert proxy.status()["holds"] == []   # the switchover's own hold is gone
    assert any('upstream "green" is active (was "blue")' in line for line in proxy.log_lines())


# --------------------------------------------------------------------------- the drain

def test_drain_waits_for_an_open_transaction_and_new_sessions_wait_for_the_switch(setup):
    proxy, blue, green_pg, blue_db, green_db = setup
    old = psycopg.connect(proxy.dsn())
    old.execute("INSERT INTO t VALUES (1, 1)")     # a transaction is now open on blue
    pid = old.info.backend_pid

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answer = pool.submit(switchover, proxy, {"upstream": "green", "drain_ms": 60000})
        harness.wait_for(lambda: proxy.status()["holds"] != [], 10, what="the switchover's hold")
        # A session connecting now waits for the switch instead of logging in to blue.
        newcomer = pool.submit(lambda: psycopg.connect(proxy.dsn(), autocommit=True))
        harness.wait_for(lambda: "waiting_upstream" in session_states(proxy), 10,
                         what="a session waiting for the switchover")
        assert not answer.done() and not newcomer.done()

        old.commit()                               # the drain ends: the switch happens
        doc = answer.result(30)
        assert doc["drained"] is True and doc["retiring"] == 0, doc
        new = newcomer.result(30)
        assert port_of(new) == green_pg.port
        new.close()

    assert rows_on(blue_db) == {(1, 1)} and rows_on(green_db) == set()
    # The old session was idle after its commit: closed with 57P01, telling it to reconnect.
    with pytest.raises(psycopg.OperationalError, match='switched to upstream "green"; reconnect'):
        old.execute("SELECT 1")
    old.close()
    assert pid not in [s["backend_pid"] for s in proxy.status()["sessions"]]


def test_idle_and_parked_old_sessions_are_closed_with_57P01(setup):
    proxy, blue, green_pg, blue_db, green_db = setup
    idle = psycopg.connect(proxy.dsn(), autocommit=True)
    assert port_of(idle) == blue.port
    tx = psycopg.connect(proxy.dsn())
    tx.execute("SELECT 1")                         # keeps the drain waiting
    raw = proxy.raw()
    raw.startup(harness.SUPERUSER, harness.DATABASE)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(switchover, proxy, {"upstream": "green", "drain_ms": 60000})
        harness.wait_for(lambda: proxy.status()["holds"] != [], 10, what="the switchover's hold")
        raw.send_msg(b"Q", b"INSERT INTO t VALUES (9, 9)\0")   # parked: everything is held
        harness.wait_for(lambda: proxy.status()["clients"]["parked"] == 1, 10, what="the parked insert")
        tx.rollback()
        doc = answer.result(30)
    assert doc["drained"] is True and doc["closed"] == 3, doc

    # The parked client is told why, as a FATAL 57P01, and the connection ends.
    errors = [harness.parse_error_fields(b) for t, b in raw.read_until_closed(10) if t == b"E"]
    assert len(errors) == 1, errors
    assert errors[0]["S"] == "FATAL" and errors[0]["C"] == "57P01", errors
    assert 'switched to upstream "green"' in errors[0]["M"] and "reconnect" in errors[0]["M"], errors
    # Its insert never ran anywhere.
    assert rows_on(blue_db) == set() and rows_on(green_db) == set()
    # psycopg reads the unsolicited FATAL with its next statement.
    for conn in (idle, tx):
        with pytest.raises(psycopg.OperationalError, match='switched to upstream "green"; reconnect'):
            conn.execute("SELECT 1")
        conn.close()


def test_transaction_outliving_the_drain_commits_then_its_session_closes(setup):
    proxy, blue, green_pg, blue_db, green_db = setup
    old = psycopg.connect(proxy.dsn())
    notices = []
    old.add_notice_handler(lambda d: notices.append((d.severity, d.sqlstate, d.message_primary)))
    old.execute("INSERT INTO t VALUES (1, 1)")
    pid = old.info.backend_pid

    doc = switchover(proxy, {"upstream": "green", "drain_ms": 200})
    assert doc["drained"] is False and doc["retiring"] == 1 and doc["retiring_pids"] == [pid], doc
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        assert port_of(c) == green_pg.port          # new sessions already go to green
    # close_at_idle (the default): the transaction finishes on blue...
    old.execute("INSERT INTO t VALUES (1, 2)")
    old.commit()
    assert rows_on(blue_db) == {(1, 1), (1, 2)}
    # ... and the session is closed at that idle point with 57P01. It follows the commit's
    # ReadyForQuery at once: when libpq reads both together it hands the FATAL, arriving
    # while idle, to the notice handler, and the next statement finds the socket closed.
    with pytest.raises(psycopg.OperationalError) as e:
        old.execute("SELECT 1")
    told = RETIRED in str(e.value) or ("FATAL", "57P01", RETIRED) in notices
    assert told, (str(e.value), notices)
    assert any("conn=" in line and 'closing: terminating connection: pgvalve-proxy switched to upstream '
               '"green"; reconnect sqlstate=57P01' in line for line in proxy.log_lines())
    old.close()
    assert rows_on(green_db) == set()


def test_terminate_rolls_back_a_transaction_outliving_the_drain(setup):
    proxy, blue, green_pg, blue_db, green_db = setup
    old = psycopg.connect(proxy.dsn())
    old.execute("INSERT INTO t VALUES (1, 1)")

    doc = switchover(proxy, {"upstream": "green", "drain_ms": 200, "on_drain_timeout": "terminate"})
    assert doc["drained"] is False and doc["retiring"] == 0 and doc["closed"] == 1, doc
    with pytest.raises(psycopg.OperationalError, match=RETIRED):
        old.commit()
    old.close()
    # The server rolled the transaction back when its connection closed.
    harness.wait_for(lambda: blue_db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgvalve-it'").fetchone()[0] == 0,
        10, what="the old backend to exit")
    assert rows_on(blue_db) == set()


def test_cancel_reaches_a_session_left_on_the_old_server(setup):
    proxy, blue, green_pg, blue_db, green_db = setup
    old = psycopg.connect(proxy.dsn(), autocommit=True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sleeping = pool.submit(old.execute, "SELECT pg_sleep(60)")
        harness.wait_for(lambda: blue_db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'").fetchone()[0] == 1,
            10, what="the sleep to start on blue")
        doc = switchover(proxy, {"upstream": "green", "drain_ms": 100})
        assert doc["retiring"] == 1, doc
        old.cancel()   # a CancelRequest through the proxy: it must go to blue, not green
        with pytest.raises(psycopg.errors.QueryCanceled):
            sleeping.result(30)
    old.close()
    assert any("cancel request for backend_pid" in line and "forwarded" in line
               for line in proxy.log_lines())


def test_cancel_for_a_key_the_proxy_never_handed_out_is_dropped(setup):
    proxy, blue, *_ = setup
    raw = proxy.raw()
    raw.send(b"\x00\x00\x00\x10\x04\xd2\x16\x2e" + (4242).to_bytes(4, "big") + (77).to_bytes(4, "big"))
    harness.wait_for(lambda: any("backend_pid=4242 dropped" in line for line in proxy.log_lines()), 10,
                     what="the dropped cancel in the log")


# --------------------------------------------------------------------------- the endpoint

def test_switchover_errors(setup):
    proxy, *_ = setup
    status, doc = proxy.admin("POST", "/switchover", {"upstream": "purple"})
    assert status == 400 and doc["error"] == '"upstream": no upstream named "purple" (configured: blue green)'
    status, doc = proxy.admin("POST", "/switchover", {"upstream": "blue"})
    assert status == 409 and doc["error"] == 'upstream "blue" is active already'
    status, doc = proxy.admin("POST", "/switchover", {"upstream": "green", "drain_ms": -1})
    assert status == 400 and doc["error"].startswith('"drain_ms": expected an integer from 0 to')
    status, doc = proxy.admin("POST", "/switchover", {"upstream": "green", "on_drain_timeout": "later"})
    assert status == 400 and doc["error"] == '"on_drain_timeout": expected one of close_at_idle, terminate, got "later"'
    status, doc = proxy.admin("POST", "/switchover", {"upstream": "green", "colour": "x"})
    assert status == 400 and doc["error"] == '"colour": unknown key (known: upstream, drain_ms, on_drain_timeout)'
    status, doc = proxy.admin("POST", "/switchover", "not json")
    assert status == 400
    status, doc = proxy.admin("GET", "/switchover")
    assert status == 405
    # Nothing of that changed anything.
    assert [u["name"] for u in proxy.status()["upstreams"] if u["active"]] == ["blue"]
    assert proxy.status()["holds"] == []


def test_second_switchover_while_one_drains_is_409(setup):
    proxy, *_ = setup
    old = psycopg.connect(proxy.dsn())
    old.execute("SELECT 1")   # a transaction is open: the drain waits
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(switchover, proxy, {"upstream": "green", "drain_ms": 60000})
        harness.wait_for(lambda: proxy.status()["holds"] != [], 10, what="the switchover's hold")
        status, doc = proxy.admin("POST", "/switchover", {"upstream": "green"})
        assert status == 409 and doc["error"] == 'a switchover to "green" is in progress'
        old.rollback()
        assert first.result(30)["upstream"] == "green"
    old.close()


def test_switching_back_and_a_reload_keeps_the_switched_upstream(setup):
    proxy, blue, green_pg, *_ = setup
    switchover(proxy, {"upstream": "green", "drain_ms": 1000})
    # A reload whose file still says "active": "blue" keeps green: the file did not change it.
    proxy.signal(signal.SIGHUP)
    harness.wait_for(lambda: any("configuration reloaded" in line for line in proxy.log_lines()), 10,
                     what="the reload")
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        assert port_of(c) == green_pg.port
    switchover(proxy, {"upstream": "blue", "drain_ms": 1000})
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        assert port_of(c) == blue.port


# --------------------------------------------------------------------------- reroute holds

def test_reroute_hold_sends_new_sessions_elsewhere_and_queues_old_ones(setup):
    proxy, blue, green_pg, blue_db, green_db = setup
    old = psycopg.connect(proxy.dsn(), autocommit=True)
    assert port_of(old) == blue.port

    status, doc = proxy.admin("POST", "/holds", {"tables": ["t"], "policy": "reroute", "upstream": "green",
                                                 "lease_ms": 60000, "max_wait_ms": 60000})
    assert status == 201, doc
    # New sessions land on green while it lasts, and the hold does not hold them there.
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        assert port_of(c) == green_pg.port
        c.execute("INSERT INTO t VALUES (2, 1)")
    # An old session's write to the held table waits (queue), and is not on either server.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        parked = pool.submit(old.execute, "INSERT INTO t VALUES (1, 1)")
        harness.wait_for(lambda: proxy.status()["clients"]["parked"] == 1, 10, what="the parked insert")
        assert rows_on(blue_db) == set()
        status, _ = proxy.admin("DELETE", f"/holds/{doc['id']}")
        assert status == 200
        parked.result(30)
    assert rows_on(blue_db) == {(1, 1)} and rows_on(green_db) == {(2, 1)}
    # After the release new sessions go to the active upstream again.
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        assert port_of(c) == blue.port
    old.close()


def test_reroute_hold_errors(setup):
    proxy, *_ = setup
    status, doc = proxy.admin("POST", "/holds", {"tables": ["t"], "policy": "reroute"})
    assert status == 400 and doc["error"] == '"upstream": policy reroute needs the name of the upstream new sessions go to'
    status, doc = proxy.admin("POST", "/holds", {"tables": ["t"], "policy": "reroute", "upstream": "purple"})
    assert status == 400 and doc["error"] == '"upstream": no upstream named "purple" (configured: blue green)'
    status, doc = proxy.admin("POST", "/holds", {"tables": ["t"], "policy": "queue", "upstream": "green"})
    assert status == 400 and doc["error"] == '"upstream": only meaningful with policy reroute'
    assert proxy.status()["holds"] == []
