"""auth.mode "terminate": the proxy authenticates clients itself from auth.userlist_file (the
server's own verifiers, copied from pg_authid) and logs in upstream with the client's SCRAM keys
or the stored md5 hash. With TLS on both legs, libpq's defaults (channel_binding=prefer) work —
the case relay mode cannot carry — and channel_binding=require gets SCRAM-SHA-256-PLUS bound to
the proxy's certificate, while the server leg is TLS too. Wrong password and unknown role get
PostgreSQL's one 28P01 answer."""

import base64
import hashlib
import hmac
import math
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import psycopg
import pytest

import harness

TLS_USERS = ["scram_user", "md5_user", harness.SUPERUSER]


def write_userlist(pg, path):
    """auth_file lines for every role with a password, straight from pg_authid."""
    text = pg.psql_admin(
        "SELECT format('\"%s\" \"%s\"', replace(rolname, '\"', '\"\"'), rolpassword) "
        "FROM pg_authid WHERE rolpassword IS NOT NULL ORDER BY rolname")
    with open(path, "w") as f:
        f.write("; written by test_auth_terminate.py from pg_authid\n" + text)
    return path


def server_ssl(conn):
    return conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]


@pytest.fixture
def userlist(pg, tmp_path):
    return write_userlist(pg, str(tmp_path / "userlist.txt"))


def terminate_overrides(pg, userlist, client_tls=True, upstream="require"):
    o = {"upstream": {"sslmode": upstream}, "auth": {"mode": "terminate", "userlist_file": userlist}}
    if client_tls:
        o["tls"] = {"cert_file": pg.server_crt, "key_file": pg.server_key}
    return o


@pytest.fixture
def tproxy(pg, proxy_factory, userlist):
    """A terminating proxy with TLS on both legs."""
    return proxy_factory(pg, terminate_overrides(pg, userlist))


def tls_kw(pg, **kw):
    d = {"sslmode": "verify-full", "sslrootcert": pg.ca_crt}
    d.update(kw)
    return d


@pytest.mark.parametrize("user", TLS_USERS)
def test_libpq_defaults_through_tls_on_both_legs(pg, tproxy, connect, user):
    """psycopg with channel_binding left at its default (prefer): logs in, queries, and the
    server sees TLS on the upstream session."""
    conn = connect(tproxy, user=user, **tls_kw(pg))
    assert conn.pgconn.ssl_in_use
    assert conn.execute("SELECT current_user, session_user").fetchone() == (user, user)
    assert server_ssl(conn) is True
    assert conn.execute("SELECT sum(g) FROM generate_series(1, 1000) g").fetchone() == (500500,)


def test_channel_binding_require_uses_scram_plus(pg, tproxy, connect):
    conn = connect(tproxy, user="scram_user", **tls_kw(pg, channel_binding="require"))
    assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
    assert server_ssl(conn) is True
    with tproxy.raw() as raw:
        assert raw.starttls(cafile=pg.ca_crt) == b"S"
        raw.send(raw.startup_packet("scram_user", harness.DATABASE))
        typ, body = raw.read_msg()
        assert typ == b"R" and int.from_bytes(body[:4], "big") == 10
        assert [m for m in body[4:].split(b"\0") if m] == [b"SCRAM-SHA-256-PLUS", b"SCRAM-SHA-256"]


def test_both_legs_bind_their_channel_and_nothing_secret_is_logged(pg, proxy_factory, userlist,
                                                                   connect):
    """At debug level the proxy says which mechanism each leg used: -PLUS on both when both are
    TLS. Neither passwords nor verifiers appear in its log."""
    o = terminate_overrides(pg, userlist)
    o["log"] = {"level": "debug"}
    proxy = proxy_factory(pg, o)
    conn = connect(proxy, user="scram_user", **tls_kw(pg, channel_binding="require"))
    assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proxy.dsn(user="scram_user", password="wrong-one", **tls_kw(pg)))
    log = proxy.log_text()
    assert "client authenticated with SCRAM-SHA-256-PLUS" in log
    assert "logging in upstream with SCRAM-SHA-256-PLUS" in log
    secrets = list(harness.PASSWORDS.values()) + ["wrong-one"]
    with open(userlist) as f:
        secrets += [line.split('"')[3] for line in f if line.startswith('"')]
    for secret in secrets:
        for piece in secret.replace("$", ":").split(":"):
            if len(piece) >= 8 and not piece.startswith("SCRAM-SHA-256"):
                assert piece not in log


def test_psql_with_default_settings(pg, tproxy):
    r = tproxy.psql("-At", "-c", "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    user="scram_user", env={"PGSSLMODE": "require"})
    assert r.stdout.strip() == "scram_user|t"
    r = tproxy.psql("-c", "\\conninfo", user="scram_user", env={"PGSSLMODE": "require"})
    assert "SSL connection (protocol: TLSv1." in r.stdout


def test_plain_client_leg_gets_scram_without_plus(tproxy):
    with tproxy.raw() as raw:
        raw.startup("scram_user")
        assert raw.sasl_mechanisms == ["SCRAM-SHA-256"]
        assert raw.query("SELECT current_user")[0] == [["scram_user"]]


@pytest.mark.parametrize("user", ["scram_user", "md5_user", "no_such_role"])
def test_wrong_password_and_unknown_role_get_the_same_28P01(tproxy, user):
    with tproxy.raw() as raw:
        with pytest.raises(harness.PgError) as e:
            raw.startup(user, password="not-the-password")
        assert e.value.sqlstate == "28P01"
        assert e.value.fields["S"] == "FATAL"
        assert e.value.fields["M"] == f'password authentication failed for user "{user}"'
        assert raw.read_until_closed() == []
    tproxy.assert_healthy()


def test_unknown_role_is_asked_for_scram_like_a_real_one(tproxy):
    """The first answer does not tell whether the role exists."""
    seen = {}
    for user in ("scram_user", "no_such_role"):
        with tproxy.raw() as raw:
            raw.send(raw.startup_packet(user, harness.DATABASE))
            typ, body = raw.read_msg()
            seen[user] = (typ, body[:4])
    assert seen["scram_user"] == seen["no_such_role"] == (b"R", (10).to_bytes(4, "big"))


def test_psycopg_wrong_password_over_tls(pg, tproxy):
    for user in ("scram_user", "nobody_here"):
        with pytest.raises(psycopg.OperationalError,
                           match=f'password authentication failed for user "{user}"'):
            psycopg.connect(tproxy.dsn(user=user, password="wrong", **tls_kw(pg)))


def test_md5_role_uses_md5_on_both_legs(tproxy):
    with tproxy.raw() as raw:
        raw.send(raw.startup_packet("md5_user", harness.DATABASE))
        typ, body = raw.read_msg()
        assert typ == b"R" and int.from_bytes(body[:4], "big") == 5
    with tproxy.raw() as raw:
        raw.startup("md5_user")
        assert raw.query("SELECT current_user")[0] == [["md5_user"]]


def test_cleartext_server_request_is_refused_clearly(tproxy):
    """pass_user's pg_hba method is "password": the server wants the password itself, which a
    terminating proxy does not have."""
    with tproxy.raw() as raw:
        with pytest.raises(harness.PgError) as e:
            raw.startup("pass_user")
        assert e.value.sqlstate == "28000"
        assert "cleartext password" in e.value.fields["M"]
    tproxy.assert_healthy()


def test_pgbench_select_only(pg, tproxy):
    env = dict(os.environ, PGPASSWORD=harness.PASSWORDS[harness.SUPERUSER])
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", harness.HOST, "-p", str(pg.port),
                    "-U", harness.SUPERUSER, harness.DATABASE], env=env, check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    r = subprocess.run(["pgbench", "-S", "-n", "-c", "4", "-t", "100"],
                       env=tproxy.env(PGSSLMODE="require"), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "number of transactions actually processed: 400/400" in r.stdout
    assert "number of failed transactions: 0" in r.stdout or "failed" not in r.stdout


def test_failed_logins_do_not_disturb_sessions(pg, tproxy, connect):
    conn = connect(tproxy, user="scram_user", autocommit=True, **tls_kw(pg))
    for i in range(10):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(tproxy.dsn(user="md5_user", password=f"wrong{i}", **tls_kw(pg)))
    with tproxy.raw() as raw:
        raw.startup("scram_user")
        raw.send_msg(b"p", b"\xff" * 100)  # after login: relayed, the server judges it
    with tproxy.raw() as raw:
        raw.send(raw.startup_packet("scram_user", harness.DATABASE))
        raw.read_msg()
        raw.send_msg(b"p", b"garbage without a mechanism")
        msgs = raw.read_until_closed()
        assert [m[0] for m in msgs] == [b"E"]
        assert harness.parse_error_fields(msgs[0][1])["C"] == "08P01"
    with tproxy.raw() as raw:
        raw.send(raw.startup_packet("scram_user", harness.DATABASE))
        raw.read_msg()
        raw.send(b"p" + (10 << 20).to_bytes(4, "big"))
        msgs = raw.read_until_closed()
        assert harness.parse_error_fields(msgs[0][1])["C"] == "08P01"
    assert conn.execute("SELECT 'fine'").fetchone() == ("fine",)
    tproxy.assert_healthy()


def test_stale_verifier_fails_login_without_leaking(pg, proxy_factory, tmp_path, connect):
    """A userlist whose verifier no longer matches the server's (the password was rotated):
    the client's proof checks against the file, the server leg notices the new salt and the
    client gets 28P01, nothing else."""
    path = write_userlist(pg, str(tmp_path / "old.txt"))
    pg.psql_admin("SET password_encryption = 'scram-sha-256'; "
                  "ALTER ROLE scram_user PASSWORD 'scram-secret'")
    proxy = proxy_factory(pg, terminate_overrides(pg, path))
    with proxy.raw() as raw:
        with pytest.raises(harness.PgError) as e:
            raw.startup("scram_user")
        assert e.value.sqlstate == "28P01"
    write_userlist(pg, path)
    proxy.signal(signal.SIGHUP)
    harness.wait_for(lambda: "configuration reloaded" in proxy.log_text(), timeout=30)
    conn = connect(proxy, user="scram_user", **tls_kw(pg))
    assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)


def test_plain_upstream_works_too(pg, proxy_factory, userlist, connect):
    proxy = proxy_factory(pg, terminate_overrides(pg, userlist, client_tls=False, upstream="disable"))
    conn = connect(proxy, user="scram_user")
    assert server_ssl(conn) is False
    assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)


# ---- the other drivers' SCRAM clients against the proxy's server end ----------------------
# drivers/ connect without TLS (their programs say sslmode=disable), so these check each
# driver's SCRAM-SHA-256 against the proxy and the proxy's login upstream over TLS, with the
# same checks as test_drivers.py.

@pytest.fixture
def dproxy(pg, proxy_factory, userlist):
    return proxy_factory(pg, terminate_overrides(pg, userlist, client_tls=False, upstream="require"))


def test_jdbc_through_terminate(dproxy, direct):
    import test_drivers as drv
    drv.check_result(drv.drive("jdbc", drv.jdbc_command(), dproxy, direct), "jdbc", dproxy, direct,
                     batch=True)


def test_node_pg_through_terminate(dproxy, direct):
    import test_drivers as drv
    cmd, extra = drv.node_command()
    drv.check_result(drv.drive("node", cmd, dproxy, direct, extra), "node", dproxy, direct,
                     batch=False)


def test_pgx_through_terminate(dproxy, direct):
    import test_drivers as drv
    drv.check_result(drv.drive("pgx", drv.pgx_command(), dproxy, direct), "pgx", dproxy, direct,
                     batch=True)


def test_auth_timeout_applies_to_the_client_leg(pg, proxy_factory, userlist):
    """A client that never answers AuthenticationSASL is closed by timeouts.auth_ms."""
    o = terminate_overrides(pg, userlist)
    o["timeouts"] = {"auth_ms": 300}
    proxy = proxy_factory(pg, o)
    with proxy.raw(timeout=30) as raw:
        raw.send(raw.startup_packet("scram_user", harness.DATABASE))
        typ, _ = raw.read_msg()
        assert typ == b"R"
        msgs = raw.read_until_closed(timeout=30)
        assert [m[0] for m in msgs] == [b"E"]
        fields = harness.parse_error_fields(msgs[0][1])
        assert fields["C"] == "08006" and "timeouts.auth_ms" in fields["M"], fields
    proxy.assert_healthy()


def scram_verifier(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return (f"SCRAM-SHA-256${iterations}:{b64(salt)}$"
            f"{b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}")


def test_server_rejection_is_relayed(pg, proxy_factory, tmp_path):
    """A userlist that disagrees with the server (same salt and iterations, another password;
    an md5 hash of another password): the client's proof checks at the proxy, the server
    refuses the login made from it, and the client gets the server's own FATAL 28P01."""
    rolpw = pg.psql_admin("SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_user'").strip()
    iterations, salt = rolpw.split("$")[1].split(":")
    fake = scram_verifier("another-password", base64.b64decode(salt), int(iterations))
    md5 = "md5" + hashlib.md5(b"another-password" + b"md5_user").hexdigest()
    path = tmp_path / "disagrees.txt"
    path.write_text(f'"scram_user" "{fake}"\n"md5_user" "{md5}"\n')
    proxy = proxy_factory(pg, terminate_overrides(pg, str(path)))
    for user in ("scram_user", "md5_user"):
        with proxy.raw() as raw:
            with pytest.raises(harness.PgError) as e:
                raw.startup(user, password="another-password")
            assert e.value.sqlstate == "28P01"
            assert e.value.fields["M"] == f'password authentication failed for user "{user}"'
            # PostgreSQL's own error carries its source location; the proxy's does not.
            assert "R" in e.value.fields, e.value.fields
    proxy.assert_healthy()


@pytest.mark.parametrize("channel_binding", ["prefer", "require"])
def test_psycopg2_through_tls_on_both_legs(pg, tproxy, connect, channel_binding):
    conn = connect(tproxy, user="scram_user", driver="psycopg2",
                   **tls_kw(pg, channel_binding=channel_binding))
    cur = conn.cursor()
    cur.execute("SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
    assert cur.fetchone() == ("scram_user", True)


@pytest.mark.parametrize("final", [
    "c=biws,r={nonce},p=not*base64",                      # proof is not base64
    "c=biws,r={nonce}XX,p=" + "A" * 43 + "=",             # a nonce that is not this exchange's
    "c=eSws,r={nonce},p=" + "A" * 43 + "=",               # says 'y' in the binding data
    "garbage",
])
def test_malformed_client_final_is_08P01_on_that_connection(tproxy, final):
    with tproxy.raw() as raw:
        raw.send(raw.startup_packet("scram_user", harness.DATABASE))
        assert raw.read_msg()[0] == b"R"
        first = "n,,n=,r=clientnonce123"
        raw.send_msg(b"p", b"SCRAM-SHA-256\0" + len(first).to_bytes(4, "big") + first.encode())
        typ, body = raw.read_msg()
        assert typ == b"R" and int.from_bytes(body[:4], "big") == 11
        nonce = dict(p.split("=", 1) for p in body[4:].decode().split(","))["r"]
        raw.send_msg(b"p", final.format(nonce=nonce).encode())
        msgs = raw.read_until_closed()
        assert [m[0] for m in msgs] == [b"E"]
        assert harness.parse_error_fields(msgs[0][1])["C"] == "08P01"
    tproxy.assert_healthy()


def test_wrong_proof_is_28P01(tproxy):
    with tproxy.raw() as raw:
        raw.send(raw.startup_packet("scram_user", harness.DATABASE))
        assert raw.read_msg()[0] == b"R"
        first = "n,,n=,r=clientnonce123"
        raw.send_msg(b"p", b"SCRAM-SHA-256\0" + len(first).to_bytes(4, "big") + first.encode())
        typ, body = raw.read_msg()
        nonce = dict(p.split("=", 1) for p in body[4:].decode().split(","))["r"]
        raw.send_msg(b"p", f"c=biws,r={nonce},p={base64.b64encode(bytes(32)).decode()}".encode())
        msgs = raw.read_until_closed()
        fields = harness.parse_error_fields(msgs[0][1])
        assert fields["C"] == "28P01"
        assert fields["M"] == 'password authentication failed for user "scram_user"'


# ---- a hostile server on the upstream leg ---------------------------------------------------

FAKE_SALT, FAKE_ITER, FAKE_PASSWORD = b"0123456789abcdef", 4096, "fake-secret"


class FakeServer:
    """Accepts the proxy's upstream connections and answers its login with 'script':
    a function (client_first_bare_nonce) -> list of (message type, body) to send after the
    client-first message; then it reads whatever comes and closes."""

    def __init__(self, script):
        self.script = script
        self.sock = socket.socket()
        self.sock.bind((harness.HOST, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(conn,), daemon=True).start()

    @staticmethod
    def read_msg(conn, typed=True):
        head = b""
        need = 5 if typed else 4
        while len(head) < need:
            chunk = conn.recv(need - len(head))
            if not chunk:
                raise EOFError
            head += chunk
        length = struct.unpack("!I", head[-4:])[0]
        body = b""
        while len(body) < length - 4:
            chunk = conn.recv(length - 4 - len(body))
            if not chunk:
                raise EOFError
            body += chunk
        return head[:1] if typed else None, body

    def one(self, conn):
        conn.settimeout(10)
        try:
            self.read_msg(conn, typed=False)  # StartupMessage
            mechs = b"SCRAM-SHA-256\0\0"
            conn.sendall(b"R" + struct.pack("!II", 8 + len(mechs), 10) + mechs)
            _, body = self.read_msg(conn)
            first = body[body.index(b"\0") + 5:].decode()
            nonce = dict(p.split("=", 1) for p in first.split(",")[2:])["r"]
            for typ, msg in self.script(nonce):
                conn.sendall(typ + struct.pack("!I", 4 + len(msg)) + msg)
                if typ == b"R" and msg[:4] == struct.pack("!I", 11):
                    self.read_msg(conn)  # the client-final
            while conn.recv(4096):
                pass
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def sasl_continue(text):
    return (b"R", struct.pack("!I", 11) + text.encode())


def sasl_final(text):
    return (b"R", struct.pack("!I", 12) + text.encode())


SALT64 = base64.b64encode(FAKE_SALT).decode()
HOSTILE_SCRIPTS = {
    "absurd iteration count": lambda n: [sasl_continue(f"r={n}srv,s={SALT64},i=2000000000")],
    "nonce not extending ours": lambda n: [sasl_continue(f"r=someoneelse,s={SALT64},i={FAKE_ITER}")],
    "salt not base64": lambda n: [sasl_continue(f"r={n}srv,s=***,i={FAKE_ITER}")],
    "truncated server-final": lambda n: [sasl_continue(f"r={n}srv,s={SALT64},i={FAKE_ITER}"),
                                         sasl_final("v=")],
    "wrong server signature": lambda n: [sasl_continue(f"r={n}srv,s={SALT64},i={FAKE_ITER}"),
                                         sasl_final("v=" + base64.b64encode(bytes(32)).decode())],
    "ok without a server-final": lambda n: [sasl_continue(f"r={n}srv,s={SALT64},i={FAKE_ITER}"),
                                            (b"R", struct.pack("!I", 0))],
    "cleartext request": lambda n: [(b"R", struct.pack("!I", 3))],
    "huge SASL message": lambda n: [sasl_continue("r=" + "x" * 100000)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SCRIPTS))
def test_hostile_server_gets_the_session_closed_alone(pg, proxy_factory, tmp_path, case):
    fake = FakeServer(HOSTILE_SCRIPTS[case])
    try:
        path = tmp_path / "fake.txt"
        path.write_text(f'"scram_user" "{scram_verifier(FAKE_PASSWORD, FAKE_SALT, FAKE_ITER)}"\n')
        o = terminate_overrides(pg, str(path), client_tls=False, upstream="disable")
        o["upstream"]["port"] = fake.port
        proxy = proxy_factory(pg, o)
        with proxy.raw() as raw:
            with pytest.raises(harness.PgError) as e:
                raw.startup("scram_user", password=FAKE_PASSWORD)
            assert e.value.sqlstate == ("28000" if case == "cleartext request" else "08006"), \
                e.value.fields
            assert "server" in e.value.fields["M"], e.value.fields
            assert e.value.fields["S"] == "FATAL"
        proxy.assert_healthy()
    finally:
        fake.close()


# ---- verifiers from auth.query (auth.user over libpq on each worker's loop) -----------------

LOOKUP_PASSWORD = "lookup-secret-0123456789"


def install_lookup(pg, dbname=harness.DATABASE):
    sql = subprocess.run([harness.proxy_binary(), "--print-auth-sql"], stdout=subprocess.PIPE,
                         check=True, text=True).stdout
    pg.psql_admin(sql, dbname=dbname)
    pg.psql_admin(f"ALTER ROLE pgvalve_auth PASSWORD '{LOOKUP_PASSWORD}'")


def lookup_overrides(pg, tmp_path, password=LOOKUP_PASSWORD, client_tls=True):
    pw = tmp_path / "lookup.pw"
    pw.write_text(password + "\n")
    o = terminate_overrides(pg, None, client_tls=client_tls)
    o["auth"] = {"mode": "terminate", "user": "pgvalve_auth", "password_file": str(pw)}
    return o


def restore_password(pg, user="scram_user"):
    pg.psql_admin("SET password_encryption = 'scram-sha-256'; "
                  f"ALTER ROLE {user} PASSWORD '{harness.PASSWORDS[user]}'")


def rotate_password(pg, password, user="scram_user"):
    pg.psql_admin(f"SET password_encryption = 'scram-sha-256'; ALTER ROLE {user} PASSWORD '{password}'")


def cache_counts(proxy):
    m = proxy.metrics()
    return m["pgvalve_auth_lookups_total"], m["pgvalve_auth_cache_hits_total"]


def cached_overrides(pg, tmp_path, ttl_ms=None):
    """One worker (each worker has its own cache), auth.cache_ttl_ms as given (None: default)."""
    o = lookup_overrides(pg, tmp_path)
    o["workers"] = 1
    if ttl_ms is not None:
        o["auth"]["cache_ttl_ms"] = ttl_ms
    return o


def lookup_backends(pg):
    return pg.psql_admin("SELECT pid FROM pg_stat_activity "
                         "WHERE application_name = 'pgvalve-proxy auth lookup'").split()


def test_lookup_query_logs_in_every_kind_of_role(pg, proxy_factory, tmp_path, connect):
    install_lookup(pg)
    proxy = proxy_factory(pg, lookup_overrides(pg, tmp_path))
    for user in ("scram_user", "md5_user"):
        conn = connect(proxy, user=user, **tls_kw(pg))
        assert conn.execute("SELECT current_user").fetchone() == (user,)
        assert server_ssl(conn) is True
    conn = connect(proxy, user="scram_user", **tls_kw(pg, channel_binding="require"))
    assert conn.execute("SELECT 1").fetchone() == (1,)
    for user in ("scram_user", "no_such_role"):
        with proxy.raw() as raw:
            with pytest.raises(harness.PgError) as e:
                raw.startup(user, password="wrong")
            assert e.value.sqlstate == "28P01"
            assert e.value.fields["M"] == f'password authentication failed for user "{user}"'
    # The lookup runs as its own role, over TLS like the sessions.
    assert pg.psql_admin("SELECT DISTINCT usename, ssl FROM pg_stat_activity JOIN pg_stat_ssl "
                         "USING (pid) WHERE application_name = 'pgvalve-proxy auth lookup'"
                         ).split() == ["pgvalve_auth|t"]
    proxy.assert_healthy()


def test_lookup_sees_a_rotated_password_at_once(pg, proxy_factory, tmp_path, connect):
    """With auth.cache_ttl_ms 0 every login asks the server: nothing is cached."""
    install_lookup(pg)
    o = lookup_overrides(pg, tmp_path)
    o["auth"]["cache_ttl_ms"] = 0
    o["workers"] = 1
    proxy = proxy_factory(pg, o)
    connect(proxy, user="scram_user", **tls_kw(pg))
    pg.psql_admin("SET password_encryption = 'scram-sha-256'; "
                  "ALTER ROLE scram_user PASSWORD 'rotated-secret'")
    try:
        conn = connect(proxy, user="scram_user", password="rotated-secret", **tls_kw(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(proxy.dsn(user="scram_user", **tls_kw(pg)))
    finally:
        restore_password(pg)
    m = proxy.metrics()
    assert m["pgvalve_auth_lookups_total"] == 3
    assert m["pgvalve_auth_cache_hits_total"] == 0


def test_lookup_connection_lost_and_recovered(pg, proxy_factory, tmp_path, connect):
    install_lookup(pg)
    o = lookup_overrides(pg, tmp_path)
    o["workers"] = 1
    o["auth"]["cache_ttl_ms"] = 0  # every login asks the server
    proxy = proxy_factory(pg, o)
    connect(proxy, user="scram_user", **tls_kw(pg))
    pids = lookup_backends(pg)
    assert len(pids) == 1
    pg.psql_admin(f"SELECT pg_terminate_backend({pids[0]})")
    harness.wait_for(lambda: "auth lookup in database" in proxy.log_text(), timeout=30,
                     what="the proxy noticing its lookup connection is gone")
    conn = connect(proxy, user="scram_user", **tls_kw(pg))
    assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
    assert lookup_backends(pg) not in ([], pids)
    proxy.assert_healthy()


def test_lookup_that_cannot_log_in_fails_the_login_alone(pg, proxy_factory, tmp_path, connect):
    install_lookup(pg)
    proxy = proxy_factory(pg, lookup_overrides(pg, tmp_path, password="not-the-lookup-password"))
    with proxy.raw() as raw:
        with pytest.raises(harness.PgError) as e:
            raw.startup("scram_user")
        assert e.value.sqlstate == "08006"
        assert "auth.query" in e.value.fields["M"]
    assert "auth lookup in database" in proxy.log_text()
    assert "not-the-lookup-password" not in proxy.log_text()
    proxy.assert_healthy()


# ---- the verifier cache (auth.cache_ttl_ms) ----------------------------------------------------

def test_cache_answers_repeated_logins(pg, proxy_factory, tmp_path, connect):
    """The default cache: the second login of a role is not looked up again; another role is."""
    install_lookup(pg)
    o = cached_overrides(pg, tmp_path)
    o["log"] = {"level": "debug"}
    proxy = proxy_factory(pg, o)
    assert cache_counts(proxy) == (0, 0)
    for _ in range(3):
        conn = connect(proxy, user="scram_user", **tls_kw(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
    assert cache_counts(proxy) == (1, 2)
    conn = connect(proxy, user="md5_user", **tls_kw(pg))
    assert conn.execute("SELECT current_user").fetchone() == ("md5_user",)
    connect(proxy, user="md5_user", **tls_kw(pg))
    assert cache_counts(proxy) == (2, 3)
    assert 'auth cache: verifier of role "scram_user" found' in proxy.log_text()
    # An unknown role's answer (none) is cached too, and still gets PostgreSQL's 28P01.
    for _ in range(2):
        with proxy.raw() as raw:
            with pytest.raises(harness.PgError) as e:
                raw.startup("no_such_role", password="x")
            assert e.value.sqlstate == "28P01"
    assert cache_counts(proxy) == (3, 4)
    proxy.assert_healthy()


def test_cache_and_password_rotation(pg, proxy_factory, tmp_path, connect):
    """A cached verifier outlived by ALTER ROLE ... PASSWORD (a long TTL, so expiry plays no part).
    The old password is refused (the server's new salt shows the cached verifier is stale, which
    drops it) and the new one works on the next login. A client that tries the new password first
    is checked against the stale verifier, whose salt it was given: refused once, as SCRAM
    cannot rerun the exchange with another salt; the verifier is dropped and its next login
    works."""
    install_lookup(pg)
    proxy = proxy_factory(pg, cached_overrides(pg, tmp_path, ttl_ms=3600000))
    try:
        connect(proxy, user="scram_user", **tls_kw(pg))
        connect(proxy, user="scram_user", **tls_kw(pg))
        assert cache_counts(proxy) == (1, 1)

        rotate_password(pg, "rotated-secret-1")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(proxy.dsn(user="scram_user", **tls_kw(pg)))
        conn = connect(proxy, user="scram_user", password="rotated-secret-1", **tls_kw(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
        assert cache_counts(proxy) == (2, 2)

        rotate_password(pg, "rotated-secret-2")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(proxy.dsn(user="scram_user", password="rotated-secret-2", **tls_kw(pg)))
        conn = connect(proxy, user="scram_user", password="rotated-secret-2", **tls_kw(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
        for old in ("rotated-secret-1", harness.PASSWORDS["scram_user"]):
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(proxy.dsn(user="scram_user", password=old, **tls_kw(pg)))
    finally:
        restore_password(pg)
    proxy.assert_healthy()


def test_cache_md5_rotation(pg, proxy_factory, tmp_path, connect):
    """md5 has no salt of the verifier's that the client sees, so a new password checked against
    a stale cached hash is checked once more against a refetched one, in the same login: it
    works at once. A login made with a stale hash whose old password still matched it is
    refused by the server (its own 28P01), which drops the hash too."""
    install_lookup(pg)
    o = cached_overrides(pg, tmp_path, ttl_ms=3600000)
    o["log"] = {"level": "debug"}
    proxy = proxy_factory(pg, o)

    def rotate(password):
        pg.psql_admin(f"SET password_encryption = 'md5'; ALTER ROLE md5_user PASSWORD '{password}'")

    try:
        connect(proxy, user="md5_user", **tls_kw(pg))
        rotate("md5-rotated-1")
        conn = connect(proxy, user="md5_user", password="md5-rotated-1", **tls_kw(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("md5_user",)
        assert "client authenticated with md5 (refetched verifier)" in proxy.log_text()
        assert cache_counts(proxy) == (2, 1)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(proxy.dsn(user="md5_user", **tls_kw(pg)))

        rotate("md5-rotated-2")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(proxy.dsn(user="md5_user", password="md5-rotated-1", **tls_kw(pg)))
        assert "the server refused the login made with it" in proxy.log_text()
        conn = connect(proxy, user="md5_user", password="md5-rotated-2", **tls_kw(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("md5_user",)
    finally:
        rotate(harness.PASSWORDS["md5_user"])
    proxy.assert_healthy()


def test_wrong_passwords_do_not_flood_the_lookup(pg, proxy_factory, tmp_path, connect):
    """A wrong password against a cached verifier may have it fetched again and the proof
    checked once more (the password might have changed), at most once a second per role: a
    burst of wrong passwords is answered from the cache, with at most one lookup for each
    second (begun) that the burst lasted, however slow the machine."""
    install_lookup(pg)
    proxy = proxy_factory(pg, cached_overrides(pg, tmp_path, ttl_ms=3600000))
    connect(proxy, user="scram_user", **tls_kw(pg))
    start = time.monotonic()
    for i in range(20):
        with proxy.raw() as raw:
            with pytest.raises(harness.PgError) as e:
                raw.startup("scram_user", password=f"wrong-{i}")
            assert e.value.sqlstate == "28P01"
    elapsed = time.monotonic() - start
    lookups, hits = cache_counts(proxy)
    assert hits == 20
    assert 1 <= lookups - 1 <= math.ceil(elapsed) + 1, (lookups, elapsed)
    conn = connect(proxy, user="scram_user", **tls_kw(pg))
    assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
    proxy.assert_healthy()


def test_sighup_clears_the_cache(pg, proxy_factory, tmp_path, connect):
    install_lookup(pg)
    proxy = proxy_factory(pg, cached_overrides(pg, tmp_path, ttl_ms=3600000))
    connect(proxy, user="scram_user", **tls_kw(pg))
    connect(proxy, user="scram_user", **tls_kw(pg))
    assert cache_counts(proxy) == (1, 1)
    proxy.signal(signal.SIGHUP)
    harness.wait_for(lambda: "configuration reloaded" in proxy.log_text(), timeout=30)
    conn = connect(proxy, user="scram_user", **tls_kw(pg))
    assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
    assert cache_counts(proxy) == (2, 1)
    connect(proxy, user="scram_user", **tls_kw(pg))
    assert cache_counts(proxy) == (2, 2)


def test_unknown_database_is_3D000(pg, proxy_factory, tmp_path):
    """auth.dbname unset: the lookup runs in the client's database; when that does not exist
    the client hears what PostgreSQL would say."""
    install_lookup(pg)
    proxy = proxy_factory(pg, cached_overrides(pg, tmp_path))
    for _ in range(2):
        with proxy.raw() as raw:
            with pytest.raises(harness.PgError) as e:
                raw.startup("scram_user", database="no_such_db")
            assert e.value.sqlstate == "3D000", e.value.fields
            assert e.value.fields["M"] == 'database "no_such_db" does not exist'
            assert e.value.fields["S"] == "FATAL"
    proxy.assert_healthy()
