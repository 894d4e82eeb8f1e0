#include "ir/shape.h"

#include <sstream>

namespace kiln {

std::string Dim::ToString() const {
  if (known()) return std::to_string(value);
  return symbol.empty() ? "?" : symbol;
}

Shape Shape::FromDims(const std::vector<int64_t>& dims) {
  std::vector<Dim> d;
  d.reserve(dims.size());
  for (int64_t v : dims) d.emplace_back(v);
  return Shape(std::move(d));
}

bool Shape::IsStatic() const {
  if (!has_rank_) return false;
  for (const Dim& d : dims_)
    if (!d.known()) return false;
  return true;
}

std::vector<int64_t> Shape::Sizes() const {
  std::vector<int64_t> s;
  s.reserve(dims_.size());
  for (const Dim& d : dims_) s.push_back(d.value);
  return s;
}

std::optional<int64_t> Shape::Numel() const {
  if (!IsStatic()) return std::nullopt;
  int64_t n = 1;
  for (const Dim& d : dims_)
    if (__builtin_mul_overflow(n, d.value, &n)) return std::nullopt;  // no int64 count: unknown
  return n;
}

std::string Shape::ToString() const {
  if (!has_rank_) return "[*]";
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < dims_.size(); ++i) os << (i ? "," : "") << dims_[i].ToString();
  os << ']';
  return os.str();
}

std::string TypeInfo::ToString() const {
  switch (kind) {
    case Kind::kTensor: return std::string(DTypeName(dtype)) + shape.ToString();
    case Kind::kSequence: return "seq(" + (elem ? elem->ToString() : "?") + ")";
    case Kind::kOptional: return "optional(" + (elem ? elem->ToString() : "?") + ")";
  }
  return "?";
}

}  // namespace kiln
