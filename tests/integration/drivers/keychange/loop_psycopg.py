"""The prepared-statement loop of tests/integration/test_keychange_drivers.py for psycopg 3
(docs/architecture.md §4.9, statement refresh): one connection with psycopg's default
prepare_threshold (a query is prepared on the server at its fifth execution), results in text,
or in binary with PGV_BINARY=1, run until the file PGV_STOP exists while the table's key
changes type. Every value read is compared with the value written. Prints one JSON line:
{"iterations", "errors", "first_errors", "mismatches", "first_mismatches"}.
Input: PGV_HOST, PGV_PORT, PGV_USER, PGV_PASSWORD, PGV_DATABASE, PGV_TABLE, PGV_STOP, PGV_TAG
(the prefix of the values it writes), PGV_PROGRESS (a file it writes its iteration count to)."""

import json
import os
import time

import psycopg

env = os.environ
t, stop = env["PGV_TABLE"], env["PGV_STOP"]
binary = env.get("PGV_BINARY") == "1"
tag = env["PGV_TAG"]
progress = env["PGV_PROGRESS"]
conn = psycopg.connect(host=env["PGV_HOST"], port=env["PGV_PORT"], user=env["PGV_USER"],
                       password=env["PGV_PASSWORD"], dbname=env["PGV_DATABASE"], sslmode="disable",
                       autocommit=True)
out = {"iterations": 0, "errors": 0, "mismatches": 0, "first_errors": [], "first_mismatches": []}


def miss(what):
    out["mismatches"] += 1
    if len(out["first_mismatches"]) < 5:
        out["first_mismatches"].append(what)


while not os.path.exists(stop):
    out["iterations"] += 1
    v = f"{tag}-{out['iterations']}"
    try:
        cur = conn.cursor(binary=binary)
        i = cur.execute(f"INSERT INTO {t} (v) VALUES (%s) RETURNING id", (v,)).fetchone()[0]
        row = cur.execute(f"SELECT id, v FROM {t} WHERE id = %s", (i,)).fetchone()
        if row != (i, v):
            miss(f"select {i} {v}: got {row}")
        v2 = v + "-u"
        if cur.execute(f"UPDATE {t} SET v = %s WHERE id = %s", (v2, i)).rowcount != 1:
            miss(f"update {i}")
        cur.execute(f"SELECT * FROM {t} WHERE id = %s", (i,))
        names = [d.name for d in cur.description]
        rows = [(r[names.index("id")], r[names.index("v")]) for r in cur.fetchall()]
        if rows != [(i, v2)]:
            miss(f"select * {i} {v2}: got {rows}")
    except psycopg.Error as e:
        out["errors"] += 1
        if len(out["first_errors"]) < 5:
            out["first_errors"].append(f"{e.sqlstate} {str(e).strip()}")
    with open(progress, "w") as f:
        f.write(str(out["iterations"]))
    time.sleep(0.005)
conn.close()
print(json.dumps(out))
