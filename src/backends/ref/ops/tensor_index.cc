// Reference kernels of the tensor family, indexing part: Gather, GatherElements, GatherND,
// Scatter/ScatterElements, ScatterND, Compress, NonZero. Every index read from data is
// range-checked (negative indices count from the end where ONNX allows them).
#include <algorithm>
#include <type_traits>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/tensor_util.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

using ref::CheckIndex;
using ref::CopyElement;
using ref::DimProduct;
using ref::IntsInput;
using ref::TensorInputs;
using ref::Unravel;

Status GatherKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  const int64_t n = x.dim(ax);
  for (int64_t& i : idx) { KILN_ASSIGN_OR_RETURN(i, CheckIndex(i, n, "Gather")); }
  std::vector<int64_t> out_dims(x.dims().begin(), x.dims().begin() + ax);
  for (int64_t d : ctx.input(1).dims()) out_dims.push_back(d);
  for (int d = ax + 1; d < x.rank(); ++d) out_dims.push_back(x.dim(d));
  const int64_t outer = DimProduct(x.dims(), 0, ax), inner = DimProduct(x.dims(), ax + 1, x.rank());
  Tensor y(x.dtype(), out_dims);
  const int64_t m = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t k = 0; k < inner; ++k)
        CopyElement(y, (o * m + j) * inner + k, x, (o * n + idx[static_cast<size_t>(j)]) * inner + k);
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Offset in `x` addressed by element i of an indices tensor of GatherElements/ScatterElements:
// its own position, with the coordinate along `ax` replaced by the index value.
StatusOr<int64_t> ElementOffset(const Tensor& x, const std::vector<int64_t>& pos, int ax, int64_t index,
                                const std::vector<int64_t>& strides, const char* op) {
  int64_t off = 0;
  for (int d = 0; d < x.rank(); ++d) {
    int64_t p = pos[static_cast<size_t>(d)];
    if (d == ax) {
      KILN_ASSIGN_OR_RETURN(p, CheckIndex(index, x.dim(d), op));
    } else if (p >= x.dim(d)) {
      return OutOfRange("indices shape exceeds the data in dimension ", d);
    }
    off += p * strides[static_cast<size_t>(d)];
  }
  return off;
}

Status GatherElementsKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  if (indices.rank() != x.rank()) return InvalidArgument("input 'indices' must have the data's rank ", x.rank());
  Tensor y(x.dtype(), indices.dims());
  const std::vector<int64_t> strides = StridesOf(x.dims());
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    Unravel(i, indices.dims(), pos);
    KILN_ASSIGN_OR_RETURN(int64_t off, ElementOffset(x, pos, ax, idx[static_cast<size_t>(i)], strides, "GatherElements"));
    CopyElement(y, i, x, off);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// The index tuples of GatherND/ScatterND (last axis of `indices`) checked against `x`.
// batch_dims leading axes of indices and data are matched one to one.
Status CheckTupleShape(const Tensor& x, const Tensor& indices, int64_t batch_dims) {
  if (indices.rank() < 1) return InvalidArgument("input 'indices' must have rank >= 1");
  const int64_t last = indices.dim(indices.rank() - 1);
  if (batch_dims < 0 || batch_dims >= indices.rank() || batch_dims > x.rank())
    return InvalidArgument("attribute 'batch_dims' ", batch_dims, " does not fit the input ranks");
  if (last < 1 || batch_dims + last > x.rank())
    return InvalidArgument("indices' last dimension (", last, ") does not fit data of rank ", x.rank());
  for (int d = 0; d < batch_dims; ++d)
    if (indices.dim(d) != x.dim(d)) return InvalidArgument("batch dimension ", d, " differs between data and indices");
  return Status::OK();
}

Status GatherNDKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t b, ctx.attrs().GetInt("batch_dims", 0));
  KILN_RETURN_IF_ERROR(CheckTupleShape(x, indices, b));
  const int bd = static_cast<int>(b);
  const int64_t last = indices.dim(indices.rank() - 1);
  std::vector<int64_t> out_dims(indices.dims().begin(), indices.dims().end() - 1);
  for (int64_t d = b + last; d < x.rank(); ++d) out_dims.push_back(x.dim(static_cast<int>(d)));
  const int64_t slice = DimProduct(x.dims(), static_cast<int>(b + last), x.rank());
  const int64_t batch = DimProduct(x.dims(), 0, bd);
  const int64_t tuples = DimProduct(indices.dims(), bd, indices.rank() - 1);  // per batch
  const std::vector<int64_t> strides = StridesOf(x.dims());
  const int64_t batch_stride = DimProduct(x.dims(), bd, x.rank());
  Tensor y(x.dtype(), out_dims);
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t t = 0; t < tuples; ++t) {
      const int64_t tuple = bi * tuples + t;
      int64_t off = bi * batch_stride;
      for (int64_t k = 0; k < last; ++k) {
        const int axis = static_cast<int>(b + k);
        KILN_ASSIGN_OR_RETURN(int64_t i, CheckIndex(idx[static_cast<size_t>(tuple * last + k)], x.dim(axis), "GatherND"));
        off += i * strides[static_cast<size_t>(axis)];
      }
      for (int64_t s = 0; s < slice; ++s) CopyElement(y, tuple * slice + s, x, off + s);
    }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

StatusOr<Reduction> ParseReduction(const AttrMap& attrs) {
  KILN_ASSIGN_OR_RETURN(std::string red, attrs.GetString("reduction", "none"));
  if (red == "none") return Reduction::kNone;
  if (red == "add") return Reduction::kAdd;
  if (red == "mul") return Reduction::kMul;
  if (red == "max") return Reduction::kMax;
  if (red == "min") return Reduction::kMin;
  return InvalidArgument("attribute 'reduction' has unknown value '", red, "'");
}

// a (op) b in the element type: integers wrap like NumPy's, halves compute in float.
template <typename T>
T Reduce(T a, T b, Reduction red) {
  if constexpr (std::is_same_v<T, bool>) {
    return (red == Reduction::kAdd || red == Reduction::kMax) ? (a || b) : (a && b);
  } else if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    switch (red) {
      case Reduction::kAdd: return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
      case Reduction::kMul: return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
      case Reduction::kMax: return std::max(a, b);
      case Reduction::kMin: return std::min(a, b);
      case Reduction::kNone: break;
    }
    return b;
  } else {
    const double x = ToDouble(a), y = ToDouble(b);
    switch (red) {
      case Reduction::kAdd: return FromDouble<T>(x + y);
      case Reduction::kMul: return FromDouble<T>(x * y);
      case Reduction::kMax: return FromDouble<T>(std::max(x, y));
      case Reduction::kMin: return FromDouble<T>(std::min(x, y));
      case Reduction::kNone: break;
    }
    return b;
  }
}

// y[off] = y[off] (reduction) u[ui]; plain assignment for kNone.
Status ScatterUpdate(Tensor& y, int64_t off, const Tensor& u, int64_t ui, Reduction red) {
  if (red == Reduction::kNone) {
    CopyElement(y, off, u, ui);
    return Status::OK();
  }
  const bool numeric = VisitNumeric(y.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    y.data<T>()[off] = Reduce<T>(y.data<T>()[off], u.data<T>()[ui], red);
  });
  if (!numeric) return InvalidArgument("attribute 'reduction' needs numeric data, got ", DTypeName(y.dtype()));
  return Status::OK();
}

Status ScatterElementsKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(Reduction red, ParseReduction(ctx.attrs()));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  if (indices.dims() != updates.dims() || indices.rank() != x.rank())
    return InvalidArgument("indices and updates must have the same shape and the data's rank");
  if (updates.dtype() != x.dtype()) return InvalidArgument("input 'updates' must have the data's type");
  Tensor y = x.Clone();
  const std::vector<int64_t> strides = StridesOf(x.dims());
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < indices.numel(); ++i) {
    Unravel(i, indices.dims(), pos);
    KILN_ASSIGN_OR_RETURN(int64_t off, ElementOffset(x, pos, ax, idx[static_cast<size_t>(i)], strides, "ScatterElements"));
    KILN_RETURN_IF_ERROR(ScatterUpdate(y, off, updates, i, red));
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status ScatterNDKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(Reduction red, ParseReduction(ctx.attrs()));
  KILN_RETURN_IF_ERROR(CheckTupleShape(x, indices, 0));
  if (updates.dtype() != x.dtype()) return InvalidArgument("input 'updates' must have the data's type");
  const int64_t last = indices.dim(indices.rank() - 1);
  // updates.shape == indices.shape[:-1] + data.shape[last:]
  std::vector<int64_t> want(indices.dims().begin(), indices.dims().end() - 1);
  for (int64_t d = last; d < x.rank(); ++d) want.push_back(x.dim(static_cast<int>(d)));
  if (updates.dims() != want)
    return InvalidArgument("input 'updates' has shape ", DimsToString(updates.dims()), ", expected ", DimsToString(want));
  const int64_t slice = DimProduct(x.dims(), static_cast<int>(last), x.rank());
  const int64_t tuples = DimProduct(indices.dims(), 0, indices.rank() - 1);
  const std::vector<int64_t> strides = StridesOf(x.dims());
  Tensor y = x.Clone();
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = 0;
    for (int64_t k = 0; k < last; ++k) {
      const int axis = static_cast<int>(k);
      KILN_ASSIGN_OR_RETURN(int64_t i, CheckIndex(idx[static_cast<size_t>(t * last + k)], x.dim(axis), "ScatterND"));
      off += i * strides[static_cast<size_t>(axis)];
    }
    for (int64_t s = 0; s < slice; ++s) KILN_RETURN_IF_ERROR(ScatterUpdate(y, off + s, updates, t * slice + s, red));
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Element i of a condition/mask tensor is "true" (non-zero, for any numeric type).
bool IsSet(const Tensor& t, int64_t i) { return t.GetAsDouble(i) != 0; }

Status CompressKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& cond = ctx.input(1);
  if (cond.rank() != 1) return InvalidArgument("input 'condition' must be 1-D");
  if (cond.dtype() == DType::kString) return InvalidArgument("input 'condition' must be bool");
  const bool flat = !ctx.attrs().has("axis");
  int ax = 0;
  if (!flat) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
    KILN_ASSIGN_OR_RETURN(ax, NormalizeAxis(axis, x.rank()));
  }
  // Without an axis, Compress works on the flattened input.
  const std::vector<int64_t> dims = flat ? std::vector<int64_t>{x.numel()} : x.dims();
  const int64_t n = dims[static_cast<size_t>(ax)];
  if (cond.numel() > n) return InvalidArgument("input 'condition' has ", cond.numel(), " entries for an axis of ", n);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < cond.numel(); ++i)
    if (IsSet(cond, i)) keep.push_back(i);
  std::vector<int64_t> out_dims = dims;
  out_dims[static_cast<size_t>(ax)] = static_cast<int64_t>(keep.size());
  const int r = static_cast<int>(dims.size());
  const int64_t outer = DimProduct(dims, 0, ax), inner = DimProduct(dims, ax + 1, r);
  Tensor y(x.dtype(), out_dims);
  const int64_t m = static_cast<int64_t>(keep.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t k = 0; k < inner; ++k)
        CopyElement(y, (o * m + j) * inner + k, x, (o * n + keep[static_cast<size_t>(j)]) * inner + k);
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status NonZeroKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() == DType::kString || x.dtype() == DType::kComplex64 || x.dtype() == DType::kComplex128)
    return InvalidArgument("input must be numeric or bool, got ", DTypeName(x.dtype()));
  std::vector<int64_t> hits;
  for (int64_t i = 0; i < x.numel(); ++i)
    if (IsSet(x, i)) hits.push_back(i);
  const int64_t count = static_cast<int64_t>(hits.size());
  Tensor y(DType::kInt64, {x.rank(), count});
  std::vector<int64_t> pos;
  for (int64_t j = 0; j < count; ++j) {
    Unravel(hits[static_cast<size_t>(j)], x.dims(), pos);
    for (int d = 0; d < x.rank(); ++d) y.data<int64_t>()[d * count + j] = pos[static_cast<size_t>(d)];
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

namespace ref {

void RegisterTensorIndexKernels(RefKernelRegistry& r) {
  r.Add("", "Gather", &TensorInputs<GatherKernel>);
  r.Add("", "GatherElements", &TensorInputs<GatherElementsKernel>);
  r.Add("", "GatherND", &TensorInputs<GatherNDKernel>);
  r.Add("", "ScatterElements", &TensorInputs<ScatterElementsKernel>);
  r.Add("", "Scatter", &TensorInputs<ScatterElementsKernel>);  // deprecated alias (opset 9-10)
  r.Add("", "ScatterND", &TensorInputs<ScatterNDKernel>);
  r.Add("", "Compress", &TensorInputs<CompressKernel>);
  r.Add("", "NonZero", &TensorInputs<NonZeroKernel>);
}

}  // namespace ref

}  // namespace kiln
