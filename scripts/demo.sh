#!/usr/bin/env bash
# Builds the kiln CLI and runs its main job on the small model that ships in models/:
# import -> infer types -> optimize -> run, printing the optimized graph, outputs and timing.
# (Plan files and the fast CPU backend arrive with the plan/runtime and fast-backend work.)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN_TARGETS=kiln scripts/build.sh
BUILD_DIR=${KILN_BUILD_DIR:-build}
echo "== kiln inspect models/tiny_cnn.onnx (graph before and after optimization)"
"$BUILD_DIR/kiln" inspect models/tiny_cnn.onnx | head -8
echo
echo "== kiln run -O models/tiny_cnn.onnx (optimized graph, reference backend, 20 iterations)"
"$BUILD_DIR/kiln" run -O models/tiny_cnn.onnx models/tiny_cnn_input.npy --output-dir out/demo -n 20
/usr/bin/python3 - <<'PY'
import numpy as np
got = np.load("out/demo/0_probs.npy"); want = np.load("models/tiny_cnn_expected.npy")
print("probs:", np.array2string(got[0], precision=4))
print("top-1 class:", int(got[0].argmax()), " max |kiln - PyTorch| = %.2e" % np.abs(got - want).max())
PY
