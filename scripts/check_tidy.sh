#!/usr/bin/env bash
# clang-tidy (the agreed list in .clang-tidy; clang-tidy-14 from Debian) over every source in
# src/, from the build's compile_commands.json (run scripts/build.sh first). Fails on any
# finding; a deliberate exception carries a NOLINT(check) comment that says why.
# ~5 min on 2 cores. CI runs it after the tests (.ci/run).
# Usage: scripts/check_tidy.sh [path-regex ...]   env: KILN_BUILD_DIR (default build), KILN_JOBS
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KILN_BUILD_DIR:-build}
RUN=$(command -v run-clang-tidy-14 || command -v run-clang-tidy || true)
TIDY=$(command -v clang-tidy-14 || command -v clang-tidy || true)
if [ -z "$RUN" ] || [ -z "$TIDY" ]; then
  echo "check_tidy: clang-tidy-14 not installed (scripts/install-deps.sh installs it)"
  exit 1
fi
if [ ! -f "$BUILD_DIR/compile_commands.json" ]; then
  echo "check_tidy: no $BUILD_DIR/compile_commands.json (run scripts/build.sh first)"
  exit 1
fi
# The compile commands are GCC's: clang must not trip on GCC-only warning flags, attributes
# (optimize) or target_clones syntax.
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
"$RUN" -clang-tidy-binary "$TIDY" -p "$BUILD_DIR" -j "${KILN_JOBS:-$(nproc)}" -quiet \
  -extra-arg=-Wno-unknown-warning-option -extra-arg=-Wno-unknown-attributes \
  -extra-arg=-Wno-target-clones-mixed-specifiers "${@:-$PWD/src/}" >"$LOG" 2>&1
rc=$?
findings=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG" | grep -E '^/.*: (warning|error): ' | sort -u)
if [ "$rc" -ne 0 ] || [ -n "$findings" ]; then
  echo "$findings"
  [ -z "$findings" ] && tail -20 "$LOG"
  echo "check_tidy: $(printf '%s\n' "$findings" | grep -c . ) finding(s) (.clang-tidy lists the checks)"
  exit 1
fi
echo "check_tidy: no findings in src/"
