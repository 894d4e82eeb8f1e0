#!/usr/bin/env bash
# Build-time scaling in the number of nodes: a chain of N Relu nodes (the shape that exposed
# quadratic passes, verifiers and kernel selection) is imported, optimized, compiled and run
# by `kiln run`, and built into a plan by `kiln build`; prints seconds, microseconds per node
# and peak memory per size. Linear scaling keeps us/node flat as N grows.
#
# Usage: bench/compile_scaling.sh [KILN] [N...]   (default: build/kiln, 25000 50000 100000 200000 300000)
set -euo pipefail
KILN=${1:-build/kiln}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(25000 50000 100000 200000 300000)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
/usr/bin/python3 -c "import numpy as np; np.save('$T/x.npy', np.ones((1, 16), np.float32))"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
printf '%8s  %10s %9s %9s   %10s %9s\n' nodes "run s" "us/node" "peak MB" "build s" "us/node"
for n in "${SIZES[@]}"; do
  /usr/bin/python3 - "$n" "$T/chain.onnx" <<'PY'
import sys, onnx
from onnx import helper, TensorProto
n, out = int(sys.argv[1]), sys.argv[2]
nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i+1}"], name=f"r{i}") for i in range(n)]
g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("v0", TensorProto.FLOAT, [1, 16])],
                      [helper.make_tensor_value_info(f"v{n}", TensorProto.FLOAT, [1, 16])])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), out)
PY
  /usr/bin/time -f '%e %M' -o "$T/run.time" "$KILN" run "$T/chain.onnx" --input v0="$T/x.npy" >/dev/null
  /usr/bin/time -f '%e %M' -o "$T/build.time" "$KILN" build "$T/chain.onnx" -o "$T/chain.plan" >/dev/null 2>&1
  read -r rs rm <"$T/run.time"
  read -r bs _ <"$T/build.time"
  awk -v n="$n" -v rs="$rs" -v rm="$rm" -v bs="$bs" \
    'BEGIN { printf "%8d  %10.2f %9.1f %9.0f   %10.2f %9.1f\n", n, rs, rs * 1e6 / n, rm / 1024, bs, bs * 1e6 / n }'
done
