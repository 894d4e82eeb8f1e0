#!/usr/bin/env bash
# Hostile inputs through the kiln CLI: external data that tries to escape the model's folder
# (hard links, symbolic links, FIFOs, sockets, duplicate keys), unchecked IR/opset, inputs whose
# headers claim more than the file holds, build-time errors, unclear messages. Every case must
# end with a clear error, a non-zero exit, within a time limit -- and no byte of the "secret"
# file outside the model folder may reach an output or a plan.
set -u
KILN=$1
ROOT=$2
source "$(dirname "$0")/harness.sh"

# expect_error NAME PATTERN CMD...: non-zero exit within 20 s (not a signal), stderr matching PATTERN,
# peak memory under 200 MB (measured with GNU time when installed).
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -f %M -o "$T/rss")
# Under AddressSanitizer (scripts/sanitize.sh sets ASAN_OPTIONS) the runtime's shadow memory
# and quarantine add a fixed ~30-100 MB to every process: the bound grows by that, not more.
LIMIT_KB=204800
[ -n "${ASAN_OPTIONS:-}" ] && LIMIT_KB=$((LIMIT_KB + 102400))
expect_error() {
  local name=$1 pattern=$2
  shift 2
  rm -f "$T/rss"
  timeout 20 "${TIME[@]}" "$@" >"$T/out" 2>"$T/err" </dev/null
  local rc=$?
  if [ -s "$T/rss" ] && [ "$(tail -1 "$T/rss")" -gt "$LIMIT_KB" ] 2>/dev/null; then
    bad "$name: peak memory $(tail -1 "$T/rss") KB (more than $((LIMIT_KB / 1024)) MB)"; return
  fi
  if [ $rc -eq 0 ]; then bad "$name: exit 0"; return; fi
  if [ $rc -eq 124 ]; then bad "$name: hung (killed after 20 s)"; return; fi
  if [ $rc -ge 128 ]; then bad "$name: crashed (rc $rc)"; cat "$T/err"; return; fi
  if ! grep -q -- "$pattern" "$T/err"; then bad "$name: stderr lacks '$pattern':"; cat "$T/err"; return; fi
  ok
}

# expect_bounded NAME CMD...: exit 0 within 20 s and under 200 MB (the same limits).
expect_bounded() {
  local name=$1
  shift
  rm -f "$T/rss"
  timeout 20 "${TIME[@]}" "$@" >"$T/out" 2>"$T/err" </dev/null
  local rc=$?
  if [ -s "$T/rss" ] && [ "$(tail -1 "$T/rss")" -gt "$LIMIT_KB" ] 2>/dev/null; then
    bad "$name: peak memory $(tail -1 "$T/rss") KB (more than $((LIMIT_KB / 1024)) MB)"; return
  fi
  if [ $rc -ne 0 ]; then bad "$name: exit $rc"; cat "$T/err"; return; fi
  ok
}

if ! /usr/bin/python3 -c "import onnx" 2>/dev/null; then
  echo "hostile_test: python3-onnx missing, skipped"
  exit 0
fi
M=$T/models
mkdir -p "$M" "$T/elsewhere"
/usr/bin/python3 "$ROOT/tests/cli/make_hostile.py" "$M" || { echo "make_hostile.py failed"; exit 1; }
# The secret: 16 floats of 1234.5 outside the model folder.
/usr/bin/python3 -c "import numpy as np; np.full(16, 1234.5, np.float32).tofile('$T/elsewhere/secret.bin')"
cp "$T/elsewhere/secret.bin" "$T/secret.bin"
X="$M/x.npy"

# The good case runs (y = x @ arange(16).reshape(4,4): column sums 24 28 32 36).
"$KILN" run "$M/m_good.onnx" "$X" --output-dir "$T/o" >/dev/null 2>"$T/err" &&
  /usr/bin/python3 -c "import numpy as np, sys; sys.exit(0 if np.allclose(np.load('$T/o/0_y.npy'), [[24, 28, 32, 36]]) else 1)" &&
  ok || bad "external data in the folder: $(cat "$T/err")"

# 1. A hard link to a file outside the folder: refused by kiln run and kiln build.
ln "$T/elsewhere/secret.bin" "$M/hard.bin"
expect_error "hard link (run)" "'hard.bin' has 2 hard links" "$KILN" run "$M/m_hard.onnx" "$X" --output-dir "$T/oh"
expect_error "hard link (build)" "has 2 hard links" "$KILN" build "$M/m_hard.onnx" -o "$T/hard.plan"
[ ! -e "$T/hard.plan" ] && ok || bad "a refused build left a plan behind"
[ ! -e "$T/oh/0_y.npy" ] && ok || bad "a refused run wrote an output"
# 2. A FIFO, a directory, the folder itself, a socket: refused by type, without blocking.
mkfifo "$M/fifo" "$M/fifo.npy"
expect_error "FIFO" "'fifo' is a FIFO (named pipe), not a regular file" "$KILN" run "$M/m_fifo.onnx" "$X"
mkdir "$M/sub"
expect_error "directory" "'sub' is a directory, not a regular file" "$KILN" run "$M/m_dir.onnx" "$X"
expect_error "location '.'" "names the model directory itself" "$KILN" run "$M/m_dot.onnx" "$X"
/usr/bin/python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.bind('$M/sock')"
expect_error "socket" "'sock' is a socket" "$KILN" run "$M/m_socket.onnx" "$X"
# Symbolic links: out of the folder, inside it, and as a directory component -- all refused.
ln -s "$T/elsewhere/secret.bin" "$M/link.bin"
expect_error "symlink out" "'link.bin' is a symbolic link" "$KILN" run "$M/m_symlink_out.onnx" "$X"
ln -s good.bin "$M/inlink.bin"
expect_error "symlink in" "'inlink.bin' is a symbolic link" "$KILN" run "$M/m_symlink_in.onnx" "$X"
ln -s . "$M/linkdir"
expect_error "symlinked directory" "'linkdir' is a symbolic link" "$KILN" run "$M/m_symlink_dir.onnx" "$X"
# A character device through a link is a link; opened by name (a model file) it is refused by type.
expect_error "device as model" "is a character device" "$KILN" run /dev/zero "$X"
# 3. Duplicate keys, unknown keys, ranges past the end.
expect_error "duplicate key" "external_data key 'location' is given more than once" "$KILN" run "$M/m_dup.onnx" "$X"
expect_error "unknown key" "unknown external_data key 'sneaky'" "$KILN" run "$M/m_unknown_key.onnx" "$X"
expect_error "offset past end" "offset 1000 is past the end of 'good.bin' (64 bytes)" "$KILN" run "$M/m_past_end.onnx" "$X"
expect_error "short range" "external data has 48 bytes (to the end of the file) but the dims need 64" "$KILN" run "$M/m_short.onnx" "$X"
# 4. IR version and opsets.
expect_bounded "Reshape to a declared rank of 2^31" "$KILN" inspect "$M/reshape_huge_rank.onnx"
expect_error "ir_version 0" "has no ir_version (0)" "$KILN" run "$M/ir0.onnx" "$X"
expect_error "ir_version 99" "ir_version 99, newer than the newest kiln knows" "$KILN" run "$M/ir99.onnx" "$X"
expect_error "no opset_import" "no opset_import" "$KILN" run "$M/no_opset.onnx" "$X"
# 5. Headers that claim more than the file holds: refused before anything is allocated.
expect_error "huge .npy header" "truncated data: the header says float32 (2, 750000000) (6000000000 bytes) but the file holds 0" \
  "$KILN" run "$M/m_good.onnx" "$M/huge.npy"
expect_error ".npy header not a dict" "the .npy header is not a Python dict" "$KILN" run "$M/m_good.onnx" "$M/notdict.npy"
expect_error "huge .pb" "holds 0 values but \[2,750000000\] needs 1500000000" "$KILN" run "$M/m_good.onnx" "$M/huge.pb"
expect_error "FIFO input" "is a FIFO (named pipe), not a regular file" "$KILN" run "$M/m_good.onnx" "$M/fifo.npy"
# 7. Constant indices out of range fail the build, naming the node.
expect_error "constant Gather index (build)" "node 'gather_bad' (Gather): constant indices holds 7 (element 2), out of range for axis 1 of size 4" \
  "$KILN" build "$M/gather_oob.onnx" -o "$T/g.plan"
[ ! -e "$T/g.plan" ] && ok || bad "a failed build left g.plan"
expect_error "constant Gather, folded (build)" "node 'gather_fold' (Gather)" "$KILN" build "$M/gather_oob_folded.onnx" -o "$T/g2.plan"
expect_error "constant ScatterElements index (build)" "node 'scatter_bad' (ScatterElements): constant indices holds 9" \
  "$KILN" build "$M/scatter_oob.onnx" -o "$T/s.plan"
# 8. An empty output path is an error.
expect_error "empty --output-dir" "empty path" "$KILN" run "$M/m_good.onnx" "$X" --output-dir ""
expect_error "empty -o" "empty path" "$KILN" build "$M/m_good.onnx" -o ""
# 9. Clearer messages.
expect_error "CPU kernel error names the node" "gather_rt" "$KILN" run "$M/gather_runtime.onnx" "$X" "$M/i_bad.npy"
expect_error "nesting limit" "nested70.onnx: node 'if69' (If): subgraphs nested more than 64 levels deep" "$KILN" run "$M/nested70.onnx" "$X" "$M/c.npy"
"$KILN" run "$M/nested8.onnx" "$X" "$M/c.npy" >/dev/null 2>"$T/err" && ok || bad "If nested 8 deep: $(cat "$T/err")"
printf 'KILNPLANJUNKJUNKJUNK' >"$T/garbage2.plan"
expect_error "KILNPLAN + garbage" "corrupt plan header" "$KILN" run "$T/garbage2.plan" "$X"
"$KILN" build "$M/m_good.onnx" -o "$T/good.plan" >/dev/null 2>&1 || bad "build m_good"
printf '0.5 some-key\n0.25 cut-short-li' >"$T/cut.cache"
expect_error "truncated timing cache" "ends in the middle of a line" "$KILN" build "$M/m_good.onnx" -o "$T/c.plan" --timing-cache "$T/cut.cache"

# 6. A 100k-node chain compiles and runs (linear passes; bench/compile_scaling.sh has the
# timings: ~2 s here, a quadratic pass took 30 s). The generous limit only catches blow-ups.
/usr/bin/python3 - "$T/chain.onnx" <<'PY'
import sys, onnx
from onnx import helper, TensorProto
n = 100000
nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i+1}"], name=f"r{i}") for i in range(n)]
g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("v0", TensorProto.FLOAT, [1, 4])],
                      [helper.make_tensor_value_info(f"v{n}", TensorProto.FLOAT, [1, 4])])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
PY
/usr/bin/python3 -c "import numpy as np; np.save('$T/xm.npy', np.array([[-1, 2, -3, 4]], np.float32))"
if timeout 120 "$KILN" run "$T/chain.onnx" --input v0="$T/xm.npy" --output-dir "$T/co" >/dev/null 2>"$T/err"; then
  /usr/bin/python3 -c "import numpy as np, sys; sys.exit(0 if np.array_equal(np.load('$T/co/0_v100000.npy'), [[0, 2, 0, 4]]) else 1)" &&
    ok || bad "100k-node chain: wrong output"
else
  bad "100k-node chain: failed or took more than 120 s: $(tail -3 "$T/err")"
fi

# Writing: a failed build leaves no temporary file; an output path that is a symbolic link is
# replaced, never written through.
ls "$T"/*.tmp* "$M"/*.tmp* >/dev/null 2>&1 && bad "temporary files left behind: $(ls "$T"/*.tmp* "$M"/*.tmp* 2>/dev/null)" || ok
echo "precious" >"$T/victim"
ln -s "$T/victim" "$T/linked.plan"
"$KILN" build "$M/m_good.onnx" -o "$T/linked.plan" >/dev/null 2>&1 &&
  [ "$(cat "$T/victim")" = "precious" ] && [ ! -L "$T/linked.plan" ] && ok || bad "a plan was written through a symbolic link"

# No output or plan of any case above holds a byte of the secret.
/usr/bin/python3 - "$T" <<'PY' && ok || bad "the secret's bytes reached an output or a plan"
import os, stat, sys, numpy as np
secret = np.full(4, 1234.5, np.float32).tobytes()
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(d, f)
        if f.endswith((".npy", ".plan")) and stat.S_ISREG(os.lstat(p).st_mode) and secret in open(p, "rb").read():
            print("secret found in", os.path.join(d, f)); sys.exit(1)
PY

echo "hostile inputs: $pass passed, $fail failed"
[ $fail -eq 0 ]
