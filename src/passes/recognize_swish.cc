// Self-gated activations as exporters write them:
//   y = x * Sigmoid(x)              -> Swish(x)   (SiLU: EfficientNet, YOLOv5/8, Stable Diffusion)
//   y = x * Tanh(Softplus(x))       -> Mish(x)    (YOLOv4, CSPDarknet)
// (Mul operands in either order). As two nodes they read x twice, so neither can join the
// epilogue of the convolution that produces x and the gate runs as a separate pass over
// memory; as one elementwise op (Swish: ai.onnx opset 24 semantics, alpha 1) it fuses into
// that convolution as a single post-op (oneDNN's eltwise_swish / eltwise_mish).
#include "ir/op_schema.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln {

StatusOr<bool> RecognizeSwish(Graph& graph, PassContext& ctx) {
  bool changed = false;
  const int num_nodes = graph.num_nodes();
  const PatternMatcher m(graph);
  for (NodeId root = 0; root < num_nodes; ++root) {
    const Node& top = graph.node(root);
    if (top.dead || !top.domain.empty() || top.op_type != "Mul" || IsFusedNode(top) || top.inputs.size() != 2 ||
        top.inputs[0] == top.inputs[1])
      continue;
    std::vector<NodeId> nodes;
    ValueId x = kNoValue;
    const char* op = nullptr;
    for (int i = 0; i < 2 && x == kNoValue; ++i) {
      const ValueId xi = top.inputs[static_cast<size_t>(i)], gate = top.inputs[static_cast<size_t>(1 - i)];
      if (const NodeId s = m.Producer(gate, "Sigmoid"); s >= 0 && graph.node(s).inputs[0] == xi) {
        nodes = {root, s};
        x = xi;
        op = "Swish";
      } else if (const NodeId t = m.Producer(gate, "Tanh"); t >= 0) {
        const ValueId sp_out = graph.node(t).inputs[0];
        const NodeId sp = m.Producer(sp_out, "Softplus");
        if (sp >= 0 && graph.node(sp).inputs[0] == xi && graph.value(sp_out).consumers.size() == 1) {
          nodes = {root, t, sp};
          x = xi;
          op = "Mish";
        }
      }
    }
    if (x == kNoValue) continue;
    const ValueId out = top.outputs[0];
    const TypeInfo& xt = graph.value(x).type;
    const TypeInfo& ot = graph.value(out).type;
    // Same type in and out: a broadcasting x (another shape) is not a self-gate.
    if (!xt.is_tensor() || !IsFloat(xt.dtype) || !xt.shape.has_rank() || !(xt.shape == ot.shape) || xt.dtype != ot.dtype)
      continue;
    if (!m.OnlyInternalUses(nodes, out)) continue;
    Node n;
    n.name = (top.name.empty() ? graph.value(out).name : top.name) + "/" + op;
    n.op_type = op;
    n.inputs = {x};
    n.outputs = {out};
    KILN_RETURN_IF_ERROR(ReplacePattern(graph, ctx, "recognize_swish", nodes, std::move(n)));
    changed = true;
  }
  return changed;
}

}  // namespace kiln
