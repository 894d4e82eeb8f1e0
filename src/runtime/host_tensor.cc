// HostTensor (kiln/runtime.h).
#include <algorithm>
#include <new>
#include <string>

#include "base/aligned.h"
#include "base/checked_math.h"
#include "runtime/engine_impl.h"

namespace kiln {

const char* DataTypeName(DataType t) { return DTypeName(ToDType(t)); }
size_t DataTypeSize(DataType t) { return DTypeSize(ToDType(t)); }

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_)
    if (d < 0 || !CheckedMul(n, d, &n)) return -1;
  return n;
}

const char* ValueKindName(ValueKind k) {
  switch (k) {
    case ValueKind::kTensor:
      return "tensor";
    case ValueKind::kSequence:
      return "sequence";
    case ValueKind::kOptionalTensor:
      return "optional(tensor)";
    case ValueKind::kOptionalSequence:
      return "optional(sequence)";
  }
  return "?";
}

HostTensor HostTensor::Allocate(DataType dtype, std::vector<int64_t> shape) {
  HostTensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  const int64_t n = t.numel();
  int64_t bytes = 0;
  // No exception leaves the API: an impossible size or a failed allocation gives a tensor
  // that is not defined() (numel() > 0, no data).
  if (n < 0 || !CheckedMul(std::max<int64_t>(n, 1), static_cast<int64_t>(DataTypeSize(dtype)), &bytes)) return t;
  if (dtype == DataType::kString) {
    auto* strings = new (std::nothrow) std::string[static_cast<size_t>(std::max<int64_t>(n, 1))];
    if (strings == nullptr) return t;
    t.owner_ = std::shared_ptr<void>(strings, [](void* p) { delete[] static_cast<std::string*>(p); });
    t.data_ = strings;
    return t;
  }
  std::shared_ptr<void> p = AllocateAligned(static_cast<size_t>(bytes));
  if (!p) return t;
  t.data_ = p.get();
  t.owner_ = std::move(p);
  return t;
}

HostTensor HostTensor::Wrap(DataType dtype, std::vector<int64_t> shape, void* data) {
  HostTensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

}  // namespace kiln
