"""The config file and command line as an operator meets them: --check accepts a good file
(comments allowed) with exit 0, and refuses a bad one with exit 2 and a message naming the key
and what was expected; the proxy will not start on a bad file; flags override the file."""

import json
import subprocess

import psycopg
import pytest

import harness


def run_proxy(*args, timeout=30):
    r = subprocess.run([harness.proxy_binary()] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout, env=harness.sanitizer_env())
    assert harness.sanitizer_report(r.stderr) is None, f"sanitizer report from {args!r}:\n{r.stderr}"
    assert r.returncode != harness.SANITIZER_EXIT, f"sanitizer exit status from {args!r}:\n{r.stderr}"
    return r


def write(tmp_path, text, name="cfg.json"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = {
    "listen": {"host": "127.0.0.1", "port": 6432},
    "upstream": {"host": "127.0.0.1", "port": 5432, "sslmode": "disable"},
    "admin": {"host": "127.0.0.1", "port": 6480},
    "workers": 2,
    "limits": {"max_clients": 100, "max_message_bytes": 1048576, "parse_max_bytes": 65536},
    "timeouts": {"connect_ms": 1000, "auth_ms": 1000, "client_idle_ms": 0, "shutdown_timeout_ms": 1000},
    "log": {"level": "debug", "format": "json"},
}


def with_change(path, value):
    """GOOD with the key at dotted 'path' set to value (or removed when value is ...)."""
    cfg = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node.setdefault(p, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return json.dumps(cfg)


def test_check_accepts_good_config(tmp_path):
    r = run_proxy("-c", write(tmp_path, json.dumps(GOOD)), "--check")
    assert r.returncode == 0, r.stderr


def test_check_accepts_comments_and_minimal_config(tmp_path):
    text = """// only the upstream is required
{
  // where PostgreSQL listens
  "upstream": {"host": "127.0.0.1", "port": 5432}  // trailing comment
}
"""
    r = run_proxy("-c", write(tmp_path, text), "--check")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("key,value", [
    ("limits.max_message_bytes", "lots"),
    ("limits.max_message_bytes", -1),
    ("limits.max_clients", 1.5),
    ("listen.port", 70000),
    ("listen.port", "6432"),
    ("upstream.port", 0),
    ("upstream.sslmode", "sometimes"),
    ("upstream.host", 5),
    ("timeouts.connect_ms", -10),
    ("timeouts.shutdown_timeout_ms", "soon"),
    ("log.level", "loud"),
    ("log.format", "xml"),
    ("workers", "many"),
    ("tls", "on"),
])
def test_check_names_bad_key(tmp_path, key, value):
    r = run_proxy("-c", write(tmp_path, with_change(key, value)), "--check")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert key in r.stderr, r.stderr


@pytest.mark.parametrize("key", ["listne", "limits.max_mesage_bytes", "upstream.sslmod", "log.colour"])
def test_check_names_unknown_key(tmp_path, key):
    r = run_proxy("-c", write(tmp_path, with_change(key, 1)), "--check")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert key.split(".")[-1] in r.stderr, r.stderr


def test_check_missing_upstream(tmp_path):
    r = run_proxy("-c", write(tmp_path, with_change("upstream", ...)), "--check")
    assert r.returncode == 2
    assert "upstream" in r.stderr


def test_check_invalid_json(tmp_path):
    r = run_proxy("-c", write(tmp_path, '{"upstream": {"host": "127.0.0.1", "port": 5432},'), "--check")
    assert r.returncode == 2 and r.stderr.strip()


def test_check_missing_file(tmp_path):
    r = run_proxy("-c", str(tmp_path / "nope.json"), "--check")
    assert r.returncode == 2
    assert "nope.json" in r.stderr


def test_check_tls_needs_both_files(tmp_path, pg):
    cfg = with_change("tls", {"cert_file": pg.server_crt})
    r = run_proxy("-c", write(tmp_path, cfg), "--check")
    assert r.returncode == 2 and "tls" in r.stderr


def test_auth_terminate_check_accepts_a_valid_config(tmp_path):
    """auth.mode "terminate" with a userlist file passes --check; the file is read then (a
    broken one is refused with its line); so does one with the lookup role (auth.user) instead."""
    userlist = tmp_path / "userlist.txt"
    userlist.write_text('"alice" "md5' + "0" * 32 + '"\n')
    r = run_proxy("-c", write(tmp_path, with_change("auth", {"mode": "terminate",
                                                             "userlist_file": str(userlist)})),
                  "--check")
    assert r.returncode == 0, r
    assert "configuration ok" in r.stdout
    userlist.write_text('"alice" "md5' + "0" * 32 + '"\nbob\n')
    r = run_proxy("-c", write(tmp_path, with_change("auth", {"mode": "terminate",
                                                             "userlist_file": str(userlist)})),
                  "--check")
    assert r.returncode == 2 and '"auth.userlist_file"' in r.stderr and "line 2" in r.stderr, r.stderr
    r = run_proxy("-c", write(tmp_path, with_change("auth", {"mode": "terminate", "user": "lookup"})),
                  "--check")
    assert r.returncode == 0, r


def test_check_non_loopback_admin_needs_token(tmp_path):
    r = run_proxy("-c", write(tmp_path, with_change("admin.host", "0.0.0.0")), "--check")
    assert r.returncode == 2 and "admin" in r.stderr


def test_bad_flag_value(tmp_path):
    r = run_proxy("-c", write(tmp_path, json.dumps(GOOD)), "--log-level", "shouty", "--check")
    assert r.returncode == 2 and "log" in r.stderr.lower()


def test_start_refuses_bad_config(tmp_path):
    port = harness.free_port()
    cfg = with_change("limits.max_message_bytes", "lots")
    r = run_proxy("-c", write(tmp_path, cfg), "--listen", f"127.0.0.1:{port}")
    assert r.returncode == 2 and "limits.max_message_bytes" in r.stderr


def test_flags_override_file(pg, tmp_path):
    listen, admin = harness.free_port(), harness.free_port()
    cfg = with_change("upstream.port", 1)  # the file points nowhere; the flag fixes it
    proc = subprocess.Popen([harness.proxy_binary(), "-c", write(tmp_path, cfg),
                             "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}",
                             "--upstream", f"127.0.0.1:{pg.port}", "--workers", "1", "--log-level", "warn"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=harness.sanitizer_env())
    try:
        harness.wait_for(lambda: proc.poll() is not None or _healthy(admin), 20, what="proxy up")
        assert proc.poll() is None, proc.communicate()
        dsn = harness.conninfo({"host": harness.HOST, "port": listen, "user": "trust_user",
                                "dbname": harness.DATABASE, "sslmode": "disable"})
        with psycopg.connect(dsn) as c:
            assert c.execute("SELECT 'via flags'").fetchone() == ("via flags",)
        p = harness.Proxy(pg, str(tmp_path))
        p.admin_port = admin
        doc = p.status()
        assert doc["workers"] == 1
        assert doc["upstreams"][0]["port"] == pg.port
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert harness.sanitizer_report(err) is None, err


def _healthy(admin_port):
    try:
        p = harness.Proxy(None, "/nonexistent")
        p.admin_port = admin_port
        return p.healthz()[0] == 200
    except OSError:
        return False
