// Plan round trips: a graph saved and loaded gives the same outputs, bit for bit, as the
// graph that was built (fused layers, output splits, If/Loop/Scan bodies, sequences,
// strings, every attribute type), and the same inputs give the same bytes.
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "api/model.h"
#include "api/optimize.h"
#include "api/tensor_io.h"
#include "ir/infer.h"
#include "ir/op_schema.h"
#include "passes/pass_test_util.h"
#include "plan/plan_format.h"
#include "plan/plan_test_util.h"
#include "builder/plan_writer.h"

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;

const char* kConformanceDir = "/usr/share/libonnx-testdata/data/node";

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / StrCat("kiln_plan_test_", getpid(), "_", counter_++)) {
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

Tensor RandomFloats(std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  Tensor t(DType::kFloat32, std::move(dims));
  for (float& f : t.span<float>()) f = d(rng);
  return t;
}

AttrMap Attrs(std::vector<std::pair<std::string, Attr>> list) {
  AttrMap m;
  for (auto& [k, v] : list) m.set(k, std::move(v));
  return m;
}

TEST(PlanRoundTrip, TinyCnnFromBytesAndFromMappedFile) {
  auto built = BuildFromOnnx(SourcePath("models/tiny_cnn.onnx"));
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  const Graph& g = *built->graph;
  ASSERT_FALSE(built->mem.placements.empty());
  auto input = ReadNpy(SourcePath("models/tiny_cnn_input.npy"));
  ASSERT_TRUE(input.ok());
  const std::vector<RValue> inputs = {RValue(*input)};
  LoadedPlan from_bytes;
  ASSERT_TRUE(RoundTripsBitExact(g, built->mem, inputs, &from_bytes));
  EXPECT_FALSE(from_bytes.mapped);

  TempDir dir;
  ASSERT_TRUE(WritePlan(g, built->mem, PlanOptions{}, dir / "tiny.plan").ok());
  EXPECT_TRUE(IsPlanFile(dir / "tiny.plan"));
  EXPECT_FALSE(IsPlanFile(SourcePath("models/tiny_cnn.onnx")));
  auto plan = LoadPlan(dir / "tiny.plan");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(plan->mapped);
  EXPECT_EQ(plan->format_version, kPlanFormatVersion);
  EXPECT_EQ(plan->kiln_version, KILN_VERSION);
  EXPECT_EQ(plan->target.backend, "ref");
  EXPECT_TRUE(plan->target.isa_features.empty());
  auto want = RunReference(g, inputs);
  auto got = RunReference(*plan->graph, inputs);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_TRUE(BitExact(*want, *got));
  // The graph outlives the LoadedPlan: its constants hold the mapping.
  std::unique_ptr<Graph> kept = std::move(plan->graph);
  plan = Status(StatusCode::kInternal, "dropped");
  auto again = RunReference(*kept, inputs);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(BitExact(*want, *again));

  // Bindings and the memory plan, by value name (the file renumbers values).
  ASSERT_EQ(from_bytes.inputs.size(), 1u);
  EXPECT_EQ(from_bytes.inputs[0].name, "input");
  EXPECT_EQ(from_bytes.inputs[0].type.ToString(), g.value(g.inputs()[0]).type.ToString());
  ASSERT_EQ(from_bytes.outputs.size(), 1u);
  EXPECT_EQ(from_bytes.outputs[0].name, "probs");
  const MemoryPlan& a = built->mem;
  const MemoryPlan& b = from_bytes.memory;
  EXPECT_EQ(a.arena_bytes, b.arena_bytes);
  EXPECT_EQ(a.naive_bytes, b.naive_bytes);
  EXPECT_EQ(a.num_tensors, b.num_tensors);
  EXPECT_EQ(a.num_in_place, b.num_in_place);
  EXPECT_EQ(a.concat_slices, b.concat_slices);
  EXPECT_EQ(a.slice_views, b.slice_views);
  EXPECT_EQ(a.eliminated_concats.size(), b.eliminated_concats.size());
  EXPECT_EQ(a.view_nodes.size(), b.view_nodes.size());
  const Graph& lg = *from_bytes.graph;
  int planned = 0;
  for (int v = 0; v < g.num_values(); ++v) {
    const TensorPlacement& p = a.placements[static_cast<size_t>(v)];
    if (p.value == kNoValue) continue;
    ++planned;
    auto lv = lg.FindValue(g.value(v).name);
    ASSERT_TRUE(lv.has_value()) << g.value(v).name;
    const TensorPlacement& q = b.placements[static_cast<size_t>(*lv)];
    EXPECT_EQ(q.value, *lv);
    EXPECT_EQ(p.offset, q.offset);
    EXPECT_EQ(p.bytes, q.bytes);
    EXPECT_EQ(p.first_use, q.first_use);
    EXPECT_EQ(p.last_use, q.last_use);
    EXPECT_EQ(p.alias_of == kNoValue, q.alias_of == kNoValue);
    if (p.alias_of != kNoValue) {
      EXPECT_EQ(g.value(p.alias_of).name, lg.value(q.alias_of).name);
    }
  }
  EXPECT_GT(planned, 0);
  EXPECT_TRUE(VerifyMemoryPlan(lg, b).ok());
  // Layers keep their provenance.
  int fused = 0;
  for (int n = 0; n < lg.num_nodes(); ++n) fused += lg.node(n).fused_from.empty() ? 0 : 1;
  EXPECT_GT(fused, 0);
  // Nothing is lost: saving the loaded plan again gives the same bytes.
  auto original = SerializePlan(g, built->mem, PlanOptions{});
  auto resaved = SerializePlan(lg, b, PlanOptions{});
  ASSERT_TRUE(original.ok() && resaved.ok());
  EXPECT_TRUE(*original == *resaved);
}

TEST(PlanRoundTrip, DeterministicBytes) {
  auto a = BuildFromOnnx(SourcePath("models/tiny_cnn.onnx"));
  auto b = BuildFromOnnx(SourcePath("models/tiny_cnn.onnx"));
  ASSERT_TRUE(a.ok() && b.ok());
  auto pa = SerializePlan(*a->graph, a->mem, PlanOptions{});
  auto pb = SerializePlan(*b->graph, b->mem, PlanOptions{});
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_TRUE(*pa == *pb) << "two builds of one model differ";
  // The streamed file is the same bytes as the in-memory form.
  TempDir dir;
  ASSERT_TRUE(WritePlan(*a->graph, a->mem, PlanOptions{}, dir / "a.plan").ok());
  EXPECT_TRUE(ReadFile(dir / "a.plan") == *pa);
  // Layout: weights 64-aligned right after the header, checksum over the rest.
  const PlanHeader h = DecodePlanHeader(pa->data());
  EXPECT_EQ(h.weights_offset, kPlanHeaderSize);
  EXPECT_EQ(h.flatbuffer_offset % kPlanAlignment, 0u);
  EXPECT_EQ(h.file_size, pa->size());
  EXPECT_EQ(h.checksum, ComputePlanChecksum(*pa));
}

TEST(PlanRoundTrip, DropsValuesNothingReads) {
  // Folding BatchNorm into the convolutions leaves the original weights behind in the
  // graph's value list; they must not reach the file.
  auto built = BuildFromOnnx(SourcePath("models/tiny_cnn.onnx"));
  ASSERT_TRUE(built.ok());
  const Graph& g = *built->graph;
  int64_t live_bytes = 0;
  std::set<ValueId> read;
  for (int n = 0; n < g.num_nodes(); ++n)
    if (!g.node(n).dead)
      for (ValueId v : g.node(n).inputs)
        if (v != kNoValue) read.insert(v);
  for (ValueId v : read)
    if (g.value(v).constant) live_bytes += static_cast<int64_t>(AlignPlanOffset(g.value(v).constant->nbytes()));
  auto bytes = SerializePlan(g, built->mem, PlanOptions{});
  ASSERT_TRUE(bytes.ok());
  auto plan = LoadPlanFromBytes(bytes->data(), bytes->size(), "tiny.plan");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_LE(plan->weights_bytes, static_cast<uint64_t>(live_bytes));
  EXPECT_LT(plan->graph->num_values(), g.num_values());
  EXPECT_EQ(plan->graph->num_nodes(), g.num_live_nodes());
}

TEST(PlanRoundTrip, IdenticalWeightsStoredOnce) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 100});
  Tensor w = RandomFloats({100}, 7);
  ValueId y = b.Op("Add", "add", {x, b.Const("a", w)});  // a and b share one buffer
  y = b.Op("Mul", "mul", {y, b.Const("b", w.Reshaped({1, 100}))});
  y = b.Op("Sub", "sub", {y, b.Const("c", w.Clone())});               // c: same bytes, own buffer
  y = b.Op("Div", "div", {y, b.Const("d", RandomFloats({100}, 8))});  // d: other bytes
  b.Output(y);
  Graph g = b.Build();
  LoadedPlan loaded;
  ASSERT_TRUE(RoundTripsBitExact(g, MemoryPlan{}, DeterministicInputs(g), &loaded));
  EXPECT_EQ(loaded.weights_bytes, 2 * AlignPlanOffset(400));
  EXPECT_EQ(loaded.graph->value(*loaded.graph->FindValue("b")).constant->dims(), (std::vector<int64_t>{1, 100}));
}

TEST(PlanRoundTrip, FusedEpilogueAndOutputSplit) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 3, 6, 6});
  std::vector<ValueId> outs;
  for (int i = 0; i < 3; ++i) {  // siblings: fused horizontally into one split layer
    ValueId w = b.Const(StrCat("w", i), RandomFloats({2 + i, 3, 1, 1}, 10 + static_cast<uint32_t>(i)));
    ValueId bias = b.Const(StrCat("b", i), RandomFloats({2 + i}, 20 + static_cast<uint32_t>(i)));
    outs.push_back(b.Op("Relu", StrCat("relu", i), {b.Op("Conv", StrCat("conv", i), {x, w, bias})}));
  }
  // A residual epilogue (Conv + Add(x) + Sigmoid) with an extra input.
  ValueId w3 = b.Const("w3", RandomFloats({3, 3, 3, 3}, 30));
  ValueId c3 = b.Op("Conv", "conv3", {x, w3}, Attrs({{"pads", Attr::Ints({1, 1, 1, 1})}}));
  outs.push_back(b.Op("Sigmoid", "sig", {b.Op("Add", "residual", {c3, x})}));
  b.Output(b.Op("Concat", "cat", outs, Attrs({{"axis", Attr::Int(1)}})));
  Graph g = b.Build();
  ASSERT_TRUE(OptimizeGraph(g).ok());
  int epilogues = 0, splits = 0;
  for (int n = 0; n < g.num_nodes(); ++n) {
    if (g.node(n).dead) continue;
    epilogues += g.node(n).attrs.has(kEpilogueAttr);
    splits += g.node(n).attrs.has(kSplitSizesAttr);
  }
  ASSERT_GE(epilogues, 2);
  ASSERT_EQ(splits, 1);
  auto mem = PlanMemory(g);
  ASSERT_TRUE(mem.ok());
  LoadedPlan loaded;
  ASSERT_TRUE(RoundTripsBitExact(g, *mem, DeterministicInputs(g), &loaded));
  // Every layer comes back with its attributes and provenance.
  auto order = g.TopologicalOrder();
  ASSERT_TRUE(order.ok());
  ASSERT_EQ(static_cast<size_t>(loaded.graph->num_nodes()), order->size());
  for (size_t k = 0; k < order->size(); ++k) {
    const Node& a = g.node((*order)[k]);
    const Node& c = loaded.graph->node(static_cast<NodeId>(k));
    EXPECT_EQ(a.op_type, c.op_type);
    EXPECT_EQ(a.fused_from, c.fused_from);
    ASSERT_EQ(a.attrs.all().size(), c.attrs.all().size());
    if (const Attr* e = a.attrs.find(kEpilogueAttr)) {
      const Attr* f = c.attrs.find(kEpilogueAttr);
      ASSERT_TRUE(f && f->g);
      EXPECT_EQ(e->g->ToString(), f->g->ToString());
    }
  }
}

// A node with one attribute of every type (the op ignores them): each reads back equal,
// -0.0 and NaN bit for bit.
TEST(PlanRoundTrip, EveryAttributeType) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 3});
  auto sub = std::make_shared<Graph>();
  sub->name = "sub";
  ValueId si = *sub->AddValue("si", TypeInfo::Tensor(DType::kFloat32, Shape::FromDims({2})));
  sub->inputs().push_back(si);
  ValueId so = *sub->AddValue("so");
  Node neg;
  neg.op_type = "Neg";
  neg.inputs = {si};
  neg.outputs = {so};
  ASSERT_TRUE(sub->AddNode(neg).ok());
  sub->outputs().push_back(so);
  Attr tensors;
  tensors.type = Attr::Type::kTensors;
  tensors.tensors = {RandomFloats({3}, 5), Tensor::FromVector<std::string>({"a", std::string("b\0c", 3)}),
                     Tensor(DType::kInt64, {0, 4})};
  Attr graphs;
  graphs.type = Attr::Type::kGraphs;
  graphs.graphs = {sub, sub};
  Attr type_proto;
  type_proto.type = Attr::Type::kTypeProto;
  type_proto.i = static_cast<int64_t>(DType::kFloat16);
  type_proto.s = "sequence";
  const float nan = std::bit_cast<float>(0x7fc01234u);
  ValueId y = b.Op("Relu", "relu", {x},
                   Attrs({{"f_negzero", Attr::Float(-0.0f)},
                          {"f_nan", Attr::Float(nan)},
                          {"f_zero", Attr::Float(0.0f)},
                          {"i", Attr::Int(-(int64_t{1} << 62))},
                          {"s", Attr::String(std::string("bytes\0\xff", 7))},
                          {"t", Attr::TensorValue(Tensor::FromVector<bool>({true, false, true}))},
                          {"g", Attr::GraphValue(sub)},
                          {"floats", Attr::Floats({1.5f, -0.0f})},
                          {"ints", Attr::Ints({})},
                          {"strings", Attr::Strings({"", "x"})},
                          {"tensors", tensors},
                          {"graphs", graphs},
                          {"tp", type_proto}}));
  b.Output(y);
  Graph g = b.Build();
  LoadedPlan loaded;
  ASSERT_TRUE(RoundTripsBitExact(g, MemoryPlan{}, DeterministicInputs(g), &loaded));
  EXPECT_TRUE(loaded.memory.placements.empty());
  const AttrMap& want = g.node(0).attrs;
  const AttrMap& got = loaded.graph->node(0).attrs;
  ASSERT_EQ(want.all().size(), got.all().size());
  for (const auto& [name, a] : want.all()) {
    const Attr* c = got.find(name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_EQ(a.type, c->type) << name;
    EXPECT_EQ(std::bit_cast<uint32_t>(a.f), std::bit_cast<uint32_t>(c->f)) << name;
    EXPECT_EQ(a.i, c->i) << name;
    EXPECT_EQ(a.s, c->s) << name;
    EXPECT_EQ(a.ints, c->ints) << name;
    EXPECT_EQ(a.strings, c->strings) << name;
    ASSERT_EQ(a.floats.size(), c->floats.size());
    for (size_t k = 0; k < a.floats.size(); ++k)
      EXPECT_EQ(std::bit_cast<uint32_t>(a.floats[k]), std::bit_cast<uint32_t>(c->floats[k]));
    ASSERT_EQ(a.tensors.size(), c->tensors.size()) << name;
    for (size_t k = 0; k < a.tensors.size(); ++k)
      EXPECT_TRUE(BitExact({RValue(a.tensors[k])}, {RValue(c->tensors[k])})) << name << "[" << k << "]";
    ASSERT_EQ(a.graphs.size(), c->graphs.size()) << name;
    for (size_t k = 0; k < a.graphs.size(); ++k) EXPECT_EQ(a.graphs[k]->ToString(), c->graphs[k]->ToString());
  }
  EXPECT_TRUE(BitExact({RValue(want.find("t")->t)}, {RValue(got.find("t")->t)}));
  EXPECT_EQ(want.find("g")->g->ToString(), got.find("g")->g->ToString());
}

// An If whose branch reads an outer constant that no outer node reads (a capture by name):
// the constant must survive the writer's dropping of unread values.
TEST(PlanRoundTrip, CapturedOuterConstantIsKept) {
  Graph g;
  g.name = "main";
  ValueId cond = *g.AddValue("cond", TypeInfo::Tensor(DType::kBool, Shape::FromDims({})));
  g.inputs().push_back(cond);
  ASSERT_TRUE(g.AddConstant("outer_c", RandomFloats({4}, 3)).ok());
  ASSERT_TRUE(g.AddConstant("unused_c", RandomFloats({1000}, 4)).ok());
  auto branch = [](const std::string& name, bool capture) {
    auto b = std::make_shared<Graph>();
    b->name = name;
    ValueId src = capture ? *b->AddValue("outer_c", TypeInfo::Tensor(DType::kFloat32, Shape::FromDims({4})))
                          : *b->AddConstant(name + "_c", Tensor::FromVector<float>({1, 2, 3, 4}));
    if (capture) b->captures().push_back(src);
    ValueId out = *b->AddValue(name + "_out");
    Node n;
    n.op_type = "Neg";
    n.inputs = {src};
    n.outputs = {out};
    EXPECT_TRUE(b->AddNode(n).ok());
    b->outputs().push_back(out);
    return b;
  };
  Node n;
  n.name = "if";
  n.op_type = "If";
  n.inputs = {cond};
  n.outputs = {*g.AddValue("y")};
  n.attrs.set("then_branch", Attr::GraphValue(branch("then", true)));
  n.attrs.set("else_branch", Attr::GraphValue(branch("else", false)));
  ASSERT_TRUE(g.AddNode(n).ok());
  g.outputs().push_back(n.outputs[0]);
  ASSERT_TRUE(InferTypes(g).ok());
  for (bool c : {true, false}) {
    LoadedPlan loaded;
    ASSERT_TRUE(RoundTripsBitExact(g, MemoryPlan{}, {RValue(Tensor::Scalar<bool>(c))}, &loaded));
    EXPECT_TRUE(loaded.graph->FindValue("outer_c").has_value());
    EXPECT_FALSE(loaded.graph->FindValue("unused_c").has_value());
  }
}

// Control flow and sequences from ONNX's conformance data: If, Loop, Scan, SequenceMap,
// Optional, on their own test inputs.
TEST(PlanRoundTrip, ControlFlowConformanceModels) {
  if (!fs::exists(kConformanceDir)) GTEST_SKIP() << "no " << kConformanceDir;
  int checked = 0;
  for (const char* name : {"test_if", "test_if_seq", "test_if_opt", "test_loop11", "test_loop13_seq",
                           "test_loop16_seq_none", "test_scan9_sum", "test_scan_sum",
                           "test_sequence_map_add_2_sequences", "test_sequence_map_identity_1_sequence_1_tensor",
                           "test_optional_has_element", "test_range_float_type_positive_delta_expanded"}) {
    SCOPED_TRACE(name);
    const fs::path dir = fs::path(kConformanceDir) / name;
    if (!fs::exists(dir / "model.onnx")) continue;
    auto built = BuildFromOnnx((dir / "model.onnx").string(), /*specialize=*/false, /*optimize=*/true);
    ASSERT_TRUE(built.ok()) << built.status().ToString();
    std::vector<RValue> inputs;
    bool readable = true;
    for (size_t i = 0; i < built->graph->inputs().size() && readable; ++i) {
      auto t = ReadTensorFile((dir / "test_data_set_0" / StrCat("input_", i, ".pb")).string());
      readable = t.ok();
      if (t.ok()) inputs.emplace_back(std::move(*t));
    }
    if (!readable) continue;  // a sequence or optional input: TensorProto files only here
    EXPECT_TRUE(RoundTripsBitExact(*built->graph, built->mem, inputs));
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

// Every ONNX node test whose inputs are tensors: import, optimize, save, load, run.
TEST(PlanRoundTrip, AllConformanceNodeModels) {
  if (!fs::exists(kConformanceDir)) GTEST_SKIP() << "no " << kConformanceDir;
  int checked = 0, failed = 0;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(kConformanceDir)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    auto built = BuildFromOnnx((dir / "model.onnx").string(), false, true);
    if (!built.ok()) continue;  // not supported by kiln: the conformance suite reports those
    std::vector<RValue> inputs;
    bool readable = true;
    for (size_t i = 0; i < built->graph->inputs().size() && readable; ++i) {
      auto t = ReadTensorFile((dir / "test_data_set_0" / StrCat("input_", i, ".pb")).string());
      readable = t.ok();
      if (t.ok()) inputs.emplace_back(std::move(*t));
    }
    if (!readable || !RunReference(*built->graph, inputs).ok()) continue;
    auto r = RoundTripsBitExact(*built->graph, built->mem, inputs);
    if (!r) {
      ++failed;
      ADD_FAILURE() << dir.filename().string() << ": " << r.message();
    }
    ++checked;
  }
  EXPECT_GT(checked, 500);
  EXPECT_EQ(failed, 0);
}

TEST(PlanRoundTrip, StringConstantsAndDynamicShapes) {
  // A dynamic batch dim (no memory plan) and a string tensor stored inline.
  Graph g;
  g.name = "strings";
  Shape dyn({Dim::Symbol("batch"), Dim(2)});
  ValueId x = *g.AddValue("x", TypeInfo::Tensor(DType::kFloat32, dyn));
  g.inputs().push_back(x);
  ValueId s = *g.AddConstant("labels", Tensor::FromVector<std::string>({"cat", "", std::string("\0dog", 4)}));
  ValueId r = *g.AddValue("r"), y = *g.AddValue("y"), l = *g.AddValue("l");
  Node relu;
  relu.op_type = "Relu";
  relu.inputs = {x};
  relu.outputs = {r};
  ASSERT_TRUE(g.AddNode(relu).ok());
  Node neg;
  neg.op_type = "Neg";
  neg.inputs = {r};
  neg.outputs = {y};
  ASSERT_TRUE(g.AddNode(neg).ok());
  Node id;
  id.op_type = "Identity";
  id.inputs = {s};
  id.outputs = {l};
  ASSERT_TRUE(g.AddNode(id).ok());
  g.outputs() = {y, l};
  ASSERT_TRUE(InferTypes(g).ok());
  EXPECT_FALSE(PlanMemory(g).ok());  // dynamic: no memory plan
  LoadedPlan loaded;
  ASSERT_TRUE(RoundTripsBitExact(g, MemoryPlan{}, {RValue(RandomFloats({3, 2}, 9))}, &loaded));
  EXPECT_EQ(loaded.graph->value(loaded.graph->inputs()[0]).type.ToString(), "float32[batch,2]");
  EXPECT_EQ(loaded.weights_bytes, 0u);
}

TEST(PlanWriter, FailedWriteLeavesNothing) {
  auto built = BuildFromOnnx(SourcePath("models/tiny_cnn.onnx"));
  ASSERT_TRUE(built.ok());
  TempDir dir;
  // No such directory.
  Status st = WritePlan(*built->graph, built->mem, PlanOptions{}, dir / "missing/x.plan");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("missing/x.plan"), std::string::npos) << st.message();
  // The target is a directory: the rename fails after the whole file was written.
  fs::create_directories(dir / "taken.plan");
  st = WritePlan(*built->graph, built->mem, PlanOptions{}, dir / "taken.plan");
  EXPECT_FALSE(st.ok());
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path())) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"taken.plan"});
  // A memory plan from another graph.
  MemoryPlan other = built->mem;
  other.placements.pop_back();
  st = WritePlan(*built->graph, other, PlanOptions{}, dir / "y.plan");
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(fs::exists(dir / "y.plan"));
  // Deeper nesting than a reader accepts is refused at write time.
  Graph deep = *built->graph;
  std::shared_ptr<Graph> inner;
  for (int d = 0; d <= kMaxPlanGraphDepth + 1; ++d) {
    auto gr = std::make_shared<Graph>();
    gr->name = StrCat("level", d);
    ValueId o = *gr->AddConstant(StrCat("c", d), Tensor::Scalar<float>(1));
    if (inner) {
      ValueId out = *gr->AddValue(StrCat("o", d));
      Node n;
      n.op_type = "Identity";
      n.inputs = {o};
      n.outputs = {out};
      n.attrs.set("nested", Attr::GraphValue(inner));
      EXPECT_TRUE(gr->AddNode(n).ok());
      o = out;
    }
    gr->outputs().push_back(o);
    inner = gr;
  }
  for (int n = 0; n < deep.num_nodes(); ++n)
    if (!deep.node(n).dead) {
      deep.node(n).attrs.set("nested", Attr::GraphValue(inner));
      break;
    }
  auto bytes = SerializePlan(deep, built->mem, PlanOptions{});
  ASSERT_FALSE(bytes.ok());
  EXPECT_NE(bytes.status().message().find("nest deeper"), std::string::npos) << bytes.status().message();
}

}  // namespace
}  // namespace kiln::testing

namespace kiln::testing {
namespace {

// Format 3's checksum hashes 4 MiB blocks (several threads for a large plan): the parallel
// computation equals the streaming one the writer uses, whatever the chunking; older
// versions keep the plain XXH3 of the file; a flipped byte in any block is caught.
TEST(PlanChecksum, BlocksInParallelEqualTheStream) {
  std::mt19937_64 rng(5);
  for (size_t size : {size_t{100}, kPlanChecksumBlock + 64, 3 * kPlanChecksumBlock + 12345, 4 * kPlanChecksumBlock + 8}) {
    std::vector<uint8_t> file(size);
    for (uint8_t& b : file) b = static_cast<uint8_t>(rng());
    for (uint32_t version : {2u, 3u}) {
      PlanHeader h;
      h.format_version = version;
      if (size >= kPlanHeaderSize) EncodePlanHeader(h, file.data());
      PlanChecksum stream(version);
      for (size_t pos = 0; pos < size;) {
        const size_t n = std::min<size_t>(size - pos, 1 + rng() % (kPlanChecksumBlock / 3));
        stream.Update(file.data() + pos, n);
        pos += n;
      }
      const uint64_t sum = ComputePlanChecksum(file);
      EXPECT_EQ(sum, stream.Digest()) << "size " << size << " version " << version;
      // The checksum field itself is left out.
      std::vector<uint8_t> stamped = file;
      if (size >= kPlanHeaderSize) {
        for (int i = 0; i < 8; ++i) stamped[kPlanChecksumOffset + static_cast<size_t>(i)] ^= 0xff;
        EXPECT_EQ(ComputePlanChecksum(stamped), sum);
      }
      for (size_t at : {size_t{0}, size / 2, size - 1}) {
        std::vector<uint8_t> bad = file;
        bad[at] ^= 1;
        if (at >= 8 && at < 12) continue;  // the version field picks the algorithm
        EXPECT_NE(ComputePlanChecksum(bad), sum) << "flip at " << at << " of " << size;
      }
    }
  }
}

// A plan larger than a few checksum blocks loads (its checksum hashed block-parallel) and a
// flipped weight byte deep inside it is a checksum mismatch.
TEST(PlanChecksum, LargePlanLoadsAndDamageIsCaught) {
  GraphBuilder b;
  const int64_t n = 3 * static_cast<int64_t>(kPlanChecksumBlock / sizeof(float)) + 1000;
  ValueId x = b.Input("x", DType::kFloat32, {n});
  Tensor w(DType::kFloat32, {n});
  for (int64_t i = 0; i < n; ++i) w.data<float>()[i] = static_cast<float>(i % 97);
  b.Output(b.Op("Add", "add", {x, b.Const("w", std::move(w))}));
  Graph g = b.Build();
  auto mem = PlanMemory(g);
  ASSERT_TRUE(mem.ok());
  auto bytes = SerializePlan(g, *mem, {});
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  ASSERT_GT(bytes->size(), 3 * kPlanChecksumBlock);
  auto plan = LoadPlanFromBytes(bytes->data(), bytes->size(), "large");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  TempDir dir;
  ASSERT_TRUE(WritePlan(g, *mem, {}, dir / "large.plan").ok());
  auto mapped = LoadPlan(dir / "large.plan");
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  EXPECT_TRUE(mapped->mapped);
  std::vector<uint8_t> bad = *bytes;
  bad[2 * kPlanChecksumBlock + 777] ^= 0x10;
  auto broken = LoadPlanFromBytes(bad.data(), bad.size(), "large");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("checksum mismatch"), std::string::npos) << broken.status().ToString();
}

}  // namespace
}  // namespace kiln::testing
