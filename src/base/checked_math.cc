#include "base/checked_math.h"

namespace kiln {

StatusOr<int64_t> CheckedNumel(std::span<const int64_t> dims, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument(what, ": negative dimension ", d);
    if (!CheckedMul(n, d, &n) || n > kMaxElements)
      return InvalidArgument(what, ": the product of the dimensions overflows (more than 2^40 elements)");
  }
  return n;
}

}  // namespace kiln
