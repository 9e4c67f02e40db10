-- bench/keychange's write load (pgbench -f, -D rows=N -D parents=N): one
-- transaction that inserts a parent (its key from the serial default) and one
-- row referencing it in each of the three tables, then updates an existing
-- orders row. Every committed transaction leaves exactly one 'load' parent
-- with one row in each referencing table: what keychange_run.py checks.
\set cid random(1, :rows)
BEGIN;
INSERT INTO parent (name) VALUES ('load') RETURNING id AS pid \gset
INSERT INTO orders (parent_id, payload) VALUES (:pid, 1);
INSERT INTO sessions (parent_id, payload) VALUES (:pid, 1);
INSERT INTO payments (parent_id, payload) VALUES (:pid, 1);
UPDATE orders SET payload = payload + 1 WHERE id = :cid;
END;
