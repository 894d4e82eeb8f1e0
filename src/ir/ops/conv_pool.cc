// Convolution, pooling and resampling ops.
#include "base/checked_math.h"
#include "ir/op_schema.h"
#include "ir/ops/conv_pool_geometry.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// Kernel spatial dims of weights W (unknown dims read as 1; see KernelKnown). An explicit
// kernel_shape must agree with the known dims of W.
StatusOr<std::vector<int64_t>> KernelFromWeights(const InferenceContext& ctx, const Shape& w) {
  std::vector<int64_t> kernel;
  for (int i = 2; i < w.rank(); ++i) kernel.push_back(w.dim(i).known() ? w.dim(i).value : 1);
  if (ctx.attrs().has("kernel_shape")) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> attr, ctx.attrs().GetInts("kernel_shape"));
    if (attr.size() != kernel.size()) return InvalidArgument("attribute 'kernel_shape' has ", attr.size(), " entries for ", kernel.size(), " spatial dims");
    for (size_t i = 0; i < attr.size(); ++i)
      if (w.dim(static_cast<int>(i) + 2).known() && attr[i] != kernel[i])
        return InvalidArgument("attribute 'kernel_shape' does not match W ", w.ToString());
  }
  return kernel;
}

// Whether the kernel size is known statically (from kernel_shape or W).
bool KernelKnown(const InferenceContext& ctx, const Shape& w) {
  if (ctx.attrs().has("kernel_shape")) return true;
  for (int i = 2; i < w.rank(); ++i)
    if (!w.dim(i).known()) return false;
  return true;
}

// Spatial output dims of a windowed op over input x (N, C, spatial...).
StatusOr<std::vector<Dim>> WindowOutput(const InferenceContext& ctx, const Shape& x, const std::vector<int64_t>& kernel) {
  const int spatial = x.rank() - 2;
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, ReadWindowGeometry(ctx.attrs(), spatial, kernel));
  std::vector<Dim> out;
  for (int i = 0; i < spatial; ++i) {
    const Dim& d = x.dim(i + 2);
    KILN_ASSIGN_OR_RETURN(int64_t o, WindowOutputSize(g, i, d.known() ? d.value : -1));
    out.push_back(o >= 0 ? Dim(o) : Dim::Unknown());
  }
  return out;
}

Status InferConv(InferenceContext& ctx) {
  const bool qlinear = ctx.node().op_type == "QLinearConv";
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& w = ctx.input_type(qlinear ? 3 : 1);
  const DType out_dt = qlinear ? ctx.input_type(7).dtype : ctx.node().op_type == "ConvInteger" ? DType::kInt32 : x.dtype;
  if (!x.shape.has_rank() || !w.shape.has_rank()) { ctx.set_output(0, out_dt, Shape()); return Status::OK(); }
  if (x.shape.rank() < 3) return InvalidArgument("input X must have rank >= 3 (N, C, spatial...), got ", x.shape.ToString());
  if (w.shape.rank() != x.shape.rank()) return InvalidArgument("weights W ", w.shape.ToString(), " must have the rank of X ", x.shape.ToString());
  KILN_ASSIGN_OR_RETURN(int64_t group, ctx.attrs().GetInt("group", 1));
  if (group <= 0) return InvalidArgument("attribute 'group' must be positive");
  const Dim& c = x.shape.dim(1);
  const Dim& wc = w.shape.dim(1);
  int64_t wc_total = 0;  // checked: `group` comes from the model
  if (c.known() && wc.known() && (!CheckedMul(wc.value, group, &wc_total) || c.value != wc_total))
    return InvalidArgument("X has ", c.value, " channels but W expects ", wc.value, " x group ", group);
  const Dim& m = w.shape.dim(0);
  if (m.known() && m.value % group != 0) return InvalidArgument("output channels ", m.value, " not divisible by group ", group);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, KernelFromWeights(ctx, w.shape));
  KILN_ASSIGN_OR_RETURN(std::vector<Dim> sp, WindowOutput(ctx, x.shape, kernel));
  if (!KernelKnown(ctx, w.shape)) sp.assign(sp.size(), Dim::Unknown());
  std::vector<Dim> out = {x.shape.dim(0), m};
  out.insert(out.end(), sp.begin(), sp.end());
  ctx.set_output(0, out_dt, Shape(std::move(out)));
  return Status::OK();
}

Status InferConvTranspose(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& w = ctx.input_type(1);
  if (!x.shape.has_rank() || !w.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  if (x.shape.rank() < 3 || w.shape.rank() != x.shape.rank()) return InvalidArgument("X and W must have the same rank >= 3");
  const int spatial = x.shape.rank() - 2;
  KILN_ASSIGN_OR_RETURN(int64_t group, ctx.attrs().GetInt("group", 1));
  if (group <= 0) return InvalidArgument("attribute 'group' must be positive");
  const Dim& c = x.shape.dim(1);
  const Dim& wc = w.shape.dim(0);
  if (c.known() && wc.known() && c.value != wc.value) return InvalidArgument("X has ", c.value, " channels but W ", w.shape.ToString(), " expects ", wc.value);
  if (wc.known() && wc.value % group != 0) return InvalidArgument("input channels ", wc.value, " not divisible by group ", group);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, KernelFromWeights(ctx, w.shape));
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, ReadWindowGeometry(ctx.attrs(), spatial, kernel));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out_pad, ctx.attrs().GetInts("output_padding", std::vector<int64_t>(static_cast<size_t>(spatial), 0)));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out_shape, ctx.attrs().GetInts("output_shape"));
  if (static_cast<int>(out_pad.size()) != spatial) return InvalidArgument("attribute 'output_padding' has the wrong length");
  // output_shape lists the spatial dims, optionally preceded by N and C.
  if (!out_shape.empty() && out_shape.size() != static_cast<size_t>(spatial) && out_shape.size() != static_cast<size_t>(spatial + 2))
    return InvalidArgument("attribute 'output_shape' has ", out_shape.size(), " entries for ", spatial, " spatial dims");
  for (int64_t v : out_shape)
    if (v <= 0) return InvalidArgument("attribute 'output_shape' must be positive");
  int64_t out_c = -1;
  if (w.shape.dim(1).known() && !CheckedMul(w.shape.dim(1).value, group, &out_c))
    return InvalidArgument("attribute 'group' ", group, " is too large");
  std::vector<Dim> out = {x.shape.dim(0), out_c >= 0 ? Dim(out_c) : Dim::Unknown()};
  for (int i = 0; i < spatial; ++i) {
    if (!out_shape.empty()) {
      out.push_back(Dim(out_shape[out_shape.size() - static_cast<size_t>(spatial) + static_cast<size_t>(i)]));
      continue;
    }
    const Dim& d = x.shape.dim(i + 2);
    if (!d.known() || !KernelKnown(ctx, w.shape)) { out.push_back(Dim::Unknown()); continue; }
    const size_t a = static_cast<size_t>(i);
    const int64_t extent = (g.kernel[a] - 1) * g.dilations[a] + 1;
    int64_t o;
    if (g.auto_pad == "SAME_UPPER" || g.auto_pad == "SAME_LOWER") o = d.value * g.strides[a];
    else o = g.strides[a] * (d.value - 1) + out_pad[a] + extent - g.pads[a] - g.pads[a + static_cast<size_t>(spatial)];
    if (o <= 0) return InvalidArgument("output size ", o, " is not positive");
    out.push_back(Dim(o));
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferPool(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (!x.shape.has_rank()) {
    ctx.set_output(0, x.dtype, Shape());
    if (ctx.has_output(1)) ctx.set_output(1, DType::kInt64, Shape());
    return Status::OK();
  }
  if (x.shape.rank() < 3) return InvalidArgument("input must have rank >= 3, got ", x.shape.ToString());
  if (!ctx.attrs().has("kernel_shape")) return InvalidArgument("required attribute 'kernel_shape' is missing");
  KILN_ASSIGN_OR_RETURN(std::vector<Dim> sp, WindowOutput(ctx, x.shape, {}));
  std::vector<Dim> out = {x.shape.dim(0), x.shape.dim(1)};
  out.insert(out.end(), sp.begin(), sp.end());
  ctx.set_output(0, x.dtype, Shape(out));
  if (ctx.has_output(1)) ctx.set_output(1, DType::kInt64, Shape(out));
  return Status::OK();
}

Status InferGlobalPool(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  if (x.shape.rank() < 3) return InvalidArgument("input must have rank >= 3");
  std::vector<Dim> out = {x.shape.dim(0), x.shape.dim(1)};
  for (int i = 2; i < x.shape.rank(); ++i) out.push_back(Dim(1));
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

// MaxUnpool: output_shape input when constant, else the shape the pooling had as input.
Status InferMaxUnpool(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (x.shape.has_rank() && x.shape.rank() < 3) return InvalidArgument("input X must have rank >= 3, got ", x.shape.ToString());
  if (!IsInteger(ctx.input_type(1).dtype)) return InvalidArgument("input 'I' must be int64");
  if (!ctx.attrs().has("kernel_shape")) return InvalidArgument("required attribute 'kernel_shape' is missing");
  if (ctx.has_input(2)) {
    if (const Tensor* s = ctx.input_value(2)) {
      KILN_ASSIGN_OR_RETURN(std::vector<int64_t> d, s->ToInt64Vector());
      if (x.shape.has_rank() && static_cast<int>(d.size()) != x.shape.rank())
        return InvalidArgument("input 'output_shape' has ", d.size(), " entries for rank ", x.shape.rank());
      for (int64_t v : d)
        if (v < 0) return InvalidArgument("input 'output_shape' must be non-negative");
      ctx.set_output(0, x.dtype, Shape::FromDims(d));
      return Status::OK();
    }
    ctx.set_output(0, x.dtype, x.shape.has_rank() ? Shape::OfRank(x.shape.rank()) : Shape());
    return Status::OK();
  }
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  const int spatial = x.shape.rank() - 2;
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, ReadWindowGeometry(ctx.attrs(), spatial, {}));
  std::vector<Dim> out = {x.shape.dim(0), x.shape.dim(1)};
  for (int i = 0; i < spatial; ++i) {
    const Dim& d = x.shape.dim(i + 2);
    if (!d.known()) { out.push_back(Dim::Unknown()); continue; }
    KILN_ASSIGN_OR_RETURN(int64_t o, UnpoolOutputSize(g, i, d.value));
    out.push_back(Dim(o));
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

// Resize: static output dims when the scales/sizes input is a known constant (an empty
// tensor counts as absent, as in Resize-11/13 models that pass sizes after an empty scales).
Status InferResize(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  const int r = x.shape.rank();
  KILN_ASSIGN_OR_RETURN(std::vector<int> axes, ResizeAxes(ctx.attrs(), r));
  KILN_ASSIGN_OR_RETURN(std::string policy, ctx.attrs().GetString("keep_aspect_ratio_policy", "stretch"));
  KILN_ASSIGN_OR_RETURN(std::string mode, ctx.attrs().GetString("mode", "nearest"));
  if (mode != "nearest" && mode != "linear" && mode != "cubic") return InvalidArgument("attribute 'mode' has unknown value '", mode, "'");
  const Tensor* scales = ctx.has_input(2) ? ctx.input_value(2) : nullptr;
  const Tensor* sizes = ctx.has_input(3) ? ctx.input_value(3) : nullptr;
  const bool scales_unknown = ctx.has_input(2) && !scales, sizes_unknown = ctx.has_input(3) && !sizes;
  if (scales && scales->numel() == 0) scales = nullptr;
  if (sizes && sizes->numel() == 0) sizes = nullptr;
  if (!scales && !sizes) {
    if (scales_unknown || sizes_unknown) { ctx.set_output(0, x.dtype, Shape::OfRank(r)); return Status::OK(); }
    return InvalidArgument("one of inputs 'scales' and 'sizes' is required");
  }
  if (scales && sizes) return InvalidArgument("only one of inputs 'scales' and 'sizes' may be given");
  std::vector<int64_t> in;
  for (const Dim& d : x.shape.dims()) in.push_back(d.known() ? d.value : -1);
  std::vector<double> sc;
  std::vector<int64_t> sz;
  if (scales) for (int64_t i = 0; i < scales->numel(); ++i) sc.push_back(scales->GetAsDouble(i));
  if (sizes) { KILN_ASSIGN_OR_RETURN(sz, sizes->ToInt64Vector()); }
  KILN_ASSIGN_OR_RETURN(ResizeTarget t, ComputeResizeTarget(in, axes, scales ? &sc : nullptr, sizes ? &sz : nullptr, policy));
  std::vector<Dim> out = x.shape.dims();
  for (int ax : axes) {
    const size_t a = static_cast<size_t>(ax);
    if (t.dims[a] >= 0) out[a] = Dim(t.dims[a]);
    else if (!(scales && t.scales[a] == 1.0)) out[a] = Dim::Unknown();  // scale 1 keeps a symbolic dim
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

// RoiAlign: X [N,C,H,W], rois [R,4], batch_indices [R] -> [R,C,output_height,output_width].
// MaxRoiPool: X [N,C,H,W], rois [R,5] -> [R,C,pooled_shape...].
Status InferRoiPool(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& rois = ctx.input_type(1);
  const bool align = ctx.node().op_type == "RoiAlign";
  std::vector<int64_t> pooled;
  if (align) {
    KILN_ASSIGN_OR_RETURN(int64_t oh, ctx.attrs().GetInt("output_height", 1));
    KILN_ASSIGN_OR_RETURN(int64_t ow, ctx.attrs().GetInt("output_width", 1));
    pooled = {oh, ow};
    KILN_ASSIGN_OR_RETURN(std::string mode, ctx.attrs().GetString("mode", "avg"));
    if (mode != "avg" && mode != "max") return InvalidArgument("attribute 'mode' has unknown value '", mode, "'");
  } else {
    if (!ctx.attrs().has("pooled_shape")) return InvalidArgument("required attribute 'pooled_shape' is missing");
    KILN_ASSIGN_OR_RETURN(pooled, ctx.attrs().GetInts("pooled_shape"));
  }
  if (pooled.size() != 2 || pooled[0] <= 0 || pooled[1] <= 0) return InvalidArgument("the pooled output size must be 2 positive values");
  if (x.shape.has_rank() && x.shape.rank() != 4) return InvalidArgument("input X must be 4-D, got ", x.shape.ToString());
  const int64_t roi_width = align ? 4 : 5;
  if (rois.shape.has_rank() && (rois.shape.rank() != 2 || (rois.shape.dim(1).known() && rois.shape.dim(1).value != roi_width)))
    return InvalidArgument("input 'rois' must be [num_rois, ", roi_width, "], got ", rois.shape.ToString());
  if (align) {
    const TypeInfo& bi = ctx.input_type(2);
    if (!IsInteger(bi.dtype)) return InvalidArgument("input 'batch_indices' must be int64");
    if (bi.shape.has_rank() && bi.shape.rank() != 1) return InvalidArgument("input 'batch_indices' must be 1-D");
  }
  Dim n = rois.shape.has_rank() ? rois.shape.dim(0) : Dim::Unknown();
  Dim c = x.shape.has_rank() ? x.shape.dim(1) : Dim::Unknown();
  ctx.set_output(0, x.dtype, Shape({n, c, Dim(pooled[0]), Dim(pooled[1])}));
  return Status::OK();
}

Status InferGridSample(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& grid = ctx.input_type(1);
  KILN_ASSIGN_OR_RETURN(std::string mode, ctx.attrs().GetString("mode", "bilinear"));
  KILN_ASSIGN_OR_RETURN(std::string pad, ctx.attrs().GetString("padding_mode", "zeros"));
  if (mode != "bilinear" && mode != "nearest" && mode != "bicubic") return InvalidArgument("attribute 'mode' has unknown value '", mode, "'");
  if (pad != "zeros" && pad != "border" && pad != "reflection") return InvalidArgument("attribute 'padding_mode' has unknown value '", pad, "'");
  if (x.shape.has_rank() && x.shape.rank() != 4) return InvalidArgument("input X must be 4-D, got ", x.shape.ToString());
  if (grid.shape.has_rank() && (grid.shape.rank() != 4 || (grid.shape.dim(3).known() && grid.shape.dim(3).value != 2)))
    return InvalidArgument("input 'grid' must be [N, H_out, W_out, 2], got ", grid.shape.ToString());
  const bool xr = x.shape.has_rank(), gr = grid.shape.has_rank();
  ctx.set_output(0, x.dtype, Shape({xr ? x.shape.dim(0) : gr ? grid.shape.dim(0) : Dim::Unknown(), xr ? x.shape.dim(1) : Dim::Unknown(),
                                    gr ? grid.shape.dim(1) : Dim::Unknown(), gr ? grid.shape.dim(2) : Dim::Unknown()}));
  return Status::OK();
}

}  // namespace

void RegisterConvPoolSchemas(OpRegistry& r) {
  r.Add(OpSchema{"Conv", "", 2, 3, 1, 1, InferConv, FusionClass::kComplexOutFusable});
  r.Add(OpSchema{"ConvInteger", "", 2, 4, 1, 1, InferConv, FusionClass::kOpaque});
  r.Add(OpSchema{"QLinearConv", "", 8, 9, 1, 1, InferConv, FusionClass::kOpaque});
  r.Add(OpSchema{"ConvTranspose", "", 2, 3, 1, 1, InferConvTranspose, FusionClass::kComplexOutFusable});
  r.Add(OpSchema{"MaxPool", "", 1, 1, 1, 2, InferPool, FusionClass::kOpaque});
  r.Add(OpSchema{"AveragePool", "", 1, 1, 1, 1, InferPool, FusionClass::kOpaque});
  r.Add(OpSchema{"LpPool", "", 1, 1, 1, 1, InferPool, FusionClass::kOpaque});
  r.Add(OpSchema{"GlobalAveragePool", "", 1, 1, 1, 1, InferGlobalPool, FusionClass::kReduction});
  r.Add(OpSchema{"GlobalMaxPool", "", 1, 1, 1, 1, InferGlobalPool, FusionClass::kReduction});
  r.Add(OpSchema{"GlobalLpPool", "", 1, 1, 1, 1, InferGlobalPool, FusionClass::kReduction});
  r.Add(OpSchema{"MaxUnpool", "", 2, 3, 1, 1, InferMaxUnpool, FusionClass::kOpaque});
  r.Add(OpSchema{"LRN", "", 1, 1, 1, 1, InferSameAsInput0, FusionClass::kOpaque});
  r.Add(OpSchema{"Resize", "", 1, 4, 1, 1, InferResize, FusionClass::kOpaque});
  r.Add(OpSchema{"RoiAlign", "", 3, 3, 1, 1, InferRoiPool, FusionClass::kOpaque});
  r.Add(OpSchema{"MaxRoiPool", "", 2, 2, 1, 1, InferRoiPool, FusionClass::kOpaque});
  r.Add(OpSchema{"GridSample", "", 2, 2, 1, 1, InferGridSample, FusionClass::kOpaque});
}

}  // namespace kiln
