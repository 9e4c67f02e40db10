"""Migration files as ORMs write them, against a real PostgreSQL and a real proxy
(docs/architecture.md, the coordinator): a Django `sqlmigrate` file (a column with an inline
DEFERRABLE foreign key, SET CONSTRAINTS, a varchar column, an index on the new column) and a
Prisma `migration.sql` (a new table with foreign keys to hot tables, ADD COLUMN NOT NULL
DEFAULT 0, an index, an ADD FOREIGN KEY) are planned, then applied under a pgbench write load
through the proxy with no failed client transaction and the schema as the file meant; a file
of unsafe statements has every one named by one `plan` run, with its line and recipe, and
`apply` refuses it changing nothing; a NOT NULL column without a default on a table with rows,
a default calling a function pg_proc says is volatile, and a type change that is not a
widening of a varchar, are refused by the preflight, and so are new tables that would land in pgvalve's journal schema."""

import json

import pytest

import harness
from coordinator import constraints, pgbench_result, pgvalve, schema_conn, start_pgbench, write_file


@pytest.fixture
def db(pg):
    with schema_conn(pg) as conn:
        # The test role is named pgvalve: "$user" in the default search_path would be the journal's
        # schema, and new tables would land there (the preflight refuses that: see the last test).
        conn.execute("ALTER ROLE CURRENT_USER SET search_path = public")
        conn.execute("SET search_path = public")
        yield conn
        conn.execute("ALTER ROLE CURRENT_USER RESET search_path")


DJANGO = """\
BEGIN;
--
-- Add field reviewer to comment
--
ALTER TABLE "comments" ADD COLUMN "reviewer_id" integer NULL CONSTRAINT "comments_reviewer_id_1a2b3c4d_fk_users_id" REFERENCES "users"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "comments_reviewer_id_1a2b3c4d_fk_users_id" IMMEDIATE;
--
-- Add field note to comment
--
ALTER TABLE "comments" ADD COLUMN "note" varchar(200) NULL;
CREATE INDEX "comments_reviewer_id_1a2b3c4d" ON "comments" ("reviewer_id");
COMMIT;
"""

PRISMA = """\
-- CreateTable
CREATE TABLE "reviews" (
    "id" SERIAL NOT NULL,
    "submission_id" INTEGER NOT NULL REFERENCES "submissions"("id") ON DELETE CASCADE,
    "author_id" INTEGER NOT NULL,
    "body" TEXT,

    CONSTRAINT "reviews_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "reviews_author_id_fkey" FOREIGN KEY ("author_id") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- AlterTable
ALTER TABLE "stages" ADD COLUMN "weight" INTEGER NOT NULL DEFAULT 0;

-- CreateIndex
CREATE INDEX "reviews_submission_id_idx" ON "reviews"("submission_id");

-- AddForeignKey
ALTER TABLE "comments" ADD CONSTRAINT "comments_author_id_fkey" FOREIGN KEY ("author_id") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
"""

UNSAFE = """\
-- several things strong_migrations would stop
ALTER TABLE "users" ADD COLUMN "token" uuid DEFAULT gen_random_uuid();
CREATE INDEX "users_email_idx" ON "users" ("email");
ALTER TABLE "projects" ALTER COLUMN "owner_id" TYPE bigint;
VACUUM FULL "comments";
LOCK TABLE "stages";
ALTER TABLE "stages" ENABLE ROW LEVEL SECURITY;
"""


def columns(db, table):
    return dict(db.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                           (table,)).fetchall())


def index_valid(db, name):
    row = db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)).fetchone()
    return row is not None and row[0]


def apply_under_load(pg, db, proxy, tmp_path, path):
    load = start_pgbench(proxy, tmp_path, seconds=20)
    harness.wait_for(lambda: db.execute("SELECT count(*) FROM comments WHERE id >= 1000000").fetchone()[0] > 0,
                     60, interval=0.1, what="the write load to start")
    r = pgvalve("apply", path, "--proxy", f"http://{harness.HOST}:{proxy.admin_port}", "--watch", "1",
                "--max-stall", "500", "--yes", pg=pg)
    done, failed, aborted, out = pgbench_result(load)
    assert r.rc == 0, r
    assert done > 0 and failed == 0 and aborted == 0, out
    assert db.execute("SELECT state FROM pgvalve.migrations ORDER BY id DESC LIMIT 1").fetchone()[0] == "committed"
    assert proxy.admin("GET", "/holds")[1] == {"holds": []}
    return r


def test_django_sqlmigrate_file(pg, db, proxy_factory, tmp_path):
    path = write_file(tmp_path, "0002_comment_reviewer.sql", DJANGO)
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 0, r
    assert 'ADD COLUMN "reviewer_id" integer NULL\n' in r.out, r
    assert ('ADD CONSTRAINT "comments_reviewer_id_1a2b3c4d_fk_users_id" FOREIGN KEY ("reviewer_id") '
            'REFERENCES "users" ("id") DEFERRABLE INITIALLY DEFERRED NOT VALID') in r.out, r
    assert "SET CONSTRAINTS is dropped" in r.out
    assert 'CREATE INDEX CONCURRENTLY "comments_reviewer_id_1a2b3c4d"' in r.out
    assert "builds its index CONCURRENTLY after the cutover" in r.out
    assert "could not count orphan rows" not in r.out, r     # a new column has none to count
    assert "reviewer_id" not in columns(db, "comments")      # plan changes nothing

    apply_under_load(pg, db, proxy_factory(pg), tmp_path, path)
    cols = columns(db, "comments")
    assert cols["reviewer_id"] == "integer" and cols["note"] == "character varying(200)"
    defn, valid = constraints(db, "comments")[("comments", "comments_reviewer_id_1a2b3c4d_fk_users_id")]
    assert valid and "DEFERRABLE INITIALLY DEFERRED" in defn, defn
    assert index_valid(db, "comments_reviewer_id_1a2b3c4d")


def test_prisma_migration_file(pg, db, proxy_factory, tmp_path):
    path = write_file(tmp_path, "migration.sql", PRISMA)
    j = pgvalve("plan", path, "--format", "json", pg=pg)
    assert j.rc == 0, j
    doc = json.loads(j.out)
    by_kind = [(s["phase"], s["kind"]) for s in doc["steps"]]
    assert by_kind[0] == ("prepare", "create_object") and by_kind[1] == ("prepare", "create_index"), by_kind
    assert ("cutover", "alter") in by_kind
    assert sum(1 for s in doc["steps"] if s["kind"] == "add_not_valid") == 3
    assert not [f for f in doc["preflight"] if f["level"] == "error"], doc["preflight"]
    assert doc["refused"] == []

    apply_under_load(pg, db, proxy_factory(pg), tmp_path, path)
    assert columns(db, "reviews") == {"id": "integer", "submission_id": "integer", "author_id": "integer",
                                      "body": "text"}
    assert columns(db, "stages")["weight"] == "integer"
    assert db.execute("SELECT count(*) FROM stages WHERE weight <> 0").fetchone()[0] == 0
    cons = constraints(db)
    for table, name in [("reviews", "reviews_submission_id_fkey"), ("reviews", "reviews_author_id_fkey"),
                        ("comments", "comments_author_id_fkey"), ("reviews", "reviews_pkey")]:
        assert cons[(table, name)][1], (table, name, cons.get((table, name)))
    assert "ON DELETE CASCADE" in cons[("reviews", "reviews_submission_id_fkey")][0]
    assert "ON UPDATE CASCADE ON DELETE RESTRICT" in cons[("reviews", "reviews_author_id_fkey")][0]
    assert index_valid(db, "reviews_submission_id_idx")


def test_plan_names_every_unsafe_statement(pg, db, tmp_path):
    path = write_file(tmp_path, "unsafe.sql", UNSAFE)
    before = constraints(db), columns(db, "users"), columns(db, "projects")
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 1, r
    for line, part in [(2, "backfill in batches, then set the default"), (4, "TYPE"), (5, "VACUUM FULL"),
                       (6, "LOCK TABLE"), (7, "no rule covers")]:
        assert f"unsafe.sql:{line}: " in r.err and part in r.err, (line, part, r.err)
    assert "unsafe.sql:3:" not in r.err                       # CREATE INDEX is fine
    assert "5 statements refused; nothing was changed" in r.err

    j = pgvalve("plan", path, "--format", "json", pg=pg)
    assert j.rc == 1, j
    refused = json.loads(j.out)["refused"]
    assert [x["line"] for x in refused] == [2, 4, 5, 6, 7]
    assert all(x["why"] and x["recipe"] and x["statement"] for x in refused), refused

    r = pgvalve("apply", path, "--yes", pg=pg)
    assert r.rc == 1, r
    assert (constraints(db), columns(db, "users"), columns(db, "projects")) == before


def test_preflight_reads_emptiness_and_volatility_from_the_catalog(pg, db, tmp_path):
    path = write_file(tmp_path, "nn.sql", 'ALTER TABLE "users" ADD COLUMN "level" integer NOT NULL;\n')
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 1, r
    assert "not_empty" in r.out and "backfill in batches" in r.out, r
    # Whether a default is volatile comes from pg_proc.provolatile.
    db.execute("CREATE OR REPLACE FUNCTION pick_one() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'")
    db.execute("CREATE OR REPLACE FUNCTION fixed_one() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1'")
    path = write_file(tmp_path, "v.sql", 'ALTER TABLE "users" ADD COLUMN "lvl" integer DEFAULT pick_one();\n')
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 1 and "volatile_default" in r.out and "pick_one, which is volatile" in r.out, r
    path = write_file(tmp_path, "i.sql", 'ALTER TABLE "users" ADD COLUMN "lvl" integer DEFAULT fixed_one();\n')
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 0 and "volatile_default" not in r.out, r
    # Whether a type change is a widening comes from the column's type in pg_attribute.
    db.execute("ALTER TABLE projects ALTER COLUMN title TYPE varchar(100)")
    path = write_file(tmp_path, "narrow.sql", 'ALTER TABLE "projects" ALTER COLUMN "title" TYPE varchar(50);\n')
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 1 and "type_change" in r.out and "character varying(100)" in r.out, r
    path = write_file(tmp_path, "wide.sql", 'ALTER TABLE "projects" ALTER COLUMN "title" TYPE varchar(200);\n')
    r = pgvalve("apply", path, "--yes", pg=pg)
    assert r.rc == 0, r
    assert columns(db, "projects")["title"] == "character varying(200)"
    db.execute("CREATE TABLE empty_one (id int)")
    path = write_file(tmp_path, "nn2.sql", 'ALTER TABLE "empty_one" ADD COLUMN "level" integer NOT NULL;\n')
    r = pgvalve("apply", path, "--yes", pg=pg)
    assert r.rc == 0, r
    assert columns(db, "empty_one")["level"] == "integer"


def test_new_tables_never_land_in_the_journal_schema(pg, db, tmp_path):
    db.execute("ALTER ROLE CURRENT_USER RESET search_path")
    db.execute("RESET search_path")
    db.execute("CREATE SCHEMA IF NOT EXISTS pgvalve")
    path = write_file(tmp_path, "t.sql", 'CREATE TABLE "audit_log" (id int);\n')
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 1, r
    assert "creation_schema" in r.out and "ALTER ROLE" in r.out, r
    path = write_file(tmp_path, "t2.sql", 'SET search_path TO public;\nCREATE TABLE "audit_log" (id int);\n')
    r = pgvalve("apply", path, "--yes", pg=pg)
    assert r.rc == 0, r
    assert db.execute("SELECT to_regclass('public.audit_log') IS NOT NULL").fetchone()[0]
