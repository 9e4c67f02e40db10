"""The authentication core that auth.mode "terminate" builds on, against real peers:
`pgvalve-proxy --print-auth-sql` installs a lookup that the lookup role can call (and nobody
else), which hands out login roles' verifiers and NULL for expired ones. The server end of
common/scram.c (scram_serve) authenticates libpq — SCRAM-SHA-256-PLUS bound to its certificate
with channel_binding require or prefer, SCRAM-SHA-256 without TLS, md5 — and recovers the
ClientKey; the client end (scram_login) logs in to PostgreSQL 15 with nothing but a verifier
fetched through the lookup and that ClientKey — SCRAM-SHA-256 over plain TCP, -PLUS bound to the
server's certificate over TLS, md5 from the stored hash alone. Chained, the two are terminate
mode's login without the proxy around it. A wrong password or key is refused, and a verifier
that went stale (password changed) is noticed before any proof is sent. ClientKeys are also
computed here with hashlib, independently of the C code."""

import base64
import hashlib
import hmac
import os
import subprocess

import psycopg
import pytest

import harness

LOOKUP_ROLE = "pgvalve_auth"


def program(name):
    path = os.path.join(os.path.dirname(harness.proxy_binary()), name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not built")
    return path


def run_login(pg, user, secret, client_key_hex, mode):
    r = subprocess.run([program("scram_login"), harness.HOST, str(pg.port), user, harness.DATABASE, secret,
                        client_key_hex, mode], capture_output=True, text=True, timeout=60,
                       env=harness.sanitizer_env())
    return r.returncode, r.stdout.strip()


def client_key(verifier, password):
    """The ClientKey for 'verifier' (what the proxy recovers from a client's proof)."""
    _, rest = verifier.split("$", 1)
    iter_salt, _ = rest.split("$", 1)
    iterations, salt = iter_salt.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(key).digest()
    assert base64.b64encode(stored).decode() in verifier  # the key really is this verifier's
    return key.hex()


def lookup(pg, role, as_role=LOOKUP_ROLE):
    """rolname|rolpassword from the lookup function, as 'as_role' over the Unix socket."""
    return subprocess.run(
        ["psql", "-X", "-At", "-h", pg.sockdir, "-p", str(pg.port), "-U", as_role, "-d", harness.DATABASE,
         "-c", f"SELECT rolname, rolpassword FROM pgvalve.auth_lookup('{role}')"],
        capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def lookup_pg(pg):
    sql = subprocess.run([harness.proxy_binary(), "--print-auth-sql"], capture_output=True, text=True,
                         check=True, env=harness.sanitizer_env()).stdout
    pg.psql_admin(sql)
    pg.psql_admin(sql)  # running it again is harmless
    return pg


def test_lookup_returns_verifiers(lookup_pg):
    r = lookup(lookup_pg, "scram_user")
    assert r.returncode == 0, r.stderr
    name, verifier = r.stdout.strip().split("|")
    assert name == "scram_user" and verifier.startswith("SCRAM-SHA-256$")
    name, hash_ = lookup(lookup_pg, "md5_user").stdout.strip().split("|")
    assert hash_.startswith("md5") and len(hash_) == 35
    assert lookup(lookup_pg, "no_such_role").stdout.strip() == ""


def test_lookup_hides_expired_and_nologin(lookup_pg):
    lookup_pg.psql_admin("DROP ROLE IF EXISTS expired_user; DROP ROLE IF EXISTS group_role;"
                         "CREATE ROLE expired_user LOGIN PASSWORD 'x' VALID UNTIL '2001-01-01';"
                         "CREATE ROLE group_role NOLOGIN PASSWORD 'y';")
    assert lookup(lookup_pg, "expired_user").stdout.strip() == "expired_user|"
    assert lookup(lookup_pg, "group_role").stdout.strip() == ""


def test_lookup_only_for_the_lookup_role(lookup_pg):
    r = lookup(lookup_pg, "scram_user", as_role="trust_user")
    assert r.returncode != 0 and "permission denied" in r.stderr
    r = subprocess.run(["psql", "-X", "-At", "-h", lookup_pg.sockdir, "-p", str(lookup_pg.port), "-U",
                        LOOKUP_ROLE, "-d", harness.DATABASE, "-c", "SELECT count(*) FROM pg_authid"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "permission denied" in r.stderr


def fetched_verifier(pg, role):
    return lookup(pg, role).stdout.strip().split("|")[1]


@pytest.mark.parametrize("mode,method", [("plain", "SCRAM-SHA-256"), ("tls", "SCRAM-SHA-256-PLUS")])
def test_scram_login_with_client_key_only(lookup_pg, mode, method):
    verifier = fetched_verifier(lookup_pg, "scram_user")
    key = client_key(verifier, harness.PASSWORDS["scram_user"])
    assert run_login(lookup_pg, "scram_user", verifier, key, mode) == (0, f"authenticated {method}")


@pytest.mark.parametrize("mode", ["plain", "tls"])
def test_wrong_client_key_refused_by_server(lookup_pg, mode):
    verifier = fetched_verifier(lookup_pg, "scram_user")
    key = bytearray(bytes.fromhex(client_key(verifier, harness.PASSWORDS["scram_user"])))
    key[0] ^= 1
    rc, out = run_login(lookup_pg, "scram_user", verifier, key.hex(), mode)
    assert rc == 1 and out.startswith("server error 28P01"), out


def test_md5_login_with_stored_hash_only(lookup_pg):
    hash_ = fetched_verifier(lookup_pg, "md5_user")
    assert run_login(lookup_pg, "md5_user", hash_, "-", "tls") == (0, "authenticated md5")
    wrong = "md5" + hashlib.md5(b"nopemd5_user").hexdigest()
    rc, out = run_login(lookup_pg, "md5_user", wrong, "-", "plain")
    assert rc == 1 and out.startswith("server error 28P01"), out


def test_stale_verifier_noticed_before_any_proof(lookup_pg):
    lookup_pg.psql_admin("DROP ROLE IF EXISTS rotating_user;"
                         "CREATE ROLE rotating_user LOGIN PASSWORD 'first-password';")
    old = fetched_verifier(lookup_pg, "rotating_user")
    old_key = client_key(old, "first-password")
    lookup_pg.psql_admin("ALTER ROLE rotating_user PASSWORD 'second-password';")
    assert run_login(lookup_pg, "rotating_user", old, old_key, "plain") == (3, "scram stale")
    new = fetched_verifier(lookup_pg, "rotating_user")
    assert run_login(lookup_pg, "rotating_user", new, client_key(new, "second-password"), "tls") == \
        (0, "authenticated SCRAM-SHA-256-PLUS")


class Serve:
    """scram_serve for one login: authenticates whoever connects against 'secret'."""

    def __init__(self, pg, secret):
        self.proc = subprocess.Popen([program("scram_serve"), secret, pg.server_crt, pg.server_key],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=harness.sanitizer_env())
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "port", self.proc.stderr.read()
        self.port = int(line[1])

    def connect(self, user, password, **kw):
        return psycopg.connect(host=harness.HOST, port=self.port, user=user, dbname=harness.DATABASE,
                               password=password, connect_timeout=10, **kw)

    def result(self):
        out, err = self.proc.communicate(timeout=60)
        assert not harness.sanitizer_report(err), err
        return self.proc.returncode, out.strip()


@pytest.mark.parametrize("sslmode,channel_binding,mechanism", [
    ("require", "require", "SCRAM-SHA-256-PLUS"),
    ("require", "prefer", "SCRAM-SHA-256-PLUS"),
    ("require", "disable", "SCRAM-SHA-256"),
    ("disable", "prefer", "SCRAM-SHA-256"),
])
def test_libpq_authenticated_by_server_end(lookup_pg, sslmode, channel_binding, mechanism):
    verifier = fetched_verifier(lookup_pg, "scram_user")
    password = harness.PASSWORDS["scram_user"]
    serve = Serve(lookup_pg, verifier)
    serve.connect("scram_user", password, sslmode=sslmode, channel_binding=channel_binding).close()
    assert serve.result() == (0, f"authenticated {mechanism} {client_key(verifier, password)}")


@pytest.mark.parametrize("sslmode", ["require", "disable"])
def test_libpq_wrong_password_refused_by_server_end(lookup_pg, sslmode):
    serve = Serve(lookup_pg, fetched_verifier(lookup_pg, "scram_user"))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        serve.connect("scram_user", "not-the-password", sslmode=sslmode)
    assert serve.result() == (1, "refused failed")


def test_libpq_md5_checked_against_stored_hash(lookup_pg):
    hash_ = fetched_verifier(lookup_pg, "md5_user")
    serve = Serve(lookup_pg, hash_)
    serve.connect("md5_user", harness.PASSWORDS["md5_user"], sslmode="require").close()
    assert serve.result() == (0, "authenticated md5 -")
    serve = Serve(lookup_pg, hash_)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        serve.connect("md5_user", "wrong", sslmode="disable")
    assert serve.result() == (1, "refused failed")


def test_client_key_from_libpq_logs_in_to_postgres(lookup_pg):
    """Terminate mode's login, end to end: libpq proves its password to the server end, which
    recovers the ClientKey; the client end logs in to PostgreSQL with that key alone, both legs
    on TLS with channel binding."""
    verifier = fetched_verifier(lookup_pg, "scram_user")
    serve = Serve(lookup_pg, verifier)
    serve.connect("scram_user", harness.PASSWORDS["scram_user"], sslmode="require",
                  channel_binding="require").close()
    rc, out = serve.result()
    assert rc == 0 and out.startswith("authenticated SCRAM-SHA-256-PLUS "), out
    recovered = out.split()[-1]
    assert run_login(lookup_pg, "scram_user", verifier, recovered, "tls") == \
        (0, "authenticated SCRAM-SHA-256-PLUS")
