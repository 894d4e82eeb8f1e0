#include "ir/tensor.h"

#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

#include "base/aligned.h"
#include "base/checked_math.h"

namespace kiln {

namespace {

std::shared_ptr<void> Allocate(DType dtype, int64_t numel, void** raw) {
  if (dtype == DType::kString) {
    auto* s = new std::string[static_cast<size_t>(numel > 0 ? numel : 1)];
    *raw = s;
    return std::shared_ptr<void>(s, [](void* p) { delete[] static_cast<std::string*>(p); });
  }
  const size_t bytes = static_cast<size_t>(numel) * DTypeSize(dtype);
  std::shared_ptr<void> p = AllocateAligned(bytes, /*zeroed=*/true);
  if (!p) throw std::bad_alloc();
  *raw = p.get();
  return p;
}

}  // namespace

Tensor::Tensor(DType dtype, std::vector<int64_t> dims) : dtype_(dtype), dims_(std::move(dims)) {
  numel_ = 1;
  for (int64_t d : dims_) numel_ *= d;
  storage_ = Allocate(dtype_, numel_, &raw_);
}

Tensor Tensor::FromExternal(DType dtype, std::vector<int64_t> dims, void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.numel_ = 1;
  for (int64_t d : t.dims_) t.numel_ *= d;
  t.storage_ = owner ? std::move(owner) : std::shared_ptr<void>(data, [](void*) {});
  t.raw_ = data;
  return t;
}

StatusOr<Tensor> Tensor::Create(DType dtype, std::vector<int64_t> dims, const std::string& what) {
  if (dtype == DType::kUndefined || !IsValidDType(static_cast<int32_t>(dtype)))
    return InvalidArgument(what, ": invalid element type ", static_cast<int>(dtype));
  KILN_ASSIGN_OR_RETURN(int64_t n, CheckedNumel(dims, what));
  int64_t bytes;
  if (!CheckedMul(n, static_cast<int64_t>(DTypeSize(dtype)), &bytes) || bytes > (int64_t{1} << 40))
    return InvalidArgument(what, ": tensor too large");
  try {
    return Tensor(dtype, std::move(dims));
  } catch (const std::bad_alloc&) {
    return InvalidArgument(what, ": cannot allocate ", bytes, " bytes");
  }
}

void Tensor::CheckType(DType t) const {
  assert(t == dtype_ && "Tensor::data<T>() with the wrong T");
  (void)t;
}

Tensor Tensor::Reshaped(std::vector<int64_t> dims) const {
  Tensor t = *this;
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  assert(n == numel_);
  t.dims_ = std::move(dims);
  t.numel_ = n;
  return t;
}

Tensor Tensor::Clone() const {
  if (!defined()) return Tensor();
  Tensor t(dtype_, dims_);
  if (dtype_ == DType::kString) {
    for (int64_t i = 0; i < numel_; ++i) t.data<std::string>()[i] = data<std::string>()[i];
  } else if (nbytes() > 0) {
    std::memcpy(t.raw_, raw_, nbytes());
  }
  return t;
}

namespace {

template <typename From, typename To>
To ConvertOne(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return ToDouble(v) != 0.0;
  } else if constexpr (std::is_same_v<To, Float16> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(ToDouble(v)));
  } else if constexpr (std::is_floating_point_v<To>) {
    if constexpr (std::is_same_v<From, Float16> || std::is_same_v<From, BFloat16>) return static_cast<To>(static_cast<float>(v));
    else return static_cast<To>(v);
  } else {
    // float -> int: truncate toward zero; saturate out-of-range and NaN to avoid UB.
    if constexpr (std::is_integral_v<From>) {
      return static_cast<To>(v);
    } else {
      double d = ToDouble(v);
      if (std::isnan(d)) return To(0);
      constexpr double lo = static_cast<double>(std::numeric_limits<To>::lowest());
      constexpr double hi = static_cast<double>(std::numeric_limits<To>::max());
      if (d <= lo) return std::numeric_limits<To>::lowest();
      if (d >= hi) return std::numeric_limits<To>::max();
      return static_cast<To>(d);
    }
  }
}

std::string FormatFloat(double v, bool is_double) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "INF" : "-INF";
  // Shortest text that reads back to the same value (like NumPy's repr).
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (is_double ? std::strtod(buf, nullptr) == v : std::strtof(buf, nullptr) == static_cast<float>(v)) break;
  }
  return buf;
}

}  // namespace

StatusOr<Tensor> Tensor::CastTo(DType to) const {
  if (to == dtype_) return Clone();
  Tensor out(to, dims_);
  if (dtype_ == DType::kString) {
    bool ok = VisitNumeric(to, [&](auto tag) {
      using To = typename decltype(tag)::type;
      for (int64_t i = 0; i < numel_; ++i) {
        const std::string& s = data<std::string>()[i];
        double d;
        if (s == "NaN" || s == "nan") d = NAN;
        else if (s == "INF" || s == "inf" || s == "+INF") d = INFINITY;
        else if (s == "-INF" || s == "-inf") d = -INFINITY;
        else d = std::strtod(s.c_str(), nullptr);
        if constexpr (std::is_integral_v<To> && !std::is_same_v<To, bool>)
          out.data<To>()[i] = static_cast<To>(std::strtoll(s.c_str(), nullptr, 10));
        else
          out.data<To>()[i] = FromDouble<To>(d);
      }
    });
    if (!ok) return Unimplemented("Cast from string to ", DTypeName(to));
    return out;
  }
  if (to == DType::kString) {
    bool ok = VisitNumeric(dtype_, [&](auto tag) {
      using From = typename decltype(tag)::type;
      for (int64_t i = 0; i < numel_; ++i) {
        From v = data<From>()[i];
        std::string s;
        if constexpr (std::is_integral_v<From>) s = std::to_string(v);
        else s = FormatFloat(ToDouble(v), std::is_same_v<From, double>);
        out.data<std::string>()[i] = s;
      }
    });
    if (!ok) return Unimplemented("Cast from ", DTypeName(dtype_), " to string");
    return out;
  }
  bool ok = false;
  VisitNumeric(dtype_, [&](auto ftag) {
    using From = typename decltype(ftag)::type;
    ok = VisitNumeric(to, [&](auto ttag) {
      using To = typename decltype(ttag)::type;
      const From* src = data<From>();
      To* dst = out.data<To>();
      for (int64_t i = 0; i < numel_; ++i) dst[i] = ConvertOne<From, To>(src[i]);
    });
  });
  if (!ok) return Unimplemented("Cast from ", DTypeName(dtype_), " to ", DTypeName(to));
  return out;
}

StatusOr<std::vector<int64_t>> Tensor::ToInt64Vector() const {
  std::vector<int64_t> v(static_cast<size_t>(numel_));
  if (dtype_ == DType::kInt64) {
    for (int64_t i = 0; i < numel_; ++i) v[i] = data<int64_t>()[i];
  } else if (dtype_ == DType::kInt32) {
    for (int64_t i = 0; i < numel_; ++i) v[i] = data<int32_t>()[i];
  } else {
    return InvalidArgument("expected an int32 or int64 tensor, got ", DTypeName(dtype_));
  }
  return v;
}

double Tensor::GetAsDouble(int64_t i) const {
  double r = 0;
  VisitNumeric(dtype_, [&](auto tag) {
    using T = typename decltype(tag)::type;
    r = ToDouble(data<T>()[i]);
  });
  return r;
}

std::string Tensor::ShapeString() const { return std::string(DTypeName(dtype_)) + DimsToString(dims_); }

std::string DimsToString(std::span<const int64_t> dims) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < dims.size(); ++i) os << (i ? "," : "") << dims[i];
  os << ']';
  return os.str();
}

std::vector<int64_t> StridesOf(std::span<const int64_t> dims) {
  std::vector<int64_t> s(dims.size());
  int64_t acc = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

}  // namespace kiln
