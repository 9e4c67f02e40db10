// The prepared-statement loop of tests/integration/test_keychange_drivers.py for pgx v4
// (docs/architecture.md §4.9, statement refresh): one connection with pgx's default statement
// cache (each statement prepared on the server and described once, then Bind/Execute with
// binary results for the types it was shown), run until the file PGV_STOP exists while the
// table's key changes type. Every value read is compared with the value written. Prints one
// JSON line: {"iterations", "errors", "first_errors", "mismatches", "first_mismatches"}.
// Input: PGV_HOST, PGV_PORT, PGV_USER, PGV_PASSWORD, PGV_DATABASE, PGV_TABLE, PGV_STOP, PGV_TAG
// (the prefix of the values it writes), PGV_PROGRESS (a file it writes its iteration count to).
//
// Built offline in GOPATH mode: GO111MODULE=off GOPATH=/usr/share/gocode go build.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
)

type result struct {
	Iterations      int      `json:"iterations"`
	Errors          int      `json:"errors"`
	Mismatches      int      `json:"mismatches"`
	FirstErrors     []string `json:"first_errors"`
	FirstMismatches []string `json:"first_mismatches"`
}

func env(name string) string {
	v, ok := os.LookupEnv(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "missing environment variable %s\n", name)
		os.Exit(1)
	}
	return v
}

func main() {
	ctx := context.Background()
	url := fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=disable", env("PGV_USER"), env("PGV_PASSWORD"),
		env("PGV_HOST"), env("PGV_PORT"), env("PGV_DATABASE"))
	t, stop, tag, progress := env("PGV_TABLE"), env("PGV_STOP"), env("PGV_TAG"), env("PGV_PROGRESS")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "connect: %v\n", err)
		os.Exit(1)
	}
	res := result{FirstErrors: []string{}, FirstMismatches: []string{}}
	miss := func(what string) {
		res.Mismatches++
		if len(res.FirstMismatches) < 5 {
			res.FirstMismatches = append(res.FirstMismatches, what)
		}
	}
	for {
		if _, err := os.Stat(stop); err == nil {
			break
		}
		res.Iterations++
		v := fmt.Sprintf("%s-%d", tag, res.Iterations)
		err := func() error {
			var id int32
			if err := conn.QueryRow(ctx, "INSERT INTO "+t+" (v) VALUES ($1) RETURNING id", v).Scan(&id); err != nil {
				return err
			}
			var gotID int32
			var gotV string
			if err := conn.QueryRow(ctx, "SELECT id, v FROM "+t+" WHERE id = $1", id).Scan(&gotID, &gotV); err != nil {
				return err
			}
			if gotID != id || gotV != v {
				miss(fmt.Sprintf("select %d %s: got %d %s", id, v, gotID, gotV))
			}
			v2 := v + "-u"
			tag, err := conn.Exec(ctx, "UPDATE "+t+" SET v = $1 WHERE id = $2", v2, id)
			if err != nil {
				return err
			}
			if tag.RowsAffected() != 1 {
				miss(fmt.Sprintf("update %d", id))
			}
			rows, err := conn.Query(ctx, "SELECT * FROM "+t+" WHERE id = $1", id)
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				vals, err := rows.Values()
				if err != nil {
					rows.Close()
					return err
				}
				n++
				got := map[string]string{}
				for i, f := range rows.FieldDescriptions() {
					got[string(f.Name)] = fmt.Sprint(vals[i])
				}
				if got["id"] != fmt.Sprint(id) || got["v"] != v2 {
					miss(fmt.Sprintf("select * %d %s: got %v", id, v2, vals))
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if n != 1 {
				miss(fmt.Sprintf("select * %d: %d rows", id, n))
			}
			return nil
		}()
		if err != nil {
			res.Errors++
			if len(res.FirstErrors) < 5 {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) {
					res.FirstErrors = append(res.FirstErrors, pgErr.Code+" "+pgErr.Message)
				} else {
					res.FirstErrors = append(res.FirstErrors, err.Error())
				}
			}
		}
		_ = os.WriteFile(progress, []byte(fmt.Sprint(res.Iterations)), 0o644)
		time.Sleep(5 * time.Millisecond)
	}
	conn.Close(ctx)
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}
