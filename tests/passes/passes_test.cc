// Every pass: the expected IR after it (op sequence / golden text) and the same numbers as
// the unoptimized graph on random inputs.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"
#include "passes/passes.h"
#include "ir/op_schema.h"

namespace kiln::testing {
namespace {

Tensor RandomTensor(std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  Tensor t(DType::kFloat32, std::move(dims));
  for (float& f : t.span<float>()) f = d(rng);
  return t;
}

AttrMap Attrs(std::initializer_list<std::pair<const char*, Attr>> kv) {
  AttrMap m;
  for (const auto& [k, v] : kv) m.set(k, v);
  return m;
}

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
