#!/usr/bin/env bash
# Builds the kiln CLI and runs its main job on the small model that ships in models/:
# import -> infer types -> run, printing outputs and timing.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN_TARGETS=kiln scripts/build.sh
BUILD_DIR=${KILN_BUILD_DIR:-build}
echo "== kiln run models/tiny_cnn.onnx (20 iterations)"
"$BUILD_DIR/kiln" run models/tiny_cnn.onnx models/tiny_cnn_input.npy --output-dir out/demo -n 20
/usr/bin/python3 - <<'PY'
import numpy as np
got = np.load("out/demo/0_probs.npy"); want = np.load("models/tiny_cnn_expected.npy")
print("probs:", np.array2string(got[0], precision=4))
print("top-1 class:", int(got[0].argmax()), " max |kiln - PyTorch| = %.2e" % np.abs(got - want).max())
PY
