// Index arithmetic shared by the tensor family's shape inference and its reference
// kernels, so both always agree on ONNX's clamping rules.
#pragma once

#include <algorithm>
#include <cstdint>

namespace kiln {

// One axis of a Slice: the first element read and how many elements are read.
struct SliceAxisRange {
  int64_t start = 0;
  int64_t length = 0;
};

// ONNX Slice on an axis of size n (step != 0): negative starts/ends count from the end;
// then starts clamp to [0, n] (step > 0) or [0, n-1] (step < 0), ends to [0, n] or [-1, n-1].
inline SliceAxisRange ComputeSliceAxis(int64_t start, int64_t end, int64_t step, int64_t n) {
  // Adding n to INT64_MIN-like values cannot overflow; clamp first when far out of range.
  start = std::clamp<int64_t>(start, -n - 1, n + 1);
  end = std::clamp<int64_t>(end, -n - 1, n + 1);
  if (start < 0) start += n;
  if (end < 0) end += n;
  SliceAxisRange r;
  if (step > 0) {
    r.start = std::clamp<int64_t>(start, 0, n);
    end = std::clamp<int64_t>(end, 0, n);
    r.length = end > r.start ? (end - r.start - 1) / step + 1 : 0;
  } else {
    r.start = std::clamp<int64_t>(start, 0, std::max<int64_t>(n - 1, 0));
    end = std::clamp<int64_t>(end, -1, n - 1);
    const int64_t magnitude = step == INT64_MIN ? INT64_MAX : -step;  // -INT64_MIN overflows
    r.length = (n > 0 && r.start > end) ? (r.start - end - 1) / magnitude + 1 : 0;
  }
  return r;
}

// Shape (opset 15) start/end attributes on a rank-r input: [begin, end) of the dims kept.
struct DimRange {
  int64_t begin = 0;
  int64_t end = 0;
};
inline DimRange ComputeShapeRange(int64_t start, int64_t end, int64_t r) {
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  return {start, std::max(start, end)};
}

}  // namespace kiln
