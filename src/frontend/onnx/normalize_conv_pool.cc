// Opset normalization for convolution, pooling and resampling.
#include <cmath>

#include "frontend/onnx/normalize.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// Upsample (deprecated; opset 7: `scales` attribute, opset 9: scales input) and Resize-10
// become Resize with the semantics they had: asymmetric coordinates, nearest = floor.
Status NormalizeUpsample(NormalizeContext& ctx) {
  Node& n = ctx.node();
  const bool is_upsample = n.op_type == "Upsample";
  if (!is_upsample && ctx.opset() >= 11) return Status::OK();
  auto mode_attr = n.attrs.GetString("mode", "nearest");  // (not the macro: GCC 12 warns spuriously here)
  if (!mode_attr.ok()) return mode_attr.status();
  std::string mode = *mode_attr;
  if (mode == "bilinear") mode = "linear";
  n.attrs.set("mode", Attr::String(mode));
  ValueId scales = kNoValue;
  if (n.attrs.has("scales")) {
    KILN_ASSIGN_OR_RETURN(std::vector<float> s, n.attrs.GetFloats("scales"));
    n.attrs.erase("scales");
    n.inputs.resize(1);
    KILN_RETURN_IF_ERROR(ctx.SetConstantInput(2, Tensor::FromVector(s)));
    scales = n.inputs[2];
  } else if (n.inputs.size() >= 2) {
    scales = n.inputs[1];
  }
  if (n.attrs.has("height_scale") || n.attrs.has("width_scale"))
    return Unimplemented("Upsample-1 (height_scale/width_scale) is not supported");
  if (n.inputs.empty() || n.inputs[0] == kNoValue) return InvalidArgument("input 0 (X) is required");
  n.op_type = "Resize";
  n.inputs = {n.inputs[0], kNoValue, scales};
  n.attrs.set("coordinate_transformation_mode", Attr::String("asymmetric"));
  if (mode == "nearest") n.attrs.set("nearest_mode", Attr::String("floor"));
  return Status::OK();
}

// Ops before opset 7/10/11 differ only in defaults that the current form keeps.
Status DropLegacyAttrs(NormalizeContext& ctx) {
  ctx.node().attrs.erase("consumed_inputs");
  return Status::OK();
}

// LpPool-1 / GlobalLpPool-1 took `p` as a FLOAT; later opsets as an INT.
Status NormalizeLpPool(NormalizeContext& ctx) {
  AttrMap& attrs = ctx.node().attrs;
  const Attr* p = attrs.find("p");
  if (!p || p->type != Attr::Type::kFloat) return Status::OK();
  const float v = p->f;
  if (!(v >= 1) || v != std::floor(v) || v > 1e6f) return Unimplemented("LpPool with non-integer p = ", v);
  attrs.set("p", Attr::Int(static_cast<int64_t>(v)));
  return Status::OK();
}

// RoiAlign-10 had no coordinate_transformation_mode and behaved as 'output_half_pixel'
// (no half-pixel shift); opset 16 made 'half_pixel' the default.
Status NormalizeRoiAlign(NormalizeContext& ctx) {
  if (ctx.opset() < 16 && !ctx.node().attrs.has("coordinate_transformation_mode"))
    ctx.node().attrs.set("coordinate_transformation_mode", Attr::String("output_half_pixel"));
  return Status::OK();
}

}  // namespace

void RegisterConvPoolNormalizers(NormalizerTable& t) {
  t.Add("Upsample", &NormalizeUpsample);
  t.Add("Resize", &NormalizeUpsample);
  t.Add("MaxPool", &DropLegacyAttrs);
  t.Add("AveragePool", &DropLegacyAttrs);
  t.Add("LpPool", &NormalizeLpPool);
  t.Add("GlobalLpPool", &NormalizeLpPool);
  t.Add("RoiAlign", &NormalizeRoiAlign);
}

}  // namespace kiln
