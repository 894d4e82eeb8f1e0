#include "ir/ops/conv_pool_geometry.h"

#include <algorithm>
#include <cmath>

#include "base/checked_math.h"
#include "ir/op_schema.h"

namespace kiln {

StatusOr<WindowGeometry> ReadWindowGeometry(const AttrMap& attrs, int spatial, const std::vector<int64_t>& kernel) {
  WindowGeometry g;
  KILN_ASSIGN_OR_RETURN(g.kernel, attrs.GetInts("kernel_shape", kernel));
  if (static_cast<int>(g.kernel.size()) != spatial)
    return InvalidArgument("attribute 'kernel_shape' has ", g.kernel.size(), " entries for ", spatial, " spatial dims");
  KILN_ASSIGN_OR_RETURN(g.strides, attrs.GetInts("strides", std::vector<int64_t>(static_cast<size_t>(spatial), 1)));
  KILN_ASSIGN_OR_RETURN(g.dilations, attrs.GetInts("dilations", std::vector<int64_t>(static_cast<size_t>(spatial), 1)));
  KILN_ASSIGN_OR_RETURN(g.pads, attrs.GetInts("pads", std::vector<int64_t>(static_cast<size_t>(2 * spatial), 0)));
  KILN_ASSIGN_OR_RETURN(g.auto_pad, attrs.GetString("auto_pad", "NOTSET"));
  KILN_ASSIGN_OR_RETURN(int64_t ceil_mode, attrs.GetInt("ceil_mode", 0));
  g.ceil_mode = ceil_mode != 0;
  if (static_cast<int>(g.strides.size()) != spatial) return InvalidArgument("attribute 'strides' has the wrong length");
  if (static_cast<int>(g.dilations.size()) != spatial) return InvalidArgument("attribute 'dilations' has the wrong length");
  if (static_cast<int>(g.pads.size()) != 2 * spatial) return InvalidArgument("attribute 'pads' has the wrong length");
  for (int i = 0; i < spatial; ++i) {
    if (g.kernel[static_cast<size_t>(i)] <= 0) return InvalidArgument("attribute 'kernel_shape' must be positive");
    if (g.strides[static_cast<size_t>(i)] <= 0) return InvalidArgument("attribute 'strides' must be positive");
    if (g.dilations[static_cast<size_t>(i)] <= 0) return InvalidArgument("attribute 'dilations' must be positive");
  }
  for (int64_t p : g.pads)
    if (p < 0) return InvalidArgument("attribute 'pads' must be non-negative");
  // Bounded so that extents and padded sizes below cannot overflow.
  constexpr int64_t kMaxAttr = int64_t{1} << 31;
  for (const auto* v : {&g.kernel, &g.strides, &g.dilations, &g.pads})
    for (int64_t e : *v)
      if (e > kMaxAttr) return InvalidArgument("window attribute value ", e, " is too large");
  if (g.auto_pad != "NOTSET" && g.auto_pad != "SAME_UPPER" && g.auto_pad != "SAME_LOWER" && g.auto_pad != "VALID")
    return InvalidArgument("attribute 'auto_pad' has unknown value '", g.auto_pad, "'");
  return g;
}

StatusOr<int64_t> WindowOutputSize(WindowGeometry& g, int axis, int64_t in) {
  const size_t a = static_cast<size_t>(axis), n = g.kernel.size();
  const int64_t extent = (g.kernel[a] - 1) * g.dilations[a] + 1, s = g.strides[a];
  if (in < 0) return int64_t{-1};
  if (g.auto_pad == "SAME_UPPER" || g.auto_pad == "SAME_LOWER") {
    const int64_t out = (in + s - 1) / s;
    const int64_t total = std::max<int64_t>(0, (out - 1) * s + extent - in);
    g.pads[a] = g.auto_pad == "SAME_UPPER" ? total / 2 : (total + 1) / 2;
    g.pads[a + n] = total - g.pads[a];
    return out;
  }
  if (g.auto_pad == "VALID") {
    g.pads[a] = g.pads[a + n] = 0;
  }
  const int64_t padded = in + g.pads[a] + g.pads[a + n];
  if (padded < extent) return InvalidArgument("the window (", extent, ") is larger than the padded input (", padded, ")");
  int64_t out;
  if (g.ceil_mode) {
    out = (padded - extent + s - 1) / s + 1;
    if ((out - 1) * s >= in + g.pads[a]) --out;  // the last window must start inside the input or left pad
  } else {
    out = (padded - extent) / s + 1;
  }
  return out;
}

StatusOr<int64_t> UnpoolOutputSize(const WindowGeometry& g, int axis, int64_t in) {
  const size_t a = static_cast<size_t>(axis), n = g.kernel.size();
  int64_t o = 0;
  if (!CheckedMul(in - 1, g.strides[a], &o) || !CheckedAdd(o, g.kernel[a] - g.pads[a] - g.pads[a + n], &o) || o <= 0 || o > kMaxElements)
    return InvalidArgument("MaxUnpool output size along spatial axis ", axis, " is not a valid size");
  return o;
}

StatusOr<std::vector<int>> ResizeAxes(const AttrMap& attrs, int rank) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> raw, attrs.GetInts("axes"));
  std::vector<int> axes;
  if (raw.empty())
    for (int i = 0; i < rank; ++i) axes.push_back(i);
  for (int64_t a : raw) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, rank, "axes"));
    if (std::find(axes.begin(), axes.end(), ax) != axes.end()) return InvalidArgument("attribute 'axes' repeats axis ", a);
    axes.push_back(ax);
  }
  return axes;
}

StatusOr<ResizeTarget> ComputeResizeTarget(const std::vector<int64_t>& in, const std::vector<int>& axes,
                                           const std::vector<double>* scales, const std::vector<int64_t>* sizes,
                                           const std::string& policy) {
  ResizeTarget t{in, std::vector<double>(in.size(), 1.0)};
  if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
    return InvalidArgument("attribute 'keep_aspect_ratio_policy' has unknown value '", policy, "'");
  if (scales) {
    if (scales->size() != axes.size()) return InvalidArgument("input 'scales' has ", scales->size(), " entries for ", axes.size(), " axes");
    for (size_t i = 0; i < axes.size(); ++i) {
      const double s = (*scales)[i];
      const size_t a = static_cast<size_t>(axes[i]);
      if (!(s > 0) || !std::isfinite(s)) return InvalidArgument("input 'scales' must be positive and finite, got ", s);
      t.scales[a] = s;
      if (in[a] >= 0) {
        const double o = std::floor(double(in[a]) * s);
        if (o > double(int64_t{1} << 40)) return InvalidArgument("input 'scales' makes axis ", a, " too large");
        t.dims[a] = static_cast<int64_t>(o);
      }
    }
    return t;
  }
  if (sizes->size() != axes.size()) return InvalidArgument("input 'sizes' has ", sizes->size(), " entries for ", axes.size(), " axes");
  for (int64_t s : *sizes)
    if (s < 0) return InvalidArgument("input 'sizes' must be non-negative, got ", s);
  if (policy == "stretch") {
    for (size_t i = 0; i < axes.size(); ++i) {
      const size_t a = static_cast<size_t>(axes[i]);
      t.dims[a] = (*sizes)[i];
      t.scales[a] = in[a] > 0 ? double((*sizes)[i]) / double(in[a]) : 1.0;
    }
    return t;
  }
  // One scale for all axes, the largest (not_larger) or smallest (not_smaller) one that
  // keeps every resized axis within / at least its requested size.
  double scale = policy == "not_larger" ? INFINITY : 0.0;
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t d = in[static_cast<size_t>(axes[i])];
    if (d < 0) {  // unknown input dim: the common scale is unknown
      for (int a : axes) t.dims[static_cast<size_t>(a)] = -1;
      return t;
    }
    const double s = d > 0 ? double((*sizes)[i]) / double(d) : 1.0;
    scale = policy == "not_larger" ? std::min(scale, s) : std::max(scale, s);
  }
  for (int ax : axes) {
    const size_t a = static_cast<size_t>(ax);
    t.scales[a] = scale;
    t.dims[a] = static_cast<int64_t>(std::round(scale * double(in[a])));
  }
  return t;
}

}  // namespace kiln
