-- pgbench script for bench/passthrough --workloads select-hot: pgbench's built-in
-- -S (select-only) transaction, but drawing aid from the first 1,000 accounts
-- instead of all 100,000 x scale. In simple-protocol mode pgbench writes the
-- value into the SQL text, so -S sends a different text almost every time and
-- an exact-text parse cache cannot hit; here only 1,000 texts recur, all of
-- which fit in the proxy's per-worker parse cache, so a hold run prices a cache
-- hit instead of a parse.
\set aid random(1, 1000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
