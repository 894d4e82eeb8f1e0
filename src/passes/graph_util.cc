#include "passes/graph_util.h"

#include <algorithm>

#include "ir/op_schema.h"

namespace kiln {

namespace {

void CollectCaptures(const Graph& g, std::set<std::string>& names) {
  for (ValueId c : g.captures()) names.insert(g.value(c).name);
  for (int n = 0; n < g.num_nodes(); ++n) {
    if (g.node(n).dead) continue;
    for (const auto& [k, a] : g.node(n).attrs.all()) {
      if (a.g) CollectCaptures(*a.g, names);
      for (const auto& sub : a.graphs) CollectCaptures(*sub, names);
    }
  }
}

}  // namespace

std::set<std::string> CapturedNames(const Graph& graph) {
  std::set<std::string> names;
  for (int n = 0; n < graph.num_nodes(); ++n) {
    if (graph.node(n).dead) continue;
    for (const auto& [k, a] : graph.node(n).attrs.all()) {
      if (a.g) CollectCaptures(*a.g, names);
      for (const auto& sub : a.graphs) CollectCaptures(*sub, names);
    }
  }
  return names;
}

bool IsGraphOutput(const Graph& graph, ValueId v) {
  return std::find(graph.outputs().begin(), graph.outputs().end(), v) != graph.outputs().end();
}

bool ForwardValue(Graph& graph, ValueId from, ValueId to) {
  if (!IsGraphOutput(graph, from)) {
    graph.ReplaceAllUses(from, to);
    return true;
  }
  // `from` is a graph output: keep its name by moving it to `to`'s producer.
  Value& t = graph.value(to);
  if (t.producer < 0 || IsGraphOutput(graph, to)) return false;
  // Readers of `to` other than the node producing `from` would lose their input.
  const NodeId from_producer = graph.value(from).producer;
  for (NodeId c : t.consumers)
    if (c != from_producer) return false;
  Node& p = graph.node(t.producer);
  const NodeId pid = t.producer;
  if (from_producer >= 0) graph.RemoveNode(from_producer);
  for (ValueId& o : p.outputs)
    if (o == to) o = from;
  graph.value(from).producer = pid;
  graph.value(to).producer = -1;
  graph.value(from).type = graph.value(to).type;
  return true;
}

bool IsNondeterministicOp(const Node& node) {
  return node.op_type.rfind("Random", 0) == 0 || node.op_type == "Bernoulli" || node.op_type == "Multinomial";
}

bool HasSubgraph(const Node& node) {
  for (const auto& [k, a] : node.attrs.all())
    if (a.g || !a.graphs.empty()) return true;
  return false;
}

bool HasControlFlowSubgraph(const Node& node) {
  for (const auto& [k, a] : node.attrs.all())
    if (k != kEpilogueAttr && (a.g || !a.graphs.empty())) return true;
  return false;
}

}  // namespace kiln

namespace kiln {

std::vector<std::string> AbsorbedNames(const Node& node) {
  if (!node.fused_from.empty()) return node.fused_from;
  return {node.name};
}

}  // namespace kiln
