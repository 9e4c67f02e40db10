"""Hostile migration files (docs/architecture.md §4.2, input): statements split across lines,
';' inside comments, strings and dollar-quoted bodies are planned as the statements they are and
applied; a 50 MB file gets a clear answer whatever its shape, parsed in pieces so memory stays
bounded (bench/plan-large-file measures time and peak memory); invalid UTF-8 and NUL bytes
are usage errors (exit 2) naming the line and byte offset; an empty file and a file of comments
have nothing to plan; a function created in the file and used as a column default is judged by
its CREATE FUNCTION (VOLATILE, as one that writes tables is: refused). Nothing is changed by any file that is refused."""

import os

import pytest

import harness
from coordinator import pgvalve, write_file
from test_orm_files import db  # noqa: F401 (the fixture: the schema, search_path = public)


def columns(db, table):
    return {r[0] for r in db.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                                     "AND attnum > 0 AND NOT attisdropped", (table,)).fetchall()}


TRICKY = """\
-- a comment; with a semicolon
ALTER TABLE "users"
    ADD COLUMN "motto" text
    DEFAULT 'keep calm; carry on';   /* ; in a block comment */
COMMENT ON COLUMN "users"."motto" IS $doc$It says; "hi" -- not a comment$doc$;
CREATE FUNCTION shout(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $body$
BEGIN
  RETURN upper(t) || ';';  -- a ; inside a body
END;
$body$;
ALTER TABLE
  "projects"
  ADD CONSTRAINT "projects_title_check"
  CHECK ("title" <> 'a;b')
;
"""


def test_split_statements_and_semicolons_in_text(pg, db, proxy_factory, tmp_path):
    path = write_file(tmp_path, "tricky.sql", TRICKY)
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 0, r
    assert "4 statement(s)" in r.out, r
    for line in (2, 5, 6, 11):
        assert f"tricky.sql:{line}  " in r.out, (line, r.out)
    proxy = proxy_factory(pg)
    r = pgvalve("apply", path, "--proxy", f"http://{harness.HOST}:{proxy.admin_port}", "--watch", "0",
                "--yes", pg=pg)
    assert r.rc == 0, r
    assert db.execute("SELECT count(*) FROM users WHERE motto = 'keep calm; carry on'").fetchone()[0] == 2000
    assert db.execute("SELECT col_description('users'::regclass, attnum) FROM pg_attribute WHERE "
                      "attrelid = 'users'::regclass AND attname = 'motto'").fetchone()[0] \
        == 'It says; "hi" -- not a comment'
    assert db.execute("SELECT shout('x')").fetchone()[0] == "X;"
    assert db.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'projects_title_check'"
                      ).fetchone()[0]


def test_a_50_mb_file_gets_a_clear_answer(pg, db, tmp_path):
    before = columns(db, "comments")
    one = tmp_path / "one_statement.sql"
    row = "('20240101000000'),\n"
    with open(one, "w") as f:
        f.write("INSERT INTO comments (body) VALUES\n" + row * (50 * 1024 * 1024 // len(row)) + "('x');\n")
    r = pgvalve("plan", one, pg=pg)
    assert r.rc == 1, r
    assert "one_statement.sql:1: no rule covers a statement longer than 64 KiB" in r.err, r.err[:2000]
    many = tmp_path / "many_statements.sql"
    line = 'ALTER TABLE "comments" ADD COLUMN IF NOT EXISTS "c" text; -- padding padding\n'
    with open(many, "w") as f:
        f.write(line * (50 * 1024 * 1024 // len(line)))
    r = pgvalve("plan", many, pg=pg)
    assert r.rc == 1, r
    assert "more than 10000 statements" in r.err and "split it" in r.err, r.err[:2000]
    r = pgvalve("apply", many, "--yes", pg=pg)
    assert r.rc == 1, r
    # 50 MB of function bodies (9,000 statements) is parsed in pieces; a syntax error near the
    # end is still named by its line in the whole file.
    funcs = tmp_path / "functions.sql"
    body = "  -- " + "x" * 5700 + "\n"
    with open(funcs, "w") as f:
        for i in range(9000):
            f.write(f"CREATE FUNCTION f{i}() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n{body}"
                    f"  RETURN {i}; -- ;\nEND $$;\n")
            if i == 8500:
                f.write("ALTER TABLE users ADD COLUMN;\n")
    assert os.path.getsize(funcs) > 50 * 1000 * 1000
    r = pgvalve("plan", funcs, pg=pg)
    assert r.rc == 1, r
    assert f"functions.sql:{8501 * 5 + 1}: syntax error at or near \";\"" in r.err, r.err[:2000]
    assert columns(db, "comments") == before


def test_invalid_utf8_and_nul_bytes_are_usage_errors(pg, db, tmp_path):
    bad = tmp_path / "latin1.sql"
    bad.write_bytes(b'ALTER TABLE "users" ADD COLUMN "note" text;\n'
                    b"COMMENT ON TABLE users IS 'caf\xe9';\n")
    for cmd in ("plan", "apply"):
        r = pgvalve(cmd, bad, "--yes", pg=pg) if cmd == "apply" else pgvalve(cmd, bad, pg=pg)
        assert r.rc == 2, r
        assert "latin1.sql:2: not valid UTF-8: byte 0xe9 at byte offset 74" in r.err, r
    assert "note" not in columns(db, "users")
    # A truncated sequence at the very end, and an overlong encoding of '/'.
    for name, data, offset in (("cut.sql", b"SELECT 1; -- \xe2\x82", 13), ("overlong.sql", b"SELECT 1; \xc0\xaf", 10)):
        p = tmp_path / name
        p.write_bytes(data)
        r = pgvalve("plan", p, pg=pg)
        assert r.rc == 2 and f"at byte offset {offset}" in r.err, r
    nul = tmp_path / "nul.sql"
    nul.write_bytes(b'ALTER TABLE "users" ADD COLUMN "note" text;\n\x00DROP TABLE users;\n')
    r = pgvalve("plan", nul, pg=pg)
    assert r.rc == 2 and "nul.sql:2: contains a NUL byte at byte offset 44" in r.err, r
    assert "note" not in columns(db, "users")


def test_empty_and_comment_only_files(pg, db, tmp_path):
    for name, text in (("empty.sql", ""), ("comments.sql", "-- nothing; here\n/* nor; here */\n\n")):
        r = pgvalve("plan", write_file(tmp_path, name, text), pg=pg)
        assert r.rc == 1 and f"{name}: no statements to plan" in r.err, r


def test_a_function_created_in_the_file_and_used_as_a_default(pg, db, tmp_path):
    """The CREATE FUNCTION of the same file decides: VOLATILE (the default, and what a function
    that writes tables is) is refused like random(); one declared IMMUTABLE is a fast default."""
    text = """\
CREATE FUNCTION next_ticket() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  UPDATE stages SET position = position + 1 WHERE id = 1; -- writes a table; every row would
  RETURN 1;
END $$;
ALTER TABLE "users" ADD COLUMN "ticket" int DEFAULT next_ticket();
"""
    path = write_file(tmp_path, "fn.sql", text)
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 1, r
    assert "fn.sql:6: refused: ADD COLUMN ticket with a default calling next_ticket(), which is volatile" in r.err, r
    assert "backfill in batches" in r.err, r
    r = pgvalve("apply", path, "--yes", pg=pg)
    assert r.rc == 1, r
    assert "ticket" not in columns(db, "users")
    assert db.execute("SELECT to_regproc('next_ticket') IS NULL").fetchone()[0]

    path = write_file(tmp_path, "fn2.sql", text.replace("LANGUAGE plpgsql AS", "LANGUAGE plpgsql IMMUTABLE AS")
                      .replace("UPDATE stages SET position = position + 1 WHERE id = 1;", "NULL;"))
    r = pgvalve("plan", path, pg=pg)
    assert r.rc == 0 and "volatile" not in r.out + r.err, r
    r = pgvalve("apply", path, "--yes", pg=pg)
    assert r.rc == 0, r
    assert db.execute("SELECT count(*) FROM users WHERE ticket = 1").fetchone()[0] == 2000
