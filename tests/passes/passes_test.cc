// Every pass: the expected IR after it (op sequence / golden text) and the same numbers as
// the unoptimized graph on random inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "api/optimize.h"
#include "ir/infer.h"
#include "passes/pass_test_util.h"
#include "passes/passes.h"
#include "ir/op_schema.h"

namespace kiln::testing {
namespace {

TEST(PassFoldConstants, FoldsShapeChainsAndArithmetic) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 3, 4});
  ValueId c1 = b.Const("c1", Tensor::FromVector<float>({1, 2, 3, 4}));
  ValueId c2 = b.Const("c2", Tensor::FromVector<float>({10, 20, 30, 40}));
  ValueId sum = b.Op("Add", "add_consts", {c1, c2});
  ValueId shape = b.Op("Shape", "shape", {x});
  ValueId y = b.Op("Reshape", "reshape", {x, shape});
  ValueId z = b.Op("Mul", "mul", {y, sum});
  b.Output(z);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&FoldConstants, g);
  RunPassToFixedPoint(&EliminateDeadNodes, g);
  EXPECT_EQ(OpSequence(g), "Reshape,Mul");
  EXPECT_TRUE(SameOutputs(before, g));
}

Tensor Positive(std::vector<int64_t> dims, uint32_t seed) {
  Tensor t = RandomTensor(std::move(dims), seed);
  for (float& f : t.span<float>()) f = 0.5f + std::abs(f);
  return t;
}

TEST(PassDecomposeBatchNorm, InferenceBatchNormBecomesPerChannelMulAdd) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 4, 3, 3});
  ValueId bn = b.Op("BatchNormalization", "bn",
                    {x, b.Const("scale", RandomTensor({4}, 5)), b.Const("bias", RandomTensor({4}, 6)),
                     b.Const("mean", RandomTensor({4}, 7)), b.Const("var", Positive({4}, 8))},
                    Attrs({{"epsilon", Attr::Float(1e-3f)}}));
  b.Output(bn);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&DecomposeBatchNorm, g);
  EXPECT_EQ(OpSequence(g), "Mul,Add");
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassFoldScaleBiasIntoConv, BatchNormAndBiasFoldIntoWeights) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 3, 6, 6});
  ValueId conv = b.Op("Conv", "conv", {x, b.Const("w", RandomTensor({4, 3, 3, 3}, 9)), b.Const("b", RandomTensor({4}, 10))});
  ValueId bn = b.Op("BatchNormalization", "bn",
                    {conv, b.Const("scale", RandomTensor({4}, 11)), b.Const("bias", RandomTensor({4}, 12)),
                     b.Const("mean", RandomTensor({4}, 13)), b.Const("var", Positive({4}, 14))});
  ValueId y = b.Op("Mul", "scale2", {bn, b.Const("k", RandomTensor({1, 4, 1, 1}, 15))});
  // A Gemm followed by a per-column Add folds into its bias as well.
  ValueId flat = b.Op("Flatten", "flat", {y});
  ValueId gemm = b.Op("Gemm", "gemm", {flat, b.Const("gw", RandomTensor({64, 5}, 16)), b.Const("gb", RandomTensor({5}, 17))});
  ValueId out = b.Op("Add", "gemm_bias2", {gemm, b.Const("gb2", RandomTensor({5}, 18))});
  b.Output(out);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&DecomposeBatchNorm, g);
  RunPassToFixedPoint(&FoldScaleBiasIntoConv, g);
  RunPassToFixedPoint(&EliminateDeadNodes, g);
  EXPECT_EQ(OpSequence(g), "Conv,Flatten,Gemm");
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassRemoveNoOps, RemovesIdentityDropoutCastAndKeepsOutputNames) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 3});
  ValueId a = b.Op("Identity", "id", {x});
  ValueId r = b.Op("Relu", "relu", {a});
  ValueId c = b.Op("Cast", "cast", {r}, Attrs({{"to", Attr::Int(1)}}));
  ValueId d = b.Op("Dropout", "drop", {c});
  b.Output(d);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&RemoveNoOps, g);
  EXPECT_EQ(OpSequence(g), "Relu");
  EXPECT_EQ(g.value(g.outputs()[0]).name, "drop_out");  // the graph output keeps its name
  EXPECT_TRUE(SameOutputs(before, g));
}

// A one-input Concat/Sum/Max/Min/Mean forwards its input (DenseNet's first layer of each
// block concatenates a list of one tensor); with two inputs it stays.
TEST(PassRemoveNoOps, RemovesOneInputConcatAndVariadicOps) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 4, 3, 3});
  ValueId r = b.Op("Relu", "relu", {x});
  ValueId c1 = b.Op("Concat", "cat1", {r}, Attrs({{"axis", Attr::Int(1)}}));
  ValueId s1 = b.Op("Sum", "sum1", {c1});
  ValueId m1 = b.Op("Max", "max1", {s1});
  ValueId c2 = b.Op("Concat", "cat2", {m1, r}, Attrs({{"axis", Attr::Int(1)}}));
  b.Output(c2);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&RemoveNoOps, g);
  EXPECT_EQ(OpSequence(g), "Relu,Concat");
  EXPECT_TRUE(SameOutputs(before, g));
}

// A fused node is never a no-op by its types: Cast(f32 -> f16) carrying the epilogue
// [Sigmoid, Cast(f16 -> f32)] reads and writes f32 (IS-Net's output lost its Sigmoid so).
TEST(PassRemoveNoOps, KeepsFusedNodeWhoseTypesLookLikeANoOp) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 3});
  ValueId t = b.Op("Transpose", "t", {x}, Attrs({{"perm", Attr::Ints({1, 0})}}));
  ValueId c = b.Op("Cast", "to16", {t}, Attrs({{"to", Attr::Int(static_cast<int64_t>(DType::kFloat16))}}));
  b.Output(b.Op("Transpose", "t2", {c}, Attrs({{"perm", Attr::Ints({1, 0})}})));
  Graph g = b.Build();
  // Fuse [Sigmoid, Cast(f32)] into the Cast by hand (the fusion pass no longer fuses Casts).
  NodeId cast = g.value(c).producer;
  auto epi = std::make_shared<Graph>();
  ValueId in = *epi->AddValue("in", g.value(c).type);
  ValueId s = *epi->AddValue("s", g.value(c).type);
  ValueId o = *epi->AddValue("o", TypeInfo::Tensor(DType::kFloat32, g.value(c).type.shape));
  epi->inputs().push_back(in);
  Node sig;
  sig.op_type = "Sigmoid";
  sig.inputs = {in};
  sig.outputs = {s};
  ASSERT_TRUE(epi->AddNode(std::move(sig)).ok());
  Node back;
  back.op_type = "Cast";
  back.attrs.set("to", Attr::Int(static_cast<int64_t>(DType::kFloat32)));
  back.inputs = {s};
  back.outputs = {o};
  ASSERT_TRUE(epi->AddNode(std::move(back)).ok());
  epi->outputs().push_back(o);
  g.node(cast).attrs.set(kEpilogueAttr, Attr::GraphValue(epi));
  g.node(cast).attrs.set(kEpilogueMainInputs, Attr::Int(1));
  for (ValueId v = 0; v < g.num_values(); ++v)
    if (g.value(v).producer >= 0) g.value(v).type = TypeInfo{};  // re-inferred below
  InferOptions io;
  io.evaluator = &ReferenceEvaluator();
  Status inferred = InferTypes(g, io);
  ASSERT_TRUE(inferred.ok()) << inferred.ToString();
  ASSERT_EQ(g.value(c).type.dtype, DType::kFloat32);
  Graph before = g;
  RunPassToFixedPoint(&RemoveNoOps, g);
  EXPECT_EQ(OpSequence(g), "Transpose,Cast+Sigmoid+Cast,Transpose");
  EXPECT_TRUE(SameOutputs(before, g, 1e-3, 1e-3));
}

TEST(PassFoldTransposePairs, InverseTransposesVanish) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 3, 4});
  ValueId t1 = b.Op("Transpose", "t1", {x}, Attrs({{"perm", Attr::Ints({2, 0, 1})}}));
  ValueId t2 = b.Op("Transpose", "t2", {t1}, Attrs({{"perm", Attr::Ints({1, 2, 0})}}));
  ValueId y = b.Op("Relu", "relu", {t2});
  b.Output(y);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&FoldTransposePairs, g);
  RunPassToFixedPoint(&RemoveNoOps, g);
  RunPassToFixedPoint(&EliminateDeadNodes, g);
  EXPECT_EQ(OpSequence(g), "Relu");
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassCse, MergesIdenticalNodes) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {4});
  ValueId a = b.Op("Exp", "e1", {x});
  ValueId c = b.Op("Exp", "e2", {x});
  ValueId s = b.Op("Add", "add", {a, c});
  b.Output(s);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&EliminateCommonSubexpressions, g);
  EXPECT_EQ(OpSequence(g), "Exp,Add");
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassFuseEpilogue, ConvBiasReluResidual) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 4, 8, 8});
  ValueId w = b.Const("w", RandomTensor({4, 4, 3, 3}, 1));
  ValueId bias = b.Const("bias", RandomTensor({1, 4, 1, 1}, 2));
  ValueId conv = b.Op("Conv", "conv", {x, w}, Attrs({{"pads", Attr::Ints({1, 1, 1, 1})}}));
  ValueId add_b = b.Op("Add", "add_bias", {conv, bias});
  ValueId res = b.Op("Add", "residual", {add_b, x});
  ValueId relu = b.Op("Relu", "relu", {res});
  b.Output(relu);
  Graph g = b.Build();
  Graph before = g;
  PassContext ctx;
  RunPassToFixedPoint(&FuseElementwiseEpilogue, g, &ctx);
  EXPECT_EQ(OpSequence(g), "Conv+Add+Add+Relu");
  EXPECT_EQ(g.num_live_nodes(), 1);
  const Node* fused = nullptr;
  for (int i = 0; i < g.num_nodes(); ++i)
    if (!g.node(i).dead) fused = &g.node(i);
  EXPECT_EQ(fused->fused_from, (std::vector<std::string>{"conv", "add_bias", "residual", "relu"}));
  EXPECT_EQ(g.value(g.outputs()[0]).name, "relu_out");
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassFuseEpilogue, DoesNotFuseIntoSharedOrGrowingOutputs) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 1});
  ValueId y = b.Input("y", DType::kFloat32, {2, 3});
  ValueId e = b.Op("Exp", "exp", {x});
  ValueId grow = b.Op("Add", "grow", {e, y});      // [2,1] + [2,3] grows the iteration space
  ValueId n = b.Op("Neg", "neg", {y});
  ValueId s1 = b.Op("Sigmoid", "s1", {n});         // n is read twice: Neg stays
  ValueId s2 = b.Op("Tanh", "s2", {n});
  b.Output(grow);
  b.Output(s1);
  b.Output(s2);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&FuseElementwiseEpilogue, g);
  EXPECT_EQ(g.num_live_nodes(), 5);
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassFuseSiblingLayers, InceptionStyleConvsBecomeOneWiderConv) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 3, 6, 6});
  std::vector<ValueId> outs;
  // Three 1x1 branches with bias + ReLU (fused first), one 3x3 branch that must stay apart.
  for (int i = 0; i < 3; ++i) {
    ValueId w = b.Const(StrCat("w", i), RandomTensor({2 + i, 3, 1, 1}, 10 + i));
    ValueId bias = b.Const(StrCat("b", i), RandomTensor({2 + i}, 20 + i));
    ValueId c = b.Op("Conv", StrCat("conv", i), {x, w, bias});
    outs.push_back(b.Op("Relu", StrCat("relu", i), {c}));
  }
  ValueId w3 = b.Const("w3", RandomTensor({2, 3, 3, 3}, 30));
  outs.push_back(b.Op("Conv", "conv3x3", {x, w3}, Attrs({{"pads", Attr::Ints({1, 1, 1, 1})}})));
  ValueId cat = b.Op("Concat", "cat", outs, Attrs({{"axis", Attr::Int(1)}}));
  b.Output(cat);
  Graph g = b.Build();
  Graph before = g;
  PassContext ctx;
  RunPassToFixedPoint(&FuseElementwiseEpilogue, g, &ctx);
  RunPassToFixedPoint(&FuseSiblingLayers, g, &ctx);
  EXPECT_EQ(OpSequence(g), "Conv,Conv+Relu,Concat");
  const Node* fused = nullptr;
  for (int i = 0; i < g.num_nodes(); ++i)
    if (!g.node(i).dead && g.node(i).attrs.has(kSplitSizesAttr)) fused = &g.node(i);
  ASSERT_NE(fused, nullptr);
  EXPECT_EQ(fused->attrs.find(kSplitSizesAttr)->ints, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(fused->outputs.size(), 3u);
  EXPECT_EQ(fused->fused_from.size(), 6u);
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassFuseSiblingLayers, MatMulsWithBiasesAndNotResiduals) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 5, 8});
  ValueId r = b.Input("r", DType::kFloat32, {2, 5, 4});
  std::vector<ValueId> outs;
  for (int i = 0; i < 3; ++i) {  // Q/K/V-style projections with per-column biases
    ValueId w = b.Const(StrCat("w", i), RandomTensor({8, 4}, 40 + i));
    ValueId bias = b.Const(StrCat("b", i), RandomTensor({4}, 50 + i));
    outs.push_back(b.Op("Add", StrCat("add", i), {b.Op("MatMul", StrCat("mm", i), {x, w}), bias}));
  }
  // Two more siblings each with a residual input of its own: widening would misapply it.
  for (int i = 3; i < 5; ++i) {
    ValueId w = b.Const(StrCat("w", i), RandomTensor({8, 4}, 40 + i));
    outs.push_back(b.Op("Add", StrCat("res", i), {b.Op("MatMul", StrCat("mm", i), {x, w}), i == 3 ? r : outs[0]}));
  }
  for (ValueId o : outs) b.Output(o);
  Graph g = b.Build();
  Graph before = g;
  PassContext ctx;
  RunPassToFixedPoint(&FuseElementwiseEpilogue, g, &ctx);
  RunPassToFixedPoint(&FuseSiblingLayers, g, &ctx);
  EXPECT_EQ(OpSequence(g), "MatMul+Add,MatMul+Add,MatMul+Add");
  EXPECT_TRUE(SameOutputs(before, g));
}

Tensor Scalar(float v) { return Tensor::Scalar<float>(v); }
Tensor Axes(std::vector<int64_t> a) { return Tensor::FromVector<int64_t>(a); }

TEST(PassRecognizeLayerNorm, PyTorchDecompositionWithScaleAndBias) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 3, 8});
  ValueId axes = b.Const("axes", Axes({-1}));
  ValueId mean = b.Op("ReduceMean", "mean", {x, axes});
  ValueId d = b.Op("Sub", "sub", {x, mean});
  ValueId p = b.Op("Pow", "pow", {d, b.Const("two", Scalar(2))});
  ValueId var = b.Op("ReduceMean", "var", {p, axes});
  ValueId s = b.Op("Sqrt", "sqrt", {b.Op("Add", "add_eps", {var, b.Const("eps", Scalar(1e-5f))})});
  ValueId n = b.Op("Div", "div", {d, s});
  ValueId y = b.Op("Add", "beta", {b.Op("Mul", "gamma", {n, b.Const("g", RandomTensor({8}, 3))}), b.Const("bt", RandomTensor({8}, 4))});
  b.Output(y);
  Graph g = b.Build();
  Graph before = g;
  PassContext ctx;
  RunPassToFixedPoint(&RecognizeLayerNorm, g, &ctx);
  EXPECT_EQ(OpSequence(g), "LayerNormalization");
  ASSERT_EQ(ctx.records.size(), 1u);
  EXPECT_EQ(ctx.records[0].absorbed.size(), 9u);
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassRecognizeLayerNorm, LeavesPatternWhoseMeanIsReadElsewhere) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {4, 6});
  ValueId axes = b.Const("axes", Axes({1}));
  ValueId mean = b.Op("ReduceMean", "mean", {x, axes});
  ValueId d = b.Op("Sub", "sub", {x, mean});
  ValueId var = b.Op("ReduceMean", "var", {b.Op("Mul", "sq", {d, d}), axes});
  ValueId n = b.Op("Div", "div", {d, b.Op("Sqrt", "sqrt", {b.Op("Add", "add_eps", {var, b.Const("eps", Scalar(1e-5f))})})});
  b.Output(n);
  b.Output(mean);  // the mean escapes: the pattern must stay
  Graph g = b.Build();
  RunPassToFixedPoint(&RecognizeLayerNorm, g);
  EXPECT_EQ(g.num_live_nodes(), 7);
}

TEST(PassRecognizeGelu, BothAssociationsAndBothErfForms) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {3, 5});
  // (x * (1 + erf(x / sqrt2))) * 0.5, as torch exports it
  ValueId e1 = b.Op("Erf", "erf1", {b.Op("Div", "div1", {x, b.Const("sqrt2", Scalar(1.4142135f))})});
  ValueId a1 = b.Op("Add", "add1", {e1, b.Const("one", Scalar(1))});
  ValueId y1 = b.Op("Mul", "half1", {b.Op("Mul", "mul1", {x, a1}), b.Const("half", Scalar(0.5f))});
  // (x * 0.5) * (1 + erf(x * 0.7071))
  ValueId e2 = b.Op("Erf", "erf2", {b.Op("Mul", "mul_s", {x, b.Const("rsqrt2", Scalar(0.70710678f))})});
  ValueId a2 = b.Op("Add", "add2", {b.Const("one2", Scalar(1)), e2});
  ValueId y2 = b.Op("Mul", "mul2", {b.Op("Mul", "half2", {x, b.Const("halfb", Scalar(0.5f))}), a2});
  // Not GELU: 0.4 instead of 0.5.
  ValueId e3 = b.Op("Erf", "erf3", {b.Op("Div", "div3", {x, b.Const("sqrt2c", Scalar(1.4142135f))})});
  ValueId y3 = b.Op("Mul", "m3", {b.Op("Mul", "m3a", {x, b.Op("Add", "add3", {e3, b.Const("one3", Scalar(1))})}), b.Const("q", Scalar(0.4f))});
  b.Output(y1);
  b.Output(y2);
  b.Output(y3);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&RecognizeGelu, g);
  EXPECT_EQ(OpSequence(g), "Div,Erf,Add,Mul,Mul,Gelu,Gelu");
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassRecognizeHardSwish, ClipAndHardSigmoidForms) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 4, 3, 3});
  ValueId other = b.Input("other", DType::kFloat32, {2, 4, 3, 3});
  auto relu6_shift = [&](const std::string& n, ValueId v, float shift) {
    ValueId a = b.Op("Add", n + "_add", {v, b.Const(n + "_3", Scalar(shift))});
    return b.Op("Clip", n + "_clip", {a, b.Const(n + "_lo", Scalar(0)), b.Const(n + "_hi", Scalar(6))});
  };
  // (x * clip(x + 3, 0, 6)) / 6, as Paddle2ONNX writes it
  ValueId y1 = b.Op("Div", "div1", {b.Op("Mul", "mul1", {x, relu6_shift("a", x, 3)}), b.Const("six", Scalar(6))});
  // x * (clip(3 + x, 0, 6) * (1/6))
  ValueId c2 = b.Op("Clip", "clip2", {b.Op("Add", "add2", {b.Const("three", Scalar(3)), x}), b.Const("lo2", Scalar(0)),
                                      b.Const("hi2", Scalar(6))});
  ValueId y2 = b.Op("Mul", "mul2", {b.Op("Mul", "sixth2", {c2, b.Const("inv6", Scalar(1.0f / 6.0f))}), x});
  // x * HardSigmoid(x, 1/6, 1/2), as torch < opset 14 writes hardswish
  ValueId hs = b.Op("HardSigmoid", "hsig", {x}, Attrs({{"alpha", Attr::Float(1.0f / 6.0f)}, {"beta", Attr::Float(0.5f)}}));
  ValueId y3 = b.Op("Mul", "mul3", {x, hs});
  // Not HardSwish: a shift of 2; another tensor times the clip; HardSigmoid's default alpha.
  ValueId y4 = b.Op("Div", "div4", {b.Op("Mul", "mul4", {x, relu6_shift("d", x, 2)}), b.Const("six4", Scalar(6))});
  ValueId y5 = b.Op("Div", "div5", {b.Op("Mul", "mul5", {other, relu6_shift("e", x, 3)}), b.Const("six5", Scalar(6))});
  ValueId y6 = b.Op("Mul", "mul6", {x, b.Op("HardSigmoid", "hsig6", {x})});
  for (ValueId y : {y1, y2, y3, y4, y5, y6}) b.Output(y);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&RecognizeHardSwish, g);
  EXPECT_EQ(OpSequence(g), "Add,Clip,Mul,Div,Add,Clip,Mul,Div,HardSigmoid,Mul,HardSwish,HardSwish,HardSwish");
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassRecognizeSoftmax, MaxSubtractedForm) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 7, 3});
  ValueId axes = b.Const("axes", Axes({1}));
  ValueId e = b.Op("Exp", "exp", {b.Op("Sub", "sub", {x, b.Op("ReduceMax", "max", {x, axes})})});
  ValueId y = b.Op("Div", "div", {e, b.Op("ReduceSum", "sum", {e, axes})});
  b.Output(y);
  Graph g = b.Build();
  Graph before = g;
  RunPassToFixedPoint(&RecognizeSoftmax, g);
  EXPECT_EQ(OpSequence(g), "Softmax");
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassRecognizeAttention, ScaledMaskedWithTransposedK) {
  GraphBuilder b;
  ValueId q = b.Input("q", DType::kFloat32, {2, 4, 5, 8});
  ValueId k = b.Input("k", DType::kFloat32, {2, 4, 6, 8});
  ValueId v = b.Input("v", DType::kFloat32, {2, 4, 6, 3});
  ValueId mask = b.Input("mask", DType::kFloat32, {1, 1, 5, 6});
  ValueId kt = b.Op("Transpose", "kt", {k}, Attrs({{"perm", Attr::Ints({0, 1, 3, 2})}}));
  ValueId qs = b.Op("Div", "qs", {q, b.Const("c", Scalar(2.828427f))});
  ValueId s = b.Op("Mul", "ss", {b.Op("MatMul", "qk", {qs, kt}), b.Const("c2", Scalar(0.5f))});
  ValueId p = b.Op("Softmax", "sm", {b.Op("Add", "mask_add", {s, mask})}, Attrs({{"axis", Attr::Int(-1)}}));
  ValueId y = b.Op("MatMul", "pv", {p, v});
  b.Output(y);
  Graph g = b.Build();
  Graph before = g;
  PassContext ctx;
  RunPassToFixedPoint(&RecognizeAttention, g, &ctx);
  EXPECT_EQ(OpSequence(g), "Attention");
  const Node* att = nullptr;
  for (int i = 0; i < g.num_nodes(); ++i)
    if (!g.node(i).dead) att = &g.node(i);
  EXPECT_EQ(att->domain, "kiln");
  EXPECT_EQ(att->inputs.size(), 4u);
  EXPECT_NEAR(att->attrs.find("scale")->f, 0.5 / 2.828427, 1e-6);
  EXPECT_EQ(att->attrs.find("transpose_k")->i, 1);
  EXPECT_TRUE(SameOutputs(before, g));
}

TEST(PassEliminateDeadNodes, RemovesUnusedBranches) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {4});
  ValueId used = b.Op("Relu", "used", {x});
  b.Op("Exp", "unused", {x});
  b.Output(used);
  Graph g = b.Build();
  RunPassToFixedPoint(&EliminateDeadNodes, g);
  EXPECT_EQ(OpSequence(g), "Relu");
}

}  // namespace
}  // namespace kiln::testing
