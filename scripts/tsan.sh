#!/usr/bin/env bash
# Builds the unit tests with ThreadSanitizer into build-tsan/ and runs the engine's
# thread-safety tests under it: EngineThreads.* (8 execution contexts sharing one engine,
# KILN_STRESS_ITERS inferences each, 1000 here), Engine.ManyThreadsShareOneEngine and
# BatchParallel.* (slices of one batch on OpenMP threads, each with its own context) and
# PlanChecksum.* (a large plan's checksum blocks hashed on several threads).
# Exits non-zero on a data race (halt_on_error=1) or a test failure.
#
# oneDNN (libdnnl.so.2) and its OpenMP runtime (libgomp.so.1) are Debian's, not
# instrumented: scripts/tsan.supp ignores what TSan's interceptors see called from inside
# them, never a report with kiln's own code (src/) on it.
#
# Usage: scripts/tsan.sh [extra gtest args...]
# env: KILN_JOBS (build parallelism, default 1), KILN_STRESS_ITERS (default 1000),
#      TSAN_CXX (compiler, default c++ = GCC: the same libgomp as libdnnl; clang++-14 works
#      too, but then kiln's OpenMP runtime is LLVM's libomp next to oneDNN's libgomp)
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_NOHASHDIR=1  # ccache may reuse objects across build directories

BUILD_DIR=build-tsan
JOBS=${KILN_JOBS:-1}
CXX_BIN=${TSAN_CXX:-c++}
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

echo "tsan.sh: configuring $BUILD_DIR ($CXX_BIN)"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX_BIN" \
  -DKILN_TSAN=ON -DKILN_BUILD_TESTS=ON -DKILN_BUILD_PYTHON=OFF "${LAUNCHER[@]}" >/dev/null
echo "tsan.sh: building kiln_tests (-j $JOBS)"
cmake --build "$BUILD_DIR" -j "$JOBS" --target kiln_tests

export KILN_STRESS_ITERS=${KILN_STRESS_ITERS:-1000}
TSAN_OPTS="halt_on_error=1:second_deadlock_stack=1:history_size=7"
[ -f scripts/tsan.supp ] && TSAN_OPTS="$TSAN_OPTS:suppressions=$PWD/scripts/tsan.supp"
export TSAN_OPTIONS="$TSAN_OPTS${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
echo "tsan.sh: KILN_STRESS_ITERS=$KILN_STRESS_ITERS TSAN_OPTIONS=$TSAN_OPTIONS"
rc=0
"$BUILD_DIR/tests/kiln_tests" --gtest_filter='EngineThreads.*:*ManyThreads*:BatchParallel.*:PlanChecksum.*' "$@" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "tsan.sh: FAILED (exit $rc: 66 is a ThreadSanitizer report)" >&2
  exit "$rc"
fi
echo "tsan.sh: no data race, 8 threads x $KILN_STRESS_ITERS inferences (EngineThreads)"
