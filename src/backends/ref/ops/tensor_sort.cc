// Reference kernels of the tensor family that order or scan along an axis: TopK, ArgMax,
// ArgMin, Unique, CumSum, ReverseSequence. Comparisons happen in the element type
// (exact for int64, lexicographic for strings); ties keep the lower index first.
#include <algorithm>
#include <numeric>
#include <type_traits>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/tensor_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

using ref::CopyElement;
using ref::DimProduct;
using ref::ElementCompare;
using ref::IntsInput;
using ref::ScalarInput;
using ref::TensorInputs;
using ref::Unravel;

// A tensor viewed as [outer, n, inner] around axis `ax`.
struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
  AxisView(const std::vector<int64_t>& dims, int ax)
      : outer(DimProduct(dims, 0, ax)), n(dims[static_cast<size_t>(ax)]),
        inner(DimProduct(dims, ax + 1, static_cast<int>(dims.size()))) {}
  int64_t Offset(int64_t o, int64_t j, int64_t i) const { return (o * n + j) * inner + i; }
};

Status TopKKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (ctx.input(1).numel() != 1) return InvalidArgument("input 'K' must have one element");
  KILN_ASSIGN_OR_RETURN(int64_t k, ScalarInput(ctx, 1, "K"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  KILN_ASSIGN_OR_RETURN(int64_t largest, ctx.attrs().GetInt("largest", 1));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  KILN_ASSIGN_OR_RETURN(ElementCompare cmp, ref::MakeElementCompare(x));
  const AxisView v(x.dims(), ax);
  if (k < 0 || k > v.n) return InvalidArgument("input 'K' = ", k, " is out of range for an axis of ", v.n);
  std::vector<int64_t> out_dims = x.dims();
  out_dims[static_cast<size_t>(ax)] = k;
  Tensor values(x.dtype(), out_dims), indices(DType::kInt64, out_dims);
  std::vector<int64_t> order(static_cast<size_t>(v.n));
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t i = 0; i < v.inner; ++i) {
      std::iota(order.begin(), order.end(), 0);
      // Equal values keep the lower index first (ONNX Runtime's and the spec's order): with
      // the index as tie-break the order is total, so the k first of a partial sort
      // (O(n log k): detection heads take the top 1000 of 100k scores) are the stable sort's.
      auto before = [&](int64_t a, int64_t b) {
        const int c = cmp(v.Offset(o, a, i), v.Offset(o, b, i));
        if (c != 0) return largest ? c > 0 : c < 0;
        return a < b;
      };
      std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t dst = (o * k + j) * v.inner + i, src = order[static_cast<size_t>(j)];
        CopyElement(values, dst, x, v.Offset(o, src, i));
        indices.data<int64_t>()[dst] = src;
      }
    }
  ctx.set_output(0, std::move(values));
  ctx.set_output(1, std::move(indices));
  return Status::OK();
}

Status ArgReduceKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int64_t keepdims, ctx.attrs().GetInt("keepdims", 1));
  KILN_ASSIGN_OR_RETURN(int64_t select_last, ctx.attrs().GetInt("select_last_index", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  KILN_ASSIGN_OR_RETURN(ElementCompare cmp, ref::MakeElementCompare(x));
  const bool is_max = ctx.node().op_type == "ArgMax";
  const AxisView v(x.dims(), ax);
  if (v.n == 0) return InvalidArgument("cannot reduce an empty axis");
  std::vector<int64_t> out_dims;
  for (int d = 0; d < x.rank(); ++d) {
    if (d != ax) out_dims.push_back(x.dim(d));
    else if (keepdims) out_dims.push_back(1);
  }
  Tensor y(DType::kInt64, out_dims);
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t i = 0; i < v.inner; ++i) {
      int64_t best = 0;
      for (int64_t j = 1; j < v.n; ++j) {
        const int c = cmp(v.Offset(o, j, i), v.Offset(o, best, i));
        const int better = is_max ? c : -c;
        if (better > 0 || (select_last && better == 0)) best = j;
      }
      y.data<int64_t>()[o * v.inner + i] = best;
    }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Unique over slices along an axis (or over single elements of the flattened input).
Status UniqueKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t sorted, ctx.attrs().GetInt("sorted", 1));
  int ax = 0;
  Tensor src = x.Reshaped({x.numel()});
  if (ctx.attrs().has("axis")) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
    KILN_ASSIGN_OR_RETURN(ax, NormalizeAxis(axis, x.rank()));
    src = x;
  }
  KILN_ASSIGN_OR_RETURN(ElementCompare cmp, ref::MakeElementCompare(src));
  const AxisView v(src.dims(), ax);
  // Lexicographic comparison of slices a and b (each read in C order of the other axes).
  auto slice_cmp = [&](int64_t a, int64_t b) {
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i)
        if (int c = cmp(v.Offset(o, a, i), v.Offset(o, b, i)); c != 0) return c;
    return 0;
  };
  std::vector<int64_t> order(static_cast<size_t>(v.n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return slice_cmp(a, b) < 0; });
  // Groups of equal slices: the first of each group is its first occurrence.
  std::vector<int64_t> firsts, group_of(static_cast<size_t>(v.n));
  for (size_t p = 0; p < order.size(); ++p) {
    if (p == 0 || slice_cmp(order[p - 1], order[p]) != 0) firsts.push_back(order[p]);
    group_of[static_cast<size_t>(order[p])] = static_cast<int64_t>(firsts.size()) - 1;
  }
  // Output order of the groups: by value (sorted) or by first occurrence.
  std::vector<int64_t> out_order(firsts.size());
  std::iota(out_order.begin(), out_order.end(), 0);
  if (!sorted)
    std::sort(out_order.begin(), out_order.end(),
              [&](int64_t a, int64_t b) { return firsts[static_cast<size_t>(a)] < firsts[static_cast<size_t>(b)]; });
  std::vector<int64_t> position(firsts.size());
  for (size_t r = 0; r < out_order.size(); ++r) position[static_cast<size_t>(out_order[r])] = static_cast<int64_t>(r);
  const int64_t m = static_cast<int64_t>(firsts.size());
  std::vector<int64_t> out_dims = src.dims();
  out_dims[static_cast<size_t>(ax)] = m;
  Tensor y(x.dtype(), out_dims), first_index(DType::kInt64, {m}), inverse(DType::kInt64, {v.n}), counts(DType::kInt64, {m});
  for (int64_t r = 0; r < m; ++r) {
    const int64_t j = firsts[static_cast<size_t>(out_order[static_cast<size_t>(r)])];
    first_index.data<int64_t>()[r] = j;
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i) CopyElement(y, (o * m + r) * v.inner + i, src, v.Offset(o, j, i));
  }
  for (int64_t j = 0; j < v.n; ++j) {
    const int64_t r = position[static_cast<size_t>(group_of[static_cast<size_t>(j)])];
    inverse.data<int64_t>()[j] = r;
    counts.data<int64_t>()[r]++;
  }
  ctx.set_output(0, std::move(y));
  ctx.set_output(1, std::move(first_index));
  ctx.set_output(2, std::move(inverse));
  ctx.set_output(3, std::move(counts));
  return Status::OK();
}

// Running sums in the element type's natural accumulator: wrapping integers (exact for
// int64), double for floating types.
template <typename T, bool = std::is_integral_v<T>>
struct CumSumAcc { using type = double; };
template <typename T>
struct CumSumAcc<T, true> { using type = std::make_unsigned_t<T>; };

template <typename T>
void CumSumTyped(const Tensor& x, Tensor& y, const AxisView& v, bool exclusive, bool reverse) {
  using Acc = typename CumSumAcc<T>::type;
  const T* in = x.data<T>();
  T* out = y.data<T>();
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t i = 0; i < v.inner; ++i) {
      Acc acc = 0;
      for (int64_t step = 0; step < v.n; ++step) {
        const int64_t off = v.Offset(o, reverse ? v.n - 1 - step : step, i);
        Acc value;
        if constexpr (std::is_integral_v<T>) value = static_cast<Acc>(in[off]);
        else value = ToDouble(in[off]);
        if (!exclusive) acc += value;
        if constexpr (std::is_integral_v<T>) out[off] = static_cast<T>(acc);
        else out[off] = FromDouble<T>(acc);
        if (exclusive) acc += value;
      }
    }
}

Status CumSumKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (ctx.input(1).rank() > 1 || ctx.input(1).numel() != 1) return InvalidArgument("input 'axis' must be a scalar");
  KILN_ASSIGN_OR_RETURN(int64_t axis, ScalarInput(ctx, 1, "axis"));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  KILN_ASSIGN_OR_RETURN(int64_t exclusive, ctx.attrs().GetInt("exclusive", 0));
  KILN_ASSIGN_OR_RETURN(int64_t reverse, ctx.attrs().GetInt("reverse", 0));
  if (x.dtype() == DType::kBool) return InvalidArgument("CumSum does not take bool input");
  Tensor y(x.dtype(), x.dims());
  const AxisView v(x.dims(), ax);
  const bool ok = VisitNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, bool>) CumSumTyped<T>(x, y, v, exclusive != 0, reverse != 0);
  });
  if (!ok) return InvalidArgument("CumSum needs numeric input, got ", DTypeName(x.dtype()));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status ReverseSequenceKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> lens, IntsInput(ctx, 1, "sequence_lens"));
  KILN_ASSIGN_OR_RETURN(int64_t batch_axis, ctx.attrs().GetInt("batch_axis", 1));
  KILN_ASSIGN_OR_RETURN(int64_t time_axis, ctx.attrs().GetInt("time_axis", 0));
  if (x.rank() < 2) return InvalidArgument("input must have rank >= 2");
  if ((batch_axis != 0 && batch_axis != 1) || (time_axis != 0 && time_axis != 1) || batch_axis == time_axis)
    return InvalidArgument("attributes 'batch_axis' and 'time_axis' must be 0 and 1");
  const int bax = static_cast<int>(batch_axis), tax = static_cast<int>(time_axis);
  if (static_cast<int64_t>(lens.size()) != x.dim(bax))
    return InvalidArgument("input 'sequence_lens' has ", lens.size(), " entries for a batch of ", x.dim(bax));
  for (int64_t len : lens)
    if (len < 0 || len > x.dim(tax)) return InvalidArgument("input 'sequence_lens' has ", len, ", out of [0, ", x.dim(tax), "]");
  Tensor y = x.Clone();
  const std::vector<int64_t> strides = StridesOf(x.dims());
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < x.numel(); ++i) {
    Unravel(i, x.dims(), pos);
    const int64_t len = lens[static_cast<size_t>(pos[static_cast<size_t>(bax)])];
    const int64_t t = pos[static_cast<size_t>(tax)];
    if (t >= len) continue;  // past the sequence: copied unchanged
    const int64_t src = i + (len - 1 - 2 * t) * strides[static_cast<size_t>(tax)];
    CopyElement(y, i, x, src);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

namespace ref {

void RegisterTensorSortKernels(RefKernelRegistry& r) {
  r.Add("", "TopK", &TensorInputs<TopKKernel>);
  r.Add("", "ArgMax", &TensorInputs<ArgReduceKernel>);
  r.Add("", "ArgMin", &TensorInputs<ArgReduceKernel>);
  r.Add("", "Unique", &TensorInputs<UniqueKernel>);
  r.Add("", "CumSum", &TensorInputs<CumSumKernel>);
  r.Add("", "ReverseSequence", &TensorInputs<ReverseSequenceKernel>);
}

}  // namespace ref

}  // namespace kiln
