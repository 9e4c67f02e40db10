"""The driver matrix of auth.mode "terminate" with TLS on both legs: psql, psycopg 3, psycopg2,
pgjdbc, node-postgres and pgx log in through a terminating proxy with the TLS settings a user
with the CA file would write (sslmode=verify-full, or require) and otherwise their defaults,
run queries and prepared statements, and the test asserts

- which mechanism each leg of the login used, from the proxy's pgvalve_auth_logins_total
  (client leg: what the driver chose among what the proxy offered; server leg: always
  SCRAM-SHA-256-PLUS for a SCRAM role, since the upstream is TLS, md5 for an md5 role);
- that the server saw TLS on the session (pg_stat_ssl of the backend, as the driver reads it);
- that a wrong password and an unknown role get the same FATAL 28P01 and message, for every
  driver that reports the server's fields.

What each driver negotiates with its defaults (the versions Debian 12 and npm give us):
- libpq 15 (psql, psycopg 3, psycopg2): channel_binding=prefer takes SCRAM-SHA-256-PLUS when
  offered; require refuses anything else (an md5 role included, as against PostgreSQL itself).
- pgjdbc 42.5.5 (libpostgresql-jdbc-java): no channelBinding property (it came in a later
  version); its SCRAM client always says gs2 'n': SCRAM-SHA-256.
- node-postgres 8.23.1: SCRAM-SHA-256 by default; SCRAM-SHA-256-PLUS with
  enableChannelBinding: true (off by default).
- pgx v4.15 / pgconn 1.11 (golang-github-jackc-pgx-v4-dev): SCRAM-SHA-256 only, gs2 'n'.

The proxy has a certificate of its own (generated here, signed by the test CA), so a client's
channel binding is to the proxy's certificate, not the server's. Verifiers come from auth.query
run as pgvalve_auth, as in the README's worked setup.
"""

import json
import os
import subprocess

import psycopg
import psycopg2
import pytest

import harness
import test_auth_terminate as ta
import test_drivers as drv

MECHS = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "md5")
PLUS, SCRAM, MD5 = MECHS


@pytest.fixture
def proxy_cert(pg, tmp_path):
    d = tmp_path / "proxy-cert"
    d.mkdir()
    return harness.make_cert(str(d), "proxy", pg.ca_crt, pg.ca_key)


@pytest.fixture
def tproxy(pg, proxy_factory, tmp_path, proxy_cert):
    """Terminating, TLS on both legs (the upstream checked against the CA), auth.query."""
    ta.install_lookup(pg)
    o = ta.lookup_overrides(pg, tmp_path)
    o["tls"] = {"cert_file": proxy_cert[0], "key_file": proxy_cert[1]}
    o["upstream"] = {"sslmode": "verify-full", "sslrootcert": pg.ca_crt}
    return proxy_factory(pg, o)


def logins(proxy):
    """{(leg, mechanism): count} of pgvalve_auth_logins_total, zero counts left out."""
    out = {}
    for key, value in proxy.metrics().items():
        if isinstance(key, tuple) and key[0] == "pgvalve_auth_logins_total" and value:
            labels = dict(key[1])
            out[(labels["leg"], labels["mechanism"])] = int(value)
    return out


def expect_logins(proxy, client, server, n=1):
    assert logins(proxy) == {("client", client): n, ("server", server): n}, (
        f"expected {n} login(s), client leg {client}, server leg {server}\n--- proxy log:\n"
        + "\n".join(proxy.log_lines()[-20:]))


def libpq_tls(pg, channel_binding):
    return {"sslmode": "verify-full", "sslrootcert": pg.ca_crt, "channel_binding": channel_binding}


SAME_28P01 = [("scram_user", "wrong-password"), ("no_such_role", "whatever")]


def assert_same_28P01(answers):
    """answers: {user: (sqlstate, severity, message)}, one per SAME_28P01 row."""
    for user, (sqlstate, severity, message) in answers.items():
        assert (sqlstate, severity, message) == (
            "28P01", "FATAL", f'password authentication failed for user "{user}"'), answers


# ---- libpq: psql, psycopg 3, psycopg2 -----------------------------------------------------------

@pytest.mark.parametrize("channel_binding", ["prefer", "require"])
def test_psql(pg, tproxy, channel_binding):
    env = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": pg.ca_crt,
           "PGCHANNELBINDING": channel_binding}
    r = tproxy.psql("-At", "-c", "SELECT current_user, ssl FROM pg_stat_ssl "
                    "WHERE pid = pg_backend_pid()",
                    "-c", "PREPARE q(int) AS SELECT $1 * 2", "-c", "EXECUTE q(21)",
                    user="scram_user", env=env)
    assert r.stdout.split() == ["scram_user|t", "PREPARE", "42"], r.stdout
    expect_logins(tproxy, PLUS, PLUS)
    r = tproxy.psql("-At", "-c", "SELECT 1", user="scram_user", check=False,
                    env=dict(env, PGPASSWORD="wrong-password"))
    assert r.returncode != 0
    assert 'FATAL:  password authentication failed for user "scram_user"' in r.stderr, r.stderr


@pytest.mark.parametrize("channel_binding", ["prefer", "require"])
def test_psycopg3(pg, tproxy, connect, channel_binding):
    conn = connect(tproxy, user="scram_user", **libpq_tls(pg, channel_binding))
    assert conn.pgconn.ssl_in_use
    assert ta.server_ssl(conn) is True
    for i in range(3):  # prepared on the server: psycopg's prepare=True
        assert conn.execute("SELECT %s::int * 3", (i,), prepare=True).fetchone() == (i * 3,)
    assert conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql"
                        ).fetchone() == (1,)
    expect_logins(tproxy, PLUS, PLUS)
    answers = {}
    for user, password in SAME_28P01:
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(tproxy.dsn(user=user, password=password,
                                       **libpq_tls(pg, channel_binding)))
        msg = str(e.value)
        assert f'password authentication failed for user "{user}"' in msg, msg
        answers[user] = msg.replace(user, "USER")
    assert len(set(answers.values())) == 1, answers


@pytest.mark.parametrize("channel_binding", ["prefer", "require"])
def test_psycopg2(pg, tproxy, connect, channel_binding):
    conn = connect(tproxy, user="scram_user", driver="psycopg2",
                   **libpq_tls(pg, channel_binding))
    cur = conn.cursor()
    cur.execute("SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
    assert cur.fetchone() == ("scram_user", True)
    cur.execute("PREPARE q(int) AS SELECT $1 * 2")
    cur.execute("EXECUTE q(%s)", (21,))
    assert cur.fetchone() == (42,)
    expect_logins(tproxy, PLUS, PLUS)
    answers = {}
    for user, password in SAME_28P01:
        with pytest.raises(psycopg2.OperationalError) as e:
            psycopg2.connect(tproxy.dsn(user=user, password=password,
                                        **libpq_tls(pg, channel_binding)))
        assert f'password authentication failed for user "{user}"' in str(e.value), str(e.value)
        answers[user] = str(e.value).replace(user, "USER")
    assert len(set(answers.values())) == 1, answers


def test_libpq_md5_role(pg, tproxy, connect):
    """An md5 role gets md5 on both legs with channel_binding=prefer; with require libpq
    refuses it, exactly as it refuses PostgreSQL's own md5."""
    conn = connect(tproxy, user="md5_user", **libpq_tls(pg, "prefer"))
    assert conn.execute("SELECT current_user").fetchone() == ("md5_user",)
    assert ta.server_ssl(conn) is True
    expect_logins(tproxy, MD5, MD5)
    for port in (tproxy.port, pg.port):
        with pytest.raises(psycopg.OperationalError, match="channel binding required"):
            psycopg.connect(tproxy.dsn(user="md5_user", port=port, **libpq_tls(pg, "require")))


# ---- pgjdbc, node-postgres, pgx -----------------------------------------------------------------

def driver_env(pg, sslmode="verify-full", **extra):
    env = {"PGV_SSLMODE": sslmode, "PGV_SSLROOTCERT": pg.ca_crt}
    env.update(extra)
    return env


def login(cmd, proxy, env, user, password):
    """The driver's PGV_MODE=login: its JSON answer."""
    env = dict(env, PGV_MODE="login", PGV_USER=user, PGV_PASSWORD=password)
    rc, out, err = drv.run_driver(cmd, proxy.port, "drv_login", env, timeout=120)
    lines = [line for line in out.splitlines() if line.strip()]
    assert rc == 0 and lines, (f"login as {user} exited {rc}\n{out[-2000:]}\n{err[-3000:]}\n"
                               "--- proxy log:\n" + "\n".join(proxy.log_lines()[-20:]))
    return json.loads(lines[-1])


def check_driver(name, cmd, proxy, direct, pg, env, client_mech, batch, md5=True):
    """The scenario of test_drivers.py over TLS, then the login matrix."""
    res = drv.drive(name, cmd, proxy, direct, env)
    drv.check_result(res, name, proxy, direct, batch=batch)
    assert res["tls"]["server_ssl"] is True, res["tls"]
    if "client_tls" in res["tls"]:
        assert res["tls"]["client_tls"] is True, res["tls"]
    expect_logins(proxy, client_mech, PLUS)
    if md5:  # sslmode=require (TLS, certificate not checked): the other setting users write
        got = login(cmd, proxy, dict(env, PGV_SSLMODE="require"), "md5_user",
                    harness.PASSWORDS["md5_user"])
        assert got["connected"] is True and got["current_user"] == "md5_user", got
        assert got["tls"]["server_ssl"] is True, got
        assert logins(proxy) == {("client", client_mech): 1, ("server", PLUS): 1,
                                 ("client", MD5): 1, ("server", MD5): 1}, logins(proxy)
    answers = {}
    for user, password in SAME_28P01:
        got = login(cmd, proxy, env, user, password)
        assert got["connected"] is False, got
        answers[user] = (got["sqlstate"], got["severity"], got["message"])
    assert_same_28P01(answers)
    proxy.assert_healthy()
    return res


def test_jdbc(pg, tproxy, direct):
    """pgjdbc with sslmode=verify-full and the CA file. Debian 12's 42.5.5 has no channelBinding
    property: SCRAM-SHA-256 on the client leg whatever PGV_CHANNEL_BINDING says."""
    res = check_driver("jdbc", drv.jdbc_command(), tproxy, direct, pg,
                       driver_env(pg, PGV_CHANNEL_BINDING="require"), SCRAM, batch=True)
    assert res["driver_version"].startswith("42.5."), res["driver_version"]
    assert res["channel_binding_property"] is False, res


def test_node_pg_defaults(pg, tproxy, direct):
    cmd, extra = drv.node_command()
    res = check_driver("node", cmd, tproxy, direct, pg, dict(extra, **driver_env(pg)), SCRAM,
                       batch=False)
    assert res["client_errors"] == [], res["client_errors"]


def test_node_pg_channel_binding(pg, tproxy, direct):
    """enableChannelBinding: SCRAM-SHA-256-PLUS bound to the proxy's certificate."""
    cmd, extra = drv.node_command()
    res = check_driver("node", cmd, tproxy, direct, pg,
                       dict(extra, **driver_env(pg, PGV_CHANNEL_BINDING="enable")), PLUS,
                       batch=False, md5=False)
    assert res["client_errors"] == [], res["client_errors"]


def test_pgx(pg, tproxy, direct):
    """pgx v4 with sslmode=verify-full and sslrootcert: SCRAM-SHA-256 (no -PLUS in pgconn 1.11)."""
    check_driver("pgx", drv.pgx_command(), tproxy, direct, pg, driver_env(pg), SCRAM, batch=True)


def test_pgx_verify_ca(pg, tproxy, direct):
    """verify-ca, the other mode a user with only a CA file picks."""
    got = login(drv.pgx_command(), tproxy, driver_env(pg, "verify-ca"), "scram_user",
                harness.PASSWORDS["scram_user"])
    assert got["connected"] is True and got["tls"] == {"client_tls": True, "server_ssl": True}, got
    expect_logins(tproxy, SCRAM, PLUS)
