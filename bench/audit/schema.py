#!/usr/bin/python3
"""Prints SQL for bench/audit: --tables tables t0001… in schema public, each with an integer
primary key, a few rows, and --fks foreign keys spread over them (each child references a
table created before it, plus a few back-references that make cycles), about half of them
indexed, one in five ON DELETE CASCADE, one in twenty NOT VALID; and one column in ten named
like a reference (<table>_id) without a foreign key, for --suggest. Deterministic (seeded)."""
import argparse
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=2000)
    ap.add_argument("--fks", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=10)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    n = a.tables
    names = [f"t{i:05d}" for i in range(n)]
    cols = {t: [] for t in names}   # (column, parent, action, indexed, valid)
    for f in range(a.fks):
        child = rnd.randrange(1, n)
        back = rnd.random() < 0.01  # a few keys point forward: cycles
        parent = rnd.randrange(child + 1, n) if back and child + 1 < n else rnd.randrange(0, child)
        cols[names[child]].append((f"ref{f}_id", names[parent], "CASCADE" if rnd.random() < 0.2 else "NO ACTION",
                                   rnd.random() < 0.5, rnd.random() >= 0.05))
    loose = {t: names[rnd.randrange(0, n)] for t in names if rnd.random() < 0.1}
    print("SET client_min_messages = warning;")
    for t in names:
        extra = "".join(f", {c} int" for c, *_ in cols[t])
        if t in loose:
            extra += f", {loose[t]}_id int"
        print(f"CREATE TABLE {t} (id int PRIMARY KEY, name text{extra});")
        print(f"INSERT INTO {t} (id, name) SELECT g, 'n' || g FROM generate_series(1, 20) g;")
    for t in names:
        for c, parent, action, indexed, valid in cols[t]:
            print(f"ALTER TABLE {t} ADD FOREIGN KEY ({c}) REFERENCES {parent} ON DELETE {action}"
                  f"{'' if valid else ' NOT VALID'};")
            if indexed:
                print(f"CREATE INDEX ON {t} ({c});")


if __name__ == "__main__":
    main()
