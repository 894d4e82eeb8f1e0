// HardSwish as exporters decompose it (MobileNetV3, PP-OCR, YOLO; Paddle2ONNX, older
// PyTorch opsets, TF):
//   y = x * Clip(x + 3, 0, 6) / 6           (Div by 6 or Mul by 1/6, at either level:
//   y = x * (Clip(x + 3, 0, 6) / 6)          x * (c / 6), (x * c) / 6, (x * c) * 1/6, ...)
//   y = x * HardSigmoid(x, alpha = 1/6, beta = 0.5)
// becomes HardSwish(x) (ai.onnx, opset 14 semantics: x * max(0, min(1, x / 6 + 1 / 2))),
// which is elementwise and reads x once, so it fuses into the epilogue of the convolution
// before it; as Add+Clip+Mul+Div it reads the convolution's output twice and cannot.
#include <cmath>

#include "ir/op_schema.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln {

namespace {

bool Near(std::optional<double> v, double want) { return v && std::fabs(*v - want) <= 1e-4 * std::fabs(want); }

// Clip(x + 3, 0, 6) (also Clip(3 + x, ...)): the Clip and Add nodes, and x; {-1, -1, none} if not.
struct Relu6Shift {
  NodeId clip = -1, add = -1;
  ValueId x = kNoValue;
};

Relu6Shift MatchRelu6Shift(const Graph& g, const PatternMatcher& m, ValueId v) {
  const NodeId clip = m.Producer(v, "Clip");
  if (clip < 0) return {};
  const Node& c = g.node(clip);
  if (c.inputs.size() != 3 || c.inputs[1] == kNoValue || c.inputs[2] == kNoValue) return {};
  if (!Near(m.Scalar(c.inputs[2]), 6.0)) return {};
  const std::optional<double> lo = m.Scalar(c.inputs[1]);
  if (!lo || *lo != 0.0) return {};
  const NodeId add = m.Producer(c.inputs[0], "Add");
  if (add < 0 || g.value(c.inputs[0]).consumers.size() != 1) return {};
  const Node& a = g.node(add);
  for (int i = 0; i < 2; ++i)
    if (Near(m.Scalar(a.inputs[static_cast<size_t>(1 - i)]), 3.0)) return {clip, add, a.inputs[static_cast<size_t>(i)]};
  return {};
}

// `v` divided by 6: Div(v', 6) or Mul(v', 1/6) with v' returned, and the node; else -1.
std::pair<NodeId, ValueId> MatchSixth(const Graph& g, const PatternMatcher& m, ValueId v) {
  if (NodeId d = m.Producer(v, "Div"); d >= 0 && Near(m.Scalar(g.node(d).inputs[1]), 6.0)) return {d, g.node(d).inputs[0]};
  if (NodeId mu = m.Producer(v, "Mul"); mu >= 0) {
    const Node& n = g.node(mu);
    for (int i = 0; i < 2; ++i)
      if (Near(m.Scalar(n.inputs[static_cast<size_t>(i)]), 1.0 / 6.0)) return {mu, n.inputs[static_cast<size_t>(1 - i)]};
  }
  return {-1, kNoValue};
}

// Mul(x, Clip(x + 3, 0, 6)) in either order: the nodes and x.
bool MatchProduct(const Graph& g, const PatternMatcher& m, NodeId mul, std::vector<NodeId>* nodes, ValueId* x) {
  const Node& n = g.node(mul);
  if (n.inputs.size() != 2) return false;
  for (int i = 0; i < 2; ++i) {
    const ValueId other = n.inputs[static_cast<size_t>(1 - i)];
    Relu6Shift r = MatchRelu6Shift(g, m, n.inputs[static_cast<size_t>(i)]);
    if (r.clip >= 0 && r.x == other && g.value(n.inputs[static_cast<size_t>(i)]).consumers.size() == 1) {
      nodes->insert(nodes->end(), {mul, r.clip, r.add});
      *x = other;
      return true;
    }
  }
  return false;
}

}  // namespace

StatusOr<bool> RecognizeHardSwish(Graph& graph, PassContext& ctx) {
  bool changed = false;
  const int num_nodes = graph.num_nodes();
  const PatternMatcher m(graph);
  for (NodeId root = 0; root < num_nodes; ++root) {
    const Node& top = graph.node(root);
    if (top.dead || !top.domain.empty() || (top.op_type != "Mul" && top.op_type != "Div") || IsFusedNode(top) || top.inputs.size() != 2) continue;
    std::vector<NodeId> nodes;
    ValueId x = kNoValue;
    const ValueId out = top.outputs[0];
    // (x * c) / 6 or (x * c) * (1/6).
    if (auto [sixth, num] = MatchSixth(graph, m, out); sixth == root) {
      const NodeId mul = m.Producer(num, "Mul");
      if (mul >= 0 && graph.value(num).consumers.size() == 1 && MatchProduct(graph, m, mul, &nodes, &x)) nodes.insert(nodes.begin(), root);
    }
    if (x == kNoValue && top.op_type == "Mul") {
      for (int i = 0; i < 2 && x == kNoValue; ++i) {
        const ValueId xi = top.inputs[static_cast<size_t>(i)], f = top.inputs[static_cast<size_t>(1 - i)];
        if (graph.value(f).consumers.size() != 1) continue;
        // x * (Clip(x + 3, 0, 6) / 6)
        if (auto [sixth, c] = MatchSixth(graph, m, f); sixth >= 0 && graph.value(c).consumers.size() == 1) {
          Relu6Shift r = MatchRelu6Shift(graph, m, c);
          if (r.clip >= 0 && r.x == xi) {
            nodes = {root, sixth, r.clip, r.add};
            x = xi;
            continue;
          }
        }
        // x * HardSigmoid(x, 1/6, 1/2)
        if (NodeId hs = m.Producer(f, "HardSigmoid"); hs >= 0 && graph.node(hs).inputs[0] == xi) {
          const auto alpha = graph.node(hs).attrs.GetFloat("alpha", 0.2f);
          const auto beta = graph.node(hs).attrs.GetFloat("beta", 0.5f);
          if (alpha.ok() && beta.ok() && Near(*alpha, 1.0 / 6.0) && Near(*beta, 0.5)) {
            nodes = {root, hs};
            x = xi;
          }
        }
      }
    }
    if (x == kNoValue) continue;
    const TypeInfo& xt = graph.value(x).type;
    const TypeInfo& ot = graph.value(out).type;
    // Same type in and out: a broadcasting operand (x of another shape) is not a HardSwish.
    if (!xt.is_tensor() || !IsFloat(xt.dtype) || !(xt.shape == ot.shape) || !xt.shape.has_rank()) continue;
    if (!m.OnlyInternalUses(nodes, out)) continue;
    Node hs;
    hs.name = top.name.empty() ? graph.value(out).name + "/HardSwish" : top.name + "/HardSwish";
    hs.op_type = "HardSwish";
    hs.inputs = {x};
    hs.outputs = {out};
    KILN_RETURN_IF_ERROR(ReplacePattern(graph, ctx, "recognize_hard_swish", nodes, std::move(hs)));
    changed = true;
  }
  return changed;
}

}  // namespace kiln
