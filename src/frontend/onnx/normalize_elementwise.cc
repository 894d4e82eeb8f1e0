// Opset normalization for the elementwise family.
#include "frontend/onnx/normalize.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// Clip < 11: min/max attributes -> optional inputs 1 and 2 (of the input's type).
Status NormalizeClip(NormalizeContext& ctx) {
  Node& n = ctx.node();
  const DType dt = ctx.graph().value(n.inputs[0]).type.dtype == DType::kUndefined
                       ? DType::kFloat32 : ctx.graph().value(n.inputs[0]).type.dtype;
  if (n.attrs.has("min")) KILN_RETURN_IF_ERROR(ctx.MoveFloatAttrToInput("min", 1, dt));
  if (n.attrs.has("max")) {
    if (n.inputs.size() < 2) n.inputs.resize(2, kNoValue);
    KILN_RETURN_IF_ERROR(ctx.MoveFloatAttrToInput("max", 2, dt));
  }
  return Status::OK();
}

// Dropout < 12: `ratio` attribute -> input 1; is_test/consumed_inputs dropped (inference).
Status NormalizeDropout(NormalizeContext& ctx) {
  Node& n = ctx.node();
  n.attrs.erase("is_test");
  n.attrs.erase("consumed_inputs");
  if (n.attrs.has("ratio")) KILN_RETURN_IF_ERROR(ctx.MoveFloatAttrToInput("ratio", 1, DType::kFloat32));
  return Status::OK();
}

// Opset < 7 binary ops with legacy broadcasting (`broadcast`, `axis`): NumPy broadcasting
// gives the same result when B aligns with A's trailing dims; other alignments would need
// a reshape of B, which kiln does only for constant B.
Status NormalizeLegacyBroadcast(NormalizeContext& ctx) {
  Node& n = ctx.node();
  n.attrs.erase("consumed_inputs");
  // PRelu < 7: a 1-D slope of C values applies per channel (axis 1).
  if (n.op_type == "PRelu" && ctx.opset() < 7 && n.inputs.size() == 2 && n.inputs[0] != kNoValue &&
      n.inputs[1] != kNoValue) {
    Value& slope = ctx.graph().value(n.inputs[1]);
    const TypeInfo& x = ctx.graph().value(n.inputs[0]).type;
    if (slope.constant && slope.constant->rank() == 1 && slope.constant->numel() > 1 && x.shape.has_rank() &&
        x.shape.rank() > 2) {
      std::vector<int64_t> dims(static_cast<size_t>(x.shape.rank() - 1), 1);
      dims[0] = slope.constant->numel();
      return ctx.SetConstantInput(1, slope.constant->Reshaped(dims));
    }
  }
  if (!n.attrs.has("broadcast")) return Status::OK();
  n.attrs.erase("broadcast");
  if (!n.attrs.has("axis")) return Status::OK();
  KILN_ASSIGN_OR_RETURN(int64_t axis, n.attrs.GetInt("axis", 0));
  n.attrs.erase("axis");
  if (n.inputs.size() < 2 || n.inputs[0] == kNoValue || n.inputs[1] == kNoValue)
    return InvalidArgument("legacy broadcast with 'axis' needs both inputs");
  const TypeInfo& a = ctx.graph().value(n.inputs[0]).type;
  Value& b = ctx.graph().value(n.inputs[1]);
  if (!a.shape.has_rank()) return Unimplemented("legacy broadcast with 'axis' needs a known input rank");
  const int64_t rank = a.shape.rank();
  if (axis < 0) axis += rank;
  if (!b.constant) {
    // B aligns with A's dims from `axis` on: trailing 1s (an Unsqueeze) make NumPy broadcasting agree.
    if (!b.type.shape.has_rank()) return Unimplemented("legacy broadcast with 'axis' needs B's rank");
    std::vector<int64_t> axes;
    for (int64_t d = b.type.shape.rank(); d + axis < rank; ++d) axes.push_back(d);
    if (axes.empty()) return Status::OK();
    Graph& g = ctx.graph();
    const std::string base = StrCat(b.name, "/kiln_legacy_broadcast");
    std::string name = base;
    for (int i = 1; g.FindValue(name) || g.FindValue(name + "_axes"); ++i) name = StrCat(base, i);
    Tensor at(DType::kInt64, {static_cast<int64_t>(axes.size())});
    for (size_t i = 0; i < axes.size(); ++i) at.data<int64_t>()[i] = axes[i];
    KILN_ASSIGN_OR_RETURN(ValueId axes_v, g.AddConstant(name + "_axes", std::move(at)));
    KILN_ASSIGN_OR_RETURN(ValueId out, g.AddValue(name));
    Node u;
    u.name = name;
    u.op_type = "Unsqueeze";
    u.inputs = {n.inputs[1], axes_v};
    u.outputs = {out};
    KILN_RETURN_IF_ERROR(g.AddNode(std::move(u)).status());
    n.inputs[1] = out;
    return Status::OK();
  }
  std::vector<int64_t> dims = b.constant->dims();
  while (static_cast<int64_t>(dims.size()) + axis < rank) dims.push_back(1);
  return ctx.SetConstantInput(1, b.constant->Reshaped(dims));
}

// Opset < 6 ops carried `consumed_inputs`; nothing else changed for inference.
Status DropConsumedInputs(NormalizeContext& ctx) {
  ctx.node().attrs.erase("consumed_inputs");
  return Status::OK();
}

}  // namespace

void RegisterElementwiseNormalizers(NormalizerTable& t) {
  t.Add("Clip", &NormalizeClip);
  t.Add("Dropout", &NormalizeDropout);
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less", "PRelu"})
    t.Add(op, &NormalizeLegacyBroadcast);
  for (const char* op : {"Abs", "Ceil", "Exp", "Floor", "Log", "Neg", "Reciprocal", "Relu", "Sigmoid", "Sqrt", "Tanh",
                         "Elu", "LeakyRelu", "HardSigmoid", "Selu", "Max", "Min", "Mean", "Sum"})
    t.Add(op, &DropConsumedInputs);
}

}  // namespace kiln
