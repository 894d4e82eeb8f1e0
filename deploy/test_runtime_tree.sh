#!/usr/bin/env bash
# Proves the runtime image would start: assembles the tree (make_runtime_tree.sh), puts a
# one-model repository in it, and runs `kiln serve` inside a chroot of exactly that tree
# (as root; otherwise through the tree's own dynamic loader with only the tree's libraries
# on the path), then asks for readiness and an inference over loopback, and stops it with
# SIGTERM (exit 0 expected).
#
# Usage: deploy/test_runtime_tree.sh KILN_BINARY SOURCE_DIR
set -euo pipefail
kiln=${1:?usage: test_runtime_tree.sh KILN_BINARY SOURCE_DIR}
src=${2:?usage: test_runtime_tree.sh KILN_BINARY SOURCE_DIR}
tree=$(mktemp -d /tmp/kiln_runtime_tree.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tree"' EXIT
"$src/deploy/make_runtime_tree.sh" "$kiln" "$tree" >/dev/null
mkdir -p "$tree/models/tiny/1"
cp "$src/models/tiny_cnn.onnx" "$tree/models/tiny/1/model.onnx"
port=$((20000 + RANDOM % 20000))
log=$tree/tmp/serve.log
args=(serve --model-repository /models --host 127.0.0.1 --http-port "$port" --grpc-port -1 --metrics-port -1 --threads 1)
if [ "$(id -u)" = 0 ] && command -v chroot >/dev/null; then
  how="chroot"
  chroot --userspec=65532:65532 "$tree" /usr/bin/kiln "${args[@]}" >"$log" 2>&1 &
else
  how="its own loader"
  loader=$(find "$tree" -name 'ld-linux*.so*' | head -1)
  libdirs=$(find "$tree" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)
  (cd "$tree" && "$loader" --inhibit-cache --library-path "$libdirs" "$tree/usr/bin/kiln" \
     serve --model-repository "$tree/models" --host 127.0.0.1 --http-port "$port" --grpc-port -1 --metrics-port -1 \
     --threads 1) >"$log" 2>&1 &
fi
pid=$!
for _ in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "test_runtime_tree: the server exited" >&2; exit 1; }
  sleep 0.05
done
body=$(/usr/bin/python3 -c 'import json; print(json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.5] * 3072}]}))')
out=$(curl -sf -X POST --data "$body" "http://127.0.0.1:$port/v2/models/tiny/infer") || { cat "$log"; exit 1; }
echo "$out" | grep -q '"name":"probs"' || { echo "unexpected answer: $out" >&2; exit 1; }
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || { cat "$log"; echo "test_runtime_tree: exit $rc after SIGTERM" >&2; exit 1; }
echo "test_runtime_tree: served from $(find "$tree" -type f -not -path "$tree/models/*" -not -path "$tree/tmp/*" | wc -l) files via $how: ok"
