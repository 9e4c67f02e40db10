"""pytest fixtures over harness.py: a session-wide PostgreSQL cluster, per-test proxies
(fresh counters, their own ports and log) that fail the test at teardown if the proxy died
unexpectedly, did not stop cleanly on SIGTERM, or printed a sanitizer report; and a check
after every test that each coordinator it started in the background was checked for
sanitizer reports too (coordinator.py)."""

import contextlib
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import coordinator  # noqa: E402
import harness  # noqa: E402


@pytest.fixture(autouse=True)
def coordinators_checked():
    """Coordinators a test spawned and never finish()ed are stopped and their stderr checked."""
    yield
    problems = coordinator.check_leftovers()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def pg():
    cluster = harness.start_cluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def own_pg():
    """A cluster of the test's own, for tests that stop or restart the server."""
    cluster = harness.start_cluster()
    yield cluster
    cluster.destroy()


class ProxyFactory:
    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.proxies = []
        self.connections = []

    def __call__(self, pg, overrides=None, extra_args=(), start=True):
        workdir = tempfile.mkdtemp(prefix=f"proxy{len(self.proxies)}-", dir=self.tmpdir)
        p = harness.Proxy(pg, workdir, overrides=overrides, extra_args=extra_args)
        p.factory = self
        self.proxies.append(p)
        if start:
            p.start()
        return p

    def track(self, conn):
        self.connections.append(conn)
        return conn

    def teardown(self):
        for c in self.connections:
            with contextlib.suppress(Exception):
                c.close()
        problems = []
        for p in self.proxies:
            for problem in p.stop():
                problems.append(f"{problem}\n--- proxy stderr ({p.log_path}), last lines:\n"
                                + "\n".join(p.log_lines()[-40:]))
        return problems


@pytest.fixture
def proxy_factory(tmp_path):
    factory = ProxyFactory(str(tmp_path))
    yield factory
    problems = factory.teardown()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def proxy(pg, proxy_factory):
    return proxy_factory(pg)


@pytest.fixture
def connect(proxy_factory):
    """connect(proxy, user=..., driver='psycopg'|'psycopg2', autocommit=False, **conninfo)
    -> an open connection through the proxy,
    closed at teardown before the proxy is stopped."""
    def _connect(proxy, user=harness.SUPERUSER, driver="psycopg", autocommit=False, **kw):
        conn = harness.connect(proxy.dsn(user=user, **kw), driver=driver)
        conn.autocommit = autocommit
        return proxy_factory.track(conn)
    return _connect


@pytest.fixture
def direct(pg):
    """A psycopg autocommit connection straight to the server (not through the proxy)."""
    conn = harness.connect(pg.dsn())
    conn.autocommit = True
    yield conn
    conn.close()
