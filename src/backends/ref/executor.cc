#include <chrono>
#include <cstring>
#include <unordered_map>

#include "backends/ref/kernel.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

// Values of one (sub)graph execution; captured outer-scope values resolve by name
// through the parent chain.
struct RefScope {
  const Graph* graph = nullptr;
  std::vector<RValue>* values = nullptr;
  const RefScope* parent = nullptr;

  const RValue* Lookup(const std::string& name) const {
    for (const RefScope* s = this; s != nullptr; s = s->parent) {
      auto id = s->graph->FindValue(name);
      if (id && static_cast<size_t>(*id) < s->values->size()) {
        const RValue& v = (*s->values)[static_cast<size_t>(*id)];
        if (!v.is_none() || s->graph->value(*id).producer >= 0) return &v;
      }
    }
    return nullptr;
  }
};

RefContext::RefContext(const Graph& graph, const Node& node, NodeId id, std::vector<const RValue*> inputs,
                       RefExecutor* executor, const RefScope* scope)
    : graph_(graph), node_(node), id_(id), inputs_(std::move(inputs)), outputs_(node.outputs.size()),
      executor_(executor), scope_(scope) {}

bool RefContext::has_input(int i) const {
  return i >= 0 && i < num_inputs() && inputs_[static_cast<size_t>(i)] != nullptr &&
         !inputs_[static_cast<size_t>(i)]->is_none();
}

const Tensor& RefContext::input(int i) const { return inputs_[static_cast<size_t>(i)]->tensor; }

const RValue& RefContext::input_value(int i) const {
  static const RValue kNone;
  if (i < 0 || i >= num_inputs() || inputs_[static_cast<size_t>(i)] == nullptr) return kNone;
  return *inputs_[static_cast<size_t>(i)];
}

Status RefContext::RequireTensor(int i) const {
  if (!has_input(i)) return InvalidArgument("input ", i, " is required");
  if (!input_value(i).is_tensor()) return InvalidArgument("input ", i, " must be a tensor");
  return Status::OK();
}

bool RefContext::has_output(int i) const {
  return i >= 0 && i < num_outputs() && node_.outputs[static_cast<size_t>(i)] != kNoValue;
}

void RefContext::set_output_value(int i, RValue v) {
  if (i >= 0 && i < num_outputs()) outputs_[static_cast<size_t>(i)] = std::move(v);
}

StatusOr<std::vector<RValue>> RefContext::RunSubgraph(const Graph& body, std::vector<RValue> inputs) const {
  (void)graph_;
  (void)id_;
  return executor_->RunScoped(body, std::move(inputs), scope_);
}

const RefKernelRegistry& RefKernelRegistry::Global() {
  static const RefKernelRegistry* registry = [] {
    auto* r = new RefKernelRegistry();
#define KILN_REGISTER_(F) Register##F##Kernels(*r);
    KILN_OP_FAMILIES(KILN_REGISTER_)
#undef KILN_REGISTER_
    return r;
  }();
  return *registry;
}

void RefKernelRegistry::Add(const std::string& domain, const std::string& op_type, RefKernelFn fn) {
  kernels_[{domain, op_type}] = fn;
}

RefKernelFn RefKernelRegistry::Find(const std::string& domain, const std::string& op_type) const {
  auto it = kernels_.find({domain == "ai.onnx" ? "" : domain, op_type});
  return it == kernels_.end() ? nullptr : it->second;
}

namespace {

// Checks a computed tensor against the statically inferred type.
Status CheckAgainstInferred(const Tensor& t, const TypeInfo& type) {
  if (type.kind != TypeInfo::Kind::kTensor) return Status::OK();
  if (type.dtype != DType::kUndefined && type.dtype != t.dtype())
    return Internal("computed ", t.ShapeString(), " but inference said ", type.ToString());
  if (!type.shape.has_rank()) return Status::OK();
  if (type.shape.rank() != t.rank())
    return Internal("computed ", t.ShapeString(), " but inference said ", type.ToString());
  for (int i = 0; i < t.rank(); ++i) {
    const Dim& d = type.shape.dim(i);
    if (d.known() && d.value != t.dim(i))
      return Internal("computed ", t.ShapeString(), " but inference said ", type.ToString());
  }
  return Status::OK();
}

// Cuts a horizontally fused node's result into its outputs along kSplitAxisAttr.
StatusOr<std::vector<RValue>> SplitOutput(const RValue& whole, const Node& node, const std::vector<int64_t>& sizes) {
  if (!whole.is_tensor()) return Internal("split of a non-tensor");
  const Tensor& t = whole.tensor;
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt(kSplitAxisAttr, 0));
  if (axis < 0 || axis >= t.rank()) return Internal("split axis out of range");
  int64_t outer = 1, inner = 1, total = 0;
  for (int d = 0; d < axis; ++d) outer *= t.dim(d);
  for (int d = static_cast<int>(axis) + 1; d < t.rank(); ++d) inner *= t.dim(d);
  for (int64_t s : sizes) total += s;
  if (total != t.dim(static_cast<int>(axis))) return Internal("split sizes do not add up");
  std::vector<RValue> parts;
  const size_t esize = DTypeSize(t.dtype());
  int64_t start = 0;
  for (int64_t s : sizes) {
    std::vector<int64_t> dims = t.dims();
    dims[static_cast<size_t>(axis)] = s;
    Tensor p(t.dtype(), dims);
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(static_cast<char*>(p.raw_data()) + o * s * inner * esize,
                  static_cast<const char*>(t.raw_data()) + (o * total + start) * inner * esize, static_cast<size_t>(s * inner) * esize);
    parts.emplace_back(std::move(p));
    start += s;
  }
  return parts;
}

}  // namespace

StatusOr<std::vector<RValue>> RefExecutor::Run(const Graph& graph, std::vector<RValue> inputs) {
  return RunScoped(graph, std::move(inputs), nullptr);
}

StatusOr<std::vector<RValue>> RefExecutor::RunScoped(const Graph& graph, std::vector<RValue> inputs,
                                                     const RefScope* parent) {
  if (inputs.size() != graph.inputs().size())
    return InvalidArgument("graph '", graph.name, "' takes ", graph.inputs().size(), " inputs, got ", inputs.size());
  std::vector<RValue> values(static_cast<size_t>(graph.num_values()));
  RefScope scope{&graph, &values, parent};
  for (int v = 0; v < graph.num_values(); ++v)
    if (graph.value(v).constant) values[static_cast<size_t>(v)] = RValue(*graph.value(v).constant);
  for (size_t i = 0; i < inputs.size(); ++i) values[static_cast<size_t>(graph.inputs()[i])] = std::move(inputs[i]);
  for (ValueId c : graph.captures()) {
    const RValue* outer = parent ? parent->Lookup(graph.value(c).name) : nullptr;
    if (outer == nullptr)
      return InvalidArgument("graph '", graph.name, "': outer-scope value '", graph.value(c).name, "' not found");
    values[static_cast<size_t>(c)] = *outer;
  }

  auto cached = orders_.find(&graph);
  if (cached == orders_.end()) {
    KILN_ASSIGN_OR_RETURN(std::vector<NodeId> computed, graph.TopologicalOrder());
    cached = orders_.emplace(&graph, std::move(computed)).first;
  }
  const std::vector<NodeId>& order = cached->second;
  const RefKernelRegistry& kernels = RefKernelRegistry::Global();
  for (NodeId id : order) {
    const Node& node = graph.node(id);
    const bool external = node.domain == kExternalDomain;
    if (external && !options_.external)
      return Unimplemented("node ", node.DisplayName(id), ": runs on another backend, which this executor was not given");
    RefKernelFn fn = external ? nullptr : kernels.Find(node.domain, node.op_type);
    if (fn == nullptr && !external)
      return Unimplemented("node ", node.DisplayName(id), ": no reference kernel for this op");
    // A fused node runs as its main op, then its epilogue subgraph on output 0.
    const Attr* epilogue = node.attrs.find(kEpilogueAttr);
    const bool fused = IsFusedNode(node);
    Node main_part;
    if (fused) main_part = MainPartOf(node);
    const Node& op = fused ? main_part : node;
    std::vector<const RValue*> ins;
    ins.reserve(op.inputs.size());
    for (ValueId v : op.inputs) ins.push_back(v == kNoValue ? nullptr : &values[static_cast<size_t>(v)]);
    RefContext ctx(graph, op, id, std::move(ins), this, &scope);
    Status st;
    const bool timed = options_.node_ms != nullptr && parent == nullptr;
    const auto start = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    try {
      st = external ? options_.external(node, ctx) : fn(ctx);
    } catch (const std::bad_alloc&) {  // a size from the model too large to allocate
      st = Status(StatusCode::kOutOfRange, "out of memory allocating an output");
    }
    if (!st.ok()) return Status(st.code(), StrCat("node ", node.DisplayName(id), ": ", st.message()));
    if (epilogue) {
      std::vector<RValue> epi_in = {std::move(ctx.outputs()[0])};
      for (size_t i = op.inputs.size(); i < node.inputs.size(); ++i)
        epi_in.push_back(values[static_cast<size_t>(node.inputs[i])]);
      auto r = RunScoped(*epilogue->g, std::move(epi_in), &scope);
      if (!r.ok()) return Status(r.status().code(), StrCat("node ", node.DisplayName(id), ", epilogue: ", r.status().message()));
      ctx.outputs()[0] = std::move((*r)[0]);
    }
    if (const Attr* sizes = node.attrs.find(kSplitSizesAttr)) {
      auto parts = SplitOutput(ctx.outputs()[0], node, sizes->ints);
      if (!parts.ok()) return Status(parts.status().code(), StrCat("node ", node.DisplayName(id), ": ", parts.status().message()));
      ctx.outputs() = std::move(*parts);
    }
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      ValueId v = node.outputs[o];
      if (v == kNoValue) continue;
      RValue& out = ctx.outputs()[o];
      if (out.is_tensor() && options_.check_inferred_types) {
        Status c = CheckAgainstInferred(out.tensor, graph.value(v).type);
        if (!c.ok())
          return Internal("node ", node.DisplayName(id), ", output '", graph.value(v).name, "': ", c.message());
      }
      values[static_cast<size_t>(v)] = std::move(out);
    }
    if (timed)
      options_.node_ms->emplace_back(
          id, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::vector<RValue> outs;
  outs.reserve(graph.outputs().size());
  for (ValueId v : graph.outputs()) outs.push_back(values[static_cast<size_t>(v)]);
  return outs;
}

StatusOr<std::vector<Tensor>> RefExecutor::EvaluateNode(const Graph& graph, NodeId id,
                                                        const std::vector<const Tensor*>& inputs) {
  const Node& node = graph.node(id);
  RefKernelFn fn = RefKernelRegistry::Global().Find(node.domain, node.op_type);
  if (fn == nullptr) return Unimplemented("node ", node.DisplayName(id), ": no reference kernel for this op");
  std::vector<RValue> holders(inputs.size());
  std::vector<const RValue*> ins(inputs.size(), nullptr);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i] == nullptr) continue;
    holders[i] = RValue(*inputs[i]);
    ins[i] = &holders[i];
  }
  RefContext ctx(graph, node, id, std::move(ins), this, nullptr);
  Status st = fn(ctx);
  if (!st.ok()) return Status(st.code(), StrCat("node ", node.DisplayName(id), ": ", st.message()));
  std::vector<Tensor> outs;
  for (RValue& v : ctx.outputs()) {
    if (!v.is_tensor()) return Unimplemented("constant evaluation of non-tensor outputs");
    outs.push_back(std::move(v.tensor));
  }
  return outs;
}

}  // namespace kiln
