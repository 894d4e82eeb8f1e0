#include "ir/graph.h"

#include <algorithm>
#include <queue>
#include <sstream>

namespace kiln {

std::string Node::DisplayName(NodeId id) const {
  std::string n = name.empty() ? StrCat("#", id) : StrCat("'", name, "'");
  return StrCat(n, " (", domain.empty() ? "" : domain + ".", op_type, ")");
}

StatusOr<ValueId> Graph::AddValue(const std::string& name, TypeInfo type) {
  if (!name.empty() && by_name_.count(name))
    return InvalidArgument("value '", name, "' is defined twice in graph '", this->name, "'");
  ValueId id = static_cast<ValueId>(values_.size());
  values_.push_back(Value{name, std::move(type), -1, {}, std::nullopt});
  if (!name.empty()) by_name_[name] = id;
  return id;
}

StatusOr<ValueId> Graph::AddConstant(const std::string& name, Tensor t) {
  KILN_ASSIGN_OR_RETURN(ValueId id, AddValue(name, TypeInfo::Tensor(t.dtype(), Shape::FromDims(t.dims()))));
  values_[static_cast<size_t>(id)].constant = std::move(t);
  return id;
}

StatusOr<NodeId> Graph::AddNode(Node node) {
  NodeId id = static_cast<NodeId>(nodes_.size());
  for (ValueId v : node.inputs) {
    if (v == kNoValue) continue;
    if (v < 0 || v >= num_values()) return Internal("node ", node.DisplayName(id), ": input value id out of range");
  }
  for (ValueId v : node.outputs) {
    if (v == kNoValue) continue;
    if (v < 0 || v >= num_values()) return Internal("node ", node.DisplayName(id), ": output value id out of range");
    if (value(v).producer >= 0)
      return InvalidArgument("node ", node.DisplayName(id), ": output '", value(v).name,
                             "' is already produced by node ", node_name_or_id(value(v).producer));
  }
  for (ValueId v : node.inputs)
    if (v != kNoValue) value(v).consumers.push_back(id);
  for (ValueId v : node.outputs)
    if (v != kNoValue) value(v).producer = id;
  nodes_.push_back(std::move(node));
  return id;
}

std::string Graph::node_name_or_id(NodeId id) const { return nodes_[static_cast<size_t>(id)].DisplayName(id); }

void Graph::RemoveNode(NodeId id) {
  Node& n = node(id);
  if (n.dead) return;
  for (ValueId v : n.inputs) {
    if (v == kNoValue) continue;
    auto& c = value(v).consumers;
    auto it = std::find(c.begin(), c.end(), id);
    if (it != c.end()) c.erase(it);
  }
  for (ValueId v : n.outputs)
    if (v != kNoValue && value(v).producer == id) value(v).producer = -1;
  n.dead = true;
}

void Graph::ReplaceAllUses(ValueId from, ValueId to) {
  if (from == to) return;
  for (NodeId c : value(from).consumers) {
    for (ValueId& in : node(c).inputs)
      if (in == from) in = to;
    value(to).consumers.push_back(c);
  }
  // A node that reads `from` in two slots appears twice in consumers and was rewritten
  // on its first visit; the duplicates above keep the one-entry-per-slot invariant.
  value(from).consumers.clear();
  for (ValueId& o : outputs_)
    if (o == from) o = to;
}

int Graph::num_live_nodes() const {
  int n = 0;
  for (const Node& node : nodes_) n += node.dead ? 0 : 1;
  return n;
}

std::optional<ValueId> Graph::FindValue(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

StatusOr<std::vector<NodeId>> Graph::TopologicalOrder() const {
  std::vector<int> pending(nodes_.size(), 0);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].dead) continue;
    for (ValueId v : nodes_[i].inputs)
      if (v != kNoValue && value(v).producer >= 0) ++pending[i];
  }
  // Min-heap on node id keeps the order stable and deterministic.
  std::priority_queue<NodeId, std::vector<NodeId>, std::greater<>> ready;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (!nodes_[i].dead && pending[i] == 0) ready.push(static_cast<NodeId>(i));
  std::vector<NodeId> order;
  while (!ready.empty()) {
    NodeId n = ready.top();
    ready.pop();
    order.push_back(n);
    for (ValueId v : nodes_[static_cast<size_t>(n)].outputs) {
      if (v == kNoValue) continue;
      for (NodeId c : value(v).consumers)
        if (--pending[static_cast<size_t>(c)] == 0) ready.push(c);
    }
  }
  if (static_cast<int>(order.size()) != num_live_nodes()) {
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (!nodes_[i].dead && pending[i] > 0)
        return InvalidArgument("graph '", name, "' has a cycle through node ",
                               nodes_[i].DisplayName(static_cast<NodeId>(i)));
  }
  return order;
}

std::string Graph::ToString() const {
  std::ostringstream os;
  auto vname = [&](ValueId v) { return v == kNoValue ? std::string("_") : "%" + value(v).name; };
  os << "graph " << name << "(";
  for (size_t i = 0; i < inputs_.size(); ++i)
    os << (i ? ", " : "") << vname(inputs_[i]) << ": " << value(inputs_[i]).type.ToString();
  os << ") {\n";
  auto order = TopologicalOrder();
  std::vector<NodeId> ids;
  if (order.ok()) ids = *order;
  else for (int i = 0; i < num_nodes(); ++i) if (!nodes_[i].dead) ids.push_back(i);
  for (NodeId id : ids) {
    const Node& n = node(id);
    os << "  ";
    for (size_t i = 0; i < n.outputs.size(); ++i) os << (i ? ", " : "") << vname(n.outputs[i]);
    os << " = " << (n.domain.empty() ? "" : n.domain + ".") << n.op_type << "(";
    for (size_t i = 0; i < n.inputs.size(); ++i) os << (i ? ", " : "") << vname(n.inputs[i]);
    os << ")";
    if (!n.attrs.all().empty()) {
      os << " {";
      bool first = true;
      for (const auto& [k, a] : n.attrs.all()) {
        os << (first ? "" : ", ") << k << "=";
        first = false;
        switch (a.type) {
          case Attr::Type::kInt: os << a.i; break;
          case Attr::Type::kFloat: os << a.f; break;
          case Attr::Type::kString: os << '"' << a.s << '"'; break;
          case Attr::Type::kInts: os << DimsToString(a.ints); break;
          default: os << AttrTypeName(a.type); break;
        }
      }
      os << "}";
    }
    os << "\n";
  }
  os << "  return ";
  for (size_t i = 0; i < outputs_.size(); ++i) os << (i ? ", " : "") << vname(outputs_[i]);
  os << "\n}\n";
  return os.str();
}

}  // namespace kiln
