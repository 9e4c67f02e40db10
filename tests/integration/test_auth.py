"""Authentication relayed through the proxy, one role per pg_hba method: trust, password
(cleartext), md5, scram-sha-256. The right password logs in; a wrong one gets the server's
FATAL 28P01 relayed as is; the proxy itself never needs a password."""

import subprocess

import psycopg
import pytest

import harness

PASSWORD_USERS = ["pass_user", "md5_user", "scram_user", harness.SUPERUSER]


@pytest.mark.parametrize("user", PASSWORD_USERS + ["trust_user"])
def test_right_password_logs_in(proxy, connect, user):
    conn = connect(proxy, user=user)
    assert conn.execute("SELECT current_user, session_user").fetchone() == (user, user)
    with harness.RawConn(harness.HOST, proxy.port) as raw:
        raw.startup(user)
        assert raw.query("SELECT current_user")[0] == [[user]]
        assert raw.params.get("server_version", "").startswith("15")
        assert raw.backend_pid == int(raw.query("SELECT pg_backend_pid()")[0][0][0])


@pytest.mark.parametrize("user", PASSWORD_USERS)
def test_wrong_password_is_refused_with_28P01(proxy, user):
    with harness.RawConn(harness.HOST, proxy.port) as raw:
        with pytest.raises(harness.PgError) as e:
            raw.startup(user, password="not-the-password")
        assert e.value.sqlstate == "28P01"
        assert e.value.fields["S"] == "FATAL"
        assert f'password authentication failed for user "{user}"' in e.value.fields["M"]
        assert raw.read_until_closed() == []
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(proxy.dsn(user=user, password="still-wrong"))
    proxy.assert_healthy()


def test_trust_ignores_password(proxy, connect):
    conn = connect(proxy, user="trust_user", password="anything at all")
    assert conn.execute("SELECT current_user").fetchone() == ("trust_user",)


def test_md5_user_really_uses_md5(proxy):
    """The server asks md5_user for an MD5 hash, pass_user for cleartext, scram_user for SASL:
    the proxy relays each request type unchanged."""
    seen = {}
    for user in ("md5_user", "pass_user", "scram_user", "trust_user"):
        with harness.RawConn(harness.HOST, proxy.port) as raw:
            raw.send(raw.startup_packet(user, harness.DATABASE))
            typ, body = raw.read_msg()
            assert typ == b"R"
            seen[user] = int.from_bytes(body[:4], "big")
    assert seen == {"md5_user": 5, "pass_user": 3, "scram_user": 10, "trust_user": 0}


def test_unknown_database_error_relayed(proxy):
    with harness.RawConn(harness.HOST, proxy.port) as raw:
        with pytest.raises(harness.PgError) as e:
            raw.startup("trust_user", database="no_such_db")
        assert e.value.sqlstate == "3D000"


def test_psql_wrong_password(proxy):
    r = subprocess.run(["psql", "-X", "-w", "-c", "SELECT 1"], env=proxy.env(user="scram_user", password="nope"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 2
    assert 'password authentication failed for user "scram_user"' in r.stderr


def test_failed_logins_do_not_disturb_sessions(proxy, connect):
    conn = connect(proxy, user="scram_user", autocommit=True)
    for i in range(20):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(proxy.dsn(user="md5_user", password=f"wrong{i}"))
    assert conn.execute("SELECT 'fine'").fetchone() == ("fine",)
    proxy.assert_healthy()


def test_startup_parameters_are_forwarded(proxy, connect, direct):
    conn = connect(proxy, user="scram_user", application_name="my app 42",
                   options="-c statement_timeout=4321 -c search_path=pg_catalog")
    assert conn.execute("SHOW statement_timeout").fetchone() == ("4321ms",)
    assert conn.execute("SHOW search_path").fetchone() == ("pg_catalog",)
    pid = conn.info.backend_pid
    assert direct.execute("SELECT application_name, usename, datname FROM pg_stat_activity WHERE pid = %s",
                          (pid,)).fetchone() == ("my app 42", "scram_user", harness.DATABASE)


def test_unusual_role_and_database_names(proxy, direct):
    role, db = "Ünïcode User ✓", "Data Base-ß"
    direct.execute(f'DROP DATABASE IF EXISTS "{db}"')
    direct.execute(f'DROP ROLE IF EXISTS "{role}"')
    direct.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw with spaces & ünï'")
    direct.execute(f'CREATE DATABASE "{db}" OWNER "{role}"')
    try:
        with psycopg.connect(proxy.dsn(user=role, dbname=db, password="pw with spaces & ünï")) as c:
            assert c.execute("SELECT current_user, current_database()").fetchone() == (role, db)
        with harness.RawConn(harness.HOST, proxy.port) as raw:
            raw.startup(role, database=db, password="pw with spaces & ünï")
            assert raw.query("SELECT current_user")[0] == [[role]]
    finally:
        direct.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        direct.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_server_refusal_after_auth_is_relayed(proxy, connect, direct):
    direct.execute("DROP ROLE IF EXISTS limited_user")
    direct.execute("CREATE ROLE limited_user LOGIN PASSWORD 'limited' CONNECTION LIMIT 1")
    try:
        first = connect(proxy, user="limited_user", password="limited")
        with harness.RawConn(harness.HOST, proxy.port) as raw:
            with pytest.raises(harness.PgError) as e:
                raw.startup("limited_user", password="limited")
            assert e.value.sqlstate == "53300"
            assert "too many connections for role" in e.value.fields["M"]
        assert first.execute("SELECT 1").fetchone() == (1,)
        first.close()
    finally:
        direct.execute("DROP ROLE IF EXISTS limited_user")
