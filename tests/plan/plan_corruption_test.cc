// Damaged and hostile plans: every truncation, flipped byte, bad header field, and every
// semantic lie in a flatbuffer that passes the checksum and the verifier (out-of-range ids,
// bad weight offsets, huge sizes, wrong version, unknown backend, missing CPU feature, a
// broken memory plan) is a clean error naming the problem. Nothing crashes: these tests
// also run under AddressSanitizer.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <stdexcept>

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

namespace fb = plan::fb;
namespace fs = std::filesystem;

const std::vector<uint8_t>& TinyPlan() {
  static const std::vector<uint8_t> bytes = [] {
    auto built = BuildFromOnnx(SourcePath("models/tiny_cnn.onnx"));
    EXPECT_TRUE(built.ok()) << built.status().ToString();
    auto b = SerializePlan(*built->graph, built->mem, PlanOptions{});
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return *b;
  }();
  return bytes;
}

std::vector<RValue> TinyInputs() {
  auto t = ReadNpy(SourcePath("models/tiny_cnn_input.npy"));
  EXPECT_TRUE(t.ok());
  return {RValue(*t)};
}

// A small graph with what tiny_cnn lacks: a bool constant, a string constant, an output
// split and a residual epilogue.
const std::vector<uint8_t>& MixedPlan() {
  static const std::vector<uint8_t> bytes = [] {
    GraphBuilder b;
    ValueId x = b.Input("x", DType::kFloat32, {1, 2, 4, 4});
    ValueId m = b.Input("m", DType::kBool, {3});
    b.Output(b.Op("And", "and", {m, b.Const("mask", Tensor::FromVector<bool>({true, false, true}))}));
    b.Output(b.Op("Identity", "names", {b.Const("labels", Tensor::FromVector<std::string>({"a", "bc"}))}));
    std::vector<ValueId> outs;
    for (int i = 0; i < 2; ++i) {
      Tensor w(DType::kFloat32, {2 + i, 2, 1, 1});
      for (float& f : w.span<float>()) f = 0.25f * static_cast<float>(i + 1);
      outs.push_back(
          b.Op("Relu", StrCat("relu", i), {b.Op("Conv", StrCat("conv", i), {x, b.Const(StrCat("w", i), w)})}));
    }
    for (ValueId o : outs) b.Output(o);
    Tensor w(DType::kFloat32, {2, 2, 1, 1});
    for (float& f : w.span<float>()) f = -0.5f;
    b.Output(b.Op("Add", "residual", {b.Op("Conv", "conv_r", {x, b.Const("wr", w)}), x}));
    Graph g = b.Build();
    EXPECT_TRUE(OptimizeGraph(g).ok());
    auto mem = PlanMemory(g);
    EXPECT_TRUE(mem.ok()) << mem.status().ToString();
    auto bytes = SerializePlan(g, *mem, PlanOptions{});
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    return *bytes;
  }();
  return bytes;
}

std::vector<RValue> MixedInputs(const Graph& g) { return DeterministicInputs(g, 3); }

int FindNode(const fb::GraphT& g, const std::string& op_type, const std::string& attr = "") {
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i]->op_type != op_type) continue;
    if (attr.empty()) return static_cast<int>(i);
    for (const auto& a : g.nodes[i]->attributes)
      if (a->name == attr) return static_cast<int>(i);
  }
  return -1;
}

fb::ValueT* FindValue(fb::GraphT& g, const std::string& name) {
  for (auto& v : g.values)
    if (v->name == name) return v.get();
  return nullptr;
}

// The first string constant (the builder may rename values when it folds them).
fb::TensorDataT* FindStringConstant(fb::GraphT& g) {
  for (auto& v : g.values)
    if (v->constant && v->constant->dtype == static_cast<int32_t>(DType::kString)) return v->constant.get();
  return nullptr;
}

fb::AttributeT* FindAttr(fb::NodeT& n, const std::string& name) {
  for (auto& a : n.attributes)
    if (a->name == name) return a.get();
  return nullptr;
}

// Applies `edit` to a copy of `file` taken apart, puts it together with a valid checksum,
// and expects a load error containing `want`.
void ExpectEditRejected(const std::vector<uint8_t>& file, const std::string& label,
                        const std::function<void(PlanParts&)>& edit, const std::string& want,
                        const LoadPlanOptions& options = {}) {
  SCOPED_TRACE(label);
  PlanParts parts = SplitPlan(file);
  edit(parts);
  const std::string err = LoadError(JoinPlan(parts), options);
  EXPECT_NE(err, "") << "loaded without error";
  EXPECT_NE(err.find(want), std::string::npos) << "error: " << err << "\nwanted: " << want;
}

TEST(PlanCorruption, TruncatedAnywhere) {
  const std::vector<uint8_t>& file = TinyPlan();
  const PlanHeader h = DecodePlanHeader(file.data());
  std::set<size_t> cuts = {0, 1, 7, 8, 11, 12, 63, 64, 65};
  for (uint64_t at : {h.weights_offset + h.weights_size, h.flatbuffer_offset, h.flatbuffer_offset + 4,
                      h.flatbuffer_offset + 8, h.file_size})
    for (int64_t d : {-1, 0, 1}) cuts.insert(static_cast<size_t>(static_cast<int64_t>(at) + d));
  for (size_t c = 0; c < file.size(); c += 97) cuts.insert(c);
  for (size_t c = h.flatbuffer_offset; c < file.size(); ++c) cuts.insert(c);  // every byte of the flatbuffer
  int n = 0;
  for (size_t c : cuts) {
    if (c >= file.size()) continue;
    const std::string err =
        LoadError(std::vector<uint8_t>(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(c)));
    ASSERT_NE(err, "") << "cut at " << c;
    if (c >= 8) {
      EXPECT_NE(err.find("truncated"), std::string::npos) << "cut at " << c << ": " << err;
    }
    EXPECT_EQ(err.rfind("bad.plan: ", 0), 0u) << err;  // names the file
    ++n;
  }
  EXPECT_GT(n, 500);
  EXPECT_NE(LoadError({}).find("empty"), std::string::npos);
}

TEST(PlanCorruption, FlippedBytesFailTheChecksum) {
  const std::vector<uint8_t>& file = TinyPlan();
  const PlanHeader h = DecodePlanHeader(file.data());
  std::vector<size_t> offsets;
  for (size_t i = 0; i < file.size(); i += (i < kPlanHeaderSize || i >= h.flatbuffer_offset) ? 1 : 13)
    offsets.push_back(i);
  for (size_t i : offsets) {
    for (uint8_t mask : {0x01, 0xff}) {
      std::vector<uint8_t> bad = file;
      bad[i] ^= mask;
      const std::string err = LoadError(bad);
      ASSERT_NE(err, "") << "flip at " << i;
      // Past the header (whose fields get their own errors), the checksum catches everything.
      if (i >= kPlanHeaderSize) {
        EXPECT_NE(err.find("checksum mismatch"), std::string::npos) << "flip at " << i << ": " << err;
      }
    }
  }
}

// Damage that passes the checksum (recomputed): the verifier and the semantic checks must
// catch it, or the plan must still be one the runtime can run (a changed weight, a name).
TEST(PlanCorruption, FlippedBytesPastTheChecksumNeverCrash) {
  for (const std::vector<uint8_t>* file : {&TinyPlan(), &MixedPlan()}) {
    const PlanHeader h = DecodePlanHeader(file->data());
    auto good = LoadPlanFromBytes(file->data(), file->size(), "good.plan");
    ASSERT_TRUE(good.ok()) << good.status().ToString();
    const std::vector<RValue> inputs = file == &TinyPlan() ? TinyInputs() : MixedInputs(*good->graph);
    int rejected = 0, loaded = 0;
    // Every byte of the flatbuffer; several patterns for the small plan, one for the larger.
    const int patterns = file == &MixedPlan() ? 4 : 1;
    for (size_t i = h.flatbuffer_offset; i < file->size(); ++i) {
      for (int pattern = 0; pattern < patterns; ++pattern) {
        std::vector<uint8_t> bad = *file;
        const uint8_t old = bad[i];
        bad[i] = pattern == 0 ? old ^ 0xff : pattern == 1 ? old ^ 0x01 : pattern == 2 ? old ^ 0x80 : 0x00;
        if (bad[i] == old) continue;
        RestampPlanChecksum(bad);
        auto plan = LoadPlanFromBytes(bad.data(), bad.size(), "bad.plan");
        if (!plan.ok()) {
          ++rejected;
          continue;
        }
        ++loaded;
        (void)RunReference(*plan->graph, inputs);  // any result but a crash
      }
    }
    EXPECT_GT(rejected, loaded);
    // Weights are data: a changed weight loads (bool bytes excepted, see SemanticEdits).
    std::vector<uint8_t> bad = *file;
    bad[h.weights_offset + 3] ^= 0x40;
    RestampPlanChecksum(bad);
    EXPECT_EQ(LoadError(bad), "");
  }
}

TEST(PlanCorruption, HeaderFields) {
  const std::vector<uint8_t>& file = TinyPlan();
  auto with = [&](const std::function<void(PlanHeader&)>& edit, bool restamp = true) {
    std::vector<uint8_t> bad = file;
    PlanHeader h = DecodePlanHeader(bad.data());
    edit(h);
    EncodePlanHeader(h, bad.data());
    if (restamp) RestampPlanChecksum(bad);
    return LoadError(bad);
  };
  // A newer format: the message says what to do, whether or not the rest is readable.
  for (bool restamp : {true, false})
    EXPECT_NE(
        with([](PlanHeader& h) { h.format_version = kPlanFormatVersion + 1; }, restamp)
            .find(StrCat("plan format version ", kPlanFormatVersion + 1, " is newer than this runtime supports (",
                         kPlanFormatVersion, "); rebuild the plan with this kiln")),
        std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.format_version = 0; }).find("version 0"), std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.header_size = 128; }).find("header size"), std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.file_size += 1; }).find("truncated"), std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.file_size -= 64; }).find("past the end"), std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.weights_offset = 0; }).find("section layout"), std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.weights_size += 64; }).find("section layout"), std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.weights_size = ~uint64_t{0} - 63; }).find("section layout"), std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.flatbuffer_offset += 8; }).find("section layout"), std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.flatbuffer_size = ~uint64_t{0}; }).find("section layout"), std::string::npos);
  EXPECT_NE(with([](PlanHeader& h) { h.checksum ^= 1; }, false).find("checksum mismatch"), std::string::npos);
  // Bytes appended after a valid plan.
  std::vector<uint8_t> longer = file;
  longer.resize(file.size() + 64);
  RestampPlanChecksum(longer);
  EXPECT_NE(LoadError(longer).find("past the end"), std::string::npos);
  // Not a plan at all.
  std::vector<uint8_t> onnx(100, 'x');
  EXPECT_NE(LoadError(onnx).find("not a kiln plan"), std::string::npos);
  // The flatbuffer's own identifier.
  std::vector<uint8_t> bad_id = file;
  bad_id[DecodePlanHeader(file.data()).flatbuffer_offset + 4] = 'X';
  RestampPlanChecksum(bad_id);
  EXPECT_NE(LoadError(bad_id).find("identifier"), std::string::npos);
  // The flatbuffer's root offset pointing past its end: the verifier's job.
  std::vector<uint8_t> bad_root = file;
  bad_root[DecodePlanHeader(file.data()).flatbuffer_offset + 2] = 0x7f;
  RestampPlanChecksum(bad_root);
  EXPECT_NE(LoadError(bad_root).find("malformed flatbuffer"), std::string::npos);
}

TEST(PlanCorruption, SplitAndJoinIsLossless) {
  for (const std::vector<uint8_t>* file : {&TinyPlan(), &MixedPlan()}) {
    auto plan = LoadPlanFromBytes(file->data(), file->size(), "a.plan");
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    const std::vector<uint8_t> joined = JoinPlan(SplitPlan(*file));
    auto again = LoadPlanFromBytes(joined.data(), joined.size(), "b.plan");
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    const std::vector<RValue> inputs = file == &TinyPlan() ? TinyInputs() : MixedInputs(*plan->graph);
    auto want = RunReference(*plan->graph, inputs);
    auto got = RunReference(*again->graph, inputs);
    ASSERT_TRUE(want.ok() && got.ok()) << want.status().ToString() << got.status().ToString();
    EXPECT_TRUE(BitExact(*want, *got));
  }
}

TEST(PlanCorruption, TargetChecks) {
  const std::vector<uint8_t>& file = TinyPlan();
  ExpectEditRejected(
      file, "newer flatbuffer version", [](PlanParts& p) { p.plan->format_version = kPlanFormatVersion + 1; }, "in the flatbuffer");
  ExpectEditRejected(
      file, "backend", [](PlanParts& p) { p.plan->target->backend = "cuda"; },
      "plan targets backend 'cuda'; this runtime has: cpu, ref");
  LoadPlanOptions no_avx512;
  no_avx512.cpu_features = std::vector<std::string>{"avx2", "fma"};
  ExpectEditRejected(
      file, "missing feature",
      [](PlanParts& p) {
        p.plan->target->isa_features = {"avx2", "avx512f"};
      },
      "needs CPU feature 'avx512f', which this CPU lacks", no_avx512);
  ExpectEditRejected(
      file, "unknown feature", [](PlanParts& p) { p.plan->target->isa_features = {"avx9000"}; },
      "needs CPU feature 'avx9000', which this kiln does not know");
  PlanParts ok = SplitPlan(file);
  ok.plan->target->isa_features = {"avx2"};
  LoadPlanOptions has_avx2;
  has_avx2.cpu_features = std::vector<std::string>{"avx2"};
  EXPECT_EQ(LoadError(JoinPlan(ok), has_avx2), "");
}

TEST(PlanCorruption, GraphStructure) {
  const std::vector<uint8_t>& file = TinyPlan();
  auto g = [](PlanParts& p) -> fb::GraphT& { return *p.plan->graph; };
  ExpectEditRejected(
      file, "input id", [&](PlanParts& p) { g(p).nodes[0]->inputs[0] = 9999; }, "out of range");
  ExpectEditRejected(
      file, "negative id", [&](PlanParts& p) { g(p).nodes[0]->inputs[0] = -7; }, "out of range");
  ExpectEditRejected(
      file, "output id", [&](PlanParts& p) { g(p).nodes[1]->outputs[0] = 1 << 30; }, "out of range");
  ExpectEditRejected(
      file, "graph output id", [&](PlanParts& p) { g(p).outputs[0] = 12345; }, "out of range");
  ExpectEditRejected(
      file, "order", [&](PlanParts& p) { std::swap(g(p).nodes[0], g(p).nodes[1]); }, "before anything defines it");
  ExpectEditRejected(
      file, "two producers", [&](PlanParts& p) { g(p).nodes[1]->outputs[0] = g(p).nodes[0]->outputs[0]; },
      "already defined");
  ExpectEditRejected(
      file, "input produced", [&](PlanParts& p) { g(p).nodes[0]->outputs[0] = g(p).inputs[0]; }, "already defined");
  ExpectEditRejected(
      file, "input twice", [&](PlanParts& p) { g(p).inputs.push_back(g(p).inputs[0]); }, "already defined");
  ExpectEditRejected(
      file, "self loop", [&](PlanParts& p) { g(p).nodes[2]->inputs[0] = g(p).nodes[2]->outputs[0]; },
      "before anything defines it");
  ExpectEditRejected(
      file, "undefined output", [&](PlanParts& p) { g(p).nodes.pop_back(); }, "never defined");
  ExpectEditRejected(
      file, "duplicate value name", [&](PlanParts& p) { g(p).values[1]->name = g(p).values[0]->name; },
      "defined twice");
  ExpectEditRejected(
      file, "empty op", [&](PlanParts& p) { g(p).nodes[0]->op_type = ""; }, "empty op type");
  ExpectEditRejected(
      file, "unknown op", [&](PlanParts& p) { g(p).nodes[0]->op_type = "NoSuchOp"; }, "NoSuchOp");
  ExpectEditRejected(
      file, "attribute type", [&](PlanParts& p) { g(p).nodes[0]->attributes[0]->type = static_cast<fb::AttrType>(77); },
      "invalid attribute type 77");
  ExpectEditRejected(
      file, "attribute twice",
      [&](PlanParts& p) {
        auto a = std::make_unique<fb::AttributeT>();
        a->name = g(p).nodes[0]->attributes[0]->name;
        a->type = fb::AttrType::Int;
        g(p).nodes[0]->attributes.push_back(std::move(a));
      },
      "given twice");
  ExpectEditRejected(
      file, "pads disagree with the stored shapes",
      [&](PlanParts& p) {
        const int conv = FindNode(g(p), "Conv", "pads");
        ASSERT_GE(conv, 0);
        FindAttr(*g(p).nodes[static_cast<size_t>(conv)], "pads")->ints = {5, 5, 5, 5};
      },
      "graph types");
  ExpectEditRejected(
      file, "group overflows the channel count",  // once a signed overflow in Conv's type inference
      [&](PlanParts& p) {
        const int conv = FindNode(g(p), "Conv");
        ASSERT_GE(conv, 0);
        fb::NodeT& n = *g(p).nodes[static_cast<size_t>(conv)];
        fb::AttributeT* group = FindAttr(n, "group");
        if (group == nullptr) {
          n.attributes.push_back(std::make_unique<fb::AttributeT>());
          group = n.attributes.back().get();
          group->name = "group";
          group->type = fb::AttrType::Int;
        }
        group->i = (int64_t{1} << 62) + 1;
      },
      "channels but W expects");
  ExpectEditRejected(
      file, "type kind",
      [&](PlanParts& p) {
        for (auto& v : g(p).values)
          if (v->type) v->type->kind = static_cast<fb::TypeKind>(9);
      },
      "invalid type kind");
  ExpectEditRejected(
      file, "type dim", [&](PlanParts& p) { g(p).values[static_cast<size_t>(g(p).inputs[0])]->type->dims[0] = -5; },
      "dimension 0 is -5");
  ExpectEditRejected(
      file, "type dtype", [&](PlanParts& p) { g(p).values[static_cast<size_t>(g(p).inputs[0])]->type->dtype = 1000; },
      "invalid element type 1000");
  ExpectEditRejected(
      file, "binding name", [&](PlanParts& p) { p.plan->inputs[0]->name = "other"; }, "does not match graph input");
  ExpectEditRejected(
      file, "binding count", [&](PlanParts& p) { p.plan->outputs.clear(); }, "0 output bindings");
  ExpectEditRejected(
      file, "nested too deep",
      [&](PlanParts& p) {
        std::unique_ptr<fb::GraphT> inner;
        for (int d = 0; d < kMaxPlanGraphDepth + 4; ++d) {
          auto gr = std::make_unique<fb::GraphT>();
          gr->name = StrCat("level", d);
          if (inner) {
            auto node = std::make_unique<fb::NodeT>();
            node->op_type = "Identity";
            auto a = std::make_unique<fb::AttributeT>();
            a->name = "body";
            a->type = fb::AttrType::Graph;
            a->g = std::move(inner);
            node->attributes.push_back(std::move(a));
            gr->nodes.push_back(std::move(node));
          }
          inner = std::move(gr);
        }
        auto a = std::make_unique<fb::AttributeT>();
        a->name = "body";
        a->type = fb::AttrType::Graph;
        a->g = std::move(inner);
        g(p).nodes[0]->attributes.push_back(std::move(a));
      },
      "nest");  // "nest deeper than 16 levels" or the verifier's nesting limit
}

TEST(PlanCorruption, WeightsAndSizes) {
  const std::vector<uint8_t>& file = TinyPlan();
  auto first_constant = [](PlanParts& p) -> fb::TensorDataT& {
    for (auto& v : p.plan->graph->values)
      if (v->constant && v->constant->size > 0) return *v->constant;
    throw std::runtime_error("no constant");
  };
  ExpectEditRejected(
      file, "offset past the file", [&](PlanParts& p) { first_constant(p).offset += uint64_t{64} << 20; },
      "outside the weights section");
  ExpectEditRejected(
      file, "offset wraps", [&](PlanParts& p) { first_constant(p).offset = ~uint64_t{0} - 63; },
      "outside the weights section");
  ExpectEditRejected(
      file, "offset inside the header", [&](PlanParts& p) { first_constant(p).offset = 0; },
      "outside the weights section");
  ExpectEditRejected(
      file, "unaligned", [&](PlanParts& p) { first_constant(p).offset += 4; }, "aligned");
  ExpectEditRejected(
      file, "size", [&](PlanParts& p) { first_constant(p).size += 4; }, "weight bytes for");
  ExpectEditRejected(
      file, "huge size", [&](PlanParts& p) { first_constant(p).size = uint64_t{1} << 62; }, "weight bytes for");
  ExpectEditRejected(
      file, "dims overflow",
      [&](PlanParts& p) {
        first_constant(p).dims = {int64_t{1} << 40, int64_t{1} << 40};
      },
      "overflows");
  ExpectEditRejected(
      file, "dims huge but consistent",
      [&](PlanParts& p) {
        first_constant(p).dims = {int64_t{1} << 36};
        first_constant(p).size = uint64_t{1} << 38;
      },
      "outside the weights section");
  ExpectEditRejected(
      file, "negative dim", [&](PlanParts& p) { first_constant(p).dims[0] = -3; }, "negative dimension");
  ExpectEditRejected(
      file, "dtype", [&](PlanParts& p) { first_constant(p).dtype = 99; }, "invalid element type 99");
  ExpectEditRejected(
      file, "strings for numbers", [&](PlanParts& p) { first_constant(p).dtype = 8; }, "strings for");
  ExpectEditRejected(
      file, "weights shrunk", [&](PlanParts& p) { p.weights.resize(p.weights.size() / 2 / 64 * 64); },
      "outside the weights section");

  const std::vector<uint8_t>& mixed = MixedPlan();
  ExpectEditRejected(
      mixed, "bool byte",
      [&](PlanParts& p) {
        fb::ValueT* mask = FindValue(*p.plan->graph, "mask");
        ASSERT_NE(mask, nullptr);
        p.weights[mask->constant->offset - kPlanHeaderSize + 1] = 2;
      },
      "must be 0 or 1");
  ExpectEditRejected(
      mixed, "string count",
      [&](PlanParts& p) {
        fb::TensorDataT* labels = FindStringConstant(*p.plan->graph);
        ASSERT_NE(labels, nullptr);
        labels->strings.push_back("extra");
      },
      "3 strings for 2 elements");
  ExpectEditRejected(
      mixed, "string with weight bytes",
      [&](PlanParts& p) {
        fb::TensorDataT* labels = FindStringConstant(*p.plan->graph);
        ASSERT_NE(labels, nullptr);
        labels->size = 64;
      },
      "has weight bytes");
}

TEST(PlanCorruption, FusionAttributes) {
  const std::vector<uint8_t>& file = MixedPlan();
  auto fused = [](PlanParts& p, const char* attr) -> fb::NodeT& {
    for (auto& n : p.plan->graph->nodes)
      if (FindAttr(*n, attr)) return *n;
    throw std::runtime_error(StrCat("no node with ", attr));
  };
  ExpectEditRejected(
      file, "main inputs",
      [&](PlanParts& p) {
        fb::NodeT& n = fused(p, kEpilogueMainInputs);
        FindAttr(n, kEpilogueMainInputs)->i = static_cast<int64_t>(n.inputs.size()) + 3;
      },
      "kiln.main_inputs must be an int");
  ExpectEditRejected(
      file, "epilogue arity",
      [&](PlanParts& p) {
        fb::NodeT& n = fused(p, kEpilogueAttr);
        n.inputs.push_back(p.plan->graph->inputs[0]);
      },
      "the epilogue takes");
  ExpectEditRejected(
      file, "epilogue not a graph",
      [&](PlanParts& p) { FindAttr(fused(p, kEpilogueAttr), kEpilogueAttr)->type = fb::AttrType::Int; },
      "kiln.epilogue must be a graph");
  ExpectEditRejected(
      file, "omitted epilogue input",
      [&](PlanParts& p) {
        for (auto& n : p.plan->graph->nodes) {  // the residual layer: an input past the main ones
          const fb::AttributeT* main = FindAttr(*n, kEpilogueMainInputs);
          if (main && static_cast<size_t>(main->i) < n->inputs.size()) {
            n->inputs[static_cast<size_t>(main->i)] = -1;
            return;
          }
        }
        FAIL() << "no epilogue with an extra input";
      },
      "is omitted");
  ExpectEditRejected(
      file, "split sizes",
      [&](PlanParts& p) { FindAttr(fused(p, kSplitSizesAttr), kSplitSizesAttr)->ints.push_back(1); },
      "one size per output");
  ExpectEditRejected(
      file, "split sum", [&](PlanParts& p) { FindAttr(fused(p, kSplitSizesAttr), kSplitSizesAttr)->ints[0] += 1; },
      "graph types");
}

// The CPU program's arena: every buffer inside the arena at an aligned offset, one size per
// offset (whether the buffers fit the program is the backend's check: engine_test).
TEST(PlanCorruption, CpuArena) {
  const std::vector<uint8_t>& file = TinyPlan();
  auto arena = [](PlanParts& p, int64_t bytes, std::vector<int64_t> offsets, std::vector<int64_t> sizes) {
    p.plan->cpu_arena = std::make_unique<fb::BackendArenaT>();
    p.plan->cpu_arena->bytes = bytes;
    p.plan->cpu_arena->offsets = std::move(offsets);
    p.plan->cpu_arena->sizes = std::move(sizes);
  };
  ExpectEditRejected(file, "outside", [&](PlanParts& p) { arena(p, 128, {0, 64}, {64, 128}); }, "is not inside");
  ExpectEditRejected(file, "misaligned", [&](PlanParts& p) { arena(p, 256, {0, 8}, {64, 64}); }, "aligned offset");
  ExpectEditRejected(file, "negative", [&](PlanParts& p) { arena(p, 256, {0, -64}, {64, 64}); }, "is not inside");
  ExpectEditRejected(file, "huge", [&](PlanParts& p) { arena(p, 256, {0, INT64_MAX - 63}, {64, 64}); }, "is not inside");
  ExpectEditRejected(file, "counts", [&](PlanParts& p) { arena(p, 256, {0, 64}, {64}); }, "differ in number");
  ExpectEditRejected(file, "arena size", [&](PlanParts& p) { arena(p, -1, {0}, {0}); }, "out of range");
}

TEST(PlanCorruption, MemoryPlan) {
  const std::vector<uint8_t>& file = TinyPlan();
  auto mem = [](PlanParts& p) -> fb::MemoryPlanT& { return *p.plan->memory; };
  ExpectEditRejected(
      file, "arena", [&](PlanParts& p) { mem(p).arena_bytes = int64_t{1} << 60; }, "arena of");
  ExpectEditRejected(
      file, "arena bigger than all tensors", [&](PlanParts& p) { mem(p).arena_bytes *= 1000; }, "for tensors of");
  ExpectEditRejected(
      file, "negative arena", [&](PlanParts& p) { mem(p).arena_bytes = -64; }, "arena of");
  ExpectEditRejected(
      file, "offset", [&](PlanParts& p) { mem(p).placements[0]->offset = mem(p).arena_bytes; }, "outside the arena");
  ExpectEditRejected(
      file, "huge offset", [&](PlanParts& p) { mem(p).placements[0]->offset = INT64_MAX - 8; }, "outside the arena");
  ExpectEditRejected(
      file, "too small", [&](PlanParts& p) { mem(p).placements[0]->bytes = 4; }, "bytes for a tensor of");
  ExpectEditRejected(
      file, "huge bytes", [&](PlanParts& p) { mem(p).placements[0]->bytes = INT64_MAX; }, "bytes for a tensor of");
  ExpectEditRejected(
      file, "value id", [&](PlanParts& p) { mem(p).placements.back()->value = 1 << 20; },
      "out of range or out of order");
  ExpectEditRejected(
      file, "order", [&](PlanParts& p) { std::swap(mem(p).placements[0], mem(p).placements[1]); },
      "out of range or out of order");
  ExpectEditRejected(
      file, "graph input in the arena", [&](PlanParts& p) { mem(p).placements[0]->value = p.plan->graph->inputs[0]; },
      "only intermediate tensors");
  ExpectEditRejected(
      file, "alias", [&](PlanParts& p) { mem(p).placements[0]->alias_of = 1 << 20; }, "alias_of");
  ExpectEditRejected(
      file, "alias of an unplanned value",
      [&](PlanParts& p) { mem(p).placements[1]->alias_of = p.plan->graph->inputs[0]; }, "no placement");
  ExpectEditRejected(
      file, "lifetime", [&](PlanParts& p) { mem(p).placements[0]->last_use = 100000; }, "lifetime");
  ExpectEditRejected(
      file, "lifetime reversed",
      [&](PlanParts& p) { mem(p).placements[0]->first_use = mem(p).placements[0]->last_use + 1; }, "lifetime");
  ExpectEditRejected(
      file, "concat slice",
      [&](PlanParts& p) {
        mem(p).placements[1]->concat_slice = true;
        mem(p).placements[1]->alias_of = mem(p).placements[0]->value;
        mem(p).placements[1]->rows = INT64_MAX;
        mem(p).placements[1]->row_pitch = INT64_MAX;
      },
      "bad concat slice");
  ExpectEditRejected(
      file, "live tensors share bytes",
      [&](PlanParts& p) {
        for (auto& pl : mem(p).placements) {
          pl->offset = 0;
          pl->alias_of = -1;
        }
      },
      "memory plan");
  ExpectEditRejected(
      file, "eliminated concat", [&](PlanParts& p) { mem(p).eliminated_concats = {0}; },
      "eliminated concat 0 is not a node of the right op");
  ExpectEditRejected(
      file, "view node", [&](PlanParts& p) { mem(p).view_nodes = {1 << 30}; }, "view node 1073741824 is not a node");
}

TEST(PlanCorruption, FilesThatAreNotPlans) {
  const fs::path dir = fs::temp_directory_path() / StrCat("kiln_plan_files_", getpid());
  fs::create_directories(dir);
  auto err = [](const std::string& path) {
    auto r = LoadPlan(path);
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(err((dir / "missing.plan").string()).find("cannot open"), std::string::npos);
  EXPECT_NE(err(dir.string()).find("not a regular file"), std::string::npos);
  std::ofstream((dir / "empty.plan").string()).close();
  EXPECT_NE(err((dir / "empty.plan").string()).find("empty"), std::string::npos);
  EXPECT_NE(err(SourcePath("models/tiny_cnn.onnx")).find("not a kiln plan"), std::string::npos);
  const std::vector<uint8_t>& file = TinyPlan();
  std::ofstream((dir / "half.plan").string(), std::ios::binary)
      .write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size() / 2));
  const std::string half = err((dir / "half.plan").string());
  EXPECT_NE(half.find("half.plan: truncated"), std::string::npos) << half;
  EXPECT_FALSE(IsPlanFile((dir / "missing.plan").string()));
  EXPECT_TRUE(IsPlanFile((dir / "half.plan").string()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln::testing

namespace kiln {

// Inputs the plan-loader fuzzer once crashed on (fuzz/regressions/fuzz_plan_loader/), run
// as the fuzz target runs them: the header's sizes and checksum made consistent with the
// bytes, so they reach the decoder. Each must load or fail with an error; the sanitizer
// build (scripts/sanitize.sh) watches the reads.
TEST(PlanCorruption, FuzzRegressions) {
  const std::filesystem::path dir = std::filesystem::path(KILN_SOURCE_DIR) / "fuzz" / "regressions" / "fuzz_plan_loader";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    SCOPED_TRACE(entry.path().string());
    std::ifstream f(entry.path(), std::ios::binary);
    std::vector<uint8_t> file((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ASSERT_GE(file.size(), kPlanHeaderSize);
    PlanHeader h = DecodePlanHeader(file.data());
    h.file_size = file.size();
    if (h.flatbuffer_offset <= file.size()) h.flatbuffer_size = file.size() - h.flatbuffer_offset;
    EncodePlanHeader(h, file.data());
    RestampPlanChecksum(file);
    auto plan = LoadPlanFromBytes(file.data(), file.size(), entry.path().filename().string());
    if (!plan.ok()) {
      EXPECT_NE(plan.status().message(), "");
    }
    ++n;
  }
  EXPECT_GE(n, 1);
}

}  // namespace kiln
