#!/usr/bin/env bash
# clang-format (.clang-format, clang-format-14 from Debian) over the directories that are
# formatted already: they must stay so. A directory joins FORMATTED once it has been run
# through `clang-format-14 -i` (the rest of src/ predates the habit; issue #16).
# Usage: scripts/check_format.sh   (exit 1 listing the files that would change)
set -u
cd "$(dirname "$0")/.."
FORMATTED=(src/runtime src/backends/backend.h src/backends/backend.cc src/backends/partition.h src/backends/partition.cc
           src/backends/ref/ref_backend.h src/backends/ref/ref_backend.cc src/backends/cpu/backend.cc)
CF=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$CF" ]; then
  echo "check_format: clang-format-14 not installed (scripts/install-deps.sh installs it)"
  exit 1
fi
bad=0
while IFS= read -r f; do
  if ! "$CF" --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "format: $f differs from clang-format (run: $CF -i $f)"
    bad=1
  fi
done < <(find "${FORMATTED[@]}" -name '*.h' -o -name '*.cc' | sort)
[ "$bad" -eq 0 ] && echo "check_format: ${FORMATTED[*]} formatted"
exit $bad
