"""GET /metrics: Prometheus text whose counters move with what clients do — open clients,
connections accepted, bytes each way, statements, errors by SQLSTATE."""

import psycopg
import pytest

import harness


def test_metrics_follow_client_activity(proxy, connect):
    m0 = proxy.metrics()
    for name in ("pgvalve_clients", "pgvalve_connections_total", "pgvalve_statements_total"):
        assert m0[name] == 0, name
    c2s0 = m0.get(("pgvalve_bytes_total", frozenset({("direction", "client_to_server")})), 0)
    s2c0 = m0.get(("pgvalve_bytes_total", frozenset({("direction", "server_to_client")})), 0)

    kept = [connect(proxy, autocommit=True) for _ in range(3)]
    for _ in range(2):
        with psycopg.connect(proxy.dsn(user="trust_user"), autocommit=True) as c:
            c.execute("SELECT 1")
    big_in = "x" * 500_000
    kept[0].execute(f"SELECT length('{big_in}')")                      # 500 kB client→server
    kept[1].execute("SELECT repeat('y', 800000)").fetchone()             # 800 kB server→client
    kept[2].execute("SELECT %s::int", (5,))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        kept[2].execute("DO $$ BEGIN RAISE foreign_key_violation; END $$")

    def settled():
        return proxy.metrics()["pgvalve_clients"] == 3
    harness.wait_for(settled, 10, what="pgvalve_clients == 3")
    m = proxy.metrics()
    assert m["pgvalve_connections_total"] == 5
    assert m["pgvalve_statements_total"] == 2 + 4   # two short sessions, four statements
    c2s = m[("pgvalve_bytes_total", frozenset({("direction", "client_to_server")}))]
    s2c = m[("pgvalve_bytes_total", frozenset({("direction", "server_to_client")}))]
    assert c2s - c2s0 >= 500_000
    assert s2c - s2c0 >= 800_000
    assert m[("pgvalve_errors_total", frozenset({("sqlstate", "23503")}))] == 1

    for c in kept:
        c.close()
    harness.wait_for(lambda: proxy.metrics()["pgvalve_clients"] == 0, 10, what="pgvalve_clients == 0")
    assert proxy.metrics()["pgvalve_connections_total"] == 5


def test_metrics_text_format(proxy):
    status, body = proxy.admin_get("/metrics")
    assert status == 200
    names = set()
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            names.add(name)
    assert {"pgvalve_clients", "pgvalve_connections_total", "pgvalve_bytes_total",
            "pgvalve_statements_total", "pgvalve_errors_total"} <= names
    assert all(n.startswith("pgvalve_") for n in names)


def test_constraint_violations_counted_by_constraint(proxy, connect, direct):
    """pgvalve_constraint_errors_total counts the ErrorResponses that name a constraint, by
    its name, summed over workers and sessions; a name with a quote and a backslash comes out
    escaped as Prometheus' text format requires."""
    direct.execute("DROP TABLE IF EXISTS m_parent, m_child")
    direct.execute("CREATE TABLE m_parent (id int PRIMARY KEY)")
    direct.execute('CREATE TABLE m_child (p int CONSTRAINT m_child_p_fkey REFERENCES m_parent, '
                   'v int CONSTRAINT "v ""odd"" \\ check" CHECK (v > 0))')
    direct.execute("GRANT ALL ON m_parent, m_child TO PUBLIC")
    for _ in range(2):
        c = connect(proxy, autocommit=True)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            c.execute("INSERT INTO m_child VALUES (1, 1)")
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute("INSERT INTO m_child VALUES (NULL, -1)")
    m = proxy.metrics()
    assert m[("pgvalve_constraint_errors_total", frozenset({("constraint", "m_child_p_fkey")}))] == 2
    status, body = proxy.admin_get("/metrics")
    assert 'pgvalve_constraint_errors_total{constraint="v \\"odd\\" \\\\ check"} 2' in body.splitlines(), body
