// Memory planner: lifetimes, views, in-place reuse and concat elimination, with the plan
// verifier as the oracle (and a check that the verifier itself catches overlaps).
#include <gtest/gtest.h>

#include "api/model.h"
#include "api/optimize.h"
#include "builder/memory_planner.h"
#include "passes/pass_test_util.h"

namespace kiln::testing {
namespace {

Tensor Ones(std::vector<int64_t> dims) {
  Tensor t(DType::kFloat32, std::move(dims));
  for (float& f : t.span<float>()) f = 0.5f;
  return t;
}

AttrMap Axis(int64_t a) {
  AttrMap m;
  m.set("axis", Attr::Int(a));
  return m;
}

// x -> {conv a, conv b, relu(conv c)} -> concat(axis 1) -> relu -> y
Graph Inception(bool extra_reader) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 3, 4, 4});
  ValueId a = b.Op("Conv", "a", {x, b.Const("wa", Ones({2, 3, 1, 1}))});
  ValueId c1 = b.Op("Conv", "b", {x, b.Const("wb", Ones({5, 3, 1, 1}))});
  ValueId c = b.Op("Relu", "c", {b.Op("Conv", "c0", {x, b.Const("wc", Ones({1, 3, 1, 1}))})});
  ValueId cat = b.Op("Concat", "cat", {a, c1, c}, Axis(1));
  ValueId y = b.Op("Relu", "relu", {cat});
  b.Output(y);
  if (extra_reader) b.Output(b.Op("Neg", "neg", {c1}));  // c1 is read twice: it cannot live in the concat
  return b.Build();
}

TEST(MemoryPlanner, ConcatInputsBecomeStridedSlices) {
  Graph g = Inception(false);
  auto plan = PlanMemory(g);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_TRUE(VerifyMemoryPlan(g, *plan).ok()) << VerifyMemoryPlan(g, *plan).ToString();
  EXPECT_EQ(plan->eliminated_concats.size(), 1u);
  EXPECT_EQ(plan->concat_slices, 3);
  const ValueId cat = *g.FindValue("cat_out"), b = *g.FindValue("b_out");
  const TensorPlacement& pb = plan->placements[static_cast<size_t>(b)];
  EXPECT_TRUE(pb.concat_slice);
  EXPECT_EQ(pb.alias_of, cat);
  EXPECT_EQ(pb.slice_offset, 2 * 16 * 4);  // after a's 2 channels of 4x4 floats
  EXPECT_EQ(pb.rows, 2);                   // batch 2: two strided runs
  EXPECT_EQ(pb.row_bytes, 5 * 16 * 4);
  EXPECT_EQ(pb.row_pitch, 8 * 16 * 4);
  EXPECT_EQ(pb.offset, plan->placements[static_cast<size_t>(cat)].offset + pb.slice_offset);
  // Without elimination the arena must hold the inputs and the concat at once: bigger.
  MemoryPlanOptions off;
  off.eliminate_concats = false;
  auto plain = PlanMemory(g, off);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(VerifyMemoryPlan(g, *plain).ok());
  EXPECT_TRUE(plain->eliminated_concats.empty());
  EXPECT_GT(plain->arena_bytes, plan->arena_bytes);
}

TEST(MemoryPlanner, InputReadElsewhereIsCopiedNotSliced) {
  Graph g = Inception(true);
  auto plan = PlanMemory(g);
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(VerifyMemoryPlan(g, *plan).ok()) << VerifyMemoryPlan(g, *plan).ToString();
  EXPECT_TRUE(plan->eliminated_concats.empty());  // one input still needs the copy kernel
  EXPECT_EQ(plan->concat_slices, 2);
  EXPECT_FALSE(plan->placements[static_cast<size_t>(*g.FindValue("b_out"))].concat_slice);
}

TEST(MemoryPlanner, OuterAxisSplitAndSliceAreViews) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 6, 4});
  ValueId r = b.Op("Relu", "relu", {x});  // an arena tensor to slice
  AttrMap split_attrs = Axis(1);
  ValueId s0 = b.Op("Split", "split", {r, b.Const("sizes", Tensor::FromVector<int64_t>({2, 4}))}, split_attrs, 2);
  ValueId sl = b.Op("Slice", "slice", {r, b.Const("st", Tensor::FromVector<int64_t>({-3})), b.Const("en", Tensor::FromVector<int64_t>({6})),
                                       b.Const("ax", Tensor::FromVector<int64_t>({1}))});
  ValueId inner = b.Op("Slice", "inner", {r, b.Const("st2", Tensor::FromVector<int64_t>({1})), b.Const("en2", Tensor::FromVector<int64_t>({3})),
                                          b.Const("ax2", Tensor::FromVector<int64_t>({2}))});  // strided: a copy
  b.Output(b.Op("Neg", "n0", {s0}));
  b.Output(b.Op("Neg", "n1", {sl}));
  b.Output(b.Op("Neg", "n2", {inner}));
  Graph g = b.Build();
  auto plan = PlanMemory(g);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_TRUE(VerifyMemoryPlan(g, *plan).ok()) << VerifyMemoryPlan(g, *plan).ToString();
  EXPECT_EQ(plan->view_nodes.size(), 2u);  // split and slice, not inner
  const ValueId rv = *g.FindValue("relu_out");
  const auto& p1 = plan->placements[static_cast<size_t>(*g.FindValue("split_out1"))];
  EXPECT_EQ(p1.alias_of, rv);
  EXPECT_EQ(p1.offset, plan->placements[static_cast<size_t>(rv)].offset + 2 * 4 * 4);
  const auto& ps = plan->placements[static_cast<size_t>(sl)];
  EXPECT_EQ(ps.offset, plan->placements[static_cast<size_t>(rv)].offset + 3 * 4 * 4);
  EXPECT_EQ(plan->placements[static_cast<size_t>(inner)].alias_of, kNoValue);
}

TEST(MemoryPlanner, VerifierCatchesOverlappingLiveTensors) {
  Graph g = Inception(false);
  auto plan = PlanMemory(g);
  ASSERT_TRUE(plan.ok());
  // Move the concat output onto the input x's... x is external; use conv c0's output, which is
  // alive while the concat's slices are written.
  MemoryPlan bad = *plan;
  const ValueId c0 = *g.FindValue("c0_out"), cat = *g.FindValue("cat_out");
  bad.placements[static_cast<size_t>(c0)].offset = bad.placements[static_cast<size_t>(cat)].offset;
  EXPECT_FALSE(VerifyMemoryPlan(g, bad).ok());
}

TEST(MemoryPlanner, TinyCnnOptimizedPlanHolds) {
  auto model = LoadOnnxModel(std::string(KILN_SOURCE_DIR) + "/models/tiny_cnn.onnx");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_TRUE(SetInputShapes(*model->graph, {}).ok());  // dynamic batch -> 1
  ASSERT_TRUE(OptimizeGraph(*model->graph).ok());
  auto plan = PlanMemory(*model->graph);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(VerifyMemoryPlan(*model->graph, *plan).ok());
  EXPECT_LT(plan->arena_bytes, plan->naive_bytes);
}

}  // namespace
}  // namespace kiln::testing
