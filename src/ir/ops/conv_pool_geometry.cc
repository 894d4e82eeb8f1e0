#include "ir/ops/conv_pool_geometry.h"

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

}  // namespace kiln
