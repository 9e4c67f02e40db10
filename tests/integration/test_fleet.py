"""Many proxies found by name (docs/architecture.md §4, many proxies): three real proxies whose
admin APIs listen on 127.0.0.1, 127.0.0.2 and 127.0.0.3 at one port, and an /etc/hosts entry that
gives a unique name all three addresses (as a Kubernetes headless Service gives one record per
ready pod). `--proxy dns://NAME:PORT` then means all of them: plan and apply list them; a
migration under a write load spread over the three has no failed client transaction; one proxy
frozen with SIGSTOP makes attempts fail while the other two release their holds (by the
coordinator, not by the lease), and once it is thawed the next attempt succeeds; a fourth proxy
added to the name between attempts is held by the next attempt; `recover` releases the holds a
killed apply left on every proxy behind the name. A name that does not resolve is a clear
error."""

import json
import os
import re
import signal
import socket

import psycopg
import pytest

import harness
from coordinator import (FKS, schema_conn, finish, fk_migration, last_migration, output_so_far, pgbench_result,
                         pgvalve, spawn, start_pgbench, wait_output, waiting_for_cutover, write_file)

HOSTS = "/etc/hosts"


class HostsEntry:
    """Lines `ADDR NAME` appended to /etc/hosts for one unique name, removed again by remove()
    (only those lines: the rest of the file is left as it is then)."""

    def __init__(self, name):
        self.name = name
        with open(HOSTS) as f:
            self.original_ends_with_newline = f.read().endswith("\n")

    def add(self, addr):
        with open(HOSTS) as f:
            text = f.read()
        with open(HOSTS, "a") as f:
            f.write(("" if text.endswith("\n") or not text else "\n") + f"{addr} {self.name}\n")

    def remove(self, addr=None):
        """Removes the name's lines (only the one for `addr` when given)."""
        with open(HOSTS) as f:
            lines = f.read().split("\n")
        kept = "\n".join(line for line in lines
                         if line.split()[1:] != [self.name] or (addr and line.split()[0] != addr))
        if not self.original_ends_with_newline:
            kept = kept.rstrip("\n")
        with open(HOSTS, "w") as f:
            f.write(kept)


@pytest.fixture
def db(pg):
    with schema_conn(pg) as conn:
        yield conn


@pytest.fixture
def fleet(pg, proxy_factory):
    """Starts proxies on 127.0.0.N (admin API at one shared port) and names them in /etc/hosts."""
    hosts = HostsEntry(f"pgvalve-fleet-{os.getpid()}.test")
    port = harness.free_port()

    class Fleet:
        name = hosts.name
        entry = hosts
        admin_port = port
        url = f"dns://{hosts.name}:{port}"
        proxies = []

        def start(self, n, overrides=None):
            addr = f"127.0.0.{n}"
            workdir = os.path.join(proxy_factory.tmpdir, f"fleet{n}")
            os.makedirs(workdir)
            p = harness.Proxy(pg, workdir, overrides=overrides, admin_host=addr, admin_port=port)
            proxy_factory.proxies.append(p)      # stopped and checked by the factory's teardown
            p.start()
            hosts.add(addr)
            self.proxies.append(p)
            return p

    try:
        yield Fleet()
    finally:
        hosts.remove()


def admin_urls(fleet, n):
    return [f"http://127.0.0.{i}:{fleet.admin_port}" for i in range(1, n + 1)]


def holds_in_force(proxy):
    """Ids of the holds the proxy's log says it put in force."""
    return re.findall(r"hold (pgvalve-\S+): .* in force", proxy.log_text())


def holds_released(proxy):
    return re.findall(r"hold (pgvalve-\S+): released", proxy.log_text())


def test_name_resolves_to_every_proxy(fleet):
    for n in (1, 2, 3):
        fleet.start(n)
    addrs = {ai[4][0] for ai in socket.getaddrinfo(fleet.name, fleet.admin_port, type=socket.SOCK_STREAM)}
    assert addrs == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


def test_migration_under_load_through_three_proxies(pg, db, fleet, tmp_path):
    for n in (1, 2, 3):
        fleet.start(n)
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:6]))
    loads = []
    for i, p in enumerate(fleet.proxies):
        d = tmp_path / f"load{i}"
        d.mkdir()
        loads.append(start_pgbench(p, d, seconds=20, clients=2))
    harness.wait_for(lambda: all(p.status()["clients"]["total"] >= 2 for p in fleet.proxies), 60, interval=0.1,
                     what="the write load on every proxy")

    # plan lists the three; the bypass check knows every pgbench session (the union of the /status).
    doc = json.loads(pgvalve("plan", path, "--proxy", fleet.url, "--format", "json", pg=pg).out)
    assert doc["proxies"] == {"given": [fleet.url], "found": admin_urls(fleet, 3)}
    bypass = [f for f in doc["preflight"] if f["check"] == "bypass"]
    assert not any("pgbench" in (f.get("detail") or "") for f in bypass), bypass
    # ... which one proxy alone does not: the sessions on the other two bypass it.
    one = json.loads(pgvalve("plan", path, "--proxy", admin_urls(fleet, 1)[0], "--format", "json", pg=pg).out)
    assert any("pgbench" in (f.get("detail") or "") for f in one["preflight"] if f["check"] == "bypass")
    text = pgvalve("plan", path, "--proxy", fleet.url, pg=pg).out
    assert f"Proxies: 3 proxies ({', '.join(admin_urls(fleet, 3))}) found by {fleet.url}" in text

    r = pgvalve("apply", path, "--proxy", fleet.url, "--watch", "2", "--max-stall", "500", "--yes",
                "--format", "json", pg=pg)
    results = [pgbench_result(load) for load in loads]
    assert r.rc == 0, r
    events = r.events()
    found = [e for e in events if e["event"] == "proxies"]
    assert found and found[0]["found"] == admin_urls(fleet, 3), events
    holding = [e for e in events if e["event"] == "holding"]
    assert holding and all(e["proxies"] == admin_urls(fleet, 3) for e in holding), holding
    for done, failed, aborted, out in results:
        assert done > 0 and failed == 0 and aborted == 0, out
    assert last_migration(db)[1] == "committed"
    for p in fleet.proxies:
        assert holds_in_force(p) and sorted(holds_in_force(p)) == sorted(holds_released(p)), p.log_text()
        assert p.admin("GET", "/holds")[1] == {"holds": []}


def test_a_frozen_proxy_fails_the_attempt_and_the_thawed_fleet_succeeds_with_a_fourth(pg, db, fleet, tmp_path):
    for n in (1, 2, 3):
        fleet.start(n)
    frozen = fleet.proxies[2]                       # 127.0.0.3: asked last, after the other two hold
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:2]))
    p = spawn("apply", path, "--proxy", fleet.url, "--postpone-cutover", "--attempts", "30", "--watch", "0",
              pg=pg)
    mig_id = waiting_for_cutover(db, 120)
    frozen.signal(signal.SIGSTOP)
    try:
        pgvalve("cutover", mig_id, pg=pg, check=0)
        wait_output(p, "attempt 1 of 30 failed")
        failed = re.search(r"attempt 1 of 30 failed: ([^\n]*)", output_so_far(p))
        assert f"proxy {admin_urls(fleet, 3)[2]} did not acknowledge the hold" in failed.group(1)
        # The two that took attempt 1's hold were told to release it: by the coordinator, not the lease.
        first = [h for h in holds_in_force(fleet.proxies[0]) if re.search(r"-1-\w+$", h)]
        assert first, fleet.proxies[0].log_text()
        for other in fleet.proxies[:2]:
            harness.wait_for(lambda: set(first) <= set(holds_released(other)), 30,
                             what="the release of attempt 1's hold")
            assert "ran out without renewal" not in other.log_text()
        # Between two attempts a fourth replica becomes ready: the attempts after it hold it too.
        fourth = fleet.start(4)
        # Attempt c + 1 may have read the name before the fourth was in it; c + 2 began after that one
        # failed, so after the fourth was added. Thawed once it failed too, the next one can succeed.
        c = output_so_far(p).count(" of 30 failed")
        wait_output(p, f"attempt {c + 2} of 30 failed", timeout=120)
    finally:
        frozen.signal(signal.SIGCONT)
    r = finish(p, timeout=300)
    assert r.rc == 0, r
    assert last_migration(db)[1] == "committed"
    # The attempt that committed held all four, the thawed one included.
    won = re.findall(r"attempt (\d+): holding [^\n]* on 4 proxy\(ies\) \(([^)]*)\)", r.out)
    assert won and won[-1][1] == ", ".join(admin_urls(fleet, 4)), r.out
    for proxy in (frozen, fourth):
        harness.wait_for(lambda: any(h.endswith(f"-{won[-1][0]}-writes") for h in holds_in_force(proxy)), 30,
                         what="the proxy's log to show the committing attempt's hold")


def postponed_apply(pg, db, fleet, tmp_path):
    """Three proxies, and an apply of two foreign keys through their name (JSON events) waiting
    for `pgvalve cutover`."""
    for n in (1, 2, 3):
        fleet.start(n)
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:2]))
    p = spawn("apply", path, "--proxy", fleet.url, "--postpone-cutover", "--watch", "0", "--format", "json",
              pg=pg)
    waiting_for_cutover(db, 120)
    return p


def test_a_proxy_added_to_the_name_is_held_by_the_next_attempt(pg, db, fleet, tmp_path):
    p = postponed_apply(pg, db, fleet, tmp_path)
    fourth = fleet.start(4)                         # a replica that became ready after apply started
    assert holds_in_force(fourth) == []
    mig_id, _ = last_migration(db)
    pgvalve("cutover", mig_id, pg=pg, check=0)
    r = finish(p, timeout=300)
    assert r.rc == 0, r
    events = r.events()
    assert [e for e in events if e["event"] == "proxies"][0]["found"] == admin_urls(fleet, 3)
    holding = [e for e in events if e["event"] == "holding"]
    assert holding and holding[-1]["proxies"] == admin_urls(fleet, 4), holding
    held = holds_in_force(fourth)
    assert held and held == holds_released(fourth), fourth.log_text()
    assert fourth.admin("GET", "/holds")[1] == {"holds": []}


def test_a_proxy_gone_from_the_name_is_no_longer_asked(pg, db, fleet, tmp_path):
    p = postponed_apply(pg, db, fleet, tmp_path)
    gone = fleet.proxies[1]                          # a replica scaled away: out of the name, then stopped
    fleet.entry.remove("127.0.0.2")
    assert gone.stop() == []
    gone.exit_expected = True                        # the factory's teardown: stopped on purpose
    mig_id, _ = last_migration(db)
    pgvalve("cutover", mig_id, pg=pg, check=0)
    r = finish(p, timeout=300)
    assert r.rc == 0, r
    holding = [e for e in r.events() if e["event"] == "holding"]
    assert holding and holding[0]["hold_id"].endswith("-1-writes"), holding      # the first attempt held
    assert holding[0]["proxies"] == [admin_urls(fleet, 3)[0], admin_urls(fleet, 3)[2]], holding


def test_config_entry_token_applies_to_every_address(pg, db, fleet, tmp_path):
    token = write_file(tmp_path, "admin.token", "a-fleet-token-of-enough-length\n")
    for n in (1, 2, 3):
        fleet.start(n, {"admin": {"token_file": token}})
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:1]))
    config = write_file(tmp_path, "pgvalve.json",
                        json.dumps({"proxies": [{"url": fleet.url, "token_file": token}]}))
    r = pgvalve("apply", path, "--config", config, "--watch", "0", "--format", "json", pg=pg, check=0)
    holding = [e for e in r.events() if e["event"] == "holding"]
    assert holding and holding[0]["proxies"] == admin_urls(fleet, 3), r
    for p in fleet.proxies:
        assert holds_in_force(p), p.log_text()
    # Without the token every proxy refuses the hold: the attempt fails and is not retried.
    db.execute("DROP SCHEMA pgvalve CASCADE")
    db.execute("ALTER TABLE users DROP CONSTRAINT users_workspace_id_fkey")
    r = pgvalve("apply", path, "--proxy", fleet.url, "--watch", "0", pg=pg, check=3)
    assert "(HTTP 401)" in r.out + r.err, r


def test_a_name_that_does_not_resolve_is_a_clear_error(pg, db, tmp_path):
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:1]))
    r = pgvalve("plan", path, "--proxy", "dns://pgvalve-no-such-name.invalid:6480", pg=pg, check=2)
    assert "dns://pgvalve-no-such-name.invalid:6480: cannot resolve pgvalve-no-such-name.invalid" in r.err, r
    r = pgvalve("apply", path, "--proxy", "dns://pgvalve-no-such-name.invalid:6480", pg=pg, check=2)
    assert "cannot resolve" in r.err, r
    assert db.execute("SELECT to_regclass('pgvalve.migrations')").fetchone()[0] is None   # nothing began


def test_report_shows_each_proxys_acknowledgement(pg, db, fleet, tmp_path):
    for n in (1, 2, 3):
        fleet.start(n)
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:2]))
    r = pgvalve("apply", path, "--proxy", fleet.url, "--watch", "0", "--format", "json", pg=pg, check=0)
    mig_id, state = last_migration(db)
    assert state == "committed", r
    doc = json.loads(pgvalve("report", mig_id, "--format", "json", pg=pg, check=0).out)
    cutover = [j for j in doc["hold_acks"] if j["what"] == "cutover"]
    assert cutover, doc["hold_acks"]
    holds = cutover[-1]["holds"]
    won = [h for h in holds if h["acked"]]
    assert won, holds
    for h in won:
        assert [p["proxy"] for p in h["proxies"]] == admin_urls(fleet, 3), h
        for p in h["proxies"]:
            assert p["status"] == 201 and p["ack_ms"] >= 0 and p["held_ms"] >= 0, p
    text = pgvalve("report", mig_id, pg=pg, check=0).out
    for url in admin_urls(fleet, 3):
        assert f"    {url}: acknowledged in " in text, text


def test_a_frozen_proxy_shows_in_the_report_as_not_acknowledging(pg, db, fleet, tmp_path):
    for n in (1, 2):
        fleet.start(n)
    frozen = fleet.proxies[1]
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:1]))
    p = spawn("apply", path, "--proxy", fleet.url, "--postpone-cutover", "--attempts", "30", "--watch", "0",
              pg=pg)
    mig_id = waiting_for_cutover(db, 120)
    frozen.signal(signal.SIGSTOP)
    try:
        pgvalve("cutover", mig_id, pg=pg, check=0)
        wait_output(p, "attempt 1 of 30 failed")
    finally:
        frozen.signal(signal.SIGCONT)
    r = finish(p, timeout=300)
    assert r.rc == 0, r
    doc = json.loads(pgvalve("report", mig_id, "--format", "json", pg=pg, check=0).out)
    holds = [h for j in doc["hold_acks"] if j["what"] == "cutover" for h in j["holds"]]
    first = holds[0]
    assert first["attempt"] == 1 and not first["acked"], holds
    answered, silent = first["proxies"]
    assert answered["proxy"] == admin_urls(fleet, 2)[0] and answered["status"] == 201, first
    assert silent["proxy"] == admin_urls(fleet, 2)[1] and silent["status"] == -1 and silent["error"], first
    assert holds[-1]["acked"], holds
    text = pgvalve("report", mig_id, pg=pg, check=0).out
    assert "cutover attempt 1, writes hold" in text and "not acknowledged by every proxy" in text, text
    assert f"    {admin_urls(fleet, 2)[1]}: no acknowledgement after " in text, text


def test_the_watch_reads_a_proxy_added_during_it(pg, db, fleet, tmp_path):
    for n in (1, 2):
        fleet.start(n)
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:1]))      # users.workspace_id -> workspaces
    p = spawn("apply", path, "--proxy", fleet.url, "--watch", "300", "--baseline", "0",
              "--rollback-on", "errors{sqlstate=23503} > 2", "--format", "json", pg=pg)
    wait_output(p, '"event":"watching"')
    third = fleet.start(3)                              # a replica that became ready during the watch
    # Clients of the new replica only break the new foreign key: the watch must read it to see that.
    conn = harness.connect(third.dsn())
    conn.autocommit = True
    for _ in range(5):
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO users (id, workspace_id, email) VALUES (-1, -1, 'x')")
    conn.close()
    r = finish(p, timeout=300)
    assert r.rc == 3, r
    events = r.events()
    seen = [e for e in events if e["event"] == "watch_proxies"]
    assert seen and seen[-1]["proxies"] == admin_urls(fleet, 3), events
    tripped = [e for e in events if e["event"] == "rule_tripped"]
    assert tripped and "errors with SQLSTATE 23503" in tripped[0]["message"], events
    assert last_migration(db)[1] == "rolled_back"


def test_recover_releases_the_holds_a_killed_apply_left_on_every_proxy_of_the_name(pg, db, fleet, tmp_path):
    """A killed apply leaves its holds on the proxies until their lease ends (here over a minute:
    --max-stall 60000), parking the clients: `recover` given the name resolves it again and
    releases them on every proxy behind it at once, by the coordinator, not by the lease."""
    for n in (1, 2, 3):
        fleet.start(n)
    path = write_file(tmp_path, "fk.sql", fk_migration(FKS[:1]))
    r = pgvalve("apply", path, "--proxy", fleet.url, "--max-stall", "60000", "--watch", "0", pg=pg,
                env={"PGVALVE_TEST_KILL_AT": "holding"})
    assert r.rc == -9, r                                 # killed with its holds acknowledged
    mig_id, _ = last_migration(db)
    left = []
    for p in fleet.proxies:
        ids = [h["id"] for h in p.admin("GET", "/holds")[1]["holds"]]
        assert ids and all(i.startswith(f"pgvalve-{mig_id}-") for i in ids), (ids, p.log_text())
        left.append(ids)
    r = pgvalve("recover", "--rollback", "--proxy", fleet.url, "--format", "json", pg=pg, check=3)
    stale = [e["message"] for e in r.events() if e["event"] == "stale_hold"]
    for url, p, ids in zip(admin_urls(fleet, 3), fleet.proxies, left):
        for i in ids:
            assert f"releasing hold {i} left on {url} by an earlier run" in stale, (stale, r)
        assert p.admin("GET", "/holds")[1] == {"holds": []}
        assert set(ids) <= set(holds_released(p)), p.log_text()
        assert "ran out without renewal" not in p.log_text()
    assert last_migration(db)[1] == "rolled_back"
