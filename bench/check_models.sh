#!/usr/bin/env bash
# Runs the nine benchmark models (../shared/bench: 5 PyTorch exports, 4 real models) through
# `kiln run` on the kit's reference inputs and compares kiln's outputs with ONNX Runtime's
# (rtol 1e-3, atol 1e-4) using the kit's compare script. KILN_RUN_FLAGS=-O runs the optimizer first. Needs the kit set up (see
# ../shared/bench/README.md). Usage: bench/check_models.sh [MODEL...]
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KILN_BENCH_KIT:-$ROOT/../shared/bench}
CACHE=${KILN_BENCH_CACHE:-$HOME/.cache/kiln-bench}
KILN=${KILN:-$ROOT/build/kiln}
WORK=$CACHE/kiln-check
PY=/usr/bin/python3
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(resnet50 mobilenet_v2 squeezenet1_1 googlenet transformer_encoder ppocrv4_det ppocrv4_rec ppocr_mobile_v2_cls oww_hello_deepa)
printf '| model | inputs | kiln run s | max abs err vs ORT | allclose (1e-3, 1e-4) |\n|---|---|---:|---:|---|\n'
status=0
for m in "${models[@]}"; do
  if [ -f "$CACHE/models/$m.onnx" ]; then
    onnx=$CACHE/models/$m.onnx
    ref=$WORK/$m/ort
    if [ ! -f "$ref/io.json" ]; then  # ORT's outputs for the PyTorch reference inputs
      node "$KIT/peer/ort_bench.js" "$onnx" --threads 1 --no-latency --no-throughput \
        --inputs-from "$CACHE/models/io/$m/torch" --save-outputs "$ref" >/dev/null 2>&1 || { echo "| $m | ORT failed | | | |"; status=1; continue; }
    fi
  else
    onnx=$CACHE/real/$m.onnx
    ref=$CACHE/real/io/$m/ort
  fi
  rm -rf "$WORK/$m/npy" "$WORK/$m/out" "$WORK/$m/kiln"
  mapfile -t ins < <($PY "$ROOT/bench/io_json.py" to-npy "$ref" "$WORK/$m/npy")
  shape=$($PY -c "import json;print(' '.join('x'.join(map(str,t['shape'])) for t in json.load(open('$ref/io.json'))['inputs']))")
  t0=$EPOCHREALTIME
  if ! "$KILN" run ${KILN_RUN_FLAGS:-} "$onnx" "${ins[@]}" --output-dir "$WORK/$m/out" >"$WORK/$m/run.log" 2>&1; then
    echo "| $m | $shape | | kiln failed: $(grep -m1 error "$WORK/$m/run.log") | no |"
    status=1
    continue
  fi
  t1=$EPOCHREALTIME
  $PY "$ROOT/bench/io_json.py" from-npy "$onnx" "$WORK/$m/out" "$WORK/$m/kiln"
  cmp=$(node "$KIT/peer/compare_outputs.js" "$ref" "$WORK/$m/kiln" --rtol 1e-3 --atol 1e-4 --json "$WORK/$m/compare.json" 2>&1)
  rc=$?
  err=$($PY -c "
import json
j = json.load(open('$WORK/$m/compare.json'))
print('%.2e' % max(o.get('max_abs', float('inf')) for o in j['outputs'].values()))" 2>/dev/null || echo "?")
  printf '| %s | %s | %.1f | %s | %s |\n' "$m" "$shape" "$($PY -c "print($t1 - $t0)")" "$err" "$([ $rc -eq 0 ] && echo yes || echo NO)"
  [ $rc -eq 0 ] || { status=1; echo "$cmp" | tail -3; }
done
exit $status
