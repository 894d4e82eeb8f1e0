#include <set>
#include <algorithm>

#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

InferenceContext::InferenceContext(const Graph& graph, const Node& node, NodeId id,
                                   const std::vector<std::optional<Tensor>>* known_values)
    : graph_(graph), node_(node), id_(id), known_values_(known_values), outputs_(node.outputs.size()) {}

bool InferenceContext::has_input(int i) const {
  return i >= 0 && i < num_inputs() && node_.inputs[static_cast<size_t>(i)] != kNoValue;
}

bool InferenceContext::has_output(int i) const {
  return i >= 0 && i < num_outputs() && node_.outputs[static_cast<size_t>(i)] != kNoValue;
}

const TypeInfo& InferenceContext::input_type(int i) const {
  // An absent (optional) input reads as an unknown type, never as value -1.
  static const TypeInfo kAbsent{};
  if (!has_input(i)) return kAbsent;
  return graph_.value(node_.inputs[static_cast<size_t>(i)]).type;
}

const Tensor* InferenceContext::input_value(int i) const {
  if (!has_input(i)) return nullptr;
  ValueId v = node_.inputs[static_cast<size_t>(i)];
  const Value& val = graph_.value(v);
  if (val.constant) return &*val.constant;
  if (known_values_ && static_cast<size_t>(v) < known_values_->size() && (*known_values_)[static_cast<size_t>(v)])
    return &*(*known_values_)[static_cast<size_t>(v)];
  return nullptr;
}

const OpRegistry& OpRegistry::Global() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
#define KILN_REGISTER_(F) Register##F##Schemas(*r);
    KILN_OP_FAMILIES(KILN_REGISTER_)
#undef KILN_REGISTER_
    return r;
  }();
  return *registry;
}

void OpRegistry::Add(OpSchema s) {
  auto key = std::make_pair(s.domain, s.op_type);
  schemas_[key] = std::move(s);
}

const OpSchema* OpRegistry::Find(const std::string& domain, const std::string& op_type) const {
  auto it = schemas_.find({domain == "ai.onnx" ? "" : domain, op_type});
  return it == schemas_.end() ? nullptr : &it->second;
}

std::vector<const OpSchema*> OpRegistry::All() const {
  std::vector<const OpSchema*> v;
  for (const auto& [k, s] : schemas_) v.push_back(&s);
  return v;
}

Status InferSameAsInput0(InferenceContext& ctx) {
  if (!ctx.has_input(0)) return InvalidArgument("input 0 is required");
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::OK();
}

StatusOr<Shape> BroadcastShapes(const std::vector<Shape>& shapes) {
  int rank = 0;
  for (const Shape& s : shapes) {
    if (!s.has_rank()) return Shape::UnknownRank();
    rank = std::max(rank, s.rank());
  }
  std::vector<Dim> out(static_cast<size_t>(rank), Dim(1));
  for (const Shape& s : shapes) {
    int off = rank - s.rank();
    for (int i = 0; i < s.rank(); ++i) {
      const Dim& d = s.dim(i);
      Dim& o = out[static_cast<size_t>(off + i)];
      if (d.known() && d.value == 1) continue;
      if (o.known() && o.value == 1) { o = d; continue; }
      if (d.known() && o.known()) {
        if (d.value != o.value)
          return InvalidArgument("shapes cannot be broadcast: dimension ", off + i, " is ", o.value, " vs ",
                                 d.value);
        continue;
      }
      if (d == o) continue;          // same symbol
      if (d.known()) { o = d; continue; }  // symbol vs N>1: must be N
      if (o.known()) continue;
      o = Dim::Unknown();            // two different symbols / unknowns
    }
  }
  return Shape(std::move(out));
}

Status InferBroadcast(InferenceContext& ctx) {
  std::vector<Shape> shapes;
  for (int i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i)) shapes.push_back(ctx.input_type(i).shape);
  if (shapes.empty()) return InvalidArgument("at least one input is required");
  KILN_ASSIGN_OR_RETURN(Shape s, BroadcastShapes(shapes));
  ctx.set_output(0, ctx.input_type(0).dtype, std::move(s));
  return Status::OK();
}

Status InferBroadcastBool(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(InferBroadcast(ctx));
  ctx.set_output(0, DType::kBool, ctx.output_type(0).shape);
  return Status::OK();
}

Node MainPartOf(const Node& node) {
  Node main = node;
  const Attr* n = node.attrs.find(kEpilogueMainInputs);
  if (n != nullptr && n->i >= 0 && static_cast<size_t>(n->i) <= main.inputs.size())
    main.inputs.resize(static_cast<size_t>(n->i));
  main.attrs.erase(kEpilogueAttr);
  main.attrs.erase(kEpilogueMainInputs);
  if (main.attrs.has(kSplitSizesAttr)) main.outputs.resize(1);
  main.attrs.erase(kSplitAxisAttr);
  main.attrs.erase(kSplitSizesAttr);
  return main;
}

bool IsEpilogueOp(const Graph& g, const Node& e, int chain_slot) {
  if (!e.domain.empty() || e.outputs.size() != 1) return false;
  static const std::set<std::string> kUnary = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Exp", "Abs", "Sqrt",
                                               "Neg", "HardSwish", "HardSigmoid", "Softplus", "Mish", "Swish", "Gelu"};
  const std::string& op = e.op_type;
  if (kUnary.count(op)) return chain_slot == 0;
  if (op == "Clip") {
    if (chain_slot != 0) return false;
    for (size_t i = 1; i < e.inputs.size(); ++i)
      if (e.inputs[i] != kNoValue && !g.value(e.inputs[i]).constant) return false;
    return true;
  }
  if (e.inputs.size() != 2 || e.inputs[0] == e.inputs[1]) return false;
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Max" || op == "Min") return chain_slot == 0 || chain_slot == 1;
  if (op == "Div") return chain_slot == 0;
  return false;
}

bool IsFusedNode(const Node& node) { return node.attrs.has(kEpilogueAttr) || node.attrs.has(kSplitSizesAttr); }

StatusOr<int> NormalizeAxis(int64_t axis, int rank, const char* what) {
  if (axis < -rank || axis >= rank)
    return InvalidArgument(what, " ", axis, " is out of range for rank ", rank);
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

bool IsViewNode(const Node& node) {
  if (!node.domain.empty() || node.attrs.has(kEpilogueAttr)) return false;
  const OpSchema* s = OpRegistry::Global().Find(node.domain, node.op_type);
  return s != nullptr && s->view;
}

}  // namespace kiln
