#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmarks need on Debian 12
# (bookworm). Idempotent: asks dpkg which packages are missing and runs apt-get
# only for those, so a machine that has everything is left untouched.
#
# Usage: deploy/local/install-deps.sh [EXTRA_PACKAGE...]
#   PGVALVE_SKIP_DEPS=1  do nothing (machines managed some other way)
set -euo pipefail

PACKAGES=(
	# build
	build-essential cmake pkg-config
	libevent-dev libssl-dev libpq-dev libcjson-dev libpg-query-dev
	# unit and fuzz tests
	libcmocka-dev clang libclang-rt-14-dev
	# integration tests, demo, benchmarks
	postgresql-15 postgresql-contrib pgbouncer graphviz
	python3-psycopg python3-psycopg2 python3-pytest
	# ORM bookkeeping tests (tests/integration/test_orm_bookkeeping.py): real Django and Alembic
	python3-django python3-alembic
	openssl curl
	# driver-compatibility tests (tests/integration/test_drivers.py): JDBC and pgx; node and
	# npm come with the machine image (NodeSource nodejs, which Debian's npm conflicts with)
	openjdk-17-jdk-headless libpostgresql-jdbc-java golang-go golang-github-jackc-pgx-v4-dev
	# deployment tests (tests/integration/test_deploy.py): Prometheus and promtool, manifests as YAML
	prometheus python3-yaml
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

if [[ "${PGVALVE_SKIP_DEPS:-0}" == 1 ]]; then
	log "PGVALVE_SKIP_DEPS=1: not checking packages"
	exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
	log "dpkg-query not found: this script supports Debian 12 (bookworm) and derivatives only"
	exit 1
fi

# node-postgres tests need node and npm. Machines that already have them (e.g. from
# NodeSource, whose nodejs conflicts with Debian's npm) keep theirs.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	PACKAGES+=(nodejs npm)
fi

PACKAGES+=("$@")

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	if [[ "$status" != installed ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	log "all ${#PACKAGES[@]} packages present"
	exit 0
fi

log "missing: ${missing[*]}"

SUDO=()
if ((EUID != 0)); then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		log "not root and no sudo: install these packages first: ${missing[*]}"
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
# Bounded: apt-get waits at most 5 minutes for another apt/dpkg holding the lock.
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
	-o DPkg::Lock::Timeout=300)

"${SUDO[@]}" apt-get "${APT_OPTS[@]}" update
"${SUDO[@]}" apt-get "${APT_OPTS[@]}" install --no-install-recommends "${missing[@]}"

still=()
for pkg in "${missing[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	[[ "$status" == installed ]] || still+=("$pkg")
done
if ((${#still[@]})); then
	log "still missing after apt-get: ${still[*]}"
	exit 1
fi
log "installed: ${missing[*]}"
