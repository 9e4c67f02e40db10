#!/usr/bin/env bash
# pgvalve in two minutes: builds, starts a throwaway PostgreSQL with
# pgvalve-proxy in front of it, drives traffic through the proxy (pgbench TPC-B
# and a handful of deliberate constraint violations from psql), then prints what
# the proxy saw: sessions, connections, statements, and errors by SQLSTATE,
# table and constraint. Everything it starts is stopped on exit.
#
# Usage: deploy/local/demo.sh [--no-build] [--duration S] [--clients N]
#                             [--stages LIST] [--keep S] [--list-stages]
# Every stage is a function stage_NAME run in the order of STAGES; later stages
# (coordinator plan/apply/rollback) are added to that list.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg.sh
source "$HERE/pg.sh"
# shellcheck source=proxy.sh
source "$HERE/proxy.sh"

STAGES=(build postgres proxy schema load violations sessions report)
DURATION=10
CLIENTS=8
SCALE=2
KEEP=0
BUILD=1
PY=/usr/bin/python3

usage() {
	cat <<-EOF
		Usage: deploy/local/demo.sh [options]
		  --no-build      use the existing build/bin/pgvalve-proxy (or \$PGVALVE_PROXY)
		  --duration S    seconds of pgbench load (default $DURATION)
		  --clients N     pgbench clients (default $CLIENTS)
		  --stages LIST   comma list of stages to run (default: ${STAGES[*]})
		  --keep S        keep everything running S more seconds at the end (Ctrl-C stops)
		  --list-stages   print the stages and exit
	EOF
}

while (($#)); do
	case $1 in
	--no-build) BUILD=0; shift ;;
	--duration) DURATION=$2; shift 2 ;;
	--clients) CLIENTS=$2; shift 2 ;;
	--stages) IFS=, read -r -a STAGES <<<"$2"; shift 2 ;;
	--keep) KEEP=$2; shift 2 ;;
	--list-stages) echo "${STAGES[*]}"; exit 0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
for v in DURATION CLIENTS KEEP; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "demo: --${v,,} needs a number" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgvalve-demo.XXXXXX")
HOLDER_PID=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n "$HOLDER_PID" ]]; then
		exec 7>&- || true
		kill "$HOLDER_PID" 2>/dev/null || true
	fi
	if [[ -n "$PGV_PROXY_PID" ]]; then
		pgv_log "stopping pgvalve-proxy (SIGTERM drains)"
		pgv_proxy_stop || true
	fi
	pgv_pg_stop_all || true
	rm -rf "$WORK"
	if ((rc != 0 && rc != 130)); then
		echo >&2
		pgv_log "demo failed (exit $rc)"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

banner() {
	printf '\n\033[1m== %s\033[0m\n' "$*" >&2
}

# psql through the proxy. Errors do not stop the script here: the caller decides.
proxy_psql() {
	PGSSLMODE=prefer pgv_with_port "$PGV_PROXY_PORT" "$PGV_PG_BINDIR/psql" -X "$@"
}

# ---------------------------------------------------------------- stages

stage_build() {
	banner "build"
	if ((BUILD)); then
		"$HERE/build.sh"
	else
		"$HERE/install-deps.sh"
		pgv_log "--no-build: using $PGVALVE_PROXY"
	fi
	pgv_proxy_require
}

stage_postgres() {
	banner "PostgreSQL (throwaway, 127.0.0.1)"
	pgv_pg_start max_connections=100
}

stage_proxy() {
	banner "pgvalve-proxy in front of it"
	pgv_proxy_start "$PGV_PG_PORT"
	pgv_log "clients connect to: $(pgv_pg_url "$PGV_PROXY_PORT")"
}

stage_schema() {
	banner "schema: customers <- orders (foreign key), through the proxy"
	proxy_psql -q -v ON_ERROR_STOP=1 <<-'SQL'
		CREATE TABLE customers (
		    id   int  PRIMARY KEY,
		    name text NOT NULL
		);
		CREATE TABLE orders (
		    id          bigserial     PRIMARY KEY,
		    customer_id int           NOT NULL REFERENCES customers (id),
		    amount      numeric(10,2) NOT NULL CHECK (amount > 0)
		);
		INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 100) g;
		INSERT INTO orders (customer_id, amount)
		SELECT 1 + g % 100, 10 + g % 90 FROM generate_series(1, 1000) g;
	SQL
	pgv_log "created customers (100 rows) and orders (1000 rows)"
}

stage_load() {
	banner "pgbench through the proxy: init (COPY) + ${DURATION}s TPC-B, $CLIENTS clients"
	local init=$WORK/pgbench-init.log out=$WORK/pgbench.log rc=0
	pgv_with_port "$PGV_PROXY_PORT" timeout 300 "$PGV_PG_BINDIR/pgbench" -i -s "$SCALE" -q \
		>"$init" 2>&1 || rc=$?
	grep -vE '^(NOTICE|dropping)' "$init" | sed 's/^/  /' >&2 || true
	((rc == 0)) || pgv_die "pgbench -i through the proxy failed (exit $rc)"
	rc=0
	pgv_with_port "$PGV_PROXY_PORT" timeout $((DURATION + 60)) "$PGV_PG_BINDIR/pgbench" -n \
		-c "$CLIENTS" -j 2 -T "$DURATION" -P 2 2>&1 | tee "$out" |
		grep --line-buffered -E '^(progress|number of transactions|number of failed|latency average|tps)' |
		sed -u 's/^/  /' >&2 || rc=$?
	if ((rc != 0)) || grep -qE '^client [0-9]+ aborted|Run was aborted' "$out" ||
		! grep -q '^tps = ' "$out"; then
		grep -vE '^progress' "$out" | tail -n 15 >&2
		pgv_die "pgbench through the proxy failed"
	fi
	PGBENCH_TX=$(awk '/^number of transactions actually processed:/ {print $6}' "$out")
	PGBENCH_TX=${PGBENCH_TX%%/*}
}

stage_violations() {
	banner "deliberate constraint violations from psql, through the proxy"
	local out=$WORK/violations.log
	# ON_ERROR_STOP off: each failing statement is answered with an ErrorResponse
	# and the session goes on, as an application's would.
	proxy_psql -v ON_ERROR_STOP=0 -v VERBOSITY=default >"$out" 2>&1 <<-'SQL' || true
		-- five orders for customers that do not exist: 23503 on orders
		INSERT INTO orders (customer_id, amount) VALUES (1001, 10);
		INSERT INTO orders (customer_id, amount) VALUES (1002, 20);
		INSERT INTO orders (customer_id, amount) VALUES (1003, 30);
		INSERT INTO orders (customer_id, amount) VALUES (1004, 40);
		INSERT INTO orders (customer_id, amount) VALUES (1005, 50);
		-- deleting a customer that still has orders: 23503 reported on orders too
		DELETE FROM customers WHERE id = 7;
		-- two negative amounts: 23514 check_violation
		INSERT INTO orders (customer_id, amount) VALUES (1, -5);
		UPDATE orders SET amount = 0 WHERE id = 1;
		-- and some that succeed
		INSERT INTO orders (customer_id, amount) VALUES (1, 99);
		SELECT count(*) AS orders FROM orders;
	SQL
	grep -E '^(ERROR|DETAIL)' "$out" | sed 's/^/  psql: /' >&2 || true
	local n
	n=$(grep -c '^ERROR' "$out" || true)
	pgv_log "psql received $n ErrorResponses (expected 8)"
}

# Two sessions left open so /status has something to show: one idle, one
# inside a transaction (psycopg, extended protocol). Closed at exit.
stage_sessions() {
	banner "two sessions left open: one idle, one inside a transaction"
	local fifo_in=$WORK/holder.in fifo_out=$WORK/holder.out
	mkfifo "$fifo_in" "$fifo_out"
	PGSSLMODE=prefer PGAPPNAME=demo-holder pgv_with_port "$PGV_PROXY_PORT" "$PY" -c '
import select, sys, psycopg
idle = psycopg.connect(autocommit=True)
idle.execute("SELECT 1")
busy = psycopg.connect()
busy.execute("UPDATE customers SET name = name WHERE id = 1")
print("READY", idle.info.backend_pid, busy.info.backend_pid, flush=True)
select.select([sys.stdin], [], [], 300)
busy.rollback()
' <"$fifo_in" >"$fifo_out" 2>"$WORK/holder.err" &
	HOLDER_PID=$!
	# Our end of its stdin stays open until exit: EOF (or 300 s) ends the sessions.
	exec 7>"$fifo_in"
	local line=
	read -r -t 30 line <"$fifo_out" || true
	if [[ $line != READY* ]]; then
		cat "$WORK/holder.err" >&2
		pgv_die "could not open the two sessions through the proxy"
	fi
	read -r _ IDLE_PID TX_PID <<<"$line"
	pgv_log "idle session backend pid $IDLE_PID, in-transaction backend pid $TX_PID"
}

stage_report() {
	banner "what pgvalve-proxy saw"
	"$PY" "$HERE/proxy-report.py" "$PGV_PROXY_ADMIN_URL" --window 300 || true

	echo
	echo "Cross-checks"
	local stmts
	stmts=$(pgv_proxy_get /metrics 2>/dev/null | awk '/^pgvalve_statements_total[ {]/ {s += $NF} END {printf "%d", s}')
	if [[ -n "${PGBENCH_TX:-}" ]]; then
		echo "  pgbench committed $PGBENCH_TX TPC-B transactions = $((PGBENCH_TX * 7)) statements" \
			"(BEGIN, 3 UPDATE, SELECT, INSERT, END);"
		echo "  the proxy counted ${stmts:-?} statements in all (pgbench + init + psql + sessions)"
	fi
	echo "  PostgreSQL's view of the client sessions right now (pg_stat_activity, direct):"
	pgv_pg_psql -P footer=off -c "SELECT pid AS backend_pid, usename AS user, datname AS database,
	       state, application_name
	  FROM pg_stat_activity
	 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
	 ORDER BY pid" | sed -e '/^ *$/d' -e 's/^/    /'
	echo
	echo "Proxy log ($PGV_PROXY_LOG): $(wc -l <"$PGV_PROXY_LOG") lines;" \
		"$(grep -ciE 'error|warn' "$PGV_PROXY_LOG" || true) mention an error or warning. Last lines:"
	tail -n 5 "$PGV_PROXY_LOG" | sed 's/^/    /'
}

# ---------------------------------------------------------------- main

for stage in "${STAGES[@]}"; do
	declare -F "stage_$stage" >/dev/null || pgv_die "unknown stage '$stage' (stages: $("$0" --list-stages))"
done
for stage in "${STAGES[@]}"; do
	"stage_$stage"
done

if ((KEEP > 0)) && [[ -n "$PGV_PROXY_PORT" ]]; then
	banner "running for $KEEP more seconds (Ctrl-C to stop)"
	echo "  psql \"$(pgv_pg_url "$PGV_PROXY_PORT")\""
	echo "  curl $PGV_PROXY_ADMIN_URL/status"
	sleep "$KEEP"
fi
banner "done; cleaning up"
