#include "backends/cpu/partition.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "backends/ref/kernel.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

namespace {

// Why value `v` cannot be a CPU program's tensor ("" when it can).
std::string WhyNotTensor(const Graph& g, ValueId v) {
  const Value& val = g.value(v);
  const TypeInfo& t = val.type;
  if (!t.is_tensor()) return StrCat("'", val.name, "' is a ", t.ToString(), ", not a tensor");
  if (t.dtype == DType::kUndefined) return StrCat("'", val.name, "' has no known element type");
  if (t.dtype == DType::kString) return StrCat("'", val.name, "' holds strings");
  if (!t.shape.IsStatic()) return StrCat("'", val.name, "' has a shape that depends on data (", t.ToString(), ")");
  return "";
}

// Names of the values the subgraphs of `node` (at any depth) read from enclosing scopes.
void CollectCaptures(const Node& node, std::set<std::string>* names) {
  for (const auto& [name, a] : node.attrs.all()) {
    std::vector<const Graph*> subs;
    if (a.type == Attr::Type::kGraph && a.g) subs.push_back(a.g.get());
    if (a.type == Attr::Type::kGraphs)
      for (const auto& s : a.graphs)
        if (s) subs.push_back(s.get());
    for (const Graph* s : subs) {
      for (ValueId c : s->captures()) names->insert(s->value(c).name);
      for (NodeId n = 0; n < s->num_nodes(); ++n)
        if (!s->node(n).dead) CollectCaptures(s->node(n), names);
    }
  }
}

// One island's graph, built from `nodes` of `g` (in topological order); `needed`: whether a
// value produced in the island is read outside it.
StatusOr<std::shared_ptr<Graph>> IslandGraph(const Graph& g, const std::vector<NodeId>& nodes, int index,
                                             const std::function<bool(ValueId)>& needed, Island* island) {
  auto ig = std::make_shared<Graph>();
  ig->name = StrCat(g.name.empty() ? "graph" : g.name, ".island", index);
  std::map<ValueId, ValueId> local;  // g's value -> ig's
  auto map_value = [&](ValueId v) -> StatusOr<ValueId> {
    if (auto it = local.find(v); it != local.end()) return it->second;
    const Value& val = g.value(v);
    ValueId id;
    if (val.constant) {
      KILN_ASSIGN_OR_RETURN(id, ig->AddConstant(val.name, *val.constant));
    } else {
      KILN_ASSIGN_OR_RETURN(id, ig->AddValue(val.name, val.type));
      if (val.producer < 0 || std::find(nodes.begin(), nodes.end(), val.producer) == nodes.end())
        ig->inputs().push_back(id);  // produced outside the island (or a graph input)
    }
    local.emplace(v, id);
    island->value_of.resize(static_cast<size_t>(ig->num_values()), kNoValue);
    island->value_of[static_cast<size_t>(id)] = v;
    return id;
  };
  std::set<NodeId> members(nodes.begin(), nodes.end());
  for (NodeId n : nodes) {
    Node copy = g.node(n);
    if (copy.name.empty()) copy.name = StrCat("#", n);  // the partitioned graph's id, as its DisplayName says
    // Inputs first: a value produced outside becomes an island input on first use.
    for (ValueId& v : copy.inputs)
      if (v != kNoValue) {
        const NodeId p = g.value(v).producer;
        if (p >= 0 && members.count(p) && !local.count(v))
          return Internal("island ", index, ": '", g.value(v).name, "' is read before it is produced");
        KILN_ASSIGN_OR_RETURN(v, map_value(v));
      }
    for (ValueId& v : copy.outputs)
      if (v != kNoValue) {
        const ValueId orig = v;
        KILN_ASSIGN_OR_RETURN(v, map_value(orig));
        if (needed(orig)) ig->outputs().push_back(v);
      }
    KILN_ASSIGN_OR_RETURN(NodeId id, ig->AddNode(std::move(copy)));
    island->node_of.resize(static_cast<size_t>(id) + 1, -1);
    island->node_of[static_cast<size_t>(id)] = n;
  }
  return ig;
}

}  // namespace

std::string WhyNotSupported(const Graph& g, NodeId n) {
  const Node& node = g.node(n);
  for (const auto& [name, a] : node.attrs.all())
    if ((a.type == Attr::Type::kGraph && name != kEpilogueAttr) || a.type == Attr::Type::kGraphs)
      return "control flow (a subgraph)";
  for (ValueId v : node.inputs)
    if (v != kNoValue)
      if (std::string why = WhyNotTensor(g, v); !why.empty()) return "input " + why;
  for (ValueId v : node.outputs)
    if (v != kNoValue)
      if (std::string why = WhyNotTensor(g, v); !why.empty()) return "output " + why;
  return "";
}

StatusOr<Partition> CompilePartitioned(const Graph& g, const CompileOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  std::vector<std::string> why(static_cast<size_t>(g.num_nodes()));
  std::vector<int> level(static_cast<size_t>(g.num_nodes()), 0);
  for (NodeId n : order) {
    why[static_cast<size_t>(n)] = WhyNotSupported(g, n);
    const bool cpu = why[static_cast<size_t>(n)].empty();
    int l = 0;
    for (ValueId v : g.node(n).inputs) {
      if (v == kNoValue) continue;
      const NodeId p = g.value(v).producer;
      if (p < 0 || g.node(p).dead) continue;
      const bool p_cpu = why[static_cast<size_t>(p)].empty();
      l = std::max(l, level[static_cast<size_t>(p)] + (p_cpu != cpu ? 1 : 0));
    }
    level[static_cast<size_t>(n)] = l;
  }
  // Supported layers of one level form one island (its parts need not be connected).
  std::map<int, std::vector<NodeId>> groups;
  for (NodeId n : order)
    if (why[static_cast<size_t>(n)].empty()) groups[level[static_cast<size_t>(n)]].push_back(n);

  std::set<std::string> captured;  // values the host's subgraphs read by name
  for (NodeId n : order)
    if (!why[static_cast<size_t>(n)].empty()) CollectCaptures(g.node(n), &captured);
  std::set<ValueId> graph_outputs(g.outputs().begin(), g.outputs().end());

  Partition part;
  auto host = std::make_shared<Graph>(g);  // constants share their storage
  std::vector<int> island_of(static_cast<size_t>(g.num_nodes()), -1);
  for (auto& [lvl, nodes] : groups) {
    const int index = static_cast<int>(part.islands.size());
    std::set<NodeId> members(nodes.begin(), nodes.end());
    auto needed = [&](ValueId v) {
      if (graph_outputs.count(v) || captured.count(g.value(v).name)) return true;
      for (NodeId c : g.value(v).consumers)
        if (!g.node(c).dead && !members.count(c)) return true;
      return false;
    };
    Island island;
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<Graph> ig, IslandGraph(g, nodes, index, needed, &island));
    if (ig->outputs().empty()) {  // nothing read outside: nothing to run
      for (NodeId n : nodes) {
        host->RemoveNode(n);
        island_of[static_cast<size_t>(n)] = -2;
      }
      continue;
    }
    CompileOptions co = options;
    co.strict = false;  // the caller lists every slow step and host layer at once
    auto program = Compile(ig, co);
    if (!program.ok()) {
      // Strict mode refuses what would run on the reference kernels; otherwise these layers
      // stay on the host, with the reason.
      if (options.strict) return program.status().WithPrefix(StrCat("compiling CPU island ", index));
      for (NodeId n : nodes) why[static_cast<size_t>(n)] = StrCat("its CPU island failed to compile: ", program.status().message());
      continue;
    }
    island.program = std::move(*program);
    Node node;
    node.name = StrCat("kiln.cpu_island.", index);
    node.op_type = kIslandOp;
    node.domain = kIslandDomain;
    for (ValueId v : ig->inputs()) node.inputs.push_back(island.value_of[static_cast<size_t>(v)]);
    for (ValueId v : ig->outputs()) node.outputs.push_back(island.value_of[static_cast<size_t>(v)]);
    node.attrs.set(kIslandIndexAttr, Attr::Int(index));
    for (NodeId n : nodes) {
      host->RemoveNode(n);
      island_of[static_cast<size_t>(n)] = index;
    }
    KILN_RETURN_IF_ERROR(host->AddNode(std::move(node)).status());
    part.island_layers += static_cast<int>(nodes.size());
    part.islands.push_back(std::move(island));
  }
  for (NodeId n : order)
    if (island_of[static_cast<size_t>(n)] == -1)
      part.host_layers.push_back(StrCat(g.node(n).DisplayName(n), ": reference backend - ", why[static_cast<size_t>(n)]));
  part.host = std::move(host);
  part.island_of = std::move(island_of);
  return part;
}

}  // namespace kiln::cpu
