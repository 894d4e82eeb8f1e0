// The optimizer must never change a model's math: for every op the epilogue fusion may
// extend (every elementwise/broadcast op in the registry, and the Conv/Gemm/MatMul anchors),
// in FP32 and FP16, a chain fused after it — including Casts, whose fused forms look like
// no-op casts by their types — computes what the unfused graph computes, through the whole
// default pipeline (so a later pass that mistakes a fused node for its anchor op is caught)
// and through the CPU backend's kernels (post-ops, or the reference fallback that applies
// the epilogue). Also IS-Net's seven-node repro of exactly that bug.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "api/optimize.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/ref/kernel.h"
#include "ir/infer.h"
#include "ir/op_schema.h"
#include "passes/pass_test_util.h"

namespace kiln::testing {
namespace {

// Ops whose output is not the input's float type, or that need attributes/inputs a generic
// caller cannot make up: covered by their own tests, not as epilogue anchors here.
bool GenericFloatAnchor(const OpSchema& s) {
  static const std::set<std::string> kSkip = {
      "Not", "BitwiseNot", "IsNaN", "IsInf", "And", "Or", "Xor", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
      "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Where", "Mod", "CastLike",
      "Bernoulli", "RandomNormalLike", "RandomUniformLike"};
  return s.domain.empty() && !kSkip.count(s.op_type) &&
         (s.fusion == FusionClass::kElementwise || s.fusion == FusionClass::kBroadcast);
}

// Runs `g` through the default pipeline; returns the optimized graph. Variant 1 leaves
// FP16 arithmetic in FP16 (compute_fp16_in_fp32 off), so that FP16 Casts stay in the graph
// and get fused as they do on a target with FP16 kernels.
constexpr int kVariants = 2;
Graph Optimized(const Graph& g, int variant = 0) {
  Graph o = g;
  OptimizeOptions opts;
  if (variant == 1) opts.disabled_passes = {"compute_fp16_in_fp32"};
  auto r = OptimizeGraph(o, opts);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return o;
}

// Transpose(x) (f32) -> [Cast(dt)] -> anchor(x, y...) -> Cast(f16) -> Sigmoid -> Cast(f32) -> * 0.5
// -> Transpose -> out.
// Returns false when the anchor does not type-check with these inputs (generic callers skip it).
bool BuildAnchorGraph(const OpSchema& s, DType dt, Graph* out) {
  Graph g;
  g.name = "anchor_" + s.op_type;
  auto input = [&](const std::string& n) {
    ValueId v = *g.AddValue(n, TypeInfo::Tensor(DType::kFloat32, Shape::FromDims({2, 3, 4})));
    g.inputs().push_back(v);
    return v;
  };
  auto node = [&](const std::string& op, const std::string& name, std::vector<ValueId> ins, AttrMap attrs = {}) {
    Node n;
    n.name = name;
    n.op_type = op;
    n.inputs = std::move(ins);
    n.attrs = std::move(attrs);
    ValueId o = *g.AddValue(name + "_out");
    n.outputs = {o};
    EXPECT_TRUE(g.AddNode(std::move(n)).ok());
    return o;
  };
  auto cast = [&](ValueId v, DType to, const std::string& name) {
    return node("Cast", name, {v}, Attrs({{"to", Attr::Int(static_cast<int64_t>(to))}}));
  };
  const int arity = std::max(1, std::min(s.min_inputs == 0 ? 1 : s.min_inputs, 2));
  std::vector<ValueId> ins;
  for (int i = 0; i < arity; ++i) {
    // Behind a Transpose (not fusable): the anchor's input is an activation, as in a model.
    ValueId x = node("Transpose", "pre" + std::to_string(i), {input("x" + std::to_string(i))},
                     Attrs({{"perm", Attr::Ints({0, 2, 1})}}));
    ins.push_back(dt == DType::kFloat32 ? x : cast(x, dt, "in_cast" + std::to_string(i)));
  }
  // Cast anchors convert to the other float type: Cast(f32->f16) + [.., Cast(f16->f32)]
  // then has the types of a no-op Cast.
  AttrMap anchor_attrs;
  if (s.op_type == "Cast")
    anchor_attrs.set("to", Attr::Int(static_cast<int64_t>(dt == DType::kFloat32 ? DType::kFloat16 : DType::kFloat32)));
  ValueId a = node(s.op_type, "anchor", ins, anchor_attrs);
  ValueId c1 = cast(a, DType::kFloat16, "to_f16");
  ValueId sg = node("Sigmoid", "sigmoid", {c1});
  ValueId c2 = cast(sg, DType::kFloat32, "to_f32");
  ValueId half = *g.AddConstant("half", Tensor::Scalar<float>(0.5f));
  ValueId y = node("Mul", "scale", {c2, half});
  // ... and its output too: a fused node that writes a graph output is never forwarded away.
  g.outputs().push_back(node("Transpose", "post", {y}, Attrs({{"perm", Attr::Ints({0, 2, 1})}})));
  InferOptions io;
  io.evaluator = &ReferenceEvaluator();
  if (!InferTypes(g, io).ok()) return false;
  *out = std::move(g);
  return true;
}

TEST(FusionAnchors, EveryElementwiseAnchorKeepsItsEpilogue) {
  int tested = 0;
  for (const OpSchema* s : OpRegistry::Global().All()) {
    if (!GenericFloatAnchor(*s)) continue;
    for (DType dt : {DType::kFloat32, DType::kFloat16}) {
      Graph g;
      if (!BuildAnchorGraph(*s, dt, &g)) continue;
      RefExecutor probe;  // an op the reference kernels lack for this dtype is not an anchor here
      std::vector<RValue> in;
      for (ValueId v : g.inputs()) in.emplace_back(RandomTensor(g.value(v).type.shape.Sizes(), 3));
      if (!probe.Run(g, in).ok()) continue;
      for (int variant = 0; variant < kVariants; ++variant) {
        SCOPED_TRACE(s->op_type + (dt == DType::kFloat16 ? " (fp16)" : " (fp32)") + " variant " + std::to_string(variant));
        Graph o = Optimized(g, variant);
        // f16 rounding is in the original graph (and in variant 1); compare at f16's precision.
        EXPECT_TRUE(SameOutputs(g, o, 4e-3, 4e-3)) << OpSequence(o);
        EXPECT_NE(OpSequence(o).find("Sigmoid"), std::string::npos) << OpSequence(o);
        EXPECT_TRUE(CpuMatchesReference(g, o, 4e-3)) << OpSequence(o);
        ++tested;
      }
    }
  }
  // The registry has ~45 float elementwise ops; each in two dtypes. A registry change that
  // drops most of them must not turn this into a test of nothing.
  EXPECT_GE(tested, 140);
}

TEST(FusionAnchors, ConvGemmMatMulAnchorsKeepCastSigmoidEpilogues) {
  for (const char* op : {"Conv", "Gemm", "MatMul"}) {
    for (DType dt : {DType::kFloat32, DType::kFloat16}) {
      SCOPED_TRACE(std::string(op) + (dt == DType::kFloat16 ? " (fp16)" : " (fp32)"));
      GraphBuilder b;
      const bool conv = std::string(op) == "Conv";
      ValueId x = b.Input("x", DType::kFloat32, conv ? std::vector<int64_t>{1, 3, 6, 6} : std::vector<int64_t>{4, 8});
      ValueId w = b.Const("w", RandomTensor(conv ? std::vector<int64_t>{4, 3, 3, 3} : std::vector<int64_t>{8, 5}, 2, 0.3f));
      auto to = [&](ValueId v, DType t, const std::string& n) {
        return b.Op("Cast", n, {v}, Attrs({{"to", Attr::Int(static_cast<int64_t>(t))}}));
      };
      if (dt != DType::kFloat32) {
        x = to(x, dt, "x_cast");
        w = to(w, dt, "w_cast");
      }
      ValueId a = b.Op(op, "anchor", {x, w}, conv ? Attrs({{"pads", Attr::Ints({1, 1, 1, 1})}}) : AttrMap{});
      ValueId c = to(a, dt == DType::kFloat32 ? DType::kFloat16 : DType::kFloat32, "cast1");
      ValueId sg = b.Op("Sigmoid", "sigmoid", {c});
      ValueId y = to(sg, DType::kFloat32, "cast2");
      b.Output(y);
      Graph g = b.Build();
      for (int variant = 0; variant < kVariants; ++variant) {
        Graph o = Optimized(g, variant);
        EXPECT_TRUE(SameOutputs(g, o, 4e-3, 4e-3)) << OpSequence(o);
        EXPECT_NE(OpSequence(o).find("Sigmoid"), std::string::npos) << OpSequence(o);
        EXPECT_TRUE(CpuMatchesReference(g, o, 4e-3)) << OpSequence(o);
      }
    }
  }
}

// IS-Net (fp16 export with keep_io_types): x -> Cast(fp16) -> Conv -> Cast(fp32) ->
// Resize(linear) -> Cast(fp16) -> Sigmoid -> Cast(fp32). The optimizer fused Sigmoid and
// the last Cast into the Cast(fp16) after Resize, and remove_no_ops then took that fused
// Cast (f32 in, f32 out) for a no-op and dropped the Sigmoid: outputs in [-4, 4] instead
// of (0, 1).
TEST(FusionAnchors, Fp16ResizeSigmoidChainKeepsEveryOp) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 3, 8, 8});
  auto to = [&](ValueId v, DType t, const std::string& n) {
    return b.Op("Cast", n, {v}, Attrs({{"to", Attr::Int(static_cast<int64_t>(t))}}));
  };
  ValueId w = to(b.Const("w", RandomTensor({1, 3, 3, 3}, 5, 2.f)), DType::kFloat16, "w16");
  ValueId conv = b.Op("Conv", "conv", {to(x, DType::kFloat16, "x16"), w}, Attrs({{"pads", Attr::Ints({1, 1, 1, 1})}}));
  Tensor sizes(DType::kInt64, {4});
  const int64_t sz[] = {1, 1, 16, 16};
  for (int i = 0; i < 4; ++i) sizes.data<int64_t>()[i] = sz[i];
  ValueId r = b.Op("Resize", "resize", {to(conv, DType::kFloat32, "c32"), kNoValue, kNoValue, b.Const("sizes", sizes)},
                   Attrs({{"mode", Attr::String("linear")}}));
  ValueId y = to(b.Op("Sigmoid", "sigmoid", {to(r, DType::kFloat16, "r16")}), DType::kFloat32, "y");
  b.Output(y);
  Graph g = b.Build();
  for (int variant = 0; variant < kVariants; ++variant) {
    Graph o = Optimized(g, variant);
    EXPECT_NE(OpSequence(o).find("Sigmoid"), std::string::npos) << OpSequence(o);
    EXPECT_TRUE(SameOutputs(g, o, 4e-3, 4e-3)) << OpSequence(o);
    EXPECT_TRUE(CpuMatchesReference(g, o, 4e-3)) << OpSequence(o);
  }
  // With FP16 computed in FP32 (the default), the CPU schedule has no reference step.
  const std::vector<std::string> slow = CpuSlowSteps(Optimized(g));
  EXPECT_TRUE(slow.empty()) << slow[0];
}

}  // namespace
}  // namespace kiln::testing
