#!/usr/bin/env bash
# Installs the build into a temporary prefix and uses it the way a user would: builds
# examples/ on its own with find_package(kiln), runs the example on the demo model, runs the
# installed kiln CLI and imports the installed Python module (which must load the installed
# libkiln.so). Also checks that libkiln.so exports the public API and not the internals, and
# that libkiln_runtime.so is the runtime alone: no protobuf/ONNX among its NEEDED libraries,
# no builder code inside, exactly the KILN_API symbols of kiln/runtime.h exported, and a
# program linked against it alone runs a plan.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR [PYTHON]   (no PYTHON: the module is not checked)
set -u
BUILD=$1
ROOT=$2
PYTHON=${3:-}
source "$(dirname "$0")/../cli/harness.sh"

P=$T/prefix
if ! cmake --install "$BUILD" --prefix "$P" >"$T/install.log" 2>&1; then
  cat "$T/install.log"
  echo "install_test: cmake --install failed"
  exit 1
fi
ok
for f in include/kiln/kiln.h include/kiln/status.h bin/kiln; do
  [ -f "$P/$f" ] && ok || bad "not installed: $f"
done
CONFIG=$(find "$P" -name kilnConfig.cmake | head -1)
[ -n "$CONFIG" ] && [ -f "$(dirname "$CONFIG")/kilnConfigVersion.cmake" ] && [ -f "$(dirname "$CONFIG")/kilnTargets.cmake" ] &&
  ok || bad "CMake package files not installed"
LIB=$(find "$P" -name 'libkiln.so' | head -1)
if [ -z "$LIB" ]; then
  bad "libkiln.so not installed"
else
  ok
  # Exports: the public API, and nothing from the internals (the IR, the ref backend, protobuf).
  nm -DC --defined-only "$LIB" >"$T/syms" || bad "nm $LIB"
  grep -q 'kiln::Engine::Load(' "$T/syms" && grep -q 'kiln::ExecutionContext::Run()' "$T/syms" &&
    grep -q 'kiln::Status::ToString' "$T/syms" && ok || bad "libkiln.so lacks public API symbols"
  if grep -E 'kiln::(Graph|RefExecutor|Tensor)\b|google::protobuf|flatbuffers::' "$T/syms" >"$T/leaks"; then
    bad "libkiln.so exports internals: $(head -5 "$T/leaks")"
  else
    ok
  fi
fi

# The runtime library: plans in, inference out, nothing of the builder.
RLIB=$(find "$P" -name 'libkiln_runtime.so' | head -1)
if [ -z "$RLIB" ]; then
  bad "libkiln_runtime.so not installed"
else
  ok
  [ -n "$(find "$P" -name 'libkiln_runtime.a' | head -1)" ] && ok || bad "libkiln_runtime.a not installed"
  readelf -d "$RLIB" | grep NEEDED >"$T/needed" || bad "readelf $RLIB"
  if grep -Ei 'protobuf|onnx' "$T/needed" >"$T/bad_needed"; then
    bad "libkiln_runtime.so needs $(cat "$T/bad_needed")"
  else
    ok
  fi
  # No builder code: not exported (hidden), and not linked in (the local symbol table).
  nm -C "$RLIB" >"$T/rsyms_all" 2>/dev/null || nm -DC "$RLIB" >"$T/rsyms_all"
  if grep -E 'kiln::(ImportOnnx|OptimizeGraph|PlanMemory|MeasuringTimer|WritePlan|PassManager)|google::protobuf|onnx::' "$T/rsyms_all" >"$T/rleaks"; then
    bad "libkiln_runtime.so holds builder code: $(head -3 "$T/rleaks")"
  else
    ok
  fi
  # The exported symbols are the runtime API, named: a change here is an ABI change.
  nm -DC --defined-only "$RLIB" | awk '{$1=""; $2=""; sub(/^  /, ""); print}' | sed 's/(.*//' | sort -u >"$T/rsyms"
  if diff -u "$ROOT/tests/install/libkiln_runtime.symbols" "$T/rsyms" >"$T/rsyms.diff"; then
    ok
  else
    bad "libkiln_runtime.so exports differ from tests/install/libkiln_runtime.symbols (update it when the API changes on purpose): $(cat "$T/rsyms.diff")"
  fi
  nm -DC --defined-only "$LIB" | awk '{$1=""; $2=""; sub(/^  /, ""); print}' | sed 's/(.*//' | sort -u >"$T/syms_names"
  if diff -u "$ROOT/tests/install/libkiln.symbols" "$T/syms_names" >"$T/syms.diff"; then
    ok
  else
    bad "libkiln.so exports differ from tests/install/libkiln.symbols: $(cat "$T/syms.diff")"
  fi
fi

# The examples, standalone against the installed tree.
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if cmake -S "$ROOT/examples" -B "$T/examples" "${GEN[@]}" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release \
     >"$T/ex.log" 2>&1 && cmake --build "$T/examples" >>"$T/ex.log" 2>&1; then
  ok
  grep -q "kiln_DIR:PATH=$P/" "$T/examples/CMakeCache.txt" && ok || bad "examples did not find the installed kiln"
  if "$T/examples/kiln_example_infer" "$ROOT/models/tiny_cnn.onnx" >"$T/out" 2>"$T/err"; then
    grep -qx 'probs: 10 x float32' "$T/out" && ok || bad "kiln_example_infer output: $(cat "$T/out")"
  else
    bad "kiln_example_infer: $(cat "$T/err")"
  fi
  # The runtime-only example: a plan from the installed CLI, run by a program that links
  # libkiln_runtime.so and nothing of the builder.
  if "$P/bin/kiln" build "$ROOT/models/tiny_cnn.onnx" -o "$T/tiny.plan" >"$T/build.log" 2>&1; then
    "$T/examples/kiln_example_runtime_infer" "$T/tiny.plan" >"$T/out" 2>"$T/err" &&
      grep -qx 'probs: 10 x float32' "$T/out" && ok || bad "kiln_example_runtime_infer: $(cat "$T/out" "$T/err")"
    ldd "$T/examples/kiln_example_runtime_infer" >"$T/ldd"
    grep -q "=> $P/.*libkiln_runtime.so" "$T/ldd" && ! grep -qE 'libkiln\.so|protobuf' "$T/ldd" && ok ||
      bad "kiln_example_runtime_infer links more than libkiln_runtime.so: $(grep -E 'kiln|protobuf' "$T/ldd")"
    # An ONNX model is refused with a clear error (the builder is not there).
    if "$T/examples/kiln_example_runtime_infer" "$ROOT/models/tiny_cnn.onnx" >"$T/out" 2>&1; then
      bad "the runtime alone loaded an ONNX model"
    else
      grep -q "an ONNX model needs the builder" "$T/out" && ok || bad "runtime on ONNX: $(cat "$T/out")"
    fi
  else
    bad "installed kiln build: $(cat "$T/build.log")"
  fi
  # It runs on the installed libkiln.so (RUNPATH), not the build tree's.
  ldd "$T/examples/kiln_example_infer" | grep -q "=> $P/.*libkiln.so" && ok ||
    bad "kiln_example_infer does not use the installed libkiln.so: $(ldd "$T/examples/kiln_example_infer" | grep kiln)"
else
  cat "$T/ex.log"
  bad "examples do not build against the installed kiln"
fi

# The installed CLI.
"$P/bin/kiln" --help >"$T/out" 2>&1 && grep -q 'run' "$T/out" && ok || bad "kiln --help: $(cat "$T/out")"
"$P/bin/kiln" run "$ROOT/models/tiny_cnn.onnx" "$ROOT/models/tiny_cnn_input.npy" >"$T/out" 2>&1 &&
  grep -q '^probs: float32 \[1,10\]' "$T/out" && ok || bad "installed kiln run: $(cat "$T/out")"

# The installed Python module, with nothing from the build tree on the path.
if [ -n "$PYTHON" ]; then
  MOD=$(find "$P" -name 'kiln*.so' ! -name 'libkiln*' | head -1)
  if [ -z "$MOD" ]; then
    bad "Python module not installed"
  else
    (cd "$T" && PYTHONPATH=$(dirname "$MOD") "$PYTHON" - "$P" "$ROOT" <<'PY') >"$T/out" 2>&1 && ok || bad "installed Python module: $(cat "$T/out")"
import os, sys
import numpy as np
import kiln
prefix, root = sys.argv[1], sys.argv[2]
assert kiln.__file__.startswith(prefix), kiln.__file__
libs = {l.split()[-1] for l in open("/proc/self/maps") if "libkiln.so" in l}
assert libs and all(l.startswith(prefix) for l in libs), libs
out = kiln.load(os.path.join(root, "models/tiny_cnn.onnx")).run({"input": np.load(os.path.join(root, "models/tiny_cnn_input.npy"))})
want = np.load(os.path.join(root, "models/tiny_cnn_expected.npy"))
assert np.allclose(out["probs"], want, rtol=1e-4, atol=1e-6), out
PY
  fi
fi

echo "install_test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
