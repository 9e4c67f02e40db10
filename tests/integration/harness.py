"""Integration harness: a throwaway PostgreSQL 15 cluster and the pgvalve-proxy binary.

It owns process lifecycles (initdb/pg_ctl as the `postgres` user, the proxy as a child),
certificates made with the openssl CLI, free 127.0.0.1 ports, admin HTTP helpers, a small
raw frontend/backend protocol client for the tests that must see exact messages (SQLSTATEs
of connection failures, hostile bytes), a recorder of what the proxy sends upstream and when,
and the sanitizer environment and checks for every binary the tests start. It does not hold
test logic; conftest.py turns these into pytest fixtures. Nothing here touches any address
but 127.0.0.1.
"""

import base64
import contextlib
import copy
import hashlib
import hmac
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG_BIN = os.environ.get("PGVALVE_PG_BIN", "/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"

# Roles made in every cluster, with their passwords and the pg_hba method that applies to them.
SUPERUSER = "pgvalve"
PASSWORDS = {
    "pgvalve": "pgvalve-secret",
    "scram_user": "scram-secret",
    "md5_user": "md5-secret",
    "pass_user": "pass-secret",
    "trust_user": "trust-secret",
}
AUTH_METHODS = {
    "scram_user": "scram-sha-256",
    "md5_user": "md5",
    "pass_user": "password",
    "trust_user": "trust",
}
DATABASE = "pgvalve_test"

# What a sanitizer prints when it finds something; any of these in the proxy's or the
# coordinator's stderr fails a test.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "UndefinedBehaviorSanitizer",
    "ThreadSanitizer",
)

# The exit status an ASan build uses when it finds an error, for every binary the tests start.
# ASan's default, 1, is also the coordinator's "refused by a check": a report would pass for
# a refusal. 86 is no exit status of pgvalve or pgvalve-proxy.
SANITIZER_EXIT = 86


def sanitizer_env(env=None):
    """A copy of env (default: os.environ) with ASan/LSan and UBSan (built not to recover)
    reporting and exiting with SANITIZER_EXIT, UBSan printing stack traces; options already
    set are kept, exitcode wins."""
    e = dict(os.environ if env is None else env)
    for name, default in (("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0"),
                          ("UBSAN_OPTIONS", "print_stacktrace=1")):
        opts = e.get(name, default)
        e[name] = f"{opts}:exitcode={SANITIZER_EXIT}" if opts else f"exitcode={SANITIZER_EXIT}"
    return e


def sanitizer_report(text):
    """The first sanitizer marker found in a process's stderr, or None."""
    for marker in SANITIZER_MARKERS:
        if marker in text:
            return marker
    return None


def proxy_binary():
    return os.environ.get("PGVALVE_PROXY", os.path.join(REPO, "build", "bin", "pgvalve-proxy"))


def coordinator_binary():
    return os.environ.get("PGVALVE_COORDINATOR", os.path.join(REPO, "build", "bin", "pgvalve"))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on a bind race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value, which is returned; raises on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _run(cmd, **kw):
    kw.setdefault("check", True)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    try:
        return subprocess.run(cmd, **kw)
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"{cmd!r} failed ({e.returncode}):\n{e.stdout}\n{e.stderr}") from None


# --------------------------------------------------------------------------- certificates

def make_ca(directory, name="ca"):
    """A self-signed CA: returns (cert_path, key_path)."""
    crt, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes", "-days", "30",
          "-subj", f"/CN=pgvalve test {name}", "-keyout", key, "-out", crt,
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return crt, key


def make_cert(directory, name, ca_crt, ca_key, cn="localhost"):
    """A server certificate for localhost / 127.0.0.1 signed by the CA: (cert_path, key_path)."""
    crt, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    csr, ext = os.path.join(directory, f"{name}.csr"), os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes", "-subj", f"/CN={cn}",
          "-keyout", key, "-out", csr])
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
          "-CAcreateserial", "-days", "30", "-sha256", "-extfile", ext, "-out", crt])
    os.chmod(key, 0o600)
    return crt, key


# --------------------------------------------------------------------------- PostgreSQL

class PgCluster:
    """A PostgreSQL 15 cluster in a temp dir, run as the `postgres` OS user, TCP on 127.0.0.1
    only, TLS on, one role per authentication method (see PASSWORDS / AUTH_METHODS)."""

    def __init__(self, basedir=None):
        self.dir = tempfile.mkdtemp(prefix="pgvalve-pg-", dir=basedir)
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sockdir = os.path.join(self.dir, "sock")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.certdir = os.path.join(self.dir, "certs")
        self.port = None
        self.running = False
        # initdb refuses root: as root the server runs as the `postgres` OS user; as anyone
        # else it runs as that user.
        self._root = os.geteuid() == 0
        if self._root:
            pw = pwd.getpwnam("postgres")
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
        else:
            self._uid, self._gid = os.geteuid(), os.getegid()

    # Certificates are readable by the proxy (root) and the client; the server gets copies.
    def _make_certs(self):
        os.makedirs(self.certdir)
        self.ca_crt, self.ca_key = make_ca(self.certdir, "ca")
        self.server_crt, self.server_key = make_cert(self.certdir, "server", self.ca_crt, self.ca_key)
        # A second, unrelated CA: verify-full against it must fail.
        self.other_ca_crt, self.other_ca_key = make_ca(self.certdir, "other-ca")
        self._other_server = None

    def other_server_cert(self):
        """A localhost/127.0.0.1 certificate signed by the other CA: (cert_path, key_path)."""
        if self._other_server is None:
            self._other_server = make_cert(self.certdir, "other-server", self.other_ca_crt,
                                           self.other_ca_key)
        return self._other_server

    def _as_postgres(self, cmd, **kw):
        if self._root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        return _run(cmd, cwd=self.dir, **kw)

    def _chown(self, path):
        if self._root:
            os.chown(path, self._uid, self._gid)

    def init(self):
        self._make_certs()
        os.makedirs(self.sockdir)
        self._chown(self.sockdir)
        self._chown(self.dir)
        self._as_postgres([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", SUPERUSER,
                           "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        for src, dst in ((self.server_crt, "server.crt"), (self.server_key, "server.key"),
                         (self.ca_crt, "root.crt")):
            path = os.path.join(self.data, dst)
            shutil.copy(src, path)
            self._chown(path)
            os.chmod(path, 0o600)
        hba = ["# written by tests/integration/harness.py",
               "local all all trust",
               "local replication all trust"]  # start_standby(): pg_basebackup, streaming
        for user, method in AUTH_METHODS.items():
            hba.append(f"host all {user} 127.0.0.1/32 {method}")
        hba.append("host all all 127.0.0.1/32 scram-sha-256")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("\n".join(hba) + "\n")
        self.port = free_port()
        self._write_port_conf()
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
# tests/integration/harness.py
listen_addresses = '127.0.0.1'
unix_socket_directories = '{self.sockdir}'
max_connections = 700
superuser_reserved_connections = 3
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'root.crt'
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
max_wal_size = 2GB
log_min_messages = warning
log_connections = off
include_if_exists = 'port.conf'
""")

    def _write_port_conf(self):
        path = os.path.join(self.data, "port.conf")
        with open(path, "w") as f:
            f.write(f"port = {self.port}\n")
        self._chown(path)

    def start(self, attempts=3):
        for attempt in range(attempts):
            r = self._as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l",
                                   self.logfile, "-w", "-t", "60", "start"], check=False)
            if r.returncode == 0:
                self.running = True
                return
            log = self.log_text()
            if "could not bind" in log or "Address already in use" in log:
                self.port = free_port()  # lost a race for the port: take another
                self._write_port_conf()
                continue
            break
        raise RuntimeError(f"PostgreSQL did not start:\n{r.stdout}\n{r.stderr}\n{self.log_text()[-4000:]}")

    def stop(self, mode="fast"):
        if not self.running:
            return
        self._as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", mode, "-w",
                           "-t", "60", "stop"], check=False)
        self.running = False

    def restart(self):
        self.stop()
        self.start()

    def destroy(self):
        with contextlib.suppress(Exception):
            self.stop(mode="immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def setup_roles(self):
        """Creates the test database and roles; md5_user's verifier is stored as md5."""
        sql = [
            f"ALTER ROLE {SUPERUSER} PASSWORD '{PASSWORDS[SUPERUSER]}'",
            f"CREATE DATABASE {DATABASE} OWNER {SUPERUSER}",
        ]
        for user in AUTH_METHODS:
            sql.append(f"CREATE ROLE {user} LOGIN")
        sql += [
            "SET password_encryption = 'scram-sha-256'",
            f"ALTER ROLE scram_user PASSWORD '{PASSWORDS['scram_user']}'",
            f"ALTER ROLE pass_user PASSWORD '{PASSWORDS['pass_user']}'",
            f"ALTER ROLE trust_user PASSWORD '{PASSWORDS['trust_user']}'",
            "SET password_encryption = 'md5'",
            f"ALTER ROLE md5_user PASSWORD '{PASSWORDS['md5_user']}'",
            "RESET password_encryption",
        ]
        self.psql_admin(";\n".join(sql) + ";", dbname="postgres")
        self.psql_admin("GRANT ALL ON SCHEMA public TO PUBLIC;", dbname=DATABASE)

    def psql_admin(self, sql, dbname=DATABASE):
        """Runs SQL as the superuser over the Unix socket (not through the proxy)."""
        return _run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sockdir,
                     "-p", str(self.port), "-U", SUPERUSER, "-d", dbname, "-At"], input=sql).stdout

    def dsn(self, user=SUPERUSER, dbname=DATABASE, **kw):
        """A libpq conninfo straight to the server over TCP (bypassing the proxy)."""
        params = {"host": HOST, "port": self.port, "user": user, "dbname": dbname,
                  "password": PASSWORDS.get(user, ""), "sslmode": "disable",
                  "connect_timeout": 10}
        params.update(kw)
        return conninfo(params)


def conninfo(params):
    def quote(v):
        v = str(v)
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return " ".join(f"{k}={quote(v)}" for k, v in params.items() if v is not None)


def start_standby(primary, basedir=None):
    """A streaming hot standby of `primary` (pg_basebackup -R over its Unix socket, as the same OS
    user) on a free port; a PgCluster to stop and destroy like any other. Nothing is added to the
    primary but the `local replication` line init() writes (max_wal_senders is 10 by default)."""
    sb = PgCluster(basedir)
    try:
        sb._chown(sb.dir)
        sb.sockdir = primary.sockdir
        sb._as_postgres([os.path.join(PG_BIN, "pg_basebackup"), "-h", primary.sockdir,
                         "-p", str(primary.port), "-U", SUPERUSER, "-D", sb.data, "-R",
                         "-X", "stream", "-c", "fast", "--no-sync"])
        sb.port = free_port()
        sb._write_port_conf()
        sb.start()
    except BaseException:
        sb.destroy()
        raise
    return sb


def start_cluster(basedir=None):
    pg = PgCluster(basedir)
    try:
        pg.init()
        pg.start()
        pg.setup_roles()
    except BaseException:
        pg.destroy()
        raise
    return pg


# --------------------------------------------------------------------------- the proxy

def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class ProxyError(AssertionError):
    pass


class Proxy:
    """One pgvalve-proxy process with its config file, stderr log and admin client."""

    def __init__(self, pg, workdir, overrides=None, binary=None, extra_args=(), admin_host=HOST,
                 admin_port=None):
        self.pg = pg
        self.admin_host = admin_host          # the admin API's address (a fleet: 127.0.0.x)
        self.fixed_admin_port = admin_port    # None: a free port at each start
        self.workdir = workdir
        self.binary = binary or proxy_binary()
        self.extra_args = list(extra_args)
        self.overrides = overrides or {}
        self.config_path = os.path.join(workdir, "pgvalve-proxy.json")
        self.log_path = os.path.join(workdir, "pgvalve-proxy.stderr")
        self.proc = None
        self.exit_expected = False
        self.port = None
        self.admin_port = None
        self.config = None

    # --- configuration

    def base_config(self):
        return {
            "listen": {"host": HOST, "port": self.port},
            "upstream": {"host": HOST, "port": self.pg.port, "sslmode": "disable"},
            "admin": {"host": self.admin_host, "port": self.admin_port},
            "workers": 2,
            "timeouts": {"connect_ms": 5000, "auth_ms": 30000, "shutdown_timeout_ms": 3000},
            "log": {"level": "info", "format": "text"},
        }

    def write_config(self, config=None):
        self.config = config if config is not None else deep_merge(self.base_config(), self.overrides)
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)

    def update_config(self, overrides):
        """Rewrites the config file with more overrides (for SIGHUP reload tests)."""
        self.write_config(deep_merge(self.config, overrides))

    # --- lifecycle

    def start(self, attempts=3):
        if not os.path.exists(self.binary):
            raise ProxyError(f"proxy binary not found: {self.binary} (set PGVALVE_PROXY)")
        for attempt in range(attempts):
            self.port, self.admin_port = free_port(), self.fixed_admin_port or free_port()
            self.write_config()
            self._spawn()
            try:
                wait_for(self._ready_or_dead, 20, what="proxy /healthz")
            except TimeoutError:
                self.kill()
                raise ProxyError(f"proxy did not become healthy:\n{self.log_text()[-4000:]}")
            if self.proc.poll() is None:
                return self
            log = self.log_text()
            if "in use" in log.lower() and attempt + 1 < attempts:
                continue  # lost a race for a port
            raise ProxyError(f"proxy exited with {self.proc.returncode} at start:\n{log[-4000:]}")
        return self

    def _spawn(self):
        env = sanitizer_env()
        if getattr(self, "_log_file", None):
            self._log_file.close()
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.config_path] + self.extra_args,
                                     stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=self._log_file, env=env)

    def _ready_or_dead(self):
        if self.proc.poll() is not None:
            return True
        try:
            status, body = self.admin_get("/healthz", timeout=1)
            return status == 200
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        """Teardown: SIGTERM, expect exit 0 within the shutdown timeout. Returns a list of
        problems (died unexpectedly, bad exit, sanitizer reports) for the fixture to fail on."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is not None:
            if not self.exit_expected:
                problems.append(f"proxy died unexpectedly with status {self.proc.returncode}")
        else:
            self.proc.send_signal(signal.SIGTERM)
            limit = (self.config or {}).get("timeouts", {}).get("shutdown_timeout_ms", 30000) / 1000 + 15
            rc = self.wait_exit(limit)
            if rc is None:
                self.kill()
                problems.append(f"proxy did not exit within {limit}s of SIGTERM")
            elif rc != 0:
                problems.append(f"proxy exited with status {rc} after SIGTERM")
        with contextlib.suppress(Exception):
            self._log_file.close()
        marker = sanitizer_report(self.log_text())
        if marker:
            problems.append(f"sanitizer report in proxy stderr ({marker!r})")
        if self.proc.returncode == SANITIZER_EXIT:
            problems.append(f"proxy exited with the sanitizer's status {SANITIZER_EXIT}")
        return problems

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    # --- clients

    def dsn(self, user=SUPERUSER, dbname=DATABASE, password=None, **kw):
        params = {"host": HOST, "port": self.port, "user": user, "dbname": dbname,
                  "password": PASSWORDS.get(user, "") if password is None else password,
                  "sslmode": "disable", "connect_timeout": 10, "application_name": "pgvalve-it"}
        params.update(kw)
        return conninfo(params)

    def env(self, user=SUPERUSER, password=None, dbname=DATABASE, **extra):
        """Environment for libpq command-line tools (psql, pgbench) connecting via the proxy."""
        env = dict(os.environ)
        env.update({"PGHOST": HOST, "PGPORT": str(self.port), "PGUSER": user,
                    "PGDATABASE": dbname, "PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10",
                    "PGPASSWORD": PASSWORDS.get(user, "") if password is None else password})
        env.pop("PGSERVICE", None)
        env.update(extra)
        return env

    def psql(self, *args, user=SUPERUSER, input=None, check=True, timeout=120, env=None):
        e = self.env(user=user)
        e.update(env or {})
        r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1"] + list(args), input=input,
                           env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"psql {args!r} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def raw(self, timeout=10):
        return RawConn(HOST, self.port, timeout=timeout)

    # --- admin HTTP

    def admin_get(self, path, timeout=10):
        c = http.client.HTTPConnection(self.admin_host, self.admin_port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def admin(self, method, path, body=None, token=None, timeout=30):
        """One admin HTTP call with a JSON body: (status, parsed JSON, or the text if not JSON)."""
        c = http.client.HTTPConnection(self.admin_host, self.admin_port, timeout=timeout)
        try:
            data = body if body is None or isinstance(body, (str, bytes)) else json.dumps(body)
            headers = {"Content-Type": "application/json"} if data is not None else {}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            text = r.read().decode("utf-8", "replace")
        finally:
            c.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def admin_json(self, path):
        status, body = self.admin_get(path)
        assert status == 200, f"GET {path} -> {status}: {body}"
        return json.loads(body)

    def healthz(self):
        return self.admin_get("/healthz")

    def status(self):
        return self.admin_json("/status")

    def errors(self, window_s=60):
        return self.admin_json(f"/errors?window_s={window_s}")

    def metrics(self):
        status, body = self.admin_get("/metrics")
        assert status == 200, f"GET /metrics -> {status}: {body}"
        return parse_prometheus(body)

    def assert_healthy(self):
        assert self.alive(), f"proxy died: {self.proc.returncode}\n{self.log_text()[-3000:]}"
        status, body = self.healthz()
        assert status == 200 and body.strip() == "ok", f"/healthz -> {status} {body!r}"


def parse_prometheus(text):
    """{(name, frozenset(labels.items())): value} plus {name: sum over labels} under key name."""
    samples = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            labels_s, value_s = rest.rsplit("}", 1)
            labels = {}
            for part in _split_labels(labels_s):
                k, v = part.split("=", 1)
                labels[k.strip()] = v.strip().strip('"')
        else:
            name, value_s = line.split(None, 1)
            labels = {}
        value = float(value_s.split()[0])
        samples[(name, frozenset(labels.items()))] = value
        samples[name] = samples.get(name, 0.0) + value
    return samples


def _split_labels(s):
    parts, cur, in_q = [], "", False
    for ch in s:
        if ch == '"':
            in_q = not in_q
        if ch == "," and not in_q:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


# --------------------------------------------------------------------------- raw protocol

class PgError(Exception):
    def __init__(self, fields):
        self.fields = fields
        self.sqlstate = fields.get("C")
        super().__init__(f"{fields.get('S')} {self.sqlstate}: {fields.get('M')}")


def parse_error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


class RawConn:
    """A frontend/backend protocol v3 client on a plain socket: exact bytes in, exact
    messages out. Authentication: trust, cleartext, md5, SCRAM-SHA-256 (no channel binding)."""

    def __init__(self, host, port, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.params = {}
        self.backend_pid = None
        self.backend_key = None
        self.status = None
        self.sasl_mechanisms = None
        self.closed = False

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def starttls(self, cafile=None):
        """SSLRequest; on 'S' wraps the socket in TLS (verifying against cafile if given).
        Returns the server's one-byte answer."""
        self.send(struct.pack("!II", 8, 80877103))
        answer = self.sock.recv(1)
        if answer == b"S":
            ctx = ssl.create_default_context(cafile=cafile)
            if cafile is None:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock, server_hostname=HOST)
        return answer

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_msg(self, typ, body=b""):
        self.send(typ + struct.pack("!I", len(body) + 4) + body)

    @staticmethod
    def startup_packet(user, database, **params):
        body = struct.pack("!I", 196608)
        items = {"user": user, "database": database}
        items.update(params)
        for k, v in items.items():
            body += k.encode() + b"\0" + str(v).encode() + b"\0"
        body += b"\0"
        return struct.pack("!I", len(body) + 4) + body

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by peer")
        self.buf += chunk

    def read_msg(self):
        """Returns (type_byte, body). Raises EOFError when the peer closed."""
        while len(self.buf) < 5:
            self._fill()
        typ, length = self.buf[:1], struct.unpack("!I", self.buf[1:5])[0]
        while len(self.buf) < 1 + length:
            self._fill()
        body, self.buf = self.buf[5:1 + length], self.buf[1 + length:]
        return typ, body

    def read_until_closed(self, timeout=10):
        """Reads every message until EOF; returns them. Raises TimeoutError if still open."""
        msgs = []
        self.sock.settimeout(timeout)
        try:
            while True:
                try:
                    msgs.append(self.read_msg())
                except EOFError:
                    return msgs
                except ConnectionResetError:
                    return msgs
        except socket.timeout:
            raise TimeoutError(f"connection still open after {timeout}s; got {msgs!r}") from None

    def startup(self, user, database=DATABASE, password=None, **params):
        """Sends a StartupMessage and authenticates; returns after ReadyForQuery.
        Raises PgError on an ErrorResponse."""
        if password is None:
            password = PASSWORDS.get(user, "")
        self.send(self.startup_packet(user, database, **params))
        scram = None
        while True:
            typ, body = self.read_msg()
            if typ == b"E":
                raise PgError(parse_error_fields(body))
            if typ == b"R":
                code = struct.unpack("!I", body[:4])[0]
                if code == 0:
                    continue
                if code == 3:
                    self.send_msg(b"p", password.encode() + b"\0")
                elif code == 5:
                    salt = body[4:8]
                    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send_msg(b"p", b"md5" + outer.encode() + b"\0")
                elif code == 10:
                    mechs = [m for m in body[4:].split(b"\0") if m]
                    self.sasl_mechanisms = [m.decode() for m in mechs]
                    assert b"SCRAM-SHA-256" in mechs, mechs
                    scram = _Scram(password)
                    first = scram.client_first().encode()
                    self.send_msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
                elif code == 11:
                    self.send_msg(b"p", scram.client_final(body[4:].decode()).encode())
                elif code == 12:
                    scram.verify_server_final(body[4:].decode())
                else:
                    raise AssertionError(f"unsupported auth request {code}")
            elif typ == b"S":
                k, v = body[:-1].split(b"\0", 1)
                self.params[k.decode()] = v.decode()
            elif typ == b"K":
                self.backend_pid, self.backend_key = struct.unpack("!II", body)
            elif typ == b"Z":
                self.status = body
                return self
            elif typ == b"N":
                continue
            else:
                raise AssertionError(f"unexpected message {typ!r} during startup")

    def query(self, sql):
        """Simple query: returns (rows as lists of str|None, [error fields...]) at
        ReadyForQuery, or what came before the peer closed the connection (self.closed)."""
        self.send_msg(b"Q", sql.encode() + b"\0")
        rows, errors = [], []
        while True:
            try:
                typ, body = self.read_msg()
            except (EOFError, ConnectionResetError):
                self.closed = True
                return rows, errors
            if typ == b"D":
                n = struct.unpack("!H", body[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif typ == b"E":
                errors.append(parse_error_fields(body))
            elif typ == b"Z":
                self.status = body
                return rows, errors

    def terminate(self):
        with contextlib.suppress(OSError):
            self.send_msg(b"X")
        self.close()


class _Scram:
    """Client side of SCRAM-SHA-256 (RFC 5802/7677), gs2 header "n,," (no channel binding)."""

    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()

    def client_first(self):
        self.first_bare = f"n=,r={self.nonce}"
        return "n,," + self.first_bare

    def client_final(self, server_first):
        attrs = dict(p.split("=", 1) for p in server_first.split(","))
        assert attrs["r"].startswith(self.nonce)
        salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iters)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        self.auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, self.auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify_server_final(self, server_final):
        attrs = dict(p.split("=", 1) for p in server_final.split(","))
        expected = hmac.new(self.server_key, self.auth_message, "sha256").digest()
        assert base64.b64decode(attrs["v"]) == expected, "bad SCRAM server signature"


# --------------------------------------------------------------------------- upstream recorder

class UpstreamRecorder:
    """A TCP relay between the proxy and PostgreSQL that stamps every chunk the proxy sends
    upstream with the kernel's receive time (SO_TIMESTAMPNS). Which session the proxy let go
    first cannot be read from the server (three backends woken microseconds apart race for
    a serial or clock_timestamp()), but it can be read here, exactly."""

    SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.chunks = []          # (kernel receive time in ns, bytes) from proxy to server
        self.lock = threading.Lock()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection((HOST, self.upstream_port), timeout=10)
            up.settimeout(None)
            down.setsockopt(socket.SOL_SOCKET, self.SO_TIMESTAMPNS, 1)
            for so in (down, up):
                so.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.socks += [down, up]
            threading.Thread(target=self._upward, args=(down, up), daemon=True).start()
            threading.Thread(target=self._downward, args=(up, down), daemon=True).start()

    def _upward(self, src, dst):
        try:
            while True:
                data, anc, _, _ = src.recvmsg(65536, socket.CMSG_SPACE(16))
                if not data:
                    break
                stamp = None
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == self.SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", payload[:16])
                        stamp = sec * 1_000_000_000 + nsec
                with self.lock:
                    self.chunks.append((stamp, data))
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _downward(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def stamp_of(self, marker):
        """Kernel receive time of the chunk that carried `marker` upstream."""
        with self.lock:
            found = [t for t, data in self.chunks if marker in data]
        assert len(found) == 1 and found[0] is not None, f"{marker!r} went upstream {len(found)} time(s)"
        return found[0]

    def close(self):
        self.listener.close()
        with self.lock:
            for so in self.socks:
                with contextlib.suppress(OSError):
                    so.close()


# --------------------------------------------------------------------------- client helpers

def connect(dsn, driver="psycopg", **kw):
    """Opens a psycopg 3 (default) or psycopg2 connection."""
    if driver == "psycopg2":
        import psycopg2
        return psycopg2.connect(dsn, **kw)
    import psycopg
    return psycopg.connect(dsn, **kw)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
