#!/usr/bin/env bash
# Configures and builds kiln into build/ (Release-with-debug-info, Ninja, ccache if present),
# warnings in src/ as errors (KILN_WERROR; the demo, the tests and CI build the same way, so
# running one after the other rebuilds nothing; pass -DKILN_WERROR=OFF for another compiler).
# Usage: scripts/build.sh [extra cmake args...]   env: KILN_BUILD_DIR (default build), KILN_JOBS
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KILN_BUILD_DIR:-build}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WERROR=ON "$@" >/dev/null
else
  cmake -S . -B "$BUILD_DIR" -DKILN_WERROR=ON "$@" >/dev/null
fi
cmake --build "$BUILD_DIR" -j "${KILN_JOBS:-$(nproc)}" ${KILN_TARGETS:+--target $KILN_TARGETS}
