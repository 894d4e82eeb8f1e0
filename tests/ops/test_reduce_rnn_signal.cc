// Reductions and NonMaxSuppression: hand-computed values, edge cases (empty reductions,
// exact integer sums, overflow-safe LogSumExp) and inputs that must be errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops/op_test_util.h"

namespace kiln::testing {
namespace {

std::string InferredType(const OpRun& r, int i = 0) {
  return r.graph.value(r.graph.outputs()[static_cast<size_t>(i)]).type.ToString();
}

const Tensor kX23 = F32({1, 2, 3, 4, 5, 6}, {2, 3});

TEST(ReduceRnnSignalReduce, EachKindOverOneAxis) {
  struct Case {
    const char* op;
    std::vector<float> want;  // reducing [[1,2,3],[4,5,6]] over axis 1
  };
  const Case cases[] = {
      {"ReduceSum", {6, 15}},
      {"ReduceMean", {2, 5}},
      {"ReduceMax", {3, 6}},
      {"ReduceMin", {1, 4}},
      {"ReduceProd", {6, 120}},
      {"ReduceL1", {6, 15}},
      {"ReduceL2", {std::sqrt(14.f), std::sqrt(77.f)}},
      {"ReduceLogSum", {std::log(6.f), std::log(15.f)}},
      {"ReduceLogSumExp", {static_cast<float>(std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0))),
                           static_cast<float>(std::log(std::exp(4.0) + std::exp(5.0) + std::exp(6.0)))}},
      {"ReduceSumSquare", {14, 77}},
  };
  for (const Case& c : cases) {
    OpRun r = RunOp(c.op, {kX23, I64({-1}, {1})}, A({{"keepdims", Attr::Int(0)}}), 1, {1});
    ASSERT_TRUE(r.status.ok()) << c.op << ": " << r.status.ToString();
    EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32(c.want, {2}))) << c.op;
    EXPECT_EQ(InferredType(r), "float32[2]") << c.op;
  }
}

TEST(ReduceRnnSignalReduce, DefaultAxesReduceAllAndKeepDims) {
  OpRun r = RunOp("ReduceMean", {kX23});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({3.5f}, {1, 1})));
  EXPECT_EQ(InferredType(r), "float32[1,1]");
}

TEST(ReduceRnnSignalReduce, NoopWithEmptyAxesIsIdentity) {
  OpRun r = RunOp("ReduceSum", {kX23, I64({}, {0})}, A({{"noop_with_empty_axes", Attr::Int(1)}}), 1, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, kX23));
  // Without the flag, empty axes reduce everything.
  OpRun all = RunOp("ReduceSum", {kX23, I64({}, {0})}, A({{"keepdims", Attr::Int(0)}}), 1, {1});
  ASSERT_TRUE(all.status.ok()) << all.status.ToString();
  EXPECT_TRUE(TensorsClose(all.outputs[0].tensor, F32({21}, {})));
}

TEST(ReduceRnnSignalReduce, AxesKnownOnlyAtRunTime) {
  // axes as a graph input (not a constant): inference keeps the rank, the kernel computes.
  OpRun r = RunOp("ReduceMax", {kX23, I64({0}, {1})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({4, 5, 6}, {1, 3})));
}

TEST(ReduceRnnSignalReduce, EmptyReductionsGiveIdentities) {
  const Tensor empty = F32({}, {2, 0});
  const float inf = std::numeric_limits<float>::infinity();
  const std::pair<const char*, float> cases[] = {
      {"ReduceSum", 0.f}, {"ReduceProd", 1.f}, {"ReduceMax", -inf}, {"ReduceMin", inf},
      {"ReduceL2", 0.f},  {"ReduceLogSum", -inf}, {"ReduceLogSumExp", -inf}};
  for (const auto& [op, want] : cases) {
    OpRun r = RunOp(op, {empty, I64({1}, {1})}, {}, 1, {1});
    ASSERT_TRUE(r.status.ok()) << op << ": " << r.status.ToString();
    EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({want, want}, {2, 1}))) << op;
  }
  OpRun mean = RunOp("ReduceMean", {empty, I64({1}, {1})}, {}, 1, {1});
  ASSERT_TRUE(mean.status.ok());
  EXPECT_TRUE(std::isnan(mean.outputs[0].tensor.data<float>()[0]));
  OpRun imax = RunOp("ReduceMax", {Tensor(DType::kInt8, {0, 2}), I64({0}, {1})}, {}, 1, {1});
  ASSERT_TRUE(imax.status.ok()) << imax.status.ToString();
  EXPECT_EQ(imax.outputs[0].tensor.data<int8_t>()[0], -128);
}

TEST(ReduceRnnSignalReduce, IntegersReduceExactly) {
  // 2^53 + 1 is not representable in double: a double accumulator would return 2^53.
  const int64_t big = (int64_t{1} << 53) + 1;
  OpRun r = RunOp("ReduceSum", {Tensor::FromVector<int64_t>({big, 0, 0})}, A({{"keepdims", Attr::Int(0)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.outputs[0].tensor.data<int64_t>()[0], big);
  OpRun mean = RunOp("ReduceMean", {Tensor::FromVector<int32_t>({1, 2, -7})}, A({{"keepdims", Attr::Int(0)}}));
  ASSERT_TRUE(mean.status.ok());
  EXPECT_EQ(mean.outputs[0].tensor.data<int32_t>()[0], -1);  // -4 / 3 truncates toward zero
  OpRun prod = RunOp("ReduceProd", {Tensor::FromVector<uint8_t>({3, 5})}, A({{"keepdims", Attr::Int(0)}}));
  ASSERT_TRUE(prod.status.ok());
  EXPECT_EQ(prod.outputs[0].tensor.data<uint8_t>()[0], 15);
}

TEST(ReduceRnnSignalReduce, LogSumExpDoesNotOverflowAndMaxPropagatesNaN) {
  OpRun r = RunOp("ReduceLogSumExp", {F32({1000, 1000}, {2})}, A({{"keepdims", Attr::Int(0)}}));
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1000.f + std::log(2.f)}, {})));
  OpRun nan = RunOp("ReduceMax", {F32({1, NAN, 3}, {3})});
  ASSERT_TRUE(nan.status.ok());
  EXPECT_TRUE(std::isnan(nan.outputs[0].tensor.data<float>()[0]));
}

TEST(ReduceRnnSignalReduce, Float16ComputesInFloat) {
  Tensor h(DType::kFloat16, {3});
  for (int i = 0; i < 3; ++i) h.data<Float16>()[i] = Float16(float(i + 1) * 0.5f);
  OpRun r = RunOp("ReduceSumSquare", {h});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_FLOAT_EQ(static_cast<float>(r.outputs[0].tensor.data<Float16>()[0]), 3.5f);
}

TEST(ReduceRnnSignalReduce, BadAxesAndAttributesAreErrors) {
  OpRun axis = RunOp("ReduceSum", {kX23, I64({2}, {1})}, {}, 1, {1});
  EXPECT_TRUE(Has(axis.status, "axes")) << axis.status.ToString();
  OpRun runtime_axis = RunOp("ReduceSum", {kX23, I64({-3}, {1})});
  EXPECT_TRUE(Has(runtime_axis.status, "axes")) << runtime_axis.status.ToString();
  OpRun keep = RunOp("ReduceMin", {kX23}, A({{"keepdims", Attr::String("yes")}}));
  EXPECT_TRUE(Has(keep.status, "keepdims")) << keep.status.ToString();
  OpRun axes_type = RunOp("ReduceL1", {kX23, F32({1}, {1})}, {}, 1, {1});
  EXPECT_FALSE(axes_type.status.ok());
  OpRun strings = RunOp("ReduceMax", {Tensor::FromVector<std::string>({"a"})});
  EXPECT_FALSE(strings.status.ok());
}

// The ONNX example: three clusters of overlapping boxes; the best box of each survives.
Tensor NmsBoxes() {
  return F32({0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 0, -0.1f, 1, 0.9f, 0, 10, 1, 11, 0, 10.1f, 1, 11.1f, 0, 100, 1, 101}, {1, 6, 4});
}
Tensor NmsScores() { return F32({0.9f, 0.75f, 0.6f, 0.95f, 0.5f, 0.3f}, {1, 1, 6}); }

TEST(ReduceRnnSignalNms, SuppressesByIouAndLimitsOutput) {
  OpRun r = RunOp("NonMaxSuppression", {NmsBoxes(), NmsScores(), I64({3}, {1}), F32({0.5f}, {1}), F32({0.f}, {1})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, I64({0, 0, 3, 0, 0, 0, 0, 0, 5}, {3, 3})));
  EXPECT_EQ(InferredType(r), "int64[?,3]");
  OpRun two = RunOp("NonMaxSuppression", {NmsBoxes(), NmsScores(), I64({2}, {1}), F32({0.5f}, {1})});
  ASSERT_TRUE(two.status.ok());
  EXPECT_TRUE(TensorsClose(two.outputs[0].tensor, I64({0, 0, 3, 0, 0, 0}, {2, 3})));
  // Score threshold 0.4 drops box 5 (0.3).
  OpRun scored = RunOp("NonMaxSuppression", {NmsBoxes(), NmsScores(), I64({3}, {1}), F32({0.5f}, {1}), F32({0.4f}, {1})});
  ASSERT_TRUE(scored.status.ok());
  EXPECT_TRUE(TensorsClose(scored.outputs[0].tensor, I64({0, 0, 3, 0, 0, 0}, {2, 3})));
  // No max_output_boxes_per_class: the default 0 selects nothing.
  OpRun none = RunOp("NonMaxSuppression", {NmsBoxes(), NmsScores()});
  ASSERT_TRUE(none.status.ok());
  EXPECT_EQ(none.outputs[0].tensor.dims(), (std::vector<int64_t>{0, 3}));
}

TEST(ReduceRnnSignalNms, CenterPointFormat) {
  // Boxes as (x_center, y_center, width, height): the same clusters as above.
  Tensor centers = F32({0.5f, 0.5f, 1, 1, 0.5f, 0.6f, 1, 1, 0.5f, 0.4f, 1, 1, 0.5f, 10.5f, 1, 1, 0.5f, 10.6f, 1, 1,
                        0.5f, 100.5f, 1, 1},
                       {1, 6, 4});
  OpRun r = RunOp("NonMaxSuppression", {centers, NmsScores(), I64({3}, {1}), F32({0.5f}, {1})},
                  A({{"center_point_box", Attr::Int(1)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, I64({0, 0, 3, 0, 0, 0, 0, 0, 5}, {3, 3})));
}

TEST(ReduceRnnSignalNms, BadInputsAreErrors) {
  OpRun shape = RunOp("NonMaxSuppression", {F32({0, 0, 1}, {1, 1, 3}), F32({1}, {1, 1, 1}), I64({1}, {1})});
  EXPECT_TRUE(Has(shape.status, "boxes")) << shape.status.ToString();
  OpRun mismatch = RunOp("NonMaxSuppression", {NmsBoxes(), F32({1, 2}, {1, 1, 2}), I64({1}, {1})});
  EXPECT_TRUE(Has(mismatch.status, "scores")) << mismatch.status.ToString();
  OpRun iou = RunOp("NonMaxSuppression", {NmsBoxes(), NmsScores(), I64({3}, {1}), F32({1.5f}, {1})});
  EXPECT_TRUE(Has(iou.status, "iou_threshold")) << iou.status.ToString();
  OpRun center = RunOp("NonMaxSuppression", {NmsBoxes(), NmsScores()}, A({{"center_point_box", Attr::Int(2)}}));
  EXPECT_TRUE(Has(center.status, "center_point_box")) << center.status.ToString();
}

}  // namespace
}  // namespace kiln::testing
