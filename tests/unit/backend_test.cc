// The backend interface (backends/backend.h) and its registry (runtime/backend_registry.h):
// every registered backend compiles and runs the same graph to the same results, says what it
// can run per node, and the partitioner follows that capability — a layer a backend refuses
// goes to the reference backend, not the whole graph.
#include <gtest/gtest.h>

#include <cstring>

#include "api/optimize.h"
#include "backends/partition.h"
#include "kiln/kiln.h"
#include "passes/pass_test_util.h"
#include "runtime/backend_registry.h"

namespace kiln {
namespace {

using testing::Attrs;
using testing::GraphBuilder;
using testing::RandomTensor;

// x [2,3,8,8] -> conv -> relu -> conv -> sigmoid -> global average pool (two outputs).
Graph SmallCnn() {
  GraphBuilder b("small_cnn");
  ValueId x = b.Input("x", DType::kFloat32, {2, 3, 8, 8});
  auto conv = [&](const std::string& name, ValueId in, int64_t cin, int64_t cout, uint32_t seed) {
    return b.Op("Conv", name,
                {in, b.Const(name + "_w", RandomTensor({cout, cin, 3, 3}, seed, 0.3f)),
                 b.Const(name + "_b", RandomTensor({cout}, seed + 1))},
                Attrs({{"pads", Attr::Ints({1, 1, 1, 1})}}));
  };
  ValueId r = b.Op("Relu", "relu", {conv("conv_a", x, 3, 8, 1)});
  ValueId s = b.Op("Sigmoid", "sigmoid", {conv("conv_b", r, 8, 4, 3)});
  b.Output(s);
  b.Output(b.Op("GlobalAveragePool", "pool", {s}));
  return b.Build();
}

std::vector<RValue> Inputs(const Graph& g, uint32_t seed) {
  std::vector<RValue> in;
  for (ValueId v : g.inputs())
    if (!g.value(v).constant) in.emplace_back(RandomTensor(g.value(v).type.shape.Sizes(), seed));
  return in;
}

TEST(BackendRegistry, EveryBackendOnceUnderItsKind) {
  const std::vector<const ExecutionBackend*> all = RegisteredBackends();
  ASSERT_GE(all.size(), 2u);
  for (Backend kind : {Backend::kCpu, Backend::kRef}) {
    const ExecutionBackend* b = FindBackend(kind);
    ASSERT_NE(b, nullptr) << BackendName(kind);
    EXPECT_EQ(b->kind(), kind);
    EXPECT_STREQ(b->name(), BackendName(kind));
    int seen = 0;
    for (const ExecutionBackend* r : all) seen += r == b ? 1 : 0;
    EXPECT_EQ(seen, 1) << b->name();
  }
  EXPECT_TRUE(FindBackend(Backend::kRef)->CheckPrecision("fp32").ok());
  const Status bf16 = FindBackend(Backend::kRef)->CheckPrecision("bf16");
  EXPECT_FALSE(bf16.ok());
  EXPECT_NE(bf16.message().find("reference backend is FP32"), std::string::npos) << bf16.message();
}

TEST(BackendInterface, EveryBackendRunsTheSameGraphAlike) {
  Graph original = SmallCnn();
  auto g = std::make_shared<Graph>(original);
  ASSERT_TRUE(OptimizeGraph(*g).ok());
  const std::vector<RValue> in = Inputs(*g, 5);
  std::vector<std::vector<RValue>> results;
  for (const ExecutionBackend* backend : RegisteredBackends()) {
    SCOPED_TRACE(backend->name());
    ASSERT_TRUE(backend->CheckGraph(*g).ok());
    BackendOptions options;
    options.threads = 1;
    auto program = backend->Compile(g, options);
    ASSERT_TRUE(program.ok()) << program.status().ToString();
    EXPECT_EQ((*program)->backend(), backend->kind());
    EXPECT_FALSE((*program)->steps().empty());
    EXPECT_EQ((*program)->graph().get(), g.get());
    std::vector<Tensor> types;
    if ((*program)->OutputTypes(&types)) {
      ASSERT_EQ(types.size(), 2u);
      EXPECT_EQ(types[0].dims(), (std::vector<int64_t>{2, 4, 8, 8}));
      EXPECT_EQ(types[1].dims(), (std::vector<int64_t>{2, 4, 1, 1}));
    }
    // Two contexts of one program: independent state, the same results; profiling gives one
    // time per step.
    std::unique_ptr<BackendContext> a = (*program)->CreateContext(), b = (*program)->CreateContext();
    a->set_profiling(true);
    std::vector<RValue> out_a, out_b;
    ASSERT_TRUE(a->Run(in, &out_a).ok());
    ASSERT_TRUE(b->Run(in, &out_b).ok());
    EXPECT_EQ(a->step_ms().size(), (*program)->steps().size());
    ASSERT_EQ(out_a.size(), 2u);
    ASSERT_EQ(out_b.size(), 2u);
    for (size_t o = 0; o < out_a.size(); ++o) {
      ASSERT_TRUE(out_a[o].is_tensor());
      ASSERT_EQ(out_a[o].tensor.nbytes(), out_b[o].tensor.nbytes());
      EXPECT_EQ(std::memcmp(out_a[o].tensor.raw_data(), out_b[o].tensor.raw_data(), out_a[o].tensor.nbytes()), 0);
    }
    results.push_back(std::move(out_a));
  }
  // Every backend against the first (the CPU backend against the reference one).
  for (size_t r = 1; r < results.size(); ++r)
    for (size_t o = 0; o < results[0].size(); ++o) {
      const Tensor& x = results[0][o].tensor;
      const Tensor& y = results[r][o].tensor;
      ASSERT_EQ(x.dims(), y.dims());
      for (int64_t i = 0; i < x.numel(); ++i)
        ASSERT_NEAR(x.data<float>()[i], y.data<float>()[i], 1e-4) << "output " << o << " element " << i;
    }
}

TEST(BackendInterface, CapabilityPerNode) {
  GraphBuilder b("strings");
  ValueId x = b.Input("x", DType::kFloat32, {4});
  ValueId s = b.Op("Cast", "to_text", {x}, Attrs({{"to", Attr::Int(8)}}));
  b.Output(s);
  Graph g = b.Build();
  const NodeId cast = g.value(s).producer;
  const std::string why = FindBackend(Backend::kCpu)->WhyNotSupported(g, cast);
  EXPECT_NE(why.find("holds strings"), std::string::npos) << why;
  EXPECT_EQ(FindBackend(Backend::kRef)->WhyNotSupported(g, cast), "");
  EXPECT_FALSE(FindBackend(Backend::kCpu)->CheckGraph(g).ok());
}

// The CPU backend, but without a kernel for Relu: what a backend that covers fewer ops (a
// GPU one) looks like to the partitioner.
class NoReluBackend final : public ExecutionBackend {
 public:
  Backend kind() const override { return Backend::kCpu; }
  std::string WhyNotSupported(const Graph& g, NodeId n) const override {
    if (g.node(n).op_type == "Relu") return "no Relu kernel";
    return cpu_->WhyNotSupported(g, n);
  }
  Status CheckGraph(const Graph& g) const override {
    for (NodeId n = 0; n < g.num_nodes(); ++n)
      if (!g.node(n).dead)
        if (std::string why = WhyNotSupported(g, n); !why.empty()) return Unimplemented(why);
    return cpu_->CheckGraph(g);
  }
  Status CheckPrecision(const std::string& p) const override { return cpu_->CheckPrecision(p); }
  StatusOr<std::shared_ptr<const BackendProgram>> Compile(std::shared_ptr<const Graph> g,
                                                          const BackendOptions& o) const override {
    return cpu_->Compile(std::move(g), o);
  }
  int EffectiveThreads(int threads) const override { return cpu_->EffectiveThreads(threads); }

 private:
  const ExecutionBackend* cpu_ = FindBackend(Backend::kCpu);
};

TEST(BackendInterface, PartitionFollowsTheBackendsCapability) {
  Graph g = SmallCnn();
  // Keep Relu a layer of its own (unfused), as a backend without it would see the graph.
  NoReluBackend backend;
  EXPECT_FALSE(backend.CheckGraph(g).ok());
  BackendOptions options;
  options.threads = 1;
  auto part = CompilePartitioned(g, backend, options);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  ASSERT_EQ(part->host_layers.size(), 1u);
  EXPECT_NE(part->host_layers[0].find("'relu' (Relu): reference backend - no Relu kernel"), std::string::npos)
      << part->host_layers[0];
  EXPECT_EQ(part->islands.size(), 2u);  // before and after the Relu
  EXPECT_EQ(part->island_layers, 4);

  // The partitioned graph runs the host layer on the reference kernels and the islands on
  // the backend's programs; the results are the reference backend's.
  const std::vector<RValue> in = Inputs(g, 9);
  RefExecutor oracle;
  auto want = oracle.Run(g, in);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  std::vector<std::unique_ptr<BackendContext>> contexts;
  for (const Island& i : part->islands) contexts.push_back(i.program->CreateContext());
  RefExecutor::Options ro;
  ro.external = [&](const Node& node, RefContext& ctx) -> Status {
    KILN_ASSIGN_OR_RETURN(int64_t k, node.attrs.GetInt(kIslandIndexAttr, -1));
    std::vector<RValue> ins;
    for (int i = 0; i < ctx.num_inputs(); ++i) ins.push_back(ctx.input_value(i));
    std::vector<RValue> outs;
    KILN_RETURN_IF_ERROR(contexts[static_cast<size_t>(k)]->Run(ins, &outs));
    for (size_t o = 0; o < outs.size(); ++o) ctx.set_output_value(static_cast<int>(o), std::move(outs[o]));
    return Status::OK();
  };
  RefExecutor host(ro);
  auto got = host.Run(*part->host, in);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), want->size());
  for (size_t o = 0; o < got->size(); ++o) {
    const Tensor& x = (*want)[o].tensor;
    const Tensor& y = (*got)[o].tensor;
    ASSERT_EQ(x.dims(), y.dims());
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_NEAR(x.data<float>()[i], y.data<float>()[i], 1e-4);
  }
}

}  // namespace
}  // namespace kiln
