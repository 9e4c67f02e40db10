"""The online key type change (docs/architecture.md §4.9): `ALTER TABLE accounts ALTER COLUMN id
TYPE bigint` on a serial key referenced by three tables. plan shows the steps with their locks and
holds, adds the referencing columns a file leaves out and folds in those it names; every case it
cannot carry out yet is refused with the reason before anything changes."""

import json
import threading
import time

import psycopg
import pytest

import harness
import signal

from coordinator import finish, pgvalve, spawn, write_file

SCHEMA = """
DROP SCHEMA IF EXISTS pgvalve CASCADE;
DROP SCHEMA IF EXISTS other CASCADE;
DROP TABLE IF EXISTS profiles, big, pair, parted, payments, orders, sessions, accounts CASCADE;
CREATE SCHEMA other;
CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts ON DELETE CASCADE,
                     amount int NOT NULL);
CREATE INDEX orders_account_id_idx ON orders (account_id);
CREATE TABLE sessions (id serial PRIMARY KEY, account_id int REFERENCES accounts ON DELETE SET NULL);
CREATE TABLE other.payments (id serial PRIMARY KEY,
                             account_id int NOT NULL REFERENCES accounts ON UPDATE CASCADE ON DELETE CASCADE);
CREATE INDEX payments_account_idx ON other.payments (account_id, id);
"""


def fill(db, accounts=200):
    db.execute(f"INSERT INTO accounts (name) SELECT 'a' || g FROM generate_series(1, {accounts}) g")
    db.execute(f"INSERT INTO orders (account_id, amount) SELECT 1 + g % {accounts}, g "
               f"FROM generate_series(1, {accounts * 3}) g")
    db.execute(f"INSERT INTO sessions (account_id) SELECT CASE WHEN g % 5 = 0 THEN NULL ELSE 1 + g % {accounts} END "
               f"FROM generate_series(1, {accounts * 2}) g")
    db.execute(f"INSERT INTO other.payments (account_id) SELECT 1 + g % {accounts} "
               f"FROM generate_series(1, {accounts}) g")
    db.execute("ANALYZE")


@pytest.fixture
def db(pg):
    conn = harness.connect(pg.dsn())
    conn.autocommit = True
    conn.execute(SCHEMA)
    yield conn
    conn.close()


def plan(pg, tmp_path, text, check):
    path = write_file(tmp_path, "0007_bigint.sql", text)
    return pgvalve("plan", path, pg=pg, check=check)


def plan_json(pg, tmp_path, text):
    path = write_file(tmp_path, "0007_bigint.sql", text)
    r = pgvalve("plan", path, "--format", "json", pg=pg, check=0)
    return json.loads(r.out)


# --------------------------------------------------------------------------- plan

def test_plan_adds_the_referencing_columns_and_shows_each_step(pg, db, tmp_path):
    fill(db)
    r = plan(pg, tmp_path, "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n"
                           "ALTER TABLE orders ALTER COLUMN account_id TYPE bigint;\n", check=0)
    out = r.out
    # the file's line for orders is folded in; sessions and payments are added, and plan says so
    assert "folded into the key change of accounts" in out, out
    assert "also changes sessions.account_id (foreign key sessions_account_id_fkey)" in out, out
    assert "also changes other.payments.account_id (foreign key payments_account_id_fkey)" in out, out
    assert "which the file leaves out" in out
    # the steps, each with its lock and hold
    assert 'ADD COLUMN "id_pgvalve_new" bigint' in out
    assert 'ADD COLUMN "account_id_pgvalve_new" bigint' in out
    assert 'CREATE TRIGGER "zz_pgvalve_keychange"' in out
    assert 'UPDATE "public"."accounts" SET "id_pgvalve_new" = "id" WHERE ctid >= $1::tid' in out
    assert 'CREATE UNIQUE INDEX CONCURRENTLY "accounts_pkey_pgvalve_new" ON "public"."accounts"' in out
    assert ('CREATE INDEX CONCURRENTLY "payments_account_idx_pgvalve_new" ON "other"."payments" '
            'USING "btree" ("account_id_pgvalve_new", "id")') in out
    assert ('ADD CONSTRAINT "orders_account_id_fkey_pgvalve_new" FOREIGN KEY ("account_id_pgvalve_new") '
            'REFERENCES "public"."accounts" ("id_pgvalve_new") ON UPDATE NO ACTION ON DELETE CASCADE NOT VALID') in out
    assert 'ON UPDATE CASCADE ON DELETE CASCADE NOT VALID' in out  # payments keeps its actions
    assert 'ALTER SEQUENCE "public"."accounts_id_seq" AS bigint' in out
    assert 'ADD CONSTRAINT "accounts_pkey" PRIMARY KEY USING INDEX "accounts_pkey_pgvalve_new"' in out
    assert 'RENAME CONSTRAINT "orders_account_id_fkey_pgvalve_new" TO "orders_account_id_fkey"' in out
    assert "locks ACCESS EXCLUSIVE on public.accounts; holds all work on it" in out
    assert "no table lock that blocks reads or writes" in out  # the backfill
    # the whole plan: per phase, in order
    doc = plan_json(pg, tmp_path, "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n")
    steps = doc["steps"]
    kinds = [(s["phase"], s["kind"]) for s in steps]
    assert kinds.count(("prepare", "keychange_shadow")) == 4
    assert kinds.count(("prepare", "keychange_backfill")) == 4
    assert kinds.count(("prepare", "create_index")) == 3  # the key, orders' index, payments' index
    assert kinds.count(("cutover", "add_not_valid")) == 3
    assert kinds.count(("validate", "validate")) == 3 + 3  # the foreign keys, NOT NULL of accounts, orders, payments
    assert kinds.count(("finalize", "keychange_swap")) == 3 + 4
    phases = [s["phase"] for s in steps]
    assert phases == sorted(phases, key=["prepare", "cutover", "validate", "finalize"].index)
    for s in steps:
        if s["kind"] == "keychange_swap":
            assert s["hold"] == "all" and s["lock"] == "ACCESS EXCLUSIVE", s
        if s["kind"] == "add_not_valid":
            assert s["hold"] == "writes", s
    # nothing changed
    assert db.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                      "AND attname = 'id'").fetchone()[0] == "integer"
    assert db.execute("SELECT count(*) FROM pg_attribute WHERE attname LIKE '%pgvalve%'").fetchone()[0] == 0


def test_empty_tables_planned_and_applied_with_finalize(pg, db, tmp_path):
    r = plan(pg, tmp_path, "ALTER TABLE accounts ALTER COLUMN id TYPE int8;", check=0)
    assert "online key type change of 4 table(s), ~0 row(s)" in r.out, r.out
    r = pgvalve("apply", tmp_path / "0007_bigint.sql", "--watch", "0", "--finalize", pg=pg, check=0)
    assert "finalized" in r.out
    cols = columns(db)
    assert cols["accounts.id"] == "bigint" and cols["sessions.account_id"] == "bigint"
    assert not [c for c in cols if "pgvalve" in c]
    a = db.execute("INSERT INTO accounts (name) VALUES ('first') RETURNING id").fetchone()[0]
    db.execute("INSERT INTO orders (account_id, amount) VALUES (%s, 1)", (a,))


REFUSALS = [
    ("ALTER TABLE accounts ALTER COLUMN name TYPE bigint;", "", "is text, not an integer key"),
    ("ALTER TABLE orders ALTER COLUMN amount TYPE bigint;", "", "is not the primary key of orders"),
    ("ALTER TABLE orders ALTER COLUMN account_id TYPE bigint;", "",
     "it references accounts.id, which this file does not change"),
    ("ALTER TABLE big ALTER COLUMN id TYPE bigint;", "CREATE TABLE big (id bigserial PRIMARY KEY);",
     "big.id is bigint already"),
    ("ALTER TABLE pair ALTER COLUMN a TYPE bigint;", "CREATE TABLE pair (a int, b int, PRIMARY KEY (a, b));",
     "part of a composite primary key"),
    ("ALTER TABLE parted ALTER COLUMN id TYPE bigint;",
     "CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id);", "parted is a partitioned table"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;", "CREATE VIEW account_names AS SELECT id, name FROM accounts;",
     "view account_names reads a changed column of accounts"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;",
     "CREATE MATERIALIZED VIEW order_totals AS SELECT account_id, sum(amount) FROM orders GROUP BY 1;",
     "materialized view order_totals reads a changed column of orders"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;",
     "CREATE POLICY own ON sessions USING (account_id = 1);", "policy own on table sessions depends"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;", "CREATE PUBLICATION pub FOR TABLE orders;",
     "publication pub publishes orders"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;",
     "ALTER TABLE orders ADD COLUMN twice bigint GENERATED ALWAYS AS (account_id * 2) STORED;",
     "a generated column"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;",
     "CREATE INDEX orders_expr ON orders ((account_id + 1));", "index orders_expr on orders has an expression"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;",
     "CREATE TABLE profiles (account_id int PRIMARY KEY REFERENCES accounts);",
     "the primary key profiles_pkey of profiles contains a referencing column"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;",
     "ALTER TABLE orders ADD CONSTRAINT positive CHECK (account_id > 0);",
     "constraint positive on table orders depends on a changed column"),
    ("ALTER TABLE accounts ALTER COLUMN id TYPE bigint;",
     "CREATE TRIGGER t BEFORE UPDATE OF account_id ON orders FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();",
     "trigger t on table orders depends on a changed column"),
]


@pytest.mark.parametrize("stmt,setup,why", REFUSALS, ids=[r[2][:30] for r in REFUSALS])
def test_refusals_name_the_reason_and_change_nothing(pg, db, tmp_path, stmt, setup, why):
    if setup:
        db.execute(setup)
    before = db.execute("SELECT count(*) FROM pg_class").fetchone()[0]
    r = plan(pg, tmp_path, stmt + "\n", check=1)
    assert why in r.err, r.err
    assert "0007_bigint.sql:1:" in r.err
    r = pgvalve("apply", tmp_path / "0007_bigint.sql", pg=pg, check=1)
    assert why in r.err, r.err
    assert db.execute("SELECT count(*) FROM pg_class").fetchone()[0] == before
    db.execute("DROP PUBLICATION IF EXISTS pub")


def test_refused_without_the_trigger_privilege(pg, db, tmp_path):
    db.execute("DROP ROLE IF EXISTS kc_owner")
    db.execute("CREATE ROLE kc_owner LOGIN PASSWORD 'kc'")
    db.execute("GRANT CREATE, USAGE ON SCHEMA public TO kc_owner")
    db.execute("ALTER TABLE accounts OWNER TO kc_owner")
    db.execute("ALTER TABLE orders OWNER TO kc_owner")
    db.execute("ALTER TABLE sessions OWNER TO kc_owner")
    db.execute("ALTER TABLE other.payments OWNER TO kc_owner")
    path = write_file(tmp_path, "0007_bigint.sql", "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n")
    r = pgvalve("plan", path, "--db", url_for(pg, "kc_owner", "kc"), pg=pg, check=0)
    assert "online key type change" in r.out
    db.execute("REVOKE TRIGGER ON orders FROM kc_owner")
    r = pgvalve("plan", path, "--db", url_for(pg, "kc_owner", "kc"), pg=pg, check=1)
    assert "lacks the TRIGGER privilege on orders" in r.err, r.err
    db.execute(SCHEMA)
    db.execute("DROP OWNED BY kc_owner; DROP ROLE kc_owner")


def url_for(pg, user, password):
    return f"postgresql://{user}:{password}@{harness.HOST}:{pg.port}/{harness.DATABASE}?sslmode=disable"


# --------------------------------------------------------------------------- apply

def columns(db):
    """{table.column: type} of the columns the change touches, and any pgvalve leftovers."""
    rows = db.execute("SELECT attrelid::regclass::text || '.' || attname, format_type(atttypid, NULL) "
                      "FROM pg_attribute WHERE attrelid IN ('accounts'::regclass, 'orders'::regclass, "
                      "'sessions'::regclass, 'other.payments'::regclass) AND attnum > 0 AND NOT attisdropped")
    return dict(rows.fetchall())


def names(db):
    """Constraint and index names of the four tables, with their definitions."""
    cons = db.execute("SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                      "WHERE conrelid IN ('accounts'::regclass, 'orders'::regclass, 'sessions'::regclass, "
                      "'other.payments'::regclass) ORDER BY 1, 2").fetchall()
    idx = db.execute("SELECT indrelid::regclass::text, indexrelid::regclass::text FROM pg_index "
                     "WHERE indrelid IN ('accounts'::regclass, 'orders'::regclass, 'sessions'::regclass, "
                     "'other.payments'::regclass) ORDER BY 1, 2").fetchall()
    return cons, idx


class Load:
    """Writers through the proxy while the key changes: INSERT with the default, COPY, INSERT with
    explicit ids then UPDATE of the key (cascading to payments), DELETE cascading to orders and payments and
    setting sessions' key to NULL. Every statement is prepared on the server (prepare_threshold 0):
    the proxy re-prepares those cached before each row type change (statement refresh, §4.9)."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors = []
        self.created = {}  # account id -> (orders, sessions, payments) it was given
        self.moved = {}  # explicit id -> the id its key was updated to
        self.deleted = set()
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self.inserts, self.inserts, self.explicit_ids, self.deletes)]
        self.n = 0

    def conn(self):
        c = psycopg.connect(self.proxy.dsn(), autocommit=True, prepare_threshold=0)
        return c

    def run(self, body):
        try:
            c = self.conn()
        except Exception as e:
            self.errors.append(repr(e))
            return
        while not self.stop.is_set():
            try:
                body(c)
            except Exception as e:  # every client error counts
                self.errors.append(repr(e))
            time.sleep(0.005)
        c.close()

    def inserts(self):
        def body(c):
            a = c.execute("INSERT INTO accounts (name) VALUES ('load') RETURNING id").fetchone()[0]
            c.execute("INSERT INTO orders (account_id, amount) VALUES (%s, 1), (%s, 2)", (a, a))
            with c.cursor().copy("COPY orders (account_id, amount) FROM STDIN") as cp:
                cp.write_row((a, 3))
            c.execute("INSERT INTO sessions (account_id) VALUES (%s)", (a,))
            c.execute("INSERT INTO other.payments (account_id) VALUES (%s)", (a,))
            with self.lock:
                self.created[a] = (3, 1, 1)
        self.run(body)

    def explicit_ids(self):
        def body(c):
            with self.lock:
                self.n += 1
                a = 10_000_000 + self.n
            c.execute("INSERT INTO accounts (id, name) VALUES (%s, 'explicit')", (a,))
            c.execute("INSERT INTO other.payments (account_id) VALUES (%s), (%s)", (a, a))
            c.execute("UPDATE accounts SET id = id + 10000000 WHERE id = %s", (a,))
            with self.lock:
                self.moved[a] = a + 10_000_000
        self.run(body)

    def deletes(self):
        def body(c):
            with self.lock:
                victims = [a for a in self.created if a not in self.deleted][:1]
            if not victims:
                return
            c.execute("DELETE FROM accounts WHERE id = %s", (victims[0],))
            with self.lock:
                self.deleted.add(victims[0])
        self.run(body)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def check(self, db):
        """Every row the writers wrote is there as written; nothing they deleted is."""
        assert self.errors == [], self.errors[:5]
        assert len(self.created) > 0 and len(self.moved) > 0 and len(self.deleted) > 0
        for a, (orders, sessions, payments) in self.created.items():
            got = db.execute("SELECT (SELECT count(*) FROM accounts WHERE id = %s), "
                             "(SELECT count(*) FROM orders WHERE account_id = %s), "
                             "(SELECT count(*) FROM sessions WHERE account_id = %s), "
                             "(SELECT count(*) FROM other.payments WHERE account_id = %s)",
                             (a, a, a, a)).fetchone()
            assert got == ((0, 0, 0, 0) if a in self.deleted else (1, orders, sessions, payments)), (a, got)
        for old, new in self.moved.items():
            got = db.execute("SELECT (SELECT count(*) FROM accounts WHERE id = %s), "
                             "(SELECT count(*) FROM accounts WHERE id = %s), "
                             "(SELECT count(*) FROM other.payments WHERE account_id = %s)",
                             (old, new, new)).fetchone()
            assert got == (0, 1, 2), (old, new, got)


def admin(proxy):
    return f"http://{harness.HOST}:{proxy.admin_port}"


def test_apply_under_load_keeps_every_row_and_every_name(pg, db, proxy, tmp_path):
    fill(db)
    cons_before, idx_before = names(db)
    orders_before = db.execute("SELECT count(*) FROM orders WHERE id <= 600").fetchone()[0]
    load = Load(proxy)
    load.start()
    path = write_file(tmp_path, "0007_bigint.sql", "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n"
                                                 "ALTER TABLE orders ALTER COLUMN account_id TYPE bigint;\n")
    r = pgvalve("apply", path, "--proxy", admin(proxy), "--watch", "2", "--backfill-batch", "50",
                "--backfill-rate", "400", pg=pg)
    time.sleep(1)  # writes after the swap too
    load.finish()
    assert r.rc == 0, r
    assert "backfill of public.accounts done" in r.out

    load.check(db)
    cols = columns(db)
    for c in ("accounts.id", "orders.account_id", "sessions.account_id", "other.payments.account_id"):
        assert cols[c] == "bigint", cols
    # names as before: every constraint and index with the same name and definition
    cons_after, idx_after = names(db)
    assert cons_after == cons_before
    assert [i for i in idx_after if "pgvalve" not in i[1]] == idx_before
    assert db.execute("SELECT pg_get_serial_sequence('accounts', 'id')").fetchone()[0] == "public.accounts_id_seq"
    assert db.execute("SELECT format_type(seqtypid, NULL) FROM pg_sequence "
                      "WHERE seqrelid = 'accounts_id_seq'::regclass").fetchone()[0] == "bigint"
    # the old columns keep following the new ones until finalize
    assert cols["accounts.id_pgvalve_old"] == "integer"
    assert db.execute("SELECT count(*) FROM accounts WHERE id_pgvalve_old IS DISTINCT FROM id").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM orders WHERE account_id_pgvalve_old IS DISTINCT FROM account_id"
                      ).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM orders WHERE id <= 600").fetchone()[0] <= orders_before
    # a row written now gets a bigint key beyond int4 and the old column NULL
    db.execute("SELECT setval('accounts_id_seq', 3000000000)")
    a = db.execute("INSERT INTO accounts (name) VALUES ('big') RETURNING id").fetchone()[0]
    assert a == 3000000001
    db.execute("INSERT INTO orders (account_id, amount) VALUES (%s, 1)", (a,))
    # status says the migration waits for finalize; finalize drops the old columns and triggers
    mig = db.execute("SELECT id FROM pgvalve.migrations").fetchone()[0]
    r = pgvalve("status", pg=pg, check=0)
    assert f"until `pgvalve finalize {mig}`" in r.out, r.out
    assert json.loads(pgvalve("status", mig, "--format", "json", pg=pg, check=0).out)["waiting_for_finalize"]
    r = pgvalve("finalize", mig, "--proxy", admin(proxy), pg=pg, check=0)
    assert "finalized" in r.out
    assert not [c for c in columns(db) if "pgvalve" in c]
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'zz_pgvalve_keychange'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'keychange%'").fetchone()[0] == 0
    cons_final, idx_final = names(db)
    assert cons_final == cons_before and idx_final == idx_before
    assert "finalize" not in pgvalve("status", pg=pg, check=0).out
    pgvalve("finalize", mig, pg=pg, check=1)  # once only


def backfill_position(db):
    try:
        return db.execute("SELECT coalesce(sum(next_block), 0), coalesce(sum(rows_done), 0) "
                          "FROM pgvalve.keychange_backfill").fetchone()
    except psycopg.errors.UndefinedTable:
        return (0, 0)


def kill_during_the_backfill(db, p):
    """Waits until the spawned apply `p` has backfilled a page, then kills it (SIGKILL: it cleans
    nothing up) and reaps it."""
    harness.wait_for(lambda: backfill_position(db)[0] > 0, 120, what="the backfill to be under way")
    p.send_signal(signal.SIGKILL)
    finish(p)


def test_killed_during_the_backfill_then_resumed(pg, db, proxy, tmp_path):
    fill(db, accounts=2000)
    load = Load(proxy)
    load.start()
    path = write_file(tmp_path, "0007_bigint.sql", "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n")
    p = spawn("apply", path, "--proxy", admin(proxy), "--watch", "0", "--backfill-batch", "100",
              "--backfill-rate", "300", pg=pg)
    kill_during_the_backfill(db, p)
    pages, rows = backfill_position(db)
    assert rows > 0
    r = pgvalve("recover", "--resume", "--proxy", admin(proxy), "--watch", "0", "--backfill-batch", "1000", pg=pg)
    load.finish()
    assert r.rc == 0, r
    assert "resumes at page" in r.out, r.out
    load.check(db)
    cols = columns(db)
    assert cols["accounts.id"] == "bigint" and cols["orders.account_id"] == "bigint"
    assert db.execute("SELECT count(*) FROM accounts WHERE id_pgvalve_old IS DISTINCT FROM id").fetchone()[0] == 0
    assert db.execute("SELECT state FROM pgvalve.migrations").fetchone()[0] == "committed"


def test_killed_during_the_backfill_then_rolled_back(pg, db, proxy, tmp_path):
    fill(db, accounts=2000)
    cons_before, idx_before = names(db)
    cols_before = columns(db)
    load = Load(proxy)
    load.start()
    path = write_file(tmp_path, "0007_bigint.sql", "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n")
    p = spawn("apply", path, "--proxy", admin(proxy), "--watch", "0", "--backfill-batch", "100",
              "--backfill-rate", "300", pg=pg)
    kill_during_the_backfill(db, p)
    r = pgvalve("recover", "--rollback", "--proxy", admin(proxy), pg=pg)
    time.sleep(0.5)  # writes after the rollback too
    load.finish()
    assert r.rc == 3, r  # rolled back
    load.check(db)
    assert columns(db) == cols_before
    assert names(db) == (cons_before, idx_before)
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'zz_pgvalve_keychange'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'keychange%'").fetchone()[0] == 0
    assert db.execute("SELECT state FROM pgvalve.migrations").fetchone()[0] == "rolled_back"


def test_rollback_after_the_swap_keeps_the_rows_written_since(pg, db, proxy, tmp_path):
    fill(db)
    cons_before, idx_before = names(db)
    cols_before = columns(db)
    load = Load(proxy)
    load.start()
    path = write_file(tmp_path, "0007_bigint.sql", "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n")
    pgvalve("apply", path, "--proxy", admin(proxy), "--watch", "0", pg=pg, check=0)
    mig = db.execute("SELECT id FROM pgvalve.migrations").fetchone()[0]
    harness.wait_for(lambda: db.execute("SELECT count(*) FROM accounts WHERE id_pgvalve_old IS NOT NULL "
                                        "AND name = 'load' AND id > (SELECT max(id) FROM accounts WHERE "
                                        "name = 'load') - 5").fetchone()[0] > 0, 30,
                     what="rows written after the swap")
    time.sleep(1)  # more writes of every kind after the swap
    r = pgvalve("rollback", mig, "--proxy", admin(proxy), pg=pg)
    time.sleep(0.5)  # and after the swap back
    load.finish()
    assert r.rc == 3, r
    assert "swapped back" in r.out, r.out
    load.check(db)
    assert columns(db) == cols_before
    assert names(db) == (cons_before, idx_before)
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'zz_pgvalve_keychange'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'keychange%'").fetchone()[0] == 0
    assert db.execute("SELECT format_type(seqtypid, NULL) FROM pg_sequence "
                      "WHERE seqrelid = 'accounts_id_seq'::regclass").fetchone()[0] == "integer"
    assert db.execute("SELECT pg_get_serial_sequence('accounts', 'id')").fetchone()[0] == "public.accounts_id_seq"
    assert db.execute("SELECT state FROM pgvalve.migrations").fetchone()[0] == "rolled_back"
    a = db.execute("INSERT INTO accounts (name) VALUES ('after') RETURNING id").fetchone()[0]
    db.execute("INSERT INTO orders (account_id, amount) VALUES (%s, 1)", (a,))


def test_rollback_after_the_swap_refused_when_a_key_no_longer_fits(pg, db, tmp_path):
    fill(db)
    path = write_file(tmp_path, "0007_bigint.sql", "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n")
    pgvalve("apply", path, "--watch", "0", pg=pg, check=0)
    mig = db.execute("SELECT id FROM pgvalve.migrations").fetchone()[0]
    db.execute("SELECT setval('accounts_id_seq', 3000000000)")
    a = db.execute("INSERT INTO accounts (name) VALUES ('big') RETURNING id").fetchone()[0]
    assert db.execute("SELECT id_pgvalve_old FROM accounts WHERE id = %s", (a,)).fetchone()[0] is None
    r = pgvalve("rollback", mig, pg=pg)
    assert r.rc not in (0, 3), r
    assert "1 row(s) written since the swap hold keys beyond the old type" in r.err, r
    assert db.execute("SELECT state FROM pgvalve.migrations").fetchone()[0] == "committed"
    assert columns(db)["accounts.id"] == "bigint"
    pgvalve("finalize", mig, pg=pg, check=0)


def test_self_reference_and_a_bigint_referencing_column(pg, db, tmp_path):
    """A tree (parent_id references the key of its own table) and a referencing column that is
    bigint already (only its foreign key moves)."""
    db.execute("CREATE TABLE nodes (id serial PRIMARY KEY, parent_id int REFERENCES nodes, label text)")
    db.execute("CREATE TABLE notes (id serial PRIMARY KEY, node_id bigint NOT NULL REFERENCES nodes)")
    db.execute("INSERT INTO nodes (parent_id, label) VALUES (NULL, 'root')")
    db.execute("INSERT INTO nodes (parent_id, label) SELECT 1, 'n' || g FROM generate_series(1, 50) g")
    db.execute("INSERT INTO notes (node_id) SELECT 1 + g % 51 FROM generate_series(1, 100) g")
    cons_before = db.execute("SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                             "WHERE conrelid IN ('nodes'::regclass, 'notes'::regclass) ORDER BY 1, 2").fetchall()
    path = write_file(tmp_path, "0008_nodes.sql", "ALTER TABLE nodes ALTER COLUMN id TYPE bigint;\n")
    r = pgvalve("plan", path, pg=pg, check=0)
    assert "also changes nodes.parent_id (foreign key nodes_parent_id_fkey)" in r.out, r.out
    assert "bigint already: only its foreign key moves" in r.out
    pgvalve("apply", path, "--watch", "0", "--finalize", pg=pg, check=0)
    types = dict(db.execute("SELECT attname, format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = "
                            "'nodes'::regclass AND attnum > 0 AND NOT attisdropped").fetchall())
    assert types == {"id": "bigint", "parent_id": "bigint", "label": "text"}
    cons_after = db.execute("SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                            "WHERE conrelid IN ('nodes'::regclass, 'notes'::regclass) ORDER BY 1, 2").fetchall()
    assert cons_after == cons_before
    assert db.execute("SELECT count(*) FROM nodes WHERE parent_id = 1").fetchone()[0] == 50
    db.execute("INSERT INTO notes (node_id) VALUES (51)")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute("INSERT INTO notes (node_id) VALUES (999)")
    db.execute("DROP TABLE notes, nodes")


def test_rollback_after_the_swap_of_two_keys_swaps_both_back(pg, db, tmp_path):
    """One migration that changes two unrelated keys is swapped back key by key, each recorded."""
    fill(db)
    db.execute("CREATE TABLE nodes (id serial PRIMARY KEY, parent_id int REFERENCES nodes, label text)")
    db.execute("INSERT INTO nodes (parent_id, label) VALUES (NULL, 'root')")
    db.execute("INSERT INTO nodes (parent_id, label) SELECT 1, 'n' || g FROM generate_series(1, 50) g")
    cols_before = columns(db)
    path = write_file(tmp_path, "0009_two.sql", "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;\n"
                      "ALTER TABLE nodes ALTER COLUMN id TYPE bigint;\n")
    pgvalve("apply", path, "--watch", "0", pg=pg, check=0)
    mig = db.execute("SELECT id FROM pgvalve.migrations").fetchone()[0]
    types = dict(db.execute("SELECT attrelid::regclass::text, format_type(atttypid, NULL) FROM pg_attribute "
                            "WHERE attrelid IN ('accounts'::regclass, 'nodes'::regclass) AND attname = 'id'"))
    assert types == {"accounts": "bigint", "nodes": "bigint"}
    r = pgvalve("rollback", mig, pg=pg)
    assert r.rc == 3, r
    assert r.out.count("swapped back") >= 2, r.out
    assert db.execute("SELECT count(*) FROM pgvalve.keychange_unswapped WHERE migration_id = %s",
                      (mig,)).fetchone()[0] == 2
    types = dict(db.execute("SELECT attrelid::regclass::text, format_type(atttypid, NULL) FROM pg_attribute "
                            "WHERE attrelid IN ('accounts'::regclass, 'nodes'::regclass) AND attname = 'id'"))
    assert types == {"accounts": "integer", "nodes": "integer"}
    assert columns(db) == cols_before
    assert db.execute("SELECT count(*) FROM pg_attribute WHERE attname LIKE '%pgvalve%' AND NOT attisdropped "
                      "AND attrelid IN ('accounts'::regclass, 'nodes'::regclass)").fetchone()[0] == 0


def test_plan_names_the_update_triggers_the_backfill_fires(pg, db, tmp_path):
    """A row-level UPDATE trigger with no column list fires for every backfilled row: plan says so
    (one with a column list, or a statement-level one, does not fire and is not named)."""
    db.execute("CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$")
    db.execute("CREATE TRIGGER touch_orders BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()")
    db.execute("CREATE TRIGGER amount_only BEFORE UPDATE OF amount ON orders FOR EACH ROW EXECUTE FUNCTION touch()")
    db.execute("CREATE TRIGGER per_statement AFTER UPDATE ON sessions EXECUTE FUNCTION touch()")
    r = plan(pg, tmp_path, "ALTER TABLE accounts ALTER COLUMN id TYPE bigint;", check=0)
    assert "the backfill updates every row of orders, which fires its UPDATE trigger(s) touch_orders" in r.out, r.out
    assert "amount_only" not in r.out and "per_statement" not in r.out, r.out
    assert "every row of sessions" not in r.out and "every row of accounts" not in r.out, r.out
