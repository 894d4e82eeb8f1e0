// Per-layer fallback (backends/partition.h): a graph the CPU backend cannot take whole
// runs its static numeric layers as CPU islands and the rest on the reference kernels —
// same results as the reference backend, the host layers named, strict mode refusing them,
// a plan that round-trips bit-exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <thread>
#include <unistd.h>

#include "api/engine_internal.h"
#include "api/optimize.h"
#include "backends/partition.h"
#include "runtime/backend_registry.h"
#include "kiln/kiln.h"
#include "passes/pass_test_util.h"

namespace kiln {
namespace {

using testing::Attrs;
using testing::GraphBuilder;
using testing::RandomTensor;

ValueId Conv(GraphBuilder& b, const std::string& name, ValueId x, int64_t cin, int64_t cout, uint32_t seed) {
  return b.Op("Conv", name, {x, b.Const(name + "_w", RandomTensor({cout, cin, 3, 3}, seed, 0.3f)), b.Const(name + "_b", RandomTensor({cout}, seed + 1))},
              Attrs({{"pads", Attr::Ints({1, 1, 1, 1})}}));
}

// conv -> relu (island 0) -> Cast to string -> Cast to float (host: strings) -> conv ->
// sigmoid, + relu (island 1: the Add reads both islands' values, so it joins the later one),
// and NonZero(relu > 0.5) (host: its shape depends on the data).
Graph MixedGraph() {
  GraphBuilder b("mixed");
  ValueId x = b.Input("x", DType::kFloat32, {1, 3, 8, 8});
  ValueId r = b.Op("Relu", "relu", {Conv(b, "conv_a", x, 3, 4, 1)});
  ValueId s = b.Op("Cast", "to_text", {r}, Attrs({{"to", Attr::Int(8)}}));
  ValueId f = b.Op("Cast", "from_text", {s}, Attrs({{"to", Attr::Int(1)}}));
  ValueId y = b.Op("Add", "residual", {b.Op("Sigmoid", "sigmoid", {Conv(b, "conv_b", f, 4, 4, 3)}), r});
  b.Output(y);
  Tensor half(DType::kFloat32, {});
  half.data<float>()[0] = 0.5f;
  b.Output(b.Op("NonZero", "nonzero", {b.Op("Greater", "greater", {r, b.Const("half", half)})}));
  b.Output(s);
  return b.Build();
}

// The graphs' input x [1,3,8,8]: seeded N(0,1) values.
HostTensor InputX(uint32_t seed) {
  const Tensor x = RandomTensor({1, 3, 8, 8}, seed);
  return HostTensor::Copy(DataType::kFloat32, {1, 3, 8, 8}, std::vector<float>(x.data<float>(), x.data<float>() + 192));
}

StatusOr<std::map<std::string, HostTensor>> Infer(const Engine& e) { return e.Infer({{"x", InputX(7)}}); }

TEST(Partition, IslandsAreConvexAndHostLayersNamed) {
  Graph g = MixedGraph();
  ASSERT_TRUE(OptimizeGraph(g).ok());
  BackendOptions co;
  co.threads = 1;
  auto part = CompilePartitioned(g, *FindBackend(Backend::kCpu), co);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  ASSERT_EQ(part->islands.size(), 2u);
  std::string host;
  for (const std::string& l : part->host_layers) host += l + "\n";
  EXPECT_NE(host.find("'to_text' (Cast): reference backend - output 'to_text_out' holds strings"), std::string::npos) << host;
  EXPECT_NE(host.find("'from_text' (Cast): reference backend - input 'to_text_out' holds strings"), std::string::npos) << host;
  EXPECT_NE(host.find("'nonzero' (NonZero): reference backend - output 'nonzero_out' has dims known only as it runs (int64[4,?]); its output shape depends on the values of 'greater_out'"), std::string::npos) << host;
  EXPECT_EQ(part->host_layers.size(), 3u) << host;
  // The host graph: three host layers and one node per island, in a valid order.
  EXPECT_EQ(part->host->num_live_nodes(), 5);
  EXPECT_TRUE(part->host->TopologicalOrder().ok());
  // Island 1 (conv_b, sigmoid, residual) reads relu from island 0 and from_text from the host.
  const Graph& i1 = *part->islands[1].program->graph();
  EXPECT_EQ(i1.inputs().size(), 2u);
  EXPECT_EQ(i1.outputs().size(), 1u);
}

TEST(Partition, EngineMatchesTheReferenceAndSaysWhatFallsBack) {
  BuildOptions cpu_opts;
  cpu_opts.threads = 1;
  auto cpu_engine = BuildEngineFromGraph(std::make_shared<Graph>(MixedGraph()), cpu_opts);
  ASSERT_TRUE(cpu_engine.ok()) << cpu_engine.status().ToString();
  BuildOptions ref_opts;
  ref_opts.backend = Backend::kRef;
  auto ref_engine = BuildEngineFromGraph(std::make_shared<Graph>(MixedGraph()), ref_opts);
  ASSERT_TRUE(ref_engine.ok()) << ref_engine.status().ToString();
  const std::string summary = EngineBackendSummary(**cpu_engine);
  EXPECT_NE(summary.find("in 2 CPU island(s)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("3 layer(s) on the reference backend"), std::string::npos) << summary;
  const std::vector<std::string> slow = EngineSlowPaths(**cpu_engine);
  int host = 0;
  for (const std::string& s : slow) host += s.find("reference backend -") != std::string::npos;
  EXPECT_EQ(host, 3);

  auto a = Infer(**cpu_engine);
  auto b = Infer(**ref_engine);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const HostTensor& ya = a->at("residual_out");
  const HostTensor& yb = b->at("residual_out");
  ASSERT_EQ(ya.shape(), yb.shape());
  for (int64_t i = 0; i < ya.numel(); ++i) EXPECT_NEAR(ya.data_as<float>()[i], yb.data_as<float>()[i], 1e-4) << i;
  const HostTensor& za = a->at("nonzero_out");
  const HostTensor& zb = b->at("nonzero_out");
  ASSERT_EQ(za.shape(), zb.shape());
  EXPECT_EQ(0, std::memcmp(za.data(), zb.data(), za.nbytes()));

  // Strict mode refuses the layers the CPU backend leaves to the reference kernels, by name.
  BuildOptions strict = cpu_opts;
  strict.strict = true;
  auto refused = BuildEngineFromGraph(std::make_shared<Graph>(MixedGraph()), strict);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("'nonzero' (NonZero)"), std::string::npos) << refused.status().ToString();

  // A plan keeps the islands' kernel choices and weights; its engine computes the same bits.
  const std::string plan = ::testing::TempDir() + "/partition_" + std::to_string(getpid()) + ".plan";
  ASSERT_TRUE(SavePlan(**cpu_engine, plan).ok());
  auto loaded = LoadOrBuild(plan, cpu_opts);
  std::remove(plan.c_str());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_NE(EngineBackendSummary(**loaded).find("in 2 CPU island(s)"), std::string::npos);
  auto c = Infer(**loaded);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(0, std::memcmp(c->at("residual_out").data(), ya.data(), ya.nbytes()));
}

// conv -> relu -> NonZero(relu > 0.5) -> Transpose -> Cast, then (dims known only as it runs)
// times a ConstantOfShape of its own shape, MatMul, Relu: a dynamic island after the NonZero.
Graph NonZeroThenMatMul() {
  GraphBuilder b("dynamic");
  ValueId x = b.Input("x", DType::kFloat32, {1, 3, 8, 8});
  ValueId r = b.Op("Relu", "relu", {Conv(b, "conv", x, 3, 2, 5)});
  Tensor half(DType::kFloat32, {});
  half.data<float>()[0] = 0.5f;
  ValueId idx = b.Op("Transpose", "tr", {b.Op("NonZero", "nz", {b.Op("Greater", "gt", {r, b.Const("half", half)})})},
                     Attrs({{"perm", Attr::Ints({1, 0})}}));
  ValueId f0 = b.Op("Cast", "to_float", {idx}, Attrs({{"to", Attr::Int(1)}}));
  // A shape computed from the run's dims inside the island: ConstantOfShape is a fill there.
  Tensor two(DType::kFloat32, {1});
  two.data<float>()[0] = 2.f;
  ValueId f = b.Op("Mul", "twice", {f0, b.Op("ConstantOfShape", "twos", {b.Op("Shape", "shape", {f0})}, Attrs({{"value", Attr::TensorValue(two)}}))});
  b.Output(b.Op("Relu", "relu2", {b.Op("MatMul", "mm", {f, b.Const("w", RandomTensor({4, 16}, 9))})}));
  return b.Build();
}

// Layers after a NonZero have dims known only at run time: they form a dynamic island,
// compiled for the dims each run brings (MatMul on oneDNN, not on the reference kernels).
TEST(Partition, DynamicIslandCompilesPerRunShapes) {
  const Graph g = NonZeroThenMatMul();
  BuildOptions o;
  o.threads = 1;
  auto e = BuildEngineFromGraph(std::make_shared<Graph>(g), o);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_NE(EngineBackendSummary(**e).find("compiled per input shapes as they run"), std::string::npos) << EngineBackendSummary(**e);
  BuildOptions ro;
  ro.backend = Backend::kRef;
  auto ref = BuildEngineFromGraph(std::make_shared<Graph>(g), ro);
  ASSERT_TRUE(ref.ok());
  auto ctx = (*e)->CreateContext();
  for (uint32_t seed : {7u, 8u, 7u}) {  // two shapes, then the first again (cached)
    const HostTensor in = InputX(seed);
    ASSERT_TRUE(ctx->SetInput("x", in).ok());
    SetProfiling(*ctx, true);
    ASSERT_TRUE(ctx->Run().ok());
    auto want = (*ref)->Infer({{"x", in}});
    ASSERT_TRUE(want.ok());
    auto got = ctx->Output(0);
    ASSERT_TRUE(got.ok());
    const HostTensor& w = want->begin()->second;
    ASSERT_EQ(got->shape(), w.shape());
    for (int64_t i = 0; i < w.numel(); ++i) ASSERT_NEAR(got->data_as<float>()[i], w.data_as<float>()[i], 1e-4);
    auto prof = LastRunProfile(*ctx);
    ASSERT_TRUE(prof.ok()) << prof.status().ToString();
    bool fast_matmul = false, fill = false;
    for (const ProfiledStep& s : *prof) {
      fast_matmul = fast_matmul || (s.op == "MatMul" && s.impl.rfind("onednn", 0) == 0);
      fill = fill || s.impl == "kiln:fill";
    }
    EXPECT_TRUE(fast_matmul);
    EXPECT_TRUE(fill);
  }
}

// One partitioned engine, four threads each with its own context and its own input shapes
// for the dynamic island: every result equals the reference.
TEST(Partition, ContextsRunConcurrently) {
  const Graph g = NonZeroThenMatMul();
  BuildOptions o;
  o.threads = 1;
  auto e = BuildEngineFromGraph(std::make_shared<Graph>(g), o);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  BuildOptions ro;
  ro.backend = Backend::kRef;
  auto ref = BuildEngineFromGraph(std::make_shared<Graph>(g), ro);
  ASSERT_TRUE(ref.ok());
  std::vector<HostTensor> inputs, expected;
  for (uint32_t seed = 20; seed < 24; ++seed) {
    inputs.push_back(InputX(seed));
    auto want = (*ref)->Infer({{"x", inputs.back()}});
    ASSERT_TRUE(want.ok());
    expected.push_back(want->begin()->second);
  }
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      auto ctx = (*e)->CreateContext();
      for (int it = 0; it < 20; ++it) {
        const size_t k = static_cast<size_t>((t + it) % 4);
        if (!ctx->SetInput("x", inputs[k]).ok() || !ctx->Run().ok()) { errors[static_cast<size_t>(t)] = "run failed"; return; }
        auto got = ctx->Output(0);
        if (!got.ok() || got->shape() != expected[k].shape()) { errors[static_cast<size_t>(t)] = "wrong shape"; return; }
        for (int64_t i = 0; i < got->numel(); ++i)
          if (std::abs(got->data_as<float>()[i] - expected[k].data_as<float>()[i]) > 1e-4f) { errors[static_cast<size_t>(t)] = "wrong value"; return; }
      }
    });
  for (auto& th : threads) th.join();
  for (const std::string& err : errors) EXPECT_EQ(err, "");
}

}  // namespace
}  // namespace kiln
