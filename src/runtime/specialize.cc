#include "runtime/specialize.h"

#include "backends/ref/kernel.h"

namespace kiln {

const ConstantEvaluator& ReferenceEvaluator() {
  static const ConstantEvaluator eval = [](const Graph& g, NodeId id, const std::vector<const Tensor*>& ins) {
    RefExecutor ex;
    return ex.EvaluateNode(g, id, ins);
  };
  return eval;
}

Status SetInputShapes(Graph& graph, const std::map<std::string, std::vector<int64_t>>& shapes) {
  return SetInputDims(graph, {}, shapes);
}

Status SetInputDims(Graph& graph, const std::map<std::string, std::vector<Dim>>& symbolic,
                    const std::map<std::string, std::vector<int64_t>>& shapes) {
  for (const auto& [name, dims] : symbolic) {
    bool found = false;
    for (ValueId v : graph.inputs()) found = found || graph.value(v).name == name;
    if (!found) return InvalidArgument("profile: the model has no input named '", name, "'");
  }
  for (const auto& [name, dims] : shapes) {
    bool found = false;
    for (ValueId v : graph.inputs()) found = found || graph.value(v).name == name;
    if (!found) return InvalidArgument("input shapes: the model has no input named '", name, "'");
  }
  for (ValueId v : graph.inputs()) {
    Value& val = graph.value(v);
    if (!val.type.is_tensor()) continue;
    if (auto sym = symbolic.find(val.name); sym != symbolic.end()) {
      const Shape& s = val.type.shape;
      if (s.has_rank() && s.rank() != static_cast<int>(sym->second.size()))
        return InvalidArgument("profile: input '", val.name, "' has rank ", s.rank(), ", the profile gives ",
                               sym->second.size());
      for (int i = 0; s.has_rank() && i < s.rank(); ++i) {
        const Dim& want = sym->second[static_cast<size_t>(i)];
        // A dimension fixed in the model stays fixed (weights typically depend on it).
        if (s.dim(i).known() && (!want.known() || want.value != s.dim(i).value))
          return InvalidArgument("profile: input '", val.name, "' dimension ", i, " is fixed at ", s.dim(i).value,
                                 " in the model");
      }
      val.type.shape = Shape(sym->second);
      continue;
    }
    auto it = shapes.find(val.name);
    if (it != shapes.end()) {
      const Shape& s = val.type.shape;
      if (s.has_rank() && s.rank() != static_cast<int>(it->second.size()))
        return InvalidArgument("input shapes: input '", val.name, "' has rank ", s.rank(), ", got ",
                               DimsToString(it->second));
      for (int i = 0; s.has_rank() && i < s.rank(); ++i)
        if (s.dim(i).known() && s.dim(i).value != it->second[static_cast<size_t>(i)])
          return InvalidArgument("input shapes: input '", val.name, "' dimension ", i, " is fixed at ", s.dim(i).value);
      val.type.shape = Shape::FromDims(it->second);
    } else if (val.type.shape.has_rank()) {
      for (Dim& d : val.type.shape.dims())
        if (!d.known()) d = Dim(1);
    }
  }
  // Re-infer from scratch: drop every inferred (non-input, non-constant) type first.
  for (int v = 0; v < graph.num_values(); ++v) {
    Value& val = graph.value(v);
    if (val.producer >= 0 && !val.constant) val.type = TypeInfo{};
  }
  InferOptions io;
  io.evaluator = &ReferenceEvaluator();
  return InferTypes(graph, io);
}

namespace {

// A tensor against a tensor type; `what` names it ("input 'x'", "input 'x' element 2").
Status CheckTensorMatches(const TypeInfo& t, const Tensor& x, const std::string& what) {
  if (t.dtype != DType::kUndefined && t.dtype != x.dtype())
    return InvalidArgument(what, " must be ", DTypeName(t.dtype), ", got ", DTypeName(x.dtype()));
  if (!t.shape.has_rank()) return Status::OK();
  if (t.shape.rank() != x.rank())
    return InvalidArgument(what, " must have shape ", t.shape.ToString(), ", got ", DimsToString(x.dims()));
  for (int i = 0; i < x.rank(); ++i)
    if (t.shape.dim(i).known() && t.shape.dim(i).value != x.dim(i))
      return InvalidArgument(what, " must have shape ", t.shape.ToString(), ", got ", DimsToString(x.dims()),
                             " (dimension ", i, ")");
  return Status::OK();
}

const char* KindOf(const RValue& v) { return v.is_tensor() ? "a tensor" : v.is_sequence() ? "a sequence" : "no value"; }

}  // namespace

Status CheckInputMatches(const Value& input, const RValue& v) {
  const TypeInfo* t = &input.type;
  const std::string what = StrCat("input '", input.name, "'");
  if (t->kind == TypeInfo::Kind::kOptional) {
    if (v.is_none() || !t->elem) return Status::OK();
    t = t->elem.get();
  } else if (v.is_none()) {
    return InvalidArgument(what, " (", input.type.ToString(), ") needs a value: only optional inputs may be empty");
  }
  if (t->kind == TypeInfo::Kind::kSequence) {
    if (!v.is_sequence())
      return InvalidArgument(what, " must be a sequence (", input.type.ToString(), "), got ", KindOf(v));
    for (size_t i = 1; i < v.sequence.size(); ++i)
      if (v.sequence[i].dtype() != v.sequence[0].dtype())
        return InvalidArgument(what, ": the elements of a sequence must share one type, but element 0 is ",
                               DTypeName(v.sequence[0].dtype()), " and element ", i, " is ",
                               DTypeName(v.sequence[i].dtype()));
    if (t->elem && t->elem->is_tensor())
      for (size_t i = 0; i < v.sequence.size(); ++i)
        KILN_RETURN_IF_ERROR(CheckTensorMatches(*t->elem, v.sequence[i], StrCat(what, " element ", i)));
    return Status::OK();
  }
  if (!v.is_tensor()) return InvalidArgument(what, " must be a tensor (", input.type.ToString(), "), got ", KindOf(v));
  return CheckTensorMatches(*t, v.tensor, what);
}

Graph DeepCopy(const Graph& g) {
  Graph out = g;
  for (NodeId n = 0; n < out.num_nodes(); ++n) {
    Node& node = out.node(n);
    std::vector<std::pair<std::string, Attr>> changed;
    for (const auto& [name, a] : node.attrs.all()) {
      if (a.type == Attr::Type::kGraph && a.g) {
        Attr c = a;
        c.g = std::make_shared<Graph>(DeepCopy(*a.g));
        changed.emplace_back(name, std::move(c));
      } else if (a.type == Attr::Type::kGraphs) {
        Attr c = a;
        for (auto& sg : c.graphs)
          if (sg) sg = std::make_shared<Graph>(DeepCopy(*sg));
        changed.emplace_back(name, std::move(c));
      }
    }
    for (auto& [name, a] : changed) node.attrs.set(name, std::move(a));
  }
  return out;
}

void ClearSubgraphTypes(Graph& g) {
  for (NodeId n = 0; n < g.num_nodes(); ++n)
    for (const auto& [name, a] : g.node(n).attrs.all())
      if (a.type == Attr::Type::kGraph && a.g) {
        Graph& sub = *a.g;
        for (ValueId v = 0; v < sub.num_values(); ++v)
          if (!sub.value(v).constant) sub.value(v).type = TypeInfo{};
        ClearSubgraphTypes(sub);
      }
}

}  // namespace kiln
