"""The ORM corpus (tests/corpus/orm/, docs/architecture.md §4.2): migration files written the
way Prisma, Rails, Flyway, golang-migrate, Knex, TypeORM, Django (`sqlmigrate`) and Alembic
(`upgrade --sql`) write them, each with the plan pgvalve makes for it stored beside it as
`<file>.plan` (golden output: exit code, stdout and stderr of `pgvalve plan FILE`, against the
fixed schema of coordinator.create_schema plus Rails' schema_migrations).

test_plans_match_goldens regenerates every plan and compares it with its golden file. Only what
truly varies between runs is normalised: the corpus directory's absolute path, backend pids and
the number of sessions connected outside a proxy. To accept new output deliberately (after a
rule changed), run

    PGVALVE_UPDATE_GOLDEN=1 ctest -R integration.orm_corpus      (from the build directory)

and review the diff of tests/corpus/orm/**/*.plan before committing it.

test_applicable_files_apply_under_load applies every file whose golden plan exits 0, in order,
through the proxy while a write load runs through it, with no client error, and then checks the
schema: each constraint the plans name exists and is validated, each index is valid."""

import json
import os
import re
import threading

import pytest

import harness
from coordinator import pgvalve
from test_orm_files import db  # noqa: F401 (the fixture: the schema, search_path = public)

CORPUS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus", "orm"))
UPDATE = os.environ.get("PGVALVE_UPDATE_GOLDEN") == "1"


def corpus_files():
    out = []
    for root, _, names in os.walk(CORPUS):
        out += [os.path.relpath(os.path.join(root, n), CORPUS) for n in names if n.endswith(".sql")]
    return sorted(out)


FILES = corpus_files()


@pytest.fixture
def corpus_db(db):
    """test_orm_files.py's schema, without what earlier corpus runs created, plus Rails' own table."""
    for name in ("schema_migrations", "alembic_version", "reviews", "tags", "project_tags", "audit_log",
                 "attachments", "category", "labels", "ratings", "audit_events", "pipelines"):
        db.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')
    db.execute('DROP TYPE IF EXISTS "Priority"')
    db.execute("DROP SEQUENCE IF EXISTS audit_events_id_seq")
    db.execute("DROP FUNCTION IF EXISTS touch_updated_at()")
    db.execute("CREATE TABLE schema_migrations (version varchar PRIMARY KEY)")  # Rails keeps it
    db.execute("ANALYZE")
    return db


def normalise(text):
    text = text.replace(CORPUS + os.sep, "")
    text = re.sub(r"\bpid \d+", "pid N", text)
    text = re.sub(r"\b\d+ session\(s\)", "N session(s)", text)
    return text


def plan_output(pg, rel):
    r = pgvalve("plan", os.path.join(CORPUS, rel), pg=pg)
    return normalise(f"exit {r.rc}\n--- stdout\n{r.out}--- stderr\n{r.err}")


def golden_path(rel):
    return os.path.join(CORPUS, rel + ".plan")


def test_plans_match_goldens(pg, corpus_db):
    db = corpus_db
    assert len(FILES) >= 30, FILES
    for tool in ("prisma", "rails", "flyway", "golang-migrate", "knex", "typeorm", "django", "alembic"):
        assert any(f.startswith(tool + os.sep) for f in FILES), tool
    db.execute("ANALYZE")
    mismatched = []
    for rel in FILES:
        got = plan_output(pg, rel)
        assert "exit 0" in got.splitlines()[0] or "exit 1" in got.splitlines()[0], (rel, got)
        if UPDATE:
            with open(golden_path(rel), "w") as f:
                f.write(got)
            continue
        assert os.path.exists(golden_path(rel)), f"no golden plan for {rel}: run with PGVALVE_UPDATE_GOLDEN=1"
        with open(golden_path(rel)) as f:
            want = f.read()
        if got != want:
            mismatched.append((rel, want, got))
    stale = [p for p in (os.path.relpath(os.path.join(r, n), CORPUS) for r, _, ns in os.walk(CORPUS)
                         for n in ns if n.endswith(".plan")) if p[:-5] not in FILES]
    assert not stale, f"golden plans without a migration file: {stale}"
    if mismatched:
        import difflib
        diffs = []
        for rel, want, got in mismatched:
            diffs.append("".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                                      rel + ".plan", "now")))
        pytest.fail(f"{len(mismatched)} plan(s) differ from their golden file "
                    f"(PGVALVE_UPDATE_GOLDEN=1 accepts them):\n" + "\n".join(diffs)[:20000], pytrace=False)


def golden_exit(rel):
    with open(golden_path(rel)) as f:
        return int(f.readline().split()[1])


class WriteLoad:
    """Writers through the proxy, each in its own session: inserts into submissions and comments,
    updates to stages and users — the hot tables the corpus alters. Counts every error."""

    def __init__(self, proxy, n=4):
        self.proxy, self.stop, self.errors, self.done = proxy, threading.Event(), [], 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def run(self, i):
        conn = harness.connect(self.proxy.dsn())
        conn.autocommit = True
        k = 0
        try:
            while not self.stop.is_set():
                k += 1
                sid = 1000000 + i * 10000000 + k
                try:
                    with conn.transaction():
                        conn.execute("INSERT INTO submissions (id, workspace_id, stage_id, user_id, instance_id, "
                                     "score) VALUES (%s, 1, 1 + %s %% 2000, 1 + %s %% 2000, 1 + %s %% 2000, 1)",
                                     (sid, sid, sid, sid))
                        conn.execute("INSERT INTO comments (id, workspace_id, submission_id, author_id, body) "
                                     "VALUES (%s, 1, %s, 1 + %s %% 2000, 'x')", (sid, sid, sid))
                        conn.execute("UPDATE stages SET position = position + 1 WHERE id = 1 + %s %% 2000", (sid,))
                        conn.execute("UPDATE users SET email = email WHERE id = 1 + %s %% 2000", (sid,))
                    with self.lock:
                        self.done += 1
                except Exception as e:  # every client error counts: the test expects none
                    with self.lock:
                        self.errors.append(repr(e))
        finally:
            conn.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
        return self.done, self.errors


def test_applicable_files_apply_under_load(pg, corpus_db, proxy_factory):
    db = corpus_db
    applicable = [rel for rel in FILES if golden_exit(rel) == 0]
    assert len(applicable) >= 20, applicable
    proxy = proxy_factory(pg)
    load = WriteLoad(proxy)
    harness.wait_for(lambda: load.done > 0 or load.errors, 60, what="the write load to start")
    expected = []  # (kind, table, name) the plans promise
    try:
        for rel in applicable:
            path = os.path.join(CORPUS, rel)
            j = pgvalve("plan", path, "--format", "json", pg=pg)
            assert j.rc == 0, (rel, j)
            plan = json.loads(j.out)
            expected += [(c["type"], c["table_name"], c["name"], c.get("column")) for c in plan["constraints"]]
            for s in plan["steps"]:
                m = re.match(r'CREATE (?:UNIQUE )?INDEX CONCURRENTLY (?:IF NOT EXISTS )?("(?:[^"]|"")+"|[\w$]+)',
                             s["sql"], re.I)
                if s["kind"] == "create_index":
                    assert m, s
                    expected.append(("index", s["table"], m.group(1), None))
            before = load.done
            r = pgvalve("apply", path, "--proxy", f"http://{harness.HOST}:{proxy.admin_port}", "--watch", "1",
                        "--max-stall", "500", "--yes", pg=pg)
            assert r.rc == 0, (rel, r)
            assert db.execute("SELECT state FROM pgvalve.migrations ORDER BY id DESC LIMIT 1").fetchone()[0] \
                == "committed", rel
            harness.wait_for(lambda: load.done > before or load.errors, 60, what="writes after the migration")
    finally:
        done, errors = load.finish()
    assert done > 0 and errors == [], (done, errors[:5])
    assert proxy.admin("GET", "/holds")[1] == {"holds": []}

    for kind, table, name, column in expected:
        if kind == "index":
            row = db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                             (name,)).fetchone()
            assert row is not None and row[0], (table, name)
        elif kind == "not null":
            row = db.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                             "AND attname = %s", (f'"{table}"', column)).fetchone()
            assert row is not None and row[0], (table, column)
        else:
            row = db.execute("SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass(%s) "
                             "AND conname = %s", (f'"{table}"', name)).fetchone()
            assert row is not None and row[0], (kind, table, name)
    assert len(expected) >= 20, expected
    # Nothing half-done anywhere: no invalid index, no constraint left NOT VALID.
    assert db.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0] == 0
    assert db.execute("SELECT array_agg(conname) FROM pg_constraint WHERE NOT convalidated").fetchone()[0] is None
    # The ORMs' own records the files write ran with them.
    assert db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 4
    assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("ae1027a6acf",)]
