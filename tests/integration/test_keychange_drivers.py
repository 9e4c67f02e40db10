"""Prepared statements across the online key type change (docs/architecture.md §4.9, statement
refresh): psycopg 3 (default prepare_threshold, text and binary results), pgjdbc
(prepareThreshold 5, its default, and 1; binary transfer, its default), pgx v4 (its default
statement cache) and node-postgres (named statements) each run a loop of server-side prepared
statements on the key of a table of their own (INSERT ... RETURNING id, SELECT id, v ... WHERE
id = $1, SELECT * ... WHERE id = $1, UPDATE ... WHERE id = $1) while `pgvalve apply` adds the
shadow columns and swaps the key to bigint, `pgvalve rollback` swaps it back and drops them,
and a second apply swaps it again and `pgvalve finalize` drops the old columns.

Through the proxy, which re-prepares the statements of those tables before their next use and
presents their results in the shape each client was shown, no client sees an error and every
value read is the value written. Straight against PostgreSQL, the same loops show what each
driver meets without that help (the table in README and docs/architecture.md §4.9); the run
writes both to keychange_drivers.json beside the test's log (PGVALVE_KEYCHANGE_DRIVERS_OUT)."""

import json
import os
import subprocess
import sys
import time

import psycopg
import pytest
from psycopg.types.numeric import Int8

import harness
import test_drivers as drv
from coordinator import pgvalve, write_file

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "drivers", "keychange")
LOOPS = ("psycopg", "psycopgbin", "jdbc5", "jdbc1", "pgx", "node")
CHANGES = 5  # row type changes: shadow columns added, swap, swap back + shadow columns dropped, swap, finalize


def pgx_loop_command():
    go = drv.require_command("go", "pgx test needs the Go toolchain (golang-go)")
    main = os.path.join(HERE, "drivers", "keychange_pgx", "main.go")
    version = drv.run_tool([go, "version"], "go version", timeout=60).stdout.strip()
    binary = os.path.join(drv.cache_dir("pgx"), "pgx-keychange-" + drv.files_key(main, extra=version))
    if not os.access(binary, os.X_OK):
        env = dict(os.environ)
        env.update({"GO111MODULE": "off", "GOPATH": drv.GOCODE, "GOPROXY": "off", "GOFLAGS": "",
                    "GOENV": "off", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0",
                    "GOCACHE": drv.cache_dir("pgx", "go-build")})
        tmp = binary + f".tmp{os.getpid()}"
        drv.run_tool([go, "build", "-o", tmp, main], "building drivers/keychange_pgx/main.go",
                     cwd=os.path.dirname(main), env=env, timeout=300)
        os.replace(tmp, binary)
    return [binary], {}


def loop_command(name):
    """(argv, extra environment) of one loop."""
    if name.startswith("psycopg"):
        return ([sys.executable, os.path.join(SRC, "loop_psycopg.py")],
                {"PGV_BINARY": "1" if name == "psycopgbin" else "0"})
    if name.startswith("jdbc"):
        java = drv.jdbc_command()[:-1]  # java and its options, without DriverCheck.java
        return java + [os.path.join(SRC, "KeychangeLoop.java")], {"PGV_PREPARE_THRESHOLD": name[4:]}
    if name == "pgx":
        return pgx_loop_command()
    node, env = drv.node_command()
    return [node[0], os.path.join(SRC, "loop.js")], env


def table(helped):
    """One table for all loops (a migration's rollback swaps back one key per migration)."""
    return f"kc_{'proxy' if helped else 'direct'}"


class Loops:
    def __init__(self, port, helped, tmp_path):
        self.helped = helped
        self.stop = str(tmp_path / f"stop-{'proxy' if helped else 'direct'}")
        self.procs = {}
        for name in LOOPS:
            cmd, extra = loop_command(name)
            env = dict(os.environ)
            env.update({"PGV_HOST": harness.HOST, "PGV_PORT": str(port), "PGV_USER": drv.USER,
                        "PGV_PASSWORD": harness.PASSWORDS[drv.USER], "PGV_DATABASE": harness.DATABASE,
                        "PGV_TABLE": table(helped), "PGV_STOP": self.stop, "PGV_TAG": name,
                        "PGV_PROGRESS": self.progress_file(name)})
            env.update(extra)
            self.procs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                text=True, cwd=str(tmp_path))

    def progress_file(self, name):
        return f"{self.stop}.{name}"

    def progress(self):
        """{loop: iterations so far} (0 until its first round ends)."""
        out = {}
        for name in LOOPS:
            try:
                with open(self.progress_file(name)) as f:
                    out[name] = int(f.read() or 0)
            except (OSError, ValueError):
                out[name] = 0
        return out

    def finish(self):
        open(self.stop, "w").close()
        out = {}
        for name, p in self.procs.items():
            try:
                stdout, stderr = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                stdout, stderr = p.communicate()
            lines = [line for line in stdout.splitlines() if line.strip()]
            assert p.returncode == 0 and lines, f"{name} exited {p.returncode}:\n{stdout[-2000:]}\n{stderr[-3000:]}"
            out[name] = json.loads(lines[-1])
        return out


def advance(loops, by=15, what=""):
    """Waits until every loop has gone round 'by' more times, whatever each round met."""
    start = loops.progress()
    harness.wait_for(lambda: all(c >= start[n] + by for n, c in loops.progress().items()), 180,
                     what=f"every driver loop going on {what} (rounds: {loops.progress()})")


def admin(proxy):
    return f"http://{harness.HOST}:{proxy.admin_port}"


def change_keys(pg, db, proxy, tmp_path, helped, loops):
    """apply (shadow columns, swap), rollback (swap back, shadow columns dropped), apply again,
    finalize; the loops go on between every step."""
    t = table(helped)
    text = f"ALTER TABLE {t} ALTER COLUMN id TYPE bigint;\n"
    path = write_file(tmp_path, f"0001_bigint_{helped}.sql", text)
    advance(loops, what="before the change")
    r = pgvalve("apply", path, "--proxy", admin(proxy), "--watch", "0", pg=pg, check=0)
    assert "waiting for" in r.out or r.rc == 0 or r.rc == 3, r
    advance(loops, what="after the swap")
    mig = db.execute("SELECT max(id) FROM pgvalve.migrations").fetchone()[0]
    r = pgvalve("rollback", mig, "--proxy", admin(proxy), pg=pg, check=3)
    assert "swapped back" in r.out, r
    advance(loops, what="after the swap back")
    path = write_file(tmp_path, f"0002_bigint_{helped}.sql", text)
    pgvalve("apply", path, "--proxy", admin(proxy), "--watch", "0", pg=pg, check=0)
    advance(loops, what="after the second swap")
    mig = db.execute("SELECT max(id) FROM pgvalve.migrations").fetchone()[0]
    r = pgvalve("finalize", mig, "--proxy", admin(proxy), pg=pg, check=0)
    assert "finalized" in r.out, r
    advance(loops, what="after finalize")
    assert db.execute(f"SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = '{t}'::regclass "
                      "AND attname = 'id'").fetchone()[0] == "bigint"


@pytest.fixture
def db(pg):
    conn = harness.connect(pg.dsn())
    conn.autocommit = True
    conn.execute("DROP SCHEMA IF EXISTS pgvalve CASCADE")
    for helped in (True, False):
        for t in (table(helped),):
            conn.execute(f"DROP TABLE IF EXISTS {t}")
            conn.execute(f"CREATE TABLE {t} (id serial PRIMARY KEY, v text)")
            conn.execute(f"GRANT SELECT, INSERT, UPDATE ON {t} TO {drv.USER}")
            conn.execute(f"GRANT USAGE ON SEQUENCE {t}_id_seq TO {drv.USER}")
    yield conn
    conn.close()


def record(helped, results):
    path = os.environ.get("PGVALVE_KEYCHANGE_DRIVERS_OUT") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(harness.proxy_binary()))), "keychange_drivers.json")
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        doc = {}
    doc["with_proxy_refresh" if helped else "direct_to_postgresql"] = results
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    print(json.dumps(results, indent=1, sort_keys=True))


def test_every_driver_keeps_its_prepared_statements_through_the_key_change(pg, db, proxy, tmp_path):
    loops = Loops(proxy.port, True, tmp_path)
    try:
        change_keys(pg, db, proxy, tmp_path, True, loops)
    finally:
        results = loops.finish()
    record(True, results)
    if any(r["errors"] or r["mismatches"] for r in results.values()):
        # What the proxy and the server said, for the failure below.
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(harness.proxy_binary()))),
                               "keychange_drivers_failure.log"), "w") as f:
            f.write("\n".join(proxy.log_lines()) + "\n---- postgres\n" + open(pg.logfile, errors="replace").read())
    for name, r in results.items():
        # Never a wrong value, never an error: an execution already on its way to the server
        # when a change's hold began is waited for before the hold is acknowledged (in_flight),
        # so the change's DDL runs after it, and every later one is re-prepared.
        assert r["mismatches"] == 0, (name, r)
        assert r["errors"] == 0, (name, r)
        assert r["iterations"] > 75, (name, r)
    assert any("statement refresh" in line for line in proxy.log_lines()), proxy.log_lines()[-30:]


def test_without_the_proxy_the_drivers_meet_0A000(pg, db, proxy, tmp_path):
    """The same loops straight against PostgreSQL (the proxy only takes the coordinator's holds):
    what each driver sees is the measured table of docs/architecture.md §4.9."""
    loops = Loops(pg.port, False, tmp_path)
    try:
        change_keys(pg, db, proxy, tmp_path, False, loops)
    finally:
        results = loops.finish()
    record(False, results)
    errors = {name: r["first_errors"] for name, r in results.items() if r["errors"]}
    assert any("0A000" in e for errs in errors.values() for e in errs), results


def test_a_key_beyond_what_the_client_was_shown_is_an_error_never_a_cut_value(pg, db, proxy, tmp_path):
    """A statement prepared while the key was int4, read in binary after the swap: keys that fit
    come back right, one beyond int4 is ERROR 22003 (never its low 32 bits), and the session goes
    on; a statement prepared after the swap reads the bigint key."""
    t = table(True)
    db.execute(f"INSERT INTO {t} (v) SELECT 'old-' || g FROM generate_series(1, 5) g")
    conn = psycopg.connect(proxy.dsn(user=drv.USER, password=harness.PASSWORDS[drv.USER]), autocommit=True)
    cur = conn.cursor(binary=True)
    query = f"SELECT id, v FROM {t} WHERE id = %s"
    # Int8: the same statement whatever the value (psycopg prepares one per parameter type)
    assert cur.execute(query, (Int8(3),), prepare=True).fetchone() == (3, "old-3")
    path = write_file(tmp_path, "0001_bigint.sql", f"ALTER TABLE {t} ALTER COLUMN id TYPE bigint;\n")
    pgvalve("apply", path, "--proxy", admin(proxy), "--watch", "0", pg=pg, check=0)
    assert db.execute(f"SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = '{t}'::regclass "
                      "AND attname = 'id'").fetchone()[0] == "bigint"
    big = 3_000_000_007
    db.execute(f"INSERT INTO {t} (id, v) VALUES ({big}, 'big')")
    assert cur.execute(query, (Int8(4),), prepare=True).fetchone() == (4, "old-4")
    with pytest.raises(psycopg.Error) as e:
        cur.execute(query, (Int8(big),), prepare=True).fetchone()
    assert e.value.sqlstate == "22003", e.value
    assert "prepare the statement again" in str(e.value), e.value
    assert cur.execute(query, (Int8(5),), prepare=True).fetchone() == (5, "old-5")  # the session goes on
    assert conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql").fetchone()[0] == 1
    assert cur.execute(f"SELECT id, v FROM {t} WHERE id = %s AND true", (big,),
                       prepare=True).fetchone() == (big, "big")
    conn.close()
