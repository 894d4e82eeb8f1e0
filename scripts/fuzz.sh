#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) into build-fuzz/ with clang-14 (ASan + UBSan +
# coverage), makes the seed corpus (fuzz/make_corpus.sh) and runs each target for a fixed
# time on a fresh copy of it (build-fuzz/corpus-run/). Exits non-zero if a target crashes
# (or leaks, times out, runs out of memory), printing the input that did it.
#
# Usage: scripts/fuzz.sh [target...]     (default: all of ALL_TARGETS below)
# env: FUZZ_SECONDS  seconds per target (default 60)
#      KILN_JOBS     build parallelism (default 1)
#      FUZZ_KEEP_GOING=1  go on after a crash (libFuzzer -fork=1 -ignore_crashes=1 ...) for the
#                    whole FUZZ_SECONDS, collecting every crash input (still exits non-zero)
#      KILN          the `kiln` binary that builds the plan seeds (default: build-fuzz/kiln,
#                    else build/kiln; without one the plan corpus has no seeds)
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_NOHASHDIR=1  # ccache may reuse objects across build directories

BUILD_DIR=build-fuzz
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
JOBS=${KILN_JOBS:-1}
ALL_TARGETS=(fuzz_plan_loader fuzz_onnx_importer fuzz_tensor_file fuzz_external_data fuzz_infer_request fuzz_calib_cache)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

command -v clang++-14 >/dev/null || { echo "fuzz.sh: clang++-14 not found (scripts/install-deps.sh)" >&2; exit 2; }
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

echo "fuzz.sh: configuring $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DKILN_FUZZ=ON -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_PYTHON=OFF "${LAUNCHER[@]}" >/dev/null
echo "fuzz.sh: building ${TARGETS[*]} (-j $JOBS)"
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]}"

# ---- seed corpus ----
KILN_BIN=${KILN:-}
if [ -z "$KILN_BIN" ]; then
  for k in "$BUILD_DIR/kiln" build/kiln; do
    if [ -x "$k" ]; then KILN_BIN=$k; break; fi
  done
fi
[ -n "$KILN_BIN" ] || echo "fuzz.sh: no kiln binary (build/kiln, $BUILD_DIR/kiln): no plan seeds" >&2
# Made afresh each time: plans are not byte-identical from build to build (kernel timing),
# so old and new plan seeds would pile up.
rm -rf "$BUILD_DIR/corpus"
fuzz/make_corpus.sh "$BUILD_DIR/corpus" "${KILN_BIN:-}"

# ---- run ----
declare -A CORPUS=([fuzz_plan_loader]=plan [fuzz_onnx_importer]=onnx [fuzz_tensor_file]=tensor [fuzz_external_data]=extdata [fuzz_infer_request]=infer [fuzz_calib_cache]=calib)
# Extra libFuzzer options per target. The file readers must check sizes against the file
# before allocating: a single allocation over 64 MiB from inputs of a few KiB is a finding.
declare -A OPTIONS=([fuzz_tensor_file]="-malloc_limit_mb=64" [fuzz_external_data]="-malloc_limit_mb=64" [fuzz_infer_request]="-malloc_limit_mb=64")
# libFuzzer's own options; ASan/UBSan abort on the first error so libFuzzer keeps the input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # no thread pool per input: libFuzzer runs one at a time
# summarize CRASH_INPUT...: reads each input's rerun log (INPUT.txt).
summarize() {
  local f
  for f in "$@"; do
    awk -v src="$PWD/src/" '
      function flush() { if (kind != "") print kind "  at  " (where != "" ? where : at0); kind = ""; where = "" }
      function here(line) { sub(/:[0-9]+:[0-9]+: runtime error:.*/, "", line); sub(/.*\//, "", line); return line }
      /runtime error: / { flush(); k = $0; sub(/.*runtime error: /, "", k); sub(/ *(0x|[0-9]).*$/, "", k); sub(/[: ]+$/, "", k); kind = "UBSan: " k; at0 = here($0); next }
      /ERROR: (AddressSanitizer|LeakSanitizer): / { flush(); k = $0; sub(/.*Sanitizer: /, "", k); sub(/ .*$/, "", k); kind = "ASan: " k; at0 = "?"; next }
      /INVARIANT VIOLATED: / { flush(); k = $0; sub(/.*INVARIANT VIOLATED: /, "", k); gsub(/\047[^\047]*\047/, "\047...\047", k); kind = "invariant: " k; at0 = "?"; next }
      /ERROR: libFuzzer: (out-of-memory|timeout)/ { flush(); k = $0; sub(/.*libFuzzer: /, "", k); sub(/ .*$/, "", k); kind = "libFuzzer: " k; at0 = "?"; next }
      kind != "" && where == "" && /^ *#[0-9]+ / && index($0, src) { w = $0; sub(/^ *#[0-9]+ 0x[0-9a-f]+ in /, "", w); sub(src, "src/", w); where = w }
      END { flush() }' "$f.txt"
  done | sort | uniq -c | sort -rn
}
KEEP_GOING=()
if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then KEEP_GOING=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1); fi
mkdir -p "$BUILD_DIR/fuzz-logs"
failed=()
for t in "${TARGETS[@]}"; do
  kind=${CORPUS[$t]:?unknown fuzz target $t}
  read -r -a opts <<<"${OPTIONS[$t]:-}"
  run_dir=$BUILD_DIR/corpus-run/$kind
  crash_dir=$BUILD_DIR/crashes/$t
  log=$BUILD_DIR/fuzz-logs/$t.log
  rm -rf "$run_dir" && mkdir -p "$run_dir" "$crash_dir"
  cp -r "$BUILD_DIR/corpus/$kind/." "$run_dir/"
  # Artifacts of an earlier run are not this run's finds: moved aside, not deleted.
  old=$crash_dir/previous-$(date +%Y%m%d-%H%M%S)
  find "$crash_dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) \
    -exec mkdir -p "$old" \; -exec mv -t "$old" {} +
  echo "fuzz.sh: $t for ${FUZZ_SECONDS}s on $(find "$run_dir" -type f | wc -l) seeds (log: $log)"
  rc=0
  "$BUILD_DIR/fuzz/$t" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    "${opts[@]}" "${KEEP_GOING[@]}" -artifact_prefix="$crash_dir/" "$run_dir" >"$log" 2>&1 || rc=$?
  # The last status line ("#N DONE cov: ... exec/s: ...") and the final stats.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  grep -E '^stat::' "$log" | awk '!seen[$0]++' || true
  echo "fuzz.sh: $t corpus $(find "$run_dir" -type f | wc -l) files"
  mapfile -t found < <(find "$crash_dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
  if [ "$rc" -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
    echo "fuzz.sh: $t FAILED (exit $rc); see $log" >&2
    # Each input run again on its own (fork mode logs no stacks), then one line per distinct
    # finding: its kind and the first stack frame in src/ (else where it was detected), counted.
    for f in "${found[@]:0:20}"; do
      "$BUILD_DIR/fuzz/$t" -rss_limit_mb=2048 -timeout=10 "${opts[@]}" "$f" >"$f.txt" 2>&1 || true
    done
    summarize "${found[@]:0:20}" >&2
    for f in "${found[@]:0:20}"; do echo "fuzz.sh: crash input: $f  (stack: $f.txt)" >&2; done
    [ ${#found[@]} -le 20 ] || echo "fuzz.sh: ... ${#found[@]} inputs in all under $crash_dir" >&2
    failed+=("$t")
  else
    echo "fuzz.sh: $t: no crash"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: all targets ran ${FUZZ_SECONDS}s without a crash"
