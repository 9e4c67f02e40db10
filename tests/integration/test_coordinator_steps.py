"""The coordinator's step paths, as an operator meets them: a cutover window that opens while
apply waits; DROP CONSTRAINT alone, rolled back to a byte-identical constraint; SET NOT NULL
under a write load through the proxy with no client error; PRIMARY KEY … USING INDEX as
written and plain ADD PRIMARY KEY built concurrently, and their rollback; a cutover whose
lock_timeout fires and whose retry succeeds."""

import re
import threading
import time

import psycopg
import pytest

import harness
from coordinator import FKS, fk_migration, fk_name, schema_conn, write_file
from paths_helpers import (Background, constraint_defs, events_named, only_migration, proxy_holds, proxy_url, run,
                           status, with_db)

ROWS = 300


@pytest.fixture
def db(pg):
    with schema_conn(pg, rows=ROWS) as conn:
        yield conn


def waiting_for_lock(db, pid):
    return db.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                      (pid,)).fetchone()[0]


# --------------------------------------------------------------------------- a window that opens

def test_window_opens_and_the_cutover_happens_in_it(pg, db, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:1]))
    now = time.time()
    # The next minute that starts at least 10 s from now (apply needs a moment to get there).
    start = (int(now) // 60 + 1) * 60
    if start - now < 10:
        start += 60
    tm = time.gmtime(start)
    end = time.gmtime(start + 120)
    window = f"daily {tm.tm_hour:02d}:{tm.tm_min:02d}-{end.tm_hour:02d}:{end.tm_min:02d} UTC"
    bg = Background(with_db(pg, "apply", path, "--window", window, "--watch", "0", "--format", "json"),
                    workdir=tmp_path)
    try:
        waiting = bg.wait_event(lambda e: e["event"] == "waiting_for_window", 60, "waiting for the window")
        assert waiting["message"] == "waiting for the next cutover window: " + time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", tm), waiting
        assert fk_name(*FKS[0][:2]) not in constraint_defs(db, FKS[0][0])
        r = bg.finish(start - time.time() + 120)
    finally:
        bg.kill()
    assert r.rc == 0, r
    assert events_named(r, "committed"), r
    assert constraint_defs(db, FKS[0][0])[fk_name(*FKS[0][:2])][2] is True
    cutover_at = db.execute("SELECT extract(epoch FROM cutover_at) FROM pgvalve.migrations").fetchone()[0]
    assert start <= float(cutover_at) < start + 120, (cutover_at, start)


# --------------------------------------------------------------------------- DROP CONSTRAINT alone

def test_drop_constraint_alone_and_its_rollback(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    db.execute("ALTER TABLE comments ADD CONSTRAINT comments_author_fk FOREIGN KEY (author_id) "
               "REFERENCES users (id) ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE")
    db.execute("ALTER TABLE comments ADD CONSTRAINT comments_body_nonempty CHECK (body <> '')")
    before = constraint_defs(db, "comments")
    path = write_file(tmp_path, "drop.sql", "ALTER TABLE comments DROP CONSTRAINT comments_author_fk;\n")
    r = run(*with_db(pg, "apply", path, "--proxy", proxy_url(proxy), "--watch", "0"))
    assert r.rc == 0, r
    after = constraint_defs(db, "comments")
    assert "comments_author_fk" not in after
    assert {k: v for k, v in before.items() if k != "comments_author_fk"} == after
    mig_id = only_migration(pg)
    doc = status(pg, mig_id)
    assert doc["state"] == "committed" and [s["kind"] for s in doc["steps"]] == ["drop_constraint"], doc
    assert any(p["name"] == "comments_author_fk" and p["definition"] == before["comments_author_fk"][1]
               for p in doc["prior_constraints"]), doc
    # The drop held all traffic on both tables of the foreign key, and let it go.
    taken, released = proxy_holds(proxy, f"pgvalve-{mig_id}-cutover-")
    assert [t[1] for t in taken] == ["all"] and {t[0] for t in taken} <= released, proxy.log_text()

    r = run(*with_db(pg, "rollback", mig_id, "--proxy", proxy_url(proxy)))
    assert r.rc == 3, r
    assert constraint_defs(db, "comments") == before           # definition and validity identical
    assert status(pg, mig_id)["state"] == "rolled_back"


# --------------------------------------------------------------------------- SET NOT NULL under load

class WriteLoad:
    """Threads writing through the proxy (autocommit, extended protocol) until stopped; every
    error a client sees is kept."""

    def __init__(self, proxy, clients=4):
        self.proxy = proxy
        self.stop_flag = threading.Event()
        self.done = [0] * clients
        self.errors = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self, i):
        try:
            with psycopg.connect(self.proxy.dsn(), autocommit=True) as c:
                n = 0
                while not self.stop_flag.is_set():
                    n += 1
                    if n % 2:
                        c.execute("UPDATE stages SET position = position + 1 WHERE id = %s", (1 + (n * 7 + i) % ROWS,))
                    else:
                        c.execute("INSERT INTO stages (id, workspace_id, instance_id, assignee_id, position) "
                                  "VALUES (%s, 1, 1, 1, %s)", (1000000 + i * 1000000 + n, n))
                    self.done[i] += 1
        except Exception as e:
            self.errors.append(e)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)
        return self.errors


def test_set_not_null_under_write_load(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    path = write_file(tmp_path, "nn.sql", "ALTER TABLE stages ALTER COLUMN position SET NOT NULL;\n")
    load = WriteLoad(proxy)
    try:
        harness.wait_for(lambda: all(load.done) or load.errors, 30, what="every client to write")
        before = list(load.done)
        r = run(*with_db(pg, "apply", path, "--proxy", proxy_url(proxy), "--watch", "0", "--max-stall", "500"))
        # The load ran through the whole migration: every client wrote after it ended too.
        mark = list(load.done)
        harness.wait_for(lambda: all(d > m for d, m in zip(load.done, mark)) or load.errors, 30,
                         what="every client to write after the migration")
    finally:
        errors = load.stop()
    assert r.rc == 0, r
    assert errors == [], errors
    assert all(m > b for m, b in zip(mark, before)), (before, mark)
    assert proxy.errors(300)["errors"] == 0
    assert db.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'stages'::regclass "
                      "AND attname = 'position'").fetchone()[0] is True
    assert [d for _, d, _ in constraint_defs(db, "stages").values() if d.startswith("CHECK")] == []
    mig_id = only_migration(pg)
    doc = status(pg, mig_id)
    assert doc["state"] == "committed", doc
    assert [s["kind"] for s in doc["steps"]] == ["add_not_valid", "validate", "set_not_null", "drop_helper_check"], doc
    taken, released = proxy_holds(proxy, f"pgvalve-{mig_id}-")
    assert len(taken) >= 2 and {t[0] for t in taken} <= released, proxy.log_text()   # cutover and finalize
    with pytest.raises(psycopg.errors.NotNullViolation):
        db.execute("INSERT INTO stages (id, workspace_id, position) VALUES (99999999, 1, NULL)")


# --------------------------------------------------------------------------- PRIMARY KEY

def test_primary_key_using_index_and_plain_add_primary_key(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    for t in ("events_a", "events_b"):
        db.execute(f"DROP TABLE IF EXISTS {t}")
        db.execute(f"CREATE TABLE {t} (id int NOT NULL, v text)")
        db.execute(f"INSERT INTO {t} SELECT g, md5(g::text) FROM generate_series(1, 500) g")
    db.execute("CREATE UNIQUE INDEX events_a_id_idx ON events_a (id)")
    path = write_file(tmp_path, "pk.sql",
                      "ALTER TABLE events_a ADD CONSTRAINT events_a_pkey PRIMARY KEY USING INDEX events_a_id_idx;\n"
                      "ALTER TABLE events_b ADD PRIMARY KEY (id);\n")
    r = run(*with_db(pg, "plan", path))
    assert r.rc == 0, r
    assert 'CREATE UNIQUE INDEX CONCURRENTLY "events_b_pkey" ON "events_b" ("id")' in r.out, r
    r = run(*with_db(pg, "apply", path, "--proxy", proxy_url(proxy), "--watch", "0"))
    assert r.rc == 0, r
    for t in ("events_a", "events_b"):
        assert constraint_defs(db, t) == {f"{t}_pkey": ("p", "PRIMARY KEY (id)", True)}
        # The constraint owns the (renamed or built) index, which is the table's only one.
        assert db.execute("SELECT array_agg(indexrelid::regclass::text) FROM pg_index WHERE indrelid = %s::regclass",
                          (t,)).fetchone()[0] == [f"{t}_pkey"]
    mig_id = only_migration(pg)
    doc = status(pg, mig_id)
    assert doc["state"] == "committed", doc
    steps = [(s["phase"], s["kind"]) for s in doc["steps"]]
    assert steps.count(("prepare", "create_index")) == 1 and steps.count(("cutover", "add_using_index")) == 2, doc
    assert [s["sql"] for s in doc["steps"] if s["kind"] == "create_index"] == [
        'CREATE UNIQUE INDEX CONCURRENTLY "events_b_pkey" ON "events_b" ("id")'], doc
    taken, released = proxy_holds(proxy, f"pgvalve-{mig_id}-cutover-")
    assert [t[1] for t in taken] == ["all"] and {t[0] for t in taken} <= released, proxy.log_text()
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO events_b VALUES (1, 'again')")

    # Rolled back: each table as it was, the index the user built included, the one pgvalve built gone.
    r = run(*with_db(pg, "rollback", mig_id, "--proxy", proxy_url(proxy)))
    assert r.rc == 3, r
    assert constraint_defs(db, "events_a") == {} and constraint_defs(db, "events_b") == {}
    assert db.execute("SELECT count(*) FROM pg_index WHERE indrelid = 'events_b'::regclass").fetchone()[0] == 0
    assert status(pg, mig_id)["state"] == "rolled_back"
    assert db.execute("SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                      "WHERE indrelid = 'events_a'::regclass").fetchall() == [
        ("events_a_id_idx", "CREATE UNIQUE INDEX events_a_id_idx ON public.events_a USING btree (id)")]


# --------------------------------------------------------------------------- lock_timeout + retry

def test_lock_timeout_fires_and_a_retry_succeeds(pg, db, proxy_factory, tmp_path):
    proxy = proxy_factory(pg)
    child, column, parent = FKS[2]                               # projects.owner_id -> users
    path = write_file(tmp_path, "fk.sql", fk_migration([FKS[2]]))
    bg = Background(with_db(pg, "apply", path, "--proxy", proxy_url(proxy), "--postpone-cutover",
                            "--attempts", "10", "--max-stall", "200", "--lock-timeout", "200", "--watch", "0",
                            "--format", "json"), workdir=tmp_path)
    try:
        bg.wait_event(lambda e: e["event"] == "postponed", 120, "the postponed cutover")
        mig_id = only_migration(pg)
        # A reader's transaction keeps ACCESS SHARE on users (no conflict with the FK's SHARE ROW
        # EXCLUSIVE), and a schema change queues behind it for ACCESS EXCLUSIVE: the cutover's
        # ALTER queues behind that one, and its lock_timeout fires.
        reader = harness.connect(pg.dsn())
        reader.execute("SELECT count(*) FROM users")
        queued = harness.connect(pg.dsn())
        queued.autocommit = True
        queued_pid = queued.info.backend_pid
        done = threading.Event()
        errors = []

        def schema_change():
            try:
                queued.execute("ALTER TABLE users ALTER COLUMN email DROP DEFAULT")
            except Exception as e:  # reported below
                errors.append(e)
            done.set()

        t = threading.Thread(target=schema_change, daemon=True)
        t.start()
        harness.wait_for(lambda: waiting_for_lock(db, queued_pid), 30, what="the schema change to queue")
        run(*with_db(pg, "cutover", mig_id))
        failed = bg.wait_event(lambda e: e["event"] == "attempt_failed", 60, "a failed cutover attempt")
        assert "cutover attempt 1 of 10 failed" in failed["message"], failed
        assert "lock timeout" in failed["message"] and "55P03" in failed["message"], failed
        reader.commit()                                          # the queue drains
        assert done.wait(30) and not errors, errors
        r = bg.finish(120)
    finally:
        bg.kill()
    assert r.rc == 0, r
    attempts = int(re.search(r"cutover committed after (\d+) attempt", events_named(r, "cutover_done")[0]["message"])
                   .group(1))
    assert attempts >= 2, r
    assert len(events_named(r, "attempt_failed")) == attempts - 1, r
    defs = constraint_defs(db, child)
    assert defs[fk_name(child, column)][1:] == (
        f"FOREIGN KEY ({column}) REFERENCES {parent}(id) DEFERRABLE INITIALLY DEFERRED", True)
    reader.close()
    queued.close()
    # Every attempt's hold was released, the failed ones too.
    taken, released = proxy_holds(proxy, f"pgvalve-{mig_id}-cutover-")
    assert len(taken) == attempts and {t[0] for t in taken} <= released, proxy.log_text()
    doc = status(pg, mig_id)
    assert doc["state"] == "committed", doc
    # The journal's step says how many attempts it took.
    assert [s["attempts"] for s in doc["steps"] if s["phase"] == "cutover"] == [attempts], doc["steps"]
