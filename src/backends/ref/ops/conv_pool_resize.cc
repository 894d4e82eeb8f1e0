// Resize (and Upsample, normalized to Resize at import), following ONNX's reference
// implementation: separable 1-D interpolation along every axis, neighbours taken from the
// edge-padded input, coefficients per mode (nearest / linear / cubic).
#include <cmath>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "backends/ref/ops/tensor_util.h"
#include "ir/op_schema.h"
#include "ir/ops/conv_pool_geometry.h"
#include "backends/ref/ops/resize_plan.h"

namespace kiln {

namespace {

struct ResizeOptions {
  std::string mode, coord, nearest;
  double cubic_a = -0.75, extrapolation = 0;
  bool exclude_outside = false;
};

// The taps (input index, weight) of output coordinate `x` along one axis; false when the
// coordinate falls outside the crop (tf_crop_and_resize).
bool AxisTaps(const ResizeOptions& o, int64_t in, double scale, double x, double roi_start, double roi_end,
              std::vector<std::pair<int64_t, double>>& taps) {
  const double out_w = scale * double(in);
  double xo;
  if (o.coord == "align_corners") xo = out_w == 1 ? 0 : x * double(in - 1) / (out_w - 1);
  else if (o.coord == "asymmetric") xo = x / scale;
  else if (o.coord == "tf_crop_and_resize") {
    xo = out_w == 1 ? (roi_end - roi_start) * double(in - 1) / 2 : x * (roi_end - roi_start) * double(in - 1) / (out_w - 1);
    xo += roi_start * double(in - 1);
    if (xo < 0 || xo > double(in - 1)) return false;
  } else if (o.coord == "pytorch_half_pixel") xo = out_w == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
  else if (o.coord == "tf_half_pixel_for_nn") xo = (x + 0.5) / scale;
  else xo = (x + 0.5) / scale - 0.5;  // half_pixel
  const double fl = std::floor(xo);
  const bool integral = xo == fl;
  const double ratio = integral ? 1.0 : xo - fl;
  const int64_t left = static_cast<int64_t>(integral ? xo - 1 : fl);  // neighbour at or left of x, ratio in (0, 1]
  std::vector<double> coeffs;
  int64_t first;
  if (o.mode == "nearest") {
    first = left;
    bool right;
    if (integral || o.nearest == "ceil") right = true;
    else if (o.nearest == "round_prefer_ceil") right = ratio >= 0.5;
    else if (o.nearest == "floor") right = false;
    else right = ratio > 0.5;  // round_prefer_floor
    coeffs = {right ? 0.0 : 1.0, right ? 1.0 : 0.0};
  } else if (o.mode == "linear") {
    first = left;
    coeffs = {1 - ratio, ratio};
  } else {  // cubic
    first = left - 1;
    const double a = o.cubic_a, r = ratio, s = 1 - ratio;
    coeffs = {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a, ((a + 2) * r - (a + 3)) * r * r + 1,
              ((a + 2) * s - (a + 3)) * s * s + 1, ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a};
  }
  if (o.exclude_outside) {
    double sum = 0;
    for (size_t i = 0; i < coeffs.size(); ++i) {
      int64_t idx = first + static_cast<int64_t>(i);
      if (idx < 0 || idx >= in) coeffs[i] = 0;
      sum += coeffs[i];
    }
    if (sum != 0) for (double& c : coeffs) c /= sum;
  }
  taps.clear();
  for (size_t i = 0; i < coeffs.size(); ++i) {
    if (coeffs[i] == 0) continue;
    int64_t idx = std::min(std::max<int64_t>(first + static_cast<int64_t>(i), 0), in - 1);  // edge padding
    taps.emplace_back(idx, coeffs[i]);
  }
  return true;
}

Status ValidateOptions(const ResizeOptions& o) {
  if (o.mode != "nearest" && o.mode != "linear" && o.mode != "cubic")
    return InvalidArgument("attribute 'mode' has unknown value '", o.mode, "'");
  for (const char* c : {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn"})
    if (o.coord == c) {
      for (const char* n : {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"})
        if (o.nearest == n) return Status::OK();
      return InvalidArgument("attribute 'nearest_mode' has unknown value '", o.nearest, "'");
    }
  return InvalidArgument("attribute 'coordinate_transformation_mode' has unknown value '", o.coord, "'");
}

}  // namespace

StatusOr<ResizePlan> PlanResize(const AttrMap& attrs, const std::vector<int64_t>& in_dims, const Tensor* roi_t,
                                const Tensor* scales_t, const Tensor* sizes_t) {
  const int r = static_cast<int>(in_dims.size());
  ResizeOptions o;
  KILN_ASSIGN_OR_RETURN(o.mode, attrs.GetString("mode", "nearest"));
  KILN_ASSIGN_OR_RETURN(o.coord, attrs.GetString("coordinate_transformation_mode", "half_pixel"));
  KILN_ASSIGN_OR_RETURN(o.nearest, attrs.GetString("nearest_mode", "round_prefer_floor"));
  KILN_ASSIGN_OR_RETURN(float cubic_a, attrs.GetFloat("cubic_coeff_a", -0.75f));
  KILN_ASSIGN_OR_RETURN(float ev, attrs.GetFloat("extrapolation_value", 0.f));
  KILN_ASSIGN_OR_RETURN(int64_t excl, attrs.GetInt("exclude_outside", 0));
  KILN_ASSIGN_OR_RETURN(std::string policy, attrs.GetString("keep_aspect_ratio_policy", "stretch"));
  KILN_ASSIGN_OR_RETURN(std::vector<int> axes, ResizeAxes(attrs, r));
  o.cubic_a = cubic_a;
  o.extrapolation = ev;
  o.exclude_outside = excl != 0;
  KILN_RETURN_IF_ERROR(ValidateOptions(o));
  // An empty scales/sizes tensor counts as absent (Resize-11/13 pass sizes after an empty scales).
  const bool has_scales = scales_t != nullptr && scales_t->numel() > 0, has_sizes = sizes_t != nullptr && sizes_t->numel() > 0;
  if (has_scales == has_sizes) return InvalidArgument("exactly one of inputs 'scales' and 'sizes' must be given");
  std::vector<double> sc;
  std::vector<int64_t> sz;
  if (has_scales) for (int64_t i = 0; i < scales_t->numel(); ++i) sc.push_back(scales_t->GetAsDouble(i));
  if (has_sizes) { KILN_ASSIGN_OR_RETURN(sz, sizes_t->ToInt64Vector()); }
  KILN_ASSIGN_OR_RETURN(ResizeTarget target, ComputeResizeTarget(in_dims, axes, has_scales ? &sc : nullptr, has_sizes ? &sz : nullptr, policy));
  ResizePlan plan;
  plan.out_dims = target.dims;
  plan.extrapolation = o.extrapolation;
  const std::vector<int64_t>& od = target.dims;
  const std::vector<double>& scales = target.scales;
  std::vector<double> roi(static_cast<size_t>(2 * r), 0.0);
  for (int i = 0; i < r; ++i) roi[static_cast<size_t>(r + i)] = 1.0;
  if (o.coord == "tf_crop_and_resize" && roi_t != nullptr && roi_t->numel() > 0) {
    const Tensor& rt = *roi_t;
    if (rt.numel() == 2 * r) for (int i = 0; i < 2 * r; ++i) roi[static_cast<size_t>(i)] = rt.GetAsDouble(i);
    else if (rt.numel() == 2 * static_cast<int64_t>(axes.size()))
      for (size_t i = 0; i < axes.size(); ++i) {
        roi[static_cast<size_t>(axes[i])] = rt.GetAsDouble(static_cast<int64_t>(i));
        roi[static_cast<size_t>(r + axes[i])] = rt.GetAsDouble(static_cast<int64_t>(i + axes.size()));
      }
    else return InvalidArgument("'roi' has the wrong length");
  }
  // Taps per axis and output coordinate (separable).
  auto& taps = plan.taps;
  auto& inside = plan.inside;
  taps.resize(static_cast<size_t>(r));
  inside.resize(static_cast<size_t>(r));
  for (int ax = 0; ax < r; ++ax) {
    const size_t a = static_cast<size_t>(ax);
    taps[a].resize(static_cast<size_t>(od[a]));
    inside[a].resize(static_cast<size_t>(od[a]));
    for (int64_t i = 0; i < od[a]; ++i) {
      if (scales[a] == 1.0 && od[a] == in_dims[a] && o.coord != "tf_crop_and_resize") {
        taps[a][static_cast<size_t>(i)] = {{i, 1.0}};
        inside[a][static_cast<size_t>(i)] = true;
        continue;
      }
      inside[a][static_cast<size_t>(i)] = AxisTaps(o, in_dims[a], scales[a], double(i), roi[a], roi[a + static_cast<size_t>(r)],
                                                    taps[a][static_cast<size_t>(i)]);
    }
  }
  return plan;
}

namespace {

Status ResizeKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  const int r = x.rank();
  KILN_ASSIGN_OR_RETURN(ResizePlan plan, PlanResize(ctx.attrs(), x.dims(), ctx.has_input(1) ? &ctx.input(1) : nullptr,
                                                    ctx.has_input(2) ? &ctx.input(2) : nullptr,
                                                    ctx.has_input(3) ? &ctx.input(3) : nullptr));
  const std::vector<int64_t>& od = plan.out_dims;
  const auto& taps = plan.taps;
  const auto& inside = plan.inside;
  ResizeOptions o;
  o.extrapolation = plan.extrapolation;
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(x.dtype(), od, "output"));
  const std::vector<int64_t> strides = StridesOf(x.dims());
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    ref::Unravel(i, od, pos);
    bool ok = true;
    for (int ax = 0; ax < r && ok; ++ax) ok = inside[static_cast<size_t>(ax)][static_cast<size_t>(pos[static_cast<size_t>(ax)])];
    if (!ok) { ref::StoreDouble(y, i, o.extrapolation); continue; }
    // Sum over the tensor product of the per-axis taps.
    double acc = 0;
    std::vector<size_t> k(static_cast<size_t>(r), 0);
    while (true) {
      double w = 1;
      int64_t off = 0;
      for (int ax = 0; ax < r; ++ax) {
        const auto& t = taps[static_cast<size_t>(ax)][static_cast<size_t>(pos[static_cast<size_t>(ax)])][k[static_cast<size_t>(ax)]];
        w *= t.second;
        off += t.first * strides[static_cast<size_t>(ax)];
      }
      acc += w * x.GetAsDouble(off);
      int ax = r - 1;
      for (; ax >= 0; --ax) {
        size_t& kk = k[static_cast<size_t>(ax)];
        if (++kk < taps[static_cast<size_t>(ax)][static_cast<size_t>(pos[static_cast<size_t>(ax)])].size()) break;
        kk = 0;
      }
      if (ax < 0) break;
    }
    ref::StoreDouble(y, i, IsFloat(x.dtype()) ? acc : std::nearbyint(acc));
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

void RegisterResizeKernels(RefKernelRegistry& r) { r.Add("", "Resize", &ResizeKernel); }

}  // namespace kiln
