#!/usr/bin/env bash
# Seed corpora for the fuzz targets (generated, not committed):
#   OUT/onnx/  every model.onnx of Debian's libonnx-testdata (node, pytorch-converted,
#              pytorch-operator, simple, real; under 64 KiB), the demo model and the CLI
#              tests' broken models
#   OUT/plan/  plans that `kiln build` makes from the demo model and from test models that
#              cover subgraphs (If/Loop/Scan), fusions, Concat elimination, views and
#              string/bool constants
# Files are named by content hash, so reruns and duplicates add nothing.
# Usage: fuzz/make_corpus.sh OUT_DIR [KILN_BINARY]   env: ONNX_TESTDATA (default /usr/share/libonnx-testdata/data)
# Without KILN_BINARY (or with one that does not run) the plan corpus gets no seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: fuzz/make_corpus.sh OUT_DIR [KILN_BINARY]}
KILN=${2:-}
DATA=${ONNX_TESTDATA:-/usr/share/libonnx-testdata/data}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUT/onnx" "$OUT/plan"

add() {  # add FILE DIR: copy under its content hash
  local h
  h=$(sha1sum "$1" | cut -c1-16)
  [ -e "$2/$h" ] || cp "$1" "$2/$h"
}

# ---- ONNX seeds ----
if [ -d "$DATA" ]; then
  while IFS= read -r -d '' m; do add "$m" "$OUT/onnx"; done < <(find "$DATA" -name model.onnx -size -64k -print0)
else
  echo "make_corpus: $DATA not found (apt-get install libonnx-testdata); ONNX seeds: demo model only" >&2
fi
add models/tiny_cnn.onnx "$OUT/onnx"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if "$PY" -c "import onnx" 2>/dev/null && "$PY" tests/cli/make_bad_models.py "$tmp" >/dev/null 2>&1; then
  for m in "$tmp"/*.onnx; do add "$m" "$OUT/onnx"; done
fi

# ---- plan seeds ----
models=(models/tiny_cnn.onnx)
if [ -d "$DATA" ]; then
  pattern='conv|gemm|matmul|relu|batchnorm|pool|concat|split|slice|lstm|gru|rnn_seq|_if|loop|scan|layer_norm|softmax|resize|gather|transpose|reshape|where|cast|sequence|optional|einsum|gelu|string|pad|expand'
  while IFS= read -r m; do models+=("$m"); done < <(
    find "$DATA/node" "$DATA/simple" "$DATA/pytorch-converted" -name model.onnx -size -16k | grep -E "$pattern" | sort)
fi
built=0
if [ -z "$KILN" ] || ! "$KILN" --help >/dev/null 2>&1; then
  echo "make_corpus: no working kiln binary (${KILN:-none given}): no plan seeds" >&2
  models=()
fi
for m in "${models[@]}"; do
  if "$KILN" build "$m" -o "$tmp/p.plan" >/dev/null 2>&1; then
    add "$tmp/p.plan" "$OUT/plan"
    built=$((built + 1))
  fi
done
# The demo model unoptimized too: plain Conv/Relu nodes, no epilogues.
if [ ${#models[@]} -gt 0 ] && "$KILN" build models/tiny_cnn.onnx -o "$tmp/p.plan" --disable-pass fuse_elementwise_epilogue >/dev/null 2>&1; then
  add "$tmp/p.plan" "$OUT/plan"
fi
echo "make_corpus: $(find "$OUT/onnx" -type f | wc -l) ONNX seeds, $(find "$OUT/plan" -type f | wc -l) plan seeds ($built of ${#models[@]} models built)"
