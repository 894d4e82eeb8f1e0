// Type-agnostic element copies for data-movement kernels (strings included).
#pragma once

#include <cstring>
#include <string>

#include "ir/tensor.h"

namespace kiln::ref {

// Copies element `si` of `src` into element `di` of `dst` (same dtype).
inline void CopyElement(Tensor& dst, int64_t di, const Tensor& src, int64_t si) {
  if (src.dtype() == DType::kString) {
    dst.data<std::string>()[di] = src.data<std::string>()[si];
    return;
  }
  const size_t e = DTypeSize(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw_data()) + di * e, static_cast<const char*>(src.raw_data()) + si * e, e);
}

// Multi-index <-> offset helpers.
inline void Unravel(int64_t off, const std::vector<int64_t>& dims, std::vector<int64_t>& idx) {
  idx.resize(dims.size());
  for (size_t i = dims.size(); i-- > 0;) {
    idx[i] = dims[i] ? off % dims[i] : 0;
    off = dims[i] ? off / dims[i] : 0;
  }
}

}  // namespace kiln::ref
