#include "backends/partition.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "backends/ref/kernel.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

// Why value `v` cannot be a program's tensor ("" when it can). `dims`: its dims must be
// known too (else a rank is enough).
std::string WhyNotTensor(const Graph& g, ValueId v, bool dims) {
  const Value& val = g.value(v);
  const TypeInfo& t = val.type;
  if (!t.is_tensor()) return StrCat("'", val.name, "' is a ", t.ToString(), ", not a tensor");
  if (t.dtype == DType::kUndefined) return StrCat("'", val.name, "' has no known element type");
  if (t.dtype == DType::kString) return StrCat("'", val.name, "' holds strings");
  if (!t.shape.has_rank()) return StrCat("'", val.name, "' has no known rank (", t.ToString(), ")");
  if (dims && !t.shape.IsStatic())
    return StrCat("'", val.name, "' has dims known only as it runs (", t.ToString(), ")");
  return "";
}

// The first input/output of node `n` that is not a tensor (of static shape, with `dims`).
std::string WhyNotTensorIo(const Graph& g, NodeId n, bool dims) {
  const Node& node = g.node(n);
  for (ValueId v : node.inputs)
    if (v != kNoValue)
      if (std::string why = WhyNotTensor(g, v, dims); !why.empty()) return "input " + why;
  for (ValueId v : node.outputs)
    if (v != kNoValue)
      if (std::string why = WhyNotTensor(g, v, dims); !why.empty()) return "output " + why;
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
  const std::set<NodeId> members(nodes.begin(), nodes.end());
  auto map_value = [&](ValueId v) -> StatusOr<ValueId> {
    if (auto it = local.find(v); it != local.end()) return it->second;
    const Value& val = g.value(v);
    ValueId id;
    if (val.constant) {
      KILN_ASSIGN_OR_RETURN(id, ig->AddConstant(val.name, *val.constant));
    } else {
      KILN_ASSIGN_OR_RETURN(id, ig->AddValue(val.name, val.type));
      if (val.producer < 0 || !members.count(val.producer))
        ig->inputs().push_back(id);  // produced outside the island (or a graph input)
    }
    local.emplace(v, id);
    island->value_of.resize(static_cast<size_t>(ig->num_values()), kNoValue);
    island->value_of[static_cast<size_t>(id)] = v;
    return id;
  };
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

namespace {
bool HasSubgraph(const Node& node) {
  for (const auto& [name, a] : node.attrs.all())
    if ((a.type == Attr::Type::kGraph && name != kEpilogueAttr) || a.type == Attr::Type::kGraphs) return true;
  return false;
}
}  // namespace

std::string WhyNotTensorNode(const Graph& g, NodeId n) {
  if (HasSubgraph(g.node(n))) return "control flow (a subgraph)";
  return WhyNotTensorIo(g, n, /*dims=*/false);
}

namespace {

// The inputs whose values (not only dims) set an op's output shape.
const std::vector<int>* ShapeSettingInputs(const std::string& op) {
  static const std::map<std::string, std::vector<int>> k = {{"Reshape", {1}},
                                                            {"Expand", {1}},
                                                            {"Tile", {1}},
                                                            {"ConstantOfShape", {0}},
                                                            {"Range", {0, 1, 2}},
                                                            {"Slice", {1, 2, 3, 4}},
                                                            {"Resize", {1, 2, 3}},
                                                            {"Upsample", {1}},
                                                            {"Pad", {1, 3}},
                                                            {"TopK", {1}},
                                                            {"OneHot", {1}},
                                                            {"Squeeze", {1}},
                                                            {"Unsqueeze", {1}},
                                                            {"Split", {1}},
                                                            {"CenterCropPad", {1}},
                                                            {"ReduceSum", {1}},
                                                            {"ReduceMean", {1}},
                                                            {"ReduceMax", {1}},
                                                            {"ReduceMin", {1}},
                                                            {"ReduceProd", {1}},
                                                            {"ReduceL1", {1}},
                                                            {"ReduceL2", {1}},
                                                            {"ReduceLogSum", {1}},
                                                            {"ReduceLogSumExp", {1}},
                                                            {"ReduceSumSquare", {1}},
                                                            {"NonZero", {0}},
                                                            {"Unique", {0}},
                                                            {"Compress", {0, 1}},
                                                            {"NonMaxSuppression", {0, 1, 2, 3, 4}}};
  auto it = k.find(op);
  return it == k.end() ? nullptr : &it->second;
}

enum class Kind { kStatic, kDynamic, kHost };

// What runs a node: an island compiled at build (static shapes), one specialized per input
// shapes at run time (dims unknown until then, but every output shape follows from the input
// dims and from values computed from dims — `dim_derived`), or the reference backend (the
// backend cannot run it).
Kind KindOf(const Graph& g, NodeId n, const ExecutionBackend& backend, const std::vector<bool>& dim_derived,
            std::string* why) {
  *why = backend.WhyNotSupported(g, n);
  if (why->empty()) *why = WhyNotTensorIo(g, n, /*dims=*/false);
  if (!why->empty()) return Kind::kHost;
  *why = WhyNotTensorIo(g, n, /*dims=*/true);
  if (why->empty()) return Kind::kStatic;
  // Only dims are missing: dynamic, unless an input's values set the output shape.
  const Node& node = g.node(n);
  if (const std::vector<int>* ins = ShapeSettingInputs(node.op_type))
    for (int i : *ins)
      if (static_cast<size_t>(i) < node.inputs.size() && node.inputs[static_cast<size_t>(i)] != kNoValue &&
          !dim_derived[static_cast<size_t>(node.inputs[static_cast<size_t>(i)])]) {
        *why = StrCat(*why, "; its output shape depends on the values of '",
                      g.value(node.inputs[static_cast<size_t>(i)]).name, "'");
        return Kind::kHost;
      }
  return Kind::kDynamic;
}

}  // namespace

namespace {

// Outer-scope constants by name, innermost scope first (a body's captured weights).
using ConstantScope = std::vector<const Graph*>;

const Tensor* FindOuterConstant(const ConstantScope& scope, const std::string& name) {
  for (auto it = scope.rbegin(); it != scope.rend(); ++it) {
    auto v = (*it)->FindValue(name);
    if (v) return (*it)->value(*v).constant ? &*(*it)->value(*v).constant : nullptr;
  }
  return nullptr;
}

// Partitions `g` (the top-level graph, or a control-flow body when `prefix` is not empty),
// appending its islands to `part`; *host_out: `g` with its islands' layers replaced; then the
// same for the bodies of the layers left on the host, recursively.
Status PartitionInto(const Graph& g_in, const ExecutionBackend& backend, const BackendOptions& options,
                     const std::string& prefix, ConstantScope scope, Partition& part, std::shared_ptr<Graph>* host_out,
                     std::vector<int>* island_of_out) {
  // A body reads the weights of enclosing graphs as captures: as constants here, they fold
  // into the island's kernels (packed) and count as known values.
  Graph body_copy;
  const Graph* gp = &g_in;
  if (!prefix.empty()) {
    body_copy = g_in;
    std::vector<ValueId> kept;
    for (ValueId c : body_copy.captures()) {
      if (const Tensor* t = FindOuterConstant(scope, body_copy.value(c).name))
        body_copy.value(c).constant = *t;
      else
        kept.push_back(c);
    }
    body_copy.captures() = kept;
    gp = &body_copy;
  }
  const Graph& g = *gp;
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  std::vector<std::string> why(static_cast<size_t>(g.num_nodes()));
  std::vector<Kind> kind(static_cast<size_t>(g.num_nodes()), Kind::kHost);
  std::vector<int> level(static_cast<size_t>(g.num_nodes()), 0);
  // Values computed from constants and dims alone (Shape, Size and arithmetic on them):
  // known once the input dims are.
  std::vector<bool> dim_derived(static_cast<size_t>(g.num_values()), false);
  for (ValueId v = 0; v < g.num_values(); ++v) dim_derived[static_cast<size_t>(v)] = g.value(v).constant.has_value();
  for (NodeId n : order) {
    const Node& node = g.node(n);
    kind[static_cast<size_t>(n)] = KindOf(g, n, backend, dim_derived, &why[static_cast<size_t>(n)]);
    bool derived = node.op_type == "Shape" || node.op_type == "Size";
    if (!derived && kind[static_cast<size_t>(n)] != Kind::kHost) {
      derived = true;
      for (ValueId v : node.inputs) derived = derived && (v == kNoValue || dim_derived[static_cast<size_t>(v)]);
    }
    for (ValueId v : node.outputs)
      if (v != kNoValue) dim_derived[static_cast<size_t>(v)] = derived;
    // Level: kind changes on the longest path from the inputs. An edge between two kinds
    // always climbs a level, so no island can feed itself through another part.
    int l = 0;
    for (ValueId v : node.inputs) {
      if (v == kNoValue) continue;
      const NodeId p = g.value(v).producer;
      if (p < 0 || g.node(p).dead) continue;
      l = std::max(
          l, level[static_cast<size_t>(p)] + (kind[static_cast<size_t>(p)] != kind[static_cast<size_t>(n)] ? 1 : 0));
    }
    level[static_cast<size_t>(n)] = l;
  }
  // CPU layers of one kind and level form one island (its parts need not be connected).
  std::map<std::pair<int, Kind>, std::vector<NodeId>> groups;
  for (NodeId n : order)
    if (kind[static_cast<size_t>(n)] != Kind::kHost)
      groups[{level[static_cast<size_t>(n)], kind[static_cast<size_t>(n)]}].push_back(n);

  std::set<std::string> captured;  // values the host's subgraphs read by name
  for (NodeId n : order)
    if (kind[static_cast<size_t>(n)] == Kind::kHost) CollectCaptures(g.node(n), &captured);
  std::set<ValueId> graph_outputs(g.outputs().begin(), g.outputs().end());

  auto host = std::make_shared<Graph>(g);  // constants share their storage
  std::vector<int> island_of(static_cast<size_t>(g.num_nodes()), -1);
  for (auto& [key, nodes] : groups) {
    const bool dynamic = key.second == Kind::kDynamic;
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
    if (dynamic) {
      island.graph = ig;  // compiled per input shapes at run time
      for (ValueId v : ig->inputs()) {
        const TypeInfo& t = ig->value(v).type;
        island.bake.push_back(dim_derived[static_cast<size_t>(island.value_of[static_cast<size_t>(v)])] &&
                              (t.dtype == DType::kInt64 || t.dtype == DType::kInt32) && t.shape.has_rank() &&
                              t.shape.rank() <= 1);
      }
      ++part.dynamic_islands;
    } else {
      BackendOptions co = options;
      co.strict = false;  // the caller lists every slow step and host layer at once
      auto program = backend.Compile(ig, co);
      if (!program.ok()) {
        // Strict mode refuses what would run on the reference kernels; otherwise these layers
        // stay on the host, with the reason.
        if (options.strict) return program.status().WithPrefix(StrCat("compiling ", backend.name(), " island ", index));
        for (NodeId n : nodes) {
          why[static_cast<size_t>(n)] =
              StrCat("its ", backend.name(), " island failed to compile: ", program.status().message());
          kind[static_cast<size_t>(n)] = Kind::kHost;
        }
        continue;
      }
      island.program = std::move(*program);
      island.graph = ig;
    }
    island.nested = !prefix.empty();
    Node node;
    node.name = StrCat("kiln.", backend.name(), "_island.", index);
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
      part.host_layers.push_back(
          StrCat(prefix, g.node(n).DisplayName(n), ": reference backend - ", why[static_cast<size_t>(n)]));
  // The bodies of control-flow layers left on the host: islands of their own, run by the same
  // executor hook as the body runs (a Loop's body each iteration, its dynamic islands cached).
  scope.push_back(&g);
  for (NodeId n : order) {
    if (island_of[static_cast<size_t>(n)] != -1) continue;
    Node& hn = host->node(n);
    std::vector<std::pair<std::string, Attr>> changed;
    for (const auto& [name, a] : hn.attrs.all()) {
      if (name == kEpilogueAttr) continue;
      if (a.type == Attr::Type::kGraph && a.g) {
        std::shared_ptr<Graph> sub;
        std::vector<int> unused;
        const size_t before = part.islands.size();
        KILN_RETURN_IF_ERROR(PartitionInto(*a.g, backend, options,
                                           StrCat(prefix, "in ", g.node(n).DisplayName(n), " ", name, ": "), scope,
                                           part, &sub, &unused));
        if (part.islands.size() > before) changed.emplace_back(name, Attr::GraphValue(std::move(sub)));
      } else if (a.type == Attr::Type::kGraphs) {
        Attr copy = a;
        bool any = false;
        for (size_t i = 0; i < copy.graphs.size(); ++i) {
          if (!copy.graphs[i]) continue;
          std::shared_ptr<Graph> sub;
          std::vector<int> unused;
          const size_t before = part.islands.size();
          KILN_RETURN_IF_ERROR(PartitionInto(*copy.graphs[i], backend, options,
                                             StrCat(prefix, "in ", g.node(n).DisplayName(n), " ", name, "[", i, "]: "),
                                             scope, part, &sub, &unused));
          if (part.islands.size() > before) copy.graphs[i] = std::move(sub), any = true;
        }
        if (any) changed.emplace_back(name, std::move(copy));
      }
    }
    for (auto& [name, a] : changed) hn.attrs.set(name, std::move(a));
  }
  *host_out = std::move(host);
  *island_of_out = std::move(island_of);
  return Status::OK();
}

}  // namespace

StatusOr<Partition> CompilePartitioned(const Graph& g, const ExecutionBackend& backend, const BackendOptions& options) {
  Partition part;
  std::shared_ptr<Graph> host;
  KILN_RETURN_IF_ERROR(PartitionInto(g, backend, options, "", {}, part, &host, &part.island_of));
  part.host = std::move(host);
  return part;
}

}  // namespace kiln
