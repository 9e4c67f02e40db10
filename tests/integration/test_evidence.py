"""Evidence in apply (docs/architecture.md §4, evidence) against a real PostgreSQL: `apply --self-test`
proves each new constraint enforced (FK with NO ACTION, RESTRICT and CASCADE, CHECK, NOT NULL,
UNIQUE) inside transactions that are always rolled back, changing nothing; a lock_timeout that
fires is reported and the migration still commits; `pgvalve report ID` tells the story from the
journal after a commit and after a rollback, with the damage assessment."""

import json
import threading
import time

import psycopg
import pytest

import harness
from coordinator import finish, in_state, pgvalve, spawn, write_file

# children reference parents 1-15, kept (RESTRICT) 11-20: a parent only children reference (1-10)
# and one only kept references (16-20) exist, so each delete check finds a row that only its
# own foreign key protects; owned (CASCADE) references all of them
SCHEMA = """
CREATE TABLE parents (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE children (id serial PRIMARY KEY, parent_id int, qty int NOT NULL DEFAULT 1,
                       code text, note text NOT NULL DEFAULT 'x');
CREATE TABLE kept (id serial PRIMARY KEY, parent_id int NOT NULL);
CREATE TABLE owned (id serial PRIMARY KEY, parent_id int NOT NULL);
CREATE TABLE extra (id serial PRIMARY KEY, parent_id int);
INSERT INTO parents SELECT g, 'p' || g FROM generate_series(1, 20) g;
INSERT INTO children (parent_id, qty, code) SELECT 1 + g % 15, g, 'c' || g FROM generate_series(1, 50) g;
INSERT INTO kept (parent_id) SELECT 11 + g % 10 FROM generate_series(1, 30) g;
INSERT INTO owned (parent_id) SELECT 1 + g % 20 FROM generate_series(1, 30) g;
INSERT INTO extra (parent_id) SELECT 1 + g % 20 FROM generate_series(1, 10) g;
"""

MIGRATION = """
ALTER TABLE children ADD CONSTRAINT children_parent_fk FOREIGN KEY (parent_id) REFERENCES parents (id);
ALTER TABLE kept ADD CONSTRAINT kept_parent_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE RESTRICT;
ALTER TABLE owned ADD CONSTRAINT owned_parent_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE CASCADE;
ALTER TABLE children ADD CONSTRAINT children_qty_positive CHECK (qty > 0);
ALTER TABLE children ALTER COLUMN code SET NOT NULL;
ALTER TABLE children ADD CONSTRAINT children_code_key UNIQUE (code);
"""

TABLES = ("parents", "children", "kept", "owned", "extra")


@pytest.fixture
def db(pg):
    conn = harness.connect(pg.dsn())
    conn.autocommit = True
    conn.execute("DROP SCHEMA IF EXISTS pgvalve CASCADE")
    conn.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES) + " CASCADE")
    conn.execute("DROP FUNCTION IF EXISTS touched() CASCADE")
    for t in TABLES:
        for s in ("first", "other", "count"):
            conn.execute(f"DROP SEQUENCE IF EXISTS touch_{s}_{t}")
    conn.execute(SCHEMA)
    yield conn
    conn.close()


def contents(db):
    """Every row of every table (with its ctid and xmin: a row updated and rolled back is not
    the same tuple any more, so this also shows that nothing was written and kept)."""
    return {t: db.execute(f"SELECT ctid::text, xmin::text, * FROM {t} ORDER BY ctid").fetchall()
            for t in TABLES}


TOUCH = """
CREATE FUNCTION touched() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE first bigint; called boolean;
BEGIN
  -- sequences are not transactional: what the self-test's rolled-back statements did stays
  EXECUTE format('SELECT last_value, is_called FROM %I', 'touch_first_' || TG_TABLE_NAME) INTO first, called;
  IF NOT called THEN
    PERFORM setval('touch_first_' || TG_TABLE_NAME, OLD.id);
  ELSIF first <> OLD.id THEN
    PERFORM nextval('touch_other_' || TG_TABLE_NAME);
  END IF;
  PERFORM nextval('touch_count_' || TG_TABLE_NAME);
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
"""


def watch_touches(db):
    """Counts, across rollbacks, the rows any UPDATE or DELETE touches in each table, and
    whether they were all one row (a trigger and sequences: see TOUCH)."""
    db.execute(TOUCH)
    for t in TABLES:
        for s in ("first", "other", "count"):
            db.execute(f"CREATE SEQUENCE touch_{s}_{t} MINVALUE 0 START 0")
        db.execute(f"CREATE TRIGGER touched BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION touched()")


def touches(db):
    """{table: (row-touches, touches of a second row)}."""
    out = {}
    for t in TABLES:
        n = db.execute(f"SELECT CASE WHEN is_called THEN last_value + 1 ELSE 0 END FROM touch_count_{t}").fetchone()[0]
        o = db.execute(f"SELECT CASE WHEN is_called THEN last_value + 1 ELSE 0 END FROM touch_other_{t}").fetchone()[0]
        out[t] = (n, o)
    return out


def checks(r):
    return [e for e in r.events() if e.get("event") == "self_test_check"]


def by_constraint(r):
    out = {}
    for e in checks(r):
        out.setdefault(e["constraint"], []).append(e)
    return out


def test_self_test_proves_every_constraint_and_changes_nothing(pg, db, tmp_path):
    path = write_file(tmp_path, "0001_evidence.sql", MIGRATION)
    before_counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    r = pgvalve("apply", path, "--yes", "--self-test", "--format", "json", pg=pg)
    assert r.rc == 0, r
    cs = by_constraint(r)
    summary = [e for e in r.events() if e.get("event") == "self_test"]
    assert summary and summary[0]["enforced"] == 6 and summary[0]["constraints"] == 6, r

    (child, parent) = cs["children_parent_fk"]
    assert child["outcome"] == "enforced" and child["sqlstate"] == "23503"
    assert parent["outcome"] == "enforced" and parent["sqlstate"] == "23503"
    (child, parent) = cs["kept_parent_fk"]
    assert child["outcome"] == "enforced" and parent["outcome"] == "enforced"
    (child, parent) = cs["owned_parent_fk"]
    assert child["outcome"] == "enforced"
    assert parent["outcome"] == "skipped" and "CASCADE" in parent["detail"], parent
    (chk,) = cs["children_qty_positive"]
    assert chk["outcome"] == "enforced" and chk["sqlstate"] == "23514", chk
    (nn,) = [e for e in checks(r) if e["kind"] == "not_null"]
    assert nn["outcome"] == "enforced" and nn["sqlstate"] == "23502"
    (uq,) = cs["children_code_key"]
    assert uq["outcome"] == "enforced" and uq["sqlstate"] == "23505"

    assert {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES} == before_counts

    # recorded in the journal for the report
    mig = db.execute("SELECT max(id) FROM pgvalve.migrations").fetchone()[0]
    rows = db.execute("SELECT constraint_name, outcome FROM pgvalve.self_tests WHERE migration_id = %s "
                      "ORDER BY seq", (mig,)).fetchall()
    assert len(rows) == len(checks(r)) == 9
    assert [o for _, o in rows].count("enforced") == 8


def test_self_test_text_output(pg, db, tmp_path):
    path = write_file(tmp_path, "0001_evidence.sql", MIGRATION)
    r = pgvalve("apply", path, "--yes", "--self-test", pg=pg)
    assert r.rc == 0, r
    assert "self-test: 6/6 constraints enforce" in r.out, r
    assert "ON DELETE CASCADE: deleting a parent row is allowed by design" in r.out, r


def test_self_test_rolls_back_and_touches_one_row_per_check(pg, db, tmp_path):
    # constraints in place by a first apply; the self-test is then run again on them by a
    # second migration that adds nothing else: compare the tables around that run alone
    path = write_file(tmp_path, "0001_evidence.sql", MIGRATION)
    pgvalve("apply", path, "--yes", pg=pg, check=0)
    watch_touches(db)
    before = contents(db)
    path2 = write_file(tmp_path, "0002_more.sql",
                       "ALTER TABLE children ADD CONSTRAINT children_qty_small CHECK (qty < 1000);\n"
                       "ALTER TABLE extra ADD CONSTRAINT extra_parent_fk FOREIGN KEY (parent_id) "
                       "REFERENCES parents (id);\n")
    r = pgvalve("apply", path2, "--yes", "--self-test", "--format", "json", pg=pg)
    assert r.rc == 0, r
    assert [e for e in r.events() if e.get("event") == "self_test"][0]["enforced"] == 2, checks(r)
    assert contents(db) == before           # same tuples, same versions: nothing kept
    # every statement the checks ran touched one row, and always the same one per table: the
    # CHECK tries values on one row of children until one is refused (999, then 1000: refused);
    # the FK points one row of extra nowhere; the delete check finds no parent row only extra
    # references (children and kept would refuse its deletion first), so it deletes nothing
    assert len(checks(r)) == 3
    assert touches(db) == {"parents": (0, 0), "children": (2, 0), "kept": (0, 0), "owned": (0, 0),
                           "extra": (1, 0)}, (touches(db), checks(r))


def test_lock_timeout_is_reported_not_fatal(pg, db, tmp_path):
    path = write_file(tmp_path, "0001_check.sql",
                      "ALTER TABLE children ADD CONSTRAINT children_qty_positive CHECK (qty > 0);\n")
    # apply stops (killed) once the constraint is validated and finalized; another session then
    # locks children against writes; recover --resume --self-test runs the self-test into that lock
    r = pgvalve("apply", path, "--yes", pg=pg, env={"PGVALVE_TEST_KILL_AT": "finalized"})
    assert "PGVALVE_TEST_KILL_AT=finalized" in r.err, r
    blocker = harness.connect(pg.dsn())
    blocker.autocommit = False
    blocker.execute("LOCK TABLE children IN SHARE MODE")   # reads go on; writes wait
    try:
        r = pgvalve("recover", "--resume", "--self-test", "--format", "json", pg=pg)
    finally:
        blocker.rollback()
        blocker.close()
    assert r.rc == 0, r
    (chk,) = checks(r)
    assert chk["outcome"] == "lock_timeout" and chk["sqlstate"] == "55P03", chk
    assert "lock_timeout" in chk["detail"]
    summary = [e for e in r.events() if e.get("event") == "self_test"][0]
    assert summary["enforced"] == 0 and summary["constraints"] == 1
    assert db.execute("SELECT state FROM pgvalve.migrations ORDER BY id DESC LIMIT 1").fetchone()[0] == "committed"
    assert db.execute("SELECT outcome FROM pgvalve.self_tests").fetchall() == [("lock_timeout",)]


# --------------------------------------------------------------------------- pgvalve report

def test_report_after_commit(pg, db, tmp_path):
    path = write_file(tmp_path, "0001_evidence.sql", MIGRATION)
    pgvalve("apply", path, "--yes", "--self-test", pg=pg, check=0)
    mig = db.execute("SELECT max(id) FROM pgvalve.migrations").fetchone()[0]

    r = pgvalve("report", mig, "--format", "json", pg=pg, check=0)
    doc = json.loads(r.out)
    assert doc["id"] == mig and doc["state"] == "committed"
    assert doc["started_at"] and doc["cutover_at"] and doc["finished_at"]
    validations = [s for s in doc["steps"] if s["kind"] == "validate"]
    assert len(validations) == 5      # 3 FKs, the CHECK, NOT NULL's helper check
    assert all(s["state"] == "done" and s["duration_s"] >= 0 for s in validations)
    assert doc["cutover"]["attempts"] == 1 and doc["cutover"]["proxies"] == []
    assert doc["watch_errors"] is None   # no proxy: nothing watched
    assert doc["self_test"]["enforced"] == 6 and doc["self_test"]["constraints"] == 6
    assert len(doc["self_test"]["checks"]) == 9
    assert "damage" not in doc

    text = pgvalve("report", mig, pg=pg, check=0).out
    assert f"migration {mig} (0001_evidence): committed" in text
    assert "self-test: 6/6 constraints enforce" in text
    assert "VALIDATE CONSTRAINT" in text and "damage" not in text

    r = pgvalve("report", "999999", pg=pg)
    assert r.rc == 2 and "no such migration" in r.err


def test_report_after_rollback_assesses_damage(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    path = write_file(tmp_path, "0001_check.sql",
                      "ALTER TABLE children ADD CONSTRAINT children_qty_positive CHECK (qty > 0);\n")
    stop = threading.Event()
    seen = {"refused": 0, "written": 0}

    def bad_app():
        # writes a negative quantity until one is accepted (the constraint is gone): counts what it saw
        with psycopg.connect(proxy.dsn(), autocommit=True) as c:
            while not stop.is_set():
                try:
                    c.execute("INSERT INTO children (parent_id, qty, code) VALUES (1, -1, 'bad')")
                    seen["written"] += 1
                    return
                except psycopg.errors.CheckViolation:
                    seen["refused"] += 1
                time.sleep(0.02)

    p = spawn("apply", path, "--proxy", f"http://{harness.HOST}:{proxy.admin_port}", "--watch", "60",
              "--baseline", "1", "--rollback-on", "constraint_violations > 5 in 10s", pg=pg)
    harness.wait_for(lambda: in_state(db, "watching"), 120, what="the watch to start")
    t = threading.Thread(target=bad_app, daemon=True)
    t.start()
    r = finish(p, timeout=180)
    t.join(60)
    stop.set()
    assert r.rc == 3, r
    assert seen["refused"] > 5, seen
    # rows written since the constraint went: the app's accepted row (if it got there) and ours
    db.execute("INSERT INTO children (parent_id, qty, code) SELECT 1, -g, 'late' FROM generate_series(1, 4) g")
    mig = db.execute("SELECT max(id) FROM pgvalve.migrations").fetchone()[0]

    doc = json.loads(pgvalve("report", mig, "--format", "json", pg=pg, check=0).out)
    assert doc["state"] == "rolled_back" and "constraint_violations" in doc["error"]
    assert doc["cutover"]["proxies"] == [f"http://{harness.HOST}:{proxy.admin_port}"]
    assert doc["watch_errors"]["read"] is True
    assert doc["watch_errors"]["by_constraint"]["children_qty_positive"] == seen["refused"]
    assert doc["watch_errors"]["by_sqlstate"]["23514"] == seen["refused"]
    (dmg,) = doc["damage"]["constraints"]
    assert dmg["constraint"] == "children_qty_positive"
    assert dmg["client_errors"] == seen["refused"]
    assert dmg["violating_rows"] == seen["written"] + 4
    assert doc["damage"]["constraints_equal_snapshot"] is True and doc["damage"]["differences"] == []
    # the cutover's hold, as the proxy acknowledged it; the table's latency before and during the watch
    (acks,) = [j for j in doc["hold_acks"] if j["what"] == "cutover"]
    assert acks["holds"][-1]["acked"], acks
    assert [p["proxy"] for p in acks["holds"][-1]["proxies"]] == [f"http://{harness.HOST}:{proxy.admin_port}"]
    # and the rollback's own hold (it drops the constraint under one), acknowledged and released
    (back,) = [j for j in doc["hold_acks"] if j["what"] == "rollback"]
    last = back["holds"][-1]
    assert last["acked"] and last["mode"] == "all", back
    (p_ack,) = last["proxies"]
    assert p_ack["status"] == 201 and p_ack["held_ms"] is not None and p_ack["held_ms"] >= 0, back
    children = [v for k, v in doc["latency"]["tables"].items() if k.endswith("children")]
    assert children and children[0]["write"]["watch"]["count"] > 0, doc["latency"]

    text = pgvalve("report", mig, pg=pg, check=0).out
    assert "damage assessment (rolled back):" in text
    assert (f"children_qty_positive on \"children\": {seen['written'] + 4} row(s) violate it now; "
            f"{seen['refused']} client error(s) from it during the watch") in text, text
    assert "constraints of every affected table equal the snapshot: yes" in text
    assert "  rollback attempt 1, all hold " in text and "acknowledged by every proxy" in text, text
