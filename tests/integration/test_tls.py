"""TLS on each leg. Client→proxy: the proxy presents its certificate (tls config), clients can
verify it, plain clients still work, and without a tls config the proxy answers 'N'.
Proxy→server: sslmode require / verify-full (with sslrootcert) / prefer, checked on the server
in pg_stat_ssl; verify-full against the wrong CA refuses. With TLS on both legs every auth
method works (SCRAM with channel_binding=disable) and SCRAM-SHA-256-PLUS is not offered."""

import asyncio
import hashlib
import os
import struct

import psycopg
import pytest

import harness


def server_ssl(conn):
    """What the server says about the upstream leg of this session."""
    return conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]


def tls_overrides(pg, upstream="disable", client_tls=True, rootcert=None):
    o = {"upstream": {"sslmode": upstream}}
    if rootcert:
        o["upstream"]["sslrootcert"] = rootcert
    if client_tls:
        o["tls"] = {"cert_file": pg.server_crt, "key_file": pg.server_key}
    return o


def test_client_tls_verify_full(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, tls_overrides(pg))
    conn = connect(proxy, sslmode="verify-full", sslrootcert=pg.ca_crt)
    assert conn.pgconn.ssl_in_use
    assert server_ssl(conn) is False  # upstream leg is plain with sslmode=disable
    assert conn.execute("SELECT repeat('t', 100000)").fetchone()[0] == "t" * 100000


def test_client_verify_full_fails_against_other_ca(pg, proxy_factory):
    proxy = proxy_factory(pg, tls_overrides(pg))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(proxy.dsn(sslmode="verify-full", sslrootcert=pg.other_ca_crt))
    proxy.assert_healthy()


def test_plain_client_allowed_when_tls_configured(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, tls_overrides(pg))
    conn = connect(proxy, sslmode="disable")
    assert not conn.pgconn.ssl_in_use
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_without_tls_config_proxy_declines_ssl(proxy, connect):
    with harness.RawConn(harness.HOST, proxy.port) as raw:
        assert raw.starttls() == b"N"
        raw.startup("trust_user")  # the same connection goes on in plain text
        assert raw.query("SELECT 'plain'")[0] == [["plain"]]
    with pytest.raises(psycopg.OperationalError, match="(?i)ssl"):
        psycopg.connect(proxy.dsn(sslmode="require"))
    conn = connect(proxy, sslmode="prefer")
    assert not conn.pgconn.ssl_in_use


def test_gssenc_request_declined(proxy):
    with harness.RawConn(harness.HOST, proxy.port) as raw:
        raw.send(struct.pack("!II", 8, 80877104))
        assert raw.sock.recv(1) == b"N"
        raw.startup("trust_user")
        assert raw.query("SELECT 'after gss'")[0] == [["after gss"]]


@pytest.mark.parametrize("sslmode,rootcert", [("require", None), ("verify-full", "ca"), ("prefer", None)])
def test_upstream_tls(pg, proxy_factory, connect, sslmode, rootcert):
    proxy = proxy_factory(pg, tls_overrides(pg, upstream=sslmode, client_tls=False,
                                            rootcert=pg.ca_crt if rootcert else None))
    conn = connect(proxy)
    assert not conn.pgconn.ssl_in_use
    assert server_ssl(conn) is True
    version = conn.execute("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]
    assert version.startswith("TLSv1.")


def test_upstream_disable_is_plain(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, tls_overrides(pg, upstream="disable", client_tls=False))
    assert server_ssl(connect(proxy)) is False


def test_upstream_verify_full_wrong_ca_refuses(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, tls_overrides(pg, upstream="verify-full", client_tls=False,
                                            rootcert=pg.other_ca_crt))
    with harness.RawConn(harness.HOST, proxy.port) as raw:
        with pytest.raises(harness.PgError) as e:
            raw.startup(harness.SUPERUSER)
        assert e.value.sqlstate.startswith("08"), e.value.fields
        raw.read_until_closed()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proxy.dsn())
    proxy.assert_healthy()


BOTH_LEGS_USERS = ["scram_user", "md5_user", "pass_user", "trust_user", harness.SUPERUSER]


@pytest.mark.parametrize("user", BOTH_LEGS_USERS)
def test_both_legs_tls_auth_methods(pg, proxy_factory, connect, user):
    proxy = proxy_factory(pg, tls_overrides(pg, upstream="verify-full", rootcert=pg.ca_crt))
    conn = connect(proxy, user=user, sslmode="verify-full", sslrootcert=pg.ca_crt,
                   channel_binding="disable")
    assert conn.pgconn.ssl_in_use and server_ssl(conn) is True
    assert conn.execute("SELECT current_user").fetchone() == (user,)
    if user != "trust_user":
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(proxy.dsn(user=user, password="wrong", sslmode="verify-full",
                                      sslrootcert=pg.ca_crt, channel_binding="disable"))


def test_both_legs_tls_scram_plus_not_offered(pg, proxy_factory):
    proxy = proxy_factory(pg, tls_overrides(pg, upstream="require"))
    with harness.RawConn(harness.HOST, proxy.port) as raw:
        assert raw.starttls(cafile=pg.ca_crt) == b"S"
        assert raw.sock.version().startswith("TLSv1.")
        raw.startup("scram_user")
        assert raw.sasl_mechanisms == ["SCRAM-SHA-256"]
        assert raw.query("SELECT current_user")[0] == [["scram_user"]]


def test_psql_over_tls(pg, proxy_factory):
    proxy = proxy_factory(pg, tls_overrides(pg, upstream="require"))
    r = proxy.psql("-c", "\\conninfo", env={"PGSSLMODE": "verify-full", "PGSSLROOTCERT": pg.ca_crt,
                                            "PGCHANNELBINDING": "disable"})
    assert "SSL connection (protocol: TLSv1." in r.stdout


def test_bulk_transfer_over_tls_both_legs(pg, proxy_factory, connect):
    """Many TLS records each way: COPY of several MB in and out and a 30 MB value, checksummed."""
    proxy = proxy_factory(pg, tls_overrides(pg, upstream="verify-full", rootcert=pg.ca_crt))
    conn = connect(proxy, autocommit=True, sslmode="verify-full", sslrootcert=pg.ca_crt,
                   channel_binding="disable")
    conn.execute("DROP TABLE IF EXISTS tls_bulk")
    conn.execute("CREATE TABLE tls_bulk(id int, v text)")
    data = b"".join(b"%d\t%s\n" % (i, hashlib.sha1(b"%d" % i).hexdigest().encode() * 3)
                    for i in range(60000))
    with conn.cursor().copy("COPY tls_bulk FROM STDIN") as copy:
        for off in range(0, len(data), 100_000):
            copy.write(data[off:off + 100_000])
    out = bytearray()
    with conn.cursor().copy("COPY (SELECT * FROM tls_bulk ORDER BY id) TO STDOUT") as copy:
        for chunk in copy:
            out += chunk
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
    blob = os.urandom(30 * 1024 * 1024)
    back = conn.cursor(binary=True).execute("SELECT %b::bytea", (blob,)).fetchone()[0]
    assert hashlib.sha256(back).digest() == hashlib.sha256(blob).digest()


def test_many_concurrent_tls_sessions(pg, proxy_factory):
    proxy = proxy_factory(pg, tls_overrides(pg, upstream="require"))
    dsn = proxy.dsn(user="md5_user", sslmode="verify-full", sslrootcert=pg.ca_crt)

    async def one(i):
        async with await psycopg.AsyncConnection.connect(dsn) as c:
            cur = await c.execute("SELECT %s::int, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())", (i,))
            row = await cur.fetchone()
            return row, c.pgconn.ssl_in_use

    async def all_of_them():
        return await asyncio.gather(*(one(i) for i in range(150)))
    results = asyncio.run(all_of_them())
    assert [r[0] for r in results] == [(i, True) for i in range(150)]
    assert all(r[1] for r in results)
    proxy.assert_healthy()
