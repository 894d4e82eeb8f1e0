// Nodes with the same op, attributes and inputs compute the same values: keep the first.
#include <map>
#include <sstream>

#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

namespace {

// A canonical key of op + inputs + attributes; empty when the node must not be merged.
std::string NodeKey(const Node& node) {
  if (IsNondeterministicOp(node) || HasSubgraph(node)) return {};
  std::ostringstream os;
  os.precision(17);
  os << node.domain << '.' << node.op_type << '(';
  for (ValueId v : node.inputs) os << v << ',';
  os << ")#" << node.outputs.size() << '{';
  for (const auto& [k, a] : node.attrs.all()) {
    os << k << '=' << static_cast<int>(a.type) << ':';
    switch (a.type) {
      case Attr::Type::kInt: os << a.i; break;
      case Attr::Type::kFloat: os << a.f; break;
      case Attr::Type::kString: os << a.s.size() << ':' << a.s; break;
      case Attr::Type::kInts: for (int64_t x : a.ints) os << x << ','; break;
      case Attr::Type::kFloats: for (float x : a.floats) os << x << ','; break;
      case Attr::Type::kStrings: for (const auto& s : a.strings) os << s.size() << ':' << s; break;
      default: return {};  // tensors, graphs: not compared
    }
    os << ';';
  }
  return os.str();
}

}  // namespace

StatusOr<bool> EliminateCommonSubexpressions(Graph& graph, PassContext& ctx) {
  const std::set<std::string> captured = CapturedNames(graph);
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
  std::map<std::string, NodeId> seen;
  bool changed = false;
  for (NodeId n : order) {
    std::string key = NodeKey(graph.node(n));
    if (key.empty()) continue;
    auto [it, inserted] = seen.emplace(key, n);
    if (inserted) continue;
    Node& dup = graph.node(n);
    const Node& keep = graph.node(it->second);
    bool ok = true;
    for (size_t i = 0; i < dup.outputs.size() && ok; ++i) {
      ValueId o = dup.outputs[i];
      if (o == kNoValue) continue;
      if (keep.outputs[i] == kNoValue || IsGraphOutput(graph, o) || captured.count(graph.value(o).name)) ok = false;
    }
    if (!ok) continue;
    for (size_t i = 0; i < dup.outputs.size(); ++i)
      if (dup.outputs[i] != kNoValue) graph.ReplaceAllUses(dup.outputs[i], keep.outputs[i]);
    ctx.records.push_back({"eliminate_common_subexpressions", keep.name, {dup.name}});
    graph.RemoveNode(n);
    changed = true;
  }
  return changed;
}

}  // namespace kiln
