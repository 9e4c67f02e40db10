# shellcheck shell=bash
# Starts and stops Debian's PgBouncer in session mode in front of a server
# started by pg.sh, for comparisons. Source pg.sh first, then this file:
#
#   pgv_bouncer_start "$PGV_PG_PORT"      # sets PGV_BOUNCER_PORT, PGV_BOUNCER_PID, ...
#   pgv_bouncer_stop
#
# Clients authenticate to PgBouncer with SCRAM against a userlist holding the
# pgvalve role's password; PgBouncer logs in to the server with it. It runs as
# the server user (PgBouncer refuses root), daemonized with a pid file.
# Knobs: PGV_BOUNCER_MAX_CLIENTS (3000), PGV_BOUNCER_POOL_SIZE (2200),
# PGV_BOUNCER_SSLMODE (server_tls_sslmode, default disable), PGV_BOUNCER_CLIENT_TLS_CERT +
# PGV_BOUNCER_CLIENT_TLS_KEY (client_tls_sslmode = require with that cert; default none).
#
# Globals: PGV_BOUNCER_PORT PGV_BOUNCER_PID PGV_BOUNCER_DIR PGV_BOUNCER_LOG.

PGV_BOUNCER_BIN=${PGV_BOUNCER_BIN:-/usr/sbin/pgbouncer}
PGV_BOUNCER_PORT=
PGV_BOUNCER_PID=
PGV_BOUNCER_DIR=
PGV_BOUNCER_LOG=

# Usage: pgv_bouncer_start UPSTREAM_PORT
pgv_bouncer_start() {
	local upstream_port=$1 dir ini
	[[ -x "$PGV_BOUNCER_BIN" ]] ||
		{ pgv_log "pgbouncer not found (deploy/local/install-deps.sh installs it)"; return 1; }
	PGV_BOUNCER_PORT=$(pgv_free_port) || return 1
	dir=$(pgv_server_tmpdir pgvalve-bouncer) || return 1
	PGV_BOUNCER_DIR=$dir
	PGV_BOUNCER_LOG=$dir/pgbouncer.log
	ini=$dir/pgbouncer.ini
	local client_tls=disable
	if [[ -n ${PGV_BOUNCER_CLIENT_TLS_CERT:-} ]]; then client_tls=require; fi
	printf '"%s" "%s"\n' "$PGV_PG_USER" "$PGV_PG_PASSWORD" >"$dir/userlist.txt"
	cat >"$ini" <<-EOF
		[databases]
		* = host=127.0.0.1 port=$upstream_port

		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $PGV_BOUNCER_PORT
		unix_socket_dir =
		auth_type = scram-sha-256
		auth_file = $dir/userlist.txt
		pool_mode = session
		max_client_conn = ${PGV_BOUNCER_MAX_CLIENTS:-3000}
		default_pool_size = ${PGV_BOUNCER_POOL_SIZE:-2200}
		max_db_connections = 0
		max_user_connections = 0
		server_tls_sslmode = ${PGV_BOUNCER_SSLMODE:-disable}
		client_tls_sslmode = $client_tls
		client_tls_cert_file = ${PGV_BOUNCER_CLIENT_TLS_CERT:-}
		client_tls_key_file = ${PGV_BOUNCER_CLIENT_TLS_KEY:-}
		ignore_startup_parameters = extra_float_digits
		logfile = $PGV_BOUNCER_LOG
		pidfile = $dir/pgbouncer.pid
		log_connections = 0
		log_disconnections = 0
		admin_users = $PGV_PG_USER
	EOF
	if ((EUID == 0)); then chown postgres:postgres "$dir"/*; fi
	chmod 600 "$dir/userlist.txt"
	if ! pgv_as_server_user "$dir" "$PGV_BOUNCER_BIN" -d -q "$ini" >"$dir/start.log" 2>&1; then
		cat "$dir/start.log" "$PGV_BOUNCER_LOG" >&2 2>/dev/null
		pgv_log "pgbouncer did not start (log above)"
		return 1
	fi
	if ! pgv_wait_for 15 pgv_bouncer_ready; then
		tail -n 30 "$PGV_BOUNCER_LOG" >&2 2>/dev/null
		pgv_log "pgbouncer did not listen within 15 s (log above)"
		return 1
	fi
	PGV_BOUNCER_PID=$(head -n 1 "$dir/pgbouncer.pid")
	pgv_log "pgbouncer $("$PGV_BOUNCER_BIN" --version | head -n 1 | awk '{print $2}')" \
		"pid $PGV_BOUNCER_PID on 127.0.0.1:$PGV_BOUNCER_PORT -> 127.0.0.1:$upstream_port (session mode)"
}

pgv_bouncer_ready() {
	[[ -s "$PGV_BOUNCER_DIR/pgbouncer.pid" ]] &&
		"$PGV_PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PGV_BOUNCER_PORT" -t 2 >/dev/null 2>&1
}

# SIGTERM (immediate shutdown in PgBouncer 1.18), bounded wait, then SIGKILL.
pgv_bouncer_stop() {
	local pid=$PGV_BOUNCER_PID
	if [[ -z "$pid" && -n "$PGV_BOUNCER_DIR" && -s "$PGV_BOUNCER_DIR/pgbouncer.pid" ]]; then
		pid=$(head -n 1 "$PGV_BOUNCER_DIR/pgbouncer.pid")
	fi
	if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		if ! pgv_wait_for 10 pgv_pid_gone "$pid"; then
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	PGV_BOUNCER_PID=
	if [[ -n "$PGV_BOUNCER_DIR" && "${PGV_KEEP_TMP:-0}" != 1 ]]; then
		rm -rf "$PGV_BOUNCER_DIR"
	fi
	PGV_BOUNCER_DIR=
}

pgv_pid_gone() { ! kill -0 "$1" 2>/dev/null; }
