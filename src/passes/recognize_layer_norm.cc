// LayerNorm as exporters decompose it (PyTorch before opset 17, Keras, Paddle):
//   mean = ReduceMean(x, axes)            d = Sub(x, mean)
//   var  = ReduceMean(Pow(d, 2) | Mul(d, d), axes)
//   y    = Div(d, Sqrt(Add(var, eps)))  [ * gamma ] [ + beta ]
// with `axes` the last k axes, becomes LayerNormalization(x, gamma, beta, axis = -k, eps).
#include <algorithm>
#include <numeric>

#include "ir/op_schema.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln {

namespace {

// The axes as the first normalized axis when they are exactly the trailing ones, else -1.
int TrailingAxis(std::vector<int64_t> axes, int rank) {
  for (int64_t& a : axes) a = a < 0 ? a + rank : a;
  std::sort(axes.begin(), axes.end());
  if (axes.empty()) return -1;
  for (size_t i = 0; i < axes.size(); ++i)
    if (axes[i] != rank - static_cast<int64_t>(axes.size()) + static_cast<int64_t>(i)) return -1;
  return static_cast<int>(axes[0]);
}

// gamma/beta reshaped to the normalized dims (dropping leading 1s) when they broadcast to them.
std::optional<Tensor> AsNormalizedShape(const Tensor& t, const std::vector<int64_t>& norm) {
  if (t.dtype() != DType::kFloat32) return std::nullopt;
  std::vector<int64_t> d = t.dims();
  while (d.size() > norm.size() && d.front() == 1) d.erase(d.begin());
  if (d.size() > norm.size()) return std::nullopt;
  for (size_t i = 0; i < d.size(); ++i)
    if (d[i] != 1 && d[i] != norm[norm.size() - d.size() + i]) return std::nullopt;
  return t.Clone().Reshaped(d);
}

}  // namespace

StatusOr<bool> RecognizeLayerNorm(Graph& graph, PassContext& ctx) {
  bool changed = false;
  const int num_nodes = graph.num_nodes();
  const PatternMatcher m(graph);
  for (NodeId root = 0; root < num_nodes; ++root) {
    const Node& div = graph.node(root);
    if (div.dead || !div.domain.empty() || div.op_type != "Div" || IsFusedNode(div) || div.inputs.size() != 2) continue;
    const ValueId d = div.inputs[0];
    const NodeId sub = m.Producer(d, "Sub");
    const NodeId sqrt = m.Producer(div.inputs[1], "Sqrt");
    if (sub < 0 || sqrt < 0) continue;
    const ValueId x = graph.node(sub).inputs[0];
    const NodeId mean = m.Producer(graph.node(sub).inputs[1], "ReduceMean");
    const NodeId add_eps = m.Producer(graph.node(sqrt).inputs[0], "Add");
    if (mean < 0 || add_eps < 0 || graph.node(mean).inputs[0] != x) continue;
    const Node& ae = graph.node(add_eps);
    ValueId var_v = kNoValue;
    std::optional<double> eps;
    for (int i = 0; i < 2; ++i)
      if (auto e = m.Scalar(ae.inputs[static_cast<size_t>(i)])) { eps = e; var_v = ae.inputs[static_cast<size_t>(1 - i)]; }
    const NodeId var = m.Producer(var_v, "ReduceMean");
    if (!eps || var < 0) continue;
    // The squared deviation: Pow(d, 2) or Mul(d, d).
    const ValueId sq = graph.node(var).inputs[0];
    NodeId square = m.Producer(sq, "Pow");
    if (square >= 0 && (graph.node(square).inputs[0] != d || m.Scalar(graph.node(square).inputs[1]) != 2.0)) square = -1;
    if (square < 0) {
      square = m.Producer(sq, "Mul");
      if (square >= 0 && (graph.node(square).inputs[0] != d || graph.node(square).inputs[1] != d)) square = -1;
    }
    if (square < 0) continue;
    // Same trailing axes for both means, kept dims.
    const TypeInfo& xt = graph.value(x).type;
    if (xt.dtype != DType::kFloat32 || !xt.shape.has_rank() || !xt.shape.Numel()) continue;
    const int rank = xt.shape.rank();
    int axis = -1;
    bool ok = true;
    for (NodeId r : {mean, var}) {
      const Node& rn = graph.node(r);
      auto axes = rn.inputs.size() > 1 ? m.Ints(rn.inputs[1]) : std::nullopt;
      auto keep = rn.attrs.GetInt("keepdims", 1);
      auto noop = rn.attrs.GetInt("noop_with_empty_axes", 0);
      const int a = axes ? TrailingAxis(*axes, rank) : -1;
      if (a < 0 || !keep.ok() || *keep != 1 || !noop.ok() || (axis >= 0 && a != axis)) ok = false;
      axis = a;
    }
    if (!ok) continue;
    std::vector<int64_t> norm;
    for (int i = axis; i < rank; ++i) norm.push_back(xt.shape.dim(i).value);
    std::vector<NodeId> nodes = {mean, sub, square, var, add_eps, sqrt, root};
    ValueId out = div.outputs[0];
    // Optional affine part: * gamma, then + beta, each a constant over the normalized dims.
    std::optional<Tensor> gamma, beta;
    auto sole_consumer = [&](ValueId v, const char* op) -> NodeId {
      const Value& val = graph.value(v);
      if (val.consumers.size() != 1) return -1;
      const Node& c = graph.node(val.consumers[0]);
      return !c.dead && c.domain.empty() && c.op_type == op && !IsFusedNode(c) && c.inputs.size() == 2 ? val.consumers[0] : -1;
    };
    if (NodeId mul = sole_consumer(out, "Mul"); mul >= 0) {
      const ValueId gv = PatternMatcher::Other(graph.node(mul), out);
      if (graph.value(gv).constant && (gamma = AsNormalizedShape(*graph.value(gv).constant, norm))) {
        nodes.push_back(mul);
        out = graph.node(mul).outputs[0];
        if (NodeId add = sole_consumer(out, "Add"); add >= 0) {
          const ValueId bv = PatternMatcher::Other(graph.node(add), out);
          if (graph.value(bv).constant && (beta = AsNormalizedShape(*graph.value(bv).constant, norm))) {
            nodes.push_back(add);
            out = graph.node(add).outputs[0];
          }
        }
      }
    }
    if (!m.OnlyInternalUses(nodes, out)) continue;
    if (!gamma) {
      gamma = Tensor(DType::kFloat32, norm);
      for (float& f : gamma->span<float>()) f = 1.f;
    }
    Node ln;
    ln.name = graph.node(root).name.empty() ? graph.value(out).name + "/LayerNorm" : graph.node(root).name + "/LayerNorm";
    ln.op_type = "LayerNormalization";
    KILN_ASSIGN_OR_RETURN(ValueId g, graph.AddConstant(ln.name + "/scale", std::move(*gamma)));
    ln.inputs = {x, g};
    if (beta) {
      KILN_ASSIGN_OR_RETURN(ValueId b, graph.AddConstant(ln.name + "/bias", std::move(*beta)));
      ln.inputs.push_back(b);
    }
    ln.outputs = {out};
    ln.attrs.set("axis", Attr::Int(axis));
    ln.attrs.set("epsilon", Attr::Float(static_cast<float>(*eps)));
    KILN_RETURN_IF_ERROR(ReplacePattern(graph, ctx, "recognize_layer_norm", nodes, std::move(ln)));
    changed = true;
  }
  return changed;
}

}  // namespace kiln
