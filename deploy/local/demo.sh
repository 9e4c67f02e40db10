#!/usr/bin/env bash
# pgvalve's story in a few minutes: builds, starts a throwaway PostgreSQL with
# pgvalve-proxy in front of it, creates a small multi-tenant schema without a
# single foreign key (and with a few orphan rows planted), keeps a steady
# write load going through the proxy, then: `pgvalve audit` finds the missing
# foreign keys and the orphans that would break them, and writes the keys as
# a migration, which is completed by hand with the keys it cannot guess, a
# CHECK and a NOT NULL; `pgvalve plan` refuses it because of the orphans; they
# are cleaned up; `pgvalve apply` adds 11 foreign keys (and their indexes), a
# CHECK and a NOT NULL under the load and proves each one enforced (--self-test);
# a summary shows the clients' errors (0), the longest stall and a clean audit;
# finally an application starts writing orphans right after a second
# migration's cutover, pgvalve rolls that migration back by itself, and
# `pgvalve report` shows the damage. Everything it starts is stopped on exit.
#
# Usage: deploy/local/demo.sh [--no-build] [--rate TPS] [--keep S]
#                             [--stages LIST] [--list-stages]
# Every stage is a function stage_NAME run in the order of STAGES.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg.sh
source "$HERE/pg.sh"
# shellcheck source=proxy.sh
source "$HERE/proxy.sh"

STAGES=(build postgres proxy schema load audit plan cleanup apply summary rollback report)
RATE=200
CLIENTS=4
KEEP=0
BUILD=1
PY=/usr/bin/python3

usage() {
	cat <<-EOF
		Usage: deploy/local/demo.sh [options]
		  --no-build      use the existing build/bin binaries (or \$PGVALVE_PROXY, \$PGVALVE_COORDINATOR)
		  --rate TPS      the write load's transactions per second (default $RATE)
		  --stages LIST   comma list of stages to run (default: ${STAGES[*]})
		  --keep S        keep everything running S more seconds at the end (Ctrl-C stops)
		  --list-stages   print the stages and exit
	EOF
}

while (($#)); do
	case $1 in
	--no-build) BUILD=0; shift ;;
	--rate) RATE=$2; shift 2 ;;
	--stages) IFS=, read -r -a STAGES <<<"$2"; shift 2 ;;
	--keep) KEEP=$2; shift 2 ;;
	--list-stages) echo "${STAGES[*]}"; exit 0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
for v in RATE KEEP; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "demo: --${v,,} needs a number" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgvalve-demo.XXXXXX")
LOAD_PID=
BADAPP_PID=
case ${BUILD_DIR:-build} in
/*) PGVALVE_COORDINATOR=${PGVALVE_COORDINATOR:-${BUILD_DIR}/bin/pgvalve} ;;
*) PGVALVE_COORDINATOR=${PGVALVE_COORDINATOR:-$PGV_REPO/${BUILD_DIR:-build}/bin/pgvalve} ;;
esac

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local p
	for p in "$LOAD_PID" "$BADAPP_PID"; do
		[[ -n "$p" ]] && kill "$p" 2>/dev/null || true
	done
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
	[[ -x "$PGVALVE_COORDINATOR" ]] || pgv_die "coordinator not found: $PGVALVE_COORDINATOR (set PGVALVE_COORDINATOR)"
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

# The coordinator, pointed at the throwaway server and the proxy's admin API.
pgvalve() {
	PGPASSWORD=$PGV_PG_PASSWORD "$PGVALVE_COORDINATOR" "$@" --db "$(pgv_pg_url "$PGV_PG_PORT")" \
		--proxy "$PGV_PROXY_ADMIN_URL"
}

# `pgvalve audit` reads the server directly and takes no --proxy.
pgvalve_audit() {
	PGPASSWORD=$PGV_PG_PASSWORD "$PGVALVE_COORDINATOR" audit "$@" --db "$(pgv_pg_url "$PGV_PG_PORT")"
}

stage_schema() {
	banner "schema: a small multi-tenant app (6 tables), with orphan rows planted"
	proxy_psql -q -v ON_ERROR_STOP=1 <<-'SQL'
		CREATE TABLE workspaces (id int PRIMARY KEY, name text NOT NULL);
		CREATE TABLE users (id int PRIMARY KEY, workspace_id int, email text);
		CREATE TABLE config_versions (id int PRIMARY KEY, workspace_id int, author_id int, body text);
		CREATE TABLE workflow_instances (id int PRIMARY KEY, workspace_id int, config_version_id int,
		                                 started_by int, status text);
		CREATE TABLE stages (id int PRIMARY KEY, workspace_id int, instance_id int, assignee_id int,
		                     position int);
		CREATE TABLE submissions (id bigint PRIMARY KEY, workspace_id int, stage_id int, user_id int,
		                          reviewer_id int, score int);
		INSERT INTO workspaces SELECT g, 'workspace ' || g FROM generate_series(1, 50) g;
		INSERT INTO users SELECT g, 1 + g % 50, 'user' || g || '@example.com' FROM generate_series(1, 5000) g;
		INSERT INTO config_versions SELECT g, 1 + g % 50, 1 + g % 5000, '{}' FROM generate_series(1, 5000) g;
		INSERT INTO workflow_instances SELECT g, 1 + g % 50, 1 + g % 5000, 1 + g % 5000, 'running'
		  FROM generate_series(1, 20000) g;
		INSERT INTO stages SELECT g, 1 + g % 50, 1 + g % 20000, 1 + g % 5000, g % 7 FROM generate_series(1, 50000) g;
		INSERT INTO submissions SELECT g, 1 + g % 50, 1 + g % 50000, 1 + g % 5000, 1 + g % 5000, g % 100
		  FROM generate_series(1, 200000) g;
		-- what years of application bugs leave behind: rows pointing at nothing
		INSERT INTO submissions VALUES (900001, 7, 987654, 12, 12, 1), (900002, 7, 987655, 12, 12, 1),
		                               (900003, 9, 12, 99999, 12, 1);
		INSERT INTO stages VALUES (900001, 3, 777777, 12, 1);
		ANALYZE;
	SQL
	pgv_log "workspaces, users, config_versions, workflow_instances (20k), stages (50k), submissions (200k)"
	pgv_log "planted: 3 submissions and 1 stage that reference rows that do not exist"
	cat >"$WORK/0043_reviewer_fk.sql" <<-'SQL'
		ALTER TABLE submissions ADD CONSTRAINT submissions_reviewer_id_fkey FOREIGN KEY (reviewer_id) REFERENCES users (id);
	SQL
}

stage_load() {
	banner "a steady write load through the proxy: $RATE transactions/s, $CLIENTS clients, until the end"
	cat >"$WORK/load.sql" <<-'SQL'
		\set ws random(1, 50)
		\set st random(1, 50000)
		\set u random(1, 5000)
		INSERT INTO submissions (id, workspace_id, stage_id, user_id, reviewer_id, score)
		  VALUES (nextval('demo_ids'), :ws, :st, :u, :u, 50);
		UPDATE stages SET position = position + 1 WHERE id = :st;
		UPDATE users SET email = email WHERE id = :u;
	SQL
	proxy_psql -q -c "CREATE SEQUENCE demo_ids START 1000000" >/dev/null
	(cd "$WORK" && pgv_with_port "$PGV_PROXY_PORT" "$PGV_PG_BINDIR/pgbench" -n -c "$CLIENTS" -j 2 \
		-R "$RATE" -T 3600 -f load.sql -l --log-prefix=latency >"$WORK/load.out" 2>&1) &
	LOAD_PID=$!
	sleep 3
	kill -0 "$LOAD_PID" 2>/dev/null || { cat "$WORK/load.out" >&2; pgv_die "the load did not start"; }
	pgv_log "pgbench running (pid $LOAD_PID); every transaction's latency is logged"
}

stage_audit() {
	banner "pgvalve audit --orphans --suggest: the foreign keys that are missing, and the rows that would break them"
	local rc=0 keys indexes
	pgvalve_audit --orphans --suggest >"$WORK/audit.out" 2>&1 || rc=$?
	((rc == 0)) || { sed 's/^/  /' "$WORK/audit.out" >&2; pgv_die "pgvalve audit failed (exit $rc)"; }
	# The summary, the findings and the suggested keys; not the hints, samples, SQL or graph.
	awk '/^Graph:/ { exit } /^$/ || /^        / || /^      [A-Z-]/ { next } { print "  " $0 }' "$WORK/audit.out" >&2
	pgv_log "(the full report, with samples of the orphan rows, hints, the SQL and the graph: $(wc -l <"$WORK/audit.out") lines)"

	# Without --orphans every suggested key is written (with it, a key that rows break is commented out).
	pgvalve_audit --suggest --format sql >"$WORK/0042_fks.sql" || pgv_die "pgvalve audit --format sql failed"
	keys=$(grep -c '^ALTER TABLE' "$WORK/0042_fks.sql" || true)
	indexes=$(grep -c '^CREATE INDEX' "$WORK/0042_fks.sql" || true)
	((keys > 0)) || pgv_die "pgvalve audit suggested no foreign key"
	pgv_log "pgvalve audit --suggest --format sql > 0042_fks.sql: $keys foreign keys, and the $indexes indexes their columns lack"
	pgv_log "the audit suggests a key when its column names the table (user_id -> users); author_id, started_by and instance_id do not,"
	pgv_log "so their keys are added by hand (the 4th planted orphan, a stage whose instance does not exist, breaks instance_id's),"
	pgv_log "with their indexes, a CHECK and a NOT NULL:"
	cat >"$WORK/0042_by_hand.sql" <<-'SQL'
		-- by hand: keys whose column does not name its table, their indexes, a CHECK and a NOT NULL
		CREATE INDEX config_versions_author_id_idx ON public.config_versions (author_id);
		ALTER TABLE public.config_versions ADD CONSTRAINT config_versions_author_id_fkey FOREIGN KEY (author_id) REFERENCES public.users (id);
		CREATE INDEX workflow_instances_started_by_idx ON public.workflow_instances (started_by);
		ALTER TABLE public.workflow_instances ADD CONSTRAINT workflow_instances_started_by_fkey FOREIGN KEY (started_by) REFERENCES public.users (id);
		CREATE INDEX stages_instance_id_idx ON public.stages (instance_id);
		ALTER TABLE public.stages ADD CONSTRAINT stages_instance_id_fkey FOREIGN KEY (instance_id) REFERENCES public.workflow_instances (id);
		ALTER TABLE public.submissions ADD CONSTRAINT submissions_score_check CHECK (score BETWEEN 0 AND 100);
		ALTER TABLE public.stages ALTER COLUMN position SET NOT NULL;
	SQL
	grep -v '^--' "$WORK/0042_by_hand.sql" | sed 's/^/  /' >&2
	{ cat "$WORK/0042_fks.sql"; echo; cat "$WORK/0042_by_hand.sql"; } >"$WORK/0042_constraints.sql"
	pgv_log "0042_constraints.sql = 0042_fks.sql + these: $((keys + 3)) foreign keys, a CHECK, a NOT NULL, $((indexes + 3)) indexes"
}

stage_plan() {
	banner "pgvalve plan 0042_constraints.sql: what it will do, and what is in the way"
	local rc=0 unindexed
	[[ -f "$WORK/0042_constraints.sql" ]] || pgv_die "no 0042_constraints.sql: the audit stage writes it"
	pgvalve plan "$WORK/0042_constraints.sql" >"$WORK/plan.out" 2>&1 || rc=$?
	grep -E '^(migration|Order|Preflight)' "$WORK/plan.out" | sed 's/^/  /' >&2
	grep -A2 -E '^ +error ' "$WORK/plan.out" | grep -v '^--' | sed 's/^/  /' >&2 || true
	unindexed=$(grep -c '^ *warning unindexed_fk' "$WORK/plan.out" || true)
	pgv_log "($(grep -c '^ *warning' "$WORK/plan.out" || true) warning(s) in the full plan; $unindexed key(s) left without an index:" \
		"the migration builds every key's index, CONCURRENTLY, before it adds the key)"
	((rc == 1)) || pgv_die "expected plan to find the planted orphans (exit 1), got exit $rc"
	pgv_log "plan refuses (exit 1): apply would change nothing until the orphans are dealt with"
}

stage_cleanup() {
	banner "cleanup: delete the orphans (through the proxy, under load), and plan again"
	proxy_psql -q -v ON_ERROR_STOP=1 <<-'SQL'
		DELETE FROM submissions s WHERE NOT EXISTS (SELECT 1 FROM stages t WHERE t.id = s.stage_id)
		   OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id);
		DELETE FROM stages s WHERE NOT EXISTS (SELECT 1 FROM workflow_instances w WHERE w.id = s.instance_id);
	SQL
	pgv_log "orphans deleted"
	local rc=0
	pgvalve plan "$WORK/0042_constraints.sql" >"$WORK/plan2.out" 2>&1 || rc=$?
	grep -E '^Preflight' "$WORK/plan2.out" | sed 's/^/  /' >&2
	((rc == 0)) || { sed 's/^/  /' "$WORK/plan2.out" >&2; pgv_die "expected plan to accept 0042 now (exit 0), got exit $rc"; }
	pgv_log "plan accepts 0042 now (exit 0)"
}

stage_apply() {
	banner "pgvalve apply 0042_constraints.sql under the load"
	APPLY_START=$(date +%s.%N)
	local rc=0
	# The self-test's line per check is in `pgvalve report 1`; its summary line stays.
	pgvalve apply "$WORK/0042_constraints.sql" --watch 5 --self-test --yes 2>&1 |
		grep --line-buffered -v -e 'warning: unindexed_fk' -e '^self-test [^:]* on ' |
		sed -u 's/^/  /' >&2 || rc=${PIPESTATUS[0]}
	APPLY_END=$(date +%s.%N)
	((rc == 0)) || pgv_die "pgvalve apply failed (exit $rc)"
}

# Latency of the load's transactions that ended between two epoch times: "count max_ms p99_ms".
load_latency() {
	"$PY" - "$1" "$2" "$WORK" <<-'PY'
		import glob, sys
		a, b, work = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
		lat = []
		for path in glob.glob(work + "/latency.*"):
		    for line in open(path):
		        f = line.split()
		        if len(f) >= 6 and a <= int(f[4]) + int(f[5]) / 1e6 <= b:
		            lat.append(int(f[2]) / 1000.0)
		lat.sort()
		print(len(lat), "%.1f" % (lat[-1] if lat else 0), "%.1f" % (lat[int(len(lat) * 0.99) - 1] if lat else 0))
	PY
}

stage_summary() {
	banner "what the clients saw while 0042 was applied"
	local stats n max p99 failed
	stats=$(load_latency "$APPLY_START" "$APPLY_END")
	read -r n max p99 <<<"$stats"
	failed=$(grep -hcE 'ERROR|aborted' "$WORK/load.out" || true)
	echo "  transactions during apply:  $n" >&2
	echo "  client errors:              ${failed:-0}" >&2
	echo "  longest client stall:       ${max} ms (p99 ${p99} ms)" >&2
	echo "  constraints now in place:" >&2
	pgv_pg_psql -At -c "SELECT conrelid::regclass || '.' || conname || CASE WHEN convalidated THEN '  valid' ELSE '  NOT VALID' END
	                      FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype IN ('f', 'c')
	                      ORDER BY 1" | sed 's/^/    /' >&2
	pgv_pg_psql -At -c "SELECT 'stages.position NOT NULL: ' || attnotnull FROM pg_attribute
	                      WHERE attrelid = 'stages'::regclass AND attname = 'position'" | sed 's/^/    /' >&2
	echo "  pgvalve audit --orphans --suggest now:" >&2
	pgvalve_audit --orphans --suggest 2>&1 | sed -n '/^$/q; s/^/    /p' >&2 || true
}

stage_rollback() {
	banner "0043 adds a foreign key; right after its cutover an app starts writing orphans"
	# The buggy app: submissions whose reviewer does not exist, through the proxy.
	# It waits for a go file: SIGSTOP would stop only the subshell of this background function
	# call, not the python under it, which would then write its orphans before the cutover.
	PGSSLMODE=prefer pgv_with_port "$PGV_PROXY_PORT" "$PY" -c '
import os, sys, time, psycopg
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
c = psycopg.connect(autocommit=True)
while True:
    try:
        c.execute("INSERT INTO submissions VALUES (nextval(%s), 1, 1, 1, 99999999, 1)", ("demo_ids",))
    except psycopg.errors.ForeignKeyViolation:
        pass
    time.sleep(0.05)
' "$WORK/badapp.go" >"$WORK/badapp.out" 2>&1 &
	BADAPP_PID=$!
	local rc=0
	# Before the cutover its orphans would simply be inserted (and preflight would refuse):
	# let it loose once the journal says the NOT VALID foreign key is in place.
	(
		until pgv_pg_psql -At -c "SELECT 1 FROM pgvalve.migrations WHERE name = '0043_reviewer_fk'
		                            AND state IN ('cutover', 'validated', 'finalized', 'watching')" 2>/dev/null |
			grep -q 1; do
			sleep 0.2
		done
		touch "$WORK/badapp.go"
	) &
	pgvalve apply "$WORK/0043_reviewer_fk.sql" --watch 30 --yes 2>&1 | sed -u 's/^/  /' >&2 || rc=${PIPESTATUS[0]}
	kill "$BADAPP_PID" 2>/dev/null || true
	BADAPP_PID=
	((rc == 3)) || pgv_die "expected pgvalve to roll 0043 back (exit 3), got exit $rc"
	pgv_log "0043 rolled back by itself (exit 3): the reviewer foreign key is gone, 0042's constraints stay"
	PGPASSWORD=$PGV_PG_PASSWORD "$PGVALVE_COORDINATOR" status --db "$(pgv_pg_url "$PGV_PG_PORT")" 2>&1 |
		sed 's/^/  /' >&2 || true
	banner "pgvalve report: what 0043 did before it was rolled back"
	local id
	id=$(pgv_pg_psql -At -c "SELECT id FROM pgvalve.migrations WHERE name = '0043_reviewer_fk'")
	PGPASSWORD=$PGV_PG_PASSWORD "$PGVALVE_COORDINATOR" report "$id" --db "$(pgv_pg_url "$PGV_PG_PORT")" 2>&1 |
		sed -n '/^client errors/,$p' | sed 's/^/  /' >&2 || true
}

stage_report() {
	banner "what pgvalve-proxy saw"
	"$PY" "$HERE/proxy-report.py" "$PGV_PROXY_ADMIN_URL" --window 300 || true
	echo
	echo "Proxy log ($PGV_PROXY_LOG): $(wc -l <"$PGV_PROXY_LOG") lines. Last lines:"
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
