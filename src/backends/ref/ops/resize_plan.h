// Resize's separable interpolation plan (ONNX semantics, every mode and coordinate
// transformation): shared by the reference kernel and the CPU backend's own kernel, so
// both take exactly the same taps.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "base/status.h"
#include "ir/attr.h"
#include "ir/tensor.h"

namespace kiln {

struct ResizePlan {
  std::vector<int64_t> out_dims;
  // Per axis, per output index: the (input index, weight) taps (edge-clamped indices).
  std::vector<std::vector<std::vector<std::pair<int64_t, double>>>> taps;
  // Per axis, per output index: inside the crop (tf_crop_and_resize); else the output
  // element is `extrapolation`.
  std::vector<std::vector<bool>> inside;
  double extrapolation = 0;
};

// The plan for a Resize node's attributes and input dims; roi/scales/sizes may be null
// (absent). Errors name the attribute or input at fault.
StatusOr<ResizePlan> PlanResize(const AttrMap& attrs, const std::vector<int64_t>& in_dims, const Tensor* roi,
                                const Tensor* scales, const Tensor* sizes);

}  // namespace kiln
