// Vertical fusion, one rule for all: an elementwise op that kernels can apply in an
// epilogue (IsEpilogueOp: activations, Clip, binary arithmetic with broadcasting that does
// not grow the iteration space) whose chain input is the only use of another node's
// output 0 becomes part of that node's epilogue (see kEpilogueAttr).
// Conv+BiasAdd+ReLU, Conv+Add(residual)+ReLU, Gemm+GELU pieces and plain elementwise chains
// all come out of it, applied to a fixed point.
#include <algorithm>

#include "ir/op_schema.h"
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

namespace {

bool IsFusableProducer(const Graph& g, const Node& p) {
  const OpSchema* s = OpRegistry::Global().Find(p.domain, p.op_type);
  if (s == nullptr || HasControlFlowSubgraph(p)) return false;
  if (s->fusion != FusionClass::kComplexOutFusable && s->fusion != FusionClass::kElementwise &&
      s->fusion != FusionClass::kBroadcast)
    return false;
  // Only output 0 may be used (e.g. no BatchNorm training outputs, no MaxPool indices).
  for (size_t o = 1; o < p.outputs.size(); ++o)
    if (p.outputs[o] != kNoValue && !g.value(p.outputs[o]).consumers.empty()) return false;
  return p.outputs.size() >= 1 && p.outputs[0] != kNoValue;
}

bool IsElementwise(const Node& n) {
  const OpSchema* s = OpRegistry::Global().Find(n.domain, n.op_type);
  return s != nullptr && (s->fusion == FusionClass::kElementwise || s->fusion == FusionClass::kBroadcast) &&
         n.outputs.size() == 1 && !HasSubgraph(n) && !IsNondeterministicOp(n);
}

// The output of `e` has exactly the chain value's type (dtype may differ only for Cast-like
// ops, which are kElementwise too): the epilogue must not grow the iteration space.
bool SameIterationSpace(const TypeInfo& chain, const TypeInfo& out) {
  return chain.is_tensor() && out.is_tensor() && chain.shape.has_rank() && chain.shape == out.shape;
}

}  // namespace

StatusOr<bool> FuseElementwiseEpilogue(Graph& graph, PassContext& ctx) {
  const std::set<std::string> captured = CapturedNames(graph);
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  bool changed = false;
  for (NodeId eid : order) {
    Node& e = graph.node(eid);
    if (e.dead || !IsElementwise(e)) continue;
    // Find the chain input: a value produced by a fusable node, read only here, once.
    int slot = -1;
    for (size_t i = 0; i < e.inputs.size(); ++i) {
      ValueId v = e.inputs[i];
      if (v == kNoValue) continue;
      const Value& val = graph.value(v);
      if (val.producer < 0 || val.consumers.size() != 1 || IsGraphOutput(graph, v) || captured.count(val.name))
        continue;
      const Node& p = graph.node(val.producer);
      if (!IsFusableProducer(graph, p) || p.outputs[0] != v) continue;
      if (const Attr* a = p.attrs.find(kEpilogueAttr); a != nullptr && a->g->num_nodes() >= kMaxEpilogueOps) continue;
      if (!SameIterationSpace(val.type, graph.value(e.outputs[0]).type)) continue;
      if (!IsEpilogueOp(graph, e, static_cast<int>(i))) continue;
      slot = static_cast<int>(i);
      break;
    }
    if (slot < 0) continue;
    const ValueId x = e.inputs[static_cast<size_t>(slot)];
    const NodeId pid = graph.value(x).producer;

    // The producer's epilogue so far (created on first use).
    Node& p = graph.node(pid);
    std::shared_ptr<Graph> epi;
    if (const Attr* a = p.attrs.find(kEpilogueAttr)) {
      epi = a->g;
    } else {
      epi = std::make_shared<Graph>();
      epi->name = "epilogue";
      KILN_ASSIGN_OR_RETURN(ValueId in0, epi->AddValue(graph.value(x).name, graph.value(x).type));
      epi->inputs().push_back(in0);
      epi->outputs().push_back(in0);
      p.attrs.set(kEpilogueMainInputs, Attr::Int(static_cast<int64_t>(p.inputs.size())));
    }
    // The epilogue's copy of e: chain input = epilogue output; other inputs become extra
    // inputs of the fused node (shared when already there).
    Node copy;
    copy.name = e.name;
    copy.op_type = e.op_type;
    copy.domain = e.domain;
    copy.attrs = e.attrs;
    const int64_t main_inputs = p.attrs.find(kEpilogueMainInputs)->i;
    std::vector<ValueId> new_extras;
    for (size_t i = 0; i < e.inputs.size(); ++i) {
      ValueId v = e.inputs[i];
      if (static_cast<int>(i) == slot) { copy.inputs.push_back(epi->outputs()[0]); continue; }
      if (v == kNoValue) { copy.inputs.push_back(kNoValue); continue; }
      // Reuse an existing extra input for the same value.
      ValueId inner = kNoValue;
      for (size_t k = static_cast<size_t>(main_inputs); k < p.inputs.size(); ++k)
        if (p.inputs[k] == v) inner = epi->inputs()[k - static_cast<size_t>(main_inputs) + 1];
      for (size_t k = 0; k < new_extras.size() && inner == kNoValue; ++k)
        if (new_extras[k] == v) inner = epi->inputs()[epi->inputs().size() - new_extras.size() + k];
      if (inner == kNoValue) {
        KILN_ASSIGN_OR_RETURN(inner, epi->AddValue(StrCat("extra", epi->inputs().size(), "_", graph.value(v).name),
                                                   graph.value(v).type));
        epi->inputs().push_back(inner);
        new_extras.push_back(v);
      }
      copy.inputs.push_back(inner);
    }
    const ValueId y = e.outputs[0];
    KILN_ASSIGN_OR_RETURN(ValueId y_inner, epi->AddValue(graph.value(y).name, graph.value(y).type));
    copy.outputs.push_back(y_inner);
    KILN_RETURN_IF_ERROR(epi->AddNode(std::move(copy)).status());
    epi->outputs()[0] = y_inner;

    // Rewire the outer graph: e disappears, p now produces y.
    const std::vector<std::string> absorbed = AbsorbedNames(e);
    graph.RemoveNode(eid);
    Node& fused = graph.node(pid);
    fused.attrs.set(kEpilogueAttr, Attr::GraphValue(epi));
    for (ValueId v : new_extras) {
      fused.inputs.push_back(v);
      graph.value(v).consumers.push_back(pid);
    }
    fused.outputs[0] = y;
    graph.value(y).producer = pid;
    graph.value(x).producer = -1;
    if (fused.fused_from.empty()) fused.fused_from.push_back(fused.name);
    for (const std::string& a : absorbed)
      if (std::find(fused.fused_from.begin(), fused.fused_from.end(), a) == fused.fused_from.end()) fused.fused_from.push_back(a);
    ctx.records.push_back({"fuse_elementwise_epilogue", fused.name, absorbed});
    changed = true;
  }
  return changed;
}

}  // namespace kiln
