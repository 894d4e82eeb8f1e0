#!/usr/bin/env bash
# Graph size after optimization, ONNX Runtime vs kiln, for the benchmark models (../shared/bench):
# ORT (CPU, graphOptimizationLevel 'all' as in the kit's ort_bench.js) saves its optimized graph
# (session option optimizedModelFilePath), kiln reports its layers with `kiln inspect --json`, and
# bench/ort_optimized_counts.py prints a Markdown table side by side. ORT's graph at level 'all' holds
# its internal ops (com.microsoft FusedConv, NCHWc Conv and Reorder*): fine for counting, not portable.
# Needs the kit set up (see ../shared/bench/README.md). Usage: bench/ort_optimized_counts.sh [MODEL...]
# Files go to $KILN_BENCH_CACHE/kiln-ort-opt/MODEL/, never into the repository.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KILN_BENCH_KIT:-$ROOT/../shared/bench}
CACHE=${KILN_BENCH_CACHE:-$HOME/.cache/kiln-bench}
KILN=${KILN:-$ROOT/build/kiln}
WORK=$CACHE/kiln-ort-opt
PY=/usr/bin/python3  # Debian's: has onnx and numpy (the pyenv python3 on PATH has neither)
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(resnet50 mobilenet_v2 squeezenet1_1 googlenet transformer_encoder ppocrv4_det ppocrv4_rec ppocr_mobile_v2_cls oww_hello_deepa)
done_models=()
status=0
for m in "${models[@]}"; do
  d=$WORK/$m
  rm -rf "$d"
  mkdir -p "$d"
  shapes=()
  if [ -f "$CACHE/models/$m.onnx" ]; then
    onnx=$CACHE/models/$m.onnx  # dynamic batch: kiln plans it at 1, ORT's graph does not depend on it
  elif [ -f "$CACHE/real/$m.onnx" ]; then
    onnx=$CACHE/real/$m.onnx
    # Real models have dynamic spatial sizes: give kiln the shapes of the kit's reference inputs.
    if [ -f "$CACHE/real/io/$m/ort/io.json" ]; then
      mapfile -t shapes < <($PY -c "
import json, sys
for t in json.load(open(sys.argv[1]))['inputs']:
    print('--shapes'); print(t['name'] + '=' + 'x'.join(map(str, t['shape'])))" "$CACHE/real/io/$m/ort/io.json")
    fi
  else
    echo "$m: no model in $CACHE/models or $CACHE/real (set up the kit: ../shared/bench/README.md)" >&2
    status=1
    continue
  fi
  echo "$onnx" >"$d/source"
  # Same session options as the kit's ort_bench.js (1 thread); creating the session runs the
  # optimizer and writes the file.
  if ! node - "$KIT/peer/lib.js" "$onnx" "$d/ort_optimized.onnx" >"$d/ort.log" 2>&1 <<'JS'
const [libPath, model, out] = process.argv.slice(2);
const { loadOrt } = require(libPath);
(async () => {
  const { ort, version } = loadOrt();
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1, executionMode: 'sequential',
    logSeverityLevel: 3, optimizedModelFilePath: out,
  });
  await session.release();
  console.log(`onnxruntime-node ${version}`);
})().catch((e) => { console.error(`${model}: ${e.message}`); process.exit(1); });
JS
  then
    echo "$m: ORT failed: $(tail -1 "$d/ort.log")" >&2
    status=1
  fi
  if ! "$KILN" inspect "$onnx" "${shapes[@]}" --json >"$d/kiln.json" 2>"$d/kiln.log"; then
    echo "$m: kiln inspect failed: $(grep -m1 error "$d/kiln.log")" >&2
    status=1
  fi
  done_models+=("$m")
done
[ ${#done_models[@]} -gt 0 ] || exit 1
$PY "$ROOT/bench/ort_optimized_counts.py" "$WORK" "${done_models[@]}" || status=1
exit $status
