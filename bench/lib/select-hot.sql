-- pgbench script for bench/passthrough --workloads select-hot: pgbench's built-in
-- -S (select-only) transaction, but drawing aid from the first 1,000 accounts
-- instead of all 100,000 x scale. In simple-protocol mode pgbench writes the
-- value into the SQL text, so -S sends a different text almost every time; here
-- only 1,000 texts recur, all of which would fit in the proxy's per-worker parse
-- cache even if it were keyed by the exact text. Its key ignores literal values,
-- so -S hits as well; this workload stays as the case that any cache serves.
\set aid random(1, 1000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
