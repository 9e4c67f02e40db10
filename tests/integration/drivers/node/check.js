// Driver-compatibility check for node-postgres (the npm package `pg`, version pinned in
// package.json / package-lock.json beside this file), run by tests/integration/test_drivers.py
// with NODE_PATH pointing at a node_modules installed outside the repository (`npm ci`).
// It connects through pgvalve-proxy as scram_user, runs the scenario below and prints one JSON
// line of what it saw; the pytest test checks it against values read straight from
// PostgreSQL. Any unexpected failure: a message on stderr and exit status 1.
//
// Input (environment): PGV_HOST, PGV_PORT, PGV_USER, PGV_PASSWORD, PGV_DATABASE, PGV_PREFIX
// (table name prefix: <prefix>_items, <prefix>_big), PGV_BIG_UNIT and PGV_BIG_CHARS (the
// large value is PGV_BIG_UNIT repeated and cut to PGV_BIG_CHARS characters).
// Optional: PGV_SSLMODE (disable, the default; require: TLS without checking the certificate;
// verify-full: TLS checked against PGV_SSLROOTCERT, as a user with a CA file would set `ssl`),
// PGV_CHANNEL_BINDING=enable (pg's enableChannelBinding: SCRAM-SHA-256-PLUS when offered; off
// by default in pg), PGV_MODE=login (only log in: prints {"connected": true, ...} or the
// error's {"connected": false, "sqlstate", "message"} and exits 0; used for wrong passwords).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const { Client } = require('pg');

function env(name) {
  const v = process.env[name];
  if (v === undefined) throw new Error(`missing environment variable ${name}`);
  return v;
}

function bigValue(unit, chars) {
  const cps = Array.from(unit);
  const out = [];
  for (let i = 0; i < chars; i++) out.push(cps[i % cps.length]);
  return out.join('');
}

// pg's `ssl` option for PGV_SSLMODE.
function sslOption() {
  const mode = process.env.PGV_SSLMODE || 'disable';
  if (mode === 'disable') return false;
  if (mode === 'require') return { rejectUnauthorized: false };
  if (mode === 'verify-full') return { ca: fs.readFileSync(env('PGV_SSLROOTCERT')) };
  throw new Error(`PGV_SSLMODE ${mode}: expected disable, require or verify-full`);
}

function newClient() {
  return new Client({
    host: env('PGV_HOST'),
    port: Number(env('PGV_PORT')),
    user: env('PGV_USER'),
    password: env('PGV_PASSWORD'),
    database: env('PGV_DATABASE'),
    ssl: sslOption(),
    enableChannelBinding: process.env.PGV_CHANNEL_BINDING === 'enable',
    application_name: 'pgvalve-drivers-node',
    connectionTimeoutMillis: 10000,
    query_timeout: 60000,
  });
}

// What the session is: the driver's side of TLS and the server's (pg_stat_ssl of its backend).
async function tlsInfo(client) {
  const r = await client.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  const stream = client.connection.stream;
  return { client_tls: Boolean(stream && stream.encrypted), server_ssl: r.rows[0].ssl };
}

async function login() {
  const client = newClient();
  try {
    await client.connect();
  } catch (e) {
    if (e.code === undefined) throw e;
    return { connected: false, sqlstate: e.code, severity: e.severity, message: e.message };
  }
  try {
    const r = await client.query('SELECT current_user AS u');
    return { connected: true, current_user: r.rows[0].u, tls: await tlsInfo(client) };
  } finally {
    await client.end();
  }
}

async function main() {
  if (process.env.PGV_MODE === 'login') {
    process.stdout.write(JSON.stringify(await login()) + '\n');
    return;
  }
  const prefix = env('PGV_PREFIX');
  const items = `${prefix}_items`;
  const big = `${prefix}_big`;
  const client = newClient();
  await client.connect();
  // Errors not tied to a query (node-pg emits them on the client; unhandled, they kill the
  // process), e.g. an ErrorResponse that arrives after end() sent Terminate: recorded.
  const clientErrors = [];
  client.on('error', (e) => clientErrors.push({ code: e.code, severity: e.severity, message: e.message }));
  const result = { driver: 'node-pg', driver_version: require('pg/package.json').version };
  try {
    // 1. Simple query (no parameters: the simple Query protocol).
    let r = await client.query(
      "SELECT current_user, current_database() AS db, 6 * 7 AS answer, " +
      "current_setting('server_version_num') AS v");
    result.simple = {
      current_user: r.rows[0].current_user, database: r.rows[0].db,
      answer: r.rows[0].answer, server_version_num: r.rows[0].v,
    };
    result.tls = await tlsInfo(client);

    // 2. A named prepared statement, executed five times (Parse once, then Bind/Execute).
    const rows = [];
    for (let i = 0; i < 5; i++) {
      r = await client.query({
        name: 'pgvalve_prep',
        text: 'SELECT /* pgvalve-prep */ $1::int * 3 AS n, upper($2::text) AS s',
        values: [i, `prep-${i}`],
      });
      rows.push([r.rows[0].n, r.rows[0].s]);
    }
    r = await client.query(
      "SELECT name FROM pg_prepared_statements " +
      "WHERE NOT from_sql AND statement LIKE '%' || 'pgvalve' || '-prep%' ORDER BY name");
    result.prepared = { rows, server_statements: r.rows.map((x) => x.name) };

    // 3. Transaction with rollback.
    await client.query('BEGIN');
    for (let id = 1001; id <= 1003; id++) {
      await client.query(`INSERT INTO ${items} (id, v) VALUES ($1, $2)`, [id, 'rolled-back']);
    }
    r = await client.query(`SELECT count(*)::int AS n FROM ${items} WHERE id BETWEEN 1001 AND 1003`);
    const inTx = r.rows[0].n;
    await client.query('ROLLBACK');
    r = await client.query(`SELECT count(*)::int AS n FROM ${items} WHERE id BETWEEN 1001 AND 1003`);
    result.rollback = { in_transaction: inTx, after_rollback: r.rows[0].n };

    // 4. Unique violation: the SQLSTATE as pg reports it, then the connection is reused.
    await client.query(`INSERT INTO ${items} (id, v) VALUES ($1, $2)`, [1, 'first']);
    const unique = {};
    try {
      await client.query(`INSERT INTO ${items} (id, v) VALUES ($1, $2)`, [1, 'duplicate']);
      throw new Error('duplicate insert succeeded');
    } catch (e) {
      if (e.code === undefined) throw e;
      unique.sqlstate = e.code;
      unique.constraint = e.constraint;
      unique.table = e.table;
    }
    r = await client.query('SELECT $1::int AS one', [1]);
    unique.after_error = r.rows[0].one;
    await client.query(`INSERT INTO ${items} (id, v) VALUES ($1, $2)`, [2, 'after']);
    result.unique = unique;

    // 5. A 1 MB text value: inserted as a parameter, echoed, and read back.
    const value = bigValue(env('PGV_BIG_UNIT'), Number(env('PGV_BIG_CHARS')));
    await client.query(`INSERT INTO ${big} (id, body) VALUES ($1, $2)`, [1, value]);
    r = await client.query('SELECT $1::text AS echo', [value]);
    const echoEqual = r.rows[0].echo === value;
    r = await client.query(`SELECT body FROM ${big} WHERE id = $1`, [1]);
    const stored = r.rows[0].body;
    result.big = {
      sent_chars: Array.from(value).length,
      echo_equal: echoEqual,
      read_chars: Array.from(stored).length,
      read_equal: stored === value,
      read_sha256: crypto.createHash('sha256').update(stored, 'utf8').digest('hex'),
    };

    r = await client.query("SELECT 'done' AS d");
    result.final = r.rows[0].d;
  } finally {
    await client.end();
  }
  result.client_errors = clientErrors;
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  process.stderr.write(`node-pg check: ${e && e.stack ? e.stack : e}\n`);
  if (e && e.code) process.stderr.write(`SQLSTATE ${e.code}\n`);
  process.exit(1);
});
