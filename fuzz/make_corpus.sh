#!/usr/bin/env bash
# Seed corpora for the fuzz targets (generated, not committed):
#   OUT/onnx/  every model.onnx of Debian's libonnx-testdata (node, pytorch-converted,
#              pytorch-operator, simple, real; under 64 KiB), the demo model and the CLI
#              tests' broken models
#   OUT/plan/  plans that `kiln build` makes from the demo model and from test models that
#              cover subgraphs (If/Loop/Scan), fusions, Concat elimination, views and
#              string/bool constants
#   OUT/tensor/  fuzz_tensor_file: a selector byte (0 ReadNpy, 1 ReadTensorFile .npy,
#              2 ReadTensorFile .pb, 3/4/5/6 ReadValueProtoFile with no hint / tensor /
#              sequence / optional hint) + the file: .npy files that NumPy writes (dtypes,
#              shapes, format v2, Fortran order) and input_*.pb of the ONNX node tests
#              (tensors, sequences, optionals; kind from the model's input type)
#   OUT/extdata/ fuzz_external_data: hand-made inputs in its layout (fuzz/fuzz_external_data.cc)
# Files are named by content hash, so reruns and duplicates add nothing.
# Usage: fuzz/make_corpus.sh OUT_DIR [KILN_BINARY]   env: ONNX_TESTDATA (default /usr/share/libonnx-testdata/data)
# Without KILN_BINARY (or with one that does not run) the plan corpus gets no seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: fuzz/make_corpus.sh OUT_DIR [KILN_BINARY]}
KILN=${2:-}
DATA=${ONNX_TESTDATA:-/usr/share/libonnx-testdata/data}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUT/onnx" "$OUT/plan" "$OUT/tensor" "$OUT/extdata" "$OUT/infer" "$OUT/calib"

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
# fuzz_infer_request: 2-byte little-endian JSON length + JSON header + binary section, for
# its model (x FP32 [-1,16], s BYTES [2], n INT64 [3]; outputs y, t).
"$PY" - "$OUT/infer" <<'PY' || echo "make_corpus: no infer seeds (python3 missing)" >&2
import json, struct, sys, hashlib, os
out = sys.argv[1]
def seed(head, binary=b""):
    h = json.dumps(head).encode()
    data = struct.pack("<H", min(len(h), 65535)) + h + binary
    open(os.path.join(out, hashlib.sha1(data).hexdigest()[:16]), "wb").write(data)
x = {"name": "x", "shape": [1, 16], "datatype": "FP32", "data": [0.5] * 16}
s = {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "bc"]}
n = {"name": "n", "shape": [3], "datatype": "INT64", "data": [1, -2, 3]}
seed({"id": "1", "inputs": [x, s, n]})
seed({"inputs": [x, s, n], "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "t"}],
      "parameters": {"timeout": 1000, "binary_data_output": True}})
xb = dict(x, data=None); del xb["data"]; xb["parameters"] = {"binary_data_size": 64}
sb = {"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 11}}
seed({"inputs": [xb, sb, n]}, b"\0" * 64 + struct.pack("<I", 2) + b"hi" + struct.pack("<I", 1) + b"!")
seed({"inputs": [dict(x, shape=[2, 16], data=[[0.25] * 16, [1e30] * 16]), s, n]})
seed({"inputs": [dict(x, data=["NaN", "Infinity"] + [0] * 14), s, dict(n, data=[[1], [2], [3]])]})
PY
# Inputs that once crashed a target (fuzz/regressions/<target>/) seed it again.
declare -A REGRESSION_DIR=([fuzz_plan_loader]=plan [fuzz_onnx_importer]=onnx [fuzz_tensor_file]=tensor [fuzz_external_data]=extdata [fuzz_infer_request]=infer)
for t in "${!REGRESSION_DIR[@]}"; do
  [ -d "fuzz/regressions/$t" ] || continue
  for f in fuzz/regressions/"$t"/*; do [ -f "$f" ] && add "$f" "$OUT/${REGRESSION_DIR[$t]}"; done
done
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
# ---- tensor file seeds (selector byte + file) ----
mkdir -p "$tmp/tensor"
if ! "$PY" - "$tmp/tensor" "$DATA/node" <<'PYEOF'
import os, sys
out, node = sys.argv[1], sys.argv[2]
def put(name, sel, payload):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([sel]) + payload)
try:
    import io
    import numpy as np
    arrays = {
        "f32_2x3": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i64_5": np.array([1, -2, 3, -4, 5], dtype=np.int64),
        "u8_scalar": np.array(7, dtype=np.uint8),
        "bool_2x2": np.array([[True, False], [False, True]]),
        "f16_1x2x3": np.linspace(-1, 1, 6).astype(np.float16).reshape(1, 2, 3),
        "f64_0x4": np.zeros((0, 4), dtype=np.float64),
        "i8_4": np.array([-128, -1, 0, 127], dtype=np.int8),
        "c64_3": np.array([1 + 2j, 3 - 4j, 0j], dtype=np.complex64),
        "u16_2x2x2": np.arange(8, dtype=np.uint16).reshape(2, 2, 2),
        # Empty, with a large dim: one mutation away from a header that claims 400 MB.
        "f32_0x100000000": np.zeros((0, 100000000), dtype=np.float32),
    }
    for i, (name, a) in enumerate(arrays.items()):
        buf = io.BytesIO()
        np.save(buf, a)
        put(name + ".npy", i % 2, buf.getvalue())
    buf = io.BytesIO()  # format 2.0 (4-byte header length)
    np.lib.format.write_array(buf, np.arange(4, dtype=np.int32), version=(2, 0))
    put("v2.npy", 0, buf.getvalue())
    buf = io.BytesIO()  # Fortran order (refused, but parsed)
    np.save(buf, np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    put("fortran.npy", 1, buf.getvalue())
except ImportError:
    print("make_corpus: no numpy: no .npy seeds", file=sys.stderr)
if os.path.isdir(node):
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:  # the same for a TensorProto: dims [0, 2^30], no data
        big = onnx.helper.make_tensor("big", onnx.TensorProto.FLOAT, [0, 1 << 30], b"", raw=True)
        put("big_empty.pb", 2, big.SerializeToString())
    per_dtype = {}
    for test in sorted(os.listdir(node)):
        data_dir = os.path.join(node, test, "test_data_set_0")
        if not os.path.isdir(data_dir):
            continue
        kinds = []
        if onnx is not None:
            try:
                m = onnx.load(os.path.join(node, test, "model.onnx"))
                init = {i.name for i in m.graph.initializer}
                kinds = [i.type.WhichOneof("value") for i in m.graph.input if i.name not in init]
            except Exception:
                kinds = []
        for k in range(8):
            pb = os.path.join(data_dir, "input_%d.pb" % k)
            if not os.path.isfile(pb) or os.path.getsize(pb) > 4096:
                continue
            kind = kinds[k] if k < len(kinds) else ("sequence_type" if "sequence" in test else
                                                   "optional_type" if "optional" in test else "tensor_type")
            payload = open(pb, "rb").read()
            if kind == "sequence_type":
                put(test + "_%d.pb" % k, 5, payload)
            elif kind == "optional_type":
                put(test + "_%d.pb" % k, 6, payload)
            elif kind == "tensor_type":
                # A few per element type (the ONNX tests have ~1700 small tensors).
                elem = onnx.load_tensor_from_string(payload).data_type if onnx else 0
                n = per_dtype.get(elem, 0)
                if n < 3:
                    per_dtype[elem] = n + 1
                    put(test + "_%d.pb" % k, 2 + n, payload)  # ReadTensorFile, no hint, tensor hint
PYEOF
then
  echo "make_corpus: $PY failed: tensor seeds incomplete" >&2
fi
for f in "$tmp/tensor"/*; do if [ -e "$f" ]; then add "$f" "$OUT/tensor"; fi; done

# ---- external data seeds (fuzz/fuzz_external_data.cc's layout) ----
ext() { printf "$1" >"$tmp/ext" && add "$tmp/ext" "$OUT/extdata"; }
# w.bin holds 4 floats; FLOAT [4] from location "w.bin": loads.
ext '\x01\x00\x02\x10\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40\x00\x01\x04\x00\x00\x02\x00'
# dir sub, sub/a with 32 bytes; UINT8 [2,3] at offset 4, length 6; then sub/a becomes a symlink to the secret.
ext '\x02\x03\x04\x00\x05\x20\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x01\x02\x02\x03\x02\x00\x05\x01\x84\x02\x86\x01'
# link -> ../elsewhere/secret.bin, a hard link secret.bin, a FIFO, a 64-byte file a; UINT8 [64] from "link".
ext "\x04\x04\x03\x01\x06\x0a\x08\x0e\x00\x00\x40$(printf '\\x11%.0s' {1..64})\x01\x01\x40\x00\x00\x03\x00"
# sub -> ../elsewhere (a directory link), a FIFO; UINT8 [64] from "sub/secret.bin" with a checksum; then a hard-link swap.
ext '\x03\x04\x04\x04\x00\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08\x08\x0e\x01\x01\x40\x01\x00\x0b\x03\x00\x02'
# a with 4 bytes; UINT8 [4] from the literal location "./a".
ext '\x01\x00\x00\x04\x01\x02\x03\x04\x01\x01\x04\x00\x00\xe0\x03./a\x00'
# a and a hard link b to it (two links: refused); UINT8 [4] from "a".
ext '\x02\x00\x00\x04\x01\x02\x03\x04\x07\x01\x00\x01\x01\x04\x00\x00\x00\x00'
# "fifo" is a FIFO; UINT8 [0] from "fifo" (must not block).
ext '\x01\x08\x0e\x01\x01\x00\x00\x00\x0e\x00'
# ---- fuzz_calib_cache seeds: calibration caches (their bytes also read as floats) ----
printf '# kiln calibration cache 1\n# calibrator entropy\n# kiln 0.1.0\n0x1.11023p+2 u8 /relu/Relu_output_0\n0x1.8p+1 s8 input\n' >"$OUT/calib/good"
printf '# kiln calibration cache 1\n0x1p-149 s8 tiny\n1e38 u8 big name with spaces\n\r\n' >"$OUT/calib/edge"
printf '# kiln calibration cache 1\nnan s8 x\n' >"$OUT/calib/nan"
head -c 4096 /dev/urandom >"$OUT/calib/random" 2>/dev/null || true
echo "make_corpus: $(find "$OUT/onnx" -type f | wc -l) ONNX seeds, $(find "$OUT/plan" -type f | wc -l) plan seeds ($built of ${#models[@]} models built)," \
  "$(find "$OUT/tensor" -type f | wc -l) tensor file seeds, $(find "$OUT/extdata" -type f | wc -l) external data seeds"
