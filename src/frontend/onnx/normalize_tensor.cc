// Opset normalization for the tensor family: attributes that later opsets turned into
// inputs become constant inputs.
#include "frontend/onnx/normalize.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// Reshape < 5: `shape` attribute -> input 1; opset 1's consumed_inputs is dropped.
Status ReshapeShapeAttr(NormalizeContext& ctx) {
  ctx.node().attrs.erase("consumed_inputs");
  return ctx.MoveIntsAttrToInput("shape", 1);
}

// Concat < 4: `axis` was optional with default 1; later it is required.
Status ConcatDefaultAxis(NormalizeContext& ctx) {
  if (ctx.opset() < 4 && !ctx.node().attrs.has("axis")) ctx.node().attrs.set("axis", Attr::Int(1));
  return Status::OK();
}

Status AxesAttrToInput1(NormalizeContext& ctx) { return ctx.MoveIntsAttrToInput("axes", 1); }          // Squeeze/Unsqueeze < 13
Status SplitAttrToInput(NormalizeContext& ctx) {                                                     // < 13
  ctx.node().attrs.erase("num_outputs");  // opset 18: implied by the output count
  return ctx.MoveIntsAttrToInput("split", 1);
}

// Slice < 10: starts/ends/axes attributes -> inputs 1..3.
Status SliceAttrs(NormalizeContext& ctx) {
  Node& n = ctx.node();
  if (!n.attrs.has("starts")) return Status::OK();
  KILN_RETURN_IF_ERROR(ctx.MoveIntsAttrToInput("starts", 1));
  KILN_RETURN_IF_ERROR(ctx.MoveIntsAttrToInput("ends", 2));
  return ctx.MoveIntsAttrToInput("axes", 3);
}

// Pad < 11: pads (INTS) and value (FLOAT) attributes -> inputs 1 and 2.
Status PadAttrs(NormalizeContext& ctx) {
  Node& n = ctx.node();
  if (n.attrs.has("paddings")) {  // opset 1 name
    Attr a = *n.attrs.find("paddings");
    n.attrs.erase("paddings");
    n.attrs.set("pads", a);
  }
  if (!n.attrs.has("pads")) return Status::OK();
  KILN_RETURN_IF_ERROR(ctx.MoveIntsAttrToInput("pads", 1));
  const DType dt = ctx.graph().value(n.inputs[0]).type.dtype;
  if (n.attrs.has("value")) return ctx.MoveFloatAttrToInput("value", 2, dt == DType::kUndefined ? DType::kFloat32 : dt);
  return Status::OK();
}

// TopK < 10: k attribute -> input 1.
Status TopKAttr(NormalizeContext& ctx) {
  Node& n = ctx.node();
  if (!n.attrs.has("k")) return Status::OK();
  KILN_ASSIGN_OR_RETURN(int64_t k, n.attrs.GetInt("k", 0));
  n.attrs.erase("k");
  return ctx.SetConstantInput(1, Tensor::FromVector<int64_t>({k}));
}

}  // namespace

void RegisterTensorNormalizers(NormalizerTable& t) {
  t.Add("Reshape", &ReshapeShapeAttr);
  t.Add("Concat", &ConcatDefaultAxis);
  t.Add("Squeeze", &AxesAttrToInput1);
  t.Add("Unsqueeze", &AxesAttrToInput1);
  t.Add("Split", &SplitAttrToInput);
  t.Add("Slice", &SliceAttrs);
  t.Add("Pad", &PadAttrs);
  t.Add("TopK", &TopKAttr);
}

}  // namespace kiln
