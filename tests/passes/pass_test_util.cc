#include "passes/pass_test_util.h"
#include <cmath>

#include "api/optimize.h"
#include "backends/cpu/cpu_backend.h"
#include "ir/infer.h"
#include "ir/op_schema.h"
#include "passes/pass_manager.h"

namespace kiln::testing {

AttrMap Attrs(std::initializer_list<std::pair<const char*, Attr>> kv) {
  AttrMap m;
  for (const auto& [k, v] : kv) m.set(k, v);
  return m;
}

Tensor RandomTensor(std::vector<int64_t> dims, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  Tensor t(DType::kFloat32, std::move(dims));
  for (float& f : t.span<float>()) f = d(rng);
  return t;
}

ValueId GraphBuilder::Input(const std::string& name, DType dt, std::vector<int64_t> dims) {
  ValueId v = *g_.AddValue(name, TypeInfo::Tensor(dt, Shape::FromDims(dims)));
  g_.inputs().push_back(v);
  return v;
}

ValueId GraphBuilder::Const(const std::string& name, Tensor t) { return *g_.AddConstant(name, std::move(t)); }

ValueId GraphBuilder::Op(const std::string& op, const std::string& name, std::vector<ValueId> inputs, AttrMap attrs,
                         int num_outputs) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.attrs = std::move(attrs);
  for (int i = 0; i < num_outputs; ++i) n.outputs.push_back(*g_.AddValue(name + (i ? "_out" + std::to_string(i) : "_out")));
  ValueId out0 = n.outputs[0];
  auto r = g_.AddNode(std::move(n));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return out0;
}

Graph GraphBuilder::Build() {
  InferOptions io;
  io.evaluator = &ReferenceEvaluator();
  Status s = InferTypes(g_, io);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return g_;
}

void RunPassToFixedPoint(PassFn pass, Graph& g, PassContext* ctx) {
  PassContext local;
  PassContext& c = ctx ? *ctx : local;
  c.evaluator = &ReferenceEvaluator();
  for (int i = 0; i < 20; ++i) {
    auto changed = pass(g, c);
    ASSERT_TRUE(changed.ok()) << changed.status().ToString();
    if (!*changed) return;
    Status v = VerifyGraph(g);
    ASSERT_TRUE(v.ok()) << v.ToString();
    InferOptions io;
    io.evaluator = &ReferenceEvaluator();
    Status t = InferTypes(g, io);
    ASSERT_TRUE(t.ok()) << t.ToString();
  }
}

::testing::AssertionResult SameOutputs(const Graph& a, const Graph& b, double rtol, double atol, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<RValue> inputs;
  for (ValueId v : a.inputs()) {
    const TypeInfo& t = a.value(v).type;
    Tensor x(DType::kFloat32, t.shape.Sizes());
    for (float& f : x.span<float>()) f = dist(rng);
    auto cast = x.CastTo(t.dtype);
    inputs.emplace_back(*cast);
  }
  RefExecutor ex;
  auto ra = ex.Run(a, inputs);
  auto rb = ex.Run(b, inputs);
  if (!ra.ok()) return ::testing::AssertionFailure() << "original: " << ra.status().ToString();
  if (!rb.ok()) return ::testing::AssertionFailure() << "rewritten: " << rb.status().ToString();
  for (size_t i = 0; i < ra->size(); ++i) {
    const Tensor& x = (*ra)[i].tensor;
    const Tensor& y = (*rb)[i].tensor;
    if (x.dims() != y.dims()) return ::testing::AssertionFailure() << "output " << i << " shape differs";
    for (int64_t k = 0; k < x.numel(); ++k) {
      double p = x.GetAsDouble(k), q = y.GetAsDouble(k);
      if ((std::isnan(p) && std::isnan(q)) || (std::isinf(p) && p == q)) continue;
      if (!(std::fabs(p - q) <= atol + rtol * std::fabs(p)))
        return ::testing::AssertionFailure() << "output " << i << " [" << k << "]: " << p << " vs " << q;
    }
  }
  return ::testing::AssertionSuccess();
}

namespace {
cpu::CompileOptions MakeCompileOptions() {
  cpu::CompileOptions o;
  o.threads = 1;
  return o;
}

}  // namespace

::testing::AssertionResult CpuMatchesReference(const Graph& original, const Graph& optimized, double tol) {
  auto program = cpu::Compile(std::make_shared<const Graph>(optimized), MakeCompileOptions());
  if (!program.ok()) return ::testing::AssertionFailure() << "compile: " << program.status().ToString();
  return ProgramMatchesReference(original, *program, tol);
}

::testing::AssertionResult ProgramMatchesReference(const Graph& original, std::shared_ptr<const cpu::Program> program,
                                                   double tol) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  std::vector<RValue> ref_inputs;
  std::vector<Tensor> cpu_inputs;
  for (ValueId v : original.inputs()) {
    Tensor x(DType::kFloat32, original.value(v).type.shape.Sizes());
    for (float& f : x.span<float>()) f = dist(rng);
    cpu_inputs.push_back(x);
    ref_inputs.emplace_back(x);
  }
  RefExecutor ex;
  auto want = ex.Run(original, ref_inputs);
  if (!want.ok()) return ::testing::AssertionFailure() << "reference: " << want.status().ToString();
  cpu::Context ctx(std::move(program));
  std::vector<const Tensor*> in;
  for (const Tensor& t : cpu_inputs) in.push_back(&t);
  std::vector<Tensor> got;
  Status st = ctx.RunTensors(in, &got);
  if (!st.ok()) return ::testing::AssertionFailure() << "cpu run: " << st.ToString();
  for (size_t i = 0; i < got.size(); ++i) {
    const Tensor& x = (*want)[i].tensor;
    for (int64_t k = 0; k < x.numel(); ++k) {
      const double p = x.GetAsDouble(k), q = got[i].GetAsDouble(k);
      if ((std::isnan(p) && std::isnan(q)) || (std::isinf(p) && p == q)) continue;
      if (!(std::fabs(p - q) <= tol * std::max(1.0, std::fabs(p))))
        return ::testing::AssertionFailure() << "output " << i << " [" << k << "]: reference " << p << ", cpu " << q;
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::string> CpuSlowSteps(const Graph& optimized) {
  auto program = cpu::Compile(std::make_shared<const Graph>(optimized), MakeCompileOptions());
  if (!program.ok()) return {"compile: " + program.status().ToString()};
  return cpu::SlowSteps(**program);
}

std::string OpSequence(const Graph& g) {
  std::string s;
  auto order = g.TopologicalOrder();
  if (!order.ok()) return "<cycle>";
  for (NodeId id : *order) {
    const Node& n = g.node(id);
    s += (s.empty() ? "" : ",") + n.op_type;
    if (const Attr* e = n.attrs.find(kEpilogueAttr)) {
      auto eo = e->g->TopologicalOrder();
      for (NodeId k : *eo) s += "+" + e->g->node(k).op_type;
    }
  }
  return s;
}

}  // namespace kiln::testing
