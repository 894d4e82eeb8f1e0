// Convolution, pooling and resampling ops.
#include "ir/op_schema.h"
#include "ir/ops/conv_pool_geometry.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

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
  if (c.known() && wc.known() && c.value != wc.value * group)
    return InvalidArgument("X has ", c.value, " channels but W expects ", wc.value, " x group ", group);
  const Dim& m = w.shape.dim(0);
  if (m.known() && m.value % group != 0) return InvalidArgument("output channels ", m.value, " not divisible by group ", group);
  std::vector<int64_t> kernel;
  for (int i = 2; i < w.shape.rank(); ++i) kernel.push_back(w.shape.dim(i).known() ? w.shape.dim(i).value : 1);
  KILN_ASSIGN_OR_RETURN(std::vector<Dim> sp, WindowOutput(ctx, x.shape, kernel));
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
  std::vector<int64_t> kernel;
  for (int i = 2; i < w.shape.rank(); ++i) kernel.push_back(w.shape.dim(i).known() ? w.shape.dim(i).value : 1);
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, ReadWindowGeometry(ctx.attrs(), spatial, kernel));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out_pad, ctx.attrs().GetInts("output_padding", std::vector<int64_t>(static_cast<size_t>(spatial), 0)));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out_shape, ctx.attrs().GetInts("output_shape"));
  if (static_cast<int>(out_pad.size()) != spatial) return InvalidArgument("attribute 'output_padding' has the wrong length");
  std::vector<Dim> out = {x.shape.dim(0), w.shape.dim(1).known() ? Dim(w.shape.dim(1).value * group) : Dim::Unknown()};
  for (int i = 0; i < spatial; ++i) {
    if (!out_shape.empty()) {
      out.push_back(Dim(out_shape[out_shape.size() - static_cast<size_t>(spatial) + static_cast<size_t>(i)]));
      continue;
    }
    const Dim& d = x.shape.dim(i + 2);
    if (!d.known()) { out.push_back(Dim::Unknown()); continue; }
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

Status InferMaxUnpool(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (ctx.has_input(2)) {
    if (const Tensor* s = ctx.input_value(2)) {
      KILN_ASSIGN_OR_RETURN(std::vector<int64_t> d, s->ToInt64Vector());
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
    const size_t a = static_cast<size_t>(i);
    out.push_back(d.known() ? Dim((d.value - 1) * g.strides[a] + g.kernel[a] - g.pads[a] - g.pads[a + static_cast<size_t>(spatial)]) : Dim::Unknown());
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferResize(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  const int r = x.shape.rank();
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.attrs().GetInts("axes"));
  if (axes.empty()) for (int i = 0; i < r; ++i) axes.push_back(i);
  std::vector<Dim> out = x.shape.dims();
  if (ctx.has_input(3)) {
    const Tensor* s = ctx.input_value(3);
    if (!s) { ctx.set_output(0, x.dtype, Shape::OfRank(r)); return Status::OK(); }
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, s->ToInt64Vector());
    if (sizes.size() != axes.size()) return InvalidArgument("'sizes' has ", sizes.size(), " entries for ", axes.size(), " axes");
    KILN_ASSIGN_OR_RETURN(std::string policy, ctx.attrs().GetString("keep_aspect_ratio_policy", "stretch"));
    if (policy != "stretch") { ctx.set_output(0, x.dtype, Shape::OfRank(r)); return Status::OK(); }
    for (size_t i = 0; i < axes.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axes[i], r, "axes"));
      out[static_cast<size_t>(ax)] = Dim(sizes[i]);
    }
  } else if (ctx.has_input(2)) {
    const Tensor* s = ctx.input_value(2);
    if (!s) { ctx.set_output(0, x.dtype, Shape::OfRank(r)); return Status::OK(); }
    if (s->numel() != static_cast<int64_t>(axes.size())) return InvalidArgument("'scales' has ", s->numel(), " entries for ", axes.size(), " axes");
    for (size_t i = 0; i < axes.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axes[i], r, "axes"));
      const double sc = s->GetAsDouble(static_cast<int64_t>(i));
      if (!(sc > 0)) return InvalidArgument("'scales' must be positive");
      const Dim& d = x.shape.dim(ax);
      out[static_cast<size_t>(ax)] = d.known() ? Dim(static_cast<int64_t>(std::floor(double(d.value) * sc))) : (sc == 1 ? d : Dim::Unknown());
    }
  } else {
    return InvalidArgument("one of 'scales' and 'sizes' is required");
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferRoiPool(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& rois = ctx.input_type(1);
  const bool align = ctx.node().op_type == "RoiAlign";
  KILN_ASSIGN_OR_RETURN(int64_t oh, ctx.attrs().GetInt("output_height", 1));
  KILN_ASSIGN_OR_RETURN(int64_t ow, ctx.attrs().GetInt("output_width", 1));
  std::vector<int64_t> pooled = {oh, ow};
  if (!align) { KILN_ASSIGN_OR_RETURN(pooled, ctx.attrs().GetInts("pooled_shape")); }
  if (pooled.size() != 2) return InvalidArgument("pooled shape must have 2 entries");
  Dim n = rois.shape.has_rank() && rois.shape.rank() == 2 ? rois.shape.dim(0) : Dim::Unknown();
  Dim c = x.shape.has_rank() && x.shape.rank() == 4 ? x.shape.dim(1) : Dim::Unknown();
  ctx.set_output(0, x.dtype, Shape({n, c, Dim(pooled[0]), Dim(pooled[1])}));
  return Status::OK();
}

Status InferGridSample(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& grid = ctx.input_type(1);
  if (!x.shape.has_rank() || !grid.shape.has_rank() || x.shape.rank() != 4 || grid.shape.rank() != 4) {
    ctx.set_output(0, x.dtype, Shape::OfRank(4));
    return Status::OK();
  }
  ctx.set_output(0, x.dtype, Shape({x.shape.dim(0), x.shape.dim(1), grid.shape.dim(1), grid.shape.dim(2)}));
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
