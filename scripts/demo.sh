#!/usr/bin/env bash
# Builds the kiln CLI and runs its main job on the small model that ships in models/:
# import -> optimize -> choose kernels -> plan file -> load the plan -> infer, with timing.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN_TARGETS=kiln scripts/build.sh
BUILD_DIR=${KILN_BUILD_DIR:-build}
K="$BUILD_DIR/kiln"
mkdir -p out/demo
echo "== kiln inspect models/tiny_cnn.onnx (graph before and after optimization)"
"$K" inspect models/tiny_cnn.onnx | head -8
echo
echo "== kiln build: import, optimize, time kernel candidates, write the plan"
"$K" build models/tiny_cnn.onnx -o out/demo/tiny_cnn.plan --shapes input=1x3x32x32
echo
echo "== kiln run out/demo/tiny_cnn.plan (fast CPU backend, 20 iterations)"
"$K" run out/demo/tiny_cnn.plan models/tiny_cnn_input.npy --output-dir out/demo -n 20
/usr/bin/python3 - <<'PY'
import numpy as np
got = np.load("out/demo/0_probs.npy"); want = np.load("models/tiny_cnn_expected.npy")
print("probs:", np.array2string(got[0], precision=4))
print("top-1 class:", int(got[0].argmax()), " max |kiln - PyTorch| = %.2e" % np.abs(got - want).max())
PY
echo
echo "== kiln bench out/demo/tiny_cnn.plan (plan load, first inference, latency)"
"$K" bench out/demo/tiny_cnn.plan --threads 1 -n 200
