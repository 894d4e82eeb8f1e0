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

}  // namespace kiln
