// Removes ops that return their input unchanged.
#include "ir/op_schema.h"
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

namespace {

bool SameStaticShape(const TypeInfo& a, const TypeInfo& b) {
  return a.is_tensor() && b.is_tensor() && a.shape.IsStatic() && b.shape.IsStatic() && a.shape == b.shape &&
         a.dtype == b.dtype;
}

// Whether `node` (with one data input at slot 0) forwards it unchanged to output 0.
bool IsNoOp(const Graph& g, const Node& node) {
  if (!node.domain.empty() || node.inputs.empty() || node.inputs[0] == kNoValue || node.outputs.empty() ||
      node.outputs[0] == kNoValue)
    return false;
  // A fused node computes its epilogue too: Cast(f32->f16) + [Sigmoid, Cast(f16->f32)] has
  // the types of a no-op Cast and is anything but.
  if (IsFusedNode(node)) return false;
  const TypeInfo& in = g.value(node.inputs[0]).type;
  const TypeInfo& out = g.value(node.outputs[0]).type;
  const std::string& op = node.op_type;
  if (op == "Identity") return in.is_tensor();
  if (op == "Dropout") {
    // Inference form only: no mask requested and training_mode absent or constant false.
    if (node.outputs.size() > 1 && node.outputs[1] != kNoValue) return false;
    if (node.inputs.size() > 2 && node.inputs[2] != kNoValue) {
      const Value& tm = g.value(node.inputs[2]);
      if (!tm.constant || tm.constant->numel() != 1 || tm.constant->GetAsDouble(0) != 0) return false;
    }
    return true;
  }
  if (op == "Cast" || op == "CastLike") return in.is_tensor() && in.dtype == out.dtype && in.dtype != DType::kUndefined;
  if (IsViewNode(node) || op == "Expand") return SameStaticShape(in, out);
  if (op == "Pad") {
    // All-zero pads (PyTorch exports AvgPool(count_include_pad) as Pad(0s) + AveragePool).
    if (node.inputs.size() < 2 || node.inputs[1] == kNoValue || !g.value(node.inputs[1]).constant) return false;
    auto pads = g.value(node.inputs[1]).constant->ToInt64Vector();
    if (!pads.ok()) return false;
    for (int64_t p : *pads)
      if (p != 0) return false;
    return SameStaticShape(in, out);
  }
  // A one-input Concat, Sum, Max, Min or Mean (DenseNet's first layer of every block
  // concatenates a list of one tensor).
  if (op == "Concat" || op == "Sum" || op == "Max" || op == "Min" || op == "Mean")
    return node.inputs.size() == 1 && SameStaticShape(in, out);
  if (op == "Transpose") {
    auto perm = node.attrs.GetInts("perm");
    if (!perm.ok() || perm->empty()) return false;
    for (size_t i = 0; i < perm->size(); ++i)
      if ((*perm)[i] != static_cast<int64_t>(i)) return false;
    return true;
  }
  return false;
}

}  // namespace

StatusOr<bool> RemoveNoOps(Graph& graph, PassContext& ctx) {
  const std::set<std::string> captured = CapturedNames(graph);
  bool changed = false;
  for (int n = 0; n < graph.num_nodes(); ++n) {
    Node& node = graph.node(n);
    if (node.dead || !IsNoOp(graph, node)) continue;
    ValueId out = node.outputs[0], in = node.inputs[0];
    if (captured.count(graph.value(out).name)) continue;
    if (!ForwardValue(graph, out, in)) continue;
    ctx.records.push_back({"remove_no_ops", graph.value(out).name, {node.name}});
    graph.RemoveNode(n);
    changed = true;
  }
  return changed;
}

}  // namespace kiln
