"""Table latency in apply (docs/architecture.md §4.10) against a real PostgreSQL and proxy: under a
pgbench write load, apply observes the affected tables on the proxy, measures a baseline before the
cutover (--baseline) and the watch after it, and shows them side by side; `pgvalve report` shows
both and what the watch added. A latency rollback rule that must trip (writes made slow by a
trigger with pg_sleep, installed by the test after the cutover) rolls the migration back and says
which table and numbers; one that cannot trip lets it commit. A bad latency rule is refused before
anything starts. A coordinator killed with SIGKILL leaves an observation its lease ends. No
assertion depends on how fast anything is."""

import json

import psycopg
import pytest

import harness
from coordinator import create_schema, finish, fk_migration, pgvalve, spawn, start_pgbench, write_file

# submissions.stage_id -> stages: both tables are written by the load (coordinator.PGBENCH_SCRIPT)
FK = [("submissions", "stage_id", "stages")]
AFFECTED = ("submissions", "stages")


@pytest.fixture
def db(pg):
    conn = harness.connect(pg.dsn())
    conn.autocommit = True
    create_schema(conn)
    conn.execute("DROP FUNCTION IF EXISTS slow_down() CASCADE")
    yield conn
    conn.close()


@pytest.fixture
def load(proxy, tmp_path):
    """A write load through the proxy for as long as the test runs."""
    d = tmp_path / "load"
    d.mkdir()
    p = start_pgbench(proxy, d, seconds=900, clients=2)
    harness.wait_for(lambda: proxy.status()["clients"]["total"] >= 2, 60, interval=0.1,
                     what="the write load on the proxy")
    yield p
    p.terminate()
    p.wait(60)
    p.log.close()


def admin(proxy):
    return f"http://{harness.HOST}:{proxy.admin_port}"


def table_of(tables, name):
    """The entry of `tables` for table `name`, however the observation qualified it."""
    found = [v for k, v in tables.items() if k == name or k.endswith("." + name)]
    assert len(found) == 1, (name, tables)
    return found[0]


def plausible(stats):
    """Counted something, and the quantiles are in order."""
    assert stats["count"] > 0, stats
    assert stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"] <= stats["max_ms"], stats


def cut_over(db):
    """True once the migration's cutover committed (the journal may not exist yet)."""
    try:
        return db.execute("SELECT count(*) FROM pgvalve.migrations WHERE cutover_at IS NOT NULL").fetchone()[0] > 0
    except psycopg.errors.UndefinedTable:
        return False


def observations(proxy):
    status, doc = proxy.admin("GET", "/observe")
    assert status == 200, doc
    return doc["observations"]


def test_baseline_and_watch_side_by_side(pg, db, proxy, load, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FK))
    r = pgvalve("apply", path, "--proxy", admin(proxy), "--baseline", "2", "--watch", "3", "--max-stall", "1000",
                "--rollback-on", "constraint_violations > 1%",
                "--rollback-on", "write_max > 1000x baseline + 3600s", "--yes", "--format", "json", pg=pg)
    assert r.rc == 0, r
    events = r.events()
    assert [e for e in events if e["event"] == "committed"], r
    base = [e for e in events if e["event"] == "baseline_latency"]
    assert base and base[0]["window_s"] == 2, events
    lat = [e for e in events if e["event"] == "latency"]
    assert len(lat) == 1, events
    for phase in ("baseline", "watch"):
        doc = lat[0][phase]
        assert doc["proxies"] == 1 and doc["answered"] == 1, doc
        assert len(doc["tables"]) == len(AFFECTED), doc
        for t in AFFECTED:
            plausible(table_of(doc["tables"], t)["write"])
    assert lat[0]["baseline"]["window_s"] == 2
    # Everything is stopped on the way out: no observation is left measuring.
    assert observations(proxy) == []

    mig_id = db.execute("SELECT max(id) FROM pgvalve.migrations").fetchone()[0]
    doc = json.loads(pgvalve("report", mig_id, "--format", "json", pg=pg, check=0).out)
    for t in AFFECTED:
        w = table_of(doc["latency"]["tables"], t)["write"]
        plausible(w["baseline"])
        plausible(w["watch"])
        for stat in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
            assert w["added_ms"][stat] == pytest.approx(w["watch"][stat] - w["baseline"][stat]), w
    text = pgvalve("report", mig_id, pg=pg, check=0).out
    assert "table latency (ms), before the cutover (baseline) and during the watch" in text, text
    assert "+p99" in text and "submissions" in text and "stages" in text, text


def test_baseline_zero_skips_it(pg, db, proxy, load, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FK))
    r = pgvalve("apply", path, "--proxy", admin(proxy), "--baseline", "0", "--watch", "2", "--max-stall", "1000",
                "--yes", "--format", "json", pg=pg)
    assert r.rc == 0, r
    events = r.events()
    assert not [e for e in events if e["event"] in ("baseline", "baseline_latency")], events
    lat = [e for e in events if e["event"] == "latency"]
    assert lat and lat[0]["baseline"] is None, events
    plausible(table_of(lat[0]["watch"]["tables"], "submissions")["write"])
    assert observations(proxy) == []


SLOW_WRITES = """
CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$;
CREATE TRIGGER slow_down BEFORE INSERT ON submissions FOR EACH ROW EXECUTE FUNCTION slow_down();
"""


def test_a_latency_rule_that_must_trip_rolls_back(pg, db, proxy, load, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FK))
    rule = "write_p99 > 2x baseline + 100ms in 3s"
    p = spawn("apply", path, "--proxy", admin(proxy), "--baseline", "2", "--watch", "120", "--max-stall", "2000",
              "--rollback-on", rule, "--yes", "--format", "json", pg=pg)
    # After the cutover every insert into submissions sleeps 200 ms: far above 2 x baseline + 100 ms.
    harness.wait_for(lambda: cut_over(db), 120, what="the cutover")
    db.execute(SLOW_WRITES)
    r = finish(p, timeout=300)
    assert r.rc == 3, r
    events = r.events()
    tripped = [e for e in events if e["event"] == "rule_tripped"]
    assert tripped, r
    assert rule.replace(" in 3s", "") in tripped[0]["message"], tripped
    assert "submissions write p99" in tripped[0]["message"], tripped
    # The numbers of the watch were taken before the rollback and shown beside the baseline.
    lat = [e for e in events if e["event"] == "latency"]
    assert lat and lat[0]["baseline"] is not None, events
    slow = table_of(lat[0]["watch"]["tables"], "submissions")["write"]
    plausible(slow)
    assert observations(proxy) == []

    mig_id = db.execute("SELECT max(id) FROM pgvalve.migrations").fetchone()[0]
    doc = json.loads(pgvalve("report", mig_id, "--format", "json", pg=pg, check=0).out)
    assert doc["state"] == "rolled_back"
    assert "submissions write p99" in doc["error"], doc["error"]
    w = table_of(doc["latency"]["tables"], "submissions")["write"]
    plausible(w["watch"])
    assert w["added_ms"] is not None
    text = pgvalve("report", mig_id, pg=pg, check=0).out
    assert "rolled_back" in text and "write_p99 > 2x baseline + 100ms" in text, text
    assert "damage assessment" in text, text


def test_a_bad_latency_rule_is_refused_before_anything(pg, db, proxy, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FK))
    for rule, message in (("write_p99 > 10", "expected \"ms\" or \"s\" after the number"),
                          ("write_p42 > 10ms", "\"write_p42\" is not something a rule watches"),
                          ("read_p95 > 2x", "expected \"baseline\" after \"x\"")):
        r = pgvalve("apply", path, "--proxy", admin(proxy), "--rollback-on", rule, "--yes", pg=pg, check=2)
        assert message in r.err, r
    r = pgvalve("apply", path, "--proxy", admin(proxy), "--baseline", "301", "--yes", pg=pg, check=2)
    assert "--baseline: expected an integer from 0 to 300" in r.err, r
    assert db.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'submissions_stage_id_fkey'"
                      ).fetchone()[0] == 0
    assert observations(proxy) == []


def test_a_killed_coordinators_observation_ends_with_its_lease(pg, db, proxy, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FK))
    p = spawn("apply", path, "--proxy", admin(proxy), "--baseline", "300", "--watch", "300", "--yes", pg=pg)
    # While apply measures its baseline the proxy observes both tables, renewed by the coordinator.
    harness.wait_for(lambda: [o for o in observations(proxy) if o["id"].endswith("-observe")], 120,
                     what="the observation")
    (o,) = observations(proxy)
    assert sorted(t.split(".")[-1] for t in o["tables"]) == sorted(AFFECTED), o
    p.kill()
    finish(p)
    # Nobody renews it now: the lease ends it, and the proxy says so.
    harness.wait_for(lambda: observations(proxy) == [], 120, what="the lease to end the observation")
    assert f"observation {o['id']}: lease of" in proxy.log_text(), proxy.log_text()
    assert "ran out without renewal" in proxy.log_text()
