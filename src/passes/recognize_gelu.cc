// GELU as exporters decompose it (exact, erf form):
//   y = x * 0.5 * (1 + Erf(x / sqrt(2)))      (any association of the three factors; the
//   Erf argument may be Div(x, 1.4142..) or Mul(x, 0.7071..))
// becomes Gelu(x) (ai.onnx Gelu, opset 20 semantics; an elementwise op, so it then fuses
// into the epilogue of the MatMul/Conv before it).
#include <cmath>

#include "ir/op_schema.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln {

namespace {

bool Near(std::optional<double> v, double want) { return v && std::fabs(*v - want) <= 1e-4 * std::fabs(want); }

}  // namespace

StatusOr<bool> RecognizeGelu(Graph& graph, PassContext& ctx) {
  bool changed = false;
  const int num_nodes = graph.num_nodes();
  const PatternMatcher m(graph);
  for (NodeId root = 0; root < num_nodes; ++root) {
    const Node& top = graph.node(root);
    if (top.dead || !top.domain.empty() || top.op_type != "Mul" || IsFusedNode(top) || top.inputs.size() != 2) continue;
    // Flatten the product: the root Mul and at most one Mul below it give three factors.
    std::vector<NodeId> nodes = {root};
    std::vector<ValueId> factors;
    for (ValueId in : top.inputs) {
      const NodeId inner = m.Producer(in, "Mul");
      if (inner >= 0 && nodes.size() == 1 && graph.value(in).consumers.size() == 1) {
        nodes.push_back(inner);
        for (ValueId f : graph.node(inner).inputs) factors.push_back(f);
      } else {
        factors.push_back(in);
      }
    }
    if (factors.size() != 3) continue;
    // Which factor is 0.5, which is 1 + Erf(...), which is x.
    ValueId half = kNoValue, x = kNoValue;
    NodeId add = -1, erf = -1, scale = -1;
    int others = 0;
    for (ValueId f : factors) {
      if (Near(m.Scalar(f), 0.5)) { half = f; continue; }
      if (NodeId a = m.Producer(f, "Add"); a >= 0 && add < 0) {
        const Node& an = graph.node(a);
        for (int i = 0; i < 2; ++i) {
          const NodeId e = m.Producer(an.inputs[static_cast<size_t>(i)], "Erf");
          if (e >= 0 && Near(m.Scalar(an.inputs[static_cast<size_t>(1 - i)]), 1.0)) { add = a; erf = e; }
        }
        if (add >= 0) continue;
      }
      x = f;
      ++others;
    }
    if (half == kNoValue || add < 0 || others != 1) continue;
    // The Erf argument: x / sqrt(2) or x * (1 / sqrt(2)).
    const ValueId arg = graph.node(erf).inputs[0];
    if (NodeId d = m.Producer(arg, "Div"); d >= 0 && graph.node(d).inputs[0] == x && Near(m.Scalar(graph.node(d).inputs[1]), std::sqrt(2.0)))
      scale = d;
    else if (NodeId mu = m.Producer(arg, "Mul"); mu >= 0 && Near(m.Scalar(PatternMatcher::Other(graph.node(mu), x)), std::sqrt(0.5)))
      scale = mu;
    if (scale < 0) continue;
    const TypeInfo& xt = graph.value(x).type;
    if (!xt.is_tensor() || !IsFloat(xt.dtype)) continue;
    nodes.insert(nodes.end(), {add, erf, scale});
    const ValueId out = top.outputs[0];
    if (!m.OnlyInternalUses(nodes, out)) continue;
    Node gelu;
    gelu.name = graph.node(erf).name.empty() ? graph.value(out).name + "/Gelu" : graph.node(erf).name + "/Gelu";
    gelu.op_type = "Gelu";
    gelu.inputs = {x};
    gelu.outputs = {out};
    KILN_RETURN_IF_ERROR(ReplacePattern(graph, ctx, "recognize_gelu", nodes, std::move(gelu)));
    changed = true;
  }
  return changed;
}

}  // namespace kiln
