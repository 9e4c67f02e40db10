"""Error accounting on /errors and /metrics: deliberately cause exactly N foreign-key
violations and M unique violations (simple and extended protocol, in and out of pipelines)
and read back the same numbers by SQLSTATE, table and constraint, with statements counted."""

import psycopg
import pytest

import harness

FK_VIOLATIONS = 5
UNIQUE_VIOLATIONS = 3


@pytest.fixture
def tables(direct):
    direct.execute("DROP TABLE IF EXISTS child, parent")
    direct.execute("CREATE TABLE parent(id int PRIMARY KEY)")
    direct.execute("CREATE TABLE child(id int CONSTRAINT child_pkey PRIMARY KEY, "
                   "parent_id int CONSTRAINT child_parent_fk REFERENCES parent(id))")
    direct.execute("INSERT INTO parent SELECT generate_series(1, 10)")
    direct.execute("INSERT INTO child VALUES (1, 1)")
    return direct


def test_errors_counted_by_sqlstate_table_constraint(proxy, connect, tables):
    conn = connect(proxy, autocommit=True)
    statements = 0
    # Foreign-key violations: some as simple Query, some as extended-protocol Execute.
    for i in range(FK_VIOLATIONS):
        with pytest.raises(psycopg.errors.ForeignKeyViolation) as e:
            if i % 2:
                conn.execute(f"INSERT INTO child VALUES ({100 + i}, {1000 + i})")
            else:
                conn.execute("INSERT INTO child VALUES (%s, %s)", (100 + i, 1000 + i))
        assert e.value.diag.constraint_name == "child_parent_fk"
        statements += 1
    for i in range(UNIQUE_VIOLATIONS):
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO child VALUES (%s, %s)", (1, 2))
        statements += 1
    # Successful statements count as statements, not errors.
    for i in range(7):
        conn.execute("INSERT INTO child VALUES (%s, %s)", (200 + i, 1 + i % 10))
        statements += 1
    # An error with no table or constraint.
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 / 0")
    statements += 1

    errors = FK_VIOLATIONS + UNIQUE_VIOLATIONS + 1
    doc = proxy.errors(window_s=60)
    assert doc["window_s"] == 60
    assert doc["errors"] == errors, doc
    assert doc["statements"] == statements, doc
    assert doc["by_sqlstate"] == {"23503": FK_VIOLATIONS, "23505": UNIQUE_VIOLATIONS, "22012": 1}, doc
    assert doc["by_constraint"] == {"child_parent_fk": FK_VIOLATIONS, "child_pkey": UNIQUE_VIOLATIONS}, doc
    assert doc["by_table"] == {"public.child": FK_VIOLATIONS + UNIQUE_VIOLATIONS}, doc

    m = proxy.metrics()
    assert m[("pgvalve_errors_total", frozenset({("sqlstate", "23503")}))] == FK_VIOLATIONS
    assert m[("pgvalve_errors_total", frozenset({("sqlstate", "23505")}))] == UNIQUE_VIOLATIONS
    assert m["pgvalve_statements_total"] == statements


def test_errors_summed_across_sessions_and_workers(proxy, connect, tables):
    conns = [connect(proxy, autocommit=True) for _ in range(6)]  # spread over both workers
    for n, conn in enumerate(conns):
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(f"INSERT INTO child VALUES ({300 + n}, -1)")
    with conns[0].pipeline():
        for n in range(4):
            conns[0].execute("INSERT INTO child VALUES (%s, %s)", (400 + n, 1))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        with conns[1].pipeline() as p:
            conns[1].execute("INSERT INTO child VALUES (%s, %s)", (500, 1))
            p.sync()
            conns[1].execute("INSERT INTO child VALUES (%s, %s)", (501, -5))
            p.sync()
    doc = proxy.errors(window_s=60)
    assert doc["by_sqlstate"] == {"23503": 7}, doc
    assert doc["by_constraint"] == {"child_parent_fk": 7}, doc
    assert doc["by_table"] == {"public.child": 7}, doc
    assert doc["statements"] == 6 + 4 + 2, doc


def test_errors_inside_transactions_and_pre_existing_counts(proxy, connect, tables):
    conn = connect(proxy)
    conn.execute("INSERT INTO child VALUES (600, 1)")  # BEGIN is sent first by psycopg
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("INSERT INTO child VALUES (601, 999)")
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        conn.execute("SELECT 1")
    conn.rollback()
    doc = proxy.errors(window_s=60)
    assert doc["by_sqlstate"] == {"23503": 1, "25P02": 1}, doc
    assert doc["by_constraint"] == {"child_parent_fk": 1}, doc


def test_errors_bad_window_is_rejected(proxy):
    status, body = proxy.admin_get("/errors?window_s=abc")
    assert status == 400 and '"error"' in body
    status, body = proxy.admin_get("/errors?window_s=-5")
    assert status == 400 and '"error"' in body


def test_errors_empty_on_fresh_proxy(proxy):
    doc = proxy.errors(window_s=300)
    assert doc["errors"] == 0 and doc["statements"] == 0
    assert doc["by_sqlstate"] == {} and doc["by_table"] == {} and doc["by_constraint"] == {}


def test_errors_window_forgets_old_errors(proxy, connect, tables):
    conn = connect(proxy, autocommit=True)
    for i in range(2):
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO child VALUES (%s, -1)", (700 + i,))
    assert proxy.errors(window_s=60)["by_sqlstate"] == {"23503": 2}
    # A short window lets them go once they are old enough; a long one still has them then.
    recent = harness.wait_for(lambda: (lambda d: d if d["errors"] == 0 else None)(proxy.errors(window_s=2)),
                              60, interval=0.2, what="a 2 s window without the errors")
    assert recent["by_sqlstate"] == {}, recent
    assert proxy.errors(window_s=60)["by_sqlstate"] == {"23503": 2}
