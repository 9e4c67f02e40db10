"""The coordinator's paths around its proxies and settings, as an operator meets them: two
healthy proxies both take every hold and the watch adds up the errors their clients saw; a
proxy whose admin API wants a token (token_file in pgvalve.json, and what happens without
it); an unreachable proxy refuses the migration with nothing changed; `--config pgvalve.json`
is honoured key by key and flags override it; `PGVALVE_DB` and libpq's PG* variables stand in
for --db; exit code 4 when a rollback cannot finish, with the journal saying where it stopped;
violations in the very second of the cutover count for the watch."""

import json
import re
import time

import psycopg
import pytest

from coordinator import FKS, constraints, fk_migration, fk_name, schema_conn, write_file
from paths_helpers import (Background, after_cutover_second, closed_port, closed_port_url, db_url, event_time,
                           events_named, messages, only_migration, pg_env, proxy_holds, proxy_url, run, status,
                           with_db, write_json)

ROWS = 300


@pytest.fixture
def db(pg):
    with schema_conn(pg, rows=ROWS) as conn:
        yield conn


def fk_exists(db, child, column):
    return db.execute("SELECT convalidated FROM pg_constraint WHERE conname = %s",
                      (fk_name(child, column),)).fetchone()


# --------------------------------------------------------------------------- two proxies

def test_two_proxies_both_hold_and_the_watch_sums_their_errors(pg, db, proxy_factory, tmp_path):
    p1, p2 = proxy_factory(pg), proxy_factory(pg)
    path = write_file(tmp_path, "check.sql",
                      "ALTER TABLE comments ADD CONSTRAINT comments_body_short CHECK (length(body) < 100);\n")
    # Each proxy's clients make at most 4 violations: only the sum of both (7 or 8) exceeds 6.
    # --baseline 0: no latency rule here, and the default baseline (as long as the watch) would
    # only make apply wait a minute before its cutover.
    bg = Background(with_db(pg, "apply", path, "--proxy", proxy_url(p1), "--proxy", proxy_url(p2),
                            "--watch", "60", "--baseline", "0", "--rollback-on", "constraint_violations > 6",
                            "--format", "json"),
                    workdir=tmp_path)
    try:
        cut = bg.wait_event(lambda e: e["event"] == "cutover", 120, "the cutover")
        assert "holding on 2 proxy(ies)" in cut["message"], cut
        watching = bg.wait_event(lambda e: e["event"] == "watching", 120, "the watch")
        # The proxies count in wall-clock seconds: start in the second after the cutover's (the
        # cutover's own second is test_violations_in_the_cutovers_second_are_counted's business).
        after_cutover_second(watching)
        seen = {}
        for name, proxy, first_id in (("p1", p1, 900000), ("p2", p2, 910000)):
            seen[name] = 0
            with psycopg.connect(proxy.dsn(), autocommit=True) as c:
                for i in range(4):
                    try:
                        c.execute("INSERT INTO comments VALUES (%s, 1, 1, 1, repeat('x', 200))", (first_id + i,))
                    except psycopg.errors.CheckViolation as e:
                        assert e.diag.constraint_name == "comments_body_short"
                        seen[name] += 1
        r = bg.finish(180)
    finally:
        bg.kill()
    assert r.rc == 3, r
    # p1's four all failed before p2's first; p2's last may have run after the rollback.
    assert seen["p1"] == 4 and seen["p2"] >= 3, seen
    tripped = events_named(r, "rule_tripped")
    assert len(tripped) == 1, r
    counted = int(re.search(r"constraint_violations > 6: (\d+) violations of comments_body_short",
                            tripped[0]["message"]).group(1))
    assert counted > 4 and counted <= seen["p1"] + seen["p2"], tripped
    assert "comments_body_short" in tripped[0]["message"]
    # Each proxy counted only its own clients' violations.
    per_proxy = [p.errors(300)["by_constraint"].get("comments_body_short", 0) for p in (p1, p2)]
    assert per_proxy == [seen["p1"], seen["p2"]], per_proxy

    mig_id = only_migration(pg)
    doc = status(pg, mig_id)
    assert doc["state"] == "rolled_back" and "constraint_violations > 6" in doc["error"], doc
    assert "comments_body_short" not in {n for _, n in constraints(db, "comments")}
    # Both proxies took the cutover's hold and the rollback's, and released each.
    for p in (p1, p2):
        taken, released = proxy_holds(p, f"pgvalve-{mig_id}-")
        ids = [t[0] for t in taken]
        assert any(i.startswith(f"pgvalve-{mig_id}-cutover-") for i in ids), p.log_text()
        assert any(i.startswith(f"pgvalve-{mig_id}-rollback-") for i in ids), p.log_text()
        assert all(mode == "all" for _, mode, _ in taken), taken
        assert set(ids) <= released, (ids, released)
        assert p.admin("GET", "/holds")[1] == {"holds": []}


# --------------------------------------------------------------------------- the admin token

def test_token_file_in_the_config_file_and_without_it(pg, db, proxy_factory, tmp_path):
    token = write_file(tmp_path, "admin.token", "s3cret-admin-token\n")
    proxy = proxy_factory(pg, {"admin": {"token_file": token}})
    with_token = write_json(tmp_path, "with-token.json", {
        "db": db_url(pg), "proxies": [{"url": proxy_url(proxy), "token_file": token}], "watch_s": 0})
    path = write_file(tmp_path, "fk1.sql", fk_migration(FKS[:1]))
    r = run("apply", path, "--config", with_token, "--format", "json")
    assert r.rc == 0, r
    assert fk_exists(db, *FKS[0][:2]) == (True,)
    mig_id = only_migration(pg)
    taken, released = proxy_holds(proxy, f"pgvalve-{mig_id}-cutover-")
    assert taken and {t[0] for t in taken} <= released, proxy.log_text()

    # The same proxy listed without its token: every hold is refused (401), nothing changes.
    without = write_json(tmp_path, "without-token.json", {
        "db": db_url(pg), "proxies": [{"url": proxy_url(proxy)}], "watch_s": 0, "attempts": 1})
    path2 = write_file(tmp_path, "fk2.sql", fk_migration(FKS[1:2]))
    before = constraints(db)
    r = run("apply", path2, "--config", without)
    assert r.rc == 3, r
    text = r.out + r.err
    assert f"proxy {proxy_url(proxy)} did not acknowledge the hold" in text, r
    assert "Authorization: Bearer" in text and "admin.token_file" in text, r
    assert "cutover attempt 1 of 1 failed" in text, r          # "attempts" from the file
    assert constraints(db) == before
    assert proxy.admin("GET", "/holds")[1] == {"holds": []}
    assert status(pg)["migrations"][0]["state"] == "rolled_back"

    # A token_file that cannot be read is a config error, named, before anything runs.
    missing = write_json(tmp_path, "missing-token.json", {
        "db": db_url(pg), "proxies": [{"url": proxy_url(proxy), "token_file": str(tmp_path / "nope.token")}]})
    r = run("apply", path2, "--config", missing)
    assert r.rc == 2, r
    assert "nope.token" in r.err and "token_file" in r.err, r
    assert len(status(pg)["migrations"]) == 2


# --------------------------------------------------------------------------- an unreachable proxy

def test_unreachable_proxy_refuses_and_changes_nothing(pg, db, proxy_factory, tmp_path):
    good = proxy_factory(pg)
    dead = closed_port_url()
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:3]))
    before = constraints(db)
    r = run(*with_db(pg, "apply", path, "--proxy", proxy_url(good), "--proxy", dead, "--watch", "0"))
    assert r.rc == 1, r
    assert f"proxy {dead} did not answer GET /status" in r.err, r
    assert "refused by preflight: nothing was changed" in r.err, r
    assert constraints(db) == before
    assert status(pg)["migrations"] == []
    assert proxy_holds(good) == ([], set())
    assert good.admin("GET", "/holds")[1] == {"holds": []}


# --------------------------------------------------------------------------- --config

def test_config_file_is_honoured_and_flags_override_it(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    cfg = {
        "db": db_url(pg),
        "proxies": [{"url": proxy_url(proxy)}],
        "max_stall_ms": 300, "lock_timeout_ms": 700, "attempts": 3, "watch_s": 1,
        "windows": ["daily 00:00-24:00 UTC"],
        "rollback_on": ["constraint_violations > 5 in 10s"],
    }
    path = write_json(tmp_path, "pgvalve.json", cfg)
    r = run("apply", write_file(tmp_path, "fk1.sql", fk_migration(FKS[:1])), "--config", path, "--format", "json")
    assert r.rc == 0, r
    first = only_migration(pg)
    cut = events_named(r, "cutover")
    assert len(cut) == 1 and "holding on 1 proxy(ies), stall budget 300 ms" in cut[0]["message"], r
    assert [e["message"] for e in events_named(r, "watching")] == ["watching client errors for 1 s"], r
    assert proxy_holds(proxy, f"pgvalve-{first}-cutover-")[0] != []

    # Flags win over the file: --db over "db" (which now points nowhere), and the numbers.
    cfg["db"] = db_url(pg, port=closed_port())
    bad_db = write_json(tmp_path, "bad-db.json", cfg)
    r = run("status", "--config", bad_db)
    assert r.rc == 2 and "cannot connect to the database" in r.err, r
    r = run("apply", write_file(tmp_path, "fk2.sql", fk_migration(FKS[1:2])), "--config", bad_db,
            "--db", db_url(pg), "--max-stall", "400", "--watch", "0", "--format", "json")
    assert r.rc == 0, r
    assert "stall budget 400 ms" in events_named(r, "cutover")[0]["message"], r
    assert events_named(r, "watching") == [], r
    # --proxy replaces the file's list of proxies.
    other = proxy_factory(pg)
    r = run("apply", write_file(tmp_path, "fk3.sql", fk_migration(FKS[2:3])), "--config", path,
            "--proxy", proxy_url(other), "--watch", "0")
    assert r.rc == 0, r
    third = max(m["id"] for m in status(pg)["migrations"])
    assert proxy_holds(proxy, f"pgvalve-{third}-")[0] == []
    assert proxy_holds(other, f"pgvalve-{third}-")[0] != []
    # lock_timeout_ms, as the cutover without proxies reports it, and --lock-timeout over it.
    no_proxies = write_json(tmp_path, "no-proxies.json", {"db": db_url(pg), "lock_timeout_ms": 700, "watch_s": 0})
    r = run("apply", write_file(tmp_path, "fk4.sql", fk_migration(FKS[3:4])), "--config", no_proxies,
            "--format", "json")
    assert r.rc == 0 and "lock_timeout 700 ms, no proxies" in events_named(r, "cutover")[0]["message"], r
    r = run("apply", write_file(tmp_path, "fk5.sql", fk_migration(FKS[4:5])), "--config", no_proxies,
            "--lock-timeout", "800", "--format", "json")
    assert r.rc == 0 and "lock_timeout 800 ms, no proxies" in events_named(r, "cutover")[0]["message"], r

    # The lists are read from the file (a bad entry is named) and replaced by their flags.
    lists = write_json(tmp_path, "lists.json", {"db": db_url(pg), "windows": ["Mon-Fry 02:00-04:00"],
                                                "rollback_on": ["violations > lots"], "watch_s": 0})
    fk6 = write_file(tmp_path, "fk6.sql", fk_migration(FKS[5:6]))
    r = run("apply", fk6, "--config", lists)
    assert r.rc == 2 and '"Fry" is not a day' in r.err, r
    r = run("apply", fk6, "--config", lists, "--window", "daily 00:00-24:00 UTC")
    assert r.rc == 2 and "violations > lots" in r.err, r
    r = run("apply", fk6, "--config", lists, "--window", "daily 00:00-24:00 UTC",
            "--rollback-on", "constraint_violations > 5")
    assert r.rc == 0, r
    assert all(fk_exists(db, c, col) == (True,) for c, col, _ in FKS[:6])

    # An unknown key is named, with the keys that exist.
    r = run("apply", fk6, "--config", write_json(tmp_path, "typo.json", {"max_stal_ms": 100}))
    assert r.rc == 2 and '"max_stal_ms": unknown key' in r.err and "max_stall_ms" in r.err, r


# --------------------------------------------------------------------------- PGVALVE_DB, PG*

def test_database_from_pgvalve_db_and_libpq_variables(pg, db, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:1]))
    r = run("apply", path, "--watch", "0", env={"PGVALVE_DB": db_url(pg)})
    assert r.rc == 0, r
    assert fk_exists(db, *FKS[0][:2]) == (True,)
    nowhere = db_url(pg, port=closed_port())

    def listed(result):
        assert result.rc == 0, result
        return [m["state"] for m in json.loads(result.out)["migrations"]]

    assert listed(run("status", "--format", "json", env={"PGVALVE_DB": db_url(pg)})) == ["committed"]
    # libpq's own variables, with neither --db nor PGVALVE_DB.
    assert listed(run("status", "--format", "json", env=pg_env(pg))) == ["committed"]
    # --db wins over PGVALVE_DB, PGVALVE_DB over the PG* variables.
    assert listed(run("status", "--format", "json", "--db", db_url(pg), env={"PGVALVE_DB": nowhere})) == [
        "committed"]
    r = run("status", env=dict(pg_env(pg), PGVALVE_DB=nowhere))
    assert r.rc == 2 and "cannot connect to the database" in r.err and "PGVALVE_DB" in r.err, r


# --------------------------------------------------------------------------- exit code 4

def test_a_rollback_that_cannot_finish_exits_4_and_recover_completes_it(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:2]))
    r = run(*with_db(pg, "apply", path, "--proxy", proxy_url(proxy), "--watch", "0"))
    assert r.rc == 0, r
    mig_id = only_migration(pg)
    after_apply = constraints(db)
    # The operator lists a proxy that is down: the rollback cannot hold traffic, so it stops.
    dead = closed_port_url()
    r = run(*with_db(pg, "rollback", mig_id, "--proxy", proxy_url(proxy), "--proxy", dead, "--attempts", "1"))
    assert r.rc == 4, r
    assert "the rollback could not take its locks" in r.err and f"proxy {dead}" in r.err, r
    assert "pgvalve recover --rollback" in r.err, r
    assert constraints(db) == after_apply                      # nothing half done
    assert proxy.admin("GET", "/holds")[1] == {"holds": []}
    doc = status(pg, mig_id)
    assert doc["state"] == "rolling_back", doc
    text = run(*with_db(pg, "status", mig_id))
    assert text.rc == 0 and "recover" in text.out, text
    # It can only be rolled back now: even --resume (run as a habit after a failure) finishes
    # the rollback, says so, and exits 3; nothing is left for --rollback.
    r = run(*with_db(pg, "recover", "--resume", "--proxy", proxy_url(proxy)))
    assert r.rc == 3 and "can only be rolled back" in r.out, r
    r = run(*with_db(pg, "recover", "--rollback", "--proxy", proxy_url(proxy)))
    assert r.rc == 0 and "nothing to recover" in r.out, r
    assert all(fk_exists(db, c, col) is None for c, col, _ in FKS[:2])
    assert status(pg, mig_id)["state"] == "rolled_back"
    # Exit 4 means "the journal says what": status named why the rollback stopped, and offered
    # only what works for a migration being rolled back.
    assert dead in doc["error"], doc
    assert "recover --rollback" in text.out and "--resume" not in text.out, text


# --------------------------------------------------------------------------- the watch's first second

def test_violations_in_the_cutovers_second_are_counted(pg, db, proxy_factory, tmp_path):
    """A burst of violations at once after the cutover, then none: "since the cutover" must
    count the wall-clock second the cutover committed in (the proxies count in such seconds),
    not only the whole seconds after it. The burst lands in that second unless the second ends
    first: then the run is repeated, so the case is met in the end."""
    proxy = proxy_factory(pg)
    path = write_file(tmp_path, "check.sql",
                      "ALTER TABLE comments ADD CONSTRAINT comments_body_short CHECK (length(body) < 100);\n")
    for run_no in range(6):
        # --baseline 0: an error rule only; no latency baseline to wait 6 s for before each cutover.
        bg = Background(with_db(pg, "apply", path, "--proxy", proxy_url(proxy), "--watch", "6", "--baseline", "0",
                                "--rollback-on", "constraint_violations > 3", "--format", "json"),
                        workdir=tmp_path)
        try:
            done = bg.wait_event(lambda e: e["event"] == "cutover_done", 120, "the cutover")
            bg.wait_event(lambda e: e["event"] == "watching", 120, "the watch")
            first = time.time()
            violations = 0
            with psycopg.connect(proxy.dsn(), autocommit=True) as c:
                for i in range(4):
                    try:
                        c.execute("INSERT INTO comments VALUES (%s, 1, 1, 1, repeat('x', 200))",
                                  (900000 + run_no * 10 + i,))
                    except psycopg.errors.CheckViolation:
                        violations += 1
            last = time.time()
            r = bg.finish(120)
        finally:
            bg.kill()
        assert violations == 4
        if int(first) == int(last) == int(event_time(done)):
            break
        assert r.rc == 3, r                       # in the seconds after the cutover's: counted
    else:
        pytest.fail("six bursts in a row missed the cutover's second")
    assert r.rc == 3, r
    assert "constraint_violations > 3: 4 violations of comments_body_short" in messages(r), r


# --------------------------------------------------------------------------- help

@pytest.mark.parametrize("command", ["plan", "apply", "cutover", "status", "rollback", "recover", "audit"])
def test_every_command_explains_itself(command):
    """`pgvalve CMD --help` prints that command's usage and what it does, on stdout, exit 0 —
    wherever --help stands, and without needing a database."""
    for args in ((command, "--help"), (command, "--db", "postgresql://nowhere.invalid/x", "-h")):
        r = run(*args)
        assert r.rc == 0, r
        assert r.out.startswith(f"usage: pgvalve {command} "), r
        assert "Exit codes:" in r.out and r.err == "", r


# --------------------------------------------------------------------------- preflight

def test_a_key_whose_index_the_migration_builds_is_not_called_unindexed(pg, db, tmp_path):
    """plan warns about a foreign key column without an index — unless the same migration builds
    one that leads with that column (pgvalve builds it CONCURRENTLY before the key is added)."""
    key = "ALTER TABLE users ADD CONSTRAINT users_workspace_id_fkey FOREIGN KEY (workspace_id) " \
          "REFERENCES workspaces (id);\n"
    bare = run(*with_db(pg, "plan", write_file(tmp_path, "bare.sql", key)))
    assert bare.rc == 0, bare
    assert re.search(r"^  warning unindexed_fk +users_workspace_id_fkey", bare.out, re.M), bare
    for index in ("CREATE INDEX users_ws_idx ON users (workspace_id);\n",
                  "CREATE INDEX users_ws_email_idx ON public.users (workspace_id, email);\n"):
        r = run(*with_db(pg, "plan", write_file(tmp_path, "indexed.sql", index + key)))
        assert r.rc == 0, r
        assert "unindexed_fk" not in r.out, r
    # A partial index, or one that leads with another column, does not serve the key.
    for index in ("CREATE INDEX users_ws_part_idx ON users (workspace_id) WHERE email IS NOT NULL;\n",
                  "CREATE INDEX users_email_ws_idx ON users (email, workspace_id);\n"):
        r = run(*with_db(pg, "plan", write_file(tmp_path, "other.sql", index + key)))
        assert re.search(r"^  warning unindexed_fk", r.out, re.M), r
