// INT8 convolutions of the CPU backend (backends/cpu/int8.h) against a fake-quantized
// reference: the same graph on the reference backend with each INT8 layer's input
// quantized and dequantized (QuantizeLinear/DequantizeLinear at the layer's scale) and its
// weights rounded per output channel as the backend does. The int32 accumulation is exact,
// so the two differ by float rounding only — and, where a layer writes its output straight
// in INT8 for the next, by one quantization step where rounding falls on the other side.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "api/engine_internal.h"
#include "api/optimize.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/int8.h"
#include "backends/ref/kernel.h"
#include "ir/op_schema.h"
#include "passes/pass_test_util.h"

namespace kiln {
namespace {

using testing::Attrs;
using testing::GraphBuilder;
using testing::RandomTensor;

struct Layer {
  std::string name;
  float scale;
  bool is_unsigned;
};

// Per-output-channel symmetric rounding of conv weights, as PrepareInt8Conv does.
Tensor FakeQuantWeights(const Tensor& w) {
  Tensor out = w;
  const int64_t oc = w.dim(0), per = w.numel() / oc;
  float* d = out.data<float>();
  for (int64_t o = 0; o < oc; ++o) {
    float amax = 0;
    for (int64_t i = 0; i < per; ++i) amax = std::max(amax, std::fabs(d[o * per + i]));
    const float s = amax > 0 ? amax / 127.0f : 1.0f;
    for (int64_t i = 0; i < per; ++i) d[o * per + i] = std::clamp(std::nearbyint(d[o * per + i] / s), -127.0f, 127.0f) * s;
  }
  return out;
}

struct Net {
  Graph fp32;  // the model
  Graph fake;  // the oracle: Q/DQ before each INT8 layer, weights rounded
};

// x -> conv1(3x3) -> relu -> conv2(1x1) -> relu -> conv3(3x3, stride 2) [+ residual branch]
// With `residual`: y = relu(conv3(...) + conv_s(x)) where conv_s is float.
Net Build(const std::vector<Layer>& layers, bool residual, uint32_t seed) {
  Net net;
  for (int pass = 0; pass < 2; ++pass) {
    const bool fake = pass == 1;
    GraphBuilder b;
    ValueId x = b.Input("x", DType::kFloat32, {1, 8, 12, 12});
    auto conv = [&](const std::string& name, ValueId in, int64_t cin, int64_t cout, int64_t k, int64_t stride,
                    uint32_t s) {
      Tensor w = RandomTensor({cout, cin, k, k}, s, 0.3f);
      const Layer* q = nullptr;
      for (const Layer& l : layers)
        if (l.name == name) q = &l;
      if (fake && q) {
        w = FakeQuantWeights(w);
        ValueId sc = b.Const(name + "_qs", Tensor::Scalar(q->scale));
        ValueId zp = b.Const(name + "_qz", q->is_unsigned ? Tensor::Scalar(uint8_t{0}) : Tensor::Scalar(int8_t{0}));
        in = b.Op("DequantizeLinear", name + "_dq", {b.Op("QuantizeLinear", name + "_q", {in, sc, zp}), sc, zp});
      }
      return b.Op("Conv", name, {in, b.Const(name + "_w", w), b.Const(name + "_b", RandomTensor({cout}, s + 1, 0.1f))},
                  Attrs({{"pads", Attr::Ints({k / 2, k / 2, k / 2, k / 2})}, {"strides", Attr::Ints({stride, stride})}}));
    };
    ValueId h = b.Op("Relu", "relu1", {conv("conv1", x, 8, 16, 3, 1, seed)});
    h = b.Op("Relu", "relu2", {conv("conv2", h, 16, 16, 1, 1, seed + 10)});
    ValueId y = conv("conv3", h, 16, 24, 3, 2, seed + 20);
    if (residual) y = b.Op("Relu", "relu3", {b.Op("Add", "add", {y, conv("conv_s", x, 8, 24, 1, 2, seed + 30)})});
    b.Output(y);
    (fake ? net.fake : net.fp32) = b.Build();
  }
  return net;
}

// Optimizes the model, marks its INT8 layers (by the name of the original convolution, which
// the fused node keeps) and runs it on the CPU backend; the oracle on the reference backend.
void Check(const std::vector<Layer>& layers, bool residual, double max_steps_off, const char* expect_in_steps,
           int quantize_steps = -1, bool near_fp32 = true) {
  Net net = Build(layers, residual, 5);
  auto opt = std::make_shared<Graph>(net.fp32);
  ASSERT_TRUE(OptimizeGraph(*opt).ok());
  int marked = 0;
  for (NodeId n = 0; n < opt->num_nodes(); ++n) {
    Node& node = opt->node(n);
    for (const Layer& l : layers)
      if (node.op_type == "Conv" && node.name == l.name) {
        node.attrs.set(cpu::kInt8Attr, Attr::Floats({l.scale, l.is_unsigned ? 1.0f : 0.0f}));
        ++marked;
      }
  }
  ASSERT_EQ(marked, static_cast<int>(layers.size())) << "fused nodes keep the convolution's name";
  cpu::CompileOptions co;
  co.threads = 1;
  auto program = cpu::Compile(opt, co);
  ASSERT_TRUE(program.ok()) << program.status().ToString();
  std::string steps;
  int int8_steps = 0;
  for (const cpu::StepInfo& s : cpu::Steps(**program)) {
    steps += s.name + " " + s.impl + " " + s.precision + "\n";
    int8_steps += s.precision == "int8";
    EXPECT_FALSE(cpu::IsReferenceImpl(s.impl)) << s.name << ": " << s.impl;
  }
  EXPECT_EQ(int8_steps, static_cast<int>(layers.size())) << steps;
  if (expect_in_steps) {
    EXPECT_NE(steps.find(expect_in_steps), std::string::npos) << steps;
  }
  if (quantize_steps >= 0) {
    int n = 0;
    for (size_t at = steps.find("quantize "); at != std::string::npos; at = steps.find("quantize ", at + 1)) ++n;
    EXPECT_EQ(n, quantize_steps) << steps;
  }

  Tensor x = RandomTensor({1, 8, 12, 12}, 99, 1.0f);
  RefExecutor ex;
  auto want = ex.Run(net.fake, {RValue(x)});
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  cpu::Context ctx(*program);
  std::vector<Tensor> got;
  ASSERT_TRUE(ctx.RunTensors({&x}, &got).ok());
  const Tensor& w = (*want)[0].tensor;
  ASSERT_EQ(w.dims(), got[0].dims());
  double max_ref = 0, max_err = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    max_ref = std::max(max_ref, std::fabs(w.GetAsDouble(i)));
    max_err = std::max(max_err, std::fabs(w.GetAsDouble(i) - got[0].GetAsDouble(i)));
  }
  // Float rounding: 1e-4 of the output's range; a requantized chain: a few steps of the last
  // layer's input quantization times its weights' reach, bounded here by `max_steps_off`.
  EXPECT_LE(max_err, std::max(1e-4 * max_ref, max_steps_off)) << "max |ref| " << max_ref << "\n" << steps;
  // And the INT8 result is close to the float model's (the quantization error itself), when
  // the scales cover the data.
  if (!near_fp32) return;
  auto fp = ex.Run(net.fp32, {RValue(x)});
  ASSERT_TRUE(fp.ok());
  double fmax = 0;
  for (int64_t i = 0; i < w.numel(); ++i)
    fmax = std::max(fmax, std::fabs((*fp)[0].tensor.GetAsDouble(i) - got[0].GetAsDouble(i)));
  EXPECT_LE(fmax, 0.05 * max_ref) << "INT8 vs FP32";
}

TEST(Int8Conv, SignedInputFloatOutput) {
  // conv1 reads the raw (signed) input; nothing after it is INT8: a float output.
  Check({{"conv1", 4.5f / 127, false}}, false, 0, "quantize x");
}

TEST(Int8Conv, UnsignedInputsChainedInInt8) {
  // conv2 and conv3 read ReLU outputs (u8): conv1 writes conv2's u8 input directly and conv2
  // writes conv3's, so the only quantize step is the model input's.
  Check({{"conv1", 4.5f / 127, false}, {"conv2", 12.0f / 255, true}, {"conv3", 12.0f / 255, true}}, false, 0.05,
        "quantize x", 1);
}

TEST(Int8Conv, ResidualSumIntoAFloatOutput) {
  Check({{"conv1", 4.5f / 127, false}, {"conv2", 12.0f / 255, true}, {"conv3", 12.0f / 255, true},
         {"conv_s", 4.5f / 127, false}},
        true, 0.05, nullptr);
}

TEST(Int8Conv, SaturatesOutOfRangeInputs) {
  // A scale far too small for the data: everything beyond 0.5 saturates — identical to
  // QuantizeLinear's saturation in the oracle (values within the s8 range's -127 end).
  Check({{"conv1", 0.5f / 127, false}}, false, 0, nullptr, 1, /*near_fp32=*/false);
}

// The engine on `x` against the oracle graph on the reference backend: max |oracle - engine|
// and max |oracle| over the (single) output.
std::pair<double, double> EngineVsOracle(const Engine& engine, const Graph& oracle, Tensor x) {
  RefExecutor ex;
  auto want = ex.Run(oracle, {RValue(x)});
  auto got = engine.Infer({{"x", HostTensor::Wrap(x.data<float>(), x.dims())}});
  if (!want.ok() || !got.ok() || got->begin()->second.numel() != (*want)[0].tensor.numel()) {
    ADD_FAILURE() << "oracle: " << want.status().ToString() << "; engine: " << got.status().ToString();
    return {INFINITY, 0};
  }
  const Tensor& w = (*want)[0].tensor;
  const HostTensor& y = got->begin()->second;
  double max_ref = 0, max_err = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    max_ref = std::max(max_ref, std::fabs(w.GetAsDouble(i)));
    max_err = std::max(max_err, std::fabs(w.GetAsDouble(i) - y.data_as<float>()[i]));
  }
  return {max_err, max_ref};
}

// A QDQ model (the oracle graph itself: Q/DQ before each layer, weights already on the
// per-channel grid) imports as INT8 layers with the model's own scales:
// fold_quantize_dequantize records them, the builder marks the layers, and the result is
// the oracle's (the rounding the model asks for happens in the INT8 kernels).
TEST(Int8Conv, QdqModelRunsOnInt8Kernels) {
  const std::vector<Layer> layers = {{"conv1", 4.5f / 127, false}, {"conv2", 12.0f / 255, true}, {"conv3", 12.0f / 255, true}};
  Net net = Build(layers, false, 5);
  auto opt = std::make_shared<Graph>(net.fake);
  ASSERT_TRUE(OptimizeGraph(*opt).ok());
  EXPECT_EQ(opt->quant_ranges.size(), 3u);
  int qdq_left = 0;
  for (NodeId n = 0; n < opt->num_nodes(); ++n)
    if (!opt->node(n).dead && (opt->node(n).op_type == "QuantizeLinear" || opt->node(n).op_type == "DequantizeLinear")) ++qdq_left;
  EXPECT_EQ(qdq_left, 0) << opt->ToString();
  BuildOptions bo;
  bo.threads = 1;
  auto report = QuantizeInt8(*opt, bo);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->layers, 3);
  auto engine = MakeEngineFromOptimized(opt, MemoryPlan{}, bo);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const cpu::Program* program = EngineCpuProgram(**engine);
  ASSERT_NE(program, nullptr);
  int int8_steps = 0;
  for (const cpu::StepInfo& s : cpu::Steps(*program)) int8_steps += s.precision == "int8";
  EXPECT_EQ(int8_steps, 3);
  const auto [max_err, max_ref] = EngineVsOracle(**engine, net.fake, RandomTensor({1, 8, 12, 12}, 99, 1.0f));
  EXPECT_LE(max_err, 0.05) << "max |ref| " << max_ref;
}

// An Inception block as a QDQ model: a stem, sibling 1x1 convolutions (fused into one wider
// layer), a 3x3 after one of them, a max-pooling branch, a Concat read by an INT8 layer.
// Everything between the INT8 layers stays INT8: the fused layer writes each piece in its
// readers' scale, the pooling pools INT8 values, the concat copies INT8 pieces written in
// its output's scale; only the model input and the pooling branch's change of scale are
// quantize steps. The oracle (the QDQ graph on the reference backend) computes the same
// rounding: max pooling commutes with it, and concatenating saturated pieces is saturating
// the concatenation.
TEST(Int8Conv, InceptionBlockStaysInt8) {
  Graph fake;
  {
    GraphBuilder b;
    ValueId x = b.Input("x", DType::kFloat32, {1, 8, 12, 12});
    auto qdq = [&](ValueId v, const std::string& name, float scale, bool u8) {
      ValueId sc = b.Const(name + "_qs", Tensor::Scalar(scale));
      ValueId zp = b.Const(name + "_qz", u8 ? Tensor::Scalar(uint8_t{0}) : Tensor::Scalar(int8_t{0}));
      return b.Op("DequantizeLinear", name + "_dq", {b.Op("QuantizeLinear", name + "_q", {v, sc, zp}), sc, zp});
    };
    auto conv = [&](const std::string& name, ValueId in, int64_t cin, int64_t cout, int64_t k, uint32_t seed) {
      return b.Op("Relu", name + "_relu",
                  {b.Op("Conv", name,
                        {in, b.Const(name + "_w", FakeQuantWeights(RandomTensor({cout, cin, k, k}, seed, 0.3f))),
                         b.Const(name + "_b", RandomTensor({cout}, seed + 1, 0.1f))},
                        Attrs({{"pads", Attr::Ints({k / 2, k / 2, k / 2, k / 2})}}))});
    };
    ValueId p = conv("stem", qdq(x, "x", 4.5f / 127, false), 8, 16, 3, 1);
    ValueId pd = qdq(p, "p", 10.0f / 255, true);
    ValueId b1 = conv("b1", pd, 16, 8, 1, 3);
    ValueId b2 = conv("b2b", qdq(conv("b2a", pd, 16, 8, 1, 5), "b2", 8.0f / 255, true), 8, 8, 3, 7);
    ValueId mp = b.Op("MaxPool", "pool", {pd},
                      Attrs({{"kernel_shape", Attr::Ints({3, 3})}, {"pads", Attr::Ints({1, 1, 1, 1})}}));
    ValueId b3 = conv("b3", qdq(mp, "mp", 11.0f / 255, true), 16, 8, 1, 9);
    ValueId cat = b.Op("Concat", "cat", {b1, b2, b3}, Attrs({{"axis", Attr::Int(1)}}));
    b.Output(b.Op("Conv", "head",
                  {qdq(cat, "cat", 9.0f / 255, true), b.Const("head_w", FakeQuantWeights(RandomTensor({4, 24, 1, 1}, 11, 0.3f)))}));
    fake = b.Build();
  }
  auto opt = std::make_shared<Graph>(fake);
  ASSERT_TRUE(OptimizeGraph(*opt).ok());
  BuildOptions bo;
  bo.threads = 1;
  auto report = QuantizeInt8(*opt, bo);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  auto engine = MakeEngineFromOptimized(opt, MemoryPlan{}, bo);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const cpu::Program* program = EngineCpuProgram(**engine);
  ASSERT_NE(program, nullptr);
  std::string steps;
  int quantize = 0, int8_pools = 0, concats = 0;
  for (const cpu::StepInfo& st : cpu::Steps(*program)) {
    steps += st.name + " " + st.op + " " + st.impl + " " + st.precision + "\n";
    quantize += st.op == "QuantizeLinear";
    int8_pools += st.op == "MaxPool" && st.precision == "int8";
    concats += st.op == "Concat";
    // No float copy of an INT8 tensor anywhere (the float output goes row-major at the end).
    if (st.op == "Reorder") {
      EXPECT_NE(st.name.find("head_out"), std::string::npos) << steps;
    }
  }
  EXPECT_EQ(quantize, 2) << steps;  // the input; the pooling branch's scale
  EXPECT_EQ(int8_pools, 1) << steps;
  EXPECT_EQ(concats, 1) << steps;
  const auto [max_err, max_ref] = EngineVsOracle(**engine, fake, RandomTensor({1, 8, 12, 12}, 99, 1.0f));
  // A rounding that falls on the other side somewhere in the chain moves the output by a
  // step of the head's input (9/255) times its weights' reach.
  EXPECT_LE(max_err, 0.15) << "max |ref| " << max_ref << "\n" << steps;
}

// Matrix products with constant weights: per-column (output feature) weight scales, the
// bias folded into the matmul (PyTorch's Linear as MatMul + Add) and Gemm with transB.
TEST(Int8MatMul, LinearLayersAgainstTheFakeQuantizedReference) {
  auto fake_cols = [](Tensor w, bool trans) {  // per output column of the product
    const int64_t rows = w.dim(0), cols = w.dim(1);
    float* d = w.data<float>();
    const int64_t n = trans ? rows : cols, k = trans ? cols : rows;
    for (int64_t j = 0; j < n; ++j) {
      float amax = 0;
      for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(trans ? d[j * cols + i] : d[i * cols + j]));
      const float s = amax > 0 ? amax / 127.0f : 1.0f;
      for (int64_t i = 0; i < k; ++i) {
        float& v = trans ? d[j * cols + i] : d[i * cols + j];
        v = std::clamp(std::nearbyint(v / s), -127.0f, 127.0f) * s;
      }
    }
    return w;
  };
  const float s1 = 3.5f / 127, s2 = 6.0f / 255;
  Graph graphs[2];
  for (int pass = 0; pass < 2; ++pass) {
    const bool fake = pass == 1;
    GraphBuilder b;
    ValueId x = b.Input("x", DType::kFloat32, {4, 32});
    auto qdq = [&](ValueId v, float s, bool u8, const std::string& name) {
      if (!fake) return v;
      ValueId sc = b.Const(name + "_qs", Tensor::Scalar(s));
      ValueId zp = b.Const(name + "_qz", u8 ? Tensor::Scalar(uint8_t{0}) : Tensor::Scalar(int8_t{0}));
      return b.Op("DequantizeLinear", name + "_dq", {b.Op("QuantizeLinear", name + "_q", {v, sc, zp}), sc, zp});
    };
    Tensor w1 = RandomTensor({32, 24}, 11, 0.2f), w2 = RandomTensor({16, 24}, 12, 0.2f);
    if (fake) {
      w1 = fake_cols(w1, false);
      w2 = fake_cols(w2, true);
    }
    ValueId h = b.Op("MatMul", "fc1", {qdq(x, s1, false, "fc1"), b.Const("w1", w1)});
    h = b.Op("Relu", "relu", {b.Op("Add", "bias1", {h, b.Const("b1", RandomTensor({24}, 13, 0.1f))})});
    ValueId y = b.Op("Gemm", "fc2", {qdq(h, s2, true, "fc2"), b.Const("w2", w2), b.Const("b2", RandomTensor({16}, 14, 0.1f))},
                     Attrs({{"transB", Attr::Int(1)}}));
    b.Output(y);
    graphs[pass] = b.Build();
  }
  auto opt = std::make_shared<Graph>(graphs[0]);
  ASSERT_TRUE(OptimizeGraph(*opt).ok());
  int marked = 0;
  for (NodeId n = 0; n < opt->num_nodes(); ++n) {
    Node& node = opt->node(n);
    if (node.dead) continue;
    if (node.name == "fc1") node.attrs.set(cpu::kInt8Attr, Attr::Floats({s1, 0.0f})), ++marked;
    if (node.name == "fc2") node.attrs.set(cpu::kInt8Attr, Attr::Floats({s2, 1.0f})), ++marked;
  }
  ASSERT_EQ(marked, 2) << opt->ToString();
  cpu::CompileOptions co;
  co.threads = 1;
  auto program = cpu::Compile(opt, co);
  ASSERT_TRUE(program.ok()) << program.status().ToString();
  int int8_steps = 0;
  std::string steps;
  for (const cpu::StepInfo& st : cpu::Steps(**program)) {
    int8_steps += st.precision == "int8";
    steps += st.name + " " + st.impl + "\n";
    EXPECT_FALSE(cpu::IsReferenceImpl(st.impl)) << st.name;
  }
  EXPECT_EQ(int8_steps, 2) << steps;
  Tensor x = RandomTensor({4, 32}, 5, 1.0f);
  RefExecutor ex;
  auto want = ex.Run(graphs[1], {RValue(x)});
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  cpu::Context ctx(*program);
  std::vector<Tensor> got;
  ASSERT_TRUE(ctx.RunTensors({&x}, &got).ok());
  const Tensor& w = (*want)[0].tensor;
  double max_ref = 0, max_err = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    max_ref = std::max(max_ref, std::fabs(w.GetAsDouble(i)));
    max_err = std::max(max_err, std::fabs(w.GetAsDouble(i) - got[0].GetAsDouble(i)));
  }
  EXPECT_LE(max_err, 1e-4 * std::max(1.0, max_ref)) << steps;
}

}  // namespace
}  // namespace kiln
