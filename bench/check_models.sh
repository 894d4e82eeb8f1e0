#!/usr/bin/env bash
# Runs the benchmark models (../shared/bench: the five PyTorch exports, the zoo of eleven more
# when exported, the real models) through `kiln run --strict` on the kit's reference inputs
# and compares kiln's outputs with ONNX Runtime's (rtol 1e-3, atol 1e-4, or the looser bound
# the kit's manifest gives a model: fcn_resnet50 atol 5e-4; fp16 models (IS-Net fp32)
# atol 5e-3: ORT rounds their interior to fp16) using the kit's compare script. --strict: a layer on a
# reference implementation fails the model. Models not in the cache are listed as missing.
# KILN_RUN_FLAGS adds flags to `kiln run`. Needs the kit set up (see ../shared/bench/README.md).
# Usage: bench/check_models.sh [MODEL...]
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KILN_BENCH_KIT:-$ROOT/../shared/bench}
CACHE=${KILN_BENCH_CACHE:-$HOME/.cache/kiln-bench}
KILN=${KILN:-$ROOT/build/kiln}
WORK=$CACHE/kiln-check
PY=/usr/bin/python3
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(resnet50 mobilenet_v2 squeezenet1_1 googlenet transformer_encoder
  densenet121 efficientnet_b0 vit_b_16 mobilenet_v3_large inception_v3 alexnet regnet_x_400mf squeezenet1_0
  wide_resnet50_2 lraspp_mobilenet_v3_large fcn_resnet50
  ppocrv4_det ppocrv4_rec ppocr_mobile_v2_cls oww_hello_deepa isnet_fp32)
printf '| model | inputs | kiln run s | max abs err vs ORT | allclose (rtol 1e-3, atol) |\n|---|---|---:|---:|---|\n'
status=0
for m in "${models[@]}"; do
  rtol=1e-3
  atol=$($PY -c "
import json, sys
try:
    m = json.load(open('$CACHE/models/manifest.json'))['models'].get('$m', {})
    print((m.get('compare') or {}).get('atol', 1e-4))
except Exception:
    print(1e-4)")
  # An fp16 model (fp16 weights): ORT rounds its interior to fp16, kiln computes it in fp32.
  fp16=$($PY -c "
import json
try:
    i = json.load(open('$CACHE/real/info.json')).get('$m.onnx', {})
    print(1 if 'float16' in i.get('initializer_elements_by_dtype', {}) else 0)
except Exception:
    print(0)")
  [ "$fp16" = 1 ] && atol=5e-3
  if [ ! -f "$CACHE/models/$m.onnx" ] && [ ! -f "$CACHE/real/$m.onnx" ]; then
    echo "| $m | missing (export/fetch it: ../shared/bench/README.md) | | | |"
    continue
  fi
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
  if ! "$KILN" run --strict ${KILN_RUN_FLAGS:-} "$onnx" "${ins[@]}" --output-dir "$WORK/$m/out" >"$WORK/$m/run.log" 2>&1; then
    echo "| $m | $shape | | kiln failed: $(grep -m1 error "$WORK/$m/run.log") | no |"
    status=1
    continue
  fi
  t1=$EPOCHREALTIME
  $PY "$ROOT/bench/io_json.py" from-npy "$onnx" "$WORK/$m/out" "$WORK/$m/kiln"
  cmp=$(node "$KIT/peer/compare_outputs.js" "$ref" "$WORK/$m/kiln" --rtol $rtol --atol $atol --json "$WORK/$m/compare.json" 2>&1)
  rc=$?
  err=$($PY -c "
import json
j = json.load(open('$WORK/$m/compare.json'))
print('%.2e' % max(o.get('max_abs', float('inf')) for o in j['outputs'].values()))" 2>/dev/null || echo "?")
  printf '| %s | %s | %.1f | %s | %s |\n' "$m" "$shape" "$($PY -c "print($t1 - $t0)")" "$err" "$([ $rc -eq 0 ] && echo yes || echo NO) ($atol)"
  [ $rc -eq 0 ] || { status=1; echo "$cmp" | tail -3; }
done
exit $status
