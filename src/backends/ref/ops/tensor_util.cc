#include "backends/ref/ops/tensor_util.h"

#include <cmath>
#include <type_traits>

#include "base/status.h"

namespace kiln::ref {

int64_t DimProduct(const std::vector<int64_t>& dims, int begin, int end) {
  int64_t p = 1;
  for (int d = begin; d < end; ++d) p *= dims[static_cast<size_t>(d)];
  return p;
}

StatusOr<std::vector<int64_t>> IntsInput(RefContext& ctx, int i, const char* what) {
  if (!ctx.has_input(i)) return InvalidArgument("input '", what, "' is required");
  auto v = ctx.input(i).ToInt64Vector();
  if (!v.ok()) return v.status().WithPrefix(StrCat("input '", what, "'"));
  return v;
}

StatusOr<int64_t> ScalarInput(RefContext& ctx, int i, const char* what) {
  if (!ctx.has_input(i)) return InvalidArgument("input '", what, "' is required");
  const Tensor& t = ctx.input(i);
  if (t.numel() != 1) return InvalidArgument("input '", what, "' must hold one value, has ", t.numel());
  if (!IsInteger(t.dtype()) && !IsFloat(t.dtype())) return InvalidArgument("input '", what, "' must be numeric");
  const double v = t.GetAsDouble(0);
  if (t.dtype() == DType::kInt64) return t.data<int64_t>()[0];  // exact beyond 2^53
  if (!std::isfinite(v) || std::fabs(v) > 9.2e18) return InvalidArgument("input '", what, "' is out of range");
  return static_cast<int64_t>(v);
}

StatusOr<int64_t> CheckIndex(int64_t i, int64_t n, const char* what) {
  if (i < -n || i >= n) return OutOfRange(what, " index ", i, " is out of range [", -n, ", ", n, ")");
  return i < 0 ? i + n : i;
}

namespace {

template <typename T>
int CompareValues(const T& a, const T& b) {
  if constexpr (std::is_same_v<T, std::string> || std::is_integral_v<T>) {
    return a < b ? -1 : (b < a ? 1 : 0);
  } else {
    const double x = ToDouble(a), y = ToDouble(b);
    const bool nx = std::isnan(x), ny = std::isnan(y);
    if (nx || ny) return nx == ny ? 0 : (nx ? 1 : -1);
    return x < y ? -1 : (y < x ? 1 : 0);
  }
}

}  // namespace

StatusOr<ElementCompare> MakeElementCompare(const Tensor& t) {
  ElementCompare cmp;
  auto make = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, std::complex<float>> && !std::is_same_v<T, std::complex<double>>) {
      const T* p = t.data<T>();
      cmp = [p](int64_t a, int64_t b) { return CompareValues<T>(p[a], p[b]); };
    }
  };
  VisitAny(t.dtype(), make);
  if (!cmp) return InvalidArgument("elements of type ", DTypeName(t.dtype()), " cannot be ordered");
  return cmp;
}

Tensor StridedCopy(const Tensor& x, const std::vector<int64_t>& out_dims, const std::vector<int64_t>& src_strides,
                   int64_t base) {
  Tensor y(x.dtype(), out_dims);
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < y.numel(); ++i) {
    Unravel(i, out_dims, idx);
    int64_t off = base;
    for (size_t a = 0; a < idx.size(); ++a) off += idx[a] * src_strides[a];
    CopyElement(y, i, x, off);
  }
  return y;
}

}  // namespace kiln::ref
