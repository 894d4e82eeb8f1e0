// Batch-parallel execution (src/runtime/batch_parallel.h): a graph that keeps samples apart runs
// as per-thread slices with the reference's results, through plans and bound outputs; a
// graph that mixes samples (along axis 0, by a batch-shaped constant, ...) is never sliced
// and says why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "api/engine_internal.h"
#include "api/optimize.h"
#include "passes/pass_test_util.h"
#include "kiln/kiln.h"
#include "kiln/network.h"

namespace kiln {
namespace {

constexpr int64_t kBatch = 6;

std::vector<float> Values(size_t n, int seed) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// conv 3x3 + ReLU -> max pool -> conv 1x1 + residual add -> global pool -> flatten -> FC -> softmax(-1)
struct Cnn {
  std::vector<float> w1 = Values(8 * 3 * 9, 1), b1 = Values(8, 2), w2 = Values(8 * 8, 3), b2 = Values(8, 4),
                     fc = Values(5 * 8, 5), fcb = Values(5, 6);
  NetworkDefinition net;
  NetworkTensor features;
  Cnn() {
    NetworkTensor x = net.AddInput("input", DataType::kFloat32, {-1, 3, 10, 10});
    NetworkTensor c = net.AddActivation(net.AddConvolution(x, 8, {3, 3}, w1, b1, {.pads = {1, 1}}, "conv1"),
                                        ActivationType::kRelu, "relu1");
    NetworkTensor p = net.AddPooling(c, PoolingType::kMax, {2, 2}, {.strides = {2, 2}}, "pool");
    NetworkTensor r = net.AddElementWise(net.AddConvolution(p, 8, {1, 1}, w2, b2, {}, "conv2"), p, ElementWiseOp::kAdd, "res");
    features = net.AddFlatten(net.AddGlobalPooling(r, PoolingType::kAverage, "gap"), 1, "flat");
  }
  void Finish(NetworkTensor t) {
    NetworkTensor logits = net.AddFullyConnected(t, 5, fc, fcb, "fc");
    EXPECT_TRUE(net.MarkOutput(net.AddSoftmax(logits, -1, "softmax"), "probs").ok());
  }
};

BuildOptions Options(const std::string& mode, const std::string& backend = "cpu") {
  BuildOptions o;
  o.input_shapes = {{"input", {kBatch, 3, 10, 10}}};
  o.threads = 2;
  o.batch_parallel = ParseBatchParallel(mode).value();
  o.backend = ParseBackend(backend).value();
  return o;
}

HostTensor Infer(const Engine& e, std::vector<float> x) {
  auto out = e.Infer({{"input", HostTensor::Wrap(x.data(), {kBatch, 3, 10, 10})}});
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? out->begin()->second : HostTensor();
}

void ExpectNear(const HostTensor& a, const HostTensor& b, float tol) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_NEAR(a.data_as<float>()[i], b.data_as<float>()[i], tol) << i;
}

TEST(BatchParallel, SeparableGraphRunsInSlicesWithTheReferenceResults) {
  const std::vector<float> x = Values(kBatch * 3 * 10 * 10, 7);
  Cnn m;
  m.Finish(m.features);
  auto sliced = BuildFromNetwork(m.net, Options("on"));
  auto whole = BuildFromNetwork(m.net, Options("off"));
  auto ref = BuildFromNetwork(m.net, Options("off", "ref"));
  ASSERT_TRUE(sliced.ok() && whole.ok() && ref.ok()) << sliced.status().ToString();
  EXPECT_NE(EngineBackendSummary(**sliced).find("batch-parallel: 6 slices of 1 on 2 threads"), std::string::npos)
      << EngineBackendSummary(**sliced) << " / " << EngineBatchNote(**sliced);
  EXPECT_EQ(EngineBackendSummary(**whole).find("batch-parallel"), std::string::npos);
  const HostTensor y = Infer(**sliced, x);
  ExpectNear(y, Infer(**ref, x), 1e-5f);
  ExpectNear(y, Infer(**whole, x), 1e-5f);

  // A plan records the schedule; loading it runs the same slices (bit-identical results).
  const std::string path = ::testing::TempDir() + "/batch_parallel_test.plan";
  ASSERT_TRUE(SavePlan(**sliced, path).ok());
  BuildOptions lo;
  lo.threads = 2;
  auto loaded = LoadOrBuild(path, lo);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_NE(EngineBackendSummary(**loaded).find("batch-parallel"), std::string::npos) << EngineBackendSummary(**loaded);
  const HostTensor z = Infer(**loaded, x);
  ASSERT_EQ(z.nbytes(), y.nbytes());
  EXPECT_EQ(std::memcmp(z.data(), y.data(), y.nbytes()), 0);
  // ... unless told not to, or given one thread: then the whole batch runs at once.
  lo.batch_parallel = BatchParallel::kOff;
  auto off = LoadOrBuild(path, lo);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(EngineBackendSummary(**off).find("batch-parallel"), std::string::npos);
  ExpectNear(Infer(**off, x), y, 1e-5f);
  std::remove(path.c_str());

  // Bound outputs: every slice writes its rows of the caller's buffer.
  auto ctx = (*sliced)->CreateContext();
  std::vector<float> out(kBatch * 5, -1.0f);
  std::vector<float> xin = x;
  ASSERT_TRUE(ctx->SetInput("input", HostTensor::Wrap(xin.data(), {kBatch, 3, 10, 10})).ok());
  ASSERT_TRUE(ctx->SetOutput("probs", HostTensor::Wrap(out.data(), {kBatch, 5})).ok());
  ASSERT_TRUE(ctx->Run().ok());
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], y.data_as<float>()[i]) << i;
  // The wrong batch is a clear error, not a slice of garbage.
  std::vector<float> small(2 * 3 * 10 * 10, 0.0f);
  EXPECT_FALSE(ctx->SetInput("input", HostTensor::Wrap(small.data(), {2, 3, 10, 10})).ok());
}

TEST(BatchParallel, AutoTimesBothSchedulesAndStaysCorrect) {
  const std::vector<float> x = Values(kBatch * 3 * 10 * 10, 8);
  Cnn m;
  m.Finish(m.features);
  auto a = BuildFromNetwork(m.net, Options("auto"));
  auto ref = BuildFromNetwork(m.net, Options("off", "ref"));
  ASSERT_TRUE(a.ok() && ref.ok());
  // Which schedule wins depends on the machine; either way it says what it measured.
  EXPECT_FALSE(EngineBatchNote(**a).empty());
  ExpectNear(Infer(**a, x), Infer(**ref, x), 1e-5f);
}

// Graphs that mix samples: "on" must not slice them, must say why, and must stay correct.
TEST(BatchParallel, GraphsThatMixSamplesAreNeverSliced) {
  const std::vector<float> x = Values(kBatch * 3 * 10 * 10, 9);
  const std::vector<float> table = Values(kBatch * 8, 10), mix = Values(kBatch * kBatch, 11);
  struct Case {
    const char* name;
    const char* reason;  // a fragment of the note
    std::function<NetworkTensor(NetworkDefinition&, NetworkTensor)> head;
  };
  const std::vector<Case> cases = {
      {"softmax over the batch", "batch axis",
       [](NetworkDefinition& n, NetworkTensor f) { return n.AddSoftmax(f, 0, "mix"); }},
      {"a layer across the batch between transposes", "",
       [&mix](NetworkDefinition& n, NetworkTensor f) {
         NetworkTensor t = n.AddTranspose(f, {1, 0}, "t1");  // [8, batch]
         NetworkTensor w = n.AddConstant({kBatch, kBatch}, mix, "mix");
         return n.AddTranspose(n.AddMatrixMultiply(t, w, "across"), {1, 0}, "t2");
       }},
      {"mean over the batch added back", "",
       [](NetworkDefinition& n, NetworkTensor f) {
         return n.AddElementWise(f, n.AddReduce(f, ReduceOp::kMean, {0}, true, "mean0"), ElementWiseOp::kSub, "center");
       }},
      {"a constant with a batch-sized dim 0", "dim 0 is not the batch",
       [&table](NetworkDefinition& n, NetworkTensor f) {
         return n.AddElementWise(f, n.AddConstant({kBatch, 8}, table, "per_row"), ElementWiseOp::kMul, "scale");
       }},
      {"a reshape folding the batch into features", "",
       [](NetworkDefinition& n, NetworkTensor f) {
         return n.AddReshape(n.AddReshape(f, {kBatch / 2, 16}, "fold"), {kBatch, 8}, "unfold");
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Cnn m;
    m.Finish(c.head(m.net, m.features));
    ASSERT_TRUE(m.net.status().ok()) << m.net.status().ToString();
    auto on = BuildFromNetwork(m.net, Options("on"));
    auto ref = BuildFromNetwork(m.net, Options("off", "ref"));
    ASSERT_TRUE(on.ok() && ref.ok()) << on.status().ToString();
    EXPECT_EQ(EngineBackendSummary(**on).find("batch-parallel"), std::string::npos) << EngineBackendSummary(**on);
    const std::string note = EngineBatchNote(**on);
    EXPECT_NE(note.find("not used"), std::string::npos) << note;
    EXPECT_NE(note.find(c.reason), std::string::npos) << note;
    ExpectNear(Infer(**on, x), Infer(**ref, x), 1e-5f);
  }
}

// An output folded into a constant (the input's shape) is no rows of the batch: slicing
// would have every slice write it where its rows go (a wrong [24] for a [4] shape).
TEST(BatchParallel, ConstantOutputsAreNeverSliced) {
  testing::GraphBuilder b("shape_out");
  ValueId x = b.Input("input", DType::kFloat32, {kBatch, 3, 10, 10});
  b.Output(b.Op("Relu", "relu", {x}));
  b.Output(b.Op("Shape", "shape", {x}));
  auto g = std::make_shared<Graph>(b.Build());
  ASSERT_TRUE(OptimizeGraph(*g).ok());
  ASSERT_TRUE(g->value(g->outputs()[1]).constant.has_value());  // folded
  auto e = MakeEngineFromOptimized(g, MemoryPlan{}, Options("on"));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_NE(EngineBatchNote(**e).find("is a constant"), std::string::npos) << EngineBatchNote(**e);
  std::vector<float> in = Values(kBatch * 300, 12);
  auto out = (*e)->Infer({{"input", HostTensor::Wrap(in.data(), {kBatch, 3, 10, 10})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const HostTensor& shape = out->at(g->value(g->outputs()[1]).name);
  ASSERT_EQ(shape.shape(), (std::vector<int64_t>{4}));
  EXPECT_EQ(std::vector<int64_t>(shape.data_as<int64_t>(), shape.data_as<int64_t>() + 4),
            (std::vector<int64_t>{kBatch, 3, 10, 10}));
}

// A dynamic batch (a profile): batches > 1 run as slices of the size chosen at build for
// the opt shapes — every batch in the profile, whatever it is — and a plan keeps it.
TEST(BatchParallel, DynamicBatchProfilesRunInSlices) {
  Cnn m;
  m.Finish(m.features);
  BuildOptions o;
  o.threads = 2;
  o.batch_parallel = BatchParallel::kOn;
  o.profiles = {{{"input", ShapeRange{{1, 3, 10, 10}, {4, 3, 10, 10}, {7, 3, 10, 10}}}}};
  auto dyn = BuildFromNetwork(m.net, o);
  BuildOptions ro = Options("off", "ref");
  ro.input_shapes.clear();
  ro.profiles = o.profiles;
  auto ref = BuildFromNetwork(m.net, ro);
  ASSERT_TRUE(dyn.ok() && ref.ok()) << dyn.status().ToString();
  EXPECT_NE(EngineBackendSummary(**dyn).find("batch-parallel: slices of 1 for batches > 1"), std::string::npos)
      << EngineBackendSummary(**dyn) << " / " << EngineBatchNote(**dyn);
  const std::string path = ::testing::TempDir() + "/batch_parallel_dyn.plan";
  ASSERT_TRUE(SavePlan(**dyn, path).ok());
  BuildOptions lo;
  lo.threads = 2;
  auto loaded = LoadOrBuild(path, lo);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_NE(EngineBackendSummary(**loaded).find("batch-parallel"), std::string::npos) << EngineBackendSummary(**loaded);
  std::remove(path.c_str());
  for (const auto& engine : {*dyn, *loaded}) {
    auto ctx = engine->CreateContext();
    auto rctx = (*ref)->CreateContext();
    for (int64_t batch : {3, 1, 4, 7, 4, 2}) {
      std::vector<float> x = Values(static_cast<size_t>(batch * 3 * 10 * 10), static_cast<int>(batch));
      const HostTensor in = HostTensor::Wrap(x.data(), {batch, 3, 10, 10});
      ASSERT_TRUE(ctx->SetInput("input", in).ok());
      ASSERT_TRUE(rctx->SetInput("input", in).ok());
      ASSERT_TRUE(ctx->Run().ok()) << "batch " << batch;
      ASSERT_TRUE(rctx->Run().ok());
      auto y = ctx->Output("probs");
      auto w = rctx->Output("probs");
      ASSERT_TRUE(y.ok() && w.ok());
      ExpectNear(*y, *w, 1e-5f);
    }
  }
}

TEST(BatchParallel, UnknownModeIsAClearError) {
  auto mode = ParseBatchParallel("sometimes");
  ASSERT_FALSE(mode.ok());
  EXPECT_NE(mode.status().message().find("batch-parallel mode 'sometimes'"), std::string::npos) << mode.status().message();
  EXPECT_NE(mode.status().message().find("auto, on or off"), std::string::npos);
}

}  // namespace
}  // namespace kiln
