"""`pgvalve audit` against a real server: every finding kind on a planted schema, the JSON
contract, text for people, DOT through Graphviz, Mermaid, --table, --fail-on, orphan counts
(and one that cannot get its lock), suggestions written as a migration that `pgvalve plan` and
`apply` take as it is, hostile names, multi-column keys, keys to UNIQUE constraints,
partitioned tables, a schema without foreign keys, a schema the role cannot read, and that the
audit never waits behind DDL."""

import json
import shutil
import subprocess

import psycopg
import pytest

import harness
from audit_schemas import SHOP_FINDINGS, audit_json, create_shop, findings_of, fresh_schema, ident
from coordinator import pgvalve, write_file

EDGE_KEYS = {"constraint", "from", "to", "columns", "ref_columns", "on_delete", "on_update", "validated",
             "deferrable", "indexed"}


@pytest.fixture
def shop(direct):
    create_shop(direct)
    return direct


def test_json_has_every_finding_and_the_contract_keys(pg, shop):
    doc = audit_json(pg, "--schema", "shop", "--orphans", "--suggest")
    assert set(doc) == {"tables", "foreign_keys", "graph", "cycles", "longest_chains", "cascade_reach",
                        "findings", "suggestions"}
    assert doc["tables"] == 12 and doc["foreign_keys"] == 8
    nodes = {n["table"]: n for n in doc["graph"]["nodes"]}
    assert nodes["shop.order_items"]["rows"] == 203
    assert nodes["shop.order_items"]["bytes"] > 0
    for e in doc["graph"]["edges"]:
        assert set(e) == EDGE_KEYS, e
    edges = {e["constraint"]: e for e in doc["graph"]["edges"]}
    e = edges["order_items_order_fk"]
    assert (e["from"], e["to"], e["columns"], e["ref_columns"]) == ("shop.order_items", "shop.orders",
                                                                    ["order_id"], ["id"])
    assert (e["on_delete"], e["on_update"], e["validated"], e["deferrable"], e["indexed"]) == \
        ("cascade", "no action", False, False, True)
    assert edges["orders_tenant_id_fkey"]["indexed"] is False
    found = {(f["kind"], f["table"]) for f in doc["findings"]}
    assert SHOP_FINDINGS <= found, SHOP_FINDINGS - found
    for f in doc["findings"]:
        assert set(f) >= {"kind", "severity", "table", "constraint", "message", "hint"}
        assert f["severity"] in ("error", "warning", "info") and f["message"] and f["hint"]
    [orphans] = [f for f in findings_of(doc, "orphans") if f["constraint"] == "order_items_order_fk"]
    assert orphans["severity"] == "error" and orphans["count"] == 2
    assert sorted(orphans["samples"]) == ["5001", "5002"]
    assert sorted(doc["cycles"]) == [["shop.employees"], ["shop.left_side", "shop.right_side"]]
    assert sorted(doc["cascade_reach"]["shop.tenants"]) == sorted(
        ["shop.customers", "shop.orders", "shop.order_items", "shop.payments"])
    assert ["shop.order_items", "shop.orders", "shop.tenants"] in doc["longest_chains"]
    sugg = {(s["table"], s["columns"][0]): s for s in doc["suggestions"]}
    assert set(sugg) == {("shop.orders", "customer_id"), ("shop.order_items", "product_id"),
                         ("shop.audit_log", "customer_id")}
    s = sugg[("shop.order_items", "product_id")]
    assert (s["references"], s["ref_columns"], s["orphans"]) == ("shop.products", ["id"], 2)
    assert s["sql"] == ('ALTER TABLE "shop"."order_items" ADD CONSTRAINT "order_items_product_id_fkey" '
                        'FOREIGN KEY ("product_id") REFERENCES "shop"."products" ("id");')
    assert sugg[("shop.orders", "customer_id")]["orphans"] == 0
    assert s["index_sql"] == 'CREATE INDEX "order_items_product_id_idx" ON "shop"."order_items" ("product_id");'



def test_text_summary_first_then_findings_by_severity_then_the_tree(pg, shop):
    r = pgvalve("audit", "--schema", "shop", "--orphans", "--suggest", pg=pg, check=0)
    out = r.out
    assert out.startswith("pgvalve audit: 12 table(s), 8 foreign key(s) in schema shop\n"), out
    assert "findings: 2 error(s)" in out.splitlines()[1]
    assert out.index("\nErrors (") < out.index("\nWarnings (") < out.index("\nNotes (") \
        < out.index("\nSuggested foreign keys (3)") < out.index("\nGraph:")
    assert "widest cascade: a DELETE on shop.tenants reaches 4 table(s)" in out
    tree = out[out.index("\nGraph:"):]
    assert "shop.tenants  (~2 rows" in tree
    assert "── shop.order_items  via order_items_order_fk, on delete cascade [NOT VALID]" in tree


def test_fail_on(pg, shop):
    assert pgvalve("audit", "--schema", "shop", pg=pg).rc == 0
    assert pgvalve("audit", "--schema", "shop", "--fail-on", "warning", pg=pg).rc == 1
    # No error without --orphans; the planted orphans are errors.
    assert pgvalve("audit", "--schema", "shop", "--fail-on", "error", pg=pg).rc == 0
    assert pgvalve("audit", "--schema", "shop", "--orphans", "--fail-on", "error", pg=pg).rc == 1
    r = pgvalve("audit", "--schema", "shop", "--fail-on", "fatal", pg=pg)
    assert r.rc == 2 and "expected error or warning" in r.err


def test_table_restricts_to_what_it_reaches_and_what_reaches_it(pg, shop):
    doc = audit_json(pg, "--schema", "shop", "--table", "shop.orders")
    assert {n["table"] for n in doc["graph"]["nodes"]} == {"shop.orders", "shop.tenants", "shop.order_items",
                                                           "shop.payments"}
    assert {e["constraint"] for e in doc["graph"]["edges"]} == {
        "orders_tenant_id_fkey", "order_items_order_fk", "payments_order_id_fkey"}
    assert {f["table"] for f in doc["findings"]} <= {n["table"] for n in doc["graph"]["nodes"]}
    r = pgvalve("audit", "--schema", "shop", "--table", "shop.nope", pg=pg)
    assert r.rc == 2 and "no such table" in r.err


def test_dot_renders_and_marks_edges(pg, shop):
    r = pgvalve("audit", "--schema", "shop", "--format", "dot", pg=pg, check=0)
    assert r.out.startswith("digraph pgvalve_audit {")
    lines = [line for line in r.out.splitlines() if "order_items_order_fk" in line]
    assert len(lines) == 1 and "style=dashed" in lines[0] and "ON DELETE CASCADE" in lines[0]
    [unindexed] = [line for line in r.out.splitlines() if "orders_tenant_id_fkey" in line]
    assert "unindexed" in unindexed and "color=red" in unindexed
    if not shutil.which("dot"):
        pytest.skip("graphviz is not installed (deploy/local/install-deps.sh installs it)")
    svg = subprocess.run(["dot", "-Tsvg"], input=r.out, capture_output=True, text=True, timeout=60)
    assert svg.returncode == 0, svg.stderr
    assert "<svg" in svg.stdout and "order_items_order_fk" in svg.stdout


def test_mermaid_flowchart(pg, shop):
    r = pgvalve("audit", "--schema", "shop", "--format", "mermaid", pg=pg, check=0)
    lines = r.out.splitlines()
    assert lines[0] == "flowchart LR"
    [edge] = [line for line in lines if "order_items_order_fk" in line]
    assert " -.->|" in edge and "NOT VALID" in edge
    assert sum(" --> " in line or " -.->" in line or "-->|" in line for line in lines) == 8


def test_suggestions_as_a_migration_that_plans_and_applies(pg, shop, tmp_path):
    # With --orphans, the key the planted orphans would break is written commented out, so the
    # file still plans as it is.
    r = pgvalve("audit", "--schema", "shop", "--suggest", "--orphans", "--format", "sql", pg=pg, check=0)
    active = [line for line in r.out.splitlines() if line.startswith("ALTER TABLE")]
    assert len(active) == 2 and not any("product_id" in line for line in active), r.out
    assert '-- ALTER TABLE "shop"."order_items" ADD CONSTRAINT "order_items_product_id_fkey"' in r.out
    assert pgvalve("plan", write_file(tmp_path, "two.sql", r.out), pg=pg).rc == 0
    # Fixed, as a person would after reading the audit, all three go in.
    shop.execute("UPDATE shop.order_items SET product_id = 1 WHERE product_id > 20")
    r = pgvalve("audit", "--schema", "shop", "--suggest", "--format", "sql", pg=pg, check=0)
    assert r.out.count("ALTER TABLE") == 3, r.out
    path = write_file(tmp_path, "add_fks.sql", r.out)
    plan = pgvalve("plan", path, pg=pg)
    assert plan.rc == 0, plan
    assert plan.out.count(" NOT VALID") >= 3 and plan.out.count("VALIDATE CONSTRAINT") >= 3, plan.out
    applied = pgvalve("apply", path, "--yes", "--watch", "0", pg=pg)
    assert applied.rc == 0, applied
    doc = audit_json(pg, "--schema", "shop", "--suggest")
    assert doc["suggestions"] == []
    edges = {e["constraint"]: e for e in doc["graph"]["edges"]}
    assert edges["order_items_product_id_fkey"]["validated"] is True
    assert edges["orders_customer_id_fkey"]["to"] == "shop.customers"
    # Each suggested key came with the index its column lacked.
    for name in ("order_items_product_id_fkey", "orders_customer_id_fkey", "audit_log_customer_id_fkey"):
        assert edges[name]["indexed"] is True, name
    assert not [f for f in findings_of(doc, "unindexed_fk") if f["constraint"] in edges
                and f["constraint"].endswith("customer_id_fkey")]


HOSTILE = [
    "Mixed Case",
    "dotted.name",
    'quote"inside',
    "ünïcødé_tàble",
    "t" * 63,
]


def test_hostile_names(pg, direct, tmp_path):
    schema = "Odd.Schema"
    fresh_schema(direct, schema)
    s = ident(schema)
    parent = ident(HOSTILE[0])
    direct.execute(f"CREATE TABLE {s}.{parent} (id int PRIMARY KEY, a int, b int, UNIQUE (a, b))")
    for name in HOSTILE[1:]:
        direct.execute(f"CREATE TABLE {s}.{ident(name)} (id int PRIMARY KEY, x int, y int, "
                       f"\"Mixed Case_id\" int, "
                       f"FOREIGN KEY (x, y) REFERENCES {s}.{parent} (a, b) MATCH FULL ON DELETE SET NULL "
                       f"DEFERRABLE INITIALLY DEFERRED)")
    direct.execute("ANALYZE")
    doc = audit_json(pg, "--schema", schema, "--suggest", "--orphans")
    expected = {direct.execute("SELECT quote_ident(%s) || '.' || quote_ident(%s)", (schema, n)).fetchone()[0]
                for n in HOSTILE}
    assert {n["table"] for n in doc["graph"]["nodes"]} == expected
    assert doc["foreign_keys"] == len(HOSTILE) - 1
    for e in doc["graph"]["edges"]:
        assert e["columns"] == ["x", "y"] and e["ref_columns"] == ["a", "b"]
        assert e["deferrable"] is True and e["on_delete"] == "set null"
        assert e["indexed"] is False  # nothing indexes (x, y) on the referencing side
    # Mixed Case_id names the table "Mixed Case" (same type as its primary key): suggested for each.
    assert len(doc["suggestions"]) == len(HOSTILE) - 1
    names = [x["sql"].split("ADD CONSTRAINT ")[1].split(" FOREIGN KEY")[0] for x in doc["suggestions"]]
    assert len(set(names)) == len(names)
    for x in doc["suggestions"]:
        name = x["sql"].split('ADD CONSTRAINT "')[1].split('" FOREIGN KEY')[0].replace('""', '"')
        assert len(name.encode()) <= 63
    r = pgvalve("audit", "--schema", schema, "--format", "dot", pg=pg, check=0)
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=r.out, capture_output=True, text=True, timeout=60)
        assert svg.returncode == 0, svg.stderr
    sql = pgvalve("audit", "--schema", schema, "--format", "sql", pg=pg, check=0).out
    path = write_file(tmp_path, "hostile.sql", sql)
    assert pgvalve("plan", path, pg=pg).rc == 0
    assert pgvalve("apply", path, "--yes", "--watch", "0", pg=pg).rc == 0
    # PostgreSQL accepted every name as written: the 63-byte table's key name was cut as it cuts.
    count = direct.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = "
                           "%s::regnamespace", (ident(schema),)).fetchone()[0]
    assert count == 2 * (len(HOSTILE) - 1)
    r = pgvalve("audit", "--schema", schema, "--table", f'{s}."dotted.name"', "--format", "json", pg=pg, check=0)
    assert {n["table"] for n in json.loads(r.out)["graph"]["nodes"]} == {
        f'{s}."Mixed Case"', f'{s}."dotted.name"'}


def test_partitioned_tables_report_each_key_once(pg, direct):
    fresh_schema(direct, "parts")
    direct.execute("""
        SET search_path = parts;
        CREATE TABLE accounts (id int PRIMARY KEY);
        CREATE TABLE events (id int, account_id int REFERENCES accounts, at date NOT NULL,
                             PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        CREATE INDEX ON events (account_id);
        CREATE TABLE event_notes (id int PRIMARY KEY, event_id int, event_at date,
                                  FOREIGN KEY (event_id, event_at) REFERENCES events (id, at));
        INSERT INTO accounts SELECT generate_series(1, 10);
        INSERT INTO events SELECT g, 1 + g % 10, DATE '2025-06-01' + g FROM generate_series(1, 400) g;
        ANALYZE;
        RESET search_path;
    """)
    doc = audit_json(pg, "--schema", "parts")
    assert {n["table"] for n in doc["graph"]["nodes"]} == {"parts.accounts", "parts.events", "parts.event_notes"}
    assert doc["foreign_keys"] == 2
    edges = {(e["from"], e["to"]): e for e in doc["graph"]["edges"]}
    assert set(edges) == {("parts.events", "parts.accounts"), ("parts.event_notes", "parts.events")}
    assert edges[("parts.events", "parts.accounts")]["indexed"] is True
    assert {n["table"]: n["rows"] for n in doc["graph"]["nodes"]}["parts.events"] == 400


def test_schema_without_foreign_keys(pg, direct):
    fresh_schema(direct, "flat")
    direct.execute("CREATE TABLE flat.a (id int PRIMARY KEY); CREATE TABLE flat.b (id int PRIMARY KEY, note text)")
    doc = audit_json(pg, "--schema", "flat")
    assert (doc["tables"], doc["foreign_keys"], doc["graph"]["edges"], doc["findings"]) == (2, 0, [], [])
    assert doc["cycles"] == [] and doc["longest_chains"] == [] and doc["cascade_reach"] == {}
    r = pgvalve("audit", "--schema", "flat", pg=pg, check=0)
    assert "no foreign keys" in r.out
    fresh_schema(direct, "empty")
    assert audit_json(pg, "--schema", "empty")["tables"] == 0


def test_a_schema_the_role_cannot_read(pg, direct):
    fresh_schema(direct, "secret")
    direct.execute("CREATE TABLE secret.t (id int PRIMARY KEY)")
    direct.execute("DROP ROLE IF EXISTS audit_reader")
    direct.execute("CREATE ROLE audit_reader LOGIN PASSWORD 'reader-secret'")
    direct.execute("REVOKE ALL ON SCHEMA secret FROM PUBLIC")
    url = (f"postgresql://audit_reader:reader-secret@{harness.HOST}:{pg.port}/{harness.DATABASE}"
           f"?sslmode=disable")
    r = pgvalve("audit", "--schema", "secret", "--db", url, pg=pg)
    assert r.rc == 2, r
    assert 'permission denied for schema "secret"' in r.err and "GRANT USAGE" in r.err
    r = pgvalve("audit", "--schema", "nosuch", "--db", url, pg=pg)
    assert r.rc == 2 and 'schema "nosuch" does not exist' in r.err, r
    # Without --schema the unreadable schema is left out, with a warning naming it.
    r = pgvalve("audit", "--db", url, pg=pg)
    assert r.rc == 0, r
    assert 'schema "secret" left out' in r.err


def test_never_waits_behind_ddl_and_a_blocked_count_says_so(pg, shop):
    blocker = psycopg.connect(pg.dsn())
    try:
        blocker.execute("LOCK TABLE shop.order_items IN ACCESS EXCLUSIVE MODE")
        # The graph comes from the catalog only: no wait on the locked table.
        doc = audit_json(pg, "--schema", "shop")
        assert doc["tables"] == 12
        # Its orphan count needs the table: it gives up after its lock_timeout and says so.
        doc = audit_json(pg, "--schema", "shop", "--orphans")
        [f] = [f for f in findings_of(doc, "orphans") if f["constraint"] == "order_items_order_fk"]
        assert f["count"] is None and "could not count" in f["message"] and "lock timeout" in f["message"]
        assert f["severity"] == "warning" and "longer statement_timeout" in f["hint"]
    finally:
        blocker.rollback()
        blocker.close()


def test_audit_reads_only(pg, shop):
    before = shop.execute("SELECT count(*), sum(xmin::text::bigint) FROM pg_constraint").fetchone()
    pgvalve("audit", "--schema", "shop", "--orphans", "--suggest", pg=pg, check=0)
    assert shop.execute("SELECT count(*), sum(xmin::text::bigint) FROM pg_constraint").fetchone() == before


def test_plan_shows_what_references_each_table_and_where_a_cascade_goes(pg, shop, tmp_path):
    path = write_file(tmp_path, "fk.sql", 'ALTER TABLE shop.orders ADD CONSTRAINT orders_customer_fk '
                      'FOREIGN KEY (customer_id) REFERENCES shop.customers (id);\n')
    r = pgvalve("plan", path, "--format", "json", pg=pg, check=0)
    impact = {t["table"]: t for t in json.loads(r.out)["impact"]}
    assert set(impact) == {"shop.orders", "shop.customers"}
    orders = impact["shop.orders"]
    assert {x["constraint"] for x in orders["referenced_by"]} == {"order_items_order_fk", "payments_order_id_fkey"}
    assert sorted(orders["cascade_reach"]) == ["shop.order_items", "shop.payments"]
    assert orders["cascade_rows"] == 203 + 0
    assert impact["shop.customers"]["referenced_by"] == [] and impact["shop.customers"]["cascade_reach"] == []
    text = pgvalve("plan", path, pg=pg, check=0).out
    assert "Impact: the existing tables this migration touches" in text
    assert "shop.orders (~100 rows): referenced by 2 foreign key(s):" in text
    assert "a DELETE on it cascades to 2 table(s)" in text


def test_match_full_orphans_and_inheritance(pg, direct):
    fresh_schema(direct, "mf")
    direct.execute("""
        SET search_path = mf;
        CREATE TABLE regions (country text, code text, PRIMARY KEY (country, code));
        CREATE TABLE shops (id int PRIMARY KEY, country text, code text);
        CREATE INDEX ON shops (country, code);
        INSERT INTO regions VALUES ('de', 'be'), ('fr', 'idf');
        -- (de, be) is fine, (NULL, NULL) is exempt, (de, NULL) breaks MATCH FULL, (fr, xx) breaks both
        INSERT INTO shops VALUES (1, 'de', 'be'), (2, NULL, NULL), (3, 'de', NULL), (4, 'fr', 'xx');
        ALTER TABLE shops ADD CONSTRAINT shops_region_fk FOREIGN KEY (country, code) REFERENCES regions
            MATCH FULL NOT VALID;
        CREATE TABLE outlet_shops (extra int) INHERITS (shops);
        ANALYZE;
        RESET search_path;
    """)
    doc = audit_json(pg, "--schema", "mf", "--orphans")
    assert {n["table"] for n in doc["graph"]["nodes"]} == {"mf.regions", "mf.shops", "mf.outlet_shops"}
    # Inheritance children do not inherit foreign keys: one edge.
    [edge] = doc["graph"]["edges"]
    assert edge["indexed"] is True and edge["validated"] is False
    [f] = [f for f in findings_of(doc, "orphans") if f["constraint"] == "shops_region_fk"]
    assert f["count"] == 2 and sorted(f["samples"]) == ["(de,)", "(fr,xx)"]


def test_a_table_the_role_cannot_select_is_named_not_fatal(pg, shop):
    shop.execute("DROP ROLE IF EXISTS audit_counter")  # the fixture's fresh schema took its grants
    shop.execute("CREATE ROLE audit_counter LOGIN PASSWORD 'counter-secret'")
    shop.execute("GRANT USAGE ON SCHEMA shop TO audit_counter")
    shop.execute("GRANT SELECT ON shop.orders TO audit_counter")  # not order_items
    url = (f"postgresql://audit_counter:counter-secret@{harness.HOST}:{pg.port}/{harness.DATABASE}"
           f"?sslmode=disable")
    r = pgvalve("audit", "--schema", "shop", "--orphans", "--format", "json", "--db", url, pg=pg)
    assert r.rc == 0, r
    doc = json.loads(r.out)
    assert doc["foreign_keys"] == 8  # the catalog is readable whatever the table privileges
    [f] = [f for f in findings_of(doc, "orphans") if f["constraint"] == "order_items_order_fk"]
    assert f["count"] is None and "permission denied" in f["message"]
    assert "role that can read both tables" in f["hint"]
