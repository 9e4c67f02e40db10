"""TLS 1.3 after the handshake (proxy/tls_record.c, docs/architecture.md §3.10): the proxy keeps
only the traffic keys and protects records itself. A client that asks for KeyUpdates keeps
working and gets the proxy's own KeyUpdate when it asks for one, and no session tickets; a
TLS 1.2-only client, or server, keeps OpenSSL's path; the status still says TLS on both legs and the server
still sees TLS; a forged record closes that connection only, with a log line."""

import os
import ssl
import struct
import subprocess
import time

import pytest

import harness


def tls_both(pg):
    return {"upstream": {"sslmode": "verify-full", "sslrootcert": pg.ca_crt},
            "tls": {"cert_file": pg.server_crt, "key_file": pg.server_key}}


def program(name):
    path = os.path.join(os.path.dirname(harness.proxy_binary()), name)
    assert os.path.exists(path), f"{path} not built"
    return path


def key_update_client(proxy, pg, modes):
    r = subprocess.run([program("tls_key_update"), harness.HOST, str(proxy.port), "trust_user",
                        harness.DATABASE, pg.ca_crt, modes],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr + "\n" + "\n".join(proxy.log_lines()[-20:])
    fields = dict(kv.split("=") for kv in r.stdout.split()[1:])
    return {k: int(v) for k, v in fields.items()}


def test_key_updates_from_the_client(pg, proxy_factory):
    proxy = proxy_factory(pg, tls_both(pg))
    got = key_update_client(proxy, pg, "K-kKKk-K")
    assert got["rounds"] == 8
    # One KeyUpdate back for each one that asked for it, none for the others.
    assert got["key_updates_received"] == 4
    assert got["tickets"] == 0


def test_tls12_client_keeps_working(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, tls_both(pg))
    old = connect(proxy, user="trust_user", sslmode="verify-full", sslrootcert=pg.ca_crt,
                  ssl_max_protocol_version="TLSv1.2")
    new = connect(proxy, user="trust_user", sslmode="verify-full", sslrootcert=pg.ca_crt)
    assert old.pgconn.ssl_in_use and new.pgconn.ssl_in_use
    for conn in (old, new):
        assert conn.execute("SELECT repeat('v', 300000)").fetchone()[0] == "v" * 300000
        # The upstream leg is TLS 1.3 and handed off too; the server still sees TLS.
        row = conn.execute(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True, "TLSv1.3")
    sessions = proxy.status()["sessions"]
    assert len(sessions) == 2
    assert all(s["tls"] and s["upstream_tls"] for s in sessions)

    # The same at the wire level, with the version checked: a client that stops at TLS 1.2.
    raw = harness.RawConn(harness.HOST, proxy.port)
    raw.send(struct.pack("!II", 8, 80877103))
    assert raw.sock.recv(1) == b"S"
    ctx = ssl.create_default_context(cafile=pg.ca_crt)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    raw.sock = ctx.wrap_socket(raw.sock, server_hostname=harness.HOST)
    assert raw.sock.version() == "TLSv1.2"
    raw.startup("trust_user")
    for _ in range(3):
        assert raw.query("SELECT repeat('w', 100000)") == ([["w" * 100000]], [])
    raw.close()


def test_forged_record_closes_that_connection_only(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, tls_both(pg))
    bystander = connect(proxy, user="trust_user", sslmode="verify-full", sslrootcert=pg.ca_crt)
    raw = harness.RawConn(harness.HOST, proxy.port)
    assert raw.starttls(cafile=pg.ca_crt) == b"S"
    assert raw.sock.version() == "TLSv1.3"
    raw.startup("trust_user")
    # A record under no key this connection has: application_data, 32 bytes of body.
    os.write(raw.sock.fileno(), b"\x17\x03\x03\x00\x20" + b"\xaa" * 32)
    with pytest.raises((ssl.SSLError, OSError, EOFError, ConnectionError)):
        while True:
            if not raw.sock.recv(4096):
                raise EOFError
    deadline = time.monotonic() + 30
    while not any("bad record MAC" in line for line in proxy.log_lines()):
        assert time.monotonic() < deadline, "\n".join(proxy.log_lines()[-20:])
        time.sleep(0.1)
    raw.close()
    assert bystander.execute("SELECT 42").fetchone()[0] == 42


def test_tls12_server_keeps_working(pg, proxy_factory, connect, direct):
    """A server that stops at TLS 1.2: the upstream leg stays on OpenSSL; big values and COPY
    go through, the client leg (TLS 1.3) on the proxy's own records."""
    direct.execute("ALTER SYSTEM SET ssl_max_protocol_version = 'TLSv1.2'")
    direct.execute("SELECT pg_reload_conf()")
    try:
        proxy = proxy_factory(pg, tls_both(pg))
        deadline = time.monotonic() + 30
        while True:  # the postmaster applies the reload on its own time
            conn = connect(proxy, user="trust_user", sslmode="verify-full", sslrootcert=pg.ca_crt)
            row = conn.execute(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
            if row[1] == "TLSv1.2" or time.monotonic() > deadline:
                break
            conn.close()
            time.sleep(0.1)
        assert row == (True, "TLSv1.2")
        assert conn.execute("SELECT repeat('s', 300000)").fetchone()[0] == "s" * 300000
        with conn.cursor().copy("COPY (SELECT g, repeat('c', 500) FROM generate_series(1, 2000) g) "
                                "TO STDOUT") as copy:
            assert sum(1 for _ in copy.rows()) == 2000
        assert all(s["upstream_tls"] for s in proxy.status()["sessions"])
    finally:
        direct.execute("ALTER SYSTEM RESET ssl_max_protocol_version")
        direct.execute("SELECT pg_reload_conf()")
