#!/usr/bin/env bash
# End-to-end tests of INT8 builds (kiln build --precision int8) and kiln compare on the
# tiny CNN that ships in models/: calibration from tensor files and from images, the
# calibration cache (rebuild without data, bad caches), every calibrator, --keep-fp32, and
# the errors for bad calibration data. Accuracy here is a sanity bound (the model is tiny and
# its inputs random); bench/RESULTS.md has the real-model figures.
set -u
KILN=$1
ROOT=$2
source "$(dirname "$0")/harness.sh"
M=$ROOT/models/tiny_cnn.onnx
IN=$ROOT/models/tiny_cnn_input.npy

# Calibration data: 24 tensors of [1,3,32,32]; 12 PNG images (written without PIL); an
# evaluation set apart from both.
/usr/bin/python3 - "$T" <<'PY'
import os, struct, sys, zlib
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(1)
for d in ("calib", "eval", "images", "wrong", "badimg"):
    os.makedirs(os.path.join(t, d))
for i in range(24):
    np.save(f"{t}/calib/{i:02d}.npy", rng.normal(size=(1, 3, 32, 32)).astype(np.float32))
for i in range(16):
    np.save(f"{t}/eval/{i:02d}.npy", rng.normal(size=(1, 3, 32, 32)).astype(np.float32))
def png(path, w, h):
    px = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + px[y].tobytes() for y in range(h))
    chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for i in range(12):
    png(f"{t}/images/{i:02d}.png", 40 + 3 * i, 36 + 2 * i)
np.save(f"{t}/wrong/00.npy", np.zeros((1, 3, 16, 16), np.float32))
open(f"{t}/badimg/00.png", "wb").write(b"\x89PNG\r\n\x1a\nnot really a png")
PY

# Calibrate from tensors, write the cache, run the INT8 plan.
if "$KILN" build "$M" -o "$T/i8.plan" --precision int8 --calib "$T/calib" --calib-cache "$T/c.cache" >"$T/out" 2>"$T/err"; then
  grep -q "calibrated .* tensors on 24 tensor files with entropy" "$T/err" && ok || bad "calibration line: $(cat "$T/err")"
  grep -q "layers INT8" "$T/err" && ok || bad "INT8 layer count: $(cat "$T/err")"
  head -1 "$T/c.cache" | grep -q "^# kiln calibration cache 1" && ok || bad "cache header"
  [ "$(grep -vc '^#' "$T/c.cache")" -ge 3 ] && ok || bad "cache holds $(grep -vc '^#' "$T/c.cache") tensors"
else
  bad "int8 build: $(cat "$T/err")"
fi
"$KILN" run "$T/i8.plan" "$IN" --output-dir "$T/o8" >"$T/out" 2>"$T/err" && ok || bad "run int8 plan: $(cat "$T/err")"
"$KILN" inspect "$T/i8.plan" --kernels >"$T/insp" 2>&1 && grep -q "int8" "$T/insp" && ok || bad "inspect --kernels shows no int8 layer"

# A rebuild from the cache alone needs no data and gives the same engine (same outputs).
"$KILN" build "$M" -o "$T/i8c.plan" --precision int8 --calib-cache "$T/c.cache" >"$T/out" 2>"$T/err" && ok || bad "build from cache: $(cat "$T/err")"
"$KILN" run "$T/i8c.plan" "$IN" --output-dir "$T/o8c" >/dev/null 2>&1
/usr/bin/python3 -c "
import numpy as np, sys
a, b = np.load('$T/o8/0_probs.npy'), np.load('$T/o8c/0_probs.npy')
sys.exit(0 if np.array_equal(a, b) else 1)" && ok || bad "plan from cache differs from the calibrated one"

# kiln compare: INT8 against the FP32 model on the evaluation set.
if "$KILN" compare "$M" "$T/i8.plan" --inputs "$T/eval" --json "$T/cmp.json" >"$T/out" 2>"$T/err"; then
  grep -q "top-1" "$T/out" && ok || bad "compare table: $(cat "$T/out")"
  /usr/bin/python3 -c "
import json, sys
o = json.load(open('$T/cmp.json'))['outputs']['probs']
print('int8 vs fp32 on tiny_cnn:', o)
sys.exit(0 if o['cosine_mean'] > 0.99 and o['top1_agreement'] >= 0.8 and o['samples'] == 16 else 1)" >"$T/cmpres" && ok || bad "INT8 too far from FP32: $(cat "$T/cmpres")"
else
  bad "compare: $(cat "$T/err")"
fi
"$KILN" compare "$M" "$T/i8.plan" >"$T/out" 2>&1 && grep -q "seeded random" "$T/out" && ok || bad "compare on random inputs: $(cat "$T/out")"
# Per layer: every tensor both run, the INT8 layers marked, a JSON list and an HTML chart.
if "$KILN" compare "$M" "$T/i8.plan" --inputs "$T/eval" --per-layer --html "$T/cmp.html" --json "$T/pl.json" >"$T/out" 2>"$T/err"; then
  grep -q "(int8)" "$T/out" && ok || bad "per-layer table marks no INT8 layer: $(cat "$T/out")"
  grep -q "<svg" "$T/cmp.html" && ok || bad "per-layer html has no chart"
  /usr/bin/python3 -c "
import json, sys
l = json.load(open('$T/pl.json'))['layers']
sys.exit(0 if len(l) >= 5 and all(0.9 < x['cosine'] <= 1.0000001 for x in l) else 1)" && ok || bad "per-layer json: $(head -c 600 "$T/pl.json")"
else
  bad "compare --per-layer: $(cat "$T/err")"
fi

# Every calibrator; images; --keep-fp32.
for c in minmax percentile; do
  "$KILN" build "$M" -o "$T/$c.plan" --precision int8 --calib "$T/calib" --calibrator $c >/dev/null 2>"$T/err" && ok || bad "calibrator $c: $(cat "$T/err")"
done
"$KILN" build "$M" -o "$T/img.plan" --precision int8 --calib "$T/images" --calib-mean 0.485,0.456,0.406 --calib-std 0.229,0.224,0.225 >/dev/null 2>"$T/err" \
  && grep -q "12 images" "$T/err" && ok || bad "images: $(cat "$T/err")"
n_all=$(grep -o "[0-9]* layers INT8" "$T/err" | cut -d' ' -f1)
"$KILN" build "$M" -o "$T/keep.plan" --precision int8 --calib "$T/calib" --keep-fp32 /stem/stem.0/Conv >/dev/null 2>"$T/err" || bad "keep-fp32: $(cat "$T/err")"
n_keep=$(grep -o "[0-9]* layers INT8" "$T/err" | cut -d' ' -f1)
[ -n "$n_all" ] && [ -n "$n_keep" ] && [ "$n_keep" -eq $((n_all - 1)) ] && ok || bad "--keep-fp32: $n_keep INT8 layers vs $n_all"

# Accuracy budget: an impossible one (0.001 %) keeps layers FP32, most sensitive first, and says
# so; a loose one (50 %) keeps every layer INT8; a budget needs data.
"$KILN" build "$M" -o "$T/b.plan" --precision int8 --calib "$T/calib" --accuracy-budget 0.001 --holdout-batches 4 >/dev/null 2>"$T/err" \
  && grep -q "kept FP32, most sensitive first" "$T/err" && ok || bad "tight accuracy budget: $(cat "$T/err")"
n_tight=$(grep -o "[0-9]* layers INT8" "$T/err" | cut -d' ' -f1)
[ -n "$n_tight" ] && [ -n "$n_all" ] && [ "$n_tight" -lt "$n_all" ] && ok || bad "tight budget left $n_tight of $n_all layers INT8"
"$KILN" build "$M" -o "$T/b2.plan" --precision int8 --calib "$T/calib" --accuracy-budget 50 >/dev/null 2>"$T/err" \
  && grep -q "with every layer INT8" "$T/err" && ! grep -q "kept FP32" "$T/err" && ok || bad "loose accuracy budget: $(cat "$T/err")"
expect_error "budget without data" "accuracy budget needs calibration data" \
  "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib-cache "$T/c.cache" --accuracy-budget 1

# Bad calibration input: every one a clear error, no plan left behind.
expect_error "int8 without data" "needs --calib DIR" "$KILN" build "$M" -o "$T/x.plan" --precision int8
expect_error "calib without int8" "go with --precision int8" "$KILN" build "$M" -o "$T/x.plan" --calib "$T/calib"
expect_error "missing calib dir" "not a folder" "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib "$T/nope"
expect_error "wrong-shaped tensor" "wrong/00.npy: holds 1x3x16x16; input 'input' takes 1x3x32x32" \
  "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib "$T/wrong"
expect_error "undecodable image" "badimg/00.png: not a decodable image" "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib "$T/badimg"
expect_error "unknown calibrator" "expected entropy, percentile or minmax" \
  "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib "$T/calib" --calibrator kl
expect_error "missing cache" "nope.cache" "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib-cache "$T/nope.cache"
{ cat "$T/c.cache"; echo "0x1p+0 s8 no_such_tensor"; } >"$T/extra.cache"
expect_error "cache naming an unknown tensor" "'no_such_tensor'" "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib-cache "$T/extra.cache"
grep -v "^0x" "$T/c.cache" >"$T/empty.cache"
expect_error "cache lacking tensors" "has no range for" "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib-cache "$T/empty.cache"
{ head -4 "$T/c.cache"; echo "nan s8 x"; } >"$T/nan.cache"
expect_error "cache with a bad threshold" "nan.cache:5" "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib-cache "$T/nan.cache"
[ ! -e "$T/x.plan" ] && ok || bad "a failed build left $T/x.plan behind"
echo '{"resize": "squash"}' >"$T/images/preprocess.json"
expect_error "bad preprocess.json" "image resize 'squash'" "$KILN" build "$M" -o "$T/x.plan" --precision int8 --calib "$T/images"
expect_error "compare: missing B" "nope.plan" "$KILN" compare "$M" "$T/nope.plan"

# kiln quantize: a QDQ model that imports, runs its convolutions in INT8 with the cache's
# scales (the same engine as the calibrated plan, up to BatchNormalization folding), and
# keeps the model's outputs.
if "$KILN" quantize "$M" -o "$T/q.onnx" --calib-cache "$T/c.cache" >"$T/out" 2>"$T/err"; then
  grep -q "convolutions quantized (QDQ" "$T/out" && ok || bad "quantize summary: $(cat "$T/out")"
  "$KILN" build "$T/q.onnx" -o "$T/q.plan" >/dev/null 2>"$T/err" && grep -q "layers INT8 with the scales of the model" "$T/err" \
    && ok || bad "QDQ model build: $(cat "$T/err")"
  "$KILN" compare "$T/i8.plan" "$T/q.plan" --inputs "$T/eval" --json "$T/qc.json" >/dev/null 2>"$T/err" || bad "compare QDQ: $(cat "$T/err")"
  /usr/bin/python3 -c "
import json, sys
o = json.load(open('$T/qc.json'))['outputs']['probs']
sys.exit(0 if o['cosine_mean'] > 0.999 else 1)" && ok || bad "QDQ plan differs from the calibrated plan: $(cat "$T/qc.json")"
  "$KILN" run "$T/q.onnx" "$IN" --backend ref >/dev/null 2>"$T/err" && ok || bad "QDQ model on the reference backend: $(cat "$T/err")"
else
  bad "quantize: $(cat "$T/err")"
fi
expect_error "quantize without data" "needs --calib DIR" "$KILN" quantize "$M" -o "$T/x.onnx"
[ ! -e "$T/x.onnx" ] && ok || bad "a failed quantize left $T/x.onnx behind"

echo "int8 CLI tests: $pass passed, $fail failed"
[ $fail -eq 0 ]
