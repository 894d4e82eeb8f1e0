#!/usr/bin/env bash
# End-to-end tests of the kiln CLI: the happy path against PyTorch's output, and every
# kind of bad input gets a clear error and a non-zero exit (never a crash).
set -u
KILN=$1
ROOT=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_error NAME PATTERN CMD...: non-zero exit (not a signal) and stderr matching PATTERN
expect_error() {
  local name=$1 pattern=$2
  shift 2
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ $rc -eq 0 ]; then bad "$name: exit 0"; return; fi
  if [ $rc -ge 128 ]; then bad "$name: crashed (rc $rc)"; cat "$T/err"; return; fi
  if ! grep -q -- "$pattern" "$T/err"; then bad "$name: stderr lacks '$pattern':"; cat "$T/err"; return; fi
  ok
}

M=$ROOT/models/tiny_cnn.onnx
IN=$ROOT/models/tiny_cnn_input.npy

# Happy path: positional input, output file, summary line, numbers match PyTorch.
if "$KILN" run "$M" "$IN" --output-dir "$T/o" >"$T/out" 2>"$T/err"; then
  grep -q '^probs: float32 \[1,10\]' "$T/out" && ok || bad "summary line: $(cat "$T/out")"
  /usr/bin/python3 - "$T/o/0_probs.npy" "$ROOT/models/tiny_cnn_expected.npy" <<'PY' && ok || bad "outputs differ from PyTorch"
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
sys.exit(0 if a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-6) else 1)
PY
else
  bad "kiln run tiny_cnn: $(cat "$T/err")"
fi
# Named input, batch 2 (dynamic batch dimension).
/usr/bin/python3 -c "import numpy as np; np.save('$T/b2.npy', np.repeat(np.load('$IN'), 2, axis=0))"
"$KILN" run "$M" --input input="$T/b2.npy" >"$T/out" 2>"$T/err" && grep -q 'probs: float32 \[2,10\]' "$T/out" && ok || bad "named input batch 2: $(cat "$T/err")"
"$KILN" --version | grep -q '^kiln [0-9]' && ok || bad "--version"
"$KILN" --help | grep -q 'run' && ok || bad "--help"
"$KILN" run --help | grep -q -- '--output-dir' && ok || bad "run --help"

# Bad inputs.
expect_error "missing model" "no such file" "$KILN" run "$T/nope.onnx"
head -c 1000 "$M" >"$T/trunc.onnx"
expect_error "truncated model" "trunc.onnx" "$KILN" run "$T/trunc.onnx" "$IN"
printf 'hello world, not onnx' >"$T/junk.onnx"
expect_error "junk model" "not a valid ONNX model" "$KILN" run "$T/junk.onnx"
: >"$T/empty.onnx"
expect_error "empty model" "empty" "$KILN" run "$T/empty.onnx"
expect_error "missing input" "input 'input'.*missing" "$KILN" run "$M"
expect_error "extra input" "takes 1 inputs" "$KILN" run "$M" "$IN" "$IN"
expect_error "unknown input name" "no input named 'x'" "$KILN" run "$M" --input x="$IN"
/usr/bin/python3 -c "import numpy as np; np.save('$T/wrong.npy', np.zeros((1,3,16,16), np.float32))"
expect_error "wrong shape" "must have shape" "$KILN" run "$M" "$T/wrong.npy"
/usr/bin/python3 -c "import numpy as np; np.save('$T/wrongt.npy', np.zeros((1,3,32,32), np.float64))"
expect_error "wrong dtype" "must be float32" "$KILN" run "$M" "$T/wrongt.npy"
head -c 60 "$IN" >"$T/trunc.npy"
expect_error "truncated npy" "trunc.npy" "$KILN" run "$M" "$T/trunc.npy"
expect_error "unknown input file type" "unknown tensor file type" "$KILN" run "$M" "$ROOT/models/make_tiny_cnn.py"

# Models with broken structure, written with Debian's onnx package.
if /usr/bin/python3 -c "import onnx" 2>/dev/null; then
  /usr/bin/python3 "$ROOT/tests/cli/make_bad_models.py" "$T" || bad "make_bad_models.py"
  expect_error "unknown op" "node 'n0' (FancyOp): unsupported op 'FancyOp'" "$KILN" run "$T/unknown_op.onnx" "$IN"
  expect_error "wrong attribute type" "attribute 'alpha' must be FLOAT" "$KILN" run "$T/bad_attr.onnx" "$IN"
  expect_error "dangling input" "input 'nowhere' is not produced" "$KILN" run "$T/dangling.onnx" "$IN"
  expect_error "shape mismatch" "node 'add'" "$KILN" run "$T/shape_mismatch.onnx"
  expect_error "dims overflow" "overflows" "$KILN" run "$T/overflow.onnx"
  expect_error "external data escape" "escapes the model directory" "$KILN" run "$T/escape.onnx"
  expect_error "external data absolute" "absolute path" "$KILN" run "$T/absolute.onnx"
  expect_error "cycle" "cycle" "$KILN" run "$T/cycle.onnx" "$IN"
  "$KILN" run "$T/newer_opset.onnx" "$IN" >"$T/out" 2>"$T/err" && grep -q "warning: .*opset 99" "$T/err" && ok || bad "newer opset: $(cat "$T/err")"
  "$KILN" run "$T/external_ok.onnx" >"$T/out" 2>"$T/err" && grep -q 'y: float32 \[4\]' "$T/out" && ok || bad "external data in dir: $(cat "$T/err")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
