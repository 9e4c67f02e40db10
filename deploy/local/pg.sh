# shellcheck shell=bash
# Throwaway PostgreSQL for the demo and the benchmarks. Source it from bash:
#
#   source deploy/local/pg.sh
#   trap pgv_pg_stop_all EXIT
#   pgv_pg_start max_connections=2200 shared_buffers=256MB
#   pgv_pg_psql -c 'select 1'            # as the superuser pgvalve
#   pgv_with_port "$PGV_PG_PORT" pgbench -S -T 5
#
# pgv_pg_start runs initdb in a fresh temp dir (scram-sha-256, superuser role
# "pgvalve" with password "pgvalve", database "pgvalve", pg_hba allowing
# 127.0.0.1 only) and starts the server on a free port of 127.0.0.1. As root the
# server runs as the "postgres" system user (initdb refuses root); otherwise as
# the calling user. The data is disposable, so durability is off by default
# (fsync, synchronous_commit, full_page_writes): benchmarks then measure CPU and
# protocol cost, not the disk. Any NAME=VALUE argument overrides a setting.
#
# Globals set by pgv_pg_start: PGV_PG_PORT PGV_PG_DIR PGV_PG_DATA PGV_PG_LOG.
# Every wait is bounded; pgv_pg_stop_all stops every server this shell started.

PGV_PG_BINDIR=${PGV_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PGV_PG_HOST=127.0.0.1
PGV_PG_USER=${PGV_PG_USER:-pgvalve}
PGV_PG_PASSWORD=${PGV_PG_PASSWORD:-pgvalve}
PGV_PG_DB=${PGV_PG_DB:-pgvalve}
PGV_PG_START_TIMEOUT=${PGV_PG_START_TIMEOUT:-60}
# Set PGV_KEEP_TMP=1 to keep data dirs and logs after stopping (debugging).
PGV_KEEP_TMP=${PGV_KEEP_TMP:-0}

PGV_PG_PORT=
PGV_PG_DIR=
PGV_PG_DATA=
PGV_PG_LOG=
PGV_PG_DIRS=()        # every data dir started by this shell, for pgv_pg_stop_all
PGV_USED_PORTS=()     # ports already handed out by pgv_free_port

pgv_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
pgv_die() { pgv_log "error: $*"; exit 1; }

# The OS user that runs servers (postgres as root, else ourselves).
pgv_server_user() {
	if ((EUID == 0)); then echo postgres; else id -un; fi
}

# Runs a command as the server user, from a directory that user can enter.
# runuser goes through PAM, whose pam_limits resets the open-files soft limit
# (to 1024 here): the command gets this shell's soft limit back.
# Usage: pgv_as_server_user DIR CMD [ARGS...]
pgv_as_server_user() {
	local dir=$1; shift
	if ((EUID == 0)); then
		(cd "$dir" && runuser -u postgres -- /bin/sh -c 'ulimit -n "$0" 2>/dev/null; exec "$@"' \
			"$(ulimit -Sn)" "$@")
	else
		(cd "$dir" && "$@")
	fi
}

# A fresh temp dir owned by the server user. Usage: pgv_server_tmpdir PREFIX
pgv_server_tmpdir() {
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || return 1
	chmod 700 "$d"
	if ((EUID == 0)); then chown postgres:postgres "$d"; fi
	echo "$d"
}

# Prints a TCP port on 127.0.0.1 that nothing listens on, below the kernel's
# ephemeral range (so outgoing connections cannot grab it before we bind it),
# and not handed out before by this shell. Bounded: 200 attempts.
pgv_free_port() {
	local port tries=0 used
	while ((tries++ < 200)); do
		port=$((20000 + RANDOM % 12000))
		for used in "${PGV_USED_PORTS[@]}"; do
			[[ $used == "$port" ]] && continue 2
		done
		if /usr/bin/python3 - "$port" <<-'EOF' 2>/dev/null
			import socket, sys
			s = socket.socket()
			s.bind(("127.0.0.1", int(sys.argv[1])))
			s.close()
		EOF
		then
			PGV_USED_PORTS+=("$port")
			echo "$port"
			return 0
		fi
	done
	pgv_log "no free port found in 200 tries"
	return 1
}

# Runs a command with libpq's environment pointing at 127.0.0.1:PORT as pgvalve.
# Usage: pgv_with_port PORT CMD [ARGS...]
pgv_with_port() {
	local port=$1; shift
	PGHOST=$PGV_PG_HOST PGPORT=$port PGUSER=$PGV_PG_USER PGPASSWORD=$PGV_PG_PASSWORD \
		PGDATABASE=$PGV_PG_DB PGSSLMODE=${PGSSLMODE:-disable} PGCONNECT_TIMEOUT=10 \
		PGAPPNAME=${PGAPPNAME:-pgvalve-local} "$@"
}

# psql straight to the server (not through any proxy), stopping on errors.
pgv_pg_psql() {
	pgv_with_port "$PGV_PG_PORT" "$PGV_PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}

# A libpq URL for the server, or for another PORT (a proxy in front of it).
pgv_pg_url() {
	echo "postgresql://$PGV_PG_USER:$PGV_PG_PASSWORD@$PGV_PG_HOST:${1:-$PGV_PG_PORT}/$PGV_PG_DB"
}

# Usage: pgv_pg_start [NAME=VALUE ...]   (postgresql.conf settings)
pgv_pg_start() {
	local dir port setting
	[[ -x "$PGV_PG_BINDIR/initdb" ]] ||
		pgv_die "$PGV_PG_BINDIR/initdb not found (install postgresql-15: deploy/local/install-deps.sh)"
	port=$(pgv_free_port) || return 1
	dir=$(pgv_server_tmpdir pgvalve-pg) || return 1
	PGV_PG_DIRS+=("$dir/data")

	printf '%s\n' "$PGV_PG_PASSWORD" >"$dir/pwfile"
	if ((EUID == 0)); then chown postgres:postgres "$dir/pwfile"; fi
	if ! pgv_as_server_user "$dir" "$PGV_PG_BINDIR/initdb" -D "$dir/data" -U "$PGV_PG_USER" \
		--pwfile="$dir/pwfile" --auth=scram-sha-256 -E UTF8 --locale=C --no-sync \
		>"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		pgv_log "initdb failed (log above)"
		return 1
	fi
	rm -f "$dir/pwfile"

	cat >"$dir/data/pg_hba.conf" <<-EOF
		# pgvalve throwaway server: passwords (SCRAM) over TCP from 127.0.0.1 only.
		local all all scram-sha-256
		host  all all 127.0.0.1/32 scram-sha-256
	EOF
	{
		echo "# pgvalve throwaway server"
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "password_encryption = 'scram-sha-256'"
		echo "max_connections = 200"
		echo "shared_buffers = 128MB"
		echo "fsync = off"
		echo "synchronous_commit = off"
		echo "full_page_writes = off"
		echo "log_line_prefix = '%m [%p] %q%u@%d '"
		echo "log_min_messages = warning"
		for setting in "$@"; do
			[[ $setting == *=* ]] || pgv_die "pgv_pg_start: expected NAME=VALUE, got '$setting'"
			echo "${setting%%=*} = '${setting#*=}'"
		done
	} >>"$dir/data/postgresql.conf"
	if ((EUID == 0)); then chown postgres:postgres "$dir/data/pg_hba.conf"; fi

	PGV_PG_PORT=$port
	PGV_PG_DIR=$dir
	PGV_PG_DATA=$dir/data
	PGV_PG_LOG=$dir/postgres.log
	if ! pgv_as_server_user "$dir" "$PGV_PG_BINDIR/pg_ctl" -D "$dir/data" -l "$PGV_PG_LOG" \
		-w -t "$PGV_PG_START_TIMEOUT" start >"$dir/pg_ctl.log" 2>&1; then
		cat "$dir/pg_ctl.log" >&2
		tail -n 30 "$PGV_PG_LOG" >&2 2>/dev/null
		pgv_log "PostgreSQL did not start (logs above)"
		return 1
	fi
	# The bootstrap superuser is pgvalve; give it a database of its own name so
	# clients need no dbname.
	local db=$PGV_PG_DB
	PGV_PG_DB=postgres pgv_pg_psql -c "CREATE DATABASE \"$db\"" || return 1
	pgv_log "PostgreSQL $("$PGV_PG_BINDIR/postgres" -V | awk '{print $3}') on" \
		"127.0.0.1:$port (data $dir/data, log $PGV_PG_LOG)"
}

# Stops one server given its data dir (default: the last started) and removes
# its temp dir. Bounded: fast shutdown 30 s, then immediate, then SIGKILL.
pgv_pg_stop() {
	local data=${1:-$PGV_PG_DATA} dir pid
	[[ -n "$data" && -d "$data" ]] || return 0
	dir=$(dirname "$data")
	if [[ -f "$data/postmaster.pid" ]]; then
		if ! pgv_as_server_user "$dir" "$PGV_PG_BINDIR/pg_ctl" -D "$data" -m fast -w -t 30 \
			stop >/dev/null 2>&1; then
			pgv_as_server_user "$dir" "$PGV_PG_BINDIR/pg_ctl" -D "$data" -m immediate -w -t 10 \
				stop >/dev/null 2>&1 || true
		fi
		if [[ -f "$data/postmaster.pid" ]]; then
			pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
			[[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
		fi
	fi
	if [[ "$PGV_KEEP_TMP" == 1 ]]; then
		pgv_log "kept $dir"
	else
		rm -rf "$dir"
	fi
	if [[ "$data" == "$PGV_PG_DATA" ]]; then
		PGV_PG_PORT='' PGV_PG_DIR='' PGV_PG_DATA=''

	fi
}

pgv_pg_stop_all() {
	local d
	for d in "${PGV_PG_DIRS[@]}"; do
		pgv_pg_stop "$d"
	done
	PGV_PG_DIRS=()
}

# Waits up to SECONDS for COMMAND to succeed, polling every 0.1 s.
# Usage: pgv_wait_for SECONDS CMD [ARGS...]
pgv_wait_for() {
	local limit=$1 deadline; shift
	deadline=$((SECONDS + limit))
	while ((SECONDS < deadline)); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}

# Raises this shell's open-files limit (children inherit it) to at least N, or
# as far as the hard limit allows. Call it directly, not in $(...): a subshell's
# limit dies with it. Sets PGV_NOFILE to the resulting soft limit.
pgv_raise_nofile() {
	local want=$1 hard
	hard=$(ulimit -Hn)
	if [[ $hard != unlimited ]] && ((hard < want)); then
		ulimit -Hn "$want" 2>/dev/null || want=$hard
	fi
	ulimit -Sn "$want" 2>/dev/null || true
	PGV_NOFILE=$(ulimit -Sn)
}
