#!/usr/bin/env bash
# kiln INT8 against ONNX Runtime INT8 with the same scales: kiln quantize writes kiln's
# calibration as a QDQ model; kiln builds that model (its convolutions on INT8 kernels with
# the model's scales) and ONNX Runtime runs the same file (its QDQ fusion turns the pairs
# into integer convolutions). Medians of alternating rounds, batch 1, same threads.
#
#   bash bench/int8_vs_ort.sh [MODELS...]   (default: resnet50 googlenet mobilenet_v2)
#
# Needs ../shared/bench/peer (ORT, setup.sh), the benchmark models and bench/int8_data.py's crops.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$ROOT/build/kiln}
CACHE=${KILN_BENCH_CACHE:-$HOME/.cache/kiln-bench}
PEER=${PEER:-$ROOT/../shared/bench/peer}
DATA=${INT8_DATA:-/tmp/int8data}
THREADS=${KILN_THREADS:-1}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-/tmp/int8ort}
mkdir -p "$OUT"
[ -d "$DATA/calib" ] || /usr/bin/python3 "$ROOT/bench/int8_data.py" "$DATA" --calib 500 --eval 200
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet50 googlenet mobilenet_v2)
kiln_ms() { "$KILN" bench "$1" --threads "$THREADS" --iterations 40 --json - 2>/dev/null |
  /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['latency_ms']['median'])"; }
ort_ms() { node "$PEER/ort_bench.js" "$1" --threads "$THREADS" --tp-batch 0 --runs 30 --min-time 2 2>/dev/null |
  sed -n 's/.*batch 1: median \([0-9.]*\).*/\1/p' | head -1; }
med() { printf "%s\n" "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(grep -o -m1 -w -E 'avx512_vnni|amx_int8' /proc/cpuinfo | sort -u | xargs); threads $THREADS"
printf "%-14s %12s %12s %12s %12s %10s %10s\n" model kiln_fp32 ort_fp32 kiln_int8 ort_int8 int8_ratio kiln_i8/fp32
for m in "${models[@]}"; do
  onnx=$CACHE/models/$m.onnx
  "$KILN" quantize "$onnx" -o "$OUT/$m.qdq.onnx" --calib "$DATA/calib" --calib-batches 300 --threads 2 >/dev/null 2>"$OUT/$m.log"
  "$KILN" build "$OUT/$m.qdq.onnx" -o "$OUT/$m.qdq.plan" --threads "$THREADS" >/dev/null 2>>"$OUT/$m.log"
  "$KILN" build "$onnx" -o "$OUT/$m.fp32.plan" --threads "$THREADS" >/dev/null 2>>"$OUT/$m.log"
  kf=() of=() ki=() oi=()
  for r in $(seq "$ROUNDS"); do
    kf+=("$(kiln_ms "$OUT/$m.fp32.plan")"); of+=("$(ort_ms "$onnx")")
    ki+=("$(kiln_ms "$OUT/$m.qdq.plan")"); oi+=("$(ort_ms "$OUT/$m.qdq.onnx")")
  done
  a=$(med "${kf[@]}") b=$(med "${of[@]}") c=$(med "${ki[@]}") d=$(med "${oi[@]}")
  printf "%-14s %12.2f %12.2f %12.2f %12.2f %10.2f %10.2f\n" "$m" "$a" "$b" "$c" "$d" "$(echo "$c / $d" | bc -l)" "$(echo "$c / $a" | bc -l)"
done
