// The public Engine / ExecutionContext API (include/kiln/kiln.h): results equal the
// reference, bad bindings are clear errors, one engine serves many threads.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <fstream>
#include <thread>

#include "api/engine_internal.h"
#include "api/model.h"
#include "backends/cpu/cpu_backend.h"
#include "api/optimize.h"
#include "api/tensor_io.h"
#include "builder/memory_planner.h"
#include "builder/plan_writer.h"
#include "kiln/kiln.h"

namespace kiln {
namespace {

const std::string kModel = std::string(KILN_SOURCE_DIR) + "/models/tiny_cnn.onnx";

struct TinyCnn {
  std::vector<int64_t> shape;
  std::vector<float> input, expected;
};

TinyCnn LoadTinyCnnData() {
  TinyCnn d;
  auto in = ReadNpy(std::string(KILN_SOURCE_DIR) + "/models/tiny_cnn_input.npy");
  auto ex = ReadNpy(std::string(KILN_SOURCE_DIR) + "/models/tiny_cnn_expected.npy");
  EXPECT_TRUE(in.ok() && ex.ok());
  d.shape = in->dims();
  d.input.assign(in->data<float>(), in->data<float>() + in->numel());
  d.expected.assign(ex->data<float>(), ex->data<float>() + ex->numel());
  return d;
}

// tiny_cnn built for the shape of its sample input (default options otherwise).
StatusOr<std::shared_ptr<const Engine>> BuildTinyCnn(const TinyCnn& d) {
  BuildOptions opts;
  opts.input_shapes = {{"input", d.shape}};
  return LoadOrBuild(kModel, opts);
}

TEST(Engine, BuildsFromOnnxAndMatchesPyTorch) {
  TinyCnn d = LoadTinyCnnData();
  auto engine = BuildTinyCnn(d);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  ASSERT_EQ((*engine)->inputs().size(), 1u);
  ASSERT_EQ((*engine)->outputs().size(), 1u);
  const std::string in_name = (*engine)->inputs()[0].name, out_name = (*engine)->outputs()[0].name;
  auto out = (*engine)->Infer({{in_name, HostTensor::Wrap(d.input.data(), d.shape)}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const HostTensor& y = out->at(out_name);
  ASSERT_EQ(static_cast<size_t>(y.numel()), d.expected.size());
  for (size_t i = 0; i < d.expected.size(); ++i) EXPECT_NEAR(y.data_as<float>()[i], d.expected[i], 1e-5) << i;
}

TEST(Engine, BindingErrorsNameTheInput) {
  TinyCnn d = LoadTinyCnnData();
  auto engine = BuildFromOnnx(kModel);
  ASSERT_TRUE(engine.ok());
  const std::string in_name = (*engine)->inputs()[0].name;
  auto ctx = (*engine)->CreateContext();
  EXPECT_EQ(ctx->Run().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ctx->Output(0).status().code(), StatusCode::kFailedPrecondition);
  Status s = ctx->SetInput("nope", HostTensor::Wrap(d.input.data(), d.shape));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find(in_name), std::string::npos);  // lists the real inputs
  std::vector<int64_t> wrong = d.shape;
  wrong.back() += 1;
  std::vector<float> big(d.input.size() * 2);
  s = ctx->SetInput(in_name, HostTensor::Wrap(big.data(), wrong));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(in_name), std::string::npos);
  std::vector<int32_t> ints(d.input.size());
  s = ctx->SetInput(in_name, HostTensor::Wrap(DataType::kInt32, d.shape, ints.data()));
  EXPECT_NE(s.message().find("float32"), std::string::npos);
  EXPECT_EQ(ctx->SetInput(7, HostTensor::Wrap(d.input.data(), d.shape)).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(Engine::Load("/nonexistent/model.onnx").status().code(), StatusCode::kIoError);
}

TEST(Engine, LoadsAPlanAndMatchesTheOnnxEngineBitExactly) {
  // The plan carries the engine's kernel choices (tactics picked by timing), so the engine
  // loaded from it computes bit-identical results.
  TinyCnn d = LoadTinyCnnData();
  auto from_onnx = BuildTinyCnn(d);
  ASSERT_TRUE(from_onnx.ok()) << from_onnx.status().ToString();
  const std::string path = ::testing::TempDir() + "/engine_test_tiny_cnn.plan";
  ASSERT_TRUE(SavePlan(**from_onnx, path).ok());
  auto from_plan = Engine::Load(path);
  ASSERT_TRUE(from_plan.ok()) << from_plan.status().ToString();
  // The plan's CPU arena is the one that runs (the builder's placement, not a new one).
  ASSERT_NE(EngineCpuProgram(**from_plan), nullptr);
  EXPECT_TRUE(cpu::ArenaFromPlan(*EngineCpuProgram(**from_plan)));
  EXPECT_EQ(cpu::ArenaBytes(*EngineCpuProgram(**from_plan)), cpu::ArenaBytes(*EngineCpuProgram(**from_onnx)));
  const std::string in_name = (*from_plan)->inputs()[0].name, out_name = (*from_plan)->outputs()[0].name;
  auto a = (*from_plan)->Infer({{in_name, HostTensor::Wrap(d.input.data(), d.shape)}});
  auto b = (*from_onnx)->Infer({{in_name, HostTensor::Wrap(d.input.data(), d.shape)}});
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString();
  ASSERT_EQ(a->at(out_name).nbytes(), b->at(out_name).nbytes());
  EXPECT_EQ(std::memcmp(a->at(out_name).data(), b->at(out_name).data(), a->at(out_name).nbytes()), 0);
  std::remove(path.c_str());
}

TEST(Engine, ManyThreadsShareOneEngine) {
  TinyCnn d = LoadTinyCnnData();
  auto engine = BuildTinyCnn(d);
  ASSERT_TRUE(engine.ok());
  std::shared_ptr<const Engine> e = *engine;
  const std::string in_name = e->inputs()[0].name;
  constexpr int kThreads = 8, kRuns = 25;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      auto ctx = e->CreateContext();
      std::vector<float> x = d.input;  // each thread its own buffer
      for (int r = 0; r < kRuns; ++r) {
        if (!ctx->SetInput(in_name, HostTensor::Wrap(x.data(), d.shape)).ok() || !ctx->Run().ok()) { ++mismatches[t]; continue; }
        auto y = ctx->Output(0);
        if (!y.ok()) ++mismatches[t];
        for (size_t i = 0; y.ok() && i < d.expected.size(); ++i)
          if (std::abs(y->data_as<float>()[i] - d.expected[i]) > 1e-5f) { ++mismatches[t]; break; }
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Every combination of convolution tactics (direct / Winograd) gives the model's results.
// Tactics change layouts, and with them which layout copies and in-place residual sums the
// CPU backend plans: one combination once read a stale copy of a buffer that a residual sum
// had overwritten. Tactics are forced as a plan records them ("kiln.tactic").
TEST(Engine, EveryTacticCombinationMatchesTheReference) {
  TinyCnn d = LoadTinyCnnData();
  auto probe = LoadOnnxModel(kModel);
  ASSERT_TRUE(probe.ok());
  std::vector<NodeId> convs;
  {
    ASSERT_TRUE(SetInputShapes(*probe->graph, {{"input", d.shape}}).ok());
    ASSERT_TRUE(OptimizeGraph(*probe->graph).ok());
    for (NodeId n = 0; n < probe->graph->num_nodes(); ++n)
      if (!probe->graph->node(n).dead && probe->graph->node(n).op_type == "Conv") convs.push_back(n);
  }
  ASSERT_GE(convs.size(), 3u);
  const int combos = 1 << std::min<int>(static_cast<int>(convs.size()), 4);
  for (int mask = 0; mask < combos; ++mask) {
    auto model = LoadOnnxModel(kModel);
    ASSERT_TRUE(model.ok());
    ASSERT_TRUE(SetInputShapes(*model->graph, {{"input", d.shape}}).ok());
    ASSERT_TRUE(OptimizeGraph(*model->graph).ok());
    for (size_t i = 0; i < convs.size() && i < 4; ++i)
      model->graph->node(convs[i]).attrs.set("kiln.tactic", Attr::String((mask >> i) & 1 ? "winograd" : "direct"));
    auto mem = PlanMemory(*model->graph);
    ASSERT_TRUE(mem.ok());
    auto engine = MakeEngineFromOptimized(std::shared_ptr<const Graph>(std::move(model->graph)), std::move(*mem), {});
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    auto out = (*engine)->Infer({{(*engine)->inputs()[0].name, HostTensor::Wrap(d.input.data(), d.shape)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const HostTensor& t = out->begin()->second;
    ASSERT_EQ(t.numel(), static_cast<int64_t>(d.expected.size()));
    for (int64_t i = 0; i < t.numel(); ++i)
      ASSERT_NEAR(t.data_as<float>()[i], d.expected[static_cast<size_t>(i)], 1e-5) << "tactic mask " << mask << " element " << i;
  }
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// BF16 (where the CPU has it): the same classes, probabilities within BF16's ~3 digits;
// its plan records the precision per layer. FP16 and unknown precisions are clear errors.
TEST(Engine, Bf16StaysCloseToFp32AndFp16IsAClearError) {
  TinyCnn d = LoadTinyCnnData();
  BuildOptions opts;
  opts.input_shapes = {{"input", d.shape}};
  opts.precision = Precision::kFp16;
  auto fp16 = LoadOrBuild(kModel, opts);
  ASSERT_FALSE(fp16.ok());
  EXPECT_NE(fp16.status().message().find("fp16"), std::string::npos) << fp16.status().ToString();
  // Names reach the options through the parser, which names what it knows.
  EXPECT_NE(ParsePrecision("int3").status().message().find("unknown precision 'int3'"), std::string::npos);
  EXPECT_EQ(ParsePrecision(PrecisionName(Precision::kBf16)).value(), Precision::kBf16);
  EXPECT_FALSE(ParseBackend("gpu").ok());
  EXPECT_EQ(ParseBatchParallel("off").value(), BatchParallel::kOff);
  opts.precision = Precision::kBf16;
  auto engine = LoadOrBuild(kModel, opts);
  if (!engine.ok()) {
    EXPECT_NE(engine.status().message().find("AVX512-BF16"), std::string::npos) << engine.status().ToString();
    GTEST_SKIP() << "this CPU has no BF16: " << engine.status().ToString();
  }
  const std::string in = (*engine)->inputs()[0].name;
  auto out = (*engine)->Infer({{in, HostTensor::Wrap(d.input.data(), d.shape)}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const HostTensor& t = out->begin()->second;
  ASSERT_EQ(t.numel(), static_cast<int64_t>(d.expected.size()));
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_NEAR(t.data_as<float>()[i], d.expected[static_cast<size_t>(i)], 2e-2) << i;
  const std::string path = ::testing::TempDir() + "/engine_test_bf16.plan";
  ASSERT_TRUE(SavePlan(**engine, path).ok());
  auto loaded = Engine::Load(path);  // no precision given: the plan's per-layer precision holds
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto out2 = (*loaded)->Infer({{in, HostTensor::Wrap(d.input.data(), d.shape)}});
  ASSERT_TRUE(out2.ok());
  EXPECT_EQ(std::memcmp(out2->begin()->second.data(), t.data(), t.nbytes()), 0);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Dynamic shapes: one profile (batch 1..8, kernels timed for 4) serves every batch in the
// range with the same per-sample results, refuses batch 9 with a message naming the
// profile, and survives the plan round trip.
TEST(Engine, ShapeProfileServesEveryBatchInRange) {
  TinyCnn d = LoadTinyCnnData();
  ASSERT_EQ(d.shape[0], 1);
  BuildOptions opts;
  std::vector<int64_t> lo = d.shape, opt = d.shape, hi = d.shape;
  opt[0] = 4;
  hi[0] = 8;
  opts.profiles = {{{"input", ShapeRange{lo, opt, hi}}}};
  auto engine = LoadOrBuild(kModel, opts);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_EQ((*engine)->inputs()[0].shape[0], -1);
  const std::string path = ::testing::TempDir() + "/engine_test_dynamic.plan";
  ASSERT_TRUE(SavePlan(**engine, path).ok());
  auto loaded = Engine::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  std::remove(path.c_str());
  const std::string in = (*engine)->inputs()[0].name;
  const size_t per = d.input.size(), classes = d.expected.size();
  for (int64_t batch : {1, 3, 8, 4, 1}) {
    std::vector<float> x;
    for (int64_t b = 0; b < batch; ++b) x.insert(x.end(), d.input.begin(), d.input.end());
    std::vector<int64_t> shape = d.shape;
    shape[0] = batch;
    for (const auto& e : {*engine, *loaded}) {
      auto out = e->Infer({{in, HostTensor::Wrap(x.data(), shape)}});
      ASSERT_TRUE(out.ok()) << "batch " << batch << ": " << out.status().ToString();
      const HostTensor& t = out->begin()->second;
      ASSERT_EQ(t.shape()[0], batch);
      for (int64_t b = 0; b < batch; ++b)
        for (size_t k = 0; k < classes; ++k)
          ASSERT_NEAR(t.data_as<float>()[static_cast<size_t>(b) * classes + k], d.expected[k], 1e-5) << "batch " << batch;
    }
  }
  std::vector<float> x9(per * 9);
  std::vector<int64_t> shape9 = d.shape;
  shape9[0] = 9;
  auto bad = (*loaded)->Infer({{in, HostTensor::Wrap(x9.data(), shape9)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("outside every profile"), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("[1..8,3,32,32]"), std::string::npos) << bad.status().ToString();
  // A malformed profile is refused at build, naming it.
  opts.profiles = {{{"input", ShapeRange{hi, opt, lo}}}};
  auto wrong = LoadOrBuild(kModel, opts);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("min <= opt <= max"), std::string::npos) << wrong.status().ToString();
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Bound output buffers: Run() writes the output there (the CPU backend's last kernel writes
// straight into it), Output() is a view of it; unbound runs after a bound one still work;
// a buffer of the wrong shape or type is refused naming the output.
TEST(Engine, BoundOutputBuffersAreWrittenInPlace) {
  TinyCnn d = LoadTinyCnnData();
  for (const char* backend : {"cpu", "ref"}) {
    BuildOptions opts;
    opts.input_shapes = {{"input", d.shape}};
    opts.backend = ParseBackend(backend).value();
    auto engine = LoadOrBuild(kModel, opts);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    const TensorInfo& out = (*engine)->outputs()[0];
    auto ctx = (*engine)->CreateContext();
    ASSERT_TRUE(ctx->SetInput(0, HostTensor::Wrap(d.input.data(), d.shape)).ok());
    std::vector<float> buffer(d.expected.size(), -1.0f);
    ASSERT_TRUE(ctx->SetOutput(out.name, HostTensor::Wrap(buffer.data(), out.shape)).ok());
    for (int run = 0; run < 2; ++run) {
      ASSERT_TRUE(ctx->Run().ok());
      for (size_t i = 0; i < buffer.size(); ++i) ASSERT_NEAR(buffer[i], d.expected[i], 1e-5) << backend << " " << i;
      auto view = ctx->Output(0);
      ASSERT_TRUE(view.ok());
      EXPECT_EQ(view->data(), buffer.data()) << backend;
    }
    // An unbound context of the same engine gets its own copy, and the bound buffer is left alone.
    std::fill(buffer.begin(), buffer.end(), -1.0f);
    auto other = (*engine)->CreateContext();
    ASSERT_TRUE(other->SetInput(0, HostTensor::Wrap(d.input.data(), d.shape)).ok());
    ASSERT_TRUE(other->Run().ok());
    auto copy = other->Output(0);
    ASSERT_TRUE(copy.ok());
    EXPECT_NE(copy->data(), buffer.data());
    EXPECT_NEAR(copy->data_as<float>()[0], d.expected[0], 1e-5);
    EXPECT_EQ(buffer[0], -1.0f);
    std::vector<float> small(3);
    auto bad = ctx->SetOutput(0, HostTensor::Wrap(small.data(), {1, 3}));
    EXPECT_NE(bad.message().find("output '" + out.name + "' has shape"), std::string::npos) << bad.ToString();
    std::vector<int32_t> ints(d.expected.size());
    bad = ctx->SetOutput(0, HostTensor::Wrap(DataType::kInt32, out.shape, ints.data()));
    EXPECT_NE(bad.message().find("float32"), std::string::npos) << bad.ToString();
  }
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// A plan from the CPU backend stores convolution weights in their kernels' layouts: the
// CPU engine loaded from it uses them in place (bit-identical to the engine that saved it),
// and the reference backend loaded from it reads them row-major again.
TEST(Engine, PlanWithPackedWeightsRunsOnEveryBackend) {
  TinyCnn d = LoadTinyCnnData();
  auto built = BuildTinyCnn(d);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  const std::string path = ::testing::TempDir() + "/engine_test_packed.plan";
  ASSERT_TRUE(SavePlan(**built, path).ok());
  {
    std::ifstream f(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_NE(bytes.find("kiln.packed_md"), std::string::npos) << "no layer stored packed weights";
  }
  const std::string in = (*built)->inputs()[0].name;
  auto want = (*built)->Infer({{in, HostTensor::Wrap(d.input.data(), d.shape)}});
  ASSERT_TRUE(want.ok());
  for (const char* backend : {"cpu", "ref"}) {
    BuildOptions lo;
    lo.backend = ParseBackend(backend).value();
    auto loaded = LoadOrBuild(path, lo);
    ASSERT_TRUE(loaded.ok()) << backend << ": " << loaded.status().ToString();
    auto got = (*loaded)->Infer({{in, HostTensor::Wrap(d.input.data(), d.shape)}});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    const HostTensor& a = got->begin()->second;
    const HostTensor& b = want->begin()->second;
    if (std::string(backend) == "cpu") {
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes()), 0);
    }
    for (int64_t i = 0; i < a.numel(); ++i)
      EXPECT_NEAR(a.data_as<float>()[i], d.expected[static_cast<size_t>(i)], 1e-5) << backend << " " << i;
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// A plan's packed-weights descriptor is untrusted bytes: every malformed one is an error
// naming the attribute, never an out-of-bounds read (this runs under ASan in sanitize.sh).
// A stored arena is used only when it places exactly the program's buffers and no two alive
// together overlap; otherwise the program places its own (same results either way).
TEST(Engine, PlannedArenaIsCheckedBeforeItRuns) {
  TinyCnn d = LoadTinyCnnData();
  auto engine = BuildTinyCnn(d);
  ASSERT_TRUE(engine.ok());
  auto g = std::make_shared<const Graph>(EngineGraph(**engine));
  cpu::CompileOptions co;
  co.threads = 1;
  auto first = cpu::Compile(g, co);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const BackendArena good = cpu::ArenaLayout(**first);
  ASSERT_GT(good.offsets.size(), 1u);
  Tensor x = Tensor::FromExternal(DType::kFloat32, d.shape, d.input.data(), nullptr);
  auto run = [&](const BackendArena* arena, bool* from_plan) {
    cpu::CompileOptions c2 = co;
    c2.arena = arena;
    auto p = cpu::Compile(g, c2);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    *from_plan = cpu::ArenaFromPlan(**p);
    cpu::Context ctx(*p);
    std::vector<Tensor> out;
    EXPECT_TRUE(ctx.RunTensors({&x}, &out).ok());
    return out[0];
  };
  bool from_plan = false;
  const Tensor want = run(nullptr, &from_plan);
  EXPECT_FALSE(from_plan);
  Tensor got = run(&good, &from_plan);
  EXPECT_TRUE(from_plan);
  EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0);
  BackendArena overlapping = good;  // every buffer at offset 0: alive together, sharing bytes
  for (int64_t& o : overlapping.offsets) o = 0;
  got = run(&overlapping, &from_plan);
  EXPECT_FALSE(from_plan);
  EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0);
  BackendArena fewer = good;  // another program's buffers
  fewer.offsets.pop_back();
  fewer.sizes.pop_back();
  got = run(&fewer, &from_plan);
  EXPECT_FALSE(from_plan);
  BackendArena small = good;  // an arena too small for its buffers
  small.bytes = 64;
  got = run(&small, &from_plan);
  EXPECT_FALSE(from_plan);
  EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0);
}

TEST(Engine, MalformedPackedWeightsDescriptorsAreRejected) {
  auto model = LoadOnnxModel(kModel);
  ASSERT_TRUE(model.ok());
  Graph& g = *model->graph;
  NodeId conv = -1;
  for (NodeId n = 0; n < g.num_nodes() && conv < 0; ++n)
    if (g.node(n).op_type == "Conv") conv = n;
  ASSERT_GE(conv, 0);
  const size_t md_bytes = cpu::PackedDescriptorBytes();
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    Graph copy = g;
    // Sizes around the right one, random contents (also all-zero and all-0xff).
    const size_t n = trial < 3 ? md_bytes : (trial % 4 == 0 ? md_bytes + 8 : md_bytes);
    Tensor bytes(DType::kUInt8, {static_cast<int64_t>(n)});
    for (size_t i = 0; i < n; ++i)
      bytes.data<uint8_t>()[i] = trial == 0 ? 0 : trial == 1 ? 0xff : static_cast<uint8_t>(rng());
    copy.node(conv).attrs.set(cpu::kPackedMdAttr, Attr::TensorValue(bytes));
    Status st = cpu::UnpackWeights(copy);
    ASSERT_FALSE(st.ok()) << "trial " << trial;
    EXPECT_NE(st.message().find("kiln.packed_md"), std::string::npos) << st.ToString();
  }
  // Single-byte changes of a real descriptor (from an engine's packed convolution): each is
  // either still a valid layout of the weights (then unpacking works) or an error.
  TinyCnn d = LoadTinyCnnData();
  auto engine = BuildTinyCnn(d);
  ASSERT_TRUE(engine.ok());
  const auto packed = cpu::PackedWeightList(*EngineCpuProgram(**engine));
  ASSERT_FALSE(packed.empty());
  const cpu::PackedWeights& pw = packed[0];
  int rejected = 0;
  for (size_t pos = 0; pos < pw.md.size(); ++pos) {
    for (uint8_t flip : {uint8_t{1}, uint8_t{0x80}}) {
      Graph copy = EngineGraph(**engine);
      Tensor bytes(DType::kUInt8, {static_cast<int64_t>(pw.md.size())});
      std::memcpy(bytes.raw_data(), pw.md.data(), pw.md.size());
      bytes.data<uint8_t>()[pos] ^= flip;
      copy.node(pw.node).attrs.set(cpu::kPackedMdAttr, Attr::TensorValue(bytes));
      Status st = cpu::UnpackWeights(copy);
      if (!st.ok()) {
        ++rejected;
        EXPECT_NE(st.message().find("kiln.packed_md"), std::string::npos) << st.ToString();
      }
    }
  }
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace kiln
