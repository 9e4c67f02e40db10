# shellcheck shell=bash
# Builds, starts and stops the floor of the benchmarks: bench/floor/forwarder.c,
# a minimal epoll TCP forwarder (no parsing) in front of a server started by
# deploy/local/pg.sh. Source pg.sh first, then this file:
#
#   floor_build "$WORK"                   # cc -O2 into $WORK/forwarder; sets FLOOR_BIN
#   floor_start "$PGV_PG_PORT" THREADS    # sets FLOOR_PORT, FLOOR_PID, FLOOR_LOG
#   floor_stop                            # SIGTERM; a non-zero exit is reported
#
# The forwarder is never installed and not part of the CMake build: each run
# compiles it fresh, so what is measured is the source in this tree.
# Knobs: CC (default cc); FLOOR_BALANCE (1, the default: -B, each accepted
# connection goes to the thread with the fewest open pairs, as pgvalve-proxy
# spreads sessions over its workers; 0: SO_REUSEPORT's hash alone);
# FLOOR_TLS_ARGS (an array: -S for TLS to the server, -C CERT -K KEY for TLS
# from clients; empty, the default: the floor relays bytes).

FLOOR_SRC=${FLOOR_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/floor/forwarder.c}
FLOOR_BIN=
FLOOR_PORT=
FLOOR_PID=
FLOOR_LOG=
FLOOR_THREADS=
FLOOR_EXIT=
FLOOR_BALANCE=${FLOOR_BALANCE:-1}
FLOOR_TLS_ARGS=()

# Usage: floor_build DIR
floor_build() {
	FLOOR_BIN=$1/forwarder
	if ! "${CC:-cc}" -O2 -pthread -o "$FLOOR_BIN" "$FLOOR_SRC" -lssl -lcrypto >"$1/forwarder-build.log" 2>&1; then
		cat "$1/forwarder-build.log" >&2
		pgv_log "could not compile $FLOOR_SRC with ${CC:-cc} -O2"
		return 1
	fi
}

# True once something accepts connections on the floor's port.
floor_ready() {
	kill -0 "$FLOOR_PID" 2>/dev/null || return 1
	/usr/bin/python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
		"$FLOOR_PORT" 2>/dev/null
}

# Usage: floor_start UPSTREAM_PORT THREADS. The log (stderr) is FLOOR_LOG: a start
# line, and per-thread connection and byte counts when it stops.
floor_start() {
	local upstream_port=$1 balance=()
	FLOOR_THREADS=$2
	if ((FLOOR_BALANCE)); then balance=(-B); fi
	FLOOR_PORT=$(pgv_free_port) || return 1
	FLOOR_LOG=$(dirname "$FLOOR_BIN")/forwarder-$FLOOR_PORT.log
	"$FLOOR_BIN" -t "$FLOOR_THREADS" "${balance[@]}" "${FLOOR_TLS_ARGS[@]}" -l "127.0.0.1:$FLOOR_PORT" \
		-u "127.0.0.1:$upstream_port" 2>"$FLOOR_LOG" &
	FLOOR_PID=$!
	if ! pgv_wait_for 10 floor_ready; then
		cat "$FLOOR_LOG" >&2
		pgv_log "the floor forwarder did not listen on 127.0.0.1:$FLOOR_PORT within 10 s"
		return 1
	fi
	pgv_log "floor forwarder pid $FLOOR_PID on 127.0.0.1:$FLOOR_PORT -> 127.0.0.1:$upstream_port" \
		"($FLOOR_THREADS thread(s)${balance:+, balanced}${FLOOR_TLS_ARGS:+, TLS ${FLOOR_TLS_ARGS[*]}}, log $FLOOR_LOG)"
}

# SIGTERM, bounded wait, then SIGKILL. Sets FLOOR_EXIT (0 is a clean shutdown).
floor_stop() {
	local pid=$FLOOR_PID
	FLOOR_EXIT=
	if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		if ! pgv_wait_for 10 floor_gone "$pid"; then
			pgv_log "floor forwarder pid $pid still running 10 s after SIGTERM: SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		fi
		FLOOR_EXIT=0
		wait "$pid" 2>/dev/null || FLOOR_EXIT=$?
		if ((FLOOR_EXIT != 0)); then
			pgv_log "floor forwarder pid $pid exited with status $FLOOR_EXIT after SIGTERM"
		fi
	fi
	FLOOR_PID=
}

floor_gone() { ! kill -0 "$1" 2>/dev/null; }
