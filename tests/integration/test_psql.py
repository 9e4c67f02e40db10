"""psql through the proxy: simple queries, multi-statement strings, scripts, errors with
their SQLSTATE, notices, and \\copy both ways."""

import hashlib
import os
import random

import harness


def test_simple_query_returns_rows(proxy):
    r = proxy.psql("-At", "-c", "SELECT 40 + 2, current_user, current_database()")
    assert r.stdout.strip() == f"42|{harness.SUPERUSER}|{harness.DATABASE}"


def test_server_version_and_parameters_reach_client(proxy):
    r = proxy.psql("-At", "-c", "SHOW server_version_num", "-c", "SHOW standard_conforming_strings")
    lines = r.stdout.split()
    assert lines[0].startswith("15")
    assert lines[1] == "on"


def test_multi_statement_string_runs_every_statement(proxy):
    sql = ("DROP TABLE IF EXISTS psql_multi; CREATE TABLE psql_multi(a int); "
           "INSERT INTO psql_multi VALUES (1), (2); INSERT INTO psql_multi VALUES (3); "
           "SELECT sum(a) FROM psql_multi")
    r = proxy.psql("-Atq", "-c", sql)
    assert r.stdout.strip().splitlines()[-1] == "6"


def test_multi_statement_error_rolls_back_the_whole_string(proxy):
    proxy.psql("-q", "-c", "DROP TABLE IF EXISTS psql_implicit; CREATE TABLE psql_implicit(a int)")
    # One Query message is one implicit transaction: the failing statement undoes the insert.
    r = proxy.psql("-q", "-v", "VERBOSITY=verbose", "-c",
                   "INSERT INTO psql_implicit VALUES (1); SELECT 1/0; INSERT INTO psql_implicit VALUES (2)",
                   check=False)
    assert r.returncode == 1
    assert "22012" in r.stderr and "division by zero" in r.stderr
    r = proxy.psql("-At", "-c", "SELECT count(*) FROM psql_implicit")
    assert r.stdout.strip() == "0"


def test_script_with_transactions_and_variables(proxy, tmp_path):
    script = tmp_path / "script.sql"
    script.write_text("""
DROP TABLE IF EXISTS psql_script;
CREATE TABLE psql_script(id int primary key, v text);
BEGIN;
INSERT INTO psql_script SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
SAVEPOINT s1;
INSERT INTO psql_script VALUES (1, 'duplicate');
ROLLBACK TO SAVEPOINT s1;
UPDATE psql_script SET v = 'changed' WHERE id <= 10;
COMMIT;
SELECT count(*) AS n FROM psql_script \\gset
SELECT :n * 2 AS doubled;
SELECT count(*) FROM psql_script WHERE v = 'changed';
""")
    r = proxy.psql("-At", "-v", "ON_ERROR_STOP=0", "-f", str(script), check=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip().splitlines()
    assert out[-2:] == ["2000", "10"]
    assert "duplicate key value violates unique constraint" in r.stderr


def test_notice_is_relayed(proxy):
    r = proxy.psql("-q", "-c", "DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$")
    assert "NOTICE:  hello from plpgsql" in r.stderr


def test_error_sqlstate_is_relayed(proxy):
    r = proxy.psql("-v", "VERBOSITY=verbose", "-c", "SELECT * FROM no_such_table_xyz", check=False)
    assert r.returncode == 1
    assert "42P01" in r.stderr and "no_such_table_xyz" in r.stderr


def test_backslash_copy_round_trip(proxy, tmp_path):
    rng = random.Random(7)
    src = tmp_path / "in.tsv"
    with open(src, "w") as f:
        for i in range(50000):
            word = "".join(rng.choice("abcdefghij klmnop") for _ in range(rng.randint(0, 40)))
            f.write(f"{i}\t{word}\t{rng.random():.6f}\n")
    proxy.psql("-q", "-c", "DROP TABLE IF EXISTS psql_copy",
               "-c", "CREATE TABLE psql_copy(id int, word text, x numeric)")
    r = proxy.psql("-c", f"\\copy psql_copy FROM '{src}'")
    assert "COPY 50000" in r.stdout
    out = tmp_path / "out.tsv"
    r = proxy.psql("-c", f"\\copy (SELECT * FROM psql_copy ORDER BY id) TO '{out}'")
    assert "COPY 50000" in r.stdout
    assert harness.sha256_file(out) == harness.sha256_file(src)
    assert os.path.getsize(out) > 1_000_000


def test_many_sequential_psql_sessions(proxy):
    for i in range(20):
        r = proxy.psql("-At", "-c", f"SELECT {i} * 3")
        assert r.stdout.strip() == str(i * 3)
    proxy.assert_healthy()


def test_large_result_set(proxy):
    r = proxy.psql("-At", "-c", "SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g")
    lines = r.stdout.splitlines()
    assert len(lines) == 100000
    assert lines[-1] == "100000|" + "x" * 100
    digest = hashlib.sha256(r.stdout.encode()).hexdigest()
    expected = "".join(f"{g}|{'x' * 100}\n" for g in range(1, 100001))
    assert digest == hashlib.sha256(expected.encode()).hexdigest()
