// Static types of IR values: element type plus a shape whose dims may be symbolic
// ("batch") or unknown, and sequence/optional wrappers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/dtype.h"

namespace kiln {

// One dimension: a known size, a named symbol, or unknown (value < 0 and no symbol).
struct Dim {
  int64_t value = -1;
  std::string symbol;

  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT: implicit from a size
  static Dim Symbol(std::string s) { Dim d; d.symbol = std::move(s); return d; }
  static Dim Unknown() { return Dim(); }
  bool known() const { return value >= 0; }
  bool operator==(const Dim& o) const { return value == o.value && (known() || symbol == o.symbol); }
  std::string ToString() const;  // "224", "batch" or "?"
};

// A shape of known or unknown rank.
class Shape {
 public:
  Shape() = default;  // unknown rank
  explicit Shape(std::vector<Dim> dims) : dims_(std::move(dims)), has_rank_(true) {}
  static Shape FromDims(const std::vector<int64_t>& dims);
  static Shape UnknownRank() { return Shape(); }
  static Shape OfRank(int rank) { return Shape(std::vector<Dim>(static_cast<size_t>(rank))); }

  bool has_rank() const { return has_rank_; }
  int rank() const { return static_cast<int>(dims_.size()); }
  const std::vector<Dim>& dims() const { return dims_; }
  std::vector<Dim>& dims() { return dims_; }
  const Dim& dim(int i) const { return dims_[static_cast<size_t>(i)]; }
  // Known rank and every dim known.
  bool IsStatic() const;
  // The dims as sizes (requires IsStatic()).
  std::vector<int64_t> Sizes() const;
  // Product of dims if static and representable in int64, else nullopt.
  std::optional<int64_t> Numel() const;
  std::string ToString() const;  // "[batch,3,224,224]" or "[*]"
  bool operator==(const Shape& o) const { return has_rank_ == o.has_rank_ && dims_ == o.dims_; }

 private:
  std::vector<Dim> dims_;
  bool has_rank_ = false;
};

struct TypeInfo {
  enum class Kind { kTensor, kSequence, kOptional };
  Kind kind = Kind::kTensor;
  DType dtype = DType::kUndefined;  // for kTensor (kUndefined = not yet inferred)
  Shape shape;                      // for kTensor
  std::shared_ptr<TypeInfo> elem;   // for kSequence / kOptional

  static TypeInfo Tensor(DType dt, Shape s) { TypeInfo t; t.dtype = dt; t.shape = std::move(s); return t; }
  static TypeInfo Sequence(TypeInfo e) {
    TypeInfo t; t.kind = Kind::kSequence; t.elem = std::make_shared<TypeInfo>(std::move(e)); return t;
  }
  static TypeInfo Optional(TypeInfo e) {
    TypeInfo t; t.kind = Kind::kOptional; t.elem = std::make_shared<TypeInfo>(std::move(e)); return t;
  }
  bool is_tensor() const { return kind == Kind::kTensor; }
  std::string ToString() const;  // "float32[batch,1000]", "seq(float32[*])", "optional(...)"
};

}  // namespace kiln
