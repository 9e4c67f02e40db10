"""SIGHUP reloads the config file without dropping sessions: new limits and log level take
effect, TLS certificates are swapped for new handshakes, a session inside a transaction goes on
and commits, and a broken config file is refused while the running config stays in force."""

import re
import signal
import subprocess

import psycopg
import pytest

import harness

KB = 1024


def line_level(line):
    m = re.match(r"^\S+\s+(debug|info|warn|error)\b", line)
    return m.group(1) if m else None


def query_of_size(proxy, n):
    """Sends one Query message of about n bytes on a new session; returns 'ok' or the SQLSTATE
    the proxy closed the connection with."""
    with proxy.raw() as raw:
        raw.startup("trust_user")
        rows, errors = raw.query("SELECT length('" + "q" * n + "')")
        if not errors and rows == [[str(n)]]:
            return "ok"
        return errors[0]["C"] if errors else repr(rows)


def query_of_size_or_closed(proxy, n):
    try:
        return query_of_size(proxy, n)
    except harness.PgError as e:
        return e.sqlstate
    except EOFError:
        return "closed"


def session_cycle(proxy, user):
    with psycopg.connect(proxy.dsn(user=user)) as c:
        c.execute("SELECT 1")


def test_reload_limits_and_log_level_keeps_sessions(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, {"limits": {"max_message_bytes": 1024 * KB}, "log": {"level": "warn"}})
    keeper = connect(proxy)
    keeper.execute("CREATE TABLE IF NOT EXISTS reload_t(id int)")
    keeper.execute("TRUNCATE reload_t")
    keeper.commit()
    keeper.execute("INSERT INTO reload_t VALUES (1)")  # transaction stays open over the reload
    pid = keeper.info.backend_pid

    assert query_of_size(proxy, 200 * KB) == "ok"
    session_cycle(proxy, "trust_user")
    assert not [l for l in proxy.log_lines() if "trust_user" in l and line_level(l) == "info"]

    proxy.update_config({"limits": {"max_message_bytes": 64 * KB}, "log": {"level": "info"}})
    proxy.signal(signal.SIGHUP)
    harness.wait_for(lambda: query_of_size_or_closed(proxy, 200 * KB) == "08P01", 15, interval=0.2,
                     what="the smaller max_message_bytes to apply")
    assert query_of_size(proxy, 30 * KB) == "ok"

    mark = len(proxy.log_lines())
    session_cycle(proxy, "trust_user")
    new = proxy.log_lines()[mark:]
    assert [l for l in new if "trust_user" in l and line_level(l) == "info"], new

    keeper.execute("INSERT INTO reload_t VALUES (2)")
    keeper.commit()
    assert keeper.info.backend_pid == pid
    assert keeper.execute("SELECT array_agg(id ORDER BY id), pg_backend_pid() FROM reload_t").fetchone() == ([1, 2], pid)
    keeper.commit()
    proxy.assert_healthy()


@pytest.mark.parametrize("bad", ["{ this is not json", '{"upstream": {"host": "127.0.0.1", "port": 1}, "limits": {"max_message_bytes": "big"}}'],
                         ids=["syntax", "bad-value"])
def test_reload_with_broken_config_keeps_running(pg, proxy_factory, connect, bad):
    proxy = proxy_factory(pg, {"limits": {"max_message_bytes": 1024 * KB}})
    keeper = connect(proxy, autocommit=True)
    with open(proxy.config_path, "w") as f:
        f.write(bad)
    mark = len(proxy.log_lines())
    proxy.signal(signal.SIGHUP)
    harness.wait_for(lambda: [l for l in proxy.log_lines()[mark:] if line_level(l) == "error"], 10,
                     what="an error line about the failed reload")
    if "big" in bad:
        assert any("limits.max_message_bytes" in l for l in proxy.log_lines()[mark:])
    proxy.assert_healthy()
    assert keeper.execute("SELECT 'still here'").fetchone() == ("still here",)
    assert query_of_size(proxy, 200 * KB) == "ok"  # old limits, old upstream
    session_cycle(proxy, "scram_user")


def test_reload_swaps_tls_certificate(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, {"tls": {"cert_file": pg.server_crt, "key_file": pg.server_key}})
    before = connect(proxy, sslmode="verify-full", sslrootcert=pg.ca_crt)
    assert before.pgconn.ssl_in_use
    new_crt, new_key = pg.other_server_cert()
    proxy.update_config({"tls": {"cert_file": new_crt, "key_file": new_key}})
    proxy.signal(signal.SIGHUP)

    def new_cert_served():
        try:
            with psycopg.connect(proxy.dsn(sslmode="verify-full", sslrootcert=pg.other_ca_crt)) as c:
                return c.pgconn.ssl_in_use
        except psycopg.OperationalError:
            return False
    harness.wait_for(new_cert_served, 15, interval=0.2, what="the new certificate")
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(proxy.dsn(sslmode="verify-full", sslrootcert=pg.ca_crt))
    assert before.execute("SELECT 'old session'").fetchone() == ("old session",)
    before.commit()


def test_reload_under_load(pg, proxy_factory):
    """SIGHUP again and again while pgbench runs: no transaction fails, totals add up."""
    proxy = proxy_factory(pg)
    env = proxy.env()
    subprocess.run(["pgbench", "-i", "-q", "-s", "1"], env=env, check=True, capture_output=True, timeout=120)
    bench = subprocess.Popen(["pgbench", "-M", "extended", "-c", "6", "-j", "2", "-t", "300", "-n"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reloads = 0
    level = ["debug", "info"]

    def applied():
        return sum("configuration reloaded" in line for line in proxy.log_lines())
    while bench.poll() is None and reloads < 200:
        proxy.update_config({"log": {"level": level[reloads % 2]},
                             "limits": {"max_message_bytes": 1048576 + reloads}})
        proxy.signal(signal.SIGHUP)
        reloads += 1
        # One reload at a time: the next SIGHUP only once this one is in force.
        harness.wait_for(lambda: applied() >= reloads, 30, interval=0.01, what=f"reload {reloads}")
    out, err = bench.communicate(timeout=300)
    assert bench.returncode == 0, err
    assert reloads >= 3
    assert "number of transactions actually processed: 1800/1800" in out, out
    assert re.search(r"number of failed transactions: 0\b", out), out
    r = proxy.psql("-At", "-c", "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = "
                   "(SELECT sum(delta) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)")
    assert r.stdout.strip() == "t|1800"
    proxy.assert_healthy()
