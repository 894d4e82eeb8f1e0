#!/usr/bin/env bash
# The layers of src/ (DESIGN.md), lowest first; a file may include headers of its own layer
# and of layers below it, never above. The runtime (libkiln_runtime) is everything up to
# `runtime`: a runtime file that includes a builder header (frontend, passes, builder, api)
# fails here, and CI runs this.
#   base < ir < plan < frontend/onnx, passes < builder < backends/ref < backends/cpu < runtime < api
# Usage: scripts/check_layers.sh   (from anywhere; exit 1 on a violation, listing each)
set -u
cd "$(dirname "$0")/.."
rank() {
  case "$1" in
    base) echo 0 ;; ir) echo 1 ;; plan) echo 2 ;; frontend) echo 3 ;; passes) echo 3 ;; builder) echo 4 ;;
    backends/ref) echo 5 ;; backends/cpu) echo 6 ;; backends) echo 5 ;; runtime) echo 7 ;; api) echo 8 ;; *) echo -1 ;;
  esac
}
layer_of() {  # src-relative path -> layer name
  case "$1" in
    backends/ref/*) echo backends/ref ;; backends/cpu/*) echo backends/cpu ;; backends/*) echo backends ;;
    *) echo "${1%%/*}" ;;
  esac
}
runtime_layers="base ir plan backends backends/ref backends/cpu runtime"
bad=0
while IFS= read -r f; do
  rel=${f#src/}
  from=$(layer_of "$rel")
  rf=$(rank "$from")
  while IFS= read -r inc; do
    [ -f "src/$inc" ] || continue  # generated (plan_generated.h) or not kiln's
    to=$(layer_of "$inc")
    rt=$(rank "$to")
    if [ "$rt" -gt "$rf" ]; then
      echo "layering: $f includes $inc ($from may not include $to)"
      bad=1
    fi
    if [[ " $runtime_layers " == *" $from "* && " $runtime_layers " != *" $to "* ]]; then
      echo "layering: $f is runtime code and includes builder header $inc"
      bad=1
    fi
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done < <(find src -name '*.h' -o -name '*.cc' | sort)
[ "$bad" -eq 0 ] && echo "check_layers: no include runs upward"
exit $bad
