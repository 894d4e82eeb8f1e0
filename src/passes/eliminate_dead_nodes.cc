// Removes nodes none of whose outputs reach a graph output (directly, through other
// nodes, or by name through a subgraph capture).
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

StatusOr<bool> EliminateDeadNodes(Graph& graph, PassContext& ctx) {
  (void)ctx;
  std::vector<bool> live(static_cast<size_t>(graph.num_nodes()), false);
  std::vector<ValueId> work(graph.outputs().begin(), graph.outputs().end());
  for (const std::string& name : CapturedNames(graph))
    if (auto v = graph.FindValue(name)) work.push_back(*v);
  while (!work.empty()) {
    ValueId v = work.back();
    work.pop_back();
    NodeId p = graph.value(v).producer;
    if (p < 0 || live[static_cast<size_t>(p)]) continue;
    live[static_cast<size_t>(p)] = true;
    for (ValueId in : graph.node(p).inputs)
      if (in != kNoValue) work.push_back(in);
  }
  bool changed = false;
  for (int n = 0; n < graph.num_nodes(); ++n) {
    if (graph.node(n).dead || live[static_cast<size_t>(n)]) continue;
    graph.RemoveNode(n);
    changed = true;
  }
  return changed;
}

}  // namespace kiln
