#!/usr/bin/env bash
# BF16 vs FP32 on the kit's real photos (samples/imagenet224: 8 images): top-1 agreement and
# output error of `kiln run --precision bf16` against `kiln run` in FP32.
# Usage: bench/bf16_accuracy.sh [MODEL...]   (default: resnet50 mobilenet_v2 googlenet squeezenet1_1)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${KILN_BENCH_CACHE:-$HOME/.cache/kiln-bench}
KILN=${KILN:-$ROOT/build/kiln}
PY=/usr/bin/python3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
in=$($PY "$ROOT/bench/io_json.py" to-npy "$CACHE/samples/imagenet224" "$W/in")
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(resnet50 mobilenet_v2 googlenet squeezenet1_1)
echo "| model | images | top-1 agreement bf16 vs fp32 | max abs err | max abs logit |"
echo "|---|---:|---:|---:|---:|"
for m in "${models[@]}"; do
  for p in fp32 bf16; do
    "$KILN" run "$CACHE/models/$m.onnx" $in --precision $p -o "$W/$m-$p" >/dev/null 2>&1
  done
  $PY - "$W/$m-fp32" "$W/$m-bf16" "$m" <<'PY'
import glob, sys, numpy as np
a = np.load(glob.glob(sys.argv[1] + "/0_*.npy")[0]); b = np.load(glob.glob(sys.argv[2] + "/0_*.npy")[0])
agree = int((a.argmax(1) == b.argmax(1)).sum())
print(f"| {sys.argv[3]} | {a.shape[0]} | {agree}/{a.shape[0]} | {np.abs(a - b).max():.3g} | {np.abs(a).max():.3g} |")
PY
done
