// RNN, GRU and LSTM with hidden_size 1, so every step can be checked by hand (values from
// the ONNX equations evaluated in NumPy), plus directions, layouts and bad inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/op_test_util.h"

namespace kiln::testing {
namespace {

// Attributes with hidden_size = 1, the size every test here uses.
AttrMap RnnAttrs(std::initializer_list<std::pair<const char*, Attr>> kv) {
  AttrMap m;
  m.set("hidden_size", Attr::Int(1));
  for (const auto& [k, v] : kv) m.set(k, v);
  return m;
}

// X = [1, 2] as [seq 2, batch 1, input 1].
const Tensor kX = F32({1, 2}, {2, 1, 1});

TEST(ReduceRnnSignalRnn, SimpleRnnForward) {
  // h1 = tanh(0.5 * 1), h2 = tanh(0.5 * 2 + 0.5 * h1)
  OpRun r = RunOp("RNN", {kX, F32({0.5f}, {1, 1, 1}), F32({0.5f}, {1, 1, 1})}, RnnAttrs({}), 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({0.46211716f, 0.84288610f}, {2, 1, 1, 1})));
  EXPECT_TRUE(TensorsClose(r.outputs[1].tensor, F32({0.84288610f}, {1, 1, 1})));
  EXPECT_EQ(r.graph.value(r.graph.outputs()[0]).type.ToString(), "float32[2,1,1,1]");
}

TEST(ReduceRnnSignalRnn, BidirectionalIsForwardPlusReverse) {
  const Tensor w = F32({0.5f, 0.5f}, {2, 1, 1});
  OpRun r = RunOp("RNN", {kX, w, w}, RnnAttrs({{"direction", Attr::String("bidirectional")}}), 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  // Reverse direction: h(t=1) = tanh(1) first, then h(t=0) = tanh(0.5 + 0.5 * tanh(1)).
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({0.46211716f, 0.70681841f, 0.84288610f, 0.76159416f}, {2, 2, 1, 1})));
  EXPECT_TRUE(TensorsClose(r.outputs[1].tensor, F32({0.84288610f, 0.70681841f}, {2, 1, 1})));
}

TEST(ReduceRnnSignalRnn, LayoutOneAndSequenceLens) {
  // Two batches in layout 1 ([batch, seq, input]); batch 1 only has one valid step.
  const Tensor x = F32({1, 2, 1, 2}, {2, 2, 1});
  const Tensor w = F32({0.5f}, {1, 1, 1});
  OpRun r = RunOp("RNN", {x, w, w, Tensor(), Tensor::FromVector<int32_t>({2, 1})}, RnnAttrs({{"layout", Attr::Int(1)}}), 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({0.46211716f, 0.84288610f, 0.46211716f, 0}, {2, 2, 1, 1})));
  EXPECT_TRUE(TensorsClose(r.outputs[1].tensor, F32({0.84288610f, 0.46211716f}, {2, 1, 1})));
}

TEST(ReduceRnnSignalRnn, LstmWithPeepholes) {
  // Gates i, o, f, c: W = [.1 .2 .3 .4], R = [.5 .6 .7 .8], peepholes (i, o, f) = [.1 .2 .3].
  OpRun r = RunOp("LSTM",
                  {kX, F32({0.1f, 0.2f, 0.3f, 0.4f}, {1, 4, 1}), F32({0.5f, 0.6f, 0.7f, 0.8f}, {1, 4, 1}), Tensor(),
                   Tensor(), Tensor(), Tensor(), F32({0.1f, 0.2f, 0.3f}, {1, 3})},
                  RnnAttrs({}), 3);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({0.11018082f, 0.31470467f}, {2, 1, 1, 1})));
  EXPECT_TRUE(TensorsClose(r.outputs[1].tensor, F32({0.31470467f}, {1, 1, 1})));
  EXPECT_TRUE(TensorsClose(r.outputs[2].tensor, F32({0.53868900f}, {1, 1, 1})));
}

TEST(ReduceRnnSignalRnn, GruLinearBeforeReset) {
  // Gates z, r, h: W = [.1 .2 .3], R = [.4 .5 .6], Rb_h = 0.2, initial h = 0.5.
  const Tensor w = F32({0.1f, 0.2f, 0.3f}, {1, 3, 1}), rw = F32({0.4f, 0.5f, 0.6f}, {1, 3, 1});
  const Tensor b = F32({0, 0, 0, 0, 0, 0.2f}, {1, 6}), h0 = F32({0.5f}, {1, 1, 1});
  OpRun r0 = RunOp("GRU", {kX, w, rw, b, Tensor(), h0}, RnnAttrs({}));
  ASSERT_TRUE(r0.status.ok()) << r0.status.ToString();
  EXPECT_TRUE(TensorsClose(r0.outputs[0].tensor, F32({0.53982812f, 0.63033163f}, {2, 1, 1, 1})));
  OpRun r1 = RunOp("GRU", {kX, w, rw, b, Tensor(), h0}, RnnAttrs({{"linear_before_reset", Attr::Int(1)}}));
  ASSERT_TRUE(r1.status.ok()) << r1.status.ToString();
  EXPECT_TRUE(TensorsClose(r1.outputs[0].tensor, F32({0.51737299f, 0.60376340f}, {2, 1, 1, 1})));
}

TEST(ReduceRnnSignalRnn, CustomActivationAndClip) {
  // Affine(alpha=2, beta=0) with clip 0.6, which bounds the activation's input:
  // h1 = 2 * min(0.5, 0.6) = 1, h2 = 2 * min(0.5 * 2 + 0.5 * 1, 0.6) = 1.2.
  OpRun r = RunOp("RNN", {kX, F32({0.5f}, {1, 1, 1}), F32({0.5f}, {1, 1, 1})},
                  RnnAttrs({{"activations", Attr::Strings({"Affine"})}, {"activation_alpha", Attr::Floats({2.f})},
                     {"activation_beta", Attr::Floats({0.f})}, {"clip", Attr::Float(0.6f)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1.f, 1.2f}, {2, 1, 1, 1})));
}

TEST(ReduceRnnSignalRnn, BadInputsAreErrors) {
  const Tensor w = F32({0.5f}, {1, 1, 1});
  OpRun wshape = RunOp("GRU", {kX, w, w}, RnnAttrs({}));
  EXPECT_TRUE(Has(wshape.status, "'W'")) << wshape.status.ToString();
  OpRun dir = RunOp("RNN", {kX, w, w}, RnnAttrs({{"direction", Attr::String("sideways")}}));
  EXPECT_TRUE(Has(dir.status, "direction")) << dir.status.ToString();
  OpRun act = RunOp("RNN", {kX, w, w}, RnnAttrs({{"activations", Attr::Strings({"Wobble"})}}));
  EXPECT_TRUE(Has(act.status, "Wobble")) << act.status.ToString();
  OpRun rank = RunOp("RNN", {F32({1, 2}, {2, 1}), w, w}, RnnAttrs({}));
  EXPECT_TRUE(Has(rank.status, "'X'")) << rank.status.ToString();
  OpRun lens = RunOp("RNN", {kX, w, w, Tensor(), Tensor::FromVector<int32_t>({3})}, RnnAttrs({}));
  EXPECT_TRUE(Has(lens.status, "sequence_lens")) << lens.status.ToString();
  AttrMap no_hidden;
  EXPECT_TRUE(Has(RunOp("RNN", {kX, w, w}, no_hidden).status, "hidden_size"));
}

}  // namespace
}  // namespace kiln::testing
