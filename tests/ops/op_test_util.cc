#include "ops/op_test_util.h"

#include <sstream>

#include "runtime/backend_registry.h"

namespace kiln::testing {

namespace {

ConstantEvaluator MakeEvaluator() {
  return [](const Graph& g, NodeId id, const std::vector<const Tensor*>& ins) {
    RefExecutor ex;
    return ex.EvaluateNode(g, id, ins);
  };
}

// Every registered backend besides the reference one that takes the graph (backends/
// backend.h: CheckGraph) compiles and runs it on the same feeds; its outputs must be the
// reference's (floats within kBackendRtol/kBackendAtol, everything else exactly). A
// mismatch or an error is a test failure naming the backend, op and output.
void CompareBackends(OpRun& r, const std::vector<RValue>& feeds) {
  auto g = std::make_shared<const Graph>(r.graph);
  for (const ExecutionBackend* backend : RegisteredBackends()) {
    if (backend->kind() == Backend::kRef || !backend->CheckGraph(*g).ok()) continue;
    const std::string what = StrCat(backend->name(), " backend, ", g->name, ": ");
    BackendOptions options;
    options.threads = 1;
    auto program = backend->Compile(g, options);
    if (!program.ok()) {
      ADD_FAILURE() << what << "does not compile: " << program.status().ToString();
      continue;
    }
    std::vector<RValue> got;
    Status st = (*program)->CreateContext()->Run(feeds, &got);
    if (!st.ok()) {
      ADD_FAILURE() << what << "fails to run: " << st.ToString();
      continue;
    }
    if (got.size() != r.outputs.size()) {
      ADD_FAILURE() << what << got.size() << " outputs, the reference has " << r.outputs.size();
      continue;
    }
    for (size_t o = 0; o < got.size(); ++o) {
      if (!got[o].is_tensor() || !r.outputs[o].is_tensor()) continue;
      const Tensor& want = r.outputs[o].tensor;
      // Half-precision outputs: within a few of their ulps (another backend may round the
      // float result once where the reference rounds each step, or the other way round).
      const bool exact = !IsFloat(want.dtype());
      const bool half = want.dtype() == DType::kFloat16 || want.dtype() == DType::kBFloat16;
      const double rtol = exact ? 0.0 : half ? 1e-2 : kBackendRtol, atol = exact ? 0.0 : half ? 1e-3 : kBackendAtol;
      ::testing::AssertionResult same = TensorsClose(got[o].tensor, want, rtol, atol);
      if (!same) ADD_FAILURE() << what << "output " << o << ": " << same.message();
    }
    r.backends.push_back(backend->name());
  }
}

OpRun Build(const std::string& op_type, const std::vector<RValue>& inputs, const std::vector<TypeInfo>& types,
            const std::vector<bool>& is_const, const AttrMap& attrs, int num_outputs, const std::string& domain) {
  OpRun r;
  Graph& g = r.graph;
  g.name = "test_" + op_type;
  Node n;
  n.name = op_type + "_node";
  n.op_type = op_type;
  n.domain = domain;
  n.attrs = attrs;
  std::vector<RValue> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const RValue& in = inputs[i];
    if (in.is_tensor() && !in.tensor.defined()) {
      n.inputs.push_back(kNoValue);
      continue;
    }
    std::string name = "in" + std::to_string(i);
    if (is_const[i] && in.is_tensor()) {
      n.inputs.push_back(*g.AddConstant(name, in.tensor));
    } else {
      ValueId v = *g.AddValue(name, types[i]);
      g.inputs().push_back(v);
      n.inputs.push_back(v);
      feeds.push_back(in);
    }
  }
  for (int o = 0; o < num_outputs; ++o) {
    ValueId v = *g.AddValue("out" + std::to_string(o));
    n.outputs.push_back(v);
    g.outputs().push_back(v);
  }
  auto added = g.AddNode(std::move(n));
  if (!added.ok()) {
    r.status = added.status();
    return r;
  }
  ConstantEvaluator eval = MakeEvaluator();
  InferOptions opts;
  opts.evaluator = &eval;
  r.status = InferTypes(g, opts);
  if (!r.status.ok()) return r;
  RefExecutor ex;
  auto outs = ex.Run(g, feeds);
  if (!outs.ok()) {
    r.status = outs.status();
    return r;
  }
  r.outputs = std::move(*outs);
  CompareBackends(r, feeds);
  return r;
}

}  // namespace

AttrMap A(std::initializer_list<std::pair<const char*, Attr>> kv) {
  AttrMap m;
  for (const auto& [k, v] : kv) m.set(k, v);
  return m;
}

bool Has(const Status& s, const std::string& text) { return !s.ok() && s.ToString().find(text) != std::string::npos; }

std::string OutType(const OpRun& r, int i) {
  return r.graph.value(r.graph.outputs()[static_cast<size_t>(i)]).type.ToString();
}

OpRun RunOp(const std::string& op_type, const std::vector<Tensor>& inputs, const AttrMap& attrs, int num_outputs,
            const std::vector<int>& constant_inputs, const std::string& domain) {
  std::vector<RValue> vals;
  std::vector<TypeInfo> types;
  std::vector<bool> is_const(inputs.size(), false);
  for (int c : constant_inputs) is_const[static_cast<size_t>(c)] = true;
  for (const Tensor& t : inputs) {
    vals.emplace_back(t);
    types.push_back(t.defined() ? TypeInfo::Tensor(t.dtype(), Shape::FromDims(t.dims())) : TypeInfo{});
  }
  return Build(op_type, vals, types, is_const, attrs, num_outputs, domain);
}

OpRun RunOpValues(const std::string& op_type, const std::vector<RValue>& inputs, const std::vector<TypeInfo>& types,
                  const AttrMap& attrs, int num_outputs, const std::string& domain) {
  std::vector<bool> is_const(inputs.size(), false);
  return Build(op_type, inputs, types, is_const, attrs, num_outputs, domain);
}

::testing::AssertionResult TensorsClose(const Tensor& actual, const Tensor& expected, double rtol, double atol) {
  if (actual.dtype() != expected.dtype())
    return ::testing::AssertionFailure() << "dtype " << DTypeName(actual.dtype()) << " vs expected "
                                         << DTypeName(expected.dtype());
  if (actual.dims() != expected.dims())
    return ::testing::AssertionFailure() << "shape " << actual.ShapeString() << " vs expected "
                                         << expected.ShapeString();
  if (actual.dtype() == DType::kString) {
    for (int64_t i = 0; i < actual.numel(); ++i)
      if (actual.data<std::string>()[i] != expected.data<std::string>()[i])
        return ::testing::AssertionFailure() << "string [" << i << "] '" << actual.data<std::string>()[i]
                                             << "' vs '" << expected.data<std::string>()[i] << "'";
    return ::testing::AssertionSuccess();
  }
  int64_t bad = 0, worst = -1;
  double worst_excess = 0;
  for (int64_t i = 0; i < actual.numel(); ++i) {
    double a = actual.GetAsDouble(i), e = expected.GetAsDouble(i);
    if (std::isnan(a) && std::isnan(e)) continue;
    if (a == e) continue;
    double excess = std::fabs(a - e) - (atol + rtol * std::fabs(e));
    if (!(excess <= 0)) {
      ++bad;
      if (worst < 0 || excess > worst_excess || std::isnan(excess)) { worst = i; worst_excess = excess; }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << "/" << actual.numel() << " values differ; worst [" << worst
                                       << "] got " << actual.GetAsDouble(worst) << " expected "
                                       << expected.GetAsDouble(worst);
}

Tensor F32(std::vector<float> v, std::vector<int64_t> dims) { return Tensor::FromVector(v, std::move(dims)); }
Tensor I64(std::vector<int64_t> v, std::vector<int64_t> dims) { return Tensor::FromVector(v, std::move(dims)); }

}  // namespace kiln::testing
