#!/usr/bin/env bash
# Builds kiln and runs the whole test suite: unit and op tests, ONNX conformance, CLI
# end-to-end. Usage: scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
BUILD_DIR=${KILN_BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "${KILN_JOBS:-$(nproc)}" "$@"
