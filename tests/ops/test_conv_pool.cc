// Conv/pool/resampling op tests: numbers worked out by hand or with NumPy (ONNX's
// reference helpers in onnx/backend/test/case/node/*.py), bad inputs that must be errors,
// symbolic shape inference, and the opset normalizers.
#include <gtest/gtest.h>

#include "frontend/onnx/normalize.h"
#include "ops/op_test_util.h"

namespace kiln::testing {
namespace {

template <typename T>
Tensor Of(std::vector<T> v, std::vector<int64_t> dims) {
  return Tensor::FromVector<T>(v, std::move(dims));
}

std::vector<float> Iota(int n, float start = 0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = start + float(i);
  return v;
}

// ---- Conv family ----

TEST(ConvPool, ConvDepthwiseStrided) {
  Tensor x = F32(Iota(32), {1, 2, 4, 4});
  Tensor w = F32({1, 2, 3, 4, -1, 0, 0, 1}, {2, 1, 2, 2});
  OpRun r = RunOp("Conv", {x, w}, A({{"group", Attr::Int(2)}, {"strides", Attr::Ints({2, 2})}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({34, 54, 114, 134, 5, 5, 5, 5}, {1, 2, 2, 2})));
}

TEST(ConvPool, ConvDilated) {
  OpRun r = RunOp("Conv", {F32(Iota(25), {1, 1, 5, 5}), F32({1, 1, 1, 1}, {1, 1, 2, 2})},
                  A({{"dilations", Attr::Ints({2, 2})}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({24, 28, 32, 44, 48, 52, 64, 68, 72}, {1, 1, 3, 3})));
}

TEST(ConvPool, ConvAutoPadSameUpperAndLower1d) {
  Tensor x = F32({1, 2, 3, 4, 5}, {1, 1, 5});
  Tensor w = F32({1, 1}, {1, 1, 2});
  // Total padding 1: SAME_UPPER puts it at the end, SAME_LOWER at the start.
  OpRun up = RunOp("Conv", {x, w}, A({{"auto_pad", Attr::String("SAME_UPPER")}, {"strides", Attr::Ints({2})}}));
  ASSERT_TRUE(up.status.ok()) << up.status.ToString();
  EXPECT_TRUE(TensorsClose(up.outputs[0].tensor, F32({3, 7, 5}, {1, 1, 3})));
  OpRun lo = RunOp("Conv", {x, w}, A({{"auto_pad", Attr::String("SAME_LOWER")}, {"strides", Attr::Ints({2})}}));
  ASSERT_TRUE(lo.status.ok()) << lo.status.ToString();
  EXPECT_TRUE(TensorsClose(lo.outputs[0].tensor, F32({1, 5, 9}, {1, 1, 3})));
  OpRun valid = RunOp("Conv", {x, w}, A({{"auto_pad", Attr::String("VALID")}, {"pads", Attr::Ints({3, 3})}}));
  ASSERT_TRUE(valid.status.ok()) << valid.status.ToString();
  EXPECT_TRUE(TensorsClose(valid.outputs[0].tensor, F32({3, 5, 7, 9}, {1, 1, 4})));
}

TEST(ConvPool, Conv3dSumsTheCube) {
  OpRun r = RunOp("Conv", {F32(Iota(8, 1), {1, 1, 2, 2, 2}), F32(std::vector<float>(8, 1), {1, 1, 2, 2, 2})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({36}, {1, 1, 1, 1, 1})));
}

TEST(ConvPool, ConvKeepsSymbolicBatch) {
  Tensor x = F32(Iota(2 * 3 * 8 * 8), {2, 3, 8, 8});
  Tensor w = F32(std::vector<float>(4 * 3 * 3 * 3, 0.5f), {4, 3, 3, 3});
  TypeInfo xt = TypeInfo::Tensor(DType::kFloat32, Shape({Dim::Symbol("N"), Dim(3), Dim(8), Dim(8)}));
  TypeInfo wt = TypeInfo::Tensor(DType::kFloat32, Shape::FromDims(w.dims()));
  OpRun r = RunOpValues("Conv", {RValue(x), RValue(w)}, {xt, wt},
                        A({{"strides", Attr::Ints({2, 2})}, {"pads", Attr::Ints({1, 1, 1, 1})}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[N,4,4,4]");
  EXPECT_EQ(r.outputs[0].tensor.dims(), (std::vector<int64_t>{2, 4, 4, 4}));
  // An unknown kernel size leaves the spatial dims unknown rather than guessing.
  TypeInfo wu = TypeInfo::Tensor(DType::kFloat32, Shape({Dim(4), Dim(3), Dim::Unknown(), Dim::Unknown()}));
  OpRun u = RunOpValues("Conv", {RValue(x), RValue(w)}, {xt, wu});
  ASSERT_TRUE(u.status.ok()) << u.status.ToString();
  EXPECT_EQ(u.outputs[0].tensor.dims(), (std::vector<int64_t>{2, 4, 6, 6}));
}

TEST(ConvPool, ConvErrors) {
  Tensor x = F32(Iota(16), {1, 1, 4, 4});
  Tensor w = F32({1, 1, 1, 1}, {1, 1, 2, 2});
  EXPECT_TRUE(Has(RunOp("Conv", {x, w}, A({{"kernel_shape", Attr::Ints({3, 3})}})).status, "kernel_shape"));
  EXPECT_TRUE(Has(RunOp("Conv", {x, w}, A({{"auto_pad", Attr::String("SAME")}})).status, "auto_pad"));
  EXPECT_TRUE(Has(RunOp("Conv", {x, w}, A({{"pads", Attr::Ints({1, 1})}})).status, "pads"));
  EXPECT_TRUE(Has(RunOp("Conv", {x, w}, A({{"pads", Attr::String("1")}})).status, "pads"));
  EXPECT_TRUE(Has(RunOp("Conv", {x, w}, A({{"strides", Attr::Ints({0, 1})}})).status, "strides"));
  EXPECT_TRUE(Has(RunOp("Conv", {x, w}, A({{"group", Attr::Int(0)}})).status, "group"));
  EXPECT_TRUE(Has(RunOp("Conv", {x, w}, A({{"dilations", Attr::Ints({int64_t{1} << 40, 1})}})).status, "too large"));
  EXPECT_FALSE(RunOp("Conv", {F32({1, 2}, {1, 2}), w}).status.ok());
  EXPECT_TRUE(Has(RunOp("Conv", {x, w, F32({1, 2}, {2})}).status, "bias"));
  // The window larger than the (padded) input.
  EXPECT_TRUE(Has(RunOp("Conv", {F32({1}, {1, 1, 1, 1}), w}).status, "larger than"));
}

TEST(ConvPool, ConvTransposeStridedPaddedAndShaped) {
  Tensor x = F32({1, 2, 3}, {1, 1, 3});
  Tensor w = F32({1, 1, 1}, {1, 1, 3});
  OpRun plain = RunOp("ConvTranspose", {x, w});
  ASSERT_TRUE(plain.status.ok()) << plain.status.ToString();
  EXPECT_TRUE(TensorsClose(plain.outputs[0].tensor, F32({1, 3, 6, 5, 3}, {1, 1, 5})));
  OpRun strided = RunOp("ConvTranspose", {x, w}, A({{"strides", Attr::Ints({2})}, {"output_padding", Attr::Ints({1})}}));
  ASSERT_TRUE(strided.status.ok()) << strided.status.ToString();
  EXPECT_TRUE(TensorsClose(strided.outputs[0].tensor, F32({1, 1, 3, 2, 5, 3, 3, 0}, {1, 1, 8})));
  OpRun padded = RunOp("ConvTranspose", {x, w}, A({{"strides", Attr::Ints({2})}, {"pads", Attr::Ints({1, 1})}}));
  ASSERT_TRUE(padded.status.ok()) << padded.status.ToString();
  EXPECT_TRUE(TensorsClose(padded.outputs[0].tensor, F32({1, 3, 2, 5, 3}, {1, 1, 5})));
  // output_shape 6 of a full 7: the odd padding row goes to the start (auto_pad NOTSET).
  OpRun shaped = RunOp("ConvTranspose", {x, w}, A({{"strides", Attr::Ints({2})}, {"output_shape", Attr::Ints({6})}}));
  ASSERT_TRUE(shaped.status.ok()) << shaped.status.ToString();
  EXPECT_TRUE(TensorsClose(shaped.outputs[0].tensor, F32({1, 3, 2, 5, 3, 3}, {1, 1, 6})));
  EXPECT_EQ(OutType(shaped), "float32[1,1,6]");
}

TEST(ConvPool, ConvTransposeGroupsAndBias) {
  // Two groups, one channel each: channel 0 scales by 1, channel 1 by 2; bias per output.
  Tensor x = F32({1, 2, 3, 4}, {1, 2, 2});
  Tensor w = F32({1, 2}, {2, 1, 1});
  OpRun r = RunOp("ConvTranspose", {x, w, F32({10, 20}, {2})}, A({{"group", Attr::Int(2)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({11, 12, 26, 28}, {1, 2, 2})));
}

TEST(ConvPool, ConvTransposeErrors) {
  Tensor x = F32({1, 2, 3}, {1, 1, 3});
  Tensor w = F32({1, 1, 1}, {1, 1, 3});
  EXPECT_TRUE(Has(RunOp("ConvTranspose", {x, w}, A({{"output_shape", Attr::Ints({1, 6})}})).status, "output_shape"));
  EXPECT_TRUE(Has(RunOp("ConvTranspose", {x, w}, A({{"output_padding", Attr::Ints({1, 1})}})).status, "output_padding"));
  EXPECT_TRUE(Has(RunOp("ConvTranspose", {F32({1, 2, 3, 4, 5, 6}, {1, 2, 3}), w}).status, "channels"));
  EXPECT_TRUE(Has(RunOp("ConvTranspose", {x, w}, A({{"pads", Attr::Ints({4, 4})}})).status, "not positive"));
}

TEST(ConvPool, ConvIntegerSubtractsZeroPoints) {
  Tensor x = Of<uint8_t>({2, 3, 4, 5}, {1, 1, 2, 2});
  Tensor w = Of<uint8_t>({3}, {1, 1, 1, 1});
  OpRun r = RunOp("ConvInteger", {x, w, Tensor::FromVector<uint8_t>({2}), Tensor::FromVector<uint8_t>({1})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "int32[1,1,2,2]");
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, Of<int32_t>({0, 2, 4, 6}, {1, 1, 2, 2})));
  OpRun bad = RunOp("ConvInteger", {x, w, Tensor::FromVector<uint8_t>({2}), Tensor::FromVector<uint8_t>({1, 1})});
  EXPECT_TRUE(Has(bad.status, "zero point"));
}

TEST(ConvPool, QLinearConvPerChannelRoundsHalfToEven) {
  // y = round((x - 10) * 0.5 * w * w_scale[m] / 0.5) + 128; 7.5 -> 8 and 22.5 -> 22.
  Tensor x = Of<uint8_t>({10, 20, 30, 40}, {1, 1, 2, 2});
  Tensor w = Of<int8_t>({3, -2}, {2, 1, 1, 1});
  OpRun r = RunOp("QLinearConv", {x, F32({0.5f}, {}), Tensor::FromVector<uint8_t>({10}), w, F32({0.25f, 1.f}, {2}),
                                  Tensor::FromVector<int8_t>({0}), F32({0.5f}, {}), Tensor::FromVector<uint8_t>({128})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, Of<uint8_t>({128, 136, 143, 150, 128, 108, 88, 68}, {1, 2, 2, 2})));
  // Saturation: 100 * 4 / 1 + 0 clamps to 127 for int8 output.
  OpRun sat = RunOp("QLinearConv", {Of<int8_t>({100}, {1, 1, 1, 1}), F32({1.f}, {}), Tensor::FromVector<int8_t>({0}),
                                    Of<int8_t>({4}, {1, 1, 1, 1}), F32({1.f}, {}), Tensor::FromVector<int8_t>({0}),
                                    F32({1.f}, {}), Tensor::FromVector<int8_t>({0})});
  ASSERT_TRUE(sat.status.ok()) << sat.status.ToString();
  EXPECT_TRUE(TensorsClose(sat.outputs[0].tensor, Of<int8_t>({127}, {1, 1, 1, 1})));
  OpRun bad = RunOp("QLinearConv", {x, F32({0.5f}, {}), Tensor::FromVector<uint8_t>({10}), w, F32({1, 1, 1}, {3}),
                                    Tensor::FromVector<int8_t>({0}), F32({0.5f}, {}), Tensor::FromVector<uint8_t>({128})});
  EXPECT_TRUE(Has(bad.status, "w_scale"));
}

// ---- Pooling ----

TEST(ConvPool, MaxPoolColumnMajorIndices) {
  Tensor x = F32({1, 2, 3, 4, 5, 6}, {1, 1, 2, 3});
  AttrMap a = A({{"kernel_shape", Attr::Ints({2, 2})}});
  OpRun row = RunOp("MaxPool", {x}, a, 2);
  ASSERT_TRUE(row.status.ok()) << row.status.ToString();
  EXPECT_TRUE(TensorsClose(row.outputs[0].tensor, F32({5, 6}, {1, 1, 1, 2})));
  EXPECT_TRUE(TensorsClose(row.outputs[1].tensor, I64({4, 5}, {1, 1, 1, 2})));
  a.set("storage_order", Attr::Int(1));
  OpRun col = RunOp("MaxPool", {x}, a, 2);
  ASSERT_TRUE(col.status.ok()) << col.status.ToString();
  EXPECT_TRUE(TensorsClose(col.outputs[1].tensor, I64({3, 5}, {1, 1, 1, 2})));
}

TEST(ConvPool, MaxPoolInt8Dilated) {
  Tensor x = Of<int8_t>({-5, 3, -1, 7, 2}, {1, 1, 1, 5});
  OpRun r = RunOp("MaxPool", {x}, A({{"kernel_shape", Attr::Ints({1, 2})}, {"dilations", Attr::Ints({1, 2})}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, Of<int8_t>({-1, 7, 2}, {1, 1, 1, 3})));
}

TEST(ConvPool, AveragePoolCountIncludePad) {
  Tensor x = F32({3, 6, 9}, {1, 1, 1, 3});
  AttrMap a = A({{"kernel_shape", Attr::Ints({1, 3})}, {"pads", Attr::Ints({0, 1, 0, 1})}});
  OpRun ex = RunOp("AveragePool", {x}, a);
  ASSERT_TRUE(ex.status.ok()) << ex.status.ToString();
  EXPECT_TRUE(TensorsClose(ex.outputs[0].tensor, F32({4.5f, 6, 7.5f}, {1, 1, 1, 3})));
  a.set("count_include_pad", Attr::Int(1));
  OpRun in = RunOp("AveragePool", {x}, a);
  ASSERT_TRUE(in.status.ok()) << in.status.ToString();
  EXPECT_TRUE(TensorsClose(in.outputs[0].tensor, F32({3, 6, 5}, {1, 1, 1, 3})));
}

TEST(ConvPool, AveragePoolCeilModeSymbolic) {
  // 5 wide, kernel 2, stride 2: floor gives 2 windows, ceil 3 (the last one half outside).
  Tensor x = F32({1, 2, 3, 4, 5}, {1, 1, 5});
  TypeInfo xt = TypeInfo::Tensor(DType::kFloat32, Shape({Dim::Symbol("B"), Dim(1), Dim(5)}));
  OpRun r = RunOpValues("AveragePool", {RValue(x)}, {xt},
                        A({{"kernel_shape", Attr::Ints({2})}, {"strides", Attr::Ints({2})}, {"ceil_mode", Attr::Int(1)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[B,1,3]");
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1.5f, 3.5f, 5}, {1, 1, 3})));
}

TEST(ConvPool, LpPool) {
  Tensor x = F32({-1, 2, -3}, {1, 1, 3});
  OpRun p1 = RunOp("LpPool", {x}, A({{"kernel_shape", Attr::Ints({2})}, {"p", Attr::Int(1)}}));
  ASSERT_TRUE(p1.status.ok()) << p1.status.ToString();
  EXPECT_TRUE(TensorsClose(p1.outputs[0].tensor, F32({3, 5}, {1, 1, 2})));
  OpRun p2 = RunOp("LpPool", {x}, A({{"kernel_shape", Attr::Ints({2})}}));
  ASSERT_TRUE(p2.status.ok()) << p2.status.ToString();
  EXPECT_TRUE(TensorsClose(p2.outputs[0].tensor, F32({2.2360680f, 3.6055513f}, {1, 1, 2})));
  EXPECT_TRUE(Has(RunOp("LpPool", {x}, A({{"kernel_shape", Attr::Ints({2})}, {"p", Attr::Int(0)}})).status, "'p'"));
}

TEST(ConvPool, GlobalPools) {
  Tensor x = F32({1, 2, 3, -4}, {1, 2, 2, 1});
  OpRun avg = RunOp("GlobalAveragePool", {x});
  ASSERT_TRUE(avg.status.ok()) << avg.status.ToString();
  EXPECT_TRUE(TensorsClose(avg.outputs[0].tensor, F32({1.5f, -0.5f}, {1, 2, 1, 1})));
  OpRun mx = RunOp("GlobalMaxPool", {x});
  ASSERT_TRUE(mx.status.ok());
  EXPECT_TRUE(TensorsClose(mx.outputs[0].tensor, F32({2, 3}, {1, 2, 1, 1})));
  OpRun lp = RunOp("GlobalLpPool", {x});
  ASSERT_TRUE(lp.status.ok());
  EXPECT_TRUE(TensorsClose(lp.outputs[0].tensor, F32({2.2360680f, 5}, {1, 2, 1, 1})));
  EXPECT_FALSE(RunOp("GlobalAveragePool", {F32({1, 2}, {2})}).status.ok());
}

TEST(ConvPool, PoolErrors) {
  Tensor x = F32(Iota(9), {1, 1, 3, 3});
  EXPECT_TRUE(Has(RunOp("MaxPool", {x}).status, "kernel_shape"));
  EXPECT_TRUE(Has(RunOp("MaxPool", {x}, A({{"kernel_shape", Attr::Ints({2})}})).status, "kernel_shape"));
  EXPECT_TRUE(Has(RunOp("MaxPool", {x}, A({{"kernel_shape", Attr::Ints({2, 2})}, {"pads", Attr::Ints({-1, 0, 0, 0})}})).status, "pads"));
  EXPECT_TRUE(Has(RunOp("AveragePool", {x}, A({{"kernel_shape", Attr::Ints({4, 4})}})).status, "larger than"));
  EXPECT_TRUE(Has(RunOp("AveragePool", {F32({1, 2}, {1, 2})}, A({{"kernel_shape", Attr::Ints({1})}})).status, "rank"));
}

TEST(ConvPool, MaxUnpoolDefaultAndExplicitShape) {
  // ONNX's test: indices address the default 4x4 unpooled shape; output_shape 5x5 pads it.
  Tensor x = F32({5, 6, 7, 8}, {1, 1, 2, 2});
  Tensor idx = I64({5, 7, 13, 15}, {1, 1, 2, 2});
  AttrMap a = A({{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})}});
  OpRun r = RunOp("MaxUnpool", {x, idx}, a);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({0, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 0, 0, 7, 0, 8}, {1, 1, 4, 4})));
  OpRun s = RunOp("MaxUnpool", {x, idx, I64({1, 1, 5, 5}, {4})}, a, 1, {2});
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(OutType(s), "float32[1,1,5,5]");
  std::vector<float> want(25, 0);
  want[6] = 5, want[8] = 6, want[16] = 7, want[18] = 8;
  EXPECT_TRUE(TensorsClose(s.outputs[0].tensor, F32(want, {1, 1, 5, 5})));
  EXPECT_TRUE(Has(RunOp("MaxUnpool", {x, I64({5, 7, 13, 16}, {1, 1, 2, 2})}, a).status, "out of range"));
  EXPECT_TRUE(Has(RunOp("MaxUnpool", {x, idx, I64({5, 5}, {2})}, a, 1, {2}).status, "output_shape"));
}

// ---- Region-of-interest ops ----

TEST(ConvPool, MaxRoiPool) {
  Tensor x = F32(Iota(16), {1, 1, 4, 4});
  Tensor rois = F32({0, 0, 0, 3, 3, 0, 1, 1, 2, 2}, {2, 5});
  OpRun r = RunOp("MaxRoiPool", {x, rois}, A({{"pooled_shape", Attr::Ints({2, 2})}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({5, 7, 13, 15, 5, 6, 9, 10}, {2, 1, 2, 2})));
  EXPECT_TRUE(Has(RunOp("MaxRoiPool", {x, rois}).status, "pooled_shape"));
  EXPECT_TRUE(Has(RunOp("MaxRoiPool", {x, F32({3, 0, 0, 1, 1}, {1, 5})}, A({{"pooled_shape", Attr::Ints({1, 1})}})).status,
                  "out of range"));
}

TEST(ConvPool, RoiAlignModes) {
  // X[h][w] = w: a bin's average is the mean x of its sample points.
  std::vector<float> ramp;
  for (int i = 0; i < 16; ++i) ramp.push_back(float(i % 4));
  Tensor x = F32(ramp, {1, 1, 4, 4});
  Tensor rois = F32({0, 0, 3, 3}, {1, 4});
  Tensor bi = I64({0}, {1});
  AttrMap a = A({{"output_height", Attr::Int(1)}, {"output_width", Attr::Int(1)}, {"sampling_ratio", Attr::Int(2)}});
  OpRun half = RunOp("RoiAlign", {x, rois, bi}, a);  // samples at x = 0.25, 1.75
  ASSERT_TRUE(half.status.ok()) << half.status.ToString();
  EXPECT_TRUE(TensorsClose(half.outputs[0].tensor, F32({1.0f}, {1, 1, 1, 1})));
  a.set("coordinate_transformation_mode", Attr::String("output_half_pixel"));
  OpRun out = RunOp("RoiAlign", {x, rois, bi}, a);  // samples at x = 0.75, 2.25
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_TRUE(TensorsClose(out.outputs[0].tensor, F32({1.5f}, {1, 1, 1, 1})));
  // max takes the largest weighted corner (ONNX Runtime's semantics): 0.75 * 0.75 * 2.
  a.set("mode", Attr::String("max"));
  OpRun mx = RunOp("RoiAlign", {x, rois, bi}, a);
  ASSERT_TRUE(mx.status.ok()) << mx.status.ToString();
  EXPECT_TRUE(TensorsClose(mx.outputs[0].tensor, F32({1.125f}, {1, 1, 1, 1})));
  a.set("mode", Attr::String("median"));
  EXPECT_TRUE(Has(RunOp("RoiAlign", {x, rois, bi}, a).status, "mode"));
  EXPECT_TRUE(Has(RunOp("RoiAlign", {x, rois, I64({1}, {1})}).status, "out of range"));
  EXPECT_TRUE(Has(RunOp("RoiAlign", {x, F32({0, 0, 3}, {1, 3}), bi}).status, "rois"));
}

// ---- Sampling ----

TEST(ConvPool, GridSampleModesAndPadding) {
  Tensor x = F32({1, 2, 3, 4}, {1, 1, 2, 2});
  // Points (x, y): centre, top-left corner, and one off the left edge (pixel x = -1: its
  // only non-zero-weight neighbour is outside, so zeros padding gives 0).
  Tensor grid = F32({0, 0, -1, -1, -1.5f, 0}, {1, 1, 3, 2});
  OpRun zeros = RunOp("GridSample", {x, grid});
  ASSERT_TRUE(zeros.status.ok()) << zeros.status.ToString();
  EXPECT_TRUE(TensorsClose(zeros.outputs[0].tensor, F32({2.5f, 0.25f, 0.0f}, {1, 1, 1, 3})));
  OpRun border = RunOp("GridSample", {x, grid}, A({{"padding_mode", Attr::String("border")}}));
  ASSERT_TRUE(border.status.ok());
  EXPECT_TRUE(TensorsClose(border.outputs[0].tensor, F32({2.5f, 1, 2}, {1, 1, 1, 3})));
  OpRun refl = RunOp("GridSample", {x, grid}, A({{"padding_mode", Attr::String("reflection")}}));
  ASSERT_TRUE(refl.status.ok());
  EXPECT_TRUE(TensorsClose(refl.outputs[0].tensor, F32({2.5f, 1, 2}, {1, 1, 1, 3})));
  OpRun nearest = RunOp("GridSample", {x, F32({0.2f, -0.6f}, {1, 1, 1, 2})}, A({{"mode", Attr::String("nearest")}}));
  ASSERT_TRUE(nearest.status.ok());
  EXPECT_TRUE(TensorsClose(nearest.outputs[0].tensor, F32({2}, {1, 1, 1, 1})));
  OpRun corners = RunOp("GridSample", {x, F32({1, 1, -1, 1}, {1, 1, 2, 2})}, A({{"align_corners", Attr::Int(1)}}));
  ASSERT_TRUE(corners.status.ok());
  EXPECT_TRUE(TensorsClose(corners.outputs[0].tensor, F32({4, 3}, {1, 1, 1, 2})));
  // Bicubic reproduces a linear ramp exactly at an aligned interior point.
  OpRun cubic = RunOp("GridSample", {F32(Iota(16), {1, 1, 4, 4}), F32({-1.f / 3, -1.f / 3}, {1, 1, 1, 2})},
                      A({{"mode", Attr::String("bicubic")}, {"align_corners", Attr::Int(1)}}));
  ASSERT_TRUE(cubic.status.ok());
  EXPECT_TRUE(TensorsClose(cubic.outputs[0].tensor, F32({5}, {1, 1, 1, 1}), 1e-5, 1e-5));
  EXPECT_TRUE(Has(RunOp("GridSample", {x, grid}, A({{"mode", Attr::String("area")}})).status, "mode"));
  EXPECT_TRUE(Has(RunOp("GridSample", {x, F32({0, 0, 0}, {1, 1, 1, 3})}).status, "grid"));
}

TEST(ConvPool, ResizeNearestModes) {
  Tensor x = F32({1, 2}, {1, 1, 1, 2});
  Tensor scales = F32({1, 1, 1, 2}, {4});
  AttrMap a = A({{"coordinate_transformation_mode", Attr::String("asymmetric")}});
  OpRun r = RunOp("Resize", {x, Tensor(), scales}, a, 1, {2});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[1,1,1,4]");
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 1, 2, 2}, {1, 1, 1, 4})));
  a.set("nearest_mode", Attr::String("ceil"));
  OpRun c = RunOp("Resize", {x, Tensor(), scales}, a, 1, {2});
  ASSERT_TRUE(c.status.ok()) << c.status.ToString();
  EXPECT_TRUE(TensorsClose(c.outputs[0].tensor, F32({1, 2, 2, 2}, {1, 1, 1, 4})));
}

TEST(ConvPool, ResizeLinearAndCubic) {
  // Values from ONNX's interpolate_nd (onnx/backend/test/case/node/resize.py).
  OpRun lin = RunOp("Resize", {F32(Iota(8, 1), {1, 1, 2, 4}), Tensor(), F32({1, 1, 0.6f, 0.6f}, {4})},
                    A({{"mode", Attr::String("linear")}}), 1, {2});
  ASSERT_TRUE(lin.status.ok()) << lin.status.ToString();
  EXPECT_TRUE(TensorsClose(lin.outputs[0].tensor, F32({2.6666667f, 4.3333335f}, {1, 1, 1, 2})));
  Tensor x = F32(Iota(16, 1), {1, 1, 4, 4});
  OpRun cub = RunOp("Resize", {x, Tensor(), F32({1, 1, 0.8f, 0.8f}, {4})}, A({{"mode", Attr::String("cubic")}}), 1, {2});
  ASSERT_TRUE(cub.status.ok()) << cub.status.ToString();
  EXPECT_TRUE(TensorsClose(cub.outputs[0].tensor,
                           F32({1.47119140625f, 2.78125f, 4.08251953125f, 6.71142578125f, 8.021484375f, 9.32275390625f,
                                11.91650390625f, 13.2265625f, 14.52783203125f}, {1, 1, 3, 3}), 1e-4, 1e-5));
  OpRun ac = RunOp("Resize", {x, Tensor(), Tensor(), I64({1, 1, 3, 3}, {4})},
                   A({{"mode", Attr::String("cubic")}, {"coordinate_transformation_mode", Attr::String("align_corners")}}), 1, {3});
  ASSERT_TRUE(ac.status.ok()) << ac.status.ToString();
  EXPECT_TRUE(TensorsClose(ac.outputs[0].tensor, F32({1, 2.5f, 4, 7, 8.5f, 10, 13, 14.5f, 16}, {1, 1, 3, 3})));
}

TEST(ConvPool, ResizeCropAndResizeExtrapolates) {
  // Along axis 3 only: roi [0.5, 1.5] maps outputs to x = 1.5, 3, 4.5 (outside -> 10).
  OpRun r = RunOp("Resize", {F32({1, 2, 3, 4}, {1, 1, 1, 4}), F32({0.5f, 1.5f}, {2}), Tensor(), I64({3}, {1})},
                  A({{"mode", Attr::String("linear")}, {"axes", Attr::Ints({-1})},
                     {"coordinate_transformation_mode", Attr::String("tf_crop_and_resize")},
                     {"extrapolation_value", Attr::Float(10.f)}}), 1, {1, 3});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({2.5f, 4, 10}, {1, 1, 1, 3})));
}

TEST(ConvPool, ResizeKeepAspectRatio) {
  Tensor x = F32(Iota(8), {1, 1, 2, 4});
  AttrMap a = A({{"axes", Attr::Ints({2, 3})}, {"keep_aspect_ratio_policy", Attr::String("not_larger")}});
  OpRun nl = RunOp("Resize", {x, Tensor(), Tensor(), I64({3, 3}, {2})}, a, 1, {3});
  ASSERT_TRUE(nl.status.ok()) << nl.status.ToString();
  EXPECT_EQ(OutType(nl), "float32[1,1,2,3]");
  a.set("keep_aspect_ratio_policy", Attr::String("not_smaller"));
  OpRun ns = RunOp("Resize", {x, Tensor(), Tensor(), I64({3, 3}, {2})}, a, 1, {3});
  ASSERT_TRUE(ns.status.ok()) << ns.status.ToString();
  EXPECT_EQ(OutType(ns), "float32[1,1,3,6]");
  a.set("keep_aspect_ratio_policy", Attr::String("fit"));
  EXPECT_TRUE(Has(RunOp("Resize", {x, Tensor(), Tensor(), I64({3, 3}, {2})}, a, 1, {3}).status, "keep_aspect_ratio_policy"));
}

TEST(ConvPool, ResizeErrors) {
  Tensor x = F32({1, 2}, {1, 1, 1, 2});
  Tensor scales = F32({1, 1, 1, 2}, {4});
  EXPECT_TRUE(Has(RunOp("Resize", {x}).status, "scales"));
  EXPECT_TRUE(Has(RunOp("Resize", {x, Tensor(), scales, I64({1, 1, 1, 4}, {4})}, {}, 1, {2, 3}).status, "only one"));
  EXPECT_TRUE(Has(RunOp("Resize", {x, Tensor(), scales}, A({{"mode", Attr::String("area")}}), 1, {2}).status, "mode"));
  EXPECT_TRUE(Has(RunOp("Resize", {x, Tensor(), F32({1, 2}, {2})}, A({{"axes", Attr::Ints({3, -1})}}), 1, {2}).status, "repeats"));
  EXPECT_TRUE(Has(RunOp("Resize", {x, Tensor(), F32({1, 1, 1, -2}, {4})}, {}, 1, {2}).status, "positive"));
  EXPECT_TRUE(Has(RunOp("Resize", {x, Tensor(), F32({1, 2}, {2})}, {}, 1, {2}).status, "entries"));
  EXPECT_TRUE(Has(RunOp("Resize", {x, Tensor(), scales}, A({{"coordinate_transformation_mode", Attr::String("x")}}), 1, {2}).status,
                  "coordinate_transformation_mode"));
}

// ---- Opset normalization ----

// Applies the registered normalizer for `node` at `opset`, adds the node, infers and runs.
OpRun NormalizeAndRun(Node node, int opset, const std::vector<Tensor>& inputs) {
  OpRun r;
  Graph& g = r.graph;
  std::vector<RValue> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ValueId v = *g.AddValue("in" + std::to_string(i), TypeInfo::Tensor(inputs[i].dtype(), Shape::FromDims(inputs[i].dims())));
    g.inputs().push_back(v);
    node.inputs.push_back(v);
    feeds.emplace_back(inputs[i]);
  }
  ValueId out = *g.AddValue("out");
  node.outputs = {out};
  g.outputs().push_back(out);
  NormalizeFn fn = NormalizerTable::Global().Find("", node.op_type);
  if (fn) {
    NormalizeContext ctx(g, node, opset);
    r.status = fn(ctx);
    if (!r.status.ok()) return r;
  }
  auto added = g.AddNode(std::move(node));
  if (!added.ok()) { r.status = added.status(); return r; }
  r.status = InferTypes(g);
  if (!r.status.ok()) return r;
  RefExecutor ex;
  auto outs = ex.Run(g, feeds);
  if (!outs.ok()) { r.status = outs.status(); return r; }
  r.outputs = std::move(*outs);
  return r;
}

TEST(ConvPool, UpsampleOpset7BecomesResize) {
  Node n;
  n.op_type = "Upsample";
  n.attrs.set("scales", Attr::Floats({1, 1, 2, 2}));
  OpRun r = NormalizeAndRun(n, 7, {F32({1, 2, 3, 4}, {1, 1, 2, 2})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.graph.node(0).op_type, "Resize");
  EXPECT_EQ(OutType(r), "float32[1,1,4,4]");
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, {1, 1, 4, 4})));
}

TEST(ConvPool, UpsampleOpset9BilinearIsAsymmetricLinear) {
  Node n;
  n.op_type = "Upsample";
  n.attrs.set("mode", Attr::String("linear"));
  OpRun r = NormalizeAndRun(n, 9, {F32({1, 3}, {1, 1, 1, 2}), F32({1, 1, 1, 2}, {4})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  // asymmetric: x_in = x_out / 2 -> 0, 0.5, 1, 1.5 (edge-clamped).
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 2, 3, 3}, {1, 1, 1, 4})));
}

TEST(ConvPool, RoiAlignOpset10HasNoHalfPixelShift) {
  std::vector<float> ramp;
  for (int i = 0; i < 16; ++i) ramp.push_back(float(i % 4));
  Node n;
  n.op_type = "RoiAlign";
  n.attrs.set("sampling_ratio", Attr::Int(2));
  OpRun r = NormalizeAndRun(n, 10, {F32(ramp, {1, 1, 4, 4}), F32({0, 0, 3, 3}, {1, 4}), I64({0}, {1})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1.5f}, {1, 1, 1, 1})));
}

TEST(ConvPool, LpPoolOpset1FloatP) {
  Node n;
  n.op_type = "LpPool";
  n.attrs.set("kernel_shape", Attr::Ints({2}));
  n.attrs.set("p", Attr::Float(1.f));
  OpRun r = NormalizeAndRun(n, 1, {F32({-1, 2, -3}, {1, 1, 3})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({3, 5}, {1, 1, 2})));
}

}  // namespace
}  // namespace kiln::testing
