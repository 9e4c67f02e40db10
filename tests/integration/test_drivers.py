"""Driver compatibility: the proxy must be transparent to every major PostgreSQL driver, not
just libpq. One test per driver runs a small program from drivers/<driver>/ through the proxy
as scram_user (SCRAM-SHA-256 relayed through the proxy) that does a simple query, a
parameterized query with a server-side prepared statement, a transaction rolled back, a unique
violation (the driver must report SQLSTATE 23505 and the connection must stay usable), a 1 MB
text round trip and (JDBC, pgx) a pipelined batch of 100 inserts, and prints one JSON line.
The test checks that line against values it computes itself or reads straight from PostgreSQL,
and checks that the proxy's /errors counted the 23505.

- JDBC: Debian's libpostgresql-jdbc-java, run as a single-file source program (`java
  DriverCheck.java`, JDK 17) with prepareThreshold=1.
- node-postgres: npm `pg` pinned in drivers/node/package-lock.json, installed with `npm ci`
  into the build tree (never into the repository), a named prepared statement.
- pgx v4: Debian's golang-github-jackc-pgx-v4-dev, built offline in GOPATH mode against
  /usr/share/gocode (GO111MODULE=off, GOPROXY=off); default extended protocol and statement
  cache, SendBatch.

A missing toolchain fails the test (it does not skip): deploy/local/install-deps.sh installs
them. Installed node modules and the pgx binary are cached under the build tree
(<build>/integration-drivers, next to bin/pgvalve-proxy; PGVALVE_DRIVER_CACHE overrides).
Npgsql is not covered: it is not packaged for Debian 12 and there is no .NET here.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVERS = os.path.join(HERE, "drivers")
JDBC_JAR = os.environ.get("PGVALVE_JDBC_JAR", "/usr/share/java/postgresql.jar")
GOCODE = os.environ.get("PGVALVE_GOCODE", "/usr/share/gocode")
USER = "scram_user"

# The large value: BIG_UNIT repeated and cut to BIG_CHARS characters (all in the BMP, so a
# character is one UTF-16 unit in Java and JavaScript too). 1 Mi characters, ~1.3 MB of UTF-8.
BIG_UNIT = "pgvalve 1MB round trip: ✓ ü 漢字 – \"quoted\" \\ tab\t end\n"
BIG_CHARS = 1 << 20

INSTALL = ("run deploy/local/install-deps.sh (as root): it installs the Debian packages "
           "openjdk-17-jdk-headless libpostgresql-jdbc-java golang-go "
           "golang-github-jackc-pgx-v4-dev")
NODE_INSTALL = ("install Node.js 16+ with npm (the machine image has NodeSource's nodejs, "
                "which includes npm; on plain Debian 12: apt-get install nodejs npm)")


def big_value():
    return "".join(BIG_UNIT[i % len(BIG_UNIT)] for i in range(BIG_CHARS))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- caching

def cache_dir(*parts):
    """Where built artifacts are kept between runs: $PGVALVE_DRIVER_CACHE, else
    <build>/integration-drivers when the proxy binary is <build>/bin/pgvalve-proxy of a CMake
    build tree, else a per-user directory under the system temp dir."""
    root = os.environ.get("PGVALVE_DRIVER_CACHE")
    if not root:
        bindir = os.path.dirname(os.path.abspath(harness.proxy_binary()))
        build = os.path.dirname(bindir)
        if (os.path.basename(bindir) == "bin"
                and os.path.exists(os.path.join(build, "CMakeCache.txt"))):
            root = os.path.join(build, "integration-drivers")
        else:
            root = os.path.join(tempfile.gettempdir(),
                                f"pgvalve-integration-drivers-{os.geteuid()}")
    path = os.path.join(root, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def files_key(*paths, extra=""):
    h = hashlib.sha256(extra.encode())
    for p in paths:
        with open(p, "rb") as f:
            h.update(os.path.basename(p).encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


def run_tool(cmd, what, timeout=300, **kw):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{what}: {cmd!r} timed out after {timeout}s\n{e.stdout}\n{e.stderr}",
                    pytrace=False)
    if r.returncode != 0:
        pytest.fail(f"{what}: {cmd!r} failed ({r.returncode}):\n{r.stdout[-3000:]}\n"
                    f"{r.stderr[-3000:]}", pytrace=False)
    return r


def require_command(name, purpose, hint=INSTALL):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{purpose}: `{name}` not found on PATH; {hint}", pytrace=False)
    return path


# --------------------------------------------------------------------------- toolchains

def jdbc_command():
    java = require_command("java", "JDBC test needs a JDK 17")
    r = subprocess.run([java, "-version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    m = re.search(r'version "(\d+)', r.stdout)
    if r.returncode != 0 or not m or int(m.group(1)) < 11:
        pytest.fail(f"JDBC test needs java 11+ (single-file source launch); `java -version` "
                    f"said:\n{r.stdout}\n{INSTALL}", pytrace=False)
    if not os.path.isfile(JDBC_JAR):
        pytest.fail(f"JDBC test: {JDBC_JAR} not found (package libpostgresql-jdbc-java); "
                    f"{INSTALL}", pytrace=False)
    return [java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", JDBC_JAR,
            os.path.join(DRIVERS, "jdbc", "DriverCheck.java")]


def node_command():
    node = require_command("node", "node-postgres test needs Node.js", NODE_INSTALL)
    npm = require_command("npm", "node-postgres test needs npm", NODE_INSTALL)
    src = os.path.join(DRIVERS, "node")
    manifest = [os.path.join(src, "package.json"), os.path.join(src, "package-lock.json")]
    version = run_tool([node, "--version"], "node --version", timeout=60).stdout.strip()
    m = re.match(r"v(\d+)\.", version)
    if not m or int(m.group(1)) < 16:
        pytest.fail(f"node-postgres test: pg needs Node.js 16+, `node --version` said "
                    f"{version!r}; {NODE_INSTALL}", pytrace=False)
    target = os.path.join(cache_dir("node"), files_key(*manifest, extra=version))
    if not os.path.isfile(os.path.join(target, "node_modules", "pg", "package.json")):
        # npm ci into a scratch directory beside the target, then rename: never in the repo.
        work = tempfile.mkdtemp(prefix="npm-", dir=cache_dir("node"))
        for p in manifest:
            shutil.copy(p, work)
        run_tool([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                 "node-postgres test: installing the pinned `pg` from the npm registry",
                 cwd=work, timeout=300)
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(work, target)
        except OSError:  # another run got there first
            shutil.rmtree(work, ignore_errors=True)
    return ([node, os.path.join(src, "check.js")],
            {"NODE_PATH": os.path.join(target, "node_modules")})


def pgx_command():
    go = require_command("go", "pgx test needs the Go toolchain (golang-go)")
    pgx_src = os.path.join(GOCODE, "src", "github.com", "jackc", "pgx", "v4")
    if not os.path.isfile(os.path.join(pgx_src, "conn.go")):
        pytest.fail(f"pgx test: {pgx_src} not found (package golang-github-jackc-pgx-v4-dev); "
                    f"{INSTALL}", pytrace=False)
    main = os.path.join(DRIVERS, "pgx", "main.go")
    version = run_tool([go, "version"], "go version", timeout=60).stdout.strip()
    with open(os.path.join(pgx_src, "conn.go"), "rb") as f:
        pgx_stamp = sha256_hex(f.read())
    out_dir = cache_dir("pgx")
    binary = os.path.join(out_dir, "pgx-check-" + files_key(main, extra=version + pgx_stamp))
    if not os.access(binary, os.X_OK):
        env = dict(os.environ)
        # Offline: GOPATH mode against Debian's packaged sources, no module proxy.
        env.update({"GO111MODULE": "off", "GOPATH": GOCODE, "GOPROXY": "off", "GOFLAGS": "",
                    "GOENV": "off", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0",
                    "GOCACHE": cache_dir("pgx", "go-build")})
        tmp = binary + f".tmp{os.getpid()}"
        run_tool([go, "build", "-o", tmp, main], "pgx test: building drivers/pgx/main.go "
                 f"offline against {GOCODE}", cwd=os.path.join(DRIVERS, "pgx"), env=env,
                 timeout=300)
        os.replace(tmp, binary)
    return [binary]


# --------------------------------------------------------------------------- running

def make_tables(direct, prefix):
    # In public by name: the superuser is called pgvalve, and once a test has installed the
    # auth lookup (schema pgvalve) its "$user" schema would come first in search_path.
    for suffix, cols in (("items", "id int PRIMARY KEY, v text"),
                         ("big", "id int PRIMARY KEY, body text"),
                         ("batch", "id int PRIMARY KEY, v text")):
        table = f"public.{prefix}_{suffix}"
        direct.execute(f"DROP TABLE IF EXISTS {table}")
        direct.execute(f"CREATE TABLE {table} ({cols})")
        direct.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {USER}")


def run_driver(cmd, port, prefix, extra_env=None, timeout=180):
    """Runs a driver program against 127.0.0.1:port; returns (returncode, stdout, stderr)."""
    env = dict(os.environ)
    env.update({"PGV_HOST": harness.HOST, "PGV_PORT": str(port), "PGV_USER": USER,
                "PGV_PASSWORD": harness.PASSWORDS[USER], "PGV_DATABASE": harness.DATABASE,
                "PGV_PREFIX": prefix, "PGV_BIG_UNIT": BIG_UNIT, "PGV_BIG_CHARS": str(BIG_CHARS)})
    env.update(extra_env or {})  # last: may name another user, TLS settings (PGV_SSLMODE, ...)
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", (e.stderr or "") + f"\n(timed out after {timeout}s)"
    return r.returncode, r.stdout, r.stderr


def drive(name, cmd, proxy, direct, extra_env=None):
    """Runs the driver through the proxy and returns its JSON result. If it fails, runs it once
    more straight against PostgreSQL so the failure says whether the proxy is to blame."""
    prefix = f"drv_{name}"
    make_tables(direct, prefix)
    rc, out, err = run_driver(cmd, proxy.port, prefix, extra_env)
    lines = [line for line in out.splitlines() if line.strip()]
    if rc == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    make_tables(direct, prefix + "_direct")
    drc, dout, derr = run_driver(cmd, proxy.pg.port, prefix + "_direct", extra_env)
    verdict = ("it PASSES straight against PostgreSQL, so this is a proxy bug" if drc == 0
               else f"it also fails straight against PostgreSQL (exit {drc}):\n{derr[-2000:]}")
    pytest.fail(f"{name} through the proxy exited {rc}\n--- stdout:\n{out[-2000:]}\n"
                f"--- stderr:\n{err[-4000:]}\n--- {verdict}\n--- proxy stderr, last lines:\n"
                + "\n".join(proxy.log_lines()[-40:]), pytrace=False)


def check_result(res, name, proxy, direct, batch):
    prefix = f"drv_{name}"
    items = f"{prefix}_items"
    # 1. simple query
    version = direct.execute("SELECT current_setting('server_version_num')").fetchone()[0]
    assert res["simple"] == {"current_user": USER, "database": harness.DATABASE, "answer": 42,
                             "server_version_num": version}, res
    # 2. parameterized, server-side prepared
    assert res["prepared"]["rows"] == [[i * 3, f"PREP-{i}"] for i in range(5)], res
    assert len(res["prepared"]["server_statements"]) >= 1, \
        f"{name}: no named server-side statement in pg_prepared_statements: {res['prepared']}"
    # 3. rollback: seen inside the transaction, gone after, and absent on the server
    assert res["rollback"] == {"in_transaction": 3, "after_rollback": 0}, res
    # 4. unique violation, reported as 23505, connection still usable; the server has exactly
    #    the rows inserted before and after the error
    assert res["unique"]["sqlstate"] == "23505", res["unique"]
    assert res["unique"]["constraint"] == f"{items}_pkey", res["unique"]
    assert res["unique"]["table"] == items, res["unique"]
    assert res["unique"]["after_error"] == 1, res["unique"]
    rows = direct.execute(f"SELECT id, v FROM public.{items} ORDER BY id").fetchall()
    assert rows == [(1, "first"), (2, "after")], rows
    # 5. 1 MB text, compared with what this test computes and what the server stored
    expected = big_value()
    digest = sha256_hex(expected.encode("utf-8"))
    assert len(expected.encode("utf-8")) > 1_000_000
    assert res["big"] == {"sent_chars": BIG_CHARS, "echo_equal": True, "read_chars": BIG_CHARS,
                          "read_equal": True, "read_sha256": digest}, res["big"]
    stored = direct.execute(f"SELECT count(*), max(length(body)), "
                            f"max(encode(sha256(convert_to(body, 'UTF8')), 'hex')) "
                            f"FROM public.{prefix}_big").fetchone()
    assert stored == (1, BIG_CHARS, digest), stored
    # 6. batch of 100 inserts
    if batch:
        assert res["batch"] == {"statements": 100, "rows_affected": 100, "count": 100}, res["batch"]
        got = direct.execute(f"SELECT count(*), sum(id), bool_and(v = 'batch-' || id) "
                             f"FROM public.{prefix}_batch").fetchone()
        assert got == (100, 5050, True), got
    assert res["final"] == "done", res
    # The proxy counted the one error, with its table and constraint, and is healthy.
    doc = proxy.errors(window_s=300)
    assert doc["by_sqlstate"] == {"23505": 1}, doc
    assert doc["by_constraint"] == {f"{items}_pkey": 1}, doc
    assert doc["by_table"] == {f"public.{items}": 1}, doc
    assert doc["errors"] == 1 and doc["statements"] > (100 if batch else 10), doc
    proxy.assert_healthy()


def test_jdbc(proxy, direct):
    res = drive("jdbc", jdbc_command(), proxy, direct)
    assert res["prepared"]["use_server_prepare"] is True, res["prepared"]
    names = res["prepared"]["server_statements"]
    assert names and all(re.fullmatch(r"S_\d+", n) for n in names), res
    check_result(res, "jdbc", proxy, direct, batch=True)


def test_node_pg(proxy, direct):
    cmd, extra = node_command()
    res = drive("node", cmd, proxy, direct, extra)
    assert res["driver_version"] == "8.23.1", res["driver_version"]
    assert res["prepared"]["server_statements"] == ["pgvalve_prep"], res["prepared"]
    check_result(res, "node", proxy, direct, batch=False)
    # Connection-level 'error' events (unhandled, they crash a node process). Straight against
    # PostgreSQL there are none: after end() sends Terminate the server just closes.
    assert res["client_errors"] == [], (
        f"node-pg got an error not tied to any query: {res['client_errors']} (an ErrorResponse "
        "after end() sent Terminate; see test_terminate_then_server_close_is_silent)"
        "\n--- proxy stderr, last lines:\n" + "\n".join(proxy.log_lines()[-10:]))


def test_pgx(proxy, direct):
    res = drive("pgx", pgx_command(), proxy, direct)
    check_result(res, "pgx", proxy, direct, batch=True)


def test_terminate_then_server_close_is_silent(proxy, pg):
    """What every driver does on close (pgjdbc, pgx, node-postgres, libpq): send Terminate.
    The server then closes its end without a word, and so must the proxy: an ErrorResponse
    after Terminate reaches drivers that still read (node-pg emits it as an 'error' event,
    fatal when unhandled). The client keeps its socket open here, so the server's close is
    always seen first: the deterministic form of the race test_node_pg can hit."""
    for label, port in (("PostgreSQL", pg.port), ("the proxy", proxy.port)):
        with harness.RawConn(harness.HOST, port) as c:
            c.startup(USER)
            c.send_msg(b"X")
            msgs = c.read_until_closed(timeout=10)
        got = [(t.decode(), harness.parse_error_fields(b) if t == b"E" else b) for t, b in msgs]
        assert got == [], (f"after Terminate {label} sent {got} before closing\n"
                           "--- proxy stderr, last lines:\n" + "\n".join(proxy.log_lines()[-10:]))
    assert "closed the connection unexpectedly" not in proxy.log_text(), proxy.log_text()[-2000:]
