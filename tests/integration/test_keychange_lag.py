"""The key type change's backfill under --max-lag (docs/architecture.md §4.9): with a real streaming
standby whose replay is paused, the backfill stops between batches and says so, its journal position
stands still, and it finishes once the standby replays again; with no standby it is not throttled."""

import os
import time

import psycopg
import pytest

import harness
from coordinator import finish, pgvalve, spawn, write_file

SCHEMA = """
DROP SCHEMA IF EXISTS pgvalve CASCADE;
DROP TABLE IF EXISTS orders, accounts CASCADE;
CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts ON DELETE CASCADE);
INSERT INTO accounts (name) SELECT 'a' || g FROM generate_series(1, 2000) g;
INSERT INTO orders (account_id) SELECT 1 + g % 2000 FROM generate_series(1, 2000) g;
ANALYZE;
"""

MIGRATION = "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n"


@pytest.fixture
def db(pg):
    conn = harness.connect(pg.dsn())
    conn.autocommit = True
    conn.execute(SCHEMA)
    yield conn
    conn.close()


@pytest.fixture
def standby(pg):
    sb = harness.start_standby(pg)
    yield sb
    sb.destroy()
    # the walsender goes with it: later tests see a server without standbys
    harness.wait_for(lambda: pg.psql_admin("SELECT count(*) FROM pg_stat_replication").strip() == "0",
                     60, what="the standby's walsender to exit")


def caught_up(pg):
    return pg.psql_admin("SELECT count(*) FROM pg_stat_replication "
                         "WHERE replay_lsn >= pg_current_wal_lsn()").strip() == "1"


def output(p):
    """What a spawned coordinator printed so far (its stdout file, read without moving it)."""
    return os.pread(p.out_file.fileno(), 1 << 20, 0).decode(errors="replace")


def backfill_position(db):
    try:
        return db.execute("SELECT coalesce(sum(next_block), 0), coalesce(sum(end_block), 0) "
                          "FROM pgvalve.keychange_backfill").fetchone()
    except psycopg.errors.UndefinedTable:
        return (0, 0)


def test_backfill_waits_while_a_standby_lags_then_finishes(pg, db, standby, tmp_path):
    harness.wait_for(lambda: caught_up(pg), 120, what="the standby to replay the schema")
    assert standby.psql_admin("SELECT count(*) FROM accounts").strip() == "2000"
    standby.psql_admin("SELECT pg_wal_replay_pause()")
    harness.wait_for(lambda: standby.psql_admin("SELECT pg_get_wal_replay_pause_state()").strip() == "paused",
                     60, what="the standby's replay to pause")

    path = write_file(tmp_path, "0007_bigint.sql", MIGRATION)
    # at most 400 rows/s: the backfill takes seconds, so the paused standby falls more than 1 s behind
    p = spawn("apply", path, "--watch", "0", "--max-lag", "1s", "--backfill-batch", "50",
              "--backfill-rate", "400", pg=pg)
    harness.wait_for(lambda: "waits: standby" in output(p) or p.poll() is not None, 300,
                     what="the backfill to wait for the standby")
    assert p.poll() is None, output(p)
    out = output(p)
    assert "over --max-lag 1.0 s" in out, out
    # waiting: the journal's position stands still while the standby is paused
    before = backfill_position(db)
    time.sleep(2)
    after = backfill_position(db)
    assert after == before, (before, after)
    assert before[0] < before[1]  # not done
    assert p.poll() is None
    # the standby really is behind: it has not even replayed the shadow column
    assert standby.psql_admin("SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                              "AND attname = 'id_pgvalve_new'").strip() == "0"

    standby.psql_admin("SELECT pg_wal_replay_resume()")
    r = finish(p)
    assert r.rc == 0, r
    assert "resumes: standby" in r.out, r.out
    assert "backfill of public.accounts done" in r.out, r.out
    assert db.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                      "AND attname = 'id'").fetchone()[0] == "bigint"
    # and the standby follows: same type, same rows
    harness.wait_for(lambda: caught_up(pg), 120, what="the standby to replay the change")
    assert standby.psql_admin("SELECT format_type(atttypid, NULL) FROM pg_attribute "
                              "WHERE attrelid = 'orders'::regclass AND attname = 'account_id'").strip() == "bigint"
    assert standby.psql_admin("SELECT count(*) FROM accounts JOIN orders ON orders.account_id = accounts.id").strip() \
        == "2000"


def test_without_standbys_the_backfill_is_not_throttled(pg, db, tmp_path):
    harness.wait_for(lambda: pg.psql_admin("SELECT count(*) FROM pg_stat_replication").strip() == "0",
                     60, what="no walsender")
    path = write_file(tmp_path, "0007_bigint.sql", MIGRATION)
    r = pgvalve("apply", path, "--watch", "0", "--max-lag", "1ms", pg=pg, check=0)
    assert "no standby replays from this server" in r.out, r.out
    assert "waits: standby" not in r.out, r.out
    assert "backfill of public.orders done" in r.out, r.out


@pytest.mark.parametrize("value", ["soon", "-1s", "0", "5 parsecs"])
def test_a_bad_max_lag_is_a_usage_error(pg, db, tmp_path, value):
    path = write_file(tmp_path, "0007_bigint.sql", MIGRATION)
    r = pgvalve("apply", path, "--max-lag", value, pg=pg, check=2)
    assert "--max-lag: expected a duration" in r.err, r
    assert db.execute("SELECT count(*) FROM pg_attribute WHERE attname = 'id_pgvalve_new'").fetchone()[0] == 0


def test_max_lag_without_pg_monitor_fails_with_the_hint_and_applies_nothing(pg, db, standby, tmp_path):
    """A role that may not read the standbys' replay positions (no pg_monitor: pg_stat_replication
    shows it the standby's row with its positions NULL) gets the hint, and the change is not begun:
    no shadow column, trigger or function, the key still int, the journal says it did not happen."""
    harness.wait_for(lambda: caught_up(pg), 120, what="the standby to stream")
    role = "trust_user"  # LOGIN, no superuser, no pg_monitor (harness.AUTH_METHODS: trust)
    db.execute(f"ALTER TABLE accounts OWNER TO {role}")
    db.execute(f"ALTER TABLE orders OWNER TO {role}")
    db.execute(f"GRANT CREATE ON DATABASE {harness.DATABASE} TO {role}")
    try:
        with psycopg.connect(pg.dsn(user=role), autocommit=True) as c:
            assert c.execute("SELECT pg_has_role('pg_monitor', 'MEMBER') OR pg_has_role('pg_read_all_stats', "
                             "'MEMBER')").fetchone()[0] is False
            # what the coordinator's check rests on: the row is there, its positions hidden
            assert c.execute("SELECT count(*), count(replay_lsn) FROM pg_stat_replication").fetchone() == (1, 0)
        path = write_file(tmp_path, "0007_bigint.sql", MIGRATION)
        url = f"postgresql://{role}@{harness.HOST}:{pg.port}/{harness.DATABASE}?sslmode=disable"
        r = pgvalve("apply", path, "--db", url, "--watch", "0", "--max-lag", "1s", pg=pg)
        assert r.rc != 0, r
        assert "--max-lag: cannot read the standbys' replication lag" in r.err + r.out, r
        assert "grant pg_monitor to the role pgvalve connects as, or leave --max-lag out" in r.err + r.out, r
        assert "pg_stat_replication hides the standbys' replay positions" in r.err + r.out, r
        assert "shadow columns on public.accounts added" not in r.out, r.out
        # nothing of the change in place
        assert db.execute("SELECT count(*) FROM pg_attribute WHERE attname LIKE '%pgvalve%' AND NOT attisdropped "
                          "AND attrelid IN ('accounts'::regclass, 'orders'::regclass)").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%pgvalve%'").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'keychange_%'").fetchone()[0] == 0
        assert db.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = "
                          "'accounts'::regclass AND attname = 'id'").fetchone()[0] == "integer"
        assert db.execute("SELECT count(*) FROM pgvalve.keychange_backfill").fetchone()[0] == 0
        state = db.execute("SELECT state FROM pgvalve.migrations ORDER BY id DESC LIMIT 1").fetchone()[0]
        assert state in ("rolled_back", "failed"), state
        assert db.execute("SELECT count(*) FROM accounts JOIN orders ON orders.account_id = accounts.id"
                          ).fetchone()[0] == 2000
    finally:
        db.execute(f"REVOKE CREATE ON DATABASE {harness.DATABASE} FROM {role}")
        db.execute("DROP SCHEMA IF EXISTS pgvalve CASCADE")
        db.execute(f"ALTER TABLE accounts OWNER TO {harness.SUPERUSER}")
        db.execute(f"ALTER TABLE orders OWNER TO {harness.SUPERUSER}")
