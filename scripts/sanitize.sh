#!/usr/bin/env bash
# Builds kiln with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs
# the unit tests, the conformance suite and the CLI tests under it.
set -euo pipefail
cd "$(dirname "$0")/.."
export KILN_BUILD_DIR=build-asan
scripts/build.sh -DKILN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DKILN_WERROR=OFF  # (-O0 + sanitizers warn differently)
# allocator_may_return_null: a failed huge allocation returns null as in a normal build,
# which kiln reports as an error (CLI tests feed it a 256 GiB tensor), instead of aborting.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-asan
ctest --output-on-failure -j "${KILN_JOBS:-$(nproc)}" "$@"
