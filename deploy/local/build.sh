#!/usr/bin/env bash
# Installs missing build dependencies, configures with CMake and builds.
#
# Usage: deploy/local/build.sh [EXTRA_CMAKE_CONFIGURE_ARGS...]
#   BUILD_TYPE=Release|Debug|Asan   (default Release)
#   BUILD_DIR=DIR                   (default build, relative to the repository)
#   JOBS=N                          (default: nproc)
# Binaries land in $BUILD_DIR/bin: pgvalve-proxy, pgvalve.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

BUILD_TYPE=${BUILD_TYPE:-Release}
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

"$HERE/install-deps.sh"

cd "$REPO"
echo "build: cmake -S . -B $BUILD_DIR -DCMAKE_BUILD_TYPE=$BUILD_TYPE $*" >&2
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
