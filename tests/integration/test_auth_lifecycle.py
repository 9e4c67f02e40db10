"""auth.mode "terminate" over time: a verifier replaced under the proxy's cache with the same
salt, SIGHUP changing the lookup's query, role, password and database, the lookup connection
lost (pg_terminate_backend, a server restart) and found again, and SIGHUP switching between
relay and terminate for new connections while existing sessions, and a login half done, carry
on as they began."""

import base64
import hashlib
import hmac
import select
import signal
import socket
import struct
import threading

import psycopg
import pytest

import harness
import test_auth_terminate as ta
from test_auth_terminate import userlist  # noqa: F401 (a fixture)


def reload(proxy):
    n = proxy.log_text().count("configuration reloaded")
    proxy.signal(signal.SIGHUP)
    harness.wait_for(lambda: proxy.log_text().count("configuration reloaded") > n, timeout=30,
                     what="the reload")


def set_auth(proxy, auth):
    """Replaces the config's whole auth section (relay mode refuses terminate's keys)."""
    config = dict(proxy.config)
    config["auth"] = auth
    proxy.write_config(config)


def lookup_sessions(pg):
    """(user, database, query) of every lookup connection the server has."""
    out = pg.psql_admin("SELECT usename, datname, query FROM pg_stat_activity "
                        "WHERE application_name = 'pgvalve-proxy auth lookup' ORDER BY 1, 2, 3")
    return [tuple(line.split("|", 2)) for line in out.splitlines() if line]


def tls(pg, **kw):
    return ta.tls_kw(pg, **kw)


# ---- a verifier replaced with the same salt ----------------------------------------------------

def test_same_salt_rotation_rechecks_the_proof_against_the_refetched_verifier(
        pg, proxy_factory, tmp_path, connect):
    """PostgreSQL gives every new password a new salt, but a verifier can be set as is (ALTER
    ROLE ... PASSWORD 'SCRAM-SHA-256$...'), e.g. copied from another cluster: same salt and
    iterations, other keys. A client with the new password was sent the cached verifier's salt,
    which is also the new one's, so its proof can be judged against the refetched verifier in
    the same login: it gets in at once. The old password is refused from then on."""
    ta.install_lookup(pg)
    o = ta.cached_overrides(pg, tmp_path, ttl_ms=3600000)
    o["log"] = {"level": "debug"}
    proxy = proxy_factory(pg, o)
    old = pg.psql_admin("SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_user'").strip()
    iterations, salt = old.split("$")[1].split(":")
    new = ta.scram_verifier("same-salt-secret", base64.b64decode(salt), int(iterations))
    try:
        connect(proxy, user="scram_user", **tls(pg))
        assert ta.cache_counts(proxy) == (1, 0)
        pg.psql_admin(f"ALTER ROLE scram_user PASSWORD '{new}'")
        conn = connect(proxy, user="scram_user", password="same-salt-secret", **tls(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
        assert ta.server_ssl(conn) is True
        assert "client authenticated with SCRAM-SHA-256-PLUS (refetched verifier)" in \
            proxy.log_text()
        assert ta.cache_counts(proxy) == (2, 1)
        # The refetched verifier is the cached one now: the next login is a cache hit...
        connect(proxy, user="scram_user", password="same-salt-secret", **tls(pg))
        assert ta.cache_counts(proxy) == (2, 2)
        # ...and the old password is refused (by the proxy: its proof fails the new verifier,
        # and the one refetch the rate limit may allow finds the same).
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(proxy.dsn(user="scram_user", **tls(pg)))
    finally:
        ta.restore_password(pg)
    proxy.assert_healthy()


def test_other_salt_rotation_is_refused_once_then_works(pg, proxy_factory, tmp_path, connect):
    """A password set the ordinary way (new salt): the client computed its proof from the
    cached verifier's salt, so the refetched verifier cannot judge it: 28P01, and the next login
    gets the new salt and works."""
    ta.install_lookup(pg)
    proxy = proxy_factory(pg, ta.cached_overrides(pg, tmp_path, ttl_ms=3600000))
    try:
        connect(proxy, user="scram_user", **tls(pg))
        ta.rotate_password(pg, "other-salt-secret")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(proxy.dsn(user="scram_user", password="other-salt-secret", **tls(pg)))
        conn = connect(proxy, user="scram_user", password="other-salt-secret", **tls(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
    finally:
        ta.restore_password(pg)


def test_wrong_password_while_the_lookup_is_down_is_still_28P01(pg, proxy_factory, tmp_path,
                                                                connect):
    """The lookup cannot connect (its role may not log in): a cached verifier still logs the
    right password in, and a wrong one, whose refetch fails, gets the usual 28P01 — not an
    error that tells the lookup apart from the password."""
    ta.install_lookup(pg)
    proxy = proxy_factory(pg, ta.cached_overrides(pg, tmp_path, ttl_ms=3600000))
    connect(proxy, user="scram_user", **tls(pg))
    try:
        pg.psql_admin("ALTER ROLE pgvalve_auth NOLOGIN")
        for pid in ta.lookup_backends(pg):
            pg.psql_admin(f"SELECT pg_terminate_backend({pid}, 10000)")
        with pytest.raises(psycopg.OperationalError,
                           match='password authentication failed for user "scram_user"'):
            psycopg.connect(proxy.dsn(user="scram_user", password="wrong", **tls(pg)))
        assert "auth lookup in database" in proxy.log_text()  # the refetch was tried, and failed
        conn = connect(proxy, user="scram_user", **tls(pg))  # the cached verifier: no lookup
        assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
    finally:
        pg.psql_admin("ALTER ROLE pgvalve_auth LOGIN")
    proxy.assert_healthy()


# ---- SIGHUP and the lookup connection --------------------------------------------------------

def make_second_lookup_role(pg, password, dbname):
    """pgvalve_auth2, allowed to run the lookup function in 'dbname'."""
    pg.psql_admin("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                  "'pgvalve_auth2') THEN CREATE ROLE pgvalve_auth2 LOGIN; END IF; END $$;"
                  f"ALTER ROLE pgvalve_auth2 PASSWORD '{password}';"
                  "GRANT USAGE ON SCHEMA pgvalve TO pgvalve_auth2;"
                  "GRANT EXECUTE ON FUNCTION pgvalve.auth_lookup(text) TO pgvalve_auth2;",
                  dbname=dbname)


def test_sighup_reopens_the_lookup_with_the_new_settings(pg, proxy_factory, tmp_path, connect):
    """auth.user, auth.password_file, auth.query and auth.dbname changed by SIGHUP: the old
    lookup connection goes, the next login's lookup runs on a new one with every new setting,
    and sessions logged in before are untouched."""
    ta.install_lookup(pg)
    ta.install_lookup(pg, dbname="postgres")
    make_second_lookup_role(pg, "second-lookup-secret", "postgres")
    o = ta.cached_overrides(pg, tmp_path)
    proxy = proxy_factory(pg, o)
    before = connect(proxy, user="scram_user", autocommit=True, **tls(pg))
    assert lookup_sessions(pg) == [("pgvalve_auth", harness.DATABASE,
                                    "SELECT rolname, rolpassword FROM pgvalve.auth_lookup($1)")]
    pw2 = tmp_path / "second.pw"
    pw2.write_text("second-lookup-secret\n")
    query2 = "SELECT rolname, rolpassword FROM pgvalve.auth_lookup($1) /* second */"
    proxy.update_config({"auth": {"user": "pgvalve_auth2", "password_file": str(pw2),
                                  "query": query2, "dbname": "postgres"}})
    reload(proxy)
    harness.wait_for(lambda: lookup_sessions(pg) == [], timeout=30,
                     what="the old lookup connection to close")
    conn = connect(proxy, user="md5_user", **tls(pg))
    assert conn.execute("SELECT current_user").fetchone() == ("md5_user",)
    assert lookup_sessions(pg) == [("pgvalve_auth2", "postgres", query2)]
    assert before.execute("SELECT current_user").fetchone() == ("scram_user",)
    # A password_file that no longer matches: the next lookup fails alone (08006), and the
    # sessions go on.
    pw2.write_text("not-it\n")
    reload(proxy)
    with proxy.raw() as raw:
        with pytest.raises(harness.PgError) as e:
            raw.startup("scram_user")
        assert e.value.sqlstate == "08006"
    assert conn.execute("SELECT 1").fetchone() == (1,)
    assert before.execute("SELECT 2").fetchone() == (2,)
    proxy.assert_healthy()


@pytest.mark.parametrize("wait", [True, False], ids=["noticed", "unnoticed"])
def test_lookup_connection_terminated(pg, proxy_factory, tmp_path, connect, wait):
    """pg_terminate_backend on the idle lookup connection. Noticed or not yet noticed by the
    proxy when the next login comes, that login succeeds: a lookup that finds its connection
    gone is moved once to a new one."""
    ta.install_lookup(pg)
    o = ta.cached_overrides(pg, tmp_path, ttl_ms=0)
    proxy = proxy_factory(pg, o)
    for round_ in range(3):
        connect(proxy, user="scram_user", **tls(pg))
        pids = ta.lookup_backends(pg)
        assert len(pids) == 1, pids
        mark = proxy.log_text().count("auth lookup in database")
        pg.psql_admin(f"SELECT pg_terminate_backend({pids[0]}, 10000)")
        if wait:
            harness.wait_for(lambda: proxy.log_text().count("auth lookup in database") > mark,
                             timeout=30, what="the proxy noticing its lookup connection is gone")
        conn = connect(proxy, user="scram_user", **tls(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("scram_user",), round_
        assert ta.lookup_backends(pg) not in ([], pids)
    proxy.assert_healthy()


class HalfDeadRelay:
    """A TCP relay in front of PostgreSQL whose connections can be made half dead: the server
    side closed, the proxy side left open and silent until the proxy sends something, then
    closed. The proxy then learns that its idle lookup connection is gone only when a lookup
    is sent on it (a server restart or a network cut the proxy did not hear about)."""

    def __init__(self, port):
        self.port_to = port
        self.sock = socket.socket()
        self.sock.bind((harness.HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []  # [client socket, server socket, dead flag (a list, shared)]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            srv = socket.create_connection((harness.HOST, self.port_to))
            pair = [c, srv, [False]]
            self.conns.append(pair)
            threading.Thread(target=self.pump, args=(pair,), daemon=True).start()

    @staticmethod
    def pump(pair):
        c, srv, dead = pair
        try:
            while True:
                if dead[0]:
                    srv.close()  # here, not from the test's thread: select() never sees it closed
                    select.select([c], [], [])
                    return  # the proxy sent something: only now does it learn of the close
                ready, _, _ = select.select([c, srv], [], [], 0.1)
                for r in ready:
                    data = r.recv(65536)
                    if not data:
                        return
                    (srv if r is c else c).sendall(data)
        except OSError:
            pass
        finally:
            c.close()
            srv.close()

    def kill_server_side(self, i):
        self.conns[i][2][0] = True

    def close(self):
        self.sock.close()


def test_lookup_on_a_connection_that_died_unheard_is_retried(pg, proxy_factory, tmp_path,
                                                            connect):
    """The lookup connection died without the proxy hearing of it: the lookup sent on it finds
    it gone, and is moved once to a new connection, so the login still succeeds."""
    ta.install_lookup(pg)
    relay = HalfDeadRelay(pg.port)
    try:
        o = ta.cached_overrides(pg, tmp_path, ttl_ms=0)
        o["upstream"]["port"] = relay.port
        proxy = proxy_factory(pg, o)
        connect(proxy, user="scram_user", **tls(pg))
        assert len(relay.conns) == 2  # the lookup connection first, then the session's
        pids = ta.lookup_backends(pg)
        relay.kill_server_side(0)
        harness.wait_for(lambda: ta.lookup_backends(pg) != pids, timeout=30,
                         what="the server to see the lookup connection gone")
        conn = connect(proxy, user="scram_user", **tls(pg))
        assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
        assert "retrying on a new connection" in proxy.log_text()
        assert len(ta.lookup_backends(pg)) == 1
        proxy.assert_healthy()
    finally:
        relay.close()


def test_lookup_connection_lost_to_a_server_restart(own_pg, proxy_factory, tmp_path):
    pg = own_pg
    ta.install_lookup(pg)
    proxy = proxy_factory(pg, ta.cached_overrides(pg, tmp_path, ttl_ms=0))
    with psycopg.connect(proxy.dsn(user="scram_user", **tls(pg))) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    port = pg.port
    pg.restart()
    assert pg.port == port, "the restarted server took another port"
    with psycopg.connect(proxy.dsn(user="scram_user", **tls(pg))) as c:
        assert c.execute("SELECT current_user").fetchone() == ("scram_user",)
        assert ta.server_ssl(c) is True
    assert len(ta.lookup_backends(pg)) == 1
    proxy.assert_healthy()


# ---- SIGHUP between relay and terminate ------------------------------------------------------

def logins(proxy):
    return sum(v for k, v in proxy.metrics().items()
               if isinstance(k, tuple) and k[0] == "pgvalve_auth_logins_total"
               and dict(k[1])["leg"] == "client")


def test_sighup_switches_relay_and_terminate_for_new_connections(pg, proxy_factory, userlist,
                                                                 connect):
    """relay -> terminate -> relay. Each session keeps the mode it logged in with (they go on
    working); only new connections take the new one. In relay mode libpq's default
    channel_binding=prefer cannot work with TLS on both legs (README), so relay logins say
    channel_binding=disable."""
    o = ta.terminate_overrides(pg, userlist)
    terminate = o.pop("auth")
    proxy = proxy_factory(pg, o)
    relay1 = connect(proxy, user="scram_user", autocommit=True,
                     **tls(pg, channel_binding="disable"))
    with pytest.raises(psycopg.OperationalError, match="channel binding"):
        psycopg.connect(proxy.dsn(user="scram_user", **tls(pg)))
    assert logins(proxy) == 0

    set_auth(proxy, terminate)
    reload(proxy)
    term = connect(proxy, user="scram_user", autocommit=True, **tls(pg))
    assert term.execute("SELECT current_user").fetchone() == ("scram_user",)
    assert logins(proxy) == 1
    assert relay1.execute("SELECT 'relay session still here'").fetchone() == \
        ("relay session still here",)

    set_auth(proxy, {"mode": "relay"})
    reload(proxy)
    relay2 = connect(proxy, user="scram_user", autocommit=True,
                     **tls(pg, channel_binding="disable"))
    assert relay2.execute("SELECT 1").fetchone() == (1,)
    assert logins(proxy) == 1
    for c in (relay1, term, relay2):
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                         ).fetchone() == (True,)
    proxy.assert_healthy()


@pytest.mark.parametrize("to_mode", ["relay", "terminate"])
def test_a_login_half_done_finishes_in_the_mode_it_began(pg, proxy_factory, userlist, to_mode):
    """A client that has its AuthenticationSASL when SIGHUP switches the mode finishes its
    SCRAM exchange with whoever began it (the proxy in terminate mode, the server in relay)."""
    from_mode = "relay" if to_mode == "terminate" else "terminate"
    o = ta.terminate_overrides(pg, userlist, client_tls=False, upstream="require")
    modes = {"terminate": o.pop("auth"), "relay": {"mode": "relay"}}
    o["auth"] = modes[from_mode]
    proxy = proxy_factory(pg, o)
    with proxy.raw() as raw:
        raw.send(raw.startup_packet("scram_user", harness.DATABASE))
        typ, body = raw.read_msg()
        assert typ == b"R" and struct.unpack("!I", body[:4])[0] == 10
        set_auth(proxy, modes[to_mode])
        reload(proxy)
        scram = harness._Scram(harness.PASSWORDS["scram_user"])
        first = scram.client_first().encode()
        raw.send_msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
        typ, body = raw.read_msg()
        assert typ == b"R" and struct.unpack("!I", body[:4])[0] == 11, (typ, body)
        raw.send_msg(b"p", scram.client_final(body[4:].decode()).encode())
        typ, body = raw.read_msg()
        assert typ == b"R" and struct.unpack("!I", body[:4])[0] == 12, (typ, body)
        scram.verify_server_final(body[4:].decode())
        while True:
            typ, body = raw.read_msg()
            assert typ != b"E", harness.parse_error_fields(body)
            if typ == b"Z":
                break
        assert raw.query("SELECT current_user")[0] == [["scram_user"]]
    assert logins(proxy) == (1 if from_mode == "terminate" else 0)
    proxy.assert_healthy()


# ---- channel binding across a certificate swap -------------------------------------------------

class ScramPlus(harness._Scram):
    """harness's SCRAM client, with SCRAM-SHA-256-PLUS bound to the certificate 'der' (signed
    with ECDSA-SHA256, so tls-server-end-point is its SHA-256)."""

    def __init__(self, password, der):
        super().__init__(password)
        self.gs2 = "p=tls-server-end-point,,"
        self.cbind = base64.b64encode(self.gs2.encode() + hashlib.sha256(der).digest()).decode()

    def client_first(self):
        self.first_bare = f"n=,r={self.nonce}"
        return self.gs2 + self.first_bare

    def client_final(self, server_first):
        final = super().client_final(server_first)
        # Recompute with our binding: AuthMessage covers c=.
        attrs = dict(p.split("=", 1) for p in server_first.split(","))
        salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iters)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        without_proof = f"c={self.cbind},r={attrs['r']}"
        self.auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        sig = hmac.new(hashlib.sha256(client_key).digest(), self.auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        assert final  # the plain one is discarded
        return f"{without_proof},p={base64.b64encode(proof).decode()}"


def test_channel_binding_to_the_certificate_the_client_saw(pg, proxy_factory, userlist):
    """SIGHUP swaps the proxy's certificate between a client's TLS handshake and its login: the
    client's SCRAM-SHA-256-PLUS binds to the certificate it was shown, and that is what the
    proxy checks it against (not the snapshot's new one)."""
    proxy = proxy_factory(pg, ta.terminate_overrides(pg, userlist))
    with proxy.raw() as raw:
        assert raw.starttls(cafile=pg.ca_crt) == b"S"
        der = raw.sock.getpeercert(binary_form=True)
        new_crt, new_key = pg.other_server_cert()
        proxy.update_config({"tls": {"cert_file": new_crt, "key_file": new_key}})
        reload(proxy)
        raw.send(raw.startup_packet("scram_user", harness.DATABASE))
        typ, body = raw.read_msg()
        assert typ == b"R" and b"SCRAM-SHA-256-PLUS" in body, (typ, body)
        scram = ScramPlus(harness.PASSWORDS["scram_user"], der)
        first = scram.client_first().encode()
        raw.send_msg(b"p", b"SCRAM-SHA-256-PLUS\0" + struct.pack("!I", len(first)) + first)
        typ, body = raw.read_msg()
        assert typ == b"R" and struct.unpack("!I", body[:4])[0] == 11, (typ, body)
        raw.send_msg(b"p", scram.client_final(body[4:].decode()).encode())
        typ, body = raw.read_msg()
        assert typ == b"R", harness.parse_error_fields(body) if typ == b"E" else (typ, body)
        scram.verify_server_final(body[4:].decode())
        while raw.read_msg()[0] != b"Z":
            pass
        assert raw.query("SELECT current_user")[0] == [["scram_user"]]
    # New handshakes get the new certificate, and bind to it.
    with proxy.raw() as raw:
        raw.starttls()
        assert raw.sock.getpeercert(binary_form=True) != der
    proxy.assert_healthy()
