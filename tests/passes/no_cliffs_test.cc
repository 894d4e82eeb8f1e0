// Small graphs that reproduce each performance cliff found on real models (issue: "no
// cliffs"): each must compile for the CPU backend with no step on a reference
// implementation (kiln's reference kernels or oneDNN's ref:any) and compute what the
// reference backend computes on the unoptimized graph.
//   SiLU chain (EfficientNet, YOLO): x * Sigmoid(x) after a conv, and a standalone one;
//   residual Add in [N,T,C] (ViT) and a broadcast bias row;
//   Pad(0) + AveragePool (DenseNet transitions as PyTorch exports them);
//   Resize linear/half_pixel with sizes computed by Shape -> Slice -> Concat (IS-Net);
//   Conv + Relu + residual Add (U^2-Net RSU: the sum post-op after an activation);
//   a unary op with a fused binary epilogue (Sigmoid(x) * y);
//   convolutions feeding a Concat.
#include <gtest/gtest.h>

#include <random>

#include "api/optimize.h"
#include "passes/pass_test_util.h"

namespace kiln::testing {
namespace {

Tensor Ints(std::vector<int64_t> v) {
  Tensor t(DType::kInt64, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
  return t;
}

ValueId Conv(GraphBuilder& b, const std::string& name, ValueId x, int64_t cin, int64_t cout, int64_t k, uint32_t seed) {
  const int64_t p = k / 2;
  return b.Op("Conv", name, {x, b.Const(name + "_w", RandomTensor({cout, cin, k, k}, seed)), b.Const(name + "_b", RandomTensor({cout}, seed + 1))},
              Attrs({{"pads", Attr::Ints({p, p, p, p})}}));
}

// Optimizes g, then: the CPU schedule has no slow step and matches the reference.
void ExpectFastAndCorrect(const Graph& g, double tol = 1e-4) {
  Graph o = g;
  auto r = OptimizeGraph(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::vector<std::string> slow = CpuSlowSteps(o);
  EXPECT_TRUE(slow.empty()) << slow.size() << " slow step(s), first: " << slow[0] << "\n" << OpSequence(o);
  EXPECT_TRUE(CpuMatchesReference(g, o, tol)) << OpSequence(o);
}

TEST(NoCliffs, SiluAfterConvAndStandalone) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 16, 12, 12});
  ValueId c = Conv(b, "conv", x, 16, 24, 3, 1);
  ValueId y = b.Op("Mul", "silu", {c, b.Op("Sigmoid", "sig", {c})});
  ValueId z = b.Op("Mul", "silu2", {b.Op("Sigmoid", "sig2", {x}), x});  // operands swapped, on a graph input
  b.Output(y);
  b.Output(z);
  Graph g = b.Build();
  Graph o = g;
  ASSERT_TRUE(OptimizeGraph(o).ok());
  EXPECT_EQ(OpSequence(o), "Conv+Swish,Swish");
  ExpectFastAndCorrect(g);
}

TEST(NoCliffs, MishAfterConv) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 8, 10, 10});
  ValueId c = Conv(b, "conv", x, 8, 8, 3, 3);
  b.Output(b.Op("Mul", "mish", {c, b.Op("Tanh", "tanh", {b.Op("Softplus", "sp", {c})})}));
  Graph g = b.Build();
  Graph o = g;
  ASSERT_TRUE(OptimizeGraph(o).ok());
  EXPECT_EQ(OpSequence(o), "Conv+Mish");
  ExpectFastAndCorrect(g, 2e-4);
}

TEST(NoCliffs, ResidualAddInNTCAndBiasRow) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 197, 64});
  ValueId w = b.Const("w", RandomTensor({64, 64}, 5));
  ValueId h = b.Op("MatMul", "mm", {x, w});
  ValueId t = b.Op("Transpose", "tr", {b.Op("Transpose", "tr0", {h}, Attrs({{"perm", Attr::Ints({0, 2, 1})}}))},
                   Attrs({{"perm", Attr::Ints({0, 2, 1})}}));
  ValueId res = b.Op("Add", "residual", {x, b.Op("Relu", "relu", {t})});
  ValueId row = b.Op("Add", "bias_row", {res, b.Const("row", RandomTensor({64}, 6))});
  b.Output(b.Op("Add", "residual2", {row, x}));
  ExpectFastAndCorrect(b.Build());
}

TEST(NoCliffs, ZeroPadThenAveragePool) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 8, 16, 16});
  ValueId p = b.Op("Pad", "pad", {Conv(b, "conv", x, 8, 8, 1, 7), b.Const("pads", Ints({0, 0, 0, 0, 0, 0, 0, 0}))});
  b.Output(b.Op("AveragePool", "pool", {p}, Attrs({{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})}})));
  ExpectFastAndCorrect(b.Build());
}

// Inception v3: AvgPool2d(3, 1, padding 1, count_include_pad) exports as Pad(1) + AveragePool;
// ZeroPadding2D + Conv2D from Keras: both fold into the window's own pads.
TEST(NoCliffs, PadFoldsIntoAveragePoolAndConv) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 8, 9, 9});
  ValueId p = b.Op("Pad", "pad", {Conv(b, "conv", x, 8, 8, 1, 7), b.Const("pads", Ints({0, 0, 1, 1, 0, 0, 1, 1}))});
  b.Output(b.Op("AveragePool", "pool", {p}, Attrs({{"kernel_shape", Attr::Ints({3, 3})}})));
  ValueId q = b.Op("Pad", "pad2", {x, b.Const("pads2", Ints({0, 0, 2, 1, 0, 0, 0, 1}))});
  b.Output(Conv(b, "conv2", q, 8, 4, 3, 9));
  // Not folded: a non-zero value, and a pool that does not count padding.
  ValueId r = b.Op("Pad", "pad3", {x, b.Const("pads3", Ints({0, 0, 1, 1, 0, 0, 1, 1})), b.Const("v", Tensor::Scalar<float>(2.f))});
  b.Output(b.Op("AveragePool", "pool3", {r}, Attrs({{"kernel_shape", Attr::Ints({3, 3})}, {"pads", Attr::Ints({1, 1, 1, 1})}})));
  Graph g = b.Build();
  Graph o = g;
  ASSERT_TRUE(OptimizeGraph(o).ok());
  EXPECT_EQ(OpSequence(o), "Conv,AveragePool,Conv,Pad,AveragePool");
  ExpectFastAndCorrect(g);  // the Pad that stays runs on kiln's pad kernel
}

TEST(NoCliffs, PadModes) {
  for (const char* mode : {"constant", "edge", "reflect"}) {
    SCOPED_TRACE(mode);
    GraphBuilder b;
    ValueId x = b.Input("x", DType::kFloat32, {2, 3, 5, 6});
    ValueId p = b.Op("Pad", "pad", {b.Op("Relu", "relu", {x}), b.Const("pads", Ints({0, 1, 2, 3, 1, 0, 4, 2})),
                                     b.Const("v", Tensor::Scalar<float>(-1.5f))},
                     Attrs({{"mode", Attr::String(mode)}}));
    b.Output(p);
    ExpectFastAndCorrect(b.Build());
  }
}

TEST(NoCliffs, GatherAlongInnerAxis) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 197, 48});
  b.Output(b.Op("Gather", "cls", {b.Op("Relu", "relu", {x}), b.Const("zero", Tensor::Scalar<int64_t>(0))},
                Attrs({{"axis", Attr::Int(1)}})));
  b.Output(b.Op("Gather", "cols", {x, b.Const("idx", Ints({5, -1, 0}))}, Attrs({{"axis", Attr::Int(2)}})));
  ExpectFastAndCorrect(b.Build());
}

TEST(NoCliffs, ResizeLinearWithComputedSizes) {
  for (const char* coord : {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"}) {
    SCOPED_TRACE(coord);
    GraphBuilder b;
    ValueId x = b.Input("x", DType::kFloat32, {1, 4, 9, 7});
    ValueId big = b.Input("big", DType::kFloat32, {1, 4, 20, 15});
    // sizes = Concat(Shape(x)[0:2], Shape(big)[2:4]): folds to a constant for static inputs.
    ValueId nc = b.Op("Slice", "nc", {b.Op("Shape", "shape_x", {x}), b.Const("s0", Ints({0})), b.Const("e0", Ints({2}))});
    ValueId hw = b.Op("Slice", "hw", {b.Op("Shape", "shape_big", {big}), b.Const("s1", Ints({2})), b.Const("e1", Ints({4}))});
    ValueId sizes = b.Op("Concat", "sizes", {nc, hw}, Attrs({{"axis", Attr::Int(0)}}));
    ValueId r = b.Op("Resize", "resize", {Conv(b, "conv", x, 4, 4, 3, 9), kNoValue, kNoValue, sizes},
                     Attrs({{"mode", Attr::String("linear")}, {"coordinate_transformation_mode", Attr::String(coord)}}));
    b.Output(b.Op("Add", "add", {r, big}));
    ExpectFastAndCorrect(b.Build());
  }
  // Large upsampling (segmentation heads: LR-ASPP, FCN, IS-Net), downsampling, cubic, and
  // crop-and-resize with extrapolation, each against the reference kernel.
  struct Case {
    std::vector<int64_t> in, out;
    const char* mode;
    const char* coord;
  };
  for (const Case& c : {Case{{1, 3, 9, 11}, {1, 3, 72, 88}, "linear", "half_pixel"},
                        Case{{2, 5, 40, 33}, {2, 5, 13, 10}, "linear", "align_corners"},
                        Case{{1, 2, 7, 6}, {1, 2, 30, 17}, "cubic", "half_pixel"},
                        Case{{1, 2, 70, 3}, {1, 2, 5, 40}, "cubic", "asymmetric"}}) {
    SCOPED_TRACE(std::string(c.mode) + " " + c.coord);
    GraphBuilder b;
    ValueId x = b.Input("x", DType::kFloat32, c.in);
    b.Output(b.Op("Resize", "resize", {x, kNoValue, kNoValue, b.Const("sizes", Ints(c.out))},
                  Attrs({{"mode", Attr::String(c.mode)}, {"coordinate_transformation_mode", Attr::String(c.coord)}})));
    ExpectFastAndCorrect(b.Build());
  }
  // Nearest with a non-integer factor (oneDNN's resampling only takes integer ones).
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 3, 10, 10});
  b.Output(b.Op("Resize", "resize", {x, kNoValue, kNoValue, b.Const("sizes", Ints({1, 3, 15, 25}))},
                Attrs({{"mode", Attr::String("nearest")}})));
  ExpectFastAndCorrect(b.Build());
}

TEST(NoCliffs, ConvReluThenResidualAdd) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 16, 14, 14});
  ValueId h = Conv(b, "conv_in", x, 16, 16, 3, 11);
  ValueId y = b.Op("Add", "residual", {b.Op("Relu", "relu", {Conv(b, "conv", h, 16, 16, 3, 13)}), h});
  b.Output(y);
  ExpectFastAndCorrect(b.Build());
}

TEST(NoCliffs, UnaryWithFusedBinaryEpilogue) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 8, 6, 6});
  ValueId y = b.Input("y", DType::kFloat32, {2, 8, 6, 6});
  ValueId s = b.Op("Sigmoid", "gate", {b.Op("Transpose", "t", {x}, Attrs({{"perm", Attr::Ints({0, 1, 3, 2})}}))});
  b.Output(b.Op("Mul", "gated", {s, y}));
  ExpectFastAndCorrect(b.Build());
}

TEST(NoCliffs, ConvsFeedingAConcat) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 16, 14, 14});
  ValueId a = b.Op("Relu", "ra", {Conv(b, "ca", x, 16, 24, 3, 21)});
  ValueId c = b.Op("Relu", "rc", {Conv(b, "cc", x, 16, 8, 3, 23)});
  ValueId cat = b.Op("Concat", "cat", {a, c, x}, Attrs({{"axis", Attr::Int(1)}}));
  b.Output(Conv(b, "after", cat, 48, 8, 1, 25));
  ExpectFastAndCorrect(b.Build());
}

// Split of a conv's (blocked) output along channels and of a plain tensor along its first
// axis into one piece (SSDLite splits its class scores so): reorders, never a reference step.
TEST(NoCliffs, SplitAlongChannelsAndIntoOnePiece) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 16, 10, 10});
  ValueId c = b.Op("Relu", "r", {Conv(b, "c", x, 16, 32, 3, 41)});
  ValueId parts = b.Op("Split", "split", {c, b.Const("sizes", Ints({8, 16, 8}))}, Attrs({{"axis", Attr::Int(1)}}), 3);
  b.Output(b.Op("Add", "sum", {parts, parts + 2}));
  b.Output(Conv(b, "after", parts + 1, 16, 8, 1, 43));
  ValueId s = b.Input("s", DType::kFloat32, {1, 300, 91});
  b.Output(b.Op("Sigmoid", "sig", {b.Op("Split", "one", {s, b.Const("all", Ints({1}))}, Attrs({{"axis", Attr::Int(0)}}))}));
  ExpectFastAndCorrect(b.Build());
}

// Data movement of other element types and patterns oneDNN's reorders do not take: an
// int64 Transpose (NonZero's indices), a Slice with negative steps, an int64 Split, Expand of
// float and int64 tensors: one strided copy each, never a reference step.
TEST(NoCliffs, StridedCopiesOfAnyType) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 12, 10, 8});
  ValueId i = b.Op("Cast", "to_int", {b.Op("Mul", "scale", {x, b.Const("ten", Tensor::Scalar<float>(10.f))})},
                   Attrs({{"to", Attr::Int(7)}}));
  b.Output(b.Op("Transpose", "tr64", {i}, Attrs({{"perm", Attr::Ints({2, 0, 3, 1})}})));
  b.Output(b.Op("Slice", "rev", {x, b.Const("s", Ints({-1, 4})), b.Const("e", Ints({-100, 0})), b.Const("a", Ints({1, 2})),
                                  b.Const("st", Ints({-2, -3}))}));
  ValueId parts = b.Op("Split", "split64", {i, b.Const("sizes", Ints({1, 11}))}, Attrs({{"axis", Attr::Int(1)}}), 2);
  b.Output(parts);
  b.Output(parts + 1);
  b.Output(b.Op("Expand", "bcast", {b.Input("v", DType::kFloat32, {12, 1, 8}), b.Const("shape", Ints({2, 12, 10, 8}))}));
  b.Output(b.Op("Expand", "bcast64", {i, b.Const("shape2", Ints({3, 1, 1, 1, 1}))}));
  const Graph g = b.Build();
  Graph o = g;
  ASSERT_TRUE(OptimizeGraph(o).ok());
  // (The test's own float -> int64 Cast is the one reference step: random inputs are float.)
  const std::vector<std::string> slow = CpuSlowSteps(o);
  ASSERT_EQ(slow.size(), 1u) << slow[0] << "\n" << OpSequence(o);
  EXPECT_EQ(slow[0].rfind("to_int (Cast)", 0), 0u) << slow[0];
  EXPECT_TRUE(CpuMatchesReference(g, o, 1e-5));
}

// Comparisons of floats into bool masks (detection scores > threshold, attention masks):
// every op, broadcasting either operand, a constant on either side — a kiln kernel each.
TEST(NoCliffs, ComparisonsIntoMasks) {
  for (const char* op : {"Greater", "Less", "Equal", "GreaterOrEqual", "LessOrEqual"}) {
    SCOPED_TRACE(op);
    GraphBuilder b;
    ValueId x = b.Input("x", DType::kFloat32, {2, 3, 40, 5});
    ValueId y = b.Input("y", DType::kFloat32, {40, 1});
    b.Output(b.Op(op, "xy", {x, y}));
    b.Output(b.Op(op, "yx", {y, x}));
    b.Output(b.Op(op, "xc", {x, b.Const("c", Tensor::Scalar<float>(0.25f))}));
    b.Output(b.Op(op, "cx", {b.Const("row", RandomTensor({5}, 3)), x}));
    b.Output(b.Op(op, "xx", {x, x}));
    ExpectFastAndCorrect(b.Build(), 0);
  }
}

// Slice assignment as PyTorch exports it (ScatterND: x[:, 2:4] = y, one block per index
// tuple) and ScatterElements along an axis (rows written back into place, negative indices):
// kiln kernels, same results as the reference.
TEST(NoCliffs, ScatterNDAndScatterElements) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {4, 6, 8});
  ValueId y = b.Input("y", DType::kFloat32, {4, 2, 8});
  Tensor idx(DType::kInt64, {4, 2, 2});  // (batch, channel) pairs: channels 2 and 3 of every batch
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t c = 0; c < 2; ++c) {
      idx.data<int64_t>()[(n * 2 + c) * 2] = n;
      idx.data<int64_t>()[(n * 2 + c) * 2 + 1] = c - 4;  // -4, -3: channels 2, 3
    }
  b.Output(b.Op("ScatterND", "assign", {x, b.Const("idx", idx), y}));
  Tensor rows(DType::kInt64, {3, 6, 8});  // rows 3, 0, -4 (= 0, the later one wins) of axis 0
  const int64_t order[3] = {3, 0, -4};
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t i = 0; i < 48; ++i) rows.data<int64_t>()[r * 48 + i] = order[r];
  ValueId u = b.Input("u", DType::kFloat32, {3, 6, 8});
  b.Output(b.Op("ScatterElements", "put", {x, b.Const("rows", rows), u}, Attrs({{"axis", Attr::Int(0)}})));
  ExpectFastAndCorrect(b.Build(), 0);
}

// Every binary op and broadcast pattern, either operand broadcasting (the first one too:
// Sub(bias, x), [N,1] + [1,M]), and a chain after it: a fast kernel (oneDNN's JIT or kiln's
// broadcasting one), never a reference step.
TEST(NoCliffs, BroadcastBinaryMatrix) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{2, 3, 4, 5}, {5}},          {{2, 3, 4, 5}, {4, 1}},       {{2, 3, 4, 5}, {3, 1, 1}},
      {{2, 3, 4, 5}, {1, 3, 1, 5}}, {{2, 3, 4, 5}, {2, 1, 4, 1}}, {{2, 3, 4, 5}, {}},
      {{1, 197, 48}, {48}},         {{6, 1}, {1, 7}},             {{3, 1, 5}, {1, 4, 1}}};
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min"})
    for (const auto& [da, db] : shapes)
      for (int swap = 0; swap < 2; ++swap) {
        SCOPED_TRACE(std::string(op) + (swap ? " swapped " : " ") + std::to_string(da.size()) + "d/" + std::to_string(db.size()) + "d");
        GraphBuilder b;
        ValueId x = b.Input("x", DType::kFloat32, da);
        ValueId y = b.Input("y", DType::kFloat32, db);
        // Keep divisors away from 0.
        if (std::string(op) == "Div") (swap ? x : y) = b.Op("Add", "shift", {b.Op("Abs", "abs", {swap ? x : y}), b.Const("one", Tensor::Scalar<float>(1.f))});
        ValueId r = b.Op(op, "op", swap ? std::vector<ValueId>{y, x} : std::vector<ValueId>{x, y});
        b.Output(b.Op("Add", "then", {b.Op("Relu", "relu", {r}), b.Const("bias", RandomTensor({da.back()}, 31))}));
        ExpectFastAndCorrect(b.Build());
      }
}

}  // namespace
}  // namespace kiln::testing
