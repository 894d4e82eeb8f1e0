// Scaled dot-product attention as exporters write it:
//   scores = MatMul(Q [* or / c], Kt) [* or / c] [+ mask]
//   y      = MatMul(Softmax(scores, axis = -1), V)
// with Kt = Transpose(K) swapping the last two axes (absorbed) or any [.., D, S] tensor,
// becomes one kiln.Attention(Q, K, V[, mask]) layer (scale folded into one attribute).
#include <cmath>

#include "ir/op_schema.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln {

namespace {

// A scalar scaling of v: Mul(v, c) -> c, Div(v, c) -> 1/c; the node and the scaled input.
struct Scaling {
  NodeId node = -1;
  ValueId input = kNoValue;
  double factor = 1;
};

Scaling ScalingOf(const PatternMatcher& m, const Graph& g, ValueId v) {
  if (NodeId mul = m.Producer(v, "Mul"); mul >= 0) {
    const Node& n = g.node(mul);
    for (int i = 0; i < 2; ++i)
      if (auto c = m.Scalar(n.inputs[static_cast<size_t>(i)]); c && g.value(v).consumers.size() == 1)
        return {mul, n.inputs[static_cast<size_t>(1 - i)], *c};
  }
  if (NodeId div = m.Producer(v, "Div"); div >= 0) {
    const Node& n = g.node(div);
    if (auto c = m.Scalar(n.inputs[1]); c && *c != 0 && g.value(v).consumers.size() == 1) return {div, n.inputs[0], 1 / *c};
  }
  return {-1, v, 1};
}

}  // namespace

StatusOr<bool> RecognizeAttention(Graph& graph, PassContext& ctx) {
  bool changed = false;
  const int num_nodes = graph.num_nodes();
  const PatternMatcher m(graph);
  for (NodeId root = 0; root < num_nodes; ++root) {
    const Node& pv = graph.node(root);
    if (pv.dead || !pv.domain.empty() || pv.op_type != "MatMul" || IsFusedNode(pv)) continue;
    const NodeId softmax = m.Producer(pv.inputs[0], "Softmax");
    if (softmax < 0) continue;
    const ValueId v = pv.inputs[1];
    const TypeInfo& st = graph.value(pv.inputs[0]).type;
    if (!st.shape.has_rank() || st.shape.rank() < 2 || st.dtype != DType::kFloat32) continue;
    auto axis = graph.node(softmax).attrs.GetInt("axis", -1);
    if (!axis.ok() || (*axis != -1 && *axis != st.shape.rank() - 1)) continue;
    std::vector<NodeId> nodes = {root, softmax};
    // Optional additive mask, then optional scaling of the scores.
    ValueId scores = graph.node(softmax).inputs[0], mask = kNoValue;
    if (NodeId add = m.Producer(scores, "Add"); add >= 0) {
      const Node& an = graph.node(add);
      for (int i = 0; i < 2 && mask == kNoValue; ++i)
        if (m.Producer(an.inputs[static_cast<size_t>(i)], "MatMul") >= 0 ||
            ScalingOf(m, graph, an.inputs[static_cast<size_t>(i)]).node >= 0) {
          mask = an.inputs[static_cast<size_t>(1 - i)];
          scores = an.inputs[static_cast<size_t>(i)];
          nodes.push_back(add);
        }
      if (mask == kNoValue) continue;
    }
    double scale = 1;
    if (Scaling s = ScalingOf(m, graph, scores); s.node >= 0) {
      nodes.push_back(s.node);
      scale *= s.factor;
      scores = s.input;
    }
    const NodeId qk = m.Producer(scores, "MatMul");
    if (qk < 0) continue;
    nodes.push_back(qk);
    ValueId q = graph.node(qk).inputs[0], k = graph.node(qk).inputs[1];
    if (Scaling s = ScalingOf(m, graph, q); s.node >= 0) {
      nodes.push_back(s.node);
      scale *= s.factor;
      q = s.input;
    }
    int64_t transpose_k = 0;
    if (NodeId t = m.Producer(k, "Transpose"); t >= 0 && graph.value(k).consumers.size() == 1) {
      auto perm = graph.node(t).attrs.GetInts("perm");
      const int r = static_cast<int>(perm.ok() ? perm->size() : 0);
      bool swap_last = r >= 2;
      for (int i = 0; swap_last && i < r; ++i) {
        const int64_t want = i == r - 2 ? r - 1 : i == r - 1 ? r - 2 : i;
        swap_last = (*perm)[static_cast<size_t>(i)] == want;
      }
      if (swap_last) {
        nodes.push_back(t);
        k = graph.node(t).inputs[0];
        transpose_k = 1;
      }
    }
    for (ValueId in : {q, k, v}) {
      const TypeInfo& t = graph.value(in).type;
      if (!t.shape.has_rank() || t.shape.rank() < 2 || t.dtype != DType::kFloat32) scale = NAN;
    }
    if (std::isnan(scale)) continue;
    const ValueId out = pv.outputs[0];
    if (!m.OnlyInternalUses(nodes, out)) continue;
    Node att;
    att.name = pv.name.empty() ? graph.value(out).name + "/Attention" : pv.name + "/Attention";
    att.op_type = "Attention";
    att.domain = "kiln";
    att.inputs = {q, k, v};
    if (mask != kNoValue) att.inputs.push_back(mask);
    att.outputs = {out};
    att.attrs.set("scale", Attr::Float(static_cast<float>(scale)));
    att.attrs.set("transpose_k", Attr::Int(transpose_k));
    KILN_RETURN_IF_ERROR(ReplacePattern(graph, ctx, "recognize_attention", nodes, std::move(att)));
    changed = true;
  }
  return changed;
}

}  // namespace kiln
