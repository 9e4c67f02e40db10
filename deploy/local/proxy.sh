# shellcheck shell=bash
# Starts and stops a local pgvalve-proxy in front of a server started by pg.sh.
# Source pg.sh first, then this file:
#
#   pgv_proxy_start "$PGV_PG_PORT"        # sets PGV_PROXY_PORT, PGV_PROXY_ADMIN_PORT, ...
#   pgv_proxy_get /status                 # admin API, JSON on stdout
#   pgv_proxy_stop
#
# Knobs (environment): PGVALVE_PROXY (the binary; default $BUILD_DIR/bin/pgvalve-proxy,
# BUILD_DIR as for build.sh: build/ of this repository), PGV_PROXY_WORKERS (0 = one
# per core), PGV_PROXY_SSLMODE (upstream.sslmode, default prefer),
# PGV_PROXY_LOG_LEVEL (info), PGV_PROXY_MAX_CLIENTS (10000),
# PGV_PROXY_SHUTDOWN_MS (5000), PGV_PROXY_TLS_CERT + PGV_PROXY_TLS_KEY (tls.cert_file
# and tls.key_file: clients may then use TLS; default none), PGV_PROXY_AUTH_USERLIST (a
# PgBouncer-format userlist: auth.mode terminate with that auth.userlist_file; default relay).
#
# Globals set by pgv_proxy_start: PGV_PROXY_PORT PGV_PROXY_ADMIN_PORT PGV_PROXY_PID
# PGV_PROXY_DIR PGV_PROXY_CONFIG PGV_PROXY_LOG PGV_PROXY_ADMIN_URL.

PGV_REPO=${PGV_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# The binary: $PGVALVE_PROXY, else $BUILD_DIR/bin (BUILD_DIR as for build.sh).
case ${BUILD_DIR:-build} in
/*) PGVALVE_PROXY=${PGVALVE_PROXY:-$BUILD_DIR/bin/pgvalve-proxy} ;;
*) PGVALVE_PROXY=${PGVALVE_PROXY:-$PGV_REPO/${BUILD_DIR:-build}/bin/pgvalve-proxy} ;;
esac

PGV_PROXY_PORT=
PGV_PROXY_ADMIN_PORT=
PGV_PROXY_PID=
PGV_PROXY_DIR=
PGV_PROXY_CONFIG=
PGV_PROXY_LOG=
PGV_PROXY_ADMIN_URL=
PGV_PROXY_EXIT=

pgv_proxy_require() {
	if [[ ! -x "$PGVALVE_PROXY" ]]; then
		pgv_log "proxy binary not found: $PGVALVE_PROXY"
		pgv_log "build it with deploy/local/build.sh, or point PGVALVE_PROXY at it"
		return 1
	fi
}

# Usage: pgv_proxy_start UPSTREAM_PORT
pgv_proxy_start() {
	local upstream_port=$1 dir
	pgv_proxy_require || return 1
	PGV_PROXY_PORT=$(pgv_free_port) || return 1
	PGV_PROXY_ADMIN_PORT=$(pgv_free_port) || return 1
	dir=$(mktemp -d "${TMPDIR:-/tmp}/pgvalve-proxy.XXXXXX") || return 1
	PGV_PROXY_DIR=$dir
	PGV_PROXY_CONFIG=$dir/pgvalve-proxy.json
	PGV_PROXY_LOG=$dir/proxy.log
	PGV_PROXY_ADMIN_URL=http://127.0.0.1:$PGV_PROXY_ADMIN_PORT
	local extra=
	if [[ -n ${PGV_PROXY_TLS_CERT:-} ]]; then
		extra=$'\n  '"\"tls\": {\"cert_file\": \"$PGV_PROXY_TLS_CERT\", \"key_file\": \"$PGV_PROXY_TLS_KEY\"},"
	fi
	if [[ -n ${PGV_PROXY_AUTH_USERLIST:-} ]]; then
		extra+=$'\n  '"\"auth\": {\"mode\": \"terminate\", \"userlist_file\": \"$PGV_PROXY_AUTH_USERLIST\"},"
	fi
	cat >"$PGV_PROXY_CONFIG" <<-EOF
		// Written by deploy/local/proxy.sh for a local run.
		{
		  "listen": {"host": "127.0.0.1", "port": $PGV_PROXY_PORT},
		  "upstream": {"host": "127.0.0.1", "port": $upstream_port,
		               "sslmode": "${PGV_PROXY_SSLMODE:-prefer}"},
		  "admin": {"host": "127.0.0.1", "port": $PGV_PROXY_ADMIN_PORT},$extra
		  "workers": ${PGV_PROXY_WORKERS:-0},
		  "limits": {"max_clients": ${PGV_PROXY_MAX_CLIENTS:-10000}},
		  "timeouts": {"shutdown_timeout_ms": ${PGV_PROXY_SHUTDOWN_MS:-5000}},
		  "log": {"level": "${PGV_PROXY_LOG_LEVEL:-info}", "format": "text"}
		}
	EOF
	if ! "$PGVALVE_PROXY" -c "$PGV_PROXY_CONFIG" --check >"$dir/check.log" 2>&1; then
		cat "$dir/check.log" >&2
		pgv_log "pgvalve-proxy --check rejected $PGV_PROXY_CONFIG"
		return 1
	fi
	"$PGVALVE_PROXY" -c "$PGV_PROXY_CONFIG" >"$PGV_PROXY_LOG" 2>&1 &
	PGV_PROXY_PID=$!
	if ! pgv_wait_for 15 pgv_proxy_ready; then
		tail -n 40 "$PGV_PROXY_LOG" >&2
		pgv_log "pgvalve-proxy did not become healthy within 15 s (log above: $PGV_PROXY_LOG)"
		return 1
	fi
	pgv_log "pgvalve-proxy pid $PGV_PROXY_PID on 127.0.0.1:$PGV_PROXY_PORT" \
		"-> 127.0.0.1:$upstream_port, admin $PGV_PROXY_ADMIN_URL (log $PGV_PROXY_LOG)"
}

# True once the process is alive and /healthz answers 200.
pgv_proxy_ready() {
	kill -0 "$PGV_PROXY_PID" 2>/dev/null || return 1
	curl -fsS --max-time 2 -o /dev/null "$PGV_PROXY_ADMIN_URL/healthz" 2>/dev/null
}

# GET an admin path; the body on stdout. Usage: pgv_proxy_get /status
pgv_proxy_get() {
	curl -fsS --max-time 10 "$PGV_PROXY_ADMIN_URL$1"
}

# Usage: pgv_proxy_request METHOD PATH [JSON_BODY]; prints the body, then the HTTP status
# on a last line of its own.
pgv_proxy_request() {
	local method=$1 path=$2 body=${3:-}
	curl -sS --max-time 10 -X "$method" -H 'Content-Type: application/json' \
		${body:+--data "$body"} -w '\n%{http_code}\n' "$PGV_PROXY_ADMIN_URL$path"
}

# Resident set size of a process in KiB (VmRSS). Usage: pgv_rss_kib PID
pgv_rss_kib() {
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null
}

# SIGTERM (drain), wait up to shutdown timeout + 5 s, then SIGKILL. Sets
# PGV_PROXY_EXIT to the exit status (128+N when killed by signal N).
pgv_proxy_stop() {
	local pid=$PGV_PROXY_PID limit
	if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		limit=$(((${PGV_PROXY_SHUTDOWN_MS:-5000} + 999) / 1000 + 5))
		if ! pgv_wait_for "$limit" pgv_pid_gone "$pid"; then
			pgv_log "pgvalve-proxy pid $pid still running ${limit}s after SIGTERM: SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		fi
		PGV_PROXY_EXIT=0
		wait "$pid" 2>/dev/null || PGV_PROXY_EXIT=$?
		if ((PGV_PROXY_EXIT != 0)); then
			pgv_log "pgvalve-proxy pid $pid exited with status $PGV_PROXY_EXIT after SIGTERM"
		fi
	fi
	PGV_PROXY_PID=
	if [[ -n "$PGV_PROXY_DIR" && "${PGV_KEEP_TMP:-0}" != 1 ]]; then
		rm -rf "$PGV_PROXY_DIR"
	fi
	PGV_PROXY_DIR=
}

pgv_pid_gone() { ! kill -0 "$1" 2>/dev/null; }
