// Evaluates nodes whose inputs are all constant, once, at build time.
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

StatusOr<bool> FoldConstants(Graph& graph, PassContext& ctx) {
  if (ctx.evaluator == nullptr) return false;
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId n : order) {
    Node& node = graph.node(n);
    if (IsNondeterministicOp(node) || HasSubgraph(node)) continue;  // incl. fused nodes (epilogue graph)
    std::vector<const Tensor*> ins;
    bool all_const = !node.inputs.empty();
    for (ValueId v : node.inputs) {
      if (v == kNoValue) { ins.push_back(nullptr); continue; }
      const Value& val = graph.value(v);
      if (!val.constant) { all_const = false; break; }
      ins.push_back(&*val.constant);
    }
    if (!all_const) continue;
    auto outs = (*ctx.evaluator)(graph, n, ins);
    if (!outs.ok()) continue;  // e.g. a non-tensor result: left to run time
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
