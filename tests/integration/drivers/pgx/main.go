// Driver-compatibility check for pgx v4 (Debian's golang-github-jackc-pgx-v4-dev), run by
// tests/integration/test_drivers.py. It connects through pgvalve-proxy as scram_user, runs
// the scenario below and prints one JSON line of what it saw; the pytest test checks it
// against values read straight from PostgreSQL. Any unexpected failure: a message on stderr
// and exit status 1.
//
// Input (environment): PGV_HOST, PGV_PORT, PGV_USER, PGV_PASSWORD, PGV_DATABASE,
// PGV_PREFIX (table name prefix: <prefix>_items, <prefix>_big, <prefix>_batch),
// PGV_BIG_UNIT and PGV_BIG_CHARS (the large value is PGV_BIG_UNIT repeated and cut to
// PGV_BIG_CHARS characters).
// Optional: PGV_SSLMODE (libpq's sslmode words as pgx parses them; disable by default),
// PGV_SSLROOTCERT (the CA file, for verify-ca and verify-full), PGV_MODE=login (only log in:
// prints {"connected": true, ...} or the error's {"connected": false, "sqlstate", "message"}
// and exits 0; used for wrong passwords). pgx v4 (pgconn 1.11) has no channel binding: it
// always uses SCRAM-SHA-256 with gs2 flag 'n'.
//
// Built offline in GOPATH mode: GO111MODULE=off GOPATH=/usr/share/gocode go build.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
)

func env(name string) string {
	v, ok := os.LookupEnv(name)
	if !ok {
		fail("missing environment variable %s", name)
	}
	return v
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "pgx check: "+format+"\n", args...)
	os.Exit(1)
}

func check(err error, what string) {
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			fail("%s: %v (SQLSTATE %s)", what, err, pgErr.Code)
		}
		fail("%s: %v", what, err)
	}
}

func bigValue(unit string, chars int) string {
	r := []rune(unit)
	out := make([]rune, chars)
	for i := range out {
		out[i] = r[i%len(r)]
	}
	return string(out)
}

// tlsInfo says what the session is: the driver's side of TLS and the server's (pg_stat_ssl).
func tlsInfo(ctx context.Context, conn *pgx.Conn) map[string]interface{} {
	var serverSSL bool
	check(conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&serverSSL),
		"pg_stat_ssl")
	_, clientTLS := conn.PgConn().Conn().(*tls.Conn)
	return map[string]interface{}{"client_tls": clientTLS, "server_ssl": serverSSL}
}

// quote makes a libpq connection-string value.
func quote(v string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), "'", `\'`) + "'"
}

func connString(port int) string {
	s := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s connect_timeout=10 "+
		"application_name=pgvalve-drivers-pgx", quote(env("PGV_HOST")), port, quote(env("PGV_USER")),
		quote(env("PGV_PASSWORD")), quote(env("PGV_DATABASE")))
	mode, ok := os.LookupEnv("PGV_SSLMODE")
	if !ok {
		mode = "disable"
	}
	s += " sslmode=" + quote(mode)
	if root, ok := os.LookupEnv("PGV_SSLROOTCERT"); ok {
		s += " sslrootcert=" + quote(root)
	}
	return s
}

// login only logs in and prints what happened: the pytest test compares errors across drivers.
func login(ctx context.Context, port int) {
	result := map[string]interface{}{}
	conn, err := pgx.Connect(ctx, connString(port))
	var pgErr *pgconn.PgError
	if err != nil {
		if !errors.As(err, &pgErr) {
			fail("connect: %v", err)
		}
		result["connected"] = false
		result["sqlstate"] = pgErr.Code
		result["severity"] = pgErr.Severity
		result["message"] = pgErr.Message
	} else {
		var user string
		check(conn.QueryRow(ctx, "SELECT current_user").Scan(&user), "current_user")
		result["connected"] = true
		result["current_user"] = user
		result["tls"] = tlsInfo(ctx, conn)
		conn.Close(ctx)
	}
	out, err := json.Marshal(result)
	check(err, "json")
	fmt.Println(string(out))
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	port, err := strconv.Atoi(env("PGV_PORT"))
	check(err, "PGV_PORT")
	if os.Getenv("PGV_MODE") == "login" {
		login(ctx, port)
		return
	}
	prefix := env("PGV_PREFIX")
	items, big, batchTable := prefix+"_items", prefix+"_big", prefix+"_batch"
	chars, err := strconv.Atoi(env("PGV_BIG_CHARS"))
	check(err, "PGV_BIG_CHARS")

	config, err := pgx.ParseConfig(connString(port))
	check(err, "parse config")
	// Defaults on purpose: extended protocol, prepared-statement cache (ModePrepare).
	conn, err := pgx.ConnectConfig(ctx, config)
	check(err, "connect")
	defer conn.Close(context.Background())

	result := map[string]interface{}{"driver": "pgx", "driver_version": "v4"}

	// 1. Simple query: Exec without arguments uses the simple protocol, Query the cache.
	_, err = conn.Exec(ctx, "SET application_name = 'pgvalve-drivers-pgx'")
	check(err, "simple exec")
	var user, db, serverVersion string
	var answer int
	err = conn.QueryRow(ctx, "SELECT current_user, current_database(), 6 * 7, "+
		"current_setting('server_version_num')").Scan(&user, &db, &answer, &serverVersion)
	check(err, "simple query")
	result["simple"] = map[string]interface{}{"current_user": user, "database": db,
		"answer": answer, "server_version_num": serverVersion}
	result["tls"] = tlsInfo(ctx, conn)

	// 2. Parameterized query through the statement cache: a named server-side statement.
	rows := [][]interface{}{}
	for i := 0; i < 5; i++ {
		var n int
		var s string
		err = conn.QueryRow(ctx, "SELECT /* pgvalve-prep */ $1::int * 3, upper($2::text)",
			i, fmt.Sprintf("prep-%d", i)).Scan(&n, &s)
		check(err, "prepared query")
		rows = append(rows, []interface{}{n, s})
	}
	names := []string{}
	r, err := conn.Query(ctx, "SELECT name FROM pg_prepared_statements "+
		"WHERE NOT from_sql AND statement LIKE '%' || 'pgvalve' || '-prep%' ORDER BY name")
	check(err, "pg_prepared_statements")
	for r.Next() {
		var name string
		check(r.Scan(&name), "scan name")
		names = append(names, name)
	}
	check(r.Err(), "pg_prepared_statements rows")
	result["prepared"] = map[string]interface{}{"rows": rows, "server_statements": names}

	// 3. Transaction with rollback.
	tx, err := conn.Begin(ctx)
	check(err, "begin")
	for id := 1001; id <= 1003; id++ {
		_, err = tx.Exec(ctx, "INSERT INTO "+items+" (id, v) VALUES ($1, $2)", id, "rolled-back")
		check(err, "insert in transaction")
	}
	var inTx int
	check(tx.QueryRow(ctx, "SELECT count(*) FROM "+items+" WHERE id BETWEEN 1001 AND 1003").Scan(&inTx),
		"count in transaction")
	check(tx.Rollback(ctx), "rollback")
	var afterRollback int
	check(conn.QueryRow(ctx, "SELECT count(*) FROM "+items+" WHERE id BETWEEN 1001 AND 1003").Scan(&afterRollback),
		"count after rollback")
	result["rollback"] = map[string]interface{}{"in_transaction": inTx, "after_rollback": afterRollback}

	// 4. Unique violation: the SQLSTATE as pgx reports it, then the connection is reused.
	_, err = conn.Exec(ctx, "INSERT INTO "+items+" (id, v) VALUES ($1, $2)", 1, "first")
	check(err, "first insert")
	_, err = conn.Exec(ctx, "INSERT INTO "+items+" (id, v) VALUES ($1, $2)", 1, "duplicate")
	unique := map[string]interface{}{}
	var pgErr *pgconn.PgError
	if err == nil {
		fail("duplicate insert succeeded")
	} else if errors.As(err, &pgErr) {
		unique["sqlstate"] = pgErr.Code
		unique["constraint"] = pgErr.ConstraintName
		unique["table"] = pgErr.TableName
	} else {
		fail("duplicate insert: not a PgError: %v", err)
	}
	var one int
	check(conn.QueryRow(ctx, "SELECT $1::int", 1).Scan(&one), "query after error")
	unique["after_error"] = one
	_, err = conn.Exec(ctx, "INSERT INTO "+items+" (id, v) VALUES ($1, $2)", 2, "after")
	check(err, "insert after error")
	result["unique"] = unique

	// 5. A 1 MB text value: inserted as a parameter, echoed, and read back.
	value := bigValue(env("PGV_BIG_UNIT"), chars)
	_, err = conn.Exec(ctx, "INSERT INTO "+big+" (id, body) VALUES ($1, $2)", 1, value)
	check(err, "insert big value")
	var echoed, stored string
	check(conn.QueryRow(ctx, "SELECT $1::text", value).Scan(&echoed), "echo big value")
	check(conn.QueryRow(ctx, "SELECT body FROM "+big+" WHERE id = $1", 1).Scan(&stored), "read big value")
	sum := sha256.Sum256([]byte(stored))
	result["big"] = map[string]interface{}{
		"sent_chars":  len([]rune(value)),
		"echo_equal":  echoed == value,
		"read_chars":  len([]rune(stored)),
		"read_equal":  stored == value,
		"read_sha256": hex.EncodeToString(sum[:]),
	}

	// 6. A batch of 100 inserts sent as one pipeline (SendBatch).
	b := &pgx.Batch{}
	for i := 1; i <= 100; i++ {
		b.Queue("INSERT INTO "+batchTable+" (id, v) VALUES ($1, $2)", i, "batch-"+strconv.Itoa(i))
	}
	br := conn.SendBatch(ctx, b)
	affected := int64(0)
	for i := 0; i < b.Len(); i++ {
		tag, err := br.Exec()
		check(err, "batch insert result")
		affected += tag.RowsAffected()
	}
	check(br.Close(), "close batch")
	var batchCount int
	check(conn.QueryRow(ctx, "SELECT count(*) FROM "+batchTable).Scan(&batchCount), "count batch")
	result["batch"] = map[string]interface{}{"statements": b.Len(), "rows_affected": affected,
		"count": batchCount}

	// The connection is still usable at the end, in an idle state.
	var last string
	check(conn.QueryRow(ctx, "SELECT 'done'").Scan(&last), "final query")
	result["final"] = last
	if strings.TrimSpace(last) == "" {
		fail("empty final answer")
	}

	out, err := json.Marshal(result)
	check(err, "json")
	fmt.Println(string(out))
}
