// A dense, C-ordered tensor with shared storage. Used for initializers in the IR and for
// every value the reference backend computes. Copies share the buffer (like a handle);
// use Clone() for a deep copy.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "ir/dtype.h"

namespace kiln {

class Tensor {
 public:
  Tensor() = default;  // undefined dtype, no storage ("empty handle")

  // Zero-filled tensor (empty strings for kString). dims must be valid: callers check
  // untrusted dims with Tensor::Create, which returns an error instead.
  Tensor(DType dtype, std::vector<int64_t> dims);
  static StatusOr<Tensor> Create(DType dtype, std::vector<int64_t> dims, const std::string& what);
  // A tensor over bytes it does not allocate (a caller's buffer, mmapped weights): `owner`
  // keeps them alive (may be null when the caller guarantees that). Not for strings.
  static Tensor FromExternal(DType dtype, std::vector<int64_t> dims, void* data, std::shared_ptr<void> owner);

  template <typename T>
  static Tensor Scalar(T v) {
    Tensor t(DTypeOf<T>(), {});
    *t.data<T>() = v;
    return t;
  }
  template <typename T>
  static Tensor FromVector(const std::vector<T>& v, std::vector<int64_t> dims) {
    Tensor t(DTypeOf<T>(), std::move(dims));
    for (size_t i = 0; i < v.size() && i < static_cast<size_t>(t.numel()); ++i) t.data<T>()[i] = v[i];
    return t;
  }
  template <typename T>
  static Tensor FromVector(const std::vector<T>& v) {
    return FromVector(v, {static_cast<int64_t>(v.size())});
  }

  bool defined() const { return dtype_ != DType::kUndefined; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t dim(int i) const { return dims_[static_cast<size_t>(i)]; }
  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * DTypeSize(dtype_); }

  // Typed element access. T must be the storage type of dtype() (checked in debug builds).
  template <typename T>
  T* data() {
    CheckType(DTypeOf<T>());
    return static_cast<T*>(raw_);
  }
  template <typename T>
  const T* data() const {
    CheckType(DTypeOf<T>());
    return static_cast<const T*>(raw_);
  }
  template <typename T>
  std::span<T> span() { return {data<T>(), static_cast<size_t>(numel_)}; }
  template <typename T>
  std::span<const T> span() const { return {data<T>(), static_cast<size_t>(numel_)}; }

  void* raw_data() { return raw_; }
  const void* raw_data() const { return raw_; }

  // Same storage, other dims (numel must match).
  Tensor Reshaped(std::vector<int64_t> dims) const;
  // Deep copy.
  Tensor Clone() const;
  // Converts every element to `to` (ONNX Cast semantics for numeric types; strings parse/print).
  StatusOr<Tensor> CastTo(DType to) const;

  // Reads an int32/int64 tensor (any rank) as int64 values; error for other dtypes.
  StatusOr<std::vector<int64_t>> ToInt64Vector() const;
  // Element i converted to double (numeric dtypes only).
  double GetAsDouble(int64_t i) const;

  // "float32[1,3,224,224]"
  std::string ShapeString() const;

 private:
  void CheckType(DType t) const;
  DType dtype_ = DType::kUndefined;
  std::vector<int64_t> dims_;
  int64_t numel_ = 0;
  std::shared_ptr<void> storage_;  // owns raw_ (aligned bytes, or a std::string array)
  void* raw_ = nullptr;
};

// "[1,3,224,224]"
std::string DimsToString(std::span<const int64_t> dims);
// Row-major strides (in elements) of dims.
std::vector<int64_t> StridesOf(std::span<const int64_t> dims);

}  // namespace kiln
