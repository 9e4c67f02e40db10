"""The coordinator against a real PostgreSQL and a real proxy (docs/architecture.md: the coordinator):
plan shows the safe steps and the orphans; apply adds 22 foreign keys across 9 tables under a
pgbench write load through the proxy with no failed client transaction; a long transaction
holding a row lock makes the cutover wait (holding nothing) and succeed after it ends;
orphans refuse the migration and leave the schema unchanged; a violation found by VALIDATE,
and an application writing orphans after the cutover, roll back by themselves; a replaced
constraint rolled back comes back byte-identical; a proxy that does not acknowledge abandons
the attempt and releases every hold; a second concurrent apply is refused; a window in the
future makes apply wait."""

import json
import signal
import threading
import time

import psycopg
import pytest

import harness
from coordinator import (FKS, schema_conn, constraints, finish, fk_migration, fk_name, in_state, last_migration,
                         pgbench_result, pgvalve, spawn, start_pgbench, wait_output, waiting_for_cutover,
                         write_file)


@pytest.fixture
def db(pg):
    with schema_conn(pg) as conn:
        yield conn


def fk_state(db):
    """{name: validated} of the migration's foreign keys that exist."""
    rows = db.execute("SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' "
                      "AND connamespace = 'public'::regnamespace").fetchall()
    return dict(rows)


def journal_state(db, mig_id):
    return db.execute("SELECT state FROM pgvalve.migrations WHERE id = %s", (mig_id,)).fetchone()[0]


# --------------------------------------------------------------------------- plan

def test_plan_shows_steps_locks_and_orphans(pg, db, tmp_path):
    db.execute("INSERT INTO submissions VALUES (900001, 1, 999999, 1, 1, 0), (900002, 1, 999998, 1, 1, 0)")
    path = write_file(tmp_path, "0042_add_fks.sql", fk_migration())
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 1, r                                   # preflight would refuse: orphans
    assert "submissions_stage_id_fkey" in r.out
    assert "2 row(s) of submissions reference no row of stages" in r.out, r
    assert "SHARE ROW EXCLUSIVE" in r.out and "NOT VALID" in r.out and "VALIDATE CONSTRAINT" in r.out
    assert "apply would refuse this migration" in r.out

    j = pgvalve("plan", path, "--format", "json", pg=pg)
    doc = json.loads(j.out)
    assert len(doc["constraints"]) == len(FKS)
    phases = [s["phase"] for s in doc["steps"]]
    assert phases.count("cutover") == len(FKS) and phases.count("validate") == len(FKS)
    orphans = [f for f in doc["preflight"] if f["check"] == "orphans"]
    assert len(orphans) == 1 and orphans[0]["count"] == 2 and orphans[0]["level"] == "error"
    # plan changes nothing
    assert fk_state(db) == {}


def test_unsupported_statement_is_refused_with_its_line(pg, db, tmp_path):
    path = write_file(tmp_path, "bad.sql", "-- one\n\nALTER TABLE users ADD CONSTRAINT u_ws_fk FOREIGN KEY "
                      "(workspace_id) REFERENCES workspaces (id);\nDROP TABLE comments;\n")
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 1, r
    assert "bad.sql:4" in r.err, r
    r = pgvalve("apply", path, "--yes", pg=pg)
    assert r.rc == 1, r
    assert fk_state(db) == {}


# --------------------------------------------------------------------------- apply under load

def test_apply_22_foreign_keys_under_write_load(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    path = write_file(tmp_path, "0042_add_fks.sql", fk_migration())
    load = start_pgbench(proxy, tmp_path, seconds=25)
    # The load is writing through the proxy before the migration starts.
    harness.wait_for(lambda: db.execute("SELECT count(*) FROM comments WHERE id >= 1000000").fetchone()[0] > 0,
                     60, interval=0.1, what="the write load to start")
    r = pgvalve("apply", path, "--proxy", f"http://{harness.HOST}:{proxy.admin_port}", "--watch", "2",
                "--max-stall", "500", "--yes", pg=pg)
    done, failed, aborted, out = pgbench_result(load)
    assert r.rc == 0, r
    state = fk_state(db)
    assert sorted(state) == sorted(fk_name(c, col) for c, col, _ in FKS)
    assert all(state.values()), state                    # every one VALIDATEd
    assert done > 0 and failed == 0 and aborted == 0, out
    mig_id, st = last_migration(db)
    assert st == "committed"
    assert proxy.admin("GET", "/holds")[1] == {"holds": []}
    assert "committed" in r.out


def test_cutover_waits_for_a_long_transaction_then_succeeds(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:3]))
    blocker = harness.connect(pg.dsn())
    blocker.execute("UPDATE projects SET title = title WHERE id = 1")   # a row lock, transaction open
    p = spawn("apply", path, "--proxy", f"http://{harness.HOST}:{proxy.admin_port}", "--watch", "0",
              "--max-stall", "200", pg=pg)
    # The cutover waits, holding nothing: clients are not parked while the blocker runs.
    harness.wait_for(lambda: in_state(db, "prepared"), 60,
        what="the migration to reach its cutover")
    wait_output(p, "waiting, holding nothing")
    assert proxy.admin("GET", "/holds")[1] == {"holds": []}
    with psycopg.connect(proxy.dsn(), autocommit=True) as c:
        c.execute("UPDATE users SET email = email WHERE id = 2")    # not stalled
    assert p.poll() is None
    blocker.commit()
    blocker.close()
    r = finish(p)
    assert r.rc == 0, r
    assert "waiting, holding nothing" in r.out and "pid " in r.out, r
    assert all(fk_state(db).values()) and len(fk_state(db)) == 3


# --------------------------------------------------------------------------- refusals

def test_orphans_refuse_and_change_nothing(pg, db, tmp_path):
    db.execute("INSERT INTO comments VALUES (900001, 1, 77777777, 1, 'orphan')")
    before = constraints(db)
    path = write_file(tmp_path, "fk.sql", fk_migration())
    r = pgvalve("apply", path, "--yes", pg=pg)
    assert r.rc == 1, r
    assert "reference no row of submissions" in r.err and "hint:" in r.err, r
    assert constraints(db) == before
    assert db.execute("SELECT count(*) FROM pgvalve.migrations").fetchone()[0] == 0


def test_second_concurrent_apply_is_refused(pg, db, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:2]))
    first = spawn("apply", path, "--postpone-cutover", "--watch", "0", pg=pg)
    mig_id = waiting_for_cutover(db, 60)
    r = pgvalve("apply", path, "--yes", pg=pg)
    assert r.rc == 1, r
    assert "another pgvalve" in r.err, r
    pgvalve("cutover", mig_id, pg=pg, check=0)
    assert finish(first).rc == 0


def test_window_in_the_future_makes_apply_wait(pg, db, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:1]))
    now = time.gmtime()
    start = (now.tm_hour + 2) % 24
    window = f"daily {start:02d}:00-{(start + 1) % 24:02d}:00 UTC"
    p = spawn("apply", path, "--window", window, "--watch", "0", pg=pg)
    harness.wait_for(lambda: in_state(db, "prepared"), 60, what="apply to reach its cutover")
    wait_output(p, "waiting for the next cutover window")
    assert p.poll() is None and fk_state(db) == {}
    p.send_signal(signal.SIGKILL)
    r = finish(p)
    assert "waiting for the next cutover window" in r.out, r
    r = pgvalve("recover", "--rollback", pg=pg)
    assert r.rc == 3, r
    assert last_migration(db)[1] == "rolled_back"


# --------------------------------------------------------------------------- rollbacks

def test_violation_found_by_validate_rolls_back(pg, db, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:4]))
    p = spawn("apply", path, "--postpone-cutover", "--watch", "0", pg=pg)
    mig_id = waiting_for_cutover(db, 60)
    # After preflight, before the cutover: an orphan arrives (NOT VALID will not see it).
    db.execute("INSERT INTO projects VALUES (900001, 1, 55555555, 'orphan owner')")
    pgvalve("cutover", mig_id, pg=pg, check=0)
    r = finish(p)
    assert r.rc == 3, r
    assert "does not hold" in r.out + r.err, r
    assert fk_state(db) == {}
    assert journal_state(db, mig_id) == "rolled_back"


def test_app_writing_orphans_after_cutover_rolls_back(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    fks = [f for f in FKS if f[0] == "comments"]
    path = write_file(tmp_path, "fk.sql", fk_migration(fks))
    stop = threading.Event()

    def bad_app():
        with psycopg.connect(proxy.dsn(), autocommit=True) as c:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    c.execute("INSERT INTO comments VALUES (%s, 1, 99999999, 1, 'orphan')", (800000 + i,))
                except psycopg.errors.ForeignKeyViolation:
                    pass
                time.sleep(0.02)

    # --baseline 0: an error rule; the default latency baseline would add 30 s before the cutover.
    p = spawn("apply", path, "--proxy", f"http://{harness.HOST}:{proxy.admin_port}", "--watch", "30",
              "--baseline", "0", "--rollback-on", "constraint_violations > 5 in 10s", pg=pg)
    harness.wait_for(lambda: in_state(db, "watching"), 120, what="the watch to start")
    t = threading.Thread(target=bad_app, daemon=True)
    t.start()
    r = finish(p, timeout=120)
    stop.set()
    t.join(10)
    assert r.rc == 3, r
    assert "constraint_violations > 5 in 10s" in r.out, r
    assert "comments_submission_id_fkey" in r.out
    assert fk_state(db) == {}


def test_replaced_constraint_rolled_back_is_byte_identical(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    db.execute("ALTER TABLE comments ADD CONSTRAINT comments_submission_id_fkey FOREIGN KEY (submission_id) "
               "REFERENCES submissions (id) ON DELETE CASCADE")
    before = constraints(db, "comments")
    path = write_file(tmp_path, "replace.sql",
                      "ALTER TABLE comments DROP CONSTRAINT comments_submission_id_fkey;\n"
                      "ALTER TABLE comments ADD CONSTRAINT comments_submission_id_fkey FOREIGN KEY (submission_id) "
                      "REFERENCES submissions (id) ON DELETE RESTRICT;\n")
    admin = f"http://{harness.HOST}:{proxy.admin_port}"
    pgvalve("apply", path, "--proxy", admin, "--watch", "0", pg=pg, check=0)
    after = constraints(db, "comments")
    assert "ON DELETE RESTRICT" in after[("comments", "comments_submission_id_fkey")][0]
    mig_id, _ = last_migration(db)
    r = pgvalve("rollback", mig_id, "--proxy", admin, pg=pg)
    assert r.rc == 3, r
    assert constraints(db, "comments") == before
    assert journal_state(db, mig_id) == "rolled_back"
    # status reads the journal back: the migration, its steps, the prior definition kept.
    doc = json.loads(pgvalve("status", mig_id, "--format", "json", pg=pg, check=0).out)
    assert doc["state"] == "rolled_back" and [s["kind"] for s in doc["steps"]] == [
        "drop_constraint", "add_not_valid", "validate"]
    assert any(p["name"] == "comments_submission_id_fkey" and "ON DELETE CASCADE" in p["definition"]
               for p in doc["prior_constraints"])
    listing = json.loads(pgvalve("status", "--format", "json", pg=pg, check=0).out)
    assert [m["state"] for m in listing["migrations"]] == ["rolled_back"]


def test_a_proxy_that_does_not_acknowledge_abandons_the_attempt(pg, db, proxy_factory, tmp_path):
    good = proxy_factory(pg)
    # The second proxy answers reads but refuses holds: it wants a token the coordinator lacks.
    token = write_file(tmp_path, "admin.token", "a-token-the-coordinator-lacks\n")
    refusing = proxy_factory(pg, {"admin": {"token_file": token}})
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:2]))
    r = pgvalve("apply", path, "--proxy", f"http://{harness.HOST}:{good.admin_port}",
                "--proxy", f"http://{harness.HOST}:{refusing.admin_port}", "--attempts", "2", "--watch", "0", pg=pg)
    assert r.rc == 3, r
    assert "did not acknowledge the hold" in r.out + r.err, r
    assert good.admin("GET", "/holds")[1] == {"holds": []}    # released on the proxy that took it
    assert fk_state(db) == {}
    assert last_migration(db)[1] == "rolled_back"


def test_mixed_case_and_hostile_names_stay_quoted(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    db.execute('DROP SCHEMA IF EXISTS "Billing" CASCADE')
    db.execute('CREATE SCHEMA "Billing"')
    db.execute('CREATE TABLE "Billing"."Customers" ("Id" int PRIMARY KEY)')
    db.execute('CREATE TABLE "Billing"."Order Items" ("Id" int PRIMARY KEY, "Customer Id" int)')
    db.execute('INSERT INTO "Billing"."Customers" SELECT g FROM generate_series(1, 100) g')
    db.execute('INSERT INTO "Billing"."Order Items" SELECT g, 1 + g % 100 FROM generate_series(1, 1000) g')
    path = write_file(tmp_path, "names.sql",
                      'ALTER TABLE "Billing"."Order Items" ADD CONSTRAINT "fk; DROP TABLE users; --" '
                      'FOREIGN KEY ("Customer Id") REFERENCES "Billing"."Customers" ("Id");\n'
                      'ALTER TABLE "Billing"."Order Items" ADD CONSTRAINT "Weird ""quoted"" check" '
                      'CHECK ("Customer Id" > 0);\n')
    admin = f"http://{harness.HOST}:{proxy.admin_port}"
    pgvalve("apply", path, "--proxy", admin, "--watch", "0", pg=pg, check=0)
    rows = db.execute("SELECT conname, convalidated FROM pg_constraint "
                      "WHERE conrelid = '\"Billing\".\"Order Items\"'::regclass AND contype IN ('f', 'c') "
                      "ORDER BY 1").fetchall()
    assert rows == [('Weird "quoted" check', True), ("fk; DROP TABLE users; --", True)]
    assert db.execute("SELECT to_regclass('users') IS NOT NULL").fetchone()[0]   # nothing broke out
    mig_id, _ = last_migration(db)
    pgvalve("rollback", mig_id, "--proxy", admin, pg=pg, check=3)
    assert db.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = '\"Billing\".\"Order Items\"'::regclass "
                      "AND contype IN ('f', 'c')").fetchone()[0] == 0


def test_terminate_blockers_after_ends_an_old_transaction(pg, db, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:1]))
    blocker = harness.connect(pg.dsn())
    blocker.execute("UPDATE users SET email = email WHERE id = 1")          # an old transaction, idle
    pid = blocker.info.backend_pid
    r = pgvalve("apply", path, "--terminate-blockers-after", "1s", "--watch", "0", "--format", "json", pg=pg)
    assert r.rc == 0, r
    events = r.events()
    assert any(e["event"] == "warning" and f"pid {pid}" in e.get("detail", "") for e in events), events
    assert events[-1]["event"] == "committed"
    assert db.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0
    blocker.close()


def test_unique_duplicates_refuse_and_an_invalid_index_is_rebuilt(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    admin = f"http://{harness.HOST}:{proxy.admin_port}"
    db.execute("UPDATE users SET email = 'same@example.com' WHERE id IN (1, 2)")
    path = write_file(tmp_path, "uq.sql", "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\n")
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 1 and "1 key value(s) occur more than once in users" in r.out, r
    # A failed CREATE UNIQUE INDEX CONCURRENTLY (as a killed earlier run might leave) stays, invalid.
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)")
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_key'::regclass"
                      ).fetchone()[0] is False
    db.execute("UPDATE users SET email = 'other@example.com' WHERE id = 2")
    r = pgvalve("apply", path, "--proxy", admin, "--watch", "0", pg=pg)
    assert r.rc == 0, r
    assert "was left invalid" in r.out, r
    assert constraints(db, "users")[("users", "users_email_key")] == ("UNIQUE (email)", True)
    # Rolled back: the constraint goes, and so does the index the migration built; others stay.
    mig_id, _ = last_migration(db)
    pgvalve("rollback", mig_id, "--proxy", admin, pg=pg, check=3)
    assert ("users", "users_email_key") not in constraints(db, "users")
    assert db.execute("SELECT to_regclass('users_email_key')").fetchone()[0] is None
    assert db.execute("SELECT to_regclass('users_pkey')").fetchone()[0] is not None


def test_rollback_drops_indexes_the_migration_built_but_not_older_ones(pg, db, tmp_path):
    db.execute("CREATE INDEX older_idx ON comments (author_id)")
    path = write_file(tmp_path, "idx.sql", "CREATE INDEX comments_submission_idx ON comments (submission_id);\n"
                      "CREATE INDEX IF NOT EXISTS older_idx ON comments (author_id);\n")
    r = pgvalve("apply", path, "--watch", "0", pg=pg, env={"PGVALVE_TEST_KILL_AT": "prepared"})
    assert r.rc == -9, r
    assert db.execute("SELECT to_regclass('comments_submission_idx')").fetchone()[0] is not None
    pgvalve("recover", "--rollback", pg=pg, check=3)
    assert db.execute("SELECT to_regclass('comments_submission_idx')").fetchone()[0] is None
    assert db.execute("SELECT to_regclass('older_idx')").fetchone()[0] is not None


# --------------------------------------------------------------------------- journal format

def test_a_journal_with_numbered_locks_is_upgraded_and_resumed(pg, db, tmp_path):
    """An earlier pgvalve stored each step's lock and hold as numbers: a migration it left waiting
    for its cutover is resumed by this one with the right locks, and the journal now names them."""
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:2]))
    plan = json.loads(pgvalve("plan", path, "--format", "json", pg=pg).out)
    r = pgvalve("apply", path, "--watch", "0", pg=pg, env={"PGVALVE_TEST_KILL_AT": "prepared"})
    assert r.rc == -9, r
    # The steps as the earlier version wrote them: each enum's number.
    db.execute("""
        ALTER TABLE pgvalve.steps
          ALTER COLUMN lock DROP DEFAULT,
          ALTER COLUMN lock TYPE int USING (array_position(
            ARRAY['none', 'share_update_exclusive', 'share_row_exclusive', 'access_exclusive'], lock) - 1),
          ALTER COLUMN lock SET DEFAULT 0,
          ALTER COLUMN hold DROP DEFAULT,
          ALTER COLUMN hold TYPE int USING (array_position(ARRAY['none', 'writes', 'all'], hold) - 1),
          ALTER COLUMN hold SET DEFAULT 0""")
    assert db.execute("SELECT count(*) FROM pgvalve.steps WHERE lock = 2 AND hold = 1").fetchone()[0] == 2

    r = pgvalve("recover", "--resume", pg=pg)
    assert r.rc == 0, r
    assert all(fk_state(db).values()) and len(fk_state(db)) == 2
    steps = db.execute("SELECT lock, hold FROM pgvalve.steps ORDER BY seq").fetchall()
    assert steps == [(s["lock"].lower().replace(" ", "_"), s["hold"]) for s in plan["steps"]]
    assert {lock for lock, _ in steps} == {"share_row_exclusive", "share_update_exclusive"}
    # status reads the upgraded journal too.
    doc = json.loads(pgvalve("status", "--format", "json", pg=pg).out)
    assert [m["state"] for m in doc["migrations"]] == ["committed"]
