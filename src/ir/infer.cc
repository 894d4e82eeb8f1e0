#include "ir/infer.h"

#include "ir/op_schema.h"

namespace kiln {

namespace {

// Required inputs must be present: an empty name ("" in ONNX, -1 in a plan) is only
// allowed past the op's minimum count, and for Loop's M/cond and Scan-8's sequence_lens.
Status CheckRequiredInputs(const Node& node, const OpSchema& schema, const InferenceContext& ctx) {
  if (node.domain.empty() && (node.op_type == "Loop" || node.op_type == "Scan")) return Status::OK();
  for (int i = 0; i < schema.min_inputs && i < ctx.num_inputs(); ++i)
    if (!ctx.has_input(i)) return InvalidArgument("required input ", i, " is empty");
  return Status::OK();
}

// Merges an inferred type into the declared one. Error text names what disagrees.
StatusOr<TypeInfo> MergeTypes(const TypeInfo& declared, const TypeInfo& inferred) {
  if (declared.kind != inferred.kind) {
    if (declared.kind == TypeInfo::Kind::kTensor && declared.dtype == DType::kUndefined) return inferred;
    if (declared.kind == TypeInfo::Kind::kOptional && declared.elem && inferred.kind == declared.elem->kind)
      return declared;  // an optional holding a value
    if (inferred.kind == TypeInfo::Kind::kOptional && inferred.elem && declared.kind == inferred.elem->kind)
      return declared;  // the model promises the optional is present
    return InvalidArgument("declared ", declared.ToString(), " but the op produces ", inferred.ToString());
  }
  if (declared.kind != TypeInfo::Kind::kTensor) {
    if (!declared.elem) return inferred;
    if (!inferred.elem) return declared;
    KILN_ASSIGN_OR_RETURN(TypeInfo e, MergeTypes(*declared.elem, *inferred.elem));
    TypeInfo t = declared;
    t.elem = std::make_shared<TypeInfo>(std::move(e));
    return t;
  }
  TypeInfo out = inferred;
  if (declared.dtype != DType::kUndefined && inferred.dtype != DType::kUndefined && declared.dtype != inferred.dtype)
    return InvalidArgument("declared element type ", DTypeName(declared.dtype), " but the op produces ",
                           DTypeName(inferred.dtype));
  if (out.dtype == DType::kUndefined) out.dtype = declared.dtype;
  if (!declared.shape.has_rank()) return out;
  if (!inferred.shape.has_rank()) {
    out.shape = declared.shape;
    return out;
  }
  if (declared.shape.rank() != inferred.shape.rank())
    return InvalidArgument("declared shape ", declared.shape.ToString(), " but the op produces ",
                           inferred.shape.ToString());
  for (int i = 0; i < declared.shape.rank(); ++i) {
    const Dim& d = declared.shape.dim(i);
    Dim& o = out.shape.dims()[static_cast<size_t>(i)];
    if (d.known() && o.known() && d.value != o.value)
      return InvalidArgument("declared shape ", declared.shape.ToString(), " but the op produces ",
                             inferred.shape.ToString());
    if (!o.known() && (d.known() || (o.symbol.empty() && !d.symbol.empty()))) o = d;
  }
  return out;
}

bool IsNondeterministic(const Node& n) {
  return n.op_type.rfind("Random", 0) == 0 || n.op_type == "Bernoulli" || n.op_type == "Multinomial";
}

class Inferrer {
 public:
  explicit Inferrer(const InferOptions& options) : options_(options) {}

  // outer: enclosing graphs, innermost last (for captures).
  Status Run(Graph& graph, std::vector<const Graph*> outer) {
    for (ValueId c : graph.captures()) {
      const std::string& name = graph.value(c).name;
      for (auto it = outer.rbegin(); it != outer.rend(); ++it) {
        if (auto id = (*it)->FindValue(name)) {
          if (graph.value(c).type.dtype == DType::kUndefined || !graph.value(c).type.shape.has_rank())
            graph.value(c).type = (*it)->value(*id).type;
          break;
        }
      }
    }
    std::vector<std::optional<Tensor>> known(static_cast<size_t>(graph.num_values()));
    KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, graph.TopologicalOrder());
    const OpRegistry& registry = OpRegistry::Global();
    for (NodeId id : order) {
      // A fused node is inferred as its main op, then its epilogue on top.
      const Attr* epilogue = graph.node(id).attrs.find(kEpilogueAttr);
      const bool fused = IsFusedNode(graph.node(id));
      Node main_part;
      if (fused) main_part = MainPartOf(graph.node(id));
      const Node& node = fused ? main_part : graph.node(id);
      auto fail = [&](const Status& s) { return Status(s.code(), StrCat("node ", node.DisplayName(id), ": ", s.message())); };
      const OpSchema* schema = registry.Find(node.domain, node.op_type);
      if (schema == nullptr)
        return Unimplemented("node ", node.DisplayName(id), ": unsupported op '",
                             node.domain.empty() ? "" : node.domain + ".", node.op_type, "'");
      int nin = static_cast<int>(node.inputs.size());
      while (nin > 0 && node.inputs[static_cast<size_t>(nin - 1)] == kNoValue) --nin;
      int nout = static_cast<int>(node.outputs.size());
      if (nin < schema->min_inputs || nin > schema->max_inputs)
        return fail(InvalidArgument("takes ", schema->min_inputs, "..",
                                    schema->max_inputs == kVariadic ? std::string("N") : std::to_string(schema->max_inputs),
                                    " inputs, got ", nin));
      if (nout < schema->min_outputs || nout > schema->max_outputs)
        return fail(InvalidArgument("has ", schema->min_outputs, "..", schema->max_outputs, " outputs, got ", nout));
      for (int i = 0; i < nin; ++i) {
        ValueId v = node.inputs[static_cast<size_t>(i)];
        if (v == kNoValue) continue;
        const TypeInfo& t = graph.value(v).type;
        if (t.kind == TypeInfo::Kind::kTensor && t.dtype == DType::kUndefined)
          return fail(InvalidArgument("input '", graph.value(v).name, "' has no known type (dangling edge?)"));
      }
      InferenceContext ctx(graph, node, id, &known);
      std::vector<const Graph*> inner_outer = outer;
      inner_outer.push_back(&graph);
      ctx.infer_subgraph = [&](const Graph& body, const std::vector<TypeInfo>& in_types)
          -> StatusOr<std::vector<TypeInfo>> {
        // The driver owns the whole graph tree: subgraphs are reached through the node's
        // attributes, which the caller holds mutably.
        Graph& g = const_cast<Graph&>(body);
        for (size_t i = 0; i < g.inputs().size() && i < in_types.size(); ++i) {
          Value& v = g.value(g.inputs()[i]);
          auto merged = MergeTypes(v.type, in_types[i]);
          v.type = merged.ok() ? *merged : in_types[i];
        }
        KILN_RETURN_IF_ERROR(Run(g, inner_outer));
        std::vector<TypeInfo> outs;
        for (ValueId o : g.outputs()) outs.push_back(g.value(o).type);
        return outs;
      };
      if (schema->infer == nullptr) return fail(Internal("op has no inference function"));
      if (Status req = CheckRequiredInputs(node, *schema, ctx); !req.ok()) return fail(req);
      Status st = schema->infer(ctx);
      if (!st.ok()) return fail(st);
      if (epilogue) {
        if (!epilogue->g) return fail(Internal("epilogue attribute holds no graph"));
        std::vector<TypeInfo> in_types = {ctx.output_type(0)};
        const Node& full = graph.node(id);
        for (size_t i = node.inputs.size(); i < full.inputs.size(); ++i)
          in_types.push_back(graph.value(full.inputs[i]).type);
        auto outs = ctx.infer_subgraph(*epilogue->g, in_types);
        if (!outs.ok()) return fail(outs.status().WithPrefix("epilogue"));
        if (outs->size() != 1) return fail(Internal("epilogue must have one output"));
        ctx.set_output_type(0, (*outs)[0]);
      }
      // Output split (horizontal fusion): output 0 is cut into the node's outputs.
      const Node& full_node = graph.node(id);
      std::vector<TypeInfo> out_types = ctx.outputs();
      if (const Attr* sizes = full_node.attrs.find(kSplitSizesAttr)) {
        KILN_ASSIGN_OR_RETURN(int64_t axis, full_node.attrs.GetInt(kSplitAxisAttr, 0));
        const TypeInfo& whole = ctx.output_type(0);
        if (!whole.shape.has_rank() || axis < 0 || axis >= whole.shape.rank() || sizes->ints.size() != full_node.outputs.size())
          return fail(Internal("bad output split"));
        out_types.clear();
        for (int64_t sz : sizes->ints) {
          TypeInfo t = whole;
          t.shape.dims()[static_cast<size_t>(axis)] = Dim(sz);
          out_types.push_back(t);
        }
      }
      nout = static_cast<int>(full_node.outputs.size());
      for (int o = 0; o < nout; ++o) {
        ValueId v = full_node.outputs[static_cast<size_t>(o)];
        if (v == kNoValue) continue;
        Value& val = graph.value(v);
        auto merged = MergeTypes(val.type, out_types[static_cast<size_t>(o)]);
        if (!merged.ok()) return fail(merged.status().WithPrefix(StrCat("output '", val.name, "'")));
        val.type = std::move(*merged);
      }
      for (size_t o = 0; o < ctx.output_values().size() && o < node.outputs.size(); ++o)
        if (ctx.output_values()[o] && node.outputs[o] != kNoValue) known[static_cast<size_t>(node.outputs[o])] = ctx.output_values()[o];
      if (options_.evaluator != nullptr && !fused && !IsNondeterministic(node) && !node.attrs.has("then_branch") &&
          !node.attrs.has("body")) {
        std::vector<const Tensor*> ins;
        bool all_known = nin > 0;
        // Never materialize a large result just to propagate it (ConstantOfShape/Expand/
        // Tile of a huge shape): values are propagated for shape tensors, which are small.
        all_known = all_known && StaticOutputsWithin(graph, node, options_.max_fold_elements);
        for (int i = 0; i < nin && all_known; ++i) {
          const Tensor* t = ctx.input_value(i);
          if (node.inputs[static_cast<size_t>(i)] == kNoValue) { ins.push_back(nullptr); continue; }
          if (t == nullptr || t->numel() > options_.max_fold_elements) all_known = false;
          ins.push_back(t);
        }
        if (all_known) {
          auto r = (*options_.evaluator)(graph, id, ins);
          if (r.ok()) {
            for (int o = 0; o < nout && o < static_cast<int>(r->size()); ++o) {
              ValueId v = node.outputs[static_cast<size_t>(o)];
              if (v != kNoValue && (*r)[static_cast<size_t>(o)].numel() <= options_.max_fold_elements)
                known[static_cast<size_t>(v)] = (*r)[static_cast<size_t>(o)];
            }
          }
        }
      }
    }
    for (ValueId o : graph.outputs()) {
      const TypeInfo& t = graph.value(o).type;
      if (t.kind == TypeInfo::Kind::kTensor && t.dtype == DType::kUndefined)
        return InvalidArgument("graph '", graph.name, "': output '", graph.value(o).name, "' is never produced");
    }
    return Status::OK();
  }

 private:
  const InferOptions& options_;
};

}  // namespace

Status InferTypes(Graph& graph, const InferOptions& options) {
  Inferrer inf(options);
  return inf.Run(graph, {});
}

bool StaticOutputsWithin(const Graph& graph, const Node& node, int64_t max_elements) {
  for (ValueId v : node.outputs) {
    if (v == kNoValue) continue;
    const TypeInfo& t = graph.value(v).type;
    if (!t.is_tensor() || !t.shape.IsStatic()) continue;
    const std::optional<int64_t> n = t.shape.Numel();
    if (!n || *n > max_elements) return false;
  }
  return true;
}

Status InferNodeTypes(Graph& graph, NodeId id) {
  const Node& n = graph.node(id);
  const OpSchema* schema = OpRegistry::Global().Find(n.domain, n.op_type);
  if (schema == nullptr || schema->infer == nullptr) return Internal("no schema for op '", n.op_type, "'");
  InferenceContext ctx(graph, n, id, nullptr);
  KILN_RETURN_IF_ERROR(CheckRequiredInputs(n, *schema, ctx));
  KILN_RETURN_IF_ERROR(schema->infer(ctx));
  for (size_t o = 0; o < n.outputs.size(); ++o) {
    if (n.outputs[o] == kNoValue) continue;
    const TypeInfo& t = ctx.output_type(static_cast<int>(o));
    if (t.dtype == DType::kUndefined) return Internal("op '", n.op_type, "' gave output ", o, " no type");
    graph.value(n.outputs[o]).type = t;
  }
  return Status::OK();
}

}  // namespace kiln
