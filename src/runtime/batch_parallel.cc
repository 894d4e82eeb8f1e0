#include "runtime/batch_parallel.h"

#include <set>

#include "ir/op_schema.h"
#include "ir/tensor.h"

namespace kiln {
namespace {

// Ops whose output for sample i reads only sample i of every input that has the batch as
// dim 0, whatever their attributes (shapes are checked separately).
const std::set<std::string>& PerSampleOps() {
  static const std::set<std::string> ops = {
      // elementwise (broadcast operands are checked by shape: they cannot carry a batch dim)
      "Relu",
      "Sigmoid",
      "Tanh",
      "Clip",
      "LeakyRelu",
      "Elu",
      "Selu",
      "Celu",
      "HardSigmoid",
      "HardSwish",
      "Gelu",
      "Erf",
      "Exp",
      "Log",
      "Sqrt",
      "Neg",
      "Abs",
      "Reciprocal",
      "Softplus",
      "Softsign",
      "Mish",
      "Swish",
      "Identity",
      "Cast",
      "Floor",
      "Ceil",
      "Round",
      "Sign",
      "Sin",
      "Cos",
      "Tan",
      "Asin",
      "Acos",
      "Atan",
      "Sinh",
      "Cosh",
      "Asinh",
      "Acosh",
      "Atanh",
      "Not",
      "PRelu",
      "Dropout",
      "ThresholdedRelu",
      "IsNaN",
      "IsInf",
      "Shrink",
      "BitwiseNot",
      "Add",
      "Sub",
      "Mul",
      "Div",
      "Pow",
      "Max",
      "Min",
      "Mean",
      "Sum",
      "Equal",
      "Less",
      "Greater",
      "LessOrEqual",
      "GreaterOrEqual",
      "And",
      "Or",
      "Xor",
      "Where",
      "Mod",
      "BitShift",
      "BitwiseAnd",
      "BitwiseOr",
      "BitwiseXor",
      // NCHW layers: dim 0 is the batch
      "Conv",
      "ConvTranspose",
      "MaxPool",
      "AveragePool",
      "LpPool",
      "GlobalAveragePool",
      "GlobalMaxPool",
      "GlobalLpPool",
      "LRN",
      "InstanceNormalization",
      "GroupNormalization",
      "DepthToSpace",
      "SpaceToDepth",
      "Resize",
      "Upsample",
      "Pad",
      // the left operand's rows are samples; a right operand with the batch fails the shape check
      "MatMul",
      "Gemm",
      // data movement that keeps row-major order (samples stay contiguous: shape-checked)
      "Reshape",
      "Flatten",
      "Expand",
  };
  return ops;
}

// Ops that reduce, normalize, gather or split along one axis: per-sample unless it is 0.
const std::set<std::string>& AxisOps() {
  static const std::set<std::string> ops = {
      "Concat", "Split",  "Softmax", "LogSoftmax",      "Hardmax", "LayerNormalization",
      "Gather", "ArgMax", "ArgMin",  "LpNormalization", "TopK"};
  return ops;
}

int64_t AxisDefault(const std::string& op) {
  if (op == "Softmax" || op == "LogSoftmax" || op == "Hardmax" || op == "LayerNormalization" ||
      op == "LpNormalization" || op == "TopK")
    return -1;  // opset >= 13 default; the older default (1) is also > 0
  return 0;
}

int RankOf(const Graph& g, ValueId v) {
  const Value& val = g.value(v);
  if (val.constant) return val.constant->rank();
  return val.type.shape.has_rank() ? val.type.shape.rank() : -1;
}

// The node's axes (normalized) from an attribute or a constant input; nullopt when they are
// not known statically.
std::optional<std::vector<int64_t>> Axes(const Graph& g, const Node& n, int input_index, int rank) {
  std::vector<int64_t> axes;
  if (n.attrs.has("axes")) {
    auto a = n.attrs.GetInts("axes");
    if (!a.ok()) return std::nullopt;
    axes = *a;
  } else if (input_index >= 0 && static_cast<size_t>(input_index) < n.inputs.size() &&
             n.inputs[static_cast<size_t>(input_index)] != kNoValue) {
    const Value& v = g.value(n.inputs[static_cast<size_t>(input_index)]);
    if (!v.constant) return std::nullopt;
    auto a = v.constant->ToInt64Vector();
    if (!a.ok()) return std::nullopt;
    axes = *a;
  } else {
    return std::nullopt;
  }
  for (int64_t& a : axes) a = a < 0 ? a + rank : a;
  return axes;
}

Status CheckNode(const Graph& g, NodeId id, bool in_epilogue) {
  const Node& n = g.node(id);
  auto refuse = [&](const std::string& why) { return FailedPrecondition("node ", n.DisplayName(id), " ", why); };
  if (!n.domain.empty() && n.domain != "ai.onnx" && !(n.domain == "kiln" && n.op_type == "Attention"))
    return refuse(StrCat("is of domain '", n.domain, "': not known to keep samples apart"));
  if (in_epilogue && n.domain.empty() && !PerSampleOps().count(n.op_type)) return refuse("is not elementwise");
  const int rank0 = n.inputs.empty() || n.inputs[0] == kNoValue ? -1 : RankOf(g, n.inputs[0]);
  if (n.attrs.has(kSplitAxisAttr)) {
    auto axis = n.attrs.GetInt(kSplitAxisAttr, 0);
    const int r = n.outputs.empty() ? -1 : RankOf(g, n.outputs[0]);
    if (!axis.ok() || *axis == 0 || (r > 0 && *axis == -r)) return refuse("splits its result along the batch axis");
  }
  if (n.op_type == "Attention" && n.domain == "kiln") return Status::OK();  // [batch..., S, E] per sample
  if (PerSampleOps().count(n.op_type)) return Status::OK();
  if (n.op_type == "BatchNormalization") {
    auto training = n.attrs.GetInt("training_mode", 0);
    if (!training.ok() || *training != 0) return refuse("computes batch statistics (training mode)");
    return Status::OK();
  }
  if (n.op_type == "Transpose") {
    auto perm = n.attrs.GetInts("perm");
    if (!perm.ok() || perm->empty() || (*perm)[0] != 0) return refuse("moves the batch axis");
    return Status::OK();
  }
  if (n.op_type == "Squeeze" || n.op_type == "Unsqueeze") {
    const int r = n.op_type == "Squeeze" ? rank0 : RankOf(g, n.outputs[0]);
    auto axes = Axes(g, n, 1, r);
    if (!axes) return refuse("has no static axes");
    for (int64_t a : *axes)
      if (a == 0) return refuse("squeezes or inserts axis 0");
    return Status::OK();
  }
  if (AxisOps().count(n.op_type)) {
    auto axis = n.attrs.GetInt("axis", AxisDefault(n.op_type));
    if (!axis.ok() || rank0 < 0) return refuse("has an unknown axis");
    const int64_t a = *axis < 0 ? *axis + rank0 : *axis;
    if (a <= 0) return refuse(StrCat("works along axis ", *axis, ", the batch axis"));
    return Status::OK();
  }
  if (n.op_type.rfind("Reduce", 0) == 0 || n.op_type == "MeanVarianceNormalization" || n.op_type == "Slice" ||
      n.op_type == "CumSum") {
    // Reduce*: axes attribute (opset < 18) or input 1; Slice: input 3; CumSum: input 1.
    const int idx = n.op_type == "Slice" ? 3 : 1;
    std::optional<std::vector<int64_t>> axes;
    if (n.op_type == "MeanVarianceNormalization") {
      axes = n.attrs.has("axes") ? Axes(g, n, -1, rank0) : std::vector<int64_t>{0, 2, 3};
    } else {
      axes = Axes(g, n, idx, rank0);
    }
    if (!axes || axes->empty()) return refuse("works along every axis, or along axes not known at build");
    for (int64_t a : *axes)
      if (a == 0) return refuse("works along axis 0, the batch axis");
    return Status::OK();
  }
  if (n.op_type == "Tile") {
    if (n.inputs.size() < 2 || n.inputs[1] == kNoValue || !g.value(n.inputs[1]).constant)
      return refuse("has repeats not known at build");
    auto reps = g.value(n.inputs[1]).constant->ToInt64Vector();
    if (!reps.ok() || reps->empty() || (*reps)[0] != 1) return refuse("repeats along the batch axis");
    return Status::OK();
  }
  return refuse("is not known to keep samples apart");
}

// Every non-constant value used in `big` has `small`'s shape with dim 0 scaled by `ratio`.
// In an epilogue (strict = false), values of the same shape in both are broadcast operands.
Status CheckShapes(const Graph& big, const Graph& small, int64_t ratio, bool strict) {
  if (big.num_values() != small.num_values()) return Internal("specialized graphs differ in their values");
  std::vector<bool> used(static_cast<size_t>(big.num_values()), false);
  for (ValueId v : big.inputs()) used[static_cast<size_t>(v)] = true;
  for (ValueId v : big.outputs()) used[static_cast<size_t>(v)] = true;
  for (NodeId id = 0; id < big.num_nodes(); ++id) {
    const Node& n = big.node(id);
    if (n.dead) continue;
    for (ValueId v : n.inputs)
      if (v != kNoValue) used[static_cast<size_t>(v)] = true;
    for (ValueId v : n.outputs)
      if (v != kNoValue) used[static_cast<size_t>(v)] = true;
  }
  // A graph output that is a constant (folded from shapes, say) is no sample's rows: the
  // slices would each write it where their rows go.
  if (strict)
    for (ValueId v : big.outputs())
      if (big.value(v).constant)
        return FailedPrecondition("output '", big.value(v).name, "' is a constant, not rows of the batch");
  for (ValueId v = 0; v < big.num_values(); ++v) {
    if (!used[static_cast<size_t>(v)] || big.value(v).constant) continue;
    const TypeInfo& tb = big.value(v).type;
    const TypeInfo& ts = small.value(v).type;
    const std::string name = big.value(v).name;
    if (!tb.is_tensor() || !ts.is_tensor() || !tb.shape.IsStatic() || !ts.shape.IsStatic())
      return FailedPrecondition("value '", name, "' has no static tensor shape");
    const std::vector<int64_t> db = tb.shape.Sizes(), ds = ts.shape.Sizes();
    if (!strict && db == ds) continue;
    bool ok = db.size() == ds.size() && !db.empty() && db[0] == ds[0] * ratio;
    for (size_t i = 1; ok && i < db.size(); ++i) ok = db[i] == ds[i];
    if (!ok)
      return FailedPrecondition("value '", name, "' is ", DimsToString(db), " for the whole batch but ",
                                DimsToString(ds), " for a slice: its dim 0 is not the batch");
  }
  return Status::OK();
}

Status CheckGraph(const Graph& big, const Graph& small, int64_t ratio, bool strict) {
  KILN_RETURN_IF_ERROR(CheckShapes(big, small, ratio, strict));
  for (NodeId id = 0; id < big.num_nodes(); ++id) {
    const Node& n = big.node(id);
    if (n.dead) continue;
    KILN_RETURN_IF_ERROR(CheckNode(big, id, !strict));
    for (const auto& [name, a] : n.attrs.all()) {
      if (a.type == Attr::Type::kGraphs)
        return FailedPrecondition("node ", n.DisplayName(id), " has subgraphs (control flow)");
      if (a.type != Attr::Type::kGraph || !a.g) continue;
      if (name != kEpilogueAttr) return FailedPrecondition("node ", n.DisplayName(id), " has a subgraph '", name, "'");
      const Attr* sa = small.node(id).attrs.find(name);
      if (sa == nullptr || sa->type != Attr::Type::kGraph || !sa->g)
        return Internal("specialized graphs differ in their epilogues");
      KILN_RETURN_IF_ERROR(
          CheckGraph(*a.g, *sa->g, ratio, /*strict=*/false).WithPrefix(StrCat("epilogue of ", n.DisplayName(id))));
    }
  }
  return Status::OK();
}

}  // namespace

int64_t CommonInputBatch(const Graph& graph) {
  int64_t batch = 0;
  for (ValueId v : graph.inputs()) {
    const Value& val = graph.value(v);
    if (val.constant) continue;
    if (!val.type.is_tensor() || !val.type.shape.IsStatic() || val.type.shape.rank() == 0) return 0;
    const int64_t b = val.type.shape.Sizes()[0];
    if (b < 1 || (batch != 0 && b != batch)) return 0;
    batch = b;
  }
  return batch;
}

Status BatchSeparable(const Graph& big, const Graph& small, int64_t batch, int64_t slice) {
  if (slice < 1 || batch < 2 || slice >= batch || batch % slice != 0)
    return InvalidArgument("a batch of ", batch, " does not split into slices of ", slice);
  if (CommonInputBatch(big) != batch)
    return FailedPrecondition("the inputs do not all have batch ", batch, " as dim 0");
  if (CommonInputBatch(small) != slice) return Internal("the slice graph's inputs do not have batch ", slice);
  if (big.num_nodes() != small.num_nodes()) return Internal("specialized graphs differ in their nodes");
  return CheckGraph(big, small, batch / slice, /*strict=*/true);
}

}  // namespace kiln
