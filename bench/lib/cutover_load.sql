-- bench/cutover's write load (pgbench -f, -D rows=N -D parents=N): one
-- single-statement transaction, half INSERTs of a child row with a valid
-- parent, half UPDATEs of a non-key column of an existing child row. Row 1 is
-- left alone: it is the row the 4-second transaction locks.
\set r random(1, 100)
\set pid random(1, :parents)
\set cid random(2, :rows)
\if :r <= 50
INSERT INTO child (parent_id, payload) VALUES (:pid, :r);
\else
UPDATE child SET payload = payload + 1 WHERE id = :cid;
\endif
