#include "passes/pattern_util.h"

#include <algorithm>

#include "ir/op_schema.h"
#include "passes/graph_util.h"

namespace kiln {

PatternMatcher::PatternMatcher(const Graph& graph) : g_(graph), captured_(CapturedNames(graph)) {}

NodeId PatternMatcher::Producer(ValueId v, const char* op) const {
  if (v == kNoValue) return -1;
  const NodeId p = g_.value(v).producer;
  if (p < 0) return -1;
  const Node& n = g_.node(p);
  if (n.dead || !n.domain.empty() || n.op_type != op || IsFusedNode(n)) return -1;
  return p;
}

std::optional<double> PatternMatcher::Scalar(ValueId v) const {
  if (v == kNoValue || !g_.value(v).constant) return std::nullopt;
  const Tensor& t = *g_.value(v).constant;
  if (t.numel() != 1 || !IsFloat(t.dtype())) return std::nullopt;
  return t.GetAsDouble(0);
}

std::optional<std::vector<int64_t>> PatternMatcher::Ints(ValueId v) const {
  if (v == kNoValue || !g_.value(v).constant) return std::nullopt;
  auto r = g_.value(v).constant->ToInt64Vector();
  if (!r.ok()) return std::nullopt;
  return *r;
}

ValueId PatternMatcher::Other(const Node& n, ValueId v) {
  if (n.inputs.size() != 2) return kNoValue;
  if (n.inputs[0] == v) return n.inputs[1];
  if (n.inputs[1] == v) return n.inputs[0];
  return kNoValue;
}

bool PatternMatcher::OnlyInternalUses(const std::vector<NodeId>& nodes, ValueId out) const {
  for (NodeId id : nodes) {
    const Node& n = g_.node(id);
    if (n.dead) return false;
    for (ValueId o : n.outputs) {
      if (o == kNoValue || o == out) continue;
      if (IsGraphOutput(g_, o) || captured_.count(g_.value(o).name)) return false;
      for (NodeId c : g_.value(o).consumers)
        if (std::find(nodes.begin(), nodes.end(), c) == nodes.end()) return false;
    }
  }
  return true;
}

Status ReplacePattern(Graph& graph, PassContext& ctx, const char* pass, const std::vector<NodeId>& nodes,
                      Node replacement) {
  std::vector<NodeId> sorted = nodes;
  std::sort(sorted.begin(), sorted.end());  // provenance in source order
  std::vector<std::string> absorbed;
  for (NodeId id : sorted)
    for (const std::string& a : AbsorbedNames(graph.node(id))) absorbed.push_back(a);
  for (NodeId id : nodes) graph.RemoveNode(id);
  replacement.fused_from = absorbed;
  const std::string name = replacement.name;
  KILN_RETURN_IF_ERROR(graph.AddNode(std::move(replacement)).status());
  ctx.records.push_back({pass, name, absorbed});
  return Status::OK();
}

}  // namespace kiln
