// Evaluates nodes whose inputs are all constant, once, at build time.
#include <algorithm>
#include <optional>

#include "ir/infer.h"
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

namespace {

// Shape and Size only read their input's (static) shape, not its values.
std::optional<Tensor> FoldShapeOf(const Graph& graph, const Node& node) {
  if (!node.domain.empty() || (node.op_type != "Shape" && node.op_type != "Size") || node.inputs.empty()) return std::nullopt;
  const TypeInfo& t = graph.value(node.inputs[0]).type;
  if (!t.is_tensor() || !t.shape.IsStatic()) return std::nullopt;
  const std::vector<int64_t> dims = t.shape.Sizes();
  if (node.op_type == "Size") {
    auto n = t.shape.Numel();
    if (!n) return std::nullopt;
    return Tensor::Scalar<int64_t>(*n);
  }
  const int64_t r = static_cast<int64_t>(dims.size());
  auto start = node.attrs.GetInt("start", 0);
  auto end = node.attrs.GetInt("end", r);
  if (!start.ok() || !end.ok()) return std::nullopt;
  int64_t s = *start < 0 ? *start + r : *start, e = *end < 0 ? *end + r : *end;
  s = std::clamp<int64_t>(s, 0, r);
  e = std::clamp<int64_t>(e, 0, r);
  return Tensor::FromVector(std::vector<int64_t>(dims.begin() + s, dims.begin() + std::max(s, e)));
}

}  // namespace

StatusOr<bool> FoldConstants(Graph& graph, PassContext& ctx) {
  if (ctx.evaluator == nullptr) return false;
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId n : order) {
    Node& node = graph.node(n);
    if (IsNondeterministicOp(node) || HasSubgraph(node)) continue;  // incl. fused nodes (epilogue graph)
    if (std::optional<Tensor> shape = FoldShapeOf(graph, node)) {
      const ValueId out = node.outputs[0];
      const std::string name = node.name;
      graph.RemoveNode(n);
      graph.value(out).constant = std::move(*shape);
      graph.value(out).type = TypeInfo::Tensor(DType::kInt64, Shape::FromDims(graph.value(out).constant->dims()));
      ctx.records.push_back({"fold_constants", name, {name}});
      changed = true;
      continue;
    }
    std::vector<const Tensor*> ins;
    bool all_const = !node.inputs.empty();
    for (ValueId v : node.inputs) {
      if (v == kNoValue) { ins.push_back(nullptr); continue; }
      const Value& val = graph.value(v);
      if (!val.constant) { all_const = false; break; }
      ins.push_back(&*val.constant);
    }
    if (!all_const) continue;
    // Only small results are folded: do not compute a large one to throw it away.
    if (!StaticOutputsWithin(graph, node, ctx.max_fold_elements)) continue;
    auto outs = (*ctx.evaluator)(graph, n, ins);
    if (!outs.ok()) {
      // A node of the main graph whose inputs are all constant runs on every inference: if it
      // fails on them (an index out of range, a bad shape), the model is broken, and the build
      // says so now instead of shipping a plan that fails at its first run.
      const StatusCode code = outs.status().code();
      if (code == StatusCode::kInvalidArgument || code == StatusCode::kOutOfRange)
        return outs.status().WithPrefix(StrCat(node.DisplayName(n), " (all inputs constant)"));
      continue;  // e.g. a non-tensor result or an op the evaluator lacks: left to run time
    }
    bool small = true;
    for (const Tensor& t : *outs) small = small && t.numel() <= ctx.max_fold_elements;
    if (!small || outs->size() < node.outputs.size()) continue;
    std::vector<ValueId> results = node.outputs;
    std::string name = node.name;
    graph.RemoveNode(n);
    for (size_t i = 0; i < results.size(); ++i) {
      if (results[i] == kNoValue) continue;
      Value& v = graph.value(results[i]);
      v.constant = (*outs)[i];
      v.type = TypeInfo::Tensor(v.constant->dtype(), Shape::FromDims(v.constant->dims()));
    }
    ctx.records.push_back({"fold_constants", name, {name}});
    changed = true;
  }
  return changed;
}

}  // namespace kiln
