// Randomized differential tests of the fast CPU backend (src/backends/cpu: oneDNN
// primitives with fused post-ops, the in-place residual sum, horizontal fusion splits,
// layout reorders, and the reference-kernel fallback) against the reference backend.
//
// Every case builds one NetworkDefinition twice: backend "cpu" with the optimizer on (it
// folds BN into convs, fuses bias/activation/residual-add epilogues and merges sibling
// layers, which the CPU backend lowers to oneDNN post-ops and split reorders), and backend
// "ref" with the optimizer off (the oracle of ONNX semantics). Both run on the same seeded
// random inputs and every output element must satisfy |cpu - ref| <= tol * max(1, |ref|),
// tol = 1e-4 (FP32). The CPU engine is also run a second time through the same
// ExecutionContext (the arena is reused: a result must not depend on what a previous run
// left there) and must leave its input buffers untouched.
//
// CPU engines run on one thread (see CheckOptions::threads) except in CpuBackend.MultiThreaded.
// KILN_TEST_PRINT_STEPS=1 prints every CPU engine's steps (kernel, oneDNN implementation,
// tactic), which every failure message also lists.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "api/engine_internal.h"
#include "api/optimize.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/program.h"
#include "builder/memory_planner.h"
#include "passes/pass_test_util.h"
#include "plan/plan_reader.h"
#include "builder/plan_writer.h"
#include "kiln/kiln.h"
#include "kiln/network.h"

namespace kiln {
namespace {

constexpr float kTol = 1e-4f;
// Winograd convolutions (the CPU backend's alternative tactic for 3x3 / stride 1 / group 1
// convs, picked by timing at build) transform inputs and weights with inexact constants:
// their results differ from a direct convolution by more than FP32 rounding, so a case
// whose CPU engine chose "winograd" for some layer is compared with this looser bound.
constexpr float kWinogradTol = 1e-3f;

std::string DimsStr(const std::vector<int64_t>& d) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < d.size(); ++i) os << (i ? "," : "") << d[i];
  os << "]";
  return os.str();
}

int64_t Numel(const std::vector<int64_t>& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

// Deterministic random values (std::mt19937 with a fixed seed per case).
class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}
  float U(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng_); }
  int64_t I(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }  // inclusive
  bool B() { return I(0, 1) == 1; }
  std::vector<float> Vec(int64_t n, float lo, float hi) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = U(lo, hi);
    return v;
  }
  template <typename T>
  T Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(I(0, static_cast<int64_t>(v.size()) - 1))];
  }

 private:
  std::mt19937 rng_;
};

std::vector<int64_t> DimsOf(const NetworkDefinition& net, NetworkTensor t) {
  auto info = net.GetTensorInfo(t);
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  return info.ok() ? info->shape : std::vector<int64_t>{};
}

// Layer helpers with random weights of a scale that keeps activations O(1).
NetworkTensor Conv(NetworkDefinition& net, Gen& g, NetworkTensor x, int64_t oc, std::vector<int64_t> kernel,
                   ConvParams p = {}, bool bias = true, const std::string& name = "", float wscale = 1.0f) {
  const std::vector<int64_t> xd = DimsOf(net, x);
  const int64_t cg = xd.size() > 1 ? xd[1] / std::max<int64_t>(p.groups, 1) : 1;
  const int64_t fan_in = cg * Numel(kernel);
  const float s = wscale * std::sqrt(3.0f / static_cast<float>(std::max<int64_t>(fan_in, 1)));
  std::vector<float> w = g.Vec(oc * fan_in, -s, s);
  std::vector<float> b = bias ? g.Vec(oc, -0.5f, 0.5f) : std::vector<float>{};
  return net.AddConvolution(x, oc, kernel, w, b, p, name);
}

ConvParams Geo(std::vector<int64_t> strides, std::vector<int64_t> pads, std::vector<int64_t> dilations = {},
               int64_t groups = 1) {
  ConvParams p;
  p.strides = std::move(strides);
  p.pads = std::move(pads);
  p.dilations = std::move(dilations);
  p.groups = groups;
  return p;
}

NetworkTensor BatchNorm(NetworkDefinition& net, Gen& g, NetworkTensor x, const std::string& name = "") {
  const int64_t c = DimsOf(net, x)[1];
  return net.AddBatchNormalization(x, g.Vec(c, 0.5f, 1.5f), g.Vec(c, -0.5f, 0.5f), g.Vec(c, -0.5f, 0.5f),
                                   g.Vec(c, 0.5f, 2.0f), 1e-5f, name);
}

NetworkTensor FC(NetworkDefinition& net, Gen& g, NetworkTensor x, int64_t out, bool bias = true,
                 const std::string& name = "") {
  const int64_t k = DimsOf(net, x).back();
  const float s = std::sqrt(3.0f / static_cast<float>(k));
  std::vector<float> w = g.Vec(out * k, -s, s);
  std::vector<float> b = bias ? g.Vec(out, -0.5f, 0.5f) : std::vector<float>{};
  return net.AddFullyConnected(x, out, w, b, name);
}

NetworkTensor Const(NetworkDefinition& net, Gen& g, const std::vector<int64_t>& dims, float lo, float hi,
                    const std::string& name = "") {
  std::vector<float> v = g.Vec(Numel(dims), lo, hi);
  return net.AddConstant(dims, v, name);
}

// A float tensor of `dims` with values uniform in [-0.5, 0.5).
Tensor UniformTensor(std::mt19937& rng, std::vector<int64_t> dims) {
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  Tensor t(DType::kFloat32, std::move(dims));
  for (float& f : t.span<float>()) f = u(rng);
  return t;
}

// The reference backend's engine for (a copy of) g.
StatusOr<std::shared_ptr<const Engine>> ReferenceEngine(const Graph& g) {
  BuildOptions ref_options;
  ref_options.backend = Backend::kRef;
  return BuildEngineFromGraph(std::make_shared<Graph>(g), ref_options);
}

std::string StepsText(const Engine& e) {
  const cpu::Program* p = EngineCpuProgram(e);
  if (p == nullptr) return "  (no CPU program: " + EngineBackendSummary(e) + ")\n";
  std::ostringstream os;
  for (const cpu::StepInfo& s : cpu::Steps(*p))
    os << "  " << s.name << " [" << s.op << "] " << s.impl << (s.tactic.empty() ? "" : " tactic=" + s.tactic) << "\n";
  return os.str();
}

bool ChoseWinograd(const Engine& e) {
  const cpu::Program* p = EngineCpuProgram(e);
  if (p == nullptr) return false;
  for (const cpu::StepInfo& s : cpu::Steps(*p))
    if (s.tactic == "winograd") return true;
  return false;
}

int CountSteps(const Engine& e, const std::string& op, const std::string& impl_prefix = "") {
  const cpu::Program* p = EngineCpuProgram(e);
  if (p == nullptr) return 0;
  int n = 0;
  for (const cpu::StepInfo& s : cpu::Steps(*p))
    if ((op.empty() || s.op == op) && s.impl.compare(0, impl_prefix.size(), impl_prefix) == 0) ++n;
  return n;
}

std::string IndexStr(int64_t flat, const std::vector<int64_t>& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    const int64_t d = std::max<int64_t>(shape[i], 1);
    idx[i] = flat % d;
    flat /= d;
  }
  return DimsStr(idx);
}

// Returns "" when `got` matches `want` within tol, else a description of the mismatches.
std::string Compare(const HostTensor& got, const HostTensor& want, float tol) {
  std::ostringstream os;
  if (got.dtype() != want.dtype() || got.shape() != want.shape()) {
    os << "dtype/shape " << DataTypeName(got.dtype()) << DimsStr(got.shape()) << ", expected "
       << DataTypeName(want.dtype()) << DimsStr(want.shape());
    return os.str();
  }
  if (want.dtype() != DataType::kFloat32) {
    if (std::memcmp(got.data(), want.data(), want.nbytes()) != 0) return "non-float output differs";
    return "";
  }
  const float* a = got.data_as<float>();
  const float* b = want.data_as<float>();
  int64_t bad = 0;
  double worst = 0;
  int64_t worst_i = 0;
  std::ostringstream shown;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float x = a[i], y = b[i];
    const bool ok = (std::isnan(x) && std::isnan(y)) || x == y ||
                    std::fabs(double(x) - double(y)) <= double(tol) * std::max(1.0, std::fabs(double(y)));
    if (ok) continue;
    const double err = std::isnan(x) || std::isnan(y) ? INFINITY : std::fabs(double(x) - double(y));
    if (bad < 6) shown << "    at " << IndexStr(i, want.shape()) << " (flat " << i << "): cpu " << x << ", ref " << y << "\n";
    if (err > worst || bad == 0) {
      worst = err;
      worst_i = i;
    }
    ++bad;
  }
  if (bad == 0) return "";
  os.precision(8);
  os << bad << " of " << want.numel() << " elements differ beyond " << tol << " * max(1, |ref|); worst at "
     << IndexStr(worst_i, want.shape()) << ": cpu " << a[worst_i] << ", ref " << b[worst_i] << " (|diff| " << worst
     << ")\n"
     << shown.str();
  return os.str();
}

struct CheckOptions {
  // Threads of the CPU engine. 1 by default: oneDNN's results do not depend on it for these
  // layer sizes, and OpenMP teams on a loaded machine cost milliseconds per primitive.
  // CpuBackend.MultiThreaded covers all cores (and leaves OpenMP at that team size).
  int threads = 1;
  float input_lo = -1.0f, input_hi = 1.0f;
  // Extra per-input ranges (e.g. positive values for a Pow base).
  std::map<std::string, std::pair<float, float>> ranges;
};

// Builds `net` on both backends, runs them on seeded random inputs and compares every
// output. `what` names the case in every failure message. Returns the CPU engine (or null).
std::shared_ptr<const Engine> ExpectMatchesReference(const NetworkDefinition& net, const std::string& what,
                                                     uint32_t seed, const CheckOptions& co = {}) {
  SCOPED_TRACE(what);
  if (!net.status().ok()) {
    ADD_FAILURE() << what << ": network definition failed: " << net.status().ToString();
    return nullptr;
  }
  BuildOptions cpu_opts;
  cpu_opts.backend = Backend::kCpu;
  cpu_opts.optimize = true;
  cpu_opts.threads = co.threads;
  BuildOptions ref_opts;
  ref_opts.backend = Backend::kRef;
  ref_opts.optimize = false;
  auto cpu = BuildFromNetwork(net, cpu_opts);
  auto ref = BuildFromNetwork(net, ref_opts);
  if (!cpu.ok() || !ref.ok()) {
    ADD_FAILURE() << what << ": build failed: cpu " << cpu.status().ToString() << "; ref " << ref.status().ToString();
    return nullptr;
  }
  const Engine& ce = **cpu;
  const Engine& re = **ref;
  if (EngineCpuProgram(ce) == nullptr) {
    ADD_FAILURE() << what << ": the cpu engine does not run the CPU backend: " << EngineBackendSummary(ce);
    return nullptr;
  }

  // Seeded inputs, in the reference engine's input order.
  Gen g(seed * 7919u + 17u);
  std::map<std::string, HostTensor> inputs;
  std::map<std::string, std::vector<float>> pristine;
  std::ostringstream input_desc;
  for (const TensorInfo& in : re.inputs()) {
    EXPECT_EQ(in.dtype, DataType::kFloat32) << in.name;
    float lo = co.input_lo, hi = co.input_hi;
    auto r = co.ranges.find(in.name);
    if (r != co.ranges.end()) std::tie(lo, hi) = r->second;
    std::vector<float> v = g.Vec(Numel(in.shape), lo, hi);
    inputs.emplace(in.name, HostTensor::Copy(DataType::kFloat32, in.shape, v));
    pristine.emplace(in.name, std::move(v));
    input_desc << " " << in.name << DimsStr(in.shape);
  }
  const std::string header = what + " (seed " + std::to_string(seed) + ", inputs" + input_desc.str() + ")";

  auto want = re.Infer(inputs);
  if (!want.ok()) {
    ADD_FAILURE() << header << ": reference run failed: " << want.status().ToString();
    return nullptr;
  }
  auto ctx = ce.CreateContext();
  for (const auto& [name, t] : inputs) {
    Status st = ctx->SetInput(name, t);
    if (!st.ok()) {
      ADD_FAILURE() << header << ": SetInput failed: " << st.ToString();
      return nullptr;
    }
  }
  const float tol = ChoseWinograd(ce) ? kWinogradTol : kTol;
  if (std::getenv("KILN_TEST_PRINT_STEPS") != nullptr) std::printf("%s:\n%s", what.c_str(), StepsText(ce).c_str());
  std::vector<std::vector<float>> first_run;
  for (int run = 0; run < 2; ++run) {
    Status st = ctx->Run();
    if (!st.ok()) {
      ADD_FAILURE() << header << ": cpu run " << run << " failed: " << st.ToString() << "\nCPU steps:\n" << StepsText(ce);
      return nullptr;
    }
    for (size_t o = 0; o < ce.outputs().size(); ++o) {
      const std::string& name = ce.outputs()[o].name;
      auto got = ctx->Output(static_cast<int>(o));
      if (!got.ok() || !want->count(name)) {
        ADD_FAILURE() << header << ": output '" << name << "' missing: " << got.status().ToString();
        continue;
      }
      if (run == 0) {
        std::string diff = Compare(*got, want->at(name), tol);
        if (!diff.empty())
          ADD_FAILURE() << header << ": output '" << name << "' " << DimsStr(want->at(name).shape()) << ": " << diff
                        << "CPU steps:\n"
                        << StepsText(ce);
        const float* p = got->data_as<float>();
        first_run.emplace_back(p, p + got->numel());
      } else if (o < first_run.size()) {
        const float* p = got->data_as<float>();
        if (!std::equal(first_run[o].begin(), first_run[o].end(), p,
                        [](float x, float y) { return x == y || (std::isnan(x) && std::isnan(y)); }))
          ADD_FAILURE() << header << ": output '" << name
                        << "' differs between two runs of one ExecutionContext\nCPU steps:\n"
                        << StepsText(ce);
      }
    }
  }
  for (const auto& [name, t] : inputs) {
    const std::vector<float>& v = pristine.at(name);
    if (!std::equal(v.begin(), v.end(), t.data_as<float>()))
      ADD_FAILURE() << header << ": the cpu engine modified input '" << name << "'\nCPU steps:\n" << StepsText(ce);
  }
  return *cpu;
}

// ---------------------------------------------------------------------------------------
// Convolution geometry.

struct ConvCase {
  int64_t n, c, h, w, oc, kh, kw, sh, sw, dh, dw;
  std::vector<int64_t> pads;  // {} none, {ph, pw} symmetric, or {top, left, bottom, right}
  int64_t groups;             // 0: depthwise (groups = c)
  bool bias;

  int64_t G() const { return groups == 0 ? c : groups; }
  std::string Str() const {
    std::ostringstream os;
    os << "conv x[" << n << "," << c << "," << h << "," << w << "] oc " << oc << " k " << kh << "x" << kw << " s " << sh
       << "," << sw << " d " << dh << "," << dw << " pads " << DimsStr(pads) << " groups " << G()
       << (groups == 0 ? " (depthwise)" : "") << (bias ? " bias" : " no-bias");
    return os.str();
  }
  bool Valid() const {
    std::vector<int64_t> p = pads;
    if (p.empty()) p = {0, 0, 0, 0};
    if (p.size() == 2) p = {p[0], p[1], p[0], p[1]};
    const int64_t eh = (kh - 1) * dh + 1, ew = (kw - 1) * dw + 1;
    return h + p[0] + p[2] >= eh && w + p[1] + p[3] >= ew && c % G() == 0 && oc % G() == 0;
  }
};

void CheckConvCase(const ConvCase& cc, uint32_t seed) {
  ASSERT_TRUE(cc.Valid()) << cc.Str();
  NetworkDefinition net;
  Gen g(seed);
  auto x = net.AddInput("x", DataType::kFloat32, {cc.n, cc.c, cc.h, cc.w});
  auto y = Conv(net, g, x, cc.oc, {cc.kh, cc.kw}, Geo({cc.sh, cc.sw}, cc.pads, {cc.dh, cc.dw}, cc.G()), cc.bias, "conv");
  ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << cc.Str() << ": " << net.status().ToString();
  ExpectMatchesReference(net, cc.Str(), seed);
}

TEST(CpuBackend, ConvolutionGeometry) {
  // n, c, h, w, oc, kh, kw, sh, sw, dh, dw, pads, groups (0 = depthwise), bias
  const std::vector<ConvCase> cases = {
      {1, 3, 7, 9, 8, 3, 3, 1, 1, 1, 1, {1, 1}, 1, true},             // odd spatial, symmetric pads
      {3, 4, 13, 13, 6, 5, 5, 2, 2, 1, 1, {2, 1, 1, 2}, 1, false},    // 5x5 stride 2, asymmetric pads, batch 3
      {1, 8, 13, 13, 8, 3, 3, 1, 1, 2, 2, {2, 2}, 1, true},           // dilation 2
      {1, 16, 7, 9, 16, 3, 3, 1, 1, 1, 1, {1, 1}, 1, true},           // Winograd-shaped
      {3, 16, 13, 13, 32, 3, 3, 1, 1, 1, 1, {0, 1, 1, 0}, 1, false},  // Winograd-shaped, asymmetric pads
      {3, 16, 9, 7, 32, 1, 1, 1, 1, 1, 1, {}, 1, true},               // 1x1
      {1, 16, 13, 13, 32, 1, 1, 2, 2, 1, 1, {}, 1, false},            // 1x1 stride 2, odd input
      {1, 16, 8, 8, 24, 1, 1, 2, 2, 1, 1, {}, 1, true},               // 1x1 stride 2, even input
      {1, 16, 8, 10, 16, 3, 3, 2, 2, 1, 1, {1, 1}, 1, true},          // 3x3 stride 2 on even input
      {1, 8, 7, 9, 12, 3, 3, 2, 1, 1, 1, {0, 1, 1, 0}, 2, true},      // groups 2, mixed strides
      {3, 8, 13, 13, 8, 3, 3, 2, 2, 2, 2, {1, 2, 2, 1}, 2, true},     // groups 2, stride 2, dilation 2
      {1, 16, 13, 13, 16, 3, 3, 1, 1, 1, 1, {1, 1}, 0, true},         // depthwise
      {3, 32, 7, 9, 32, 3, 3, 2, 2, 1, 1, {1, 1}, 0, false},          // depthwise stride 2, batch 3
      {1, 8, 13, 13, 8, 5, 5, 1, 1, 2, 2, {4, 4}, 0, true},           // depthwise 5x5 dilation 2
      {1, 8, 9, 7, 16, 3, 3, 1, 1, 1, 1, {1, 1}, 0, true},            // depthwise, channel multiplier 2
      {1, 6, 7, 9, 10, 1, 5, 1, 1, 1, 1, {0, 2, 0, 2}, 1, true},      // 1x5 kernel
      {1, 4, 9, 7, 4, 5, 1, 1, 2, 1, 1, {2, 0, 2, 0}, 1, false},      // 5x1 kernel, stride (1,2)
      {1, 4, 7, 9, 5, 3, 3, 1, 1, 1, 1, {2, 0, 0, 2}, 1, true},       // one-sided pads
      {3, 5, 13, 13, 7, 5, 5, 1, 1, 1, 1, {2, 2}, 1, true},           // odd channel counts
      {1, 32, 13, 13, 48, 5, 5, 2, 2, 1, 1, {2, 2}, 1, true},         // wider
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].Str());
    CheckConvCase(cases[i], static_cast<uint32_t>(100 + i));
  }
}

TEST(CpuBackend, ConvolutionRandomGeometry) {
  for (uint32_t seed = 1; seed <= 24; ++seed) {
    Gen g(seed);
    ConvCase cc;
    do {
      cc.n = g.Pick<int64_t>({1, 1, 3});
      cc.c = g.Pick<int64_t>({1, 3, 4, 8, 16, 24});
      cc.h = g.I(5, 14);
      cc.w = g.I(5, 14);
      cc.kh = cc.kw = g.Pick<int64_t>({1, 3, 3, 5});
      if (g.I(0, 5) == 0) cc.kw = g.Pick<int64_t>({1, 3});
      cc.sh = g.Pick<int64_t>({1, 2});
      cc.sw = g.B() ? cc.sh : g.Pick<int64_t>({1, 2});
      cc.dh = g.Pick<int64_t>({1, 1, 2});
      cc.dw = g.B() ? cc.dh : g.Pick<int64_t>({1, 2});
      const int mode = static_cast<int>(g.I(0, 2));
      if (mode == 0) cc.pads = {};
      if (mode == 1) cc.pads = {g.I(0, cc.kh / 2 * cc.dh), g.I(0, cc.kw / 2 * cc.dw)};
      if (mode == 2) cc.pads = {g.I(0, cc.kh - 1), g.I(0, cc.kw - 1), g.I(0, cc.kh - 1), g.I(0, cc.kw - 1)};
      const int gm = static_cast<int>(g.I(0, 3));
      cc.groups = gm == 0 ? 0 : (gm == 1 && cc.c % 2 == 0 ? 2 : 1);
      const int64_t gg = cc.G();
      cc.oc = gg * g.I(1, std::max<int64_t>(1, 32 / gg));
      if (cc.groups == 0) cc.oc = cc.c * g.Pick<int64_t>({1, 1, 2});
      cc.bias = g.B();
    } while (!cc.Valid());
    SCOPED_TRACE(cc.Str());
    CheckConvCase(cc, 1000 + seed);
  }
}

// ---------------------------------------------------------------------------------------
// Convolution epilogues: BN folding, bias, activations, per-channel constants.

enum class Act { kNone, kRelu, kRelu6, kClipNarrow, kSigmoid, kSilu, kLeakyRelu, kLeakyRelu02, kTanh, kElu, kGelu, kGeluTanh, kHardSigmoid, kSoftplus };

const char* ActName(Act a) {
  switch (a) {
    case Act::kNone: return "none";
    case Act::kRelu: return "Relu";
    case Act::kRelu6: return "Clip(0,6)";
    case Act::kClipNarrow: return "Clip(-0.3,0.4)";
    case Act::kSigmoid: return "Sigmoid";
    case Act::kSilu: return "SiLU";
    case Act::kLeakyRelu: return "LeakyRelu(0.01)";
    case Act::kLeakyRelu02: return "LeakyRelu(0.2)";
    case Act::kTanh: return "Tanh";
    case Act::kElu: return "Elu(0.7)";
    case Act::kGelu: return "Gelu";
    case Act::kGeluTanh: return "GeluTanh";
    case Act::kHardSigmoid: return "HardSigmoid";
    case Act::kSoftplus: return "Softplus";
  }
  return "?";
}

NetworkTensor Activate(NetworkDefinition& net, NetworkTensor x, Act a, const std::string& name = "") {
  switch (a) {
    case Act::kNone: return x;
    case Act::kRelu: return net.AddActivation(x, ActivationType::kRelu, name);
    case Act::kRelu6: return net.AddActivation(x, ActivationType::kClip, 0.0f, 6.0f, name);
    case Act::kClipNarrow: return net.AddActivation(x, ActivationType::kClip, -0.3f, 0.4f, name);
    case Act::kSigmoid: return net.AddActivation(x, ActivationType::kSigmoid, name);
    case Act::kSilu: return net.AddActivation(x, ActivationType::kSilu, name);
    case Act::kLeakyRelu: return net.AddActivation(x, ActivationType::kLeakyRelu, name);
    case Act::kLeakyRelu02: return net.AddActivation(x, ActivationType::kLeakyRelu, 0.2f, 0.0f, name);
    case Act::kTanh: return net.AddActivation(x, ActivationType::kTanh, name);
    case Act::kElu: return net.AddActivation(x, ActivationType::kElu, 0.7f, 0.0f, name);
    case Act::kGelu: return net.AddActivation(x, ActivationType::kGelu, name);
    case Act::kGeluTanh: return net.AddActivation(x, ActivationType::kGeluTanh, name);
    case Act::kHardSigmoid: return net.AddActivation(x, ActivationType::kHardSigmoid, name);
    case Act::kSoftplus: return net.AddActivation(x, ActivationType::kSoftplus, name);
  }
  return x;
}

TEST(CpuBackend, ConvolutionEpilogues) {
  const std::vector<Act> acts = {Act::kNone,  Act::kRelu,        Act::kRelu6, Act::kClipNarrow, Act::kSigmoid,
                                 Act::kSilu,  Act::kLeakyRelu,   Act::kLeakyRelu02, Act::kTanh,  Act::kElu,
                                 Act::kGelu,  Act::kGeluTanh,    Act::kHardSigmoid, Act::kSoftplus};
  uint32_t seed = 2000;
  for (Act act : acts) {
    for (int variant = 0; variant < 3; ++variant) {
      ++seed;
      Gen g(seed);
      // variant 0: conv(+bias) -> act; 1: conv(no bias) -> BN -> act; 2: conv -> BN -> Scale -> +[C,1,1] -> act.
      const int64_t n = g.Pick<int64_t>({1, 3}), c = g.Pick<int64_t>({3, 8, 16}), oc = g.Pick<int64_t>({8, 16, 32});
      const int64_t h = g.Pick<int64_t>({7, 9, 13}), w = g.Pick<int64_t>({7, 9, 13});
      const int64_t k = g.Pick<int64_t>({1, 3, 5});
      const int64_t s = g.Pick<int64_t>({1, 2});
      const int64_t groups = (variant == 2 && c == oc) ? c : 1;
      std::ostringstream what;
      what << "x[" << n << "," << c << "," << h << "," << w << "] conv oc " << oc << " k " << k << " s " << s
           << " groups " << groups << (variant == 0 ? " +bias" : variant == 1 ? " +BN" : " +BN +Scale +[C,1,1]")
           << " -> " << ActName(act);
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, {n, c, h, w});
      // Larger weights for the clips, so that both bounds are reached.
      const float ws = act == Act::kRelu6 ? 6.0f : 1.5f;
      auto y = Conv(net, g, x, oc, {k, k}, Geo({s, s}, {k / 2, k / 2}, {}, groups), variant == 0, "conv", ws);
      if (variant >= 1) y = BatchNorm(net, g, y, "bn");
      if (variant == 2) {
        y = net.AddScale(y, g.Vec(oc, 0.5f, 1.5f), g.Vec(oc, -0.3f, 0.3f), "scale");
        y = net.AddElementWise(y, Const(net, g, {oc, 1, 1}, -0.5f, 0.5f, "shift"), ElementWiseOp::kAdd, "add_c");
      }
      y = Activate(net, y, act, "act");
      ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << what.str() << ": " << net.status().ToString();
      ExpectMatchesReference(net, what.str(), seed);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Residual adds (the CPU backend turns a full-size add after a conv into oneDNN's sum
// post-op, accumulating into the residual's buffer when the conv is its last reader).

TEST(CpuBackend, ResidualAddOperandStillUsedLater) {
  // t = conv1(x) + y where y = relu(conv0(x)) is read again afterwards (not its last use:
  // the sum must go into a copy of y).
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    Gen g(3000 + seed);
    const int64_t n = g.Pick<int64_t>({1, 3}), c = g.Pick<int64_t>({8, 16, 32}), h = g.Pick<int64_t>({7, 9}),
                  w = g.Pick<int64_t>({9, 13});
    const bool y_first = seed % 2 == 0;
    std::ostringstream what;
    what << "residual not last use: x[" << n << "," << c << "," << h << "," << w << "] t = "
         << (y_first ? "y + conv1(x)" : "conv1(x) + y") << ", y = relu(conv0(x)) also read by conv2 and Mul";
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {n, c, h, w});
    auto y = net.AddActivation(Conv(net, g, x, c, {3, 3}, Geo({}, {1, 1}), true, "conv0"), ActivationType::kRelu, "y");
    auto c1 = Conv(net, g, x, c, {3, 3}, Geo({}, {1, 1}), true, "conv1");
    auto t = y_first ? net.AddElementWise(y, c1, ElementWiseOp::kAdd, "t") : net.AddElementWise(c1, y, ElementWiseOp::kAdd, "t");
    auto u = net.AddActivation(t, ActivationType::kRelu, "u");
    auto v = Conv(net, g, y, c, {1, 1}, {}, true, "conv2");        // y read after the add
    auto m = net.AddElementWise(y, u, ElementWiseOp::kMul, "m");  // and again
    ASSERT_TRUE(net.MarkOutput(u, "u").ok());
    ASSERT_TRUE(net.MarkOutput(v, "v").ok());
    ASSERT_TRUE(net.MarkOutput(m, "m").ok()) << net.status().ToString();
    ExpectMatchesReference(net, what.str(), seed);
  }
}

TEST(CpuBackend, ResidualAddInPlace) {
  // t = conv1(x) + y where y is read only by the add (its last use: in place).
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    Gen g(3100 + seed);
    const int64_t n = g.Pick<int64_t>({1, 3}), c = g.Pick<int64_t>({4, 16, 32}), h = g.Pick<int64_t>({7, 13}),
                  w = g.Pick<int64_t>({9, 13});
    const int pattern = static_cast<int>(seed % 3);  // 0: relu(conv+y); 1: relu(conv)+y; 2: conv-y, y-conv
    std::ostringstream what;
    what << "residual last use: x[" << n << "," << c << "," << h << "," << w << "] y = relu(conv0(x)), "
         << (pattern == 0 ? "relu(bn(conv1(x)) + y)" : pattern == 1 ? "relu(conv1(x)) + y" : "(y - conv1(x)) * (conv2(x) - y2), y and y2 also read by global pools before");
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {n, c, h, w});
    auto y = net.AddActivation(Conv(net, g, x, c, {3, 3}, Geo({}, {1, 1}), true, "conv0"), ActivationType::kRelu, "y");
    NetworkTensor out;
    if (pattern == 0) {
      auto c1 = BatchNorm(net, g, Conv(net, g, x, c, {3, 3}, Geo({}, {1, 1}), false, "conv1"), "bn1");
      out = net.AddActivation(net.AddElementWise(c1, y, ElementWiseOp::kAdd, "t"), ActivationType::kRelu, "out");
    } else if (pattern == 1) {
      auto c1 = net.AddActivation(Conv(net, g, x, c, {1, 1}, {}, true, "conv1"), ActivationType::kRelu, "r1");
      out = net.AddElementWise(c1, y, ElementWiseOp::kAdd, "out");
    } else {
      // y and y2 have an earlier reader (a global pool, an output), so each Sub fuses into
      // the conv on its other side: y - conv1(x) = -conv1(x) + y (the sum post-op, in place)
      // and conv2(x) - y2 (a binary post-op).
      auto gy = net.AddGlobalPooling(y, PoolingType::kAverage, "gy");
      auto c1 = Conv(net, g, x, c, {3, 3}, Geo({}, {1, 1}), true, "conv1");
      auto a = net.AddElementWise(y, c1, ElementWiseOp::kSub, "a");  // residual - conv
      auto y2 = net.AddActivation(Conv(net, g, x, c, {1, 1}, {}, true, "conv2b"), ActivationType::kSigmoid, "y2");
      auto gy2 = net.AddGlobalPooling(y2, PoolingType::kMax, "gy2");
      auto c2 = Conv(net, g, x, c, {3, 3}, Geo({}, {1, 1}), true, "conv2");
      auto b = net.AddElementWise(c2, y2, ElementWiseOp::kSub, "b");  // conv - residual
      out = net.AddElementWise(a, b, ElementWiseOp::kMul, "out");
      ASSERT_TRUE(net.MarkOutput(gy, "gy").ok());
      ASSERT_TRUE(net.MarkOutput(gy2, "gy2").ok());
    }
    ASSERT_TRUE(net.MarkOutput(out, "out").ok()) << net.status().ToString();
    ExpectMatchesReference(net, what.str(), seed);
  }
}

TEST(CpuBackend, ResidualAddOfTheConvolutionsOwnInput) {
  // z = a + conv(a): the add's other operand is the conv's own input (a must not be
  // overwritten while the conv reads it). a is an intermediate activation whose last use
  // is this conv + add, in both operand orders, with and without an activation after.
  uint32_t seed = 3200;
  for (int64_t c : {4, 16, 32}) {
    for (int order = 0; order < 2; ++order) {
      for (int post = 0; post < 2; ++post) {
        ++seed;
        Gen g(seed);
        const int64_t n = c == 16 ? 3 : 1, h = g.Pick<int64_t>({7, 9, 13}), w = g.Pick<int64_t>({7, 9, 13});
        const int64_t k = g.Pick<int64_t>({1, 3});
        std::ostringstream what;
        what << "x + conv(x): in[" << n << "," << c << "," << h << "," << w << "] a = relu(conv0(in)), z = "
             << (order == 0 ? "a + conv1(a)" : "conv1(a) + a") << " (conv1 " << k << "x" << k << ")"
             << (post ? " -> relu" : "");
        NetworkDefinition net;
        auto in = net.AddInput("in", DataType::kFloat32, {n, c, h, w});
        auto a = net.AddActivation(Conv(net, g, in, c, {3, 3}, Geo({}, {1, 1}), true, "conv0"), ActivationType::kRelu, "a");
        auto c1 = Conv(net, g, a, c, {k, k}, Geo({}, {k / 2, k / 2}), true, "conv1");
        auto z = order == 0 ? net.AddElementWise(a, c1, ElementWiseOp::kAdd, "z") : net.AddElementWise(c1, a, ElementWiseOp::kAdd, "z");
        if (post) z = net.AddActivation(z, ActivationType::kRelu, "zr");
        ASSERT_TRUE(net.MarkOutput(z, "out").ok()) << net.status().ToString();
        ExpectMatchesReference(net, what.str(), seed);
      }
    }
  }
  // The same on a graph input (never written in place) and through a BN'd conv.
  for (uint32_t s = 1; s <= 2; ++s) {
    Gen g(3300 + s);
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {s == 1 ? 1 : 3, 16, 9, 7});
    auto c1 = BatchNorm(net, g, Conv(net, g, x, 16, {3, 3}, Geo({}, {1, 1}), false, "conv1"), "bn");
    auto z = net.AddActivation(net.AddElementWise(x, c1, ElementWiseOp::kAdd, "z"), ActivationType::kRelu, "zr");
    ASSERT_TRUE(net.MarkOutput(z, "out").ok()) << net.status().ToString();
    ExpectMatchesReference(net, "x + bn(conv(x)) -> relu on a graph input x[" + std::to_string(s == 1 ? 1 : 3) + ",16,9,7]", s);
  }
}

TEST(CpuBackend, ResidualAddAfterAnEarlierReaderNeededAnotherLayout) {
  // y (a conv output, in oneDNN's blocked layout when it has 16+ channels) is first read
  // by a layer that needs it row-major (Flatten, Transpose, Softmax: a plain copy is made),
  // then by conv1(x) + y as its last use (the sum accumulates into y's buffer). The sum's
  // result must be what later readers and the graph output see — not the earlier copy of y.
  uint32_t seed = 3400;
  for (int64_t c : {8, 16, 32}) {
    for (int reader = 0; reader < 3; ++reader) {
      ++seed;
      Gen g(seed);
      const int64_t n = reader == 1 ? 3 : 1, h = 7, w = 9;
      const char* rname = reader == 0 ? "Flatten" : reader == 1 ? "Transpose" : "Softmax(axis 1)";
      std::ostringstream what;
      what << "residual after a row-major reader: x[" << n << "," << c << "," << h << "," << w
           << "] y = relu(conv0(x)), f = " << rname << "(y) (output), z = conv1(x) + y (output), r = relu(z) (output)";
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, {n, c, h, w});
      auto y = net.AddActivation(Conv(net, g, x, c, {3, 3}, Geo({}, {1, 1}), true, "conv0"), ActivationType::kRelu, "y");
      NetworkTensor f = reader == 0   ? net.AddFlatten(y, 1, "f")
                        : reader == 1 ? net.AddTranspose(y, {0, 2, 3, 1}, "f")
                                      : net.AddSoftmax(y, 1, "f");
      auto c1 = Conv(net, g, x, c, {3, 3}, Geo({}, {1, 1}), true, "conv1");
      auto z = net.AddElementWise(c1, y, ElementWiseOp::kAdd, "z");
      auto zz = Conv(net, g, z, c, {1, 1}, {}, true, "conv2");
      auto r = net.AddElementWise(zz, z, ElementWiseOp::kMul, "r");
      ASSERT_TRUE(net.MarkOutput(f, "f").ok());
      ASSERT_TRUE(net.MarkOutput(z, "z").ok());
      ASSERT_TRUE(net.MarkOutput(r, "r").ok()) << net.status().ToString();
      ExpectMatchesReference(net, what.str(), seed);
    }
  }
}

TEST(CpuBackend, ResidualBlocksAndActivationAddChains) {
  // ResNet-style blocks (conv-BN-relu-conv-BN + skip, the skip through a strided 1x1 conv
  // when the shape changes) and conv -> activation -> add chains.
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    Gen g(3500 + seed);
    const int64_t n = seed % 2 ? 1 : 3, c = g.Pick<int64_t>({8, 16}), h = g.Pick<int64_t>({9, 13}), w = g.Pick<int64_t>({9, 13});
    std::ostringstream what;
    what << "resnet blocks + act/add chain: x[" << n << "," << c << "," << h << "," << w << "]";
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {n, c, h, w});
    auto stem = net.AddActivation(BatchNorm(net, g, Conv(net, g, x, c, {3, 3}, Geo({}, {1, 1}), false, "stem")), ActivationType::kRelu);
    // Block 1: identity skip.
    auto b1 = net.AddActivation(BatchNorm(net, g, Conv(net, g, stem, c, {3, 3}, Geo({}, {1, 1}), false)), ActivationType::kRelu);
    b1 = BatchNorm(net, g, Conv(net, g, b1, c, {3, 3}, Geo({}, {1, 1}), false));
    auto o1 = net.AddActivation(net.AddElementWise(b1, stem, ElementWiseOp::kAdd), ActivationType::kRelu, "o1");
    // Block 2: stride 2, projection skip.
    const int64_t c2 = 2 * c;
    auto b2 = net.AddActivation(BatchNorm(net, g, Conv(net, g, o1, c2, {3, 3}, Geo({2, 2}, {1, 1}), false)), ActivationType::kRelu);
    b2 = BatchNorm(net, g, Conv(net, g, b2, c2, {3, 3}, Geo({}, {1, 1}), false));
    auto skip = BatchNorm(net, g, Conv(net, g, o1, c2, {1, 1}, Geo({2, 2}, {}), false));
    auto o2 = net.AddActivation(net.AddElementWise(skip, b2, ElementWiseOp::kAdd), ActivationType::kRelu, "o2");
    // conv -> act -> add -> conv -> act -> add chain.
    auto a1 = net.AddElementWise(net.AddActivation(Conv(net, g, o2, c2, {3, 3}, Geo({}, {1, 1})), ActivationType::kSigmoid), o2,
                                 ElementWiseOp::kAdd, "a1");
    auto a2 = net.AddElementWise(net.AddActivation(Conv(net, g, a1, c2, {1, 1}), ActivationType::kClip, 0.0f, 6.0f), a1,
                                 ElementWiseOp::kAdd, "a2");
    auto a3 = net.AddElementWise(a2, net.AddActivation(Conv(net, g, a2, c2, {3, 3}, Geo({}, {1, 1})), ActivationType::kSilu),
                                 ElementWiseOp::kAdd, "a3");
    ASSERT_TRUE(net.MarkOutput(a3, "y").ok()) << net.status().ToString();
    ExpectMatchesReference(net, what.str(), seed);
  }
}

// ---------------------------------------------------------------------------------------
// Pooling.

TEST(CpuBackend, Pooling) {
  struct PoolCase {
    PoolingType type;
    std::vector<int64_t> window, strides, pads;
    bool ceil_mode, include_pad;
    bool after_conv;  // pool a conv output (blocked layout) instead of the graph input
  };
  const std::vector<PoolCase> fixed = {
      {PoolingType::kMax, {3, 3}, {2, 2}, {1, 1}, false, false, true},
      {PoolingType::kMax, {2, 2}, {}, {}, false, false, false},
      {PoolingType::kMax, {3, 3}, {2, 2}, {}, true, false, true},
      {PoolingType::kMax, {3, 2}, {1, 2}, {1, 0, 0, 1}, false, false, false},
      {PoolingType::kAverage, {3, 3}, {2, 2}, {1, 1}, false, false, true},
      {PoolingType::kAverage, {3, 3}, {2, 2}, {1, 1}, false, true, true},
      {PoolingType::kAverage, {2, 2}, {2, 2}, {}, true, false, false},
      {PoolingType::kAverage, {3, 3}, {2, 2}, {0, 1, 1, 0}, true, true, true},
      {PoolingType::kAverage, {5, 5}, {1, 1}, {2, 2}, false, false, true},
      {PoolingType::kMax, {2, 3}, {2, 2}, {1, 1, 0, 2}, true, false, true},
  };
  std::vector<PoolCase> cases = fixed;
  Gen rg(4000);
  for (int i = 0; i < 10; ++i) {
    PoolCase pc;
    pc.type = rg.B() ? PoolingType::kMax : PoolingType::kAverage;
    pc.window = {rg.Pick<int64_t>({1, 2, 3, 4}), rg.Pick<int64_t>({2, 3})};
    pc.strides = {rg.I(1, 3), rg.I(1, 3)};
    pc.pads = {rg.I(0, pc.window[0] - 1), rg.I(0, pc.window[1] - 1), rg.I(0, pc.window[0] - 1), rg.I(0, pc.window[1] - 1)};
    pc.ceil_mode = rg.B();
    pc.include_pad = pc.type == PoolingType::kAverage && rg.B();
    pc.after_conv = rg.B();
    cases.push_back(pc);
  }
  uint32_t seed = 4100;
  for (const PoolCase& pc : cases) {
    ++seed;
    Gen g(seed);
    const int64_t n = g.Pick<int64_t>({1, 3}), c = g.Pick<int64_t>({3, 16}), h = g.Pick<int64_t>({7, 13}), w = g.Pick<int64_t>({9, 13});
    std::ostringstream what;
    what << (pc.type == PoolingType::kMax ? "MaxPool" : "AveragePool") << " window " << DimsStr(pc.window) << " strides "
         << DimsStr(pc.strides) << " pads " << DimsStr(pc.pads) << (pc.ceil_mode ? " ceil_mode" : "")
         << (pc.include_pad ? " count_include_pad" : "") << " on " << (pc.after_conv ? "conv(x) [" : "x [") << n << ","
         << c << "," << h << "," << w << "]";
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {n, c, h, w});
    auto src = pc.after_conv ? Conv(net, g, x, c == 3 ? 8 : 16, {3, 3}, Geo({}, {1, 1}), true, "conv") : x;
    PoolParams pp;
    pp.strides = pc.strides;
    pp.pads = pc.pads;
    pp.ceil_mode = pc.ceil_mode;
    pp.count_include_pad = pc.include_pad;
    auto y = net.AddPooling(src, pc.type, pc.window, pp, "pool");
    ASSERT_TRUE(y.valid()) << what.str() << ": " << net.status().ToString();
    ASSERT_TRUE(net.MarkOutput(y, "y").ok());
    ExpectMatchesReference(net, what.str(), seed);
  }
  // Global pooling (of inputs and of conv outputs), then flatten + FC as in a classifier head.
  for (uint32_t s = 1; s <= 4; ++s) {
    Gen g(4200 + s);
    const bool avg = s != 2;
    const int64_t n = s % 2 ? 1 : 3, c = s <= 2 ? 16 : 5;
    std::ostringstream what;
    what << (avg ? "GlobalAveragePool" : "GlobalMaxPool") << " of conv(x[" << n << "," << c << ",7,9]) -> flatten -> FC";
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {n, c, 7, 9});
    auto cv = net.AddActivation(Conv(net, g, x, 32, {3, 3}, Geo({}, {1, 1})), ActivationType::kRelu);
    auto gp = net.AddGlobalPooling(cv, avg ? PoolingType::kAverage : PoolingType::kMax, "gp");
    auto gx = net.AddGlobalPooling(x, avg ? PoolingType::kAverage : PoolingType::kMax, "gx");
    auto fc = FC(net, g, net.AddFlatten(gp, 1), 10, true, "fc");
    ASSERT_TRUE(net.MarkOutput(fc, "logits").ok());
    ASSERT_TRUE(net.MarkOutput(gx, "gx").ok()) << net.status().ToString();
    ExpectMatchesReference(net, what.str(), 4200 + s);
  }
}

// ---------------------------------------------------------------------------------------
// FullyConnected (Gemm / MatMul + bias) and MatMul of two activations.

TEST(CpuBackend, FullyConnected) {
  uint32_t seed = 5000;
  const std::vector<std::vector<int64_t>> shapes = {{1, 7}, {3, 16}, {5, 33}, {2, 3, 12}, {2, 3, 5, 7}};
  for (const auto& xd : shapes) {
    for (Act act : {Act::kNone, Act::kRelu, Act::kSigmoid, Act::kGelu}) {
      ++seed;
      Gen g(seed);
      const bool bias = seed % 3 != 0;
      const int64_t out = g.Pick<int64_t>({1, 4, 10, 17, 32});
      std::ostringstream what;
      what << "FullyConnected x" << DimsStr(xd) << " -> " << out << (bias ? " +bias" : " no-bias") << " -> " << ActName(act)
           << (xd.size() == 2 ? " (Gemm)" : " (MatMul)");
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, xd);
      auto y = Activate(net, FC(net, g, x, out, bias, "fc"), act, "act");
      ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << what.str() << ": " << net.status().ToString();
      ExpectMatchesReference(net, what.str(), seed);
    }
  }
}

TEST(CpuBackend, MatrixMultiplyOfActivations) {
  struct MmCase {
    std::vector<int64_t> a, b;
    int epilogue;  // 0 none, 1 + bias constant -> relu, 2 + full-size activation (residual)
  };
  const std::vector<MmCase> cases = {
      {{2, 3, 5, 7}, {2, 3, 7, 4}, 0}, {{2, 3, 5, 7}, {2, 3, 7, 4}, 1}, {{2, 3, 5, 7}, {2, 3, 7, 4}, 2},
      {{2, 3, 5, 7}, {7, 4}, 0},       {{5, 7}, {2, 3, 7, 4}, 1},       {{3, 5, 7}, {2, 3, 7, 4}, 0},
      {{2, 1, 5, 7}, {1, 3, 7, 4}, 0}, {{2, 1, 5, 7}, {3, 7, 4}, 2},    {{1, 16}, {16, 9}, 1},
      {{4, 13, 32}, {4, 32, 13}, 2},
  };
  uint32_t seed = 5100;
  for (const MmCase& mc : cases) {
    for (bool transposed_b : {false, true}) {
      ++seed;
      Gen g(seed);
      std::ostringstream what;
      what << "MatMul a" << DimsStr(mc.a) << " x b" << DimsStr(mc.b) << (transposed_b ? " (b = Transpose of an input)" : "")
           << (mc.epilogue == 1 ? " + bias -> relu" : mc.epilogue == 2 ? " + residual activation" : "");
      NetworkDefinition net;
      auto a = net.AddInput("a", DataType::kFloat32, mc.a);
      NetworkTensor b;
      if (transposed_b) {
        std::vector<int64_t> bt = mc.b, perm(mc.b.size());
        std::swap(bt[bt.size() - 1], bt[bt.size() - 2]);
        std::iota(perm.begin(), perm.end(), 0);
        std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
        b = net.AddTranspose(net.AddInput("bt", DataType::kFloat32, bt), perm, "b");
      } else {
        b = net.AddInput("b", DataType::kFloat32, mc.b);
      }
      auto y = net.AddMatrixMultiply(a, b, "mm");
      const std::vector<int64_t> yd = DimsOf(net, y);
      if (mc.epilogue == 1) {
        y = net.AddElementWise(y, Const(net, g, {yd.back()}, -0.5f, 0.5f, "bias"), ElementWiseOp::kAdd, "add");
        y = net.AddActivation(y, ActivationType::kRelu, "relu");
      } else if (mc.epilogue == 2) {
        auto r = net.AddActivation(net.AddInput("r", DataType::kFloat32, yd), ActivationType::kTanh, "rt");
        y = net.AddElementWise(y, r, ElementWiseOp::kAdd, "add");
      }
      ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << what.str() << ": " << net.status().ToString();
      ExpectMatchesReference(net, what.str(), seed);
    }
  }
  // A constant batched right operand.
  Gen g(5200);
  NetworkDefinition net;
  auto a = net.AddInput("a", DataType::kFloat32, {3, 5, 7});
  auto y = net.AddMatrixMultiply(a, Const(net, g, {3, 7, 6}, -0.5f, 0.5f, "B"), "mm");
  ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << net.status().ToString();
  ExpectMatchesReference(net, "MatMul a[3,5,7] x constant B[3,7,6]", 5200);
}

// ---------------------------------------------------------------------------------------
// Softmax, layer norm.

TEST(CpuBackend, SoftmaxOnEveryAxis) {
  uint32_t seed = 6000;
  for (const std::vector<int64_t>& xd : {std::vector<int64_t>{2, 3, 4, 5}, std::vector<int64_t>{3, 17}, std::vector<int64_t>{2, 7, 33}}) {
    const int rank = static_cast<int>(xd.size());
    for (int axis = -rank; axis < rank; ++axis) {
      ++seed;
      std::ostringstream what;
      what << "Softmax x" << DimsStr(xd) << " axis " << axis << " (inputs in [-4, 4])";
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, xd);
      ASSERT_TRUE(net.MarkOutput(net.AddSoftmax(x, axis, "sm"), "y").ok()) << net.status().ToString();
      CheckOptions co;
      co.input_lo = -4;
      co.input_hi = 4;
      ExpectMatchesReference(net, what.str(), seed, co);
    }
  }
  // Softmax of a conv output (blocked layout) over channels and over width.
  for (int axis : {1, 3}) {
    Gen g(6100 + static_cast<uint32_t>(axis));
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {3, 16, 7, 9});
    auto c = Conv(net, g, x, 32, {3, 3}, Geo({}, {1, 1}), true, "conv", 3.0f);
    ASSERT_TRUE(net.MarkOutput(net.AddSoftmax(c, axis, "sm"), "y").ok()) << net.status().ToString();
    ExpectMatchesReference(net, "Softmax(conv(x[3,16,7,9]) -> 32 ch) axis " + std::to_string(axis), 6100 + static_cast<uint32_t>(axis));
  }
}

TEST(CpuBackend, LayerNormalization) {
  struct LnCase {
    std::vector<int64_t> dims;
    int axis;
    bool bias;
  };
  const std::vector<LnCase> cases = {
      {{2, 5, 16}, -1, true}, {{2, 5, 16}, -1, false}, {{3, 7}, 1, true},        {{2, 3, 4, 6}, 2, true},
      {{2, 3, 4, 6}, -3, false}, {{4, 33}, -1, true},  {{1, 9, 128}, 2, true},
  };
  uint32_t seed = 6200;
  for (const LnCase& lc : cases) {
    ++seed;
    Gen g(seed);
    std::ostringstream what;
    what << "LayerNormalization x" << DimsStr(lc.dims) << " axis " << lc.axis << (lc.bias ? " +bias" : " no-bias")
         << " (inputs in [-2, 3])";
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, lc.dims);
    const int rank = static_cast<int>(lc.dims.size());
    const int a = lc.axis < 0 ? lc.axis + rank : lc.axis;
    std::vector<int64_t> nd(lc.dims.begin() + a, lc.dims.end());
    std::vector<float> scale = g.Vec(Numel(nd), 0.5f, 1.5f);
    std::vector<float> bias = lc.bias ? g.Vec(Numel(nd), -0.5f, 0.5f) : std::vector<float>{};
    auto y = net.AddLayerNormalization(x, scale, bias, lc.axis, 1e-5f, "ln");
    ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << what.str() << ": " << net.status().ToString();
    CheckOptions co;
    co.input_lo = -2;
    co.input_hi = 3;
    ExpectMatchesReference(net, what.str(), seed, co);
  }
  // A transformer-ish block: FC -> LN -> GELU -> FC + residual -> LN.
  for (uint32_t s = 1; s <= 2; ++s) {
    Gen g(6300 + s);
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {2, 9, 32});
    auto h = FC(net, g, x, 64, true, "fc1");
    h = net.AddLayerNormalization(h, g.Vec(64, 0.5f, 1.5f), g.Vec(64, -0.2f, 0.2f), -1, 1e-5f, "ln1");
    h = net.AddActivation(h, ActivationType::kGelu, "gelu");
    h = FC(net, g, h, 32, true, "fc2");
    h = net.AddElementWise(h, x, ElementWiseOp::kAdd, "res");
    h = net.AddLayerNormalization(h, g.Vec(32, 0.5f, 1.5f), {}, -1, 1e-5f, "ln2");
    ASSERT_TRUE(net.MarkOutput(h, "y").ok()) << net.status().ToString();
    ExpectMatchesReference(net, "FC -> LN -> GELU -> FC + x -> LN on x[2,9,32]", 6300 + s);
  }
}

// ---------------------------------------------------------------------------------------
// Concat, transpose, reshape, flatten.

TEST(CpuBackend, ConcatOfConvolutions) {
  uint32_t seed = 7000;
  const std::vector<std::vector<int64_t>> channel_sets = {{16, 16}, {16, 8}, {5, 16, 3}, {32, 16, 8}, {4, 4, 4}};
  for (const auto& chs : channel_sets) {
    for (int axis : {1, 2, 3}) {
      ++seed;
      Gen g(seed);
      const int64_t n = seed % 2 ? 1 : 3, c = g.Pick<int64_t>({3, 16}), h = g.Pick<int64_t>({7, 9}), w = g.Pick<int64_t>({9, 13});
      std::ostringstream what;
      what << "Concat axis " << axis << " of convs with out channels " << DimsStr(chs) << " (distinct kernels) of x[" << n
           << "," << c << "," << h << "," << w << "]" << (axis == 1 ? " + x itself, -> conv" : "");
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, {n, c, h, w});
      std::vector<NetworkTensor> parts;
      for (size_t i = 0; i < chs.size(); ++i) {
        // Distinct geometries (so the optimizer does not merge them): 1x1, 3x3 pad 1, 5x5 pad 2.
        const int64_t k = 1 + 2 * static_cast<int64_t>(i % 3);
        const int64_t oc = axis == 1 ? chs[i] : chs[0];
        auto p = Conv(net, g, x, oc, {k, k}, Geo({}, {k / 2, k / 2}), true, "conv" + std::to_string(i));
        parts.push_back(i == 1 ? net.AddActivation(p, ActivationType::kRelu) : p);
      }
      if (axis == 1) parts.push_back(x);
      auto cat = net.AddConcatenation(parts, axis, "cat");
      NetworkTensor y = cat;
      if (axis == 1) y = Conv(net, g, cat, 8, {3, 3}, Geo({}, {1, 1}), true, "after");
      ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << what.str() << ": " << net.status().ToString();
      if (axis == 1) {
        ASSERT_TRUE(net.MarkOutput(cat, "cat").ok());
      }
      ExpectMatchesReference(net, what.str(), seed);
    }
  }
  // Concat of plain graph inputs along the last axis, and of rank-3 tensors.
  NetworkDefinition net;
  auto a = net.AddInput("a", DataType::kFloat32, {2, 3, 5});
  auto b = net.AddInput("b", DataType::kFloat32, {2, 3, 7});
  auto c = net.AddInput("c", DataType::kFloat32, {2, 4, 12});
  auto ab = net.AddConcatenation({a, b}, -1, "ab");
  ASSERT_TRUE(net.MarkOutput(net.AddConcatenation({ab, c}, 1, "abc"), "y").ok()) << net.status().ToString();
  ExpectMatchesReference(net, "Concat of inputs a[2,3,5], b[2,3,7] on axis -1, then with c[2,4,12] on axis 1", 7100);
}

TEST(CpuBackend, TransposeReshapeFlatten) {
  const std::vector<std::vector<int64_t>> perms4 = {{0, 2, 3, 1}, {0, 3, 1, 2}, {3, 2, 1, 0}, {1, 0, 2, 3}, {0, 1, 3, 2}, {2, 0, 3, 1}};
  uint32_t seed = 7200;
  for (const auto& perm : perms4) {
    for (bool after_conv : {false, true}) {
      ++seed;
      Gen g(seed);
      std::ostringstream what;
      what << "Transpose perm " << DimsStr(perm) << " of " << (after_conv ? "conv(x[2,8,7,9]) -> 16 ch" : "x[2,8,7,9]")
           << ", then reshape [0,-1,2] and flatten(axis 2)";
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, {2, 8, 7, 9});
      auto src = after_conv ? Conv(net, g, x, 16, {3, 3}, Geo({}, {1, 1}), true, "conv") : x;
      auto t = net.AddTranspose(src, perm, "t");
      auto r = net.AddReshape(t, {0, -1, 2}, "r");
      auto f = net.AddFlatten(t, 2, "f");
      auto s = net.AddActivation(r, ActivationType::kTanh, "s");  // a kernel over the reshaped view
      ASSERT_TRUE(net.MarkOutput(t, "t_out").ok());
      ASSERT_TRUE(net.MarkOutput(s, "s_out").ok());
      ASSERT_TRUE(net.MarkOutput(f, "f_out").ok()) << what.str() << ": " << net.status().ToString();
      ExpectMatchesReference(net, what.str(), seed);
    }
  }
  // Rank 3 and rank 2 transposes, transpose pairs (the optimizer folds them), reshape chains.
  for (uint32_t s = 1; s <= 3; ++s) {
    Gen g(7300 + s);
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {3, 5, 8});
    auto t1 = net.AddTranspose(x, {2, 0, 1}, "t1");
    auto t2 = net.AddTranspose(t1, s == 1 ? std::vector<int64_t>{1, 2, 0} : std::vector<int64_t>{0, 2, 1}, "t2");
    auto r = net.AddReshape(t2, {-1, 4}, "r");
    auto m = net.AddTranspose(r, {1, 0}, "m");
    auto fc = FC(net, g, m, 6, true, "fc");
    ASSERT_TRUE(net.MarkOutput(fc, "y").ok());
    ASSERT_TRUE(net.MarkOutput(t2, "t2").ok()) << net.status().ToString();
    ExpectMatchesReference(net, "Transpose x[3,5,8] [2,0,1] then " + std::string(s == 1 ? "[1,2,0]" : "[0,2,1]") +
                                    ", reshape [-1,4], transpose [1,0], FC 6",
                           7300 + s);
  }
  // Flatten/reshape of a conv output feeding a FC (classifier head without pooling).
  for (int axis : {1, 2}) {
    Gen g(7400 + static_cast<uint32_t>(axis));
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {3, 16, 5, 7});
    auto c = net.AddActivation(Conv(net, g, x, 16, {3, 3}, Geo({2, 2}, {1, 1})), ActivationType::kRelu);
    auto f = net.AddFlatten(c, axis, "flat");
    auto y = FC(net, g, f, 10, true, "fc");
    ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << net.status().ToString();
    ExpectMatchesReference(net, "conv(x[3,16,5,7]) -> relu -> Flatten(axis " + std::to_string(axis) + ") -> FC 10",
                           7400 + static_cast<uint32_t>(axis));
  }
}

// ---------------------------------------------------------------------------------------
// Elementwise ops with broadcasting.

TEST(CpuBackend, ElementwiseBroadcasting) {
  const std::vector<std::pair<ElementWiseOp, const char*>> ops = {
      {ElementWiseOp::kAdd, "Add"}, {ElementWiseOp::kSub, "Sub"}, {ElementWiseOp::kMul, "Mul"},
      {ElementWiseOp::kDiv, "Div"}, {ElementWiseOp::kMax, "Max"}, {ElementWiseOp::kMin, "Min"}};
  // The other operand: a constant of these dims, or a second activation (input "b").
  struct Operand {
    std::vector<int64_t> dims;
    bool constant;
  };
  const std::vector<int64_t> xd = {2, 16, 5, 7};
  const std::vector<Operand> operands = {
      {{16, 1, 1}, true}, {{1, 16, 1, 1}, true}, {{1}, true},      {{7}, true},          {{2, 16, 5, 7}, true},
      {{2, 16, 5, 7}, false}, {{16, 1, 1}, false}, {{5, 1}, false}, {{2, 1, 5, 7}, false}, {{1, 16, 5, 1}, false},
  };
  uint32_t seed = 8000;
  for (const auto& [op, opname] : ops) {
    for (const Operand& od : operands) {
      for (int producer = 0; producer < 2; ++producer) {  // 0: graph input x, 1: conv(x) (fused epilogue)
        for (bool swap : {false, true}) {
          ++seed;
          Gen g(seed);
          std::ostringstream what;
          const std::string lhs = producer ? "conv(x)" + DimsStr(xd) : "x" + DimsStr(xd);
          const std::string rhs = std::string(od.constant ? "const" : "input") + DimsStr(od.dims);
          what << opname << "(" << (swap ? rhs : lhs) << ", " << (swap ? lhs : rhs) << ")";
          NetworkDefinition net;
          auto x = net.AddInput("x", DataType::kFloat32, xd);
          auto a = producer ? Conv(net, g, x, 16, {3, 3}, Geo({}, {1, 1}), true, "conv") : x;
          // Divisors away from zero.
          const bool div = op == ElementWiseOp::kDiv;
          NetworkTensor b = od.constant ? (div ? Const(net, g, od.dims, 0.5f, 2.0f, "b") : Const(net, g, od.dims, -1.0f, 1.0f, "b"))
                                        : net.AddInput("b", DataType::kFloat32, od.dims);
          NetworkTensor lhs_t = swap ? b : a, rhs_t = swap ? a : b;
          if (div && swap) {
            // The divisor is conv(x) or x: keep it away from zero (1.5 + sigmoid).
            rhs_t = net.AddElementWise(net.AddActivation(a, ActivationType::kSigmoid), Const(net, g, {1}, 1.5f, 1.5f),
                                       ElementWiseOp::kAdd, "den");
          }
          auto y = net.AddElementWise(lhs_t, rhs_t, op, "ew");
          auto yr = net.AddActivation(y, ActivationType::kRelu, "relu");
          ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << what.str() << ": " << net.status().ToString();
          ASSERT_TRUE(net.MarkOutput(yr, "yr").ok());
          CheckOptions co;
          if (div && !od.constant) co.ranges["b"] = {0.5f, 2.0f};
          ExpectMatchesReference(net, what.str(), seed, co);
        }
      }
    }
  }
}

// Squeeze-excitation (MobileNetV3, PP-OCR): the per-channel scale multiplies the blocked
// convolution output in its own layout; channel counts that do not fill a 16-lane block,
// batch > 1, and the decomposed HardSwish that the optimizer turns into one fused op.
TEST(CpuBackend, SqueezeExcitationAndHardSwish) {
  uint32_t seed = 9100;
  for (int64_t ch : {8, 24, 88}) {
    for (int64_t batch : {1, 3}) {
      ++seed;
      Gen g(seed);
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, {batch, 5, 9, 11});
      auto c = Conv(net, g, x, ch, {3, 3}, Geo({}, {1, 1}), true, "conv");
      // hardswish as Paddle2ONNX writes it: c * clip(c + 3, 0, 6) / 6
      auto shifted = net.AddElementWise(c, Const(net, g, {1}, 3.0f, 3.0f), ElementWiseOp::kAdd, "add3");
      auto relu6 = net.AddActivation(shifted, ActivationType::kClip, 0.0f, 6.0f, "clip");
      auto hsw = net.AddElementWise(net.AddElementWise(c, relu6, ElementWiseOp::kMul, "mul"),
                                    Const(net, g, {1}, 6.0f, 6.0f), ElementWiseOp::kDiv, "div6");
      auto pooled = net.AddGlobalPooling(hsw, PoolingType::kAverage, "gap");
      auto squeeze = Conv(net, g, pooled, 4, {1, 1}, Geo({}, {}), true, "squeeze");
      auto scale = net.AddActivation(net.AddActivation(squeeze, ActivationType::kRelu, "srelu"), ActivationType::kSigmoid, "ssig");
      auto excite = Conv(net, g, scale, ch, {1, 1}, Geo({}, {}), true, "excite");
      auto se = net.AddElementWise(hsw, excite, ElementWiseOp::kMul, "se");
      auto y = Conv(net, g, se, 16, {1, 1}, Geo({}, {}), true, "project");
      ASSERT_TRUE(net.MarkOutput(y, "y").ok()) << net.status().ToString();
      ExpectMatchesReference(net, "SE block with " + std::to_string(ch) + " channels, batch " + std::to_string(batch), seed, {});
    }
  }
}

TEST(CpuBackend, ElementwiseChains) {
  // Chains that the optimizer fuses into one elementwise layer's epilogue, scalar constants,
  // and both operands broadcasting (no operand has the output's shape).
  for (uint32_t s = 1; s <= 3; ++s) {
    Gen g(8500 + s);
    NetworkDefinition net;
    auto a = net.AddInput("a", DataType::kFloat32, {3, 1, 5});
    auto b = net.AddInput("b", DataType::kFloat32, {1, 4, 1});
    auto ab = net.AddElementWise(a, b, ElementWiseOp::kMul, "ab");  // [3,4,5]
    auto t = net.AddElementWise(ab, Const(net, g, {1}, 0.25f, 0.25f), ElementWiseOp::kSub, "t");
    t = net.AddElementWise(Const(net, g, {1}, 2.0f, 2.0f), t, ElementWiseOp::kSub, "t2");  // 2 - t
    t = net.AddElementWise(t, Const(net, g, {1}, 4.0f, 4.0f), ElementWiseOp::kDiv, "t3");
    t = net.AddElementWise(t, Const(net, g, {4, 1}, -1.0f, 1.0f), ElementWiseOp::kMax, "t4");
    t = net.AddActivation(t, ActivationType::kSilu, "t5");
    t = net.AddElementWise(t, Const(net, g, {5}, 0.5f, 1.5f), ElementWiseOp::kMul, "t6");
    ASSERT_TRUE(net.MarkOutput(t, "y").ok()) << net.status().ToString();
    ExpectMatchesReference(net, "a[3,1,5]*b[1,4,1] -0.25, 2-., /4, max [4,1], SiLU, *[5]", 8500 + s);
  }
}

TEST(CpuBackend, LongChainsOfIdenticalLayers) {
  // A chain long enough to fill many fused layers (16 epilogue ops each): layers with
  // identical ops share one oneDNN primitive (Compiler::FindStep), so each must still get
  // its own constants and buffers; layers that differ only in a parameter (LeakyRelu's
  // alpha) or in a constant operand's values must not be confused.
  for (int variant = 0; variant < 3; ++variant) {
    Gen g(8600 + static_cast<uint32_t>(variant));
    NetworkDefinition net;
    auto t = net.AddInput("x", DataType::kFloat32, {2, 3, 8});
    for (int i = 0; i < 120; ++i) {
      const std::string name = "l" + std::to_string(i);
      if (variant == 0) {
        t = net.AddActivation(t, i % 2 ? ActivationType::kRelu : ActivationType::kTanh, name);
      } else if (variant == 1) {
        // alpha changes once every 40 layers: some fused layers identical, some not.
        t = net.AddActivation(t, ActivationType::kLeakyRelu, 0.05f + 0.1f * static_cast<float>(i / 40), 0.0f, name);
      } else {
        // Same op and operand shape (per channel) in every layer, different constant values.
        t = i % 2 ? net.AddElementWise(t, Const(net, g, {3, 1}, 0.9f, 1.1f), ElementWiseOp::kMul, name)
                  : net.AddActivation(t, ActivationType::kTanh, name);
      }
    }
    ASSERT_TRUE(net.MarkOutput(t, "y").ok()) << net.status().ToString();
    auto cpu = ExpectMatchesReference(net, "a chain of 120 layers, variant " + std::to_string(variant), 8600 + variant);
    if (!cpu) continue;
    const cpu::Program* prog = EngineCpuProgram(*cpu);
    ASSERT_NE(prog, nullptr);
    int layers = 0;
    std::set<const void*> prims;
    for (const auto& k : prog->kernels) {
      if (const auto* pk = dynamic_cast<const cpu::PrimitiveKernel*>(k.get())) {
        ++layers;
        prims.insert(pk->prim.get());
      }
    }
    for (const cpu::StepInfo& st : cpu::Steps(*prog))
      EXPECT_EQ(st.impl.find("ref"), std::string::npos) << st.name << ": " << st.impl << "\n" << StepsText(*cpu);
    // Identical fused layers share primitives: fewer primitives than layers.
    EXPECT_GT(layers, 4);
    EXPECT_LT(prims.size(), static_cast<size_t>(layers)) << StepsText(*cpu);
  }
}

// ---------------------------------------------------------------------------------------
// Horizontal fusion: sibling convs / FCs on one input become one wider layer + split.

TEST(CpuBackend, SiblingConvolutions) {
  struct SibCase {
    std::vector<int64_t> ocs;
    int64_t k, stride;
    bool bias, bn;
    Act act;
  };
  const std::vector<SibCase> cases = {
      {{16, 16}, 1, 1, true, false, Act::kRelu},  {{16, 8}, 1, 1, true, true, Act::kRelu},
      {{5, 7, 3}, 1, 1, false, true, Act::kNone}, {{8, 24, 16}, 3, 1, true, false, Act::kRelu6},
      {{16, 32}, 3, 2, false, true, Act::kSilu},  {{4, 12}, 5, 1, true, false, Act::kSigmoid},
      {{32, 32, 32}, 1, 2, true, true, Act::kLeakyRelu},
  };
  uint32_t seed = 9000;
  for (const SibCase& sc : cases) {
    for (int consumer = 0; consumer < 2; ++consumer) {  // 0: each sibling an output; 1: further layers
      ++seed;
      Gen g(seed);
      const int64_t n = seed % 2 ? 1 : 3, c = g.Pick<int64_t>({3, 16}), h = g.Pick<int64_t>({7, 13}), w = g.Pick<int64_t>({9, 13});
      std::ostringstream what;
      what << sc.ocs.size() << " sibling convs (out " << DimsStr(sc.ocs) << ", " << sc.k << "x" << sc.k << " stride "
           << sc.stride << (sc.bias ? " +bias" : "") << (sc.bn ? " +BN" : "") << " -> " << ActName(sc.act) << ") of x["
           << n << "," << c << "," << h << "," << w << "]"
           << (consumer ? ", read by a conv / pool / concat" : ", each an output");
      NetworkDefinition net;
      auto x = net.AddInput("x", DataType::kFloat32, {n, c, h, w});
      // The input is itself a conv output (blocked layout) in half the cases.
      auto in = seed % 4 < 2 ? x : net.AddActivation(Conv(net, g, x, 16, {3, 3}, Geo({}, {1, 1}), true, "stem"), ActivationType::kRelu);
      std::vector<NetworkTensor> sibs;
      for (size_t i = 0; i < sc.ocs.size(); ++i) {
        auto y = Conv(net, g, in, sc.ocs[i], {sc.k, sc.k}, Geo({sc.stride, sc.stride}, {sc.k / 2, sc.k / 2}), sc.bias,
                      "sib" + std::to_string(i));
        if (sc.bn) y = BatchNorm(net, g, y, "bn" + std::to_string(i));
        sibs.push_back(Activate(net, y, sc.act, "act" + std::to_string(i)));
      }
      if (consumer == 0) {
        for (size_t i = 0; i < sibs.size(); ++i) ASSERT_TRUE(net.MarkOutput(sibs[i], "y" + std::to_string(i)).ok());
      } else {
        ASSERT_TRUE(net.MarkOutput(Conv(net, g, sibs[0], 8, {3, 3}, Geo({}, {1, 1}), true, "next"), "y0").ok());
        ASSERT_TRUE(net.MarkOutput(net.AddPooling(sibs[1], PoolingType::kMax, {2, 2}, {}, "pool"), "y1").ok());
        ASSERT_TRUE(net.MarkOutput(net.AddConcatenation(sibs, 1, "cat"), "cat").ok());
      }
      ASSERT_TRUE(net.status().ok()) << what.str() << ": " << net.status().ToString();
      auto cpu = ExpectMatchesReference(net, what.str(), seed);
      // The path under test: the optimizer merged the siblings and the backend split the result.
      if (cpu) {
        EXPECT_GT(CountSteps(*cpu, "Split"), 0) << what.str() << ": no horizontal fusion\n" << StepsText(*cpu);
      }
    }
  }
  // Siblings whose epilogues differ (not merged) next to siblings that match.
  Gen g(9100);
  NetworkDefinition net;
  auto x = net.AddInput("x", DataType::kFloat32, {1, 16, 9, 9});
  auto a = net.AddActivation(Conv(net, g, x, 16, {1, 1}, {}, true, "a"), ActivationType::kRelu);
  auto b = net.AddActivation(Conv(net, g, x, 8, {1, 1}, {}, true, "b"), ActivationType::kSigmoid);
  auto c = net.AddActivation(Conv(net, g, x, 8, {1, 1}, {}, true, "c"), ActivationType::kRelu);
  auto d = Conv(net, g, x, 8, {3, 3}, Geo({}, {1, 1}), true, "d");
  ASSERT_TRUE(net.MarkOutput(net.AddConcatenation({a, b, c, d}, 1, "cat"), "y").ok()) << net.status().ToString();
  ExpectMatchesReference(net, "4 convs of x[1,16,9,9]: relu(1x1 16), sigmoid(1x1 8), relu(1x1 8), 3x3 8 -> concat", 9100);
}

TEST(CpuBackend, SiblingFullyConnected) {
  uint32_t seed = 9200;
  const std::vector<std::vector<int64_t>> shapes = {{2, 5, 12}, {3, 16}, {2, 3, 4, 8}};
  const std::vector<std::vector<int64_t>> outs = {{8, 16, 4}, {16, 16}, {3, 5}};
  for (const auto& xd : shapes) {
    for (const auto& os : outs) {
      for (Act act : {Act::kNone, Act::kRelu, Act::kGelu}) {
        ++seed;
        Gen g(seed);
        const bool bias = seed % 4 != 0;
        std::ostringstream what;
        what << os.size() << " sibling FullyConnected (out " << DimsStr(os) << (bias ? " +bias" : " no-bias") << " -> "
             << ActName(act) << ") of x" << DimsStr(xd);
        NetworkDefinition net;
        auto x = net.AddInput("x", DataType::kFloat32, xd);
        for (size_t i = 0; i < os.size(); ++i) {
          auto y = Activate(net, FC(net, g, x, os[i], bias, "fc" + std::to_string(i)), act, "act" + std::to_string(i));
          ASSERT_TRUE(net.MarkOutput(y, "y" + std::to_string(i)).ok()) << what.str() << ": " << net.status().ToString();
        }
        auto cpu = ExpectMatchesReference(net, what.str(), seed);
        // FullyConnected on rank > 2 is MatMul (+ Add): those siblings are merged.
        if (cpu && xd.size() > 2) {
          EXPECT_GT(CountSteps(*cpu, "Split"), 0) << what.str() << ": no horizontal fusion\n" << StepsText(*cpu);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Layers the fast path does not cover run the reference kernels inside the CPU backend.

TEST(CpuBackend, ReferenceKernelFallback) {
  for (uint32_t s = 1; s <= 3; ++s) {
    Gen g(9500 + s);
    const int64_t n = s == 2 ? 3 : 1;
    std::ostringstream what;
    what << "mixed fast/fallback network on x[" << n << ",8,9,9]: conv -> HardSigmoid -> ReduceMean -> Pow 2 -> Mul, "
            "conv -> relu -> ReduceSum/ReduceL2/ReduceMax, Pow(sigmoid, input), HardSigmoid(0.3,0.4), softmax";
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {n, 8, 9, 9});
    auto e = net.AddInput("e", DataType::kFloat32, {1, 16, 1, 1});
    auto c1 = Conv(net, g, x, 16, {3, 3}, Geo({}, {1, 1}), true, "conv1", 2.0f);
    auto h = net.AddActivation(c1, ActivationType::kHardSigmoid, "hsig");
    auto r = net.AddReduce(h, ReduceOp::kMean, {2, 3}, true, "rmean");                    // [n,16,1,1]
    auto p = net.AddElementWise(r, Const(net, g, {1}, 2.0f, 2.0f), ElementWiseOp::kPow, "pow2");
    auto m = net.AddElementWise(h, p, ElementWiseOp::kMul, "gate");                        // [n,16,9,9]
    auto c2 = net.AddActivation(Conv(net, g, m, 16, {3, 3}, Geo({2, 2}, {1, 1}), true, "conv2"), ActivationType::kRelu);
    auto s1 = net.AddReduce(c2, ReduceOp::kSum, {1}, false, "rsum");                      // [n,5,5]
    auto s2 = net.AddReduce(c2, ReduceOp::kL2, {}, true, "rl2");                           // [1,1,1,1]
    auto s3 = net.AddReduce(c2, ReduceOp::kMax, {2, 3}, false, "rmax");                    // [n,16]
    auto pw = net.AddElementWise(net.AddActivation(c2, ActivationType::kSigmoid), e, ElementWiseOp::kPow, "powe");
    auto hs = net.AddActivation(pw, ActivationType::kHardSigmoid, 0.3f, 0.4f, "hsig2");
    auto fc = FC(net, g, s3, 6, true, "fc");
    auto sfc = net.AddActivation(fc, ActivationType::kSigmoid, "sfc");
    auto sm = net.AddSoftmax(net.AddElementWise(sfc, Const(net, g, {6}, 0.5f, 2.0f), ElementWiseOp::kPow, "powc"), -1, "sm");
    ASSERT_TRUE(net.MarkOutput(s1, "s1").ok());
    ASSERT_TRUE(net.MarkOutput(s2, "s2").ok());
    ASSERT_TRUE(net.MarkOutput(hs, "hs").ok());
    ASSERT_TRUE(net.MarkOutput(sm, "sm").ok()) << net.status().ToString();
    CheckOptions co;
    co.ranges["e"] = {0.5f, 3.0f};
    auto cpu = ExpectMatchesReference(net, what.str(), 9500 + s, co);
    if (cpu) {
      EXPECT_GT(CountSteps(*cpu, "", "ref"), 0) << "expected reference-kernel steps\n" << StepsText(*cpu);
      EXPECT_GT(CountSteps(*cpu, "", "onednn:"), 0) << "expected oneDNN steps\n" << StepsText(*cpu);
    }
  }
}

// ---------------------------------------------------------------------------------------
// A small random CNN end to end.

TEST(CpuBackend, RandomSmallNetworks) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    Gen g(9700 + seed);
    const int64_t n = g.Pick<int64_t>({1, 3}), c0 = g.Pick<int64_t>({3, 4}), h = g.I(11, 17), w = g.I(11, 17);
    std::ostringstream what;
    what << "random CNN #" << seed << " on x[" << n << "," << c0 << "," << h << "," << w << "]:";
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {n, c0, h, w});
    int64_t c = g.Pick<int64_t>({8, 16});
    auto t = net.AddActivation(BatchNorm(net, g, Conv(net, g, x, c, {3, 3}, Geo({2, 2}, {1, 1}), false)), ActivationType::kRelu);
    what << " stem conv3x3/2 " << c;
    if (g.B()) {
      PoolParams pp;
      pp.strides = {2, 2};
      pp.pads = {1, 1};
      t = net.AddPooling(t, PoolingType::kMax, {3, 3}, pp);
      what << ", maxpool3/2";
    }
    for (int blk = 0; blk < 3; ++blk) {
      const int kind = static_cast<int>(g.I(0, 3));
      if (kind == 0) {  // residual basic block
        auto b = net.AddActivation(BatchNorm(net, g, Conv(net, g, t, c, {3, 3}, Geo({}, {1, 1}), false)), ActivationType::kRelu);
        b = BatchNorm(net, g, Conv(net, g, b, c, {3, 3}, Geo({}, {1, 1}), false));
        t = net.AddActivation(net.AddElementWise(b, t, ElementWiseOp::kAdd), ActivationType::kRelu);
        what << ", basic block";
      } else if (kind == 1) {  // inverted bottleneck: 1x1 expand, depthwise 3x3, 1x1 project (+ skip)
        const int64_t e = 2 * c;
        auto b = net.AddActivation(BatchNorm(net, g, Conv(net, g, t, e, {1, 1}, {}, false)), ActivationType::kClip, 0.0f, 6.0f);
        b = net.AddActivation(BatchNorm(net, g, Conv(net, g, b, e, {3, 3}, Geo({}, {1, 1}, {}, e), false)), ActivationType::kClip, 0.0f, 6.0f);
        b = BatchNorm(net, g, Conv(net, g, b, c, {1, 1}, {}, false));
        t = net.AddElementWise(t, b, ElementWiseOp::kAdd);
        what << ", inverted bottleneck";
      } else if (kind == 2) {  // inception: sibling 1x1s + 3x3 branch, concat
        auto a = net.AddActivation(Conv(net, g, t, c / 2, {1, 1}), ActivationType::kRelu);
        auto b = net.AddActivation(Conv(net, g, t, c / 2, {1, 1}), ActivationType::kRelu);
        b = net.AddActivation(Conv(net, g, b, c / 2, {3, 3}, Geo({}, {1, 1})), ActivationType::kRelu);
        t = net.AddConcatenation({a, b}, 1);
        what << ", inception";
      } else {  // SiLU conv with a dilated 3x3
        t = net.AddActivation(BatchNorm(net, g, Conv(net, g, t, c, {3, 3}, Geo({}, {2, 2}, {2, 2}), false)), ActivationType::kSilu);
        what << ", dilated SiLU conv";
      }
    }
    auto gp = net.AddFlatten(net.AddGlobalPooling(t, PoolingType::kAverage), 1);
    auto logits = FC(net, g, gp, 10, true, "fc");
    auto prob = net.AddSoftmax(logits, -1, "prob");
    what << ", GAP, FC 10, softmax";
    ASSERT_TRUE(net.MarkOutput(logits, "logits").ok());
    ASSERT_TRUE(net.MarkOutput(prob, "prob").ok()) << what.str() << ": " << net.status().ToString();
    ExpectMatchesReference(net, what.str(), 9700 + seed);
  }
}

// ---------------------------------------------------------------------------------------
// Epilogues that become two eltwise post-ops of one oneDNN algorithm with different
// parameters: c - p (= linear(-1, 0) then linear(1, c)), (p - a) / b, relu(p * a) + b,
// LeakyRelu(0.2) then LeakyRelu(0.01); and p * a + b (which the optimizer may fold into
// conv/Gemm weights instead). Every producer kind that takes post-ops: conv (brgconv and
// 1x1 kernels), Gemm, MatMul with constant and with activation weights, binary, pooling.

TEST(CpuBackend, ScalarEpilogueChainsOnEveryProducer) {
  const std::vector<const char*> producers = {"conv3x3 16->16 of x[1,16,7,9]", "conv1x1 3->8 of x[1,3,7,9]",
                                              "FC (Gemm) x[3,16] -> 8", "FC (MatMul) x[2,5,16] -> 8",
                                              "MatMul a[2,5,7] x b[2,7,4]", "Add(x, y) of [2,8,5,7] inputs",
                                              "AveragePool 2x2 of x[1,16,8,8]"};
  const std::vector<const char*> epilogues = {"0.5 - p", "(p - 0.25) / 4", "relu(p * 2) + 0.5",
                                              "LeakyRelu(0.01)(LeakyRelu(0.2)(p))", "p * 2 + 0.5"};
  uint32_t seed = 9800;
  for (size_t pi = 0; pi < producers.size(); ++pi) {
    for (size_t ei = 0; ei < epilogues.size(); ++ei) {
      ++seed;
      Gen g(seed);
      const std::string what = std::string(epilogues[ei]) + " with p = " + producers[pi];
      NetworkDefinition net;
      NetworkTensor p;
      switch (pi) {
        case 0: p = Conv(net, g, net.AddInput("x", DataType::kFloat32, {1, 16, 7, 9}), 16, {3, 3}, Geo({}, {1, 1}), true, "p"); break;
        case 1: p = Conv(net, g, net.AddInput("x", DataType::kFloat32, {1, 3, 7, 9}), 8, {1, 1}, {}, true, "p"); break;
        case 2: p = FC(net, g, net.AddInput("x", DataType::kFloat32, {3, 16}), 8, true, "p"); break;
        case 3: p = FC(net, g, net.AddInput("x", DataType::kFloat32, {2, 5, 16}), 8, true, "p"); break;
        case 4:
          p = net.AddMatrixMultiply(net.AddInput("a", DataType::kFloat32, {2, 5, 7}),
                                    net.AddInput("b", DataType::kFloat32, {2, 7, 4}), "p");
          break;
        case 5:
          p = net.AddElementWise(net.AddInput("x", DataType::kFloat32, {2, 8, 5, 7}),
                                 net.AddInput("y", DataType::kFloat32, {2, 8, 5, 7}), ElementWiseOp::kAdd, "p");
          break;
        default: p = net.AddPooling(net.AddInput("x", DataType::kFloat32, {1, 16, 8, 8}), PoolingType::kAverage, {2, 2}, {}, "p"); break;
      }
      auto scalar = [&](float v, const std::string& name) { return Const(net, g, {1}, v, v, name); };
      NetworkTensor y;
      switch (ei) {
        case 0: y = net.AddElementWise(scalar(0.5f, "k_c"), p, ElementWiseOp::kSub, "res"); break;
        case 1:
          y = net.AddElementWise(net.AddElementWise(p, scalar(0.25f, "k_a"), ElementWiseOp::kSub, "s"), scalar(4.0f, "k_b"),
                                 ElementWiseOp::kDiv, "res");
          break;
        case 2:
          y = net.AddElementWise(net.AddActivation(net.AddElementWise(p, scalar(2.0f, "k_a"), ElementWiseOp::kMul, "m"),
                                                   ActivationType::kRelu, "r"),
                                 scalar(0.5f, "k_b"), ElementWiseOp::kAdd, "res");
          break;
        case 3:
          y = net.AddActivation(net.AddActivation(p, ActivationType::kLeakyRelu, 0.2f, 0.0f, "l1"), ActivationType::kLeakyRelu, "res");
          break;
        default:
          y = net.AddElementWise(net.AddElementWise(p, scalar(2.0f, "k_a"), ElementWiseOp::kMul, "m"), scalar(0.5f, "k_b"),
                                 ElementWiseOp::kAdd, "res");
          break;
      }
      ASSERT_TRUE(net.MarkOutput(y, "out").ok()) << what << ": " << net.status().ToString();
      ExpectMatchesReference(net, what, seed);
    }
  }
}

// ---------------------------------------------------------------------------------------
// The default thread count (all cores): oneDNN partitions the work across threads.

TEST(CpuBackend, MultiThreaded) {
  for (uint32_t seed = 1; seed <= 1; ++seed) {
    Gen g(9900 + seed);
    NetworkDefinition net;
    auto x = net.AddInput("x", DataType::kFloat32, {3, 16, 13, 13});
    auto a = net.AddActivation(BatchNorm(net, g, Conv(net, g, x, 32, {3, 3}, Geo({}, {1, 1}), false)), ActivationType::kRelu);
    auto b = BatchNorm(net, g, Conv(net, g, a, 32, {3, 3}, Geo({}, {1, 1}), false));
    auto r = net.AddActivation(net.AddElementWise(b, a, ElementWiseOp::kAdd), ActivationType::kRelu);
    auto s1 = net.AddActivation(Conv(net, g, r, 16, {1, 1}), ActivationType::kRelu);
    auto s2 = net.AddActivation(Conv(net, g, r, 16, {1, 1}), ActivationType::kRelu);
    auto cat = net.AddConcatenation({s1, s2, r}, 1);
    PoolParams pp;
    pp.strides = {2, 2};
    pp.pads = {1, 1};
    auto p = net.AddPooling(cat, PoolingType::kMax, {3, 3}, pp);
    auto t = net.AddTranspose(p, {0, 2, 3, 1});
    auto ln = net.AddLayerNormalization(t, g.Vec(64, 0.5f, 1.5f), g.Vec(64, -0.2f, 0.2f), -1, 1e-5f);
    auto fc = FC(net, g, ln, 10, true, "fc");
    auto sm = net.AddSoftmax(fc, -1, "sm");
    ASSERT_TRUE(net.MarkOutput(sm, "y").ok()) << net.status().ToString();
    CheckOptions co;
    // All cores, named explicitly: threads = 0 keeps whatever OpenMP team size an earlier
    // engine of this process set (1 in the tests above).
    co.threads = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
    ExpectMatchesReference(net, "multi-threaded: conv-BN-relu, residual, sibling 1x1s, concat, maxpool, transpose, LN, FC, softmax",
                           9900 + seed, co);
  }
}

}  // namespace
}  // namespace kiln

namespace kiln::cpu {
namespace {

// Gather along axis 0 (embedding lookups) runs kiln's row-copy kernel: int64 and int32
// indices, negative ones, any index shape, a non-float table; an index outside [-n, n)
// is an error naming the node, with nothing half-written.
TEST(CpuBackend, GatherRowsKernel) {
  for (DType idx_type : {DType::kInt64, DType::kInt32}) {
    testing::GraphBuilder b;
    ValueId ids = b.Input("ids", idx_type, {2, 3});
    Tensor table(DType::kFloat32, {5, 4});
    for (int64_t i = 0; i < table.numel(); ++i) table.span<float>()[static_cast<size_t>(i)] = static_cast<float>(i);
    Tensor itable(DType::kInt64, {5, 2});
    for (int64_t i = 0; i < itable.numel(); ++i) itable.span<int64_t>()[static_cast<size_t>(i)] = 100 + i;
    b.Output(b.Op("Gather", "embed", {b.Const("table", table), ids}));
    b.Output(b.Op("Gather", "embed_int", {b.Const("itable", itable), ids}));
    auto g = std::make_shared<Graph>(b.Build());
    BuildOptions o;
    o.optimize = false;
    auto engine = BuildEngineFromGraph(g, o);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    EXPECT_NE(EngineBackendSummary(**engine).find("kiln:gather_rows"), std::string::npos) << EngineBackendSummary(**engine);
    std::vector<int64_t> raw = {0, 4, -1, 2, -5, 3};
    std::vector<int32_t> raw32(raw.begin(), raw.end());
    void* ptr = idx_type == DType::kInt64 ? static_cast<void*>(raw.data()) : static_cast<void*>(raw32.data());
    const DataType pub = idx_type == DType::kInt64 ? DataType::kInt64 : DataType::kInt32;
    auto out = (*engine)->Infer({{"ids", HostTensor::Wrap(pub, {2, 3}, ptr)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const HostTensor& y = out->at(g->value(g->outputs()[0]).name);
    const HostTensor& yi = out->at(g->value(g->outputs()[1]).name);
    ASSERT_EQ(y.shape(), (std::vector<int64_t>{2, 3, 4}));
    ASSERT_EQ(yi.shape(), (std::vector<int64_t>{2, 3, 2}));
    for (size_t i = 0; i < raw.size(); ++i) {
      const int64_t r = raw[i] < 0 ? raw[i] + 5 : raw[i];
      for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(y.data_as<float>()[i * 4 + static_cast<size_t>(j)], static_cast<float>(r * 4 + j));
      for (int64_t j = 0; j < 2; ++j) EXPECT_EQ(yi.data_as<int64_t>()[i * 2 + static_cast<size_t>(j)], 100 + r * 2 + j);
    }
    raw[4] = 5;
    raw32[4] = 5;
    auto bad = (*engine)->Infer({{"ids", HostTensor::Wrap(pub, {2, 3}, ptr)}});
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("embed"), std::string::npos) << bad.status().message();
    EXPECT_NE(bad.status().message().find("index 5 at position 4 is out of range for 5 rows"), std::string::npos)
        << bad.status().message();
  }
}

// kiln's depthwise kernel inside an engine (tactic "kiln_dw", as a plan records it): NHWC
// slots between oneDNN layers, fused activations, odd channel counts; the plan keeps the
// tactic and runs the same kernel.
TEST(CpuBackend, KilnDepthwiseTacticInAnEngine) {
  for (int64_t ch : {16, 24, 37}) {
    testing::GraphBuilder b;
    std::mt19937 rng(static_cast<uint32_t>(ch));
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    auto rand = [&](std::vector<int64_t> dims) { return UniformTensor(rng, std::move(dims)); };
    AttrMap pad1, dw1, dw2;
    pad1.set("pads", Attr::Ints({1, 1, 1, 1}));
    dw1.set("group", Attr::Int(ch));
    dw1.set("pads", Attr::Ints({1, 1, 1, 1}));
    dw2.set("group", Attr::Int(ch));
    dw2.set("pads", Attr::Ints({2, 2, 2, 2}));
    dw2.set("strides", Attr::Ints({2, 2}));
    ValueId x = b.Input("x", DType::kFloat32, {2, 3, 19, 23});
    ValueId c1 = b.Op("Conv", "expand", {x, b.Const("w1", rand({ch, 3, 3, 3})), b.Const("b1", rand({ch}))}, pad1);
    ValueId d1 = b.Op("Conv", "dw3", {b.Op("Relu", "r1", {c1}), b.Const("w2", rand({ch, 1, 3, 3})), b.Const("b2", rand({ch}))}, dw1);
    ValueId r2 = b.Op("Clip", "relu6", {d1, b.Const("lo", Tensor::FromVector<float>({0})), b.Const("hi", Tensor::FromVector<float>({6}))});
    ValueId d2 = b.Op("Conv", "dw5s2", {r2, b.Const("w3", rand({ch, 1, 5, 5}))}, dw2);
    ValueId y = b.Op("Conv", "project", {d2, b.Const("w4", rand({8, ch, 1, 1}))});
    b.Output(y);
    auto g = std::make_shared<Graph>(b.Build());
    auto ref = ReferenceEngine(*g);
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ASSERT_TRUE(OptimizeGraph(*g).ok());
    int forced = 0;
    for (NodeId n = 0; n < g->num_nodes(); ++n)
      if (!g->node(n).dead && g->node(n).op_type == "Conv" && g->node(n).attrs.GetInt("group", 1).value() == ch) {
        g->node(n).attrs.set("kiln.tactic", Attr::String("kiln_dw"));
        ++forced;
      }
    ASSERT_EQ(forced, 2);
    auto mem = PlanMemory(*g);
    ASSERT_TRUE(mem.ok());
    auto engine = MakeEngineFromOptimized(g, std::move(*mem), {});
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    const std::string summary = EngineBackendSummary(**engine);
    if (summary.find("kiln:dw_nhwc") == std::string::npos) GTEST_SKIP() << "no AVX2/AVX-512 kernel here: " << summary;
    EXPECT_NE(summary.find("2 kiln:dw_nhwc"), std::string::npos) << summary;
    std::vector<float> xv(2 * 3 * 19 * 23);
    for (float& f : xv) f = 2.0f * u(rng);
    const std::map<std::string, HostTensor> in = {{"x", HostTensor::Wrap(xv.data(), {2, 3, 19, 23})}};
    auto got = (*engine)->Infer(in);
    auto want = (*ref)->Infer(in);
    ASSERT_TRUE(got.ok() && want.ok());
    const HostTensor &a = got->begin()->second, &w = want->begin()->second;
    ASSERT_EQ(a.shape(), w.shape());
    for (int64_t i = 0; i < a.numel(); ++i) ASSERT_NEAR(a.data_as<float>()[i], w.data_as<float>()[i], 1e-4) << "ch " << ch << " at " << i;
    const std::string path = ::testing::TempDir() + "/kiln_dw.plan";
    ASSERT_TRUE(kiln::SavePlan(**engine, path).ok());
    auto loaded = Engine::Load(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_NE(EngineBackendSummary(**loaded).find("2 kiln:dw_nhwc"), std::string::npos) << EngineBackendSummary(**loaded);
    auto again = (*loaded)->Infer(in);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(std::memcmp(again->begin()->second.data(), a.data(), a.nbytes()), 0);
    std::remove(path.c_str());
  }
}

}  // namespace
}  // namespace kiln::cpu

namespace kiln {
namespace {

// A CPU plan stores every weight in the layout its kernel reads (FORMAT.md, version 3):
// a convolution padded to its block size (kiln.packed_weights), a Winograd convolution and
// a Gemm operand as kernel copies (kiln.kernel_weights). Loading it repacks nothing and
// gives bit-identical results; the reference backend still reads the plan; a kernel copy
// whose descriptor does not match what the loading CPU's kernel wants is repacked from
// the row-major constant instead (same results).
TEST(CpuBackend, PlanStoresWeightsInTheirKernelLayouts) {
  testing::GraphBuilder b;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  auto rand = [&](std::vector<int64_t> dims) { return UniformTensor(rng, std::move(dims)); };
  AttrMap pad1, pad1b, gemm;
  pad1.set("pads", Attr::Ints({1, 1, 1, 1}));
  pad1b.set("pads", Attr::Ints({1, 1, 1, 1}));
  gemm.set("transB", Attr::Int(1));
  ValueId x = b.Input("x", DType::kFloat32, {1, 3, 17, 17});
  ValueId c1 = b.Op("Conv", "stem", {x, b.Const("w1", rand({10, 3, 3, 3})), b.Const("b1", rand({10}))}, pad1);
  ValueId c2 = b.Op("Conv", "expand", {b.Op("Relu", "r1", {c1}), b.Const("w2", rand({16, 10, 1, 1}))});
  ValueId c3 = b.Op("Conv", "wino", {b.Op("Relu", "r2", {c2}), b.Const("w3", rand({32, 16, 3, 3})), b.Const("b3", rand({32}))}, pad1b);
  ValueId p = b.Op("Flatten", "flat", {b.Op("GlobalAveragePool", "gap", {c3})});
  ValueId y = b.Op("Gemm", "head", {p, b.Const("w4", rand({7, 32})), b.Const("b4", rand({7}))}, gemm);
  b.Output(y);
  auto g = std::make_shared<Graph>(b.Build());
  auto ref = ReferenceEngine(*g);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  ASSERT_TRUE(OptimizeGraph(*g).ok());
  for (NodeId n = 0; n < g->num_nodes(); ++n)
    if (!g->node(n).dead && g->node(n).op_type == "Conv" && g->node(n).name == "wino")
      g->node(n).attrs.set("kiln.tactic", Attr::String("winograd"));
    else if (!g->node(n).dead && g->node(n).op_type == "Gemm")  // oneDNN's layout: a kernel copy (not timed)
      g->node(n).attrs.set("kiln.tactic", Attr::String("w_any"));
  auto mem = PlanMemory(*g);
  ASSERT_TRUE(mem.ok());
  auto engine = MakeEngineFromOptimized(g, std::move(*mem), {});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const bool wino = ChoseWinograd(**engine);  // oneDNN's Winograd needs AVX-512
  std::vector<float> xv(3 * 17 * 17);
  for (float& f : xv) f = 2.0f * u(rng);
  const std::map<std::string, HostTensor> in = {{"x", HostTensor::Wrap(xv.data(), {1, 3, 17, 17})}};
  auto got = (*engine)->Infer(in);
  auto want = (*ref)->Infer(in);
  ASSERT_TRUE(got.ok() && want.ok());
  const HostTensor& a = got->begin()->second;
  EXPECT_EQ(Compare(a, want->begin()->second, wino ? kWinogradTol : kTol), "");

  const std::string path = ::testing::TempDir() + "/kernel_layouts.plan";
  ASSERT_TRUE(kiln::SavePlan(**engine, path).ok());
  std::string bytes;
  {
    std::ifstream f(path, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  EXPECT_NE(bytes.find("kiln.kernel_weights"), std::string::npos) << "the Gemm operand has no kernel copy";
  // Which layouts are padded is oneDNN's choice for this CPU: report rather than demand.
  const bool padded = bytes.find("kiln.packed_weights") != std::string::npos;
  std::printf("plan: %s padded layout, %s Winograd\n", padded ? "a" : "no", wino ? "with" : "no");

  auto loaded = Engine::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const cpu::WeightsPacking packing = cpu::WeightsPackingOf(*EngineCpuProgram(**loaded));
  EXPECT_EQ(packing.repacked_bytes, 0) << StepsText(**loaded);
  EXPECT_GT(packing.in_place_bytes, 0);
  auto again = (*loaded)->Infer(in);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(std::memcmp(again->begin()->second.data(), a.data(), a.nbytes()), 0);

  BuildOptions on_ref;
  on_ref.backend = Backend::kRef;
  auto ref_loaded = LoadOrBuild(path, on_ref);
  ASSERT_TRUE(ref_loaded.ok()) << ref_loaded.status().ToString();
  auto ref_out = (*ref_loaded)->Infer(in);
  ASSERT_TRUE(ref_out.ok());
  EXPECT_EQ(Compare(ref_out->begin()->second, want->begin()->second, kTol), "");

  // A padded layout's bytes are checked against its descriptor: a blob of another size, or
  // any single-byte change of the descriptor, is an error naming the attribute or still a
  // valid layout of those bytes (this runs under ASan in sanitize.sh).
  if (padded) {
    auto p = LoadPlan(path);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    NodeId pn = -1;
    for (NodeId n = 0; n < p->graph->num_nodes() && pn < 0; ++n)
      if (p->graph->node(n).attrs.has(cpu::kPackedWeightsAttr)) pn = n;
    ASSERT_GE(pn, 0);
    {
      Graph copy = *p->graph;
      const Tensor& blob = copy.node(pn).attrs.find(cpu::kPackedWeightsAttr)->t;
      Tensor shorter = Tensor::FromExternal(DType::kUInt8, {blob.numel() - 64}, const_cast<void*>(blob.raw_data()), nullptr);
      copy.node(pn).attrs.set(cpu::kPackedWeightsAttr, Attr::TensorValue(std::move(shorter)));
      Status st = cpu::UnpackWeights(copy);
      ASSERT_FALSE(st.ok());
      EXPECT_NE(st.message().find("kiln.packed_md"), std::string::npos) << st.ToString();
    }
    const Tensor md = p->graph->node(pn).attrs.find(cpu::kPackedMdAttr)->t;
    int rejected = 0;
    for (int64_t pos = 0; pos < md.numel(); ++pos) {
      Graph copy = *p->graph;
      Tensor changed = md.Clone();
      changed.data<uint8_t>()[pos] ^= 0x41;
      copy.node(pn).attrs.set(cpu::kPackedMdAttr, Attr::TensorValue(std::move(changed)));
      Status st = cpu::UnpackWeights(copy);
      if (!st.ok()) {
        ++rejected;
        EXPECT_NE(st.message().find("kiln.packed_md"), std::string::npos) << st.ToString();
      }
    }
    EXPECT_GT(rejected, 0);
  }

  // Damaged kernel descriptors: repacked from the constant, same bytes out.
  auto plan = LoadPlan(path);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  int damaged = 0;
  for (NodeId n = 0; n < plan->graph->num_nodes(); ++n) {
    Node& node = plan->graph->node(n);
    const Attr* md = node.attrs.find(cpu::kKernelMdAttr);
    if (md == nullptr) continue;
    Tensor t = md->t.Clone();
    t.data<uint8_t>()[3] ^= 0x5a;
    node.attrs.set(cpu::kKernelMdAttr, Attr::TensorValue(std::move(t)));
    ++damaged;
  }
  ASSERT_GE(damaged, 1);
  PlanOptions po;
  po.backend = "cpu";
  const std::string path2 = ::testing::TempDir() + "/kernel_layouts_damaged.plan";
  ASSERT_TRUE(WritePlan(*plan->graph, plan->memory, po, path2).ok());
  auto reloaded = Engine::Load(path2);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().ToString();
  EXPECT_GT(cpu::WeightsPackingOf(*EngineCpuProgram(**reloaded)).repacked_bytes, 0);
  auto third = (*reloaded)->Infer(in);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(std::memcmp(third->begin()->second.data(), a.data(), a.nbytes()), 0);
  std::remove(path.c_str());
  std::remove(path2.c_str());
}

}  // namespace
}  // namespace kiln
