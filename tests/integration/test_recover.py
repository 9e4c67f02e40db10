"""The coordinator killed with SIGKILL at any instant, then `pgvalve recover` run at once
(docs/recovery.md, the journal in docs/architecture.md).

First, in each journal state: the fault point PGVALVE_TEST_KILL_AT makes `pgvalve apply` kill
itself right after recording a state (or while its holds are acknowledged and its DDL not yet
run). `recover --resume` then finishes the migration — every constraint valid — and `recover
--rollback` undoes it — the prior constraints back byte-identical — and in both cases no row is
lost, no hold is left on the proxy, and `status` agrees with the schema.

Then while its backend still works: killed in the middle of a VALIDATE that would last about
50 s, of a rollback and of `recover` itself, the dead coordinator's backend is ended (or the
server ends it) and `recover` succeeds with nothing of the dead run left on the server; a live
coordinator is never taken for a dead one."""

import contextlib
import os
import threading

import pytest

import harness
from coordinator import FKS, constraints, finish, fk_migration, fk_name, pgvalve, schema_conn, spawn, write_file

# Points where apply can die, in the order it passes them.
KILL_POINTS = ["checked", "snapshotted", "prepared", "holding", "cutover", "validated", "finalized", "watching"]


@pytest.fixture
def db(pg):
    with schema_conn(pg, rows=500) as conn:
        # A prior constraint of the kind the migration replaces, to see it restored exactly.
        conn.execute("ALTER TABLE comments ADD CONSTRAINT comments_body_check CHECK (body <> '')")
        yield conn


def row_counts(db):
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("users", "projects", "stages", "comments")}


def migration_text():
    """Three FKs, a replaced CHECK and a SET NOT NULL: every phase has work."""
    return fk_migration(FKS[:3], extra="""
        ALTER TABLE comments DROP CONSTRAINT comments_body_check;
        ALTER TABLE comments ADD CONSTRAINT comments_body_check CHECK (length(body) > 0);
        ALTER TABLE stages ALTER COLUMN position SET NOT NULL;
    """)


@pytest.mark.parametrize("how", ["resume", "rollback"])
@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_then_recovered(pg, db, proxy_factory, tmp_path, point, how):
    proxy = proxy_factory(pg)
    admin = f"http://{harness.HOST}:{proxy.admin_port}"
    before, rows = constraints(db), row_counts(db)
    nullable = db.execute("SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'stages'::regclass "
                          "AND attname = 'position'").fetchone()[0]
    assert nullable
    path = write_file(tmp_path, "m.sql", migration_text())

    # --baseline 0 (apply and recover): the watch is needed (a kill point and a state), the latency
    # baseline is not; by default each would wait as long as the watch before its cutover.
    r = pgvalve("apply", path, "--proxy", admin, "--watch", "3", "--baseline", "0", pg=pg,
                env={"PGVALVE_TEST_KILL_AT": point})
    assert r.rc == -9, r                                        # it died there
    assert f"PGVALVE_TEST_KILL_AT={point}" in r.err

    r = pgvalve("recover", f"--{how}", "--proxy", admin, "--watch", "3", "--baseline", "0", pg=pg)
    state = db.execute("SELECT state FROM pgvalve.migrations ORDER BY id DESC LIMIT 1").fetchone()[0]
    after = constraints(db)
    if how == "resume":
        assert r.rc == 0, r
        assert state == "committed"
        for child, column, _ in FKS[:3]:
            assert after[(child, fk_name(child, column))][1] is True     # validated
        assert after[("comments", "comments_body_check")] == ("CHECK ((length(body) > 0))", True)
        assert db.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'stages'::regclass "
                          "AND attname = 'position'").fetchone()[0]
        assert ("stages", "stages_position_not_null") not in after       # the helper CHECK is gone
    else:
        assert r.rc == 3, r
        assert state == "rolled_back"
        assert after == before                                             # byte-identical definitions
        assert db.execute("SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'stages'::regclass "
                          "AND attname = 'position'").fetchone()[0]
    assert row_counts(db) == rows
    assert proxy.admin("GET", "/holds")[1] == {"holds": []}
    # A second recover has nothing left to do.
    pgvalve("recover", f"--{how}", "--proxy", admin, pg=pg, check=0)


# ---- a coordinator killed while its backend still works ------------------------------------------
#
# A VALIDATE that lasts as long as the test wants: the CHECK calls slow_positive(), which sleeps
# SLOW_ROW_S per row while the test holds the advisory lock SLOW_KNOB (500 rows: about 50 s per
# validation), and answers at once when it does not. The coordinator's observer session (preflight
# counts violating rows with the same expression) is never slowed.

SLOW_KNOB = 4242
SLOW_ROWS = 500
SLOW_ROW_S = 0.1
SLOW_CONSTRAINT = "slow_items_positive"
SLOW_MIGRATION = f"ALTER TABLE slow_items ADD CONSTRAINT {SLOW_CONSTRAINT} CHECK (slow_positive(v));\n"
# The backend the dead coordinator left keeps running its VALIDATE: the server's connection check off.
NO_CHECK = {"PGVALVE_TEST_NO_CONNECTION_CHECK": "1"}


@pytest.fixture
def slow(pg):
    """(db, knob): an autocommit connection with slow_items ready and a clean journal, and a
    connection holding SLOW_KNOB (validations are slow until knob.release())."""
    conn = harness.connect(pg.dsn())
    conn.autocommit = True
    conn.execute("DROP SCHEMA IF EXISTS pgvalve CASCADE")
    conn.execute("DROP TABLE IF EXISTS slow_items")
    conn.execute(f"""
        CREATE OR REPLACE FUNCTION slow_positive(v int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN
            IF current_setting('application_name') NOT LIKE 'pgvalve observer%'
               AND NOT pg_try_advisory_xact_lock_shared({SLOW_KNOB}) THEN
                PERFORM pg_sleep({SLOW_ROW_S});
            END IF;
            RETURN v > 0;
        END $$""")
    conn.execute("CREATE TABLE slow_items (id int PRIMARY KEY, v int)")
    conn.execute(f"INSERT INTO slow_items SELECT g, g FROM generate_series(1, {SLOW_ROWS}) g")
    knob = Knob(pg)
    yield conn, knob
    knob.close()
    conn.close()


class Knob:
    """Holds SLOW_KNOB (validations slow) until release(); can also block slow_items' DDL."""

    def __init__(self, pg):
        self.conn = harness.connect(pg.dsn())
        self.conn.autocommit = True
        self.conn.execute("SELECT pg_advisory_lock(%s)", (SLOW_KNOB,))
        self.held = True

    def release(self):
        if self.held:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (SLOW_KNOB,))
            self.held = False

    def close(self):
        self.conn.close()


def backend_of(db, coordinator_pid, what, wait=None):
    """The pid of coordinator `coordinator_pid`'s backend whose query matches `what` (LIKE), once it
    runs it (and, with `wait`, waits on that kind of event)."""
    def find():
        row = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s AND state = 'active' "
            "AND query LIKE %s AND (%s::text IS NULL OR wait_event_type = %s)",
            (f"pgvalve %, pid {coordinator_pid} on %", what, wait, wait)).fetchone()
        return row and row[0]
    try:
        return harness.wait_for(find, 60, what=f"a backend of coordinator {coordinator_pid} running {what}")
    except TimeoutError as e:
        activity = db.execute("SELECT pid, application_name, state, wait_event_type, left(query, 120) "
                              "FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchall()
        raise AssertionError(f"{e}; pg_stat_activity: {activity}") from None


def backends_of(db, coordinator_pid):
    """Backends still connected for coordinator process `coordinator_pid`."""
    return [r[0] for r in db.execute("SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
                                     (f"pgvalve %, pid {coordinator_pid} on %",)).fetchall()]


def gone(db, pid):
    return db.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0


def journal_state(db):
    return db.execute("SELECT state FROM pgvalve.migrations ORDER BY id DESC LIMIT 1").fetchone()[0]


def slow_constraint(db):
    """(present, validated) of the migration's CHECK."""
    row = db.execute("SELECT convalidated FROM pg_constraint WHERE conname = %s",
                     (SLOW_CONSTRAINT,)).fetchone()
    return (row is not None, row[0] if row else None)


def kill(p):
    """SIGKILL, reaped (a zombie is dead for pgvalve too, but the test should not leave one)."""
    p.kill()
    r = finish(p)
    assert r.rc == -9, r
    return r


def apply_killed_validating(pg, db, tmp_path, env=None):
    """Starts apply, waits until its VALIDATE runs (slow: the knob is held), SIGKILLs it. Returns
    (coordinator pid, backend pid that was running the VALIDATE)."""
    path = write_file(tmp_path, "slow.sql", SLOW_MIGRATION)
    p = spawn("apply", path, "--watch", "0", pg=pg, env=env)
    backend = backend_of(db, p.pid, "%VALIDATE CONSTRAINT%")
    assert journal_state(db) == "cutover"
    kill(p)
    return p.pid, backend


def check_recovered(db, how, r, dead_pid):
    """What a user sees after `recover --<how>`: its exit code, the journal, the constraint, and
    nothing left of the dead coordinator on the server."""
    if how == "resume":
        assert r.rc == 0, r
        assert journal_state(db) == "committed"
        assert slow_constraint(db) == (True, True)
    else:
        assert r.rc == 3, r
        assert journal_state(db) == "rolled_back"
        assert slow_constraint(db) == (False, None)
    assert backends_of(db, dead_pid) == []
    assert db.execute("SELECT count(*) FROM slow_items").fetchone()[0] == SLOW_ROWS


@pytest.mark.parametrize("how", ["resume", "rollback"])
def test_killed_while_validating_orphan_ended(pg, slow, tmp_path, how):
    """The dead apply's backend would go on validating (its connection check is off): `recover`
    run at once names it as orphaned, with what it runs, ends it, and finishes the migration."""
    db, knob = slow
    dead, backend = apply_killed_validating(pg, db, tmp_path, env=NO_CHECK)
    assert not gone(db, backend)                                # the VALIDATE outlives its coordinator
    rec = spawn("recover", f"--{how}", pg=pg)
    harness.wait_for(lambda: gone(db, backend), 120, what="the orphaned backend to be ended")
    knob.release()                                               # recover's own validation is quick
    r = finish(rec)
    check_recovered(db, how, r, dead)
    assert f"backend pid {backend} of coordinator pid {dead}" in r.out, r
    assert "orphaned" in r.out and "VALIDATE CONSTRAINT" in r.out, r


@pytest.mark.parametrize("how", ["resume", "rollback"])
def test_killed_while_validating_recovered_at_once(pg, slow, tmp_path, how):
    """With the connection check on (the default), whichever ends the orphaned VALIDATE first —
    the server noticing the vanished coordinator, or `recover` — `recover` run at once succeeds."""
    db, knob = slow
    dead, backend = apply_killed_validating(pg, db, tmp_path)
    rec = spawn("recover", f"--{how}", pg=pg)
    harness.wait_for(lambda: gone(db, backend), 120, what="the orphaned backend to end")
    knob.release()                                               # recover's own validation is quick
    r = finish(rec)
    check_recovered(db, how, r, dead)
    assert gone(db, backend)


def test_server_ends_orphaned_validation(pg, slow, tmp_path):
    """client_connection_check_interval: with no `recover` at all, the server stops the dead
    coordinator's VALIDATE (which would run on for seconds) and frees the coordinator lock."""
    db, knob = slow
    dead, backend = apply_killed_validating(pg, db, tmp_path)
    harness.wait_for(lambda: gone(db, backend), 120, what="the server to end the orphaned backend")
    assert knob.held                                             # the validation could not have finished
    assert journal_state(db) == "cutover"                        # its transaction rolled back
    assert slow_constraint(db) == (True, False)
    r = pgvalve("recover", "--rollback", pg=pg)
    check_recovered(db, "rollback", r, dead)


def test_live_coordinator_refused(pg, slow, tmp_path):
    """A running apply is never taken for an orphan: `recover` and another `apply` are refused at
    once, naming its pid, and it goes on to commit."""
    db, knob = slow
    path = write_file(tmp_path, "slow.sql", SLOW_MIGRATION)
    p = spawn("apply", path, "--watch", "0", pg=pg)
    backend = backend_of(db, p.pid, "%VALIDATE CONSTRAINT%")
    for args in (("recover", "--rollback"), ("recover", "--resume"), ("apply", path, "--watch", "0")):
        r = pgvalve(*args, pg=pg)
        assert r.rc == 1, r
        assert f"coordinator pid {p.pid} on" in r.err, r
        assert f"backend pid {backend}" in r.err, r
        assert not gone(db, backend)
    assert journal_state(db) == "cutover"
    knob.release()
    r = finish(p)
    assert r.rc == 0, r
    assert journal_state(db) == "committed"
    assert slow_constraint(db) == (True, True)


def output_so_far(p):
    """What a spawned coordinator printed so far (pread: the child's file offset is left alone)."""
    return os.pread(p.out_file.fileno(), 1 << 20, 0).decode(errors="replace")


def test_unrecorded_holder_waited_for(pg, slow, tmp_path):
    """A session pgvalve did not record holds the coordinator lock (an older pgvalve, or a person):
    `recover` neither ends it nor gives up at once: it says what holds the lock and waits, and goes
    on when the lock is free."""
    db, knob = slow
    knob.release()
    path = write_file(tmp_path, "slow.sql", SLOW_MIGRATION)
    r = pgvalve("apply", path, "--watch", "0", pg=pg, env={"PGVALVE_TEST_KILL_AT": "cutover"})
    assert r.rc == -9, r
    other = harness.connect(pg.dsn())
    other.autocommit = True
    other.execute("SELECT pg_advisory_lock(1885824609, 1819698481)")
    rec = spawn("recover", "--rollback", pg=pg)
    harness.wait_for(lambda: "waiting up to" in output_so_far(rec), 60, what="recover to say it waits")
    assert f"held by backend pid {other.info.backend_pid}, idle, last ran `SELECT pg_advisory_lock(" \
        in output_so_far(rec)
    assert "pgvalve did not record it" in output_so_far(rec)
    assert journal_state(db) == "cutover"
    other.close()                                                  # the lock is free
    r = finish(rec)
    check_recovered(db, "rollback", r, -1)


@pytest.mark.parametrize("how", ["resume", "rollback"])
def test_killed_during_recover(pg, slow, tmp_path, how):
    """`recover --resume` itself killed in the middle of its validation: `recover` again, at once."""
    db, knob = slow
    path = write_file(tmp_path, "slow.sql", SLOW_MIGRATION)
    r = pgvalve("apply", path, "--watch", "0", pg=pg, env={"PGVALVE_TEST_KILL_AT": "cutover"})
    assert r.rc == -9, r
    first = spawn("recover", "--resume", pg=pg, env=NO_CHECK)
    backend = backend_of(db, first.pid, "%VALIDATE CONSTRAINT%")
    kill(first)
    rec = spawn("recover", f"--{how}", pg=pg)
    harness.wait_for(lambda: gone(db, backend), 120, what="the orphaned backend to be ended")
    knob.release()
    r = finish(rec)
    check_recovered(db, how, r, first.pid)
    assert f"coordinator pid {first.pid}" in r.out, r


class Reader:
    """A statement reading `table` until end(): it holds ACCESS SHARE, which a DROP CONSTRAINT
    cannot take, so the coordinator waits for it."""

    def __init__(self, pg, db, table):
        self.db = db
        self.conn = harness.connect(pg.dsn())
        self.conn.autocommit = True
        self.pid = self.conn.info.backend_pid
        self.thread = threading.Thread(target=self._read, args=(table,))
        self.thread.start()
        harness.wait_for(lambda: db.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = %s::regclass AND granted",
            (self.pid, table)).fetchone()[0], 60, what="the reader's lock")

    def _read(self, table):
        with contextlib.suppress(Exception):
            self.conn.execute(f"SELECT count(*) FROM {table}, pg_sleep(600)")

    def end(self):
        self.db.execute("SELECT pg_terminate_backend(%s)", (self.pid,))
        self.thread.join()
        with contextlib.suppress(Exception):
            self.conn.close()


def holds_coordinator_lock(db, coordinator_pid):
    """Whether the journal records coordinator `coordinator_pid` as holding the coordinator lock."""
    return db.execute("SELECT count(*) FROM pgvalve.coordinator_sessions s JOIN pg_stat_activity a "
                      "ON a.pid = s.backend_pid AND a.backend_start = s.backend_start "
                      "WHERE s.coordinator_pid = %s AND s.holds_lock", (coordinator_pid,)).fetchone()[0] == 1


def test_killed_during_rollback(pg, slow, tmp_path):
    """`recover --rollback` killed while its rollback waits for a long reader (journal:
    rolling_back): `recover --rollback` again, at once, takes over and rolls back once the reader
    is done."""
    db, knob = slow
    knob.release()
    path = write_file(tmp_path, "slow.sql", SLOW_MIGRATION)
    r = pgvalve("apply", path, "--watch", "0", pg=pg, env={"PGVALVE_TEST_KILL_AT": "cutover"})
    assert r.rc == -9, r
    reader = Reader(pg, db, "slow_items")
    try:
        first = spawn("recover", "--rollback", "--max-stall", "60000", "--attempts", "1", pg=pg, env=NO_CHECK)
        harness.wait_for(lambda: journal_state(db) == "rolling_back", 60, what="the rollback to start")
        assert backends_of(db, first.pid)
        kill(first)
        rec = spawn("recover", "--rollback", pg=pg)
        harness.wait_for(lambda: holds_coordinator_lock(db, rec.pid), 60, what="the new recover's lock")
        assert slow_constraint(db) == (True, False)                # the rollback has not happened yet
    finally:
        reader.end()
    r = finish(rec)
    check_recovered(db, "rollback", r, first.pid)


@pytest.mark.parametrize("how", ["resume", "rollback"])
def test_planned_recovered(pg, slow, tmp_path, how):
    """A crash between recording the migration (planned) and its first step."""
    db, knob = slow
    knob.release()
    path = write_file(tmp_path, "slow.sql", SLOW_MIGRATION)
    r = pgvalve("apply", path, "--watch", "0", pg=pg, env={"PGVALVE_TEST_KILL_AT": "checked"})
    assert r.rc == -9, r
    # The kill point after `planned` is `checked`; `planned` is what the journal says just before it.
    db.execute("UPDATE pgvalve.migrations SET state = 'planned'")
    r = pgvalve("recover", f"--{how}", pg=pg)
    check_recovered(db, how, r, -1)


@contextlib.contextmanager
def cutover_refused(db):
    """An event trigger that makes the migration's ALTER TABLE on slow_items fail (not a lock
    timeout, so no retry), for as long as the block lasts."""
    db.execute("""
        CREATE OR REPLACE FUNCTION refuse_slow_items_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_query() LIKE '%slow_items%ADD CONSTRAINT%' THEN
                RAISE EXCEPTION 'this test refuses the cutover';
            END IF;
        END $$""")
    db.execute("CREATE EVENT TRIGGER refuse_slow_items ON ddl_command_start WHEN TAG IN ('ALTER TABLE') "
               "EXECUTE FUNCTION refuse_slow_items_ddl()")
    try:
        yield
    finally:
        db.execute("DROP EVENT TRIGGER refuse_slow_items")


@pytest.mark.parametrize("how", ["resume", "rollback"])
@pytest.mark.parametrize("state", ["failed", "rolling_back"])
def test_failed_and_rolling_back_recovered(pg, slow, tmp_path, state, how):
    """The cutover fails, so apply records `failed`, then `rolling_back`, and is killed there:
    `recover` finishes the rollback whichever way it is asked."""
    db, knob = slow
    knob.release()
    path = write_file(tmp_path, "slow.sql", SLOW_MIGRATION)
    with cutover_refused(db):
        r = pgvalve("apply", path, "--watch", "0", "--attempts", "1", pg=pg,
                    env={"PGVALVE_TEST_KILL_AT": state})
    assert r.rc == -9, r
    assert "this test refuses the cutover" in r.err, r
    assert journal_state(db) == state
    r = pgvalve("recover", f"--{how}", pg=pg)
    check_recovered(db, "rollback", r, -1)


def test_killed_while_rollback_validates_restored(pg, slow, tmp_path):
    """`pgvalve rollback` killed while it validates a constraint it restored (the migration had
    dropped it): the journal still says rolling_back, not rolled_back, and `recover --rollback`
    run at once ends the orphaned VALIDATE and leaves the constraint restored and valid."""
    db, knob = slow
    knob.release()
    db.execute(f"ALTER TABLE slow_items ADD CONSTRAINT {SLOW_CONSTRAINT} CHECK (slow_positive(v))")
    path = write_file(tmp_path, "drop.sql", f"ALTER TABLE slow_items DROP CONSTRAINT {SLOW_CONSTRAINT};\n")
    r = pgvalve("apply", path, "--watch", "0", pg=pg)
    assert r.rc == 0, r
    assert slow_constraint(db) == (False, None)
    again = Knob(pg)                                               # validations are slow again
    try:
        p = spawn("rollback", "1", pg=pg, env=NO_CHECK)
        backend = backend_of(db, p.pid, "%VALIDATE CONSTRAINT%")
        assert journal_state(db) == "rolling_back"                 # not rolled back until it validates
        assert slow_constraint(db) == (True, False)
        kill(p)
        rec = spawn("recover", "--rollback", pg=pg)
        harness.wait_for(lambda: gone(db, backend), 120, what="the orphaned backend to be ended")
        again.release()
        r = finish(rec)
    finally:
        again.close()
    assert r.rc == 3, r
    assert journal_state(db) == "rolled_back"
    assert slow_constraint(db) == (True, True)
    assert backends_of(db, p.pid) == []
