"""The admin API's bearer token (docs/architecture.md: the admin API): with admin.token_file set, every mutating
call must carry "Authorization: Bearer <token>"; reads stay open; a reload picks up a new
token; a missing or too-short token file is a configuration error."""

import http.client
import signal
import subprocess

import harness

TOKEN = "s3cret-token-0123456789"


def request(proxy, method, path, token=None):
    c = http.client.HTTPConnection(harness.HOST, proxy.admin_port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c.request(method, path, body=b"{}", headers=headers)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def test_mutating_calls_need_the_token(pg, proxy_factory, tmp_path):
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    proxy = proxy_factory(pg, {"admin": {"token_file": str(token_file)}})

    assert request(proxy, "GET", "/status")[0] == 200          # reads are open
    assert request(proxy, "POST", "/status")[0] == 401          # no token
    assert request(proxy, "POST", "/status", "wrong-token-0123456789")[0] == 401
    assert request(proxy, "POST", "/status", TOKEN + "x")[0] == 401   # a longer guess
    assert request(proxy, "POST", "/status", TOKEN[:-1])[0] == 401    # a prefix
    # With the token the call gets past authentication (this endpoint is read-only: 405).
    assert request(proxy, "POST", "/status", TOKEN)[0] == 405

    # A reload reads the token file again.
    token_file.write_text("another-token-9876543210\n")
    proxy.signal(signal.SIGHUP)
    harness.wait_for(lambda: request(proxy, "POST", "/status", "another-token-9876543210")[0] == 405,
                     10, what="the new token to be accepted")
    assert request(proxy, "POST", "/status", TOKEN)[0] == 401


def test_without_a_token_file_mutating_calls_are_not_refused_for_auth(proxy):
    # Loopback admin and no token_file: nothing to check (404/405 come from routing).
    assert request(proxy, "POST", "/status")[0] == 405
    assert request(proxy, "DELETE", "/nowhere")[0] == 404


def test_unreadable_or_short_token_file_is_a_config_error(pg, tmp_path):
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    for path in (str(short), str(tmp_path / "missing.token")):
        cfg = tmp_path / "proxy.json"
        cfg.write_text('{"upstream": {"host": "127.0.0.1", "port": %d}, "admin": {"token_file": "%s"}}'
                       % (pg.port, path))
        r = subprocess.run([harness.proxy_binary(), "-c", str(cfg), "--check"],
                           capture_output=True, text=True, timeout=30, env=harness.sanitizer_env())
        assert harness.sanitizer_report(r.stderr) is None, r.stderr
        assert r.returncode == 2, r
        assert '"admin.token_file"' in r.stderr, r.stderr
