"""Schemas for the `pgvalve audit` integration tests, each in a schema of its own so the tests
share one cluster without seeing each other's tables: a shop with one planted problem of every
kind the audit reports, hostile names, partitioned tables, and a schema without foreign keys."""

import json

from coordinator import pgvalve


def ident(name):
    """`name` as a quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def fresh_schema(db, schema):
    db.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")
    db.execute(f"CREATE SCHEMA {ident(schema)}")


# Every finding kind, planted once: (kind, table it is reported on).
SHOP_FINDINGS = {
    ("unindexed_fk", "shop.orders"),
    ("type_mismatch", "shop.payments"),
    ("not_valid", "shop.order_items"),
    ("cycle", "shop.employees"),        # a self-reference
    ("cycle", "shop.left_side"),        # two tables referencing each other
    ("cascade_fanout", "shop.tenants"),
    ("missing_unique", "shop.codes"),   # referenced through a unique index only
    ("no_primary_key", "shop.audit_log"),
    ("orphans", "shop.order_items"),    # rows the NOT VALID key does not hold
}


def create_shop(db, schema="shop"):
    """A small shop with one problem of each kind, three missing foreign keys (one with orphans,
    planted), and 200 order items."""
    fresh_schema(db, schema)
    s = ident(schema)
    db.execute(f"""
        SET search_path = {s};
        CREATE TABLE tenants (id bigint PRIMARY KEY, name text);
        CREATE TABLE customers (id int PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE,
                                name text);
        CREATE INDEX ON customers (tenant_id);
        CREATE TABLE orders (id int PRIMARY KEY, tenant_id bigint REFERENCES tenants ON DELETE CASCADE,
                             customer_id int);
        CREATE TABLE order_items (id int PRIMARY KEY, order_id int, product_id int, qty int);
        CREATE INDEX ON order_items (order_id);
        CREATE TABLE products (id int PRIMARY KEY, code text);
        CREATE TABLE payments (id int PRIMARY KEY, order_id bigint REFERENCES orders ON DELETE CASCADE);
        CREATE INDEX ON payments (order_id);
        CREATE TABLE employees (id int PRIMARY KEY, manager_id int REFERENCES employees);
        CREATE INDEX ON employees (manager_id);
        CREATE TABLE left_side (id int PRIMARY KEY, right_side_ref int);
        CREATE TABLE right_side (id int PRIMARY KEY, left_ref int REFERENCES left_side);
        ALTER TABLE left_side ADD FOREIGN KEY (right_side_ref) REFERENCES right_side;
        CREATE INDEX ON left_side (right_side_ref);
        CREATE INDEX ON right_side (left_ref);
        CREATE TABLE codes (id int PRIMARY KEY, code text NOT NULL);
        CREATE UNIQUE INDEX codes_code ON codes (code);
        CREATE TABLE labels (id int PRIMARY KEY, code text REFERENCES codes (code));
        CREATE INDEX ON labels (code);
        CREATE TABLE audit_log (at timestamptz, customer_id int);
        INSERT INTO tenants VALUES (1, 'one'), (2, 'two');
        INSERT INTO customers SELECT g, 1 + g % 2, 'c' || g FROM generate_series(1, 50) g;
        INSERT INTO orders SELECT g, 1 + g % 2, 1 + g % 50 FROM generate_series(1, 100) g;
        INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 20) g;
        INSERT INTO order_items SELECT g, 1 + g % 100, 1 + g % 20, 1 FROM generate_series(1, 200) g;
        -- planted: items whose order and product do not exist
        INSERT INTO order_items VALUES (1001, 5001, 9001, 1), (1002, 5002, 9002, 1), (1003, NULL, 3, 1);
        ALTER TABLE order_items ADD CONSTRAINT order_items_order_fk FOREIGN KEY (order_id)
            REFERENCES orders ON DELETE CASCADE NOT VALID;
        INSERT INTO audit_log SELECT now(), 1 + g % 50 FROM generate_series(1, 30) g;
        ANALYZE;
        RESET search_path;
    """)


def audit_json(pg, *args, check=0):
    r = pgvalve("audit", "--format", "json", *args, pg=pg, check=check)
    return json.loads(r.out)


def findings_of(doc, kind):
    return [f for f in doc["findings"] if f["kind"] == kind]
