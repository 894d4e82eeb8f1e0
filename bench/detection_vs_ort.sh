#!/usr/bin/env bash
# Detection models (bench/export_detection.py: SSDLite, Faster R-CNN, RetinaNet from
# torchvision) through kiln and ONNX Runtime: outputs compared on the same input (ORT's
# random one, via io.json), then batch-1 latency medians measured alternately, kiln/ORT.
# Usage: bench/detection_vs_ort.sh [DIR] [THREADS]   (DIR default ~/.cache/kiln-bench/detection)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KILN_BENCH_KIT:-$ROOT/../shared/bench}
DIR=${1:-$HOME/.cache/kiln-bench/detection}
THREADS=${2:-1}
KILN=${KILN:-$ROOT/build/kiln}
PY=/usr/bin/python3
mkdir -p "$DIR"
for m in ssdlite fasterrcnn retinanet; do
  [ -f "$DIR/$m.onnx" ] || $PY "$ROOT/bench/export_detection.py" "$DIR" $m >/dev/null 2>&1 || { echo "export $m failed"; exit 1; }
done
kiln_ms() { "$KILN" bench "$1" --threads "$THREADS" -n 20 2>/dev/null | sed -n 's/.*latency over [0-9]* runs: median \([0-9.]*\) ms.*/\1/p'; }
ort_ms() { node "$KIT/peer/ort_bench.js" "$1" --threads "$THREADS" --tp-batch 0 --runs 20 --min-time 2 2>/dev/null |
  sed -n 's/.*batch 1: median \([0-9.]*\).*/\1/p' | head -1; }
echo "| model | outputs vs ORT | kiln ms | ORT ms | kiln/ORT | kiln backend |"
echo "|---|---|---:|---:|---:|---|"
for m in ssdlite fasterrcnn retinanet; do
  f=$DIR/$m.onnx
  rm -rf "$DIR/$m.ort" "$DIR/$m.npyin" "$DIR/$m.kout" "$DIR/$m.kio"
  node "$KIT/peer/ort_bench.js" "$f" --threads "$THREADS" --no-latency --no-throughput --save-outputs "$DIR/$m.ort" >/dev/null 2>&1
  ins=$($PY "$ROOT/bench/io_json.py" to-npy "$DIR/$m.ort" "$DIR/$m.npyin")
  "$KILN" run "$f" $ins -o "$DIR/$m.kout" >/dev/null 2>&1
  $PY "$ROOT/bench/io_json.py" from-npy "$f" "$DIR/$m.kout" "$DIR/$m.kio" >/dev/null
  cmpres=$(node "$KIT/peer/compare_outputs.js" "$DIR/$m.ort" "$DIR/$m.kio" --rtol 1e-3 --atol 1e-4 >/dev/null 2>&1 && echo allclose || echo DIFFER)
  k1=$(kiln_ms "$f"); o1=$(ort_ms "$f"); k2=$(kiln_ms "$f"); o2=$(ort_ms "$f")
  k=$($PY -c "print(min($k1, $k2))"); o=$($PY -c "print(min($o1, $o2))")
  backend=$("$KILN" bench "$f" --threads "$THREADS" -n 1 2>/dev/null | head -1 | sed 's/.*CPU island(s)/CPU island(s)/' | cut -c1-110)
  echo "| $m | $cmpres | $k | $o | $($PY -c "print(f'{$k / $o:.2f}')") | $backend |"
done
