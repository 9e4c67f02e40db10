#!/usr/bin/env bash
# The README's second command, and what CI runs: installs what is missing,
# builds, and runs every test (unit, integration against a real PostgreSQL,
# fuzz) in two builds:
#   build-asan  clang, ASan+UBSan, fuzz targets on  — catches memory errors
#   build       gcc, Release                        — what users run
# Both with warnings as errors. Exits non-zero if anything fails; the last
# line is ctest's summary of the final build.
#
#   PGVALVE_TEST_BUILDS="asan release"  which builds to test, in order
#   PGVALVE_FUZZ_SECONDS=20             how long each fuzz target runs
#   CTEST_ARGS="-R integration"         extra ctest arguments
set -euo pipefail
cd "$(dirname "$0")/../.."

deploy/local/install-deps.sh
jobs=$(nproc)
builds=${PGVALVE_TEST_BUILDS:-asan release}
fuzz_seconds=${PGVALVE_FUZZ_SECONDS:-20}
status=0

for b in $builds; do
	case $b in
	asan)
		dir=build-asan
		# Each fuzz target and most integration tests keep one core busy at most, and the
		# heavy ones share a resource lock: two at a time fits 2 cores.
		parallel=2
		cfg=(-DCMAKE_BUILD_TYPE=Asan -DCMAKE_C_COMPILER=clang -DPGVALVE_FUZZ=ON
		     -DPGVALVE_FUZZ_SECONDS="$fuzz_seconds")
		;;
	release)
		dir=build
		# Fast binaries leave the CPU mostly idle while tests wait on servers: two at a time.
		parallel=2
		cfg=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc)
		;;
	*)
		echo "test.sh: unknown build \"$b\" (asan, release)" >&2
		exit 2
		;;
	esac
	echo "==> $b build in $dir"
	cmake -S . -B "$dir" -DPGVALVE_WERROR=ON "${cfg[@]}" >/dev/null
	cmake --build "$dir" -j"$jobs"
	echo "==> $b tests"
	# Integration tests start their own servers on free ports; heavy ones hold a resource lock.
	if ! (cd "$dir" && ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	      ctest --output-on-failure -j"$parallel" ${CTEST_ARGS:-}); then
		status=1
	fi
done
exit $status
