// The network-definition API (include/kiln/network.h): every layer kind against a hand
// computation, errors that name the layer at the call that made them (and again from
// Build), and build -> Save -> Load giving the same outputs.
#include "kiln/network.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>

namespace kiln {
namespace {

// Deterministic, varied values in about [-1, 1].
std::vector<float> Values(size_t n, int seed = 1) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(static_cast<int>((i * 37 + static_cast<size_t>(seed) * 11) % 23) - 11) / 11.0f;
  return v;
}

int64_t Numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

struct Run {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Builds `net` (optimizer on unless `optimize` is false), runs it on float inputs and returns
// output `out`.
Run BuildAndRun(const NetworkDefinition& net, const std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>& inputs,
                const std::string& out = "y", bool optimize = true) {
  BuildOptions opts;
  opts.optimize = optimize;
  auto engine = BuildFromNetwork(net, opts);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  if (!engine.ok()) return {};
  std::map<std::string, HostTensor> in;
  std::vector<std::vector<float>> keep;
  for (const auto& [name, v] : inputs) {
    keep.push_back(v.second);
    in.emplace(name, HostTensor::Wrap(keep.back().data(), v.first));
  }
  auto res = (*engine)->Infer(in);
  EXPECT_TRUE(res.ok()) << res.status().ToString();
  if (!res.ok()) return {};
  const HostTensor& y = res->at(out);
  EXPECT_EQ(y.dtype(), DataType::kFloat32);
  return {y.shape(), std::vector<float>(y.data_as<float>(), y.data_as<float>() + y.numel())};
}

void ExpectClose(const Run& got, const std::vector<int64_t>& shape, const std::vector<float>& want, float tol = 1e-5f) {
  ASSERT_EQ(got.shape, shape);
  ASSERT_EQ(got.data.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got.data[i], want[i], tol * std::max(1.0f, std::fabs(want[i]))) << "element " << i;
}

// Naive NCHW 2-D convolution (the oracle).
std::vector<float> Conv2d(const std::vector<float>& x, std::vector<int64_t> xd, const std::vector<float>& w,
                          int64_t oc, int64_t kh, int64_t kw, const std::vector<float>& b, int64_t stride, int64_t pad,
                          int64_t dil, int64_t groups, std::vector<int64_t>* out_dims) {
  const int64_t n = xd[0], c = xd[1], h = xd[2], wd = xd[3];
  const int64_t oh = (h + 2 * pad - dil * (kh - 1) - 1) / stride + 1, ow = (wd + 2 * pad - dil * (kw - 1) - 1) / stride + 1;
  const int64_t cg = c / groups, og = oc / groups;
  *out_dims = {n, oc, oh, ow};
  std::vector<float> y(static_cast<size_t>(n * oc * oh * ow));
  for (int64_t in = 0; in < n; ++in)
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double s = b.empty() ? 0 : b[static_cast<size_t>(o)];
          const int64_t g = o / og;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t u = 0; u < kh; ++u)
              for (int64_t v = 0; v < kw; ++v) {
                const int64_t yy = i * stride - pad + u * dil, xx = j * stride - pad + v * dil;
                if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
                s += double(x[static_cast<size_t>(((in * c + g * cg + ci) * h + yy) * wd + xx)]) *
                     w[static_cast<size_t>(((o * cg + ci) * kh + u) * kw + v)];
              }
          y[static_cast<size_t>(((in * oc + o) * oh + i) * ow + j)] = static_cast<float>(s);
        }
  return y;
}

TEST(Network, Convolution) {
  for (int64_t groups : {1, 2}) {
    NetworkDefinition net;
    const std::vector<int64_t> xd = {2, 4, 7, 6};
    auto x = net.AddInput("x", DataType::kFloat32, xd);
    const int64_t oc = 6;
    std::vector<float> w = Values(static_cast<size_t>(oc * (4 / groups) * 3 * 3), 2), b = Values(oc, 3);
    auto c = net.AddConvolution(x, oc, {3, 3}, w, b, ConvParams{{2, 2}, {1, 1}, {groups == 2 ? 2 : 1, groups == 2 ? 2 : 1}, groups}, "conv");
    ASSERT_TRUE(c.valid()) << net.status().ToString();
    ASSERT_TRUE(net.MarkOutput(c, "y").ok());
    std::vector<float> xv = Values(static_cast<size_t>(Numel(xd)), 4);
    std::vector<int64_t> yd;
    std::vector<float> want = Conv2d(xv, xd, w, oc, 3, 3, b, 2, 1, groups == 2 ? 2 : 1, groups, &yd);
    ExpectClose(BuildAndRun(net, {{"x", {xd, xv}}}), yd, want);
    auto info = net.GetTensorInfo(c);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->name, "y");  // renamed by MarkOutput
    EXPECT_EQ(info->shape, yd);
  }
}

TEST(Network, FullyConnectedAndMatrixMultiply) {
  // Rank 2 (Gemm) and rank 3 (MatMul over the last dim), with and without bias.
  for (std::vector<int64_t> xd : {std::vector<int64_t>{3, 5}, std::vector<int64_t>{2, 3, 5}}) {
    for (bool with_bias : {true, false}) {
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, xd);
      std::vector<float> w = Values(4 * 5, 5), b = with_bias ? Values(4, 6) : std::vector<float>{};
      ASSERT_TRUE(net.MarkOutput(net.AddFullyConnected(x, 4, w, b, "fc"), "y").ok());
      ASSERT_TRUE(net.status().ok()) << net.status().ToString();
      std::vector<float> xv = Values(static_cast<size_t>(Numel(xd)), 7);
      const int64_t rows = Numel(xd) / 5;
      std::vector<float> want(static_cast<size_t>(rows * 4));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < 4; ++o) {
          double s = with_bias ? b[static_cast<size_t>(o)] : 0.0;
          for (int64_t k = 0; k < 5; ++k) s += double(xv[static_cast<size_t>(r * 5 + k)]) * w[static_cast<size_t>(o * 5 + k)];
          want[static_cast<size_t>(r * 4 + o)] = static_cast<float>(s);
        }
      std::vector<int64_t> yd = xd;
      yd.back() = 4;
      ExpectClose(BuildAndRun(net, {{"x", {xd, xv}}}), yd, want);
    }
  }
  NetworkDefinition net;
  auto a = net.AddInput("a", DataType::kFloat32, {2, 3});
  auto b = net.AddInput("b", DataType::kFloat32, {3, 4});
  ASSERT_TRUE(net.MarkOutput(net.AddMatrixMultiply(a, b), "y").ok());
  std::vector<float> av = Values(6, 1), bv = Values(12, 2), want(8);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) want[static_cast<size_t>(i * 4 + j)] += av[static_cast<size_t>(i * 3 + k)] * bv[static_cast<size_t>(k * 4 + j)];
  ExpectClose(BuildAndRun(net, {{"a", {{2, 3}, av}}, {"b", {{3, 4}, bv}}}), {2, 4}, want);
}

TEST(Network, Activations) {
  struct Case {
    ActivationType type;
    bool params;
    float alpha, beta;
    std::function<double(double)> f;
  };
  const std::vector<Case> cases = {
      {ActivationType::kRelu, false, 0, 0, [](double x) { return x > 0 ? x : 0; }},
      {ActivationType::kSigmoid, false, 0, 0, [](double x) { return 1 / (1 + std::exp(-x)); }},
      {ActivationType::kTanh, false, 0, 0, [](double x) { return std::tanh(x); }},
      {ActivationType::kLeakyRelu, false, 0, 0, [](double x) { return x >= 0 ? x : 0.01 * x; }},
      {ActivationType::kLeakyRelu, true, 0.2f, 0, [](double x) { return x >= 0 ? x : 0.2 * x; }},
      {ActivationType::kClip, true, -0.5f, 1.5f, [](double x) { return std::min(1.5, std::max(-0.5, x)); }},
      {ActivationType::kGelu, false, 0, 0, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
      {ActivationType::kGeluTanh, false, 0, 0,
       [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }},
      {ActivationType::kSilu, false, 0, 0, [](double x) { return x / (1 + std::exp(-x)); }},
      {ActivationType::kElu, true, 0.5f, 0, [](double x) { return x >= 0 ? x : 0.5 * (std::exp(x) - 1); }},
      {ActivationType::kSoftplus, false, 0, 0, [](double x) { return std::log1p(std::exp(x)); }},
      {ActivationType::kHardSigmoid, false, 0, 0, [](double x) { return std::max(0.0, std::min(1.0, 0.2 * x + 0.5)); }},
  };
  std::vector<float> xv;
  for (int i = -12; i <= 12; ++i) xv.push_back(0.25f * static_cast<float>(i));
  for (const Case& c : cases) {
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {1, static_cast<int64_t>(xv.size())});
    auto y = c.params ? net.AddActivation(x, c.type, c.alpha, c.beta, "act") : net.AddActivation(x, c.type, "act");
    ASSERT_TRUE(y.valid()) << net.status().ToString();
    ASSERT_TRUE(net.MarkOutput(y, "y").ok());
    std::vector<float> want;
    for (float v : xv) want.push_back(static_cast<float>(c.f(v)));
    SCOPED_TRACE(static_cast<int>(c.type));
    ExpectClose(BuildAndRun(net, {{"x", {{1, static_cast<int64_t>(xv.size())}, xv}}}), {1, static_cast<int64_t>(xv.size())}, want,
                1e-5f);
  }
}

TEST(Network, ElementWiseBroadcasts) {
  const std::vector<std::pair<ElementWiseOp, std::function<float(float, float)>>> ops = {
      {ElementWiseOp::kAdd, [](float a, float b) { return a + b; }},
      {ElementWiseOp::kSub, [](float a, float b) { return a - b; }},
      {ElementWiseOp::kMul, [](float a, float b) { return a * b; }},
      {ElementWiseOp::kDiv, [](float a, float b) { return a / b; }},
      {ElementWiseOp::kMax, [](float a, float b) { return std::max(a, b); }},
      {ElementWiseOp::kMin, [](float a, float b) { return std::min(a, b); }},
  };
  std::vector<float> av = Values(2 * 3 * 4, 1), bv = {1.5f, -2.0f, 0.75f, 3.0f};  // [2,3,4] op [4]
  for (const auto& [op, f] : ops) {
    NetworkDefinition net;
    auto a = net.AddInput("a", DataType::kFloat32, {2, 3, 4});
    auto b = net.AddConstant({4}, bv, "b");
    ASSERT_TRUE(net.MarkOutput(net.AddElementWise(a, b, op, "ew"), "y").ok());
    ASSERT_TRUE(net.status().ok()) << net.status().ToString();
    std::vector<float> want;
    for (size_t i = 0; i < av.size(); ++i) want.push_back(f(av[i], bv[i % 4]));
    ExpectClose(BuildAndRun(net, {{"a", {{2, 3, 4}, av}}}), {2, 3, 4}, want);
  }
}

TEST(Network, PoolingAndGlobalPooling) {
  const std::vector<int64_t> xd = {1, 2, 5, 5};
  std::vector<float> xv = Values(50, 9);
  for (PoolingType type : {PoolingType::kMax, PoolingType::kAverage}) {
    for (bool include_pad : {false, true}) {
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, xd);
      PoolParams p;
      p.strides = {2, 2};
      p.pads = {1, 1};
      p.count_include_pad = include_pad;
      ASSERT_TRUE(net.MarkOutput(net.AddPooling(x, type, {3, 3}, p, "pool"), "y").ok());
      ASSERT_TRUE(net.status().ok()) << net.status().ToString();
      std::vector<float> want;
      for (int c = 0; c < 2; ++c)
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) {
            float m = -INFINITY, s = 0;
            int n = 0;
            for (int u = 0; u < 3; ++u)
              for (int v = 0; v < 3; ++v) {
                const int yy = i * 2 - 1 + u, xx = j * 2 - 1 + v;
                if (yy < 0 || yy >= 5 || xx < 0 || xx >= 5) continue;
                const float e = xv[static_cast<size_t>((c * 5 + yy) * 5 + xx)];
                m = std::max(m, e);
                s += e;
                ++n;
              }
            want.push_back(type == PoolingType::kMax ? m : s / static_cast<float>(include_pad ? 9 : n));
          }
      ExpectClose(BuildAndRun(net, {{"x", {xd, xv}}}), {1, 2, 3, 3}, want);
    }
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, xd);
    ASSERT_TRUE(net.MarkOutput(net.AddGlobalPooling(x, type), "y").ok());
    std::vector<float> want;
    for (int c = 0; c < 2; ++c) {
      float m = -INFINITY, s = 0;
      for (int i = 0; i < 25; ++i) m = std::max(m, xv[static_cast<size_t>(c * 25 + i)]), s += xv[static_cast<size_t>(c * 25 + i)];
      want.push_back(type == PoolingType::kMax ? m : s / 25);
    }
    ExpectClose(BuildAndRun(net, {{"x", {xd, xv}}}), {1, 2, 1, 1}, want);
  }
}

TEST(Network, SoftmaxConcatReshapeFlattenTranspose) {
  std::vector<float> xv = Values(2 * 3 * 4, 2);
  {
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {2, 3, 4});
    ASSERT_TRUE(net.MarkOutput(net.AddSoftmax(x, 1, "sm"), "y").ok());
    std::vector<float> want(xv.size());
    for (int a = 0; a < 2; ++a)
      for (int c = 0; c < 4; ++c) {
        double s = 0;
        for (int b = 0; b < 3; ++b) s += std::exp(xv[static_cast<size_t>((a * 3 + b) * 4 + c)]);
        for (int b = 0; b < 3; ++b)
          want[static_cast<size_t>((a * 3 + b) * 4 + c)] = static_cast<float>(std::exp(xv[static_cast<size_t>((a * 3 + b) * 4 + c)]) / s);
      }
    ExpectClose(BuildAndRun(net, {{"x", {{2, 3, 4}, xv}}}), {2, 3, 4}, want);
  }
  {
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {2, 3, 4});
    std::vector<float> kv = Values(2 * 1 * 4, 5);
    auto k = net.AddConstant({2, 1, 4}, kv, "k");
    ASSERT_TRUE(net.MarkOutput(net.AddConcatenation({x, k}, 1, "cat"), "y").ok());
    std::vector<float> want;
    for (int a = 0; a < 2; ++a) {
      want.insert(want.end(), xv.begin() + a * 12, xv.begin() + a * 12 + 12);
      want.insert(want.end(), kv.begin() + a * 4, kv.begin() + a * 4 + 4);
    }
    ExpectClose(BuildAndRun(net, {{"x", {{2, 3, 4}, xv}}}), {2, 4, 4}, want);
  }
  {
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {2, 3, 4});
    auto r = net.AddReshape(x, {0, -1, 2}, "reshape");  // -> [2, 6, 2]
    auto t = net.AddTranspose(r, {2, 0, 1}, "transpose");  // -> [2, 2, 6]
    ASSERT_TRUE(net.MarkOutput(net.AddFlatten(t, 2, "flatten"), "y").ok());  // -> [4, 6]
    ASSERT_TRUE(net.status().ok()) << net.status().ToString();
    std::vector<float> want(24);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        for (int k = 0; k < 6; ++k)
          want[static_cast<size_t>((i * 2 + j) * 6 + k)] = xv[static_cast<size_t>((j * 6 + k) * 2 + i)];
    ExpectClose(BuildAndRun(net, {{"x", {{2, 3, 4}, xv}}}), {4, 6}, want);
  }
}

TEST(Network, BatchNormScaleLayerNorm) {
  const std::vector<int64_t> xd = {2, 3, 2, 2};
  std::vector<float> xv = Values(24, 3);
  std::vector<float> scale = {0.5f, -1.0f, 2.0f}, bias = {0.1f, 0.2f, -0.3f}, mean = {0.05f, -0.1f, 0.2f},
                     var = {1.0f, 0.25f, 4.0f};
  {
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, xd);
    ASSERT_TRUE(net.MarkOutput(net.AddBatchNormalization(x, scale, bias, mean, var, 1e-3f, "bn"), "y").ok());
    std::vector<float> want;
    for (size_t i = 0; i < xv.size(); ++i) {
      const size_t c = (i / 4) % 3;
      want.push_back(static_cast<float>((xv[i] - mean[c]) / std::sqrt(double(var[c]) + 1e-3) * scale[c] + bias[c]));
    }
    ExpectClose(BuildAndRun(net, {{"x", {xd, xv}}}), xd, want);
  }
  {
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, xd);
    ASSERT_TRUE(net.MarkOutput(net.AddScale(x, scale, bias, "scale"), "y").ok());
    std::vector<float> want;
    for (size_t i = 0; i < xv.size(); ++i) want.push_back(xv[i] * scale[(i / 4) % 3] + bias[(i / 4) % 3]);
    ExpectClose(BuildAndRun(net, {{"x", {xd, xv}}}), xd, want);
  }
  {
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, xd);
    std::vector<float> g = Values(4, 8), b = Values(4, 9);
    ASSERT_TRUE(net.MarkOutput(net.AddLayerNormalization(x, g, b, 2, 1e-5f, "ln"), "y").ok());  // over [2, 2]
    ASSERT_TRUE(net.status().ok()) << net.status().ToString();
    std::vector<float> want;
    for (size_t r = 0; r < 6; ++r) {
      double m = 0, v = 0;
      for (size_t k = 0; k < 4; ++k) m += xv[r * 4 + k] / 4.0;
      for (size_t k = 0; k < 4; ++k) v += (xv[r * 4 + k] - m) * (xv[r * 4 + k] - m) / 4.0;
      for (size_t k = 0; k < 4; ++k) want.push_back(static_cast<float>((xv[r * 4 + k] - m) / std::sqrt(v + 1e-5) * g[k] + b[k]));
    }
    ExpectClose(BuildAndRun(net, {{"x", {xd, xv}}}), xd, want, 1e-4f);
  }
}

TEST(Network, Reduce) {
  std::vector<float> xv = Values(2 * 3 * 4, 6);
  struct Case {
    ReduceOp op;
    std::function<double(double, float)> step;
    double init;
    std::function<double(double, int)> finish;
  };
  const std::vector<Case> cases = {
      {ReduceOp::kSum, [](double a, float x) { return a + x; }, 0, [](double a, int) { return a; }},
      {ReduceOp::kMean, [](double a, float x) { return a + x; }, 0, [](double a, int n) { return a / n; }},
      {ReduceOp::kMax, [](double a, float x) { return std::max(a, double(x)); }, -1e30, [](double a, int) { return a; }},
      {ReduceOp::kMin, [](double a, float x) { return std::min(a, double(x)); }, 1e30, [](double a, int) { return a; }},
      {ReduceOp::kProd, [](double a, float x) { return a * x; }, 1, [](double a, int) { return a; }},
      {ReduceOp::kSumSquare, [](double a, float x) { return a + double(x) * x; }, 0, [](double a, int) { return a; }},
      {ReduceOp::kL2, [](double a, float x) { return a + double(x) * x; }, 0, [](double a, int) { return std::sqrt(a); }},
  };
  for (const Case& c : cases) {
    // Over axis 1 of [2, 3, 4], keeping it.
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {2, 3, 4});
    ASSERT_TRUE(net.MarkOutput(net.AddReduce(x, c.op, {1}, true, "r"), "y").ok());
    std::vector<float> want;
    for (int a = 0; a < 2; ++a)
      for (int k = 0; k < 4; ++k) {
        double acc = c.init;
        for (int b = 0; b < 3; ++b) acc = c.step(acc, xv[static_cast<size_t>((a * 3 + b) * 4 + k)]);
        want.push_back(static_cast<float>(c.finish(acc, 3)));
      }
    SCOPED_TRACE(static_cast<int>(c.op));
    ExpectClose(BuildAndRun(net, {{"x", {{2, 3, 4}, xv}}}), {2, 1, 4}, want);
  }
  NetworkDefinition net;  // every axis, not kept
  auto x = net.AddInput("x", DataType::kFloat32, {2, 3, 4});
  ASSERT_TRUE(net.MarkOutput(net.AddReduce(x, ReduceOp::kSum, {}, false), "y").ok());
  double s = 0;
  for (float v : xv) s += v;
  ExpectClose(BuildAndRun(net, {{"x", {{2, 3, 4}, xv}}}), {}, {static_cast<float>(s)});
}

TEST(Network, DynamicBatchIsFixedAtBuild) {
  NetworkDefinition net;
  auto x = net.AddInput("x", DataType::kFloat32, {-1, 4});
  std::vector<float> w = Values(8, 1);
  auto y = net.AddFullyConnected(x, 2, w, {}, "fc");
  ASSERT_TRUE(net.MarkOutput(y, "y").ok());
  auto info = net.GetTensorInfo(y);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->shape, (std::vector<int64_t>{-1, 2}));
  BuildOptions opts;
  opts.input_shapes = {{"x", {3, 4}}};
  auto engine = BuildFromNetwork(net, opts);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_EQ((*engine)->outputs()[0].shape, (std::vector<int64_t>{3, 2}));
}

// ---- errors ----

TEST(NetworkErrors, MismatchedWeightsNameTheLayer) {
  NetworkDefinition net;
  auto x = net.AddInput("input", DataType::kFloat32, {1, 3, 32, 32});
  std::vector<float> w(27), b(16);
  auto c = net.AddConvolution(x, 16, {3, 3}, w, b, {}, "conv2");
  EXPECT_FALSE(c.valid());
  const std::string want = "layer 'conv2' (Convolution): weights have 27 elements, expected 432 (16x3x3x3)";
  EXPECT_EQ(net.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(net.status().message(), want);
  // A later layer on the failed one fails too, but the first error stays the one reported.
  auto r = net.AddActivation(c, ActivationType::kRelu, "relu");
  EXPECT_FALSE(r.valid());
  EXPECT_FALSE(net.MarkOutput(r, "y").ok());
  EXPECT_EQ(net.status().message(), want);
  auto engine = BuildFromNetwork(net);
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().message(), want);

  NetworkDefinition net2;
  x = net2.AddInput("input", DataType::kFloat32, {1, 3, 8, 8});
  std::vector<float> w2(16 * 27), b2(15);
  EXPECT_FALSE(net2.AddConvolution(x, 16, {3, 3}, w2, b2).valid());
  EXPECT_EQ(net2.status().message(), "layer 'Convolution_0' (Convolution): bias has 15 elements, expected 16 (16)");
  NetworkDefinition net3;
  x = net3.AddInput("x", DataType::kFloat32, {2, 5});
  std::vector<float> w3(9);
  EXPECT_FALSE(net3.AddFullyConnected(x, 2, w3, {}, "fc").valid());
  EXPECT_EQ(net3.status().message(), "layer 'fc' (FullyConnected): weights have 9 elements, expected 10 (2x5)");
}

TEST(NetworkErrors, BadHandles) {
  NetworkDefinition a, b;
  auto xa = a.AddInput("x", DataType::kFloat32, {1, 4});
  auto xb = b.AddInput("x", DataType::kFloat32, {1, 4});
  EXPECT_FALSE(a.AddElementWise(xa, xb, ElementWiseOp::kAdd, "add").valid());
  EXPECT_NE(a.status().message().find("layer 'add' (ElementWise): input 1 is a tensor of another NetworkDefinition"),
            std::string::npos)
      << a.status().message();
  EXPECT_FALSE(b.MarkOutput(xa).ok());
  EXPECT_FALSE(b.GetTensorInfo(xa).ok());

  NetworkDefinition c;
  c.AddInput("x", DataType::kFloat32, {1, 4});
  EXPECT_FALSE(c.AddActivation(NetworkTensor(), ActivationType::kRelu, "relu").valid());
  EXPECT_NE(c.status().message().find("layer 'relu' (Activation): input 0 is an invalid tensor"), std::string::npos)
      << c.status().message();
  EXPECT_FALSE(c.GetTensorInfo(NetworkTensor()).ok());
}

TEST(NetworkErrors, OutputsMustBeMarked) {
  NetworkDefinition net;
  auto x = net.AddInput("x", DataType::kFloat32, {1, 4});
  net.AddActivation(x, ActivationType::kRelu, "relu");
  ASSERT_TRUE(net.status().ok());
  auto engine = BuildFromNetwork(net);
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(engine.status().message().find("MarkOutput"), std::string::npos);
  // An input is not a layer output; one tensor is marked once.
  NetworkDefinition net2;
  x = net2.AddInput("x", DataType::kFloat32, {1, 4});
  EXPECT_FALSE(net2.MarkOutput(x, "y").ok());
  NetworkDefinition net3;
  x = net3.AddInput("x", DataType::kFloat32, {1, 4});
  auto r = net3.AddActivation(x, ActivationType::kRelu);
  EXPECT_TRUE(net3.MarkOutput(r, "y").ok());
  EXPECT_FALSE(net3.MarkOutput(r, "z").ok());
  NetworkDefinition net4;  // an output name may not collide with another tensor's
  x = net4.AddInput("x", DataType::kFloat32, {1, 4});
  EXPECT_FALSE(net4.MarkOutput(net4.AddActivation(x, ActivationType::kRelu), "x").ok());
}

TEST(NetworkErrors, ShapeAndParameterErrorsNameTheLayer) {
  auto first_error = [](const std::function<void(NetworkDefinition&, NetworkTensor)>& f) {
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {2, 3, 4, 4});
    f(net, x);
    return net.status().message();
  };
  auto has = [](const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos ? ::testing::AssertionSuccess()
                                               : ::testing::AssertionFailure() << "'" << msg << "' lacks '" << part << "'";
  };
  EXPECT_TRUE(has(first_error([](auto& n, auto x) {
                    auto k = n.AddConstant({5}, Values(5), "k");
                    n.AddElementWise(x, k, ElementWiseOp::kAdd, "add");
                  }),
                  "layer 'add' (ElementWise): Add:"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddConcatenation({x, n.AddReshape(x, {2, 3, 16}, "r")}, 1, "cat"); }),
                  "layer 'cat' (Concatenation)"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddTranspose(x, {0, 1, 1, 2}, "t"); }),
                  "layer 't' (Transpose): perm [0x1x1x2] is not a permutation"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddReshape(x, {5, -1}, "r"); }), "layer 'r' (Reshape)"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddActivation(x, ActivationType::kClip, "clip"); }),
                  "layer 'clip' (Activation): Clip needs its bounds"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddActivation(x, ActivationType::kRelu, 0.5f, 0.0f, "relu"); }),
                  "layer 'relu' (Activation): Relu takes no"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddPooling(x, PoolingType::kMax, {3}, {}, "pool"); }),
                  "layer 'pool' (Pooling): input of shape [2,3,4,4] must have rank 3"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) {
                    n.AddConvolution(x, 4, {3, 3}, std::vector<float>(36), {}, ConvParams{.groups = 2}, "conv");
                  }),
                  "layer 'conv' (Convolution): groups = 2 must be >= 1 and divide both the input channels (3)"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) {
                    n.AddActivation(x, ActivationType::kRelu, "a");
                    n.AddActivation(x, ActivationType::kRelu, "a");
                  }),
                  "layer 'a' (Activation): the name is already used"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddInput("x", DataType::kFloat32, {1}); }),
                  "input 'x': the name is already used"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddSoftmax(x, 4, "sm"); }), "layer 'sm' (Softmax)"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddLayerNormalization(x, Values(3), {}, -1, 1e-5f, "ln"); }),
                  "layer 'ln' (LayerNormalization): scale has 3 elements, expected 4 (4)"));
  EXPECT_TRUE(has(first_error([](auto& n, auto x) { n.AddConstant({2, 2}, Values(3), "k"); }),
                  "layer 'k' (Constant): values have 3 elements, expected 4 (2x2)"));
}

// ---- build, save, load ----

TEST(Network, BuildSaveLoadGivesTheSameOutputs) {
  NetworkDefinition net;
  auto x = net.AddInput("input", DataType::kFloat32, {1, 3, 12, 12});
  auto c1 = net.AddConvolution(x, 4, {3, 3}, Values(4 * 3 * 9, 1), Values(4, 2), {.pads = {1, 1}}, "conv1");
  auto bn = net.AddBatchNormalization(c1, Values(4, 3), Values(4, 4), Values(4, 5), std::vector<float>(4, 0.5f), 1e-5f, "bn1");
  auto r1 = net.AddActivation(bn, ActivationType::kRelu, "relu1");
  auto p1 = net.AddPooling(r1, PoolingType::kMax, {2, 2}, {}, "pool1");
  auto c2 = net.AddConvolution(p1, 4, {3, 3}, Values(4 * 4 * 9, 6), {}, {.pads = {1, 1}}, "conv2");
  auto res = net.AddElementWise(c2, p1, ElementWiseOp::kAdd, "residual");
  auto s = net.AddActivation(res, ActivationType::kSilu, "silu");
  auto g = net.AddGlobalPooling(s, PoolingType::kAverage, "gap");
  auto f = net.AddFlatten(g, 1, "flatten");
  auto fc = net.AddFullyConnected(f, 5, Values(20, 7), Values(5, 8), "fc");
  auto sm = net.AddSoftmax(fc, -1, "softmax");
  ASSERT_TRUE(net.MarkOutput(sm, "probs").ok());
  ASSERT_TRUE(net.MarkOutput(fc, "logits").ok());
  ASSERT_TRUE(net.status().ok()) << net.status().ToString();
  EXPECT_EQ(net.num_layers(), 11);

  // Kernel choice is timed; the timing cache makes a second build choose the same kernels.
  const std::string cache = ::testing::TempDir() + "/network_test.timing";
  std::remove(cache.c_str());
  BuildOptions cached;
  cached.timing_cache = cache;
  auto built = BuildFromNetwork(net, cached);
  BuildOptions no_opt;
  no_opt.optimize = false;
  auto unoptimized = BuildFromNetwork(net, no_opt);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  ASSERT_TRUE(unoptimized.ok()) << unoptimized.status().ToString();
  ASSERT_EQ((*built)->outputs().size(), 2u);
  EXPECT_EQ((*built)->outputs()[0].name, "probs");
  EXPECT_EQ((*built)->outputs()[1].name, "logits");
  const std::string path = ::testing::TempDir() + "/network_test.plan";
  ASSERT_TRUE(SavePlan(**built, path).ok());
  auto loaded = Engine::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  std::remove(path.c_str());

  std::vector<float> xv = Values(3 * 12 * 12, 9);
  const std::map<std::string, HostTensor> in = {{"input", HostTensor::Wrap(xv.data(), {1, 3, 12, 12})}};
  auto a = (*built)->Infer(in);
  auto b = (*loaded)->Infer(in);
  auto u = (*unoptimized)->Infer(in);
  ASSERT_TRUE(a.ok() && b.ok() && u.ok());
  for (const char* name : {"probs", "logits"}) {
    const HostTensor &ta = a->at(name), &tb = b->at(name), &tu = u->at(name);
    ASSERT_EQ(ta.nbytes(), tb.nbytes());
    EXPECT_EQ(std::memcmp(ta.data(), tb.data(), ta.nbytes()), 0) << name;  // the plan runs the same graph
    for (int64_t i = 0; i < ta.numel(); ++i)  // the optimizer keeps the math
      EXPECT_NEAR(ta.data_as<float>()[i], tu.data_as<float>()[i], 1e-5) << name << " " << i;
  }
  // Building does not change the network: a second build (same timings) gives the same outputs.
  auto again = BuildFromNetwork(net, cached);
  std::remove(cache.c_str());
  ASSERT_TRUE(again.ok());
  auto c = (*again)->Infer(in);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(std::memcmp(a->at("probs").data(), c->at("probs").data(), a->at("probs").nbytes()), 0);
}

}  // namespace
}  // namespace kiln
