"""pgbench through the proxy in each query mode: every transaction succeeds and the TPC-B
invariants hold afterwards (branch, teller, account balances and history agree)."""

import re
import subprocess

import pytest

CLIENTS, TRANSACTIONS = 8, 150


def pgbench(proxy, *args):
    r = subprocess.run(["pgbench"] + list(args), env=proxy.env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    assert r.returncode == 0, f"pgbench {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def balances(proxy):
    r = proxy.psql("-At", "-F", " ", "-c",
                   "SELECT (SELECT sum(abalance) FROM pgbench_accounts), "
                   "(SELECT sum(bbalance) FROM pgbench_branches), "
                   "(SELECT sum(tbalance) FROM pgbench_tellers), "
                   "(SELECT coalesce(sum(delta), 0) FROM pgbench_history), "
                   "(SELECT count(*) FROM pgbench_history)")
    return [int(x) for x in r.stdout.split()]


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_tpcb(proxy, mode):
    pgbench(proxy, "-i", "-q", "-s", "1")
    out = pgbench(proxy, "-M", mode, "-c", str(CLIENTS), "-j", "2", "-t", str(TRANSACTIONS), "-n")
    expected = CLIENTS * TRANSACTIONS
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    assert m, out
    assert (int(m.group(1)), int(m.group(2))) == (expected, expected), out
    m = re.search(r"number of failed transactions: (\d+)", out)
    assert m and int(m.group(1)) == 0, out
    accounts, branches, tellers, history, rows = balances(proxy)
    assert rows == expected
    assert accounts == branches == tellers == history


def test_pgbench_select_only_prepared(proxy):
    pgbench(proxy, "-i", "-q", "-s", "1")
    out = pgbench(proxy, "-S", "-M", "prepared", "-c", "4", "-j", "2", "-t", "500", "-n")
    assert "number of transactions actually processed: 2000/2000" in out
    assert re.search(r"number of failed transactions: 0\b", out), out
