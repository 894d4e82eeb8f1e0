// Op unit tests: numbers worked out by hand, and bad inputs that must be errors (never
// crashes). ONNX's conformance data (tests/conformance) covers the full semantics.
#include <gtest/gtest.h>

#include <limits>

#include "ops/op_test_util.h"

namespace kiln::testing {
namespace {

TEST(ElementwiseOps, AddBroadcastsAndInfersShape) {
  OpRun r = RunOp("Add", {F32({1, 2, 3, 4, 5, 6}, {2, 3}), F32({10, 20, 30}, {3})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({11, 22, 33, 14, 25, 36}, {2, 3})));
  EXPECT_EQ(r.graph.value(r.graph.outputs()[0]).type.ToString(), "float32[2,3]");
}

TEST(ElementwiseOps, IncompatibleShapesAreAnError) {
  OpRun r = RunOp("Mul", {F32({1, 2, 3}, {3}), F32({1, 2}, {2})});
  EXPECT_FALSE(r.status.ok());
  EXPECT_TRUE(Has(r.status, "cannot be broadcast"));
}

TEST(ElementwiseOps, ActivationsWithAttributes) {
  OpRun r = RunOp("LeakyRelu", {F32({-2, 0, 3}, {3})}, A({{"alpha", Attr::Float(0.5f)}}));
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({-1, 0, 3}, {3})));
  OpRun bad = RunOp("LeakyRelu", {F32({1}, {1})}, A({{"alpha", Attr::String("x")}}));
  EXPECT_TRUE(Has(bad.status, "attribute 'alpha' must be FLOAT"));
}

TEST(ElementwiseOps, IntegerDivisionByZeroIsDefined) {
  OpRun r = RunOp("Div", {Tensor::FromVector<int32_t>({7, -7, 5}), Tensor::FromVector<int32_t>({2, 2, 0})});
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, Tensor::FromVector<int32_t>({3, -3, 0})));
}

TEST(ElementwiseOps, CastRejectsUnknownType) {
  OpRun r = RunOp("Cast", {F32({1}, {1})}, A({{"to", Attr::Int(99)}}));
  EXPECT_TRUE(Has(r.status, "'to'"));
}

TEST(TensorOps, ReshapeInfersMinusOneFromConstantShape) {
  OpRun r = RunOp("Reshape", {F32({1, 2, 3, 4, 5, 6}, {2, 3}), I64({3, -1}, {2})}, {}, 1, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.outputs[0].tensor.dims(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(r.graph.value(r.graph.outputs()[0]).type.ToString(), "float32[3,2]");
  OpRun bad = RunOp("Reshape", {F32({1, 2, 3, 4, 5, 6}, {2, 3}), I64({4, -1}, {2})}, {}, 1, {1});
  EXPECT_TRUE(Has(bad.status, "cannot reshape"));
}

TEST(TensorOps, SliceWithNegativeStep) {
  OpRun r = RunOp("Slice", {F32({0, 1, 2, 3, 4}, {5}), I64({-1}, {1}), I64({-6}, {1}), I64({0}, {1}), I64({-2}, {1})},
                  {}, 1, {1, 2, 3, 4});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({4, 2, 0}, {3})));
}

TEST(TensorOps, GatherIndexOutOfRangeIsAnError) {
  OpRun r = RunOp("Gather", {F32({1, 2, 3}, {3}), I64({5}, {1})});
  EXPECT_FALSE(r.status.ok());
  EXPECT_TRUE(Has(r.status, "out of range"));
}

TEST(TensorOps, TransposeKeepsSymbolicDims) {
  OpRun r = RunOp("Transpose", {F32({1, 2, 3, 4, 5, 6}, {1, 2, 3})}, A({{"perm", Attr::Ints({2, 0, 1})}}));
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.outputs[0].tensor.dims(), (std::vector<int64_t>{3, 1, 2}));
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 4, 2, 5, 3, 6}, {3, 1, 2})));
  OpRun bad = RunOp("Transpose", {F32({1, 2}, {1, 2})}, A({{"perm", Attr::Ints({0, 0})}}));
  EXPECT_TRUE(Has(bad.status, "not a permutation"));
}

TEST(ConvPoolOps, ConvWithPaddingAndBias) {
  // 1x1x3x3 input, 1x1x2x2 kernel of ones, pad 1 on top/left only via pads [1,1,0,0].
  Tensor x = F32({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  Tensor w = F32({1, 1, 1, 1}, {1, 1, 2, 2});
  Tensor b = F32({10}, {1});
  OpRun r = RunOp("Conv", {x, w, b}, A({{"pads", Attr::Ints({1, 1, 0, 0})}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({11, 13, 15, 15, 22, 26, 21, 34, 38}, {1, 1, 3, 3})));
}

TEST(ConvPoolOps, ConvChannelMismatchNamesTheShapes) {
  OpRun r = RunOp("Conv", {F32(std::vector<float>(8, 1), {1, 2, 2, 2}), F32(std::vector<float>(3, 1), {1, 3, 1, 1})});
  EXPECT_FALSE(r.status.ok());
  EXPECT_TRUE(Has(r.status, "channels")) << r.status.message();
}

TEST(ConvPoolOps, MaxPoolCeilModeAndIndices) {
  Tensor x = F32({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  OpRun r = RunOp("MaxPool", {x}, A({{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})},
                                     {"ceil_mode", Attr::Int(1)}}), 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({5, 6, 8, 9}, {1, 1, 2, 2})));
  EXPECT_TRUE(TensorsClose(r.outputs[1].tensor, I64({4, 5, 7, 8}, {1, 1, 2, 2})));
}

TEST(LinalgNormOps, GemmTransposedWithBias) {
  OpRun r = RunOp("Gemm", {F32({1, 2, 3, 4}, {2, 2}), F32({1, 0, 0, 1}, {2, 2}), F32({1, 2}, {2})},
                  A({{"transA", Attr::Int(1)}, {"alpha", Attr::Float(2.f)}}));
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({3, 8, 5, 10}, {2, 2})));
  OpRun bad = RunOp("Gemm", {F32({1, 2, 3}, {1, 3}), F32({1, 2}, {2, 1})});
  EXPECT_TRUE(Has(bad.status, "inner dimensions"));
}

TEST(LinalgNormOps, SoftmaxRowsSumToOne) {
  OpRun r = RunOp("Softmax", {F32({1, 2, 3, 1, 1, 1}, {2, 3})});
  ASSERT_TRUE(r.status.ok());
  const Tensor& y = r.outputs[0].tensor;
  EXPECT_NEAR(y.data<float>()[0] + y.data<float>()[1] + y.data<float>()[2], 1.0, 1e-6);
  EXPECT_NEAR(y.data<float>()[3], 1.0 / 3, 1e-6);
  EXPECT_FALSE(RunOp("Softmax", {F32({1}, {1})}, A({{"axis", Attr::Int(3)}})).status.ok());
}

TEST(ReduceOps, ReduceSumKeepdimsAndAxesInput) {
  OpRun r = RunOp("ReduceSum", {F32({1, 2, 3, 4, 5, 6}, {2, 3}), I64({1}, {1})}, {}, 1, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({6, 15}, {2, 1})));
  OpRun all = RunOp("ReduceMax", {F32({1, 9, 3}, {3})}, A({{"keepdims", Attr::Int(0)}}));
  ASSERT_TRUE(all.status.ok());
  EXPECT_TRUE(TensorsClose(all.outputs[0].tensor, F32({9}, {})));
}

TEST(ControlFlowOps, SequenceConstructAtAndLength) {
  OpRun r = RunOp("SequenceConstruct", {F32({1}, {1}), F32({2, 3}, {2})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_TRUE(r.outputs[0].is_sequence());
  EXPECT_EQ(r.outputs[0].sequence.size(), 2u);
  TypeInfo seq = TypeInfo::Sequence(TypeInfo::Tensor(DType::kFloat32, Shape::OfRank(1)));
  OpRun at = RunOpValues("SequenceAt", {r.outputs[0], RValue(Tensor::Scalar<int64_t>(-1))},
                         {seq, TypeInfo::Tensor(DType::kInt64, Shape::FromDims({}))});
  ASSERT_TRUE(at.status.ok()) << at.status.ToString();
  EXPECT_TRUE(TensorsClose(at.outputs[0].tensor, F32({2, 3}, {2})));
  OpRun bad = RunOpValues("SequenceAt", {r.outputs[0], RValue(Tensor::Scalar<int64_t>(5))},
                          {seq, TypeInfo::Tensor(DType::kInt64, Shape::FromDims({}))});
  EXPECT_TRUE(Has(bad.status, "out of range"));
}

}  // namespace
}  // namespace kiln::testing

namespace kiln::testing {
namespace {

// Integer Add/Sub/Mul wrap around on overflow (two's complement), as NumPy and ONNX Runtime
// do, instead of undefined behaviour (found by fuzzing the importer's constant folding).
TEST(ElementwiseOps, IntegerArithmeticWrapsAround) {
  const int64_t max = std::numeric_limits<int64_t>::max(), min = std::numeric_limits<int64_t>::min();
  OpRun add = RunOp("Add", {I64({max, 1}, {2}), I64({1, 2}, {2})});
  ASSERT_TRUE(add.status.ok()) << add.status.ToString();
  EXPECT_EQ(add.outputs[0].tensor.data<int64_t>()[0], min);
  EXPECT_EQ(add.outputs[0].tensor.data<int64_t>()[1], 3);
  OpRun sub = RunOp("Sub", {I64({min}, {1}), I64({1}, {1})});
  ASSERT_TRUE(sub.status.ok());
  EXPECT_EQ(sub.outputs[0].tensor.data<int64_t>()[0], max);
  OpRun mul = RunOp("Mul", {I64({max}, {1}), I64({2}, {1})});
  ASSERT_TRUE(mul.status.ok());
  EXPECT_EQ(mul.outputs[0].tensor.data<int64_t>()[0], -2);
}

}  // namespace
}  // namespace kiln::testing
