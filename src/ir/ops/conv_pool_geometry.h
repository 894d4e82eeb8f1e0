// Output geometry shared by convolution and pooling (inference and kernels agree by
// construction): kernel extent, strides, dilations, pads, auto_pad and ceil_mode.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "ir/attr.h"

namespace kiln {

struct WindowGeometry {
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins then ends
  std::string auto_pad = "NOTSET";
  bool ceil_mode = false;
};

// Reads kernel_shape (or the given kernel), strides, dilations, pads, auto_pad, ceil_mode
// for `spatial` spatial dims; validates them (names the attribute on error).
StatusOr<WindowGeometry> ReadWindowGeometry(const AttrMap& attrs, int spatial, const std::vector<int64_t>& kernel);

// Output size of one spatial axis for input size `in`; resolves SAME_* pads into g.pads.
// `in` < 0 (unknown) gives -1.
StatusOr<int64_t> WindowOutputSize(WindowGeometry& g, int axis, int64_t in);

// MaxUnpool's default output size along one spatial axis: the size the pooling had as input,
// (in - 1) * stride + kernel - pads; an error when not positive.
StatusOr<int64_t> UnpoolOutputSize(const WindowGeometry& g, int axis, int64_t in);

// Resize's target: output dims and per-axis scales (1 on axes not resized).
struct ResizeTarget {
  std::vector<int64_t> dims;
  std::vector<double> scales;
};

// Attribute 'axes' of Resize normalized to [0, rank) (all axes when empty); duplicates are an error.
StatusOr<std::vector<int>> ResizeAxes(const AttrMap& attrs, int rank);

// Output of Resize for input dims `in` (-1 = unknown, giving -1) from exactly one of
// `scales` / `sizes` (one entry per axis in `axes`), honouring keep_aspect_ratio_policy.
StatusOr<ResizeTarget> ComputeResizeTarget(const std::vector<int64_t>& in, const std::vector<int>& axes,
                                           const std::vector<double>* scales, const std::vector<int64_t>* sizes,
                                           const std::string& policy);

}  // namespace kiln
