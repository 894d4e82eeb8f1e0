// Softmax as exporters decompose it:
//   e = Exp(Sub(x, ReduceMax(x, [a], keepdims=1)))   (or Exp(x))
//   y = Div(e, ReduceSum(e, [a], keepdims=1))
// becomes Softmax(x, axis = a). Without the max subtraction the source overflows for large
// inputs where Softmax does not; for every input where the source is finite both agree.
#include "ir/op_schema.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln {

StatusOr<bool> RecognizeSoftmax(Graph& graph, PassContext& ctx) {
  bool changed = false;
  const int num_nodes = graph.num_nodes();
  const PatternMatcher m(graph);
  for (NodeId root = 0; root < num_nodes; ++root) {
    const Node& div = graph.node(root);
    if (div.dead || !div.domain.empty() || div.op_type != "Div" || IsFusedNode(div) || div.inputs.size() != 2) continue;
    const ValueId e = div.inputs[0];
    const NodeId exp = m.Producer(e, "Exp");
    const NodeId sum = m.Producer(div.inputs[1], "ReduceSum");
    if (exp < 0 || sum < 0 || graph.node(sum).inputs[0] != e) continue;
    auto axis_of = [&](NodeId r) -> std::optional<int64_t> {
      const Node& rn = graph.node(r);
      auto axes = rn.inputs.size() > 1 ? m.Ints(rn.inputs[1]) : std::nullopt;
      auto keep = rn.attrs.GetInt("keepdims", 1);
      if (!axes || axes->size() != 1 || !keep.ok() || *keep != 1) return std::nullopt;
      return (*axes)[0];
    };
    std::vector<NodeId> nodes = {exp, sum, root};
    ValueId x = graph.node(exp).inputs[0];
    auto axis = axis_of(sum);
    if (!axis) continue;
    if (NodeId sub = m.Producer(x, "Sub"); sub >= 0) {
      const NodeId mx = m.Producer(graph.node(sub).inputs[1], "ReduceMax");
      if (mx >= 0 && graph.node(mx).inputs[0] == graph.node(sub).inputs[0] && axis_of(mx) == axis) {
        nodes.insert(nodes.end(), {sub, mx});
        x = graph.node(sub).inputs[0];
      }
    }
    const TypeInfo& xt = graph.value(x).type;
    if (!xt.is_tensor() || !IsFloat(xt.dtype) || !xt.shape.has_rank()) continue;
    const int64_t rank = xt.shape.rank();
    if (*axis < -rank || *axis >= rank) continue;
    const ValueId out = div.outputs[0];
    if (!m.OnlyInternalUses(nodes, out)) continue;
    Node sm;
    sm.name = div.name.empty() ? graph.value(out).name + "/Softmax" : div.name + "/Softmax";
    sm.op_type = "Softmax";
    sm.inputs = {x};
    sm.outputs = {out};
    sm.attrs.set("axis", Attr::Int(*axis));
    KILN_RETURN_IF_ERROR(ReplacePattern(graph, ctx, "recognize_softmax", nodes, std::move(sm)));
    changed = true;
  }
  return changed;
}

}  // namespace kiln
