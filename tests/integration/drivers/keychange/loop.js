// The prepared-statement loop of tests/integration/test_keychange_drivers.py for node-postgres
// (docs/architecture.md §4.9, statement refresh): one client, named statements (pg's
// {name, text, values}: Parse once, then Bind/Describe portal/Execute each time), run until
// the file PGV_STOP exists while the table's key changes type. Every value read is compared
// with the value written. Prints one JSON line:
// {"iterations", "errors", "first_errors", "mismatches", "first_mismatches"}.
// Input: PGV_HOST, PGV_PORT, PGV_USER, PGV_PASSWORD, PGV_DATABASE, PGV_TABLE, PGV_STOP, PGV_TAG
// (the prefix of the values it writes), PGV_PROGRESS (a file it writes its iteration count to);
// NODE_PATH names a node_modules with `pg` (test_drivers.node_command installs it).
'use strict';

const fs = require('fs');
const { Client } = require('pg');

function env(name) {
  const v = process.env[name];
  if (v === undefined) throw new Error(`missing environment variable ${name}`);
  return v;
}

async function main() {
  const t = env('PGV_TABLE');
  const stop = env('PGV_STOP');
  const tag = env('PGV_TAG');
  const progress = env('PGV_PROGRESS');
  const c = new Client({ host: env('PGV_HOST'), port: Number(env('PGV_PORT')), user: env('PGV_USER'),
                         password: env('PGV_PASSWORD'), database: env('PGV_DATABASE'), ssl: false });
  await c.connect();
  const out = { iterations: 0, errors: 0, mismatches: 0, first_errors: [], first_mismatches: [] };
  const miss = (what) => { out.mismatches++; if (out.first_mismatches.length < 5) out.first_mismatches.push(what); };
  while (!fs.existsSync(stop)) {
    out.iterations++;
    const v = `${tag}-${out.iterations}`;
    try {
      const ins = await c.query({ name: 'kc_ins', text: `INSERT INTO ${t} (v) VALUES ($1) RETURNING id`, values: [v] });
      const id = Number(ins.rows[0].id);
      const sel = await c.query({ name: 'kc_sel', text: `SELECT id, v FROM ${t} WHERE id = $1`, values: [id] });
      if (sel.rows.length !== 1 || Number(sel.rows[0].id) !== id || sel.rows[0].v !== v) miss(`select ${id} ${v}`);
      const v2 = `${v}-u`;
      const upd = await c.query({ name: 'kc_upd', text: `UPDATE ${t} SET v = $1 WHERE id = $2`, values: [v2, id] });
      if (upd.rowCount !== 1) miss(`update ${id}`);
      const star = await c.query({ name: 'kc_star', text: `SELECT * FROM ${t} WHERE id = $1`, values: [id] });
      if (star.rows.length !== 1 || Number(star.rows[0].id) !== id || star.rows[0].v !== v2) miss(`select * ${id} ${v2}`);
    } catch (e) {
      out.errors++;
      if (out.first_errors.length < 5) out.first_errors.push(`${e.code} ${e.message}`);
    }
    fs.writeFileSync(progress, String(out.iterations));
    await new Promise((r) => setTimeout(r, 5));
  }
  await c.end();
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
