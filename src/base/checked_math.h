// Overflow-checked size arithmetic for sizes that come from untrusted input.
#pragma once

#include <cstdint>
#include <span>

#include "base/status.h"

namespace kiln {

// a*b into *out; false on overflow.
inline bool CheckedMul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
inline bool CheckedAdd(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

// The largest element count kiln accepts for one tensor (2^40: 4 TiB of fp32).
inline constexpr int64_t kMaxElements = int64_t{1} << 40;

// Product of dims; error if a dim is negative or the product exceeds kMaxElements.
// `what` names the tensor for the message.
StatusOr<int64_t> CheckedNumel(std::span<const int64_t> dims, const std::string& what);

}  // namespace kiln
