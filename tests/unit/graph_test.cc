#include <gtest/gtest.h>

#include "ir/graph.h"
#include "ir/infer.h"
#include "ir/op_schema.h"

namespace kiln {
namespace {

TEST(Graph, AddNodeLinksEdgesAndOrders) {
  Graph g;
  g.name = "g";
  ValueId x = *g.AddValue("x", TypeInfo::Tensor(DType::kFloat32, Shape::FromDims({2})));
  g.inputs().push_back(x);
  ValueId a = *g.AddValue("a");
  ValueId b = *g.AddValue("b");
  // Added out of order: b = Neg(a) before a = Abs(x).
  Node n1;
  n1.name = "neg";
  n1.op_type = "Neg";
  n1.inputs = {a};
  n1.outputs = {b};
  NodeId neg = *g.AddNode(n1);
  Node n0;
  n0.name = "abs";
  n0.op_type = "Abs";
  n0.inputs = {x};
  n0.outputs = {a};
  NodeId abs = *g.AddNode(n0);
  g.outputs().push_back(b);
  EXPECT_EQ(g.value(a).producer, abs);
  ASSERT_EQ(g.value(a).consumers.size(), 1u);
  EXPECT_EQ(g.value(a).consumers[0], neg);
  auto order = g.TopologicalOrder();
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(*order, (std::vector<NodeId>{abs, neg}));
}

TEST(Graph, DuplicateValueAndDoubleProducerAreErrors) {
  Graph g;
  ASSERT_TRUE(g.AddValue("x").ok());
  auto dup = g.AddValue("x");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("'x' is defined twice"), std::string::npos);
  ValueId y = *g.AddValue("y");
  Node n;
  n.op_type = "Relu";
  n.name = "r1";
  n.inputs = {0};
  n.outputs = {y};
  ASSERT_TRUE(g.AddNode(n).ok());
  n.name = "r2";
  auto second = g.AddNode(n);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("'r2'"), std::string::npos);
}

TEST(Graph, CycleIsReportedWithANodeName) {
  Graph g;
  g.name = "cyc";
  ValueId a = *g.AddValue("a");
  ValueId b = *g.AddValue("b");
  Node n0;
  n0.name = "first";
  n0.op_type = "Relu";
  n0.inputs = {b};
  n0.outputs = {a};
  Node n1 = n0;
  n1.name = "second";
  n1.inputs = {a};
  n1.outputs = {b};
  ASSERT_TRUE(g.AddNode(n0).ok());
  ASSERT_TRUE(g.AddNode(n1).ok());
  auto order = g.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  EXPECT_NE(order.status().message().find("cycle"), std::string::npos);
}

TEST(Graph, RemoveNodeAndReplaceUses) {
  Graph g;
  ValueId x = *g.AddValue("x", TypeInfo::Tensor(DType::kFloat32, Shape::FromDims({2})));
  g.inputs().push_back(x);
  ValueId y = *g.AddValue("y");
  Node n;
  n.op_type = "Identity";
  n.inputs = {x};
  n.outputs = {y};
  NodeId id = *g.AddNode(n);
  g.outputs().push_back(y);
  g.RemoveNode(id);
  g.ReplaceAllUses(y, x);
  EXPECT_EQ(g.num_live_nodes(), 0);
  EXPECT_EQ(g.outputs()[0], x);
  EXPECT_TRUE(g.value(x).consumers.empty());
}

TEST(Shape, BroadcastSymbolic) {
  Shape a({Dim::Symbol("batch"), Dim(3), Dim(1)});
  Shape b({Dim(4)});
  auto s = BroadcastShapes({a, b});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ToString(), "[batch,3,4]");
  auto bad = BroadcastShapes({Shape::FromDims({2, 3}), Shape::FromDims({4})});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("3 vs 4"), std::string::npos);
  EXPECT_FALSE(BroadcastShapes({Shape::UnknownRank(), b})->has_rank());
}

TEST(Infer, UnknownOpNamesTheNode) {
  Graph g;
  ValueId x = *g.AddValue("x", TypeInfo::Tensor(DType::kFloat32, Shape::FromDims({2})));
  g.inputs().push_back(x);
  ValueId y = *g.AddValue("y");
  Node n;
  n.name = "mystery";
  n.op_type = "NoSuchOp";
  n.inputs = {x};
  n.outputs = {y};
  ASSERT_TRUE(g.AddNode(n).ok());
  g.outputs().push_back(y);
  Status s = InferTypes(g);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("'mystery' (NoSuchOp)"), std::string::npos);
}

TEST(Attr, TypedGettersRejectWrongTypes) {
  AttrMap m;
  m.set("alpha", Attr::String("oops"));
  m.set("axes", Attr::Ints({0, 2}));
  auto f = m.GetFloat("alpha", 1.0f);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("attribute 'alpha' must be FLOAT, got STRING"), std::string::npos);
  EXPECT_EQ(*m.GetInts("axes"), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(*m.GetInt("missing", 7), 7);
  EXPECT_FALSE(m.RequireInt("missing").ok());
}

TEST(Tensor, CastRoundTripsAndSaturates) {
  Tensor f = Tensor::FromVector<float>({1.5f, -2.5f, 1e10f, NAN});
  Tensor i = *f.CastTo(DType::kInt32);
  EXPECT_EQ(i.data<int32_t>()[0], 1);
  EXPECT_EQ(i.data<int32_t>()[1], -2);
  EXPECT_EQ(i.data<int32_t>()[2], std::numeric_limits<int32_t>::max());
  Tensor h = *f.CastTo(DType::kFloat16);
  Tensor back = *h.CastTo(DType::kFloat32);
  EXPECT_EQ(back.data<float>()[0], 1.5f);
  EXPECT_TRUE(std::isinf(back.data<float>()[2]));
  EXPECT_TRUE(std::isnan(back.data<float>()[3]));
  Tensor bf = *Tensor::FromVector<float>({3.140625f}).CastTo(DType::kBFloat16);
  EXPECT_EQ(static_cast<float>(bf.data<BFloat16>()[0]), 3.140625f);
}

TEST(Half, SubnormalsAndRounding) {
  EXPECT_EQ(Float16::FromFloat(1.0f), 0x3c00);
  EXPECT_EQ(Float16::FromFloat(65504.0f), 0x7bff);
  EXPECT_EQ(Float16::FromFloat(65520.0f), 0x7c00);                 // rounds to inf
  EXPECT_EQ(Float16::ToFloat(0x0001), std::ldexp(1.0f, -24));      // smallest subnormal
  EXPECT_EQ(Float16::FromFloat(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(Float16::FromFloat(std::ldexp(1.5f, -15)), 0x0300);    // subnormal 0.75 * 2^-14
  for (uint32_t h = 0; h < 0x7c00; ++h) EXPECT_EQ(Float16::FromFloat(Float16::ToFloat(uint16_t(h))), h);
}

}  // namespace
}  // namespace kiln
