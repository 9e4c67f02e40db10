"""The coordinator killed with SIGKILL in each journal state (DESIGN.md §4.3, issue 4): the
fault point PGVALVE_TEST_KILL_AT makes `pgvalve apply` kill itself right after recording a
state (or while its holds are acknowledged and its DDL not yet run). `recover --resume` then
finishes the migration — every constraint valid — and `recover --rollback` undoes it — the prior
constraints back byte-identical — and in both cases no row is lost, no hold is left on the
proxy, and `status` agrees with the schema."""

import pytest

import harness
from coordinator import FKS, constraints, create_schema, fk_migration, fk_name, pgvalve, write_file

# Points where apply can die, in the order it passes them.
KILL_POINTS = ["checked", "snapshotted", "prepared", "holding", "cutover", "validated", "finalized", "watching"]


@pytest.fixture
def db(pg):
    conn = harness.connect(pg.dsn())
    conn.autocommit = True
    create_schema(conn, rows=500)
    # A prior constraint of the kind the migration replaces, to see it restored exactly.
    conn.execute("ALTER TABLE comments ADD CONSTRAINT comments_body_check CHECK (body <> '')")
    yield conn
    conn.close()


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

    r = pgvalve("apply", path, "--proxy", admin, "--watch", "3", pg=pg, env={"PGVALVE_TEST_KILL_AT": point})
    assert r.rc == -9, r                                        # it died there
    assert f"PGVALVE_TEST_KILL_AT={point}" in r.err

    r = pgvalve("recover", f"--{how}", "--proxy", admin, "--watch", "3", pg=pg)
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
