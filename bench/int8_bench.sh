#!/usr/bin/env bash
# INT8 against FP32 on the benchmark CNNs: calibration time, accuracy on evaluation crops
# from other photos (kiln compare: top-1 agreement, logit cosine), latency at batch 1 and
# throughput at batch 8, per calibrator.
#
#   bash bench/int8_bench.sh [MODELS...]     (default: resnet50 googlenet mobilenet_v2)
#
# Needs the benchmark models (../shared/bench/models/export_models.py) in
# ${KILN_BENCH_CACHE:-~/.cache/kiln-bench}/models and the crops of bench/int8_data.py in
# ${INT8_DATA:-/tmp/int8data} (made here when missing). Threads: KILN_THREADS (default 1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$ROOT/build/kiln}
CACHE=${KILN_BENCH_CACHE:-$HOME/.cache/kiln-bench}
DATA=${INT8_DATA:-/tmp/int8data}
THREADS=${KILN_THREADS:-1}
CALIBRATORS=${CALIBRATORS:-entropy percentile minmax}
OUT=${OUT:-/tmp/int8bench}
mkdir -p "$OUT"
[ -d "$DATA/calib" ] || /usr/bin/python3 "$ROOT/bench/int8_data.py" "$DATA" --calib 500 --eval 200
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet50 googlenet mobilenet_v2)
median_ms() {  # plan, batch -> median latency from kiln bench --json
  "$KILN" bench "$1" --threads "$THREADS" --iterations "${ITER:-40}" --json - 2>/dev/null |
    /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['latency_ms']['median'])"
}
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); flags: $(grep -o -m1 -w -E 'avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u | xargs); threads $THREADS"
printf "%-14s %-10s %9s %8s %9s %9s %10s %10s %9s %9s\n" model precision calib_s top1 cos_mean cos_min b1_ms b1_ratio b8_ms b8_ratio
for m in "${models[@]}"; do
  onnx=$CACHE/models/$m.onnx
  "$KILN" build "$onnx" -o "$OUT/$m.fp32.plan" --threads "$THREADS" >/dev/null 2>&1
  "$KILN" build "$onnx" -o "$OUT/$m.fp32.b8.plan" --threads "$THREADS" --shapes input=8x3x224x224 >/dev/null 2>&1
  f1=$(median_ms "$OUT/$m.fp32.plan"); f8=$(median_ms "$OUT/$m.fp32.b8.plan")
  printf "%-14s %-10s %9s %8s %9s %9s %10.2f %10s %9.2f %9s\n" "$m" fp32 - - - - "$f1" 1.00 "$f8" 1.00
  for c in $CALIBRATORS; do
    t0=$(date +%s.%N)
    "$KILN" build "$onnx" -o "$OUT/$m.$c.plan" --precision int8 --calib "$DATA/calib" --calibrator "$c" \
      --calib-cache "$OUT/$m.$c.cache" --threads 2 >/dev/null 2>"$OUT/$m.$c.log"
    t1=$(date +%s.%N)
    "$KILN" build "$onnx" -o "$OUT/$m.$c.b8.plan" --precision int8 --calib-cache "$OUT/$m.$c.cache" \
      --threads "$THREADS" --shapes input=8x3x224x224 >/dev/null 2>&1
    "$KILN" compare "$onnx" "$OUT/$m.$c.plan" --inputs "$DATA/eval" --json "$OUT/$m.$c.json" >/dev/null
    read -r top1 cmean cmin < <(/usr/bin/python3 -c "
import json; o = list(json.load(open('$OUT/$m.$c.json'))['outputs'].values())[0]
print(o.get('top1_agreement', float('nan')), o['cosine_mean'], o['cosine_min'])")
    i1=$(median_ms "$OUT/$m.$c.plan"); i8=$(median_ms "$OUT/$m.$c.b8.plan")
    printf "%-14s %-10s %9.1f %8.3f %9.5f %9.5f %10.2f %10.2f %9.2f %9.2f\n" "$m" "int8/$c" "$(echo "$t1 - $t0" | bc)" \
      "$top1" "$cmean" "$cmin" "$i1" "$(echo "$i1 / $f1" | bc -l)" "$i8" "$(echo "$i8 / $f8" | bc -l)"
  done
done
