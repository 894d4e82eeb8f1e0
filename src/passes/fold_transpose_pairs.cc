// Transpose(Transpose(x, p1), p2) == Transpose(x, q) with q[i] = p1[p2[i]].
#include "ir/op_schema.h"
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

StatusOr<bool> FoldTransposePairs(Graph& graph, PassContext& ctx) {
  bool changed = false;
  for (int n = 0; n < graph.num_nodes(); ++n) {
    Node& outer = graph.node(n);
    if (outer.dead || outer.op_type != "Transpose" || IsFusedNode(outer) || !outer.domain.empty() || outer.inputs.empty()) continue;
    ValueId mid = outer.inputs[0];
    NodeId in_id = graph.value(mid).producer;
    if (in_id < 0) continue;
    const Node& inner = graph.node(in_id);
    if (inner.op_type != "Transpose" || IsFusedNode(inner) || !inner.domain.empty()) continue;
    auto p1 = inner.attrs.GetInts("perm");
    auto p2 = outer.attrs.GetInts("perm");
    if (!p1.ok() || !p2.ok() || p1->empty() || p1->size() != p2->size()) continue;
    std::vector<int64_t> q(p2->size());
    bool valid = true;
    for (size_t i = 0; i < q.size(); ++i) {
      int64_t j = (*p2)[i];
      if (j < 0 || j >= static_cast<int64_t>(p1->size())) { valid = false; break; }
      q[i] = (*p1)[static_cast<size_t>(j)];
    }
    if (!valid) continue;
    // Rewire the outer Transpose to read x directly; the inner one dies if unused.
    ValueId x = inner.inputs[0];
    auto& mc = graph.value(mid).consumers;
    mc.erase(std::find(mc.begin(), mc.end(), n));
    outer.inputs[0] = x;
    graph.value(x).consumers.push_back(n);
    outer.attrs.set("perm", Attr::Ints(q));
    ctx.records.push_back({"fold_transpose_pairs", outer.name, {inner.name, outer.name}});
    changed = true;
  }
  return changed;
}

}  // namespace kiln
