// Reference kernels of the tensor family that create tensors from shapes or attributes:
// Shape, Size, ConstantOfShape, Constant, Range, OneHot, EyeLike, Trilu.
#include <algorithm>
#include <cmath>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "backends/ref/ops/tensor_util.h"
#include "base/checked_math.h"
#include "ir/op_schema.h"
#include "ir/ops/tensor_geometry.h"

namespace kiln {

namespace {

using ref::CopyElement;
using ref::DimProduct;
using ref::IntsInput;
using ref::ScalarInput;
using ref::TensorInputs;

Status ShapeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t start, ctx.attrs().GetInt("start", 0));
  KILN_ASSIGN_OR_RETURN(int64_t end, ctx.attrs().GetInt("end", x.rank()));
  const DimRange range = ComputeShapeRange(start, end, x.rank());
  ctx.set_output(0, Tensor::FromVector(std::vector<int64_t>(x.dims().begin() + range.begin, x.dims().begin() + range.end)));
  return Status::OK();
}

Status SizeKernel(RefContext& ctx) {
  ctx.set_output(0, Tensor::Scalar<int64_t>(ctx.input(0).numel()));
  return Status::OK();
}

Status ConstantOfShapeKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, IntsInput(ctx, 0, "input"));
  Tensor value = Tensor::Scalar<float>(0.f);
  if (const Attr* a = ctx.attrs().find("value")) {
    if (a->type != Attr::Type::kTensor || a->t.numel() != 1) return InvalidArgument("attribute 'value' must be a one-element tensor");
    value = a->t;
  }
  for (int64_t d : shape)
    if (d < 0) return InvalidArgument("input has a negative dimension ", d);
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(value.dtype(), shape, "output"));
  for (int64_t i = 0; i < y.numel(); ++i) CopyElement(y, i, value, 0);
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Constant's value from whichever value* attribute it has (exactly one, checked by inference).
StatusOr<Tensor> ConstantValue(const AttrMap& attrs) {
  for (const auto& [name, a] : attrs.all()) {
    if (name == "value") return attrs.RequireTensor("value");
    if (name == "value_float") { KILN_ASSIGN_OR_RETURN(float f, attrs.GetFloat(name, 0)); return Tensor::Scalar(f); }
    if (name == "value_int") { KILN_ASSIGN_OR_RETURN(int64_t i, attrs.GetInt(name, 0)); return Tensor::Scalar<int64_t>(i); }
    if (name == "value_string") { KILN_ASSIGN_OR_RETURN(std::string s, attrs.GetString(name, "")); return Tensor::Scalar<std::string>(s); }
    if (name == "value_floats") { KILN_ASSIGN_OR_RETURN(auto v, attrs.GetFloats(name)); return Tensor::FromVector(v); }
    if (name == "value_ints") { KILN_ASSIGN_OR_RETURN(auto v, attrs.GetInts(name)); return Tensor::FromVector(v); }
    if (name == "value_strings") { KILN_ASSIGN_OR_RETURN(auto v, attrs.GetStrings(name)); return Tensor::FromVector(v); }
    if (name == "sparse_value") return Unimplemented("Constant with attribute 'sparse_value' is not supported");
  }
  return InvalidArgument("Constant needs one of the attributes value, value_float(s), value_int(s), value_string(s)");
}

Status ConstantKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Tensor t, ConstantValue(ctx.attrs()));
  ctx.set_output(0, std::move(t));
  return Status::OK();
}

// An integer scalar's value, exact for int64.
int64_t IntValue(const Tensor& t) {
  return t.dtype() == DType::kInt64 ? t.data<int64_t>()[0] : static_cast<int64_t>(t.GetAsDouble(0));
}

// Range's element count, max(ceil((limit - start) / delta), 0): exact in 128-bit for
// integers, in double for floats (as NumPy's arange computes it).
StatusOr<int64_t> RangeCount(const Tensor& start, const Tensor& limit, const Tensor& delta) {
  double n;
  if (IsInteger(start.dtype())) {
    const __int128 span = static_cast<__int128>(IntValue(limit)) - IntValue(start), d = IntValue(delta);
    if (d == 0) return InvalidArgument("input 'delta' must not be 0");
    __int128 q = span / d;
    if (q * d != span && ((span > 0) == (d > 0))) ++q;  // round a positive quotient up
    n = static_cast<double>(q);
  } else {
    const double s = start.GetAsDouble(0), l = limit.GetAsDouble(0), d = delta.GetAsDouble(0);
    if (d == 0) return InvalidArgument("input 'delta' must not be 0");
    n = std::ceil((l - s) / d);
    if (std::isnan(n)) return InvalidArgument("Range inputs must be finite");
  }
  n = std::max(0.0, n);
  if (n > static_cast<double>(kMaxElements)) return InvalidArgument("Range would produce ", n, " elements");
  return static_cast<int64_t>(n);
}

Status RangeKernel(RefContext& ctx) {
  for (int i = 0; i < 3; ++i)
    if (ctx.input(i).numel() != 1) return InvalidArgument("start, limit and delta must be scalars");
  const Tensor &start = ctx.input(0), &limit = ctx.input(1), &delta = ctx.input(2);
  if (limit.dtype() != start.dtype() || delta.dtype() != start.dtype())
    return InvalidArgument("start, limit and delta must have one type");
  if (!IsInteger(start.dtype()) && !IsFloat(start.dtype())) return InvalidArgument("Range needs numeric inputs");
  KILN_ASSIGN_OR_RETURN(int64_t n, RangeCount(start, limit, delta));
  Tensor y(start.dtype(), {n});
  for (int64_t i = 0; i < n; ++i) {
    if (start.dtype() == DType::kInt64) {
      y.data<int64_t>()[i] = IntValue(start) + i * IntValue(delta);  // stays within [start, limit)
    } else if (IsInteger(start.dtype())) {
      ref::StoreDouble(y, i, static_cast<double>(IntValue(start) + i * IntValue(delta)));
    } else {
      ref::StoreDouble(y, i, start.GetAsDouble(0) + static_cast<double>(i) * delta.GetAsDouble(0));
    }
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status OneHotKernel(RefContext& ctx) {
  const Tensor& indices = ctx.input(0);
  const Tensor& values = ctx.input(2);
  KILN_ASSIGN_OR_RETURN(int64_t depth, ScalarInput(ctx, 1, "depth"));
  if (depth <= 0) return InvalidArgument("input 'depth' must be positive, got ", depth);
  if (values.numel() != 2) return InvalidArgument("input 'values' must have two elements [off, on]");
  if (!IsInteger(indices.dtype()) && !IsFloat(indices.dtype())) return InvalidArgument("input 'indices' must be numeric");
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, indices.rank() + 1));
  std::vector<int64_t> out_dims = indices.dims();
  out_dims.insert(out_dims.begin() + ax, depth);
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(values.dtype(), out_dims, "output"));
  const int64_t outer = DimProduct(indices.dims(), 0, ax), inner = DimProduct(indices.dims(), ax, indices.rank());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      // Indices in [-depth, depth) select a class (negative from the end); others none.
      const double v = std::trunc(indices.GetAsDouble(o * inner + i));
      const int64_t hot = (v >= -static_cast<double>(depth) && v < static_cast<double>(depth))
                              ? (v < 0 ? static_cast<int64_t>(v) + depth : static_cast<int64_t>(v)) : -1;
      for (int64_t k = 0; k < depth; ++k) CopyElement(y, (o * depth + k) * inner + i, values, k == hot ? 1 : 0);
    }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status EyeLikeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) return InvalidArgument("input must be 2-D, got ", x.ShapeString());
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("dtype", static_cast<int64_t>(x.dtype())));
  const DType out = static_cast<DType>(dt);
  if (!IsValidDType(static_cast<int32_t>(dt)) || (!IsInteger(out) && !IsFloat(out) && out != DType::kBool))
    return InvalidArgument("attribute 'dtype' ", dt, " is not a numeric type");
  KILN_ASSIGN_OR_RETURN(int64_t k, ctx.attrs().GetInt("k", 0));
  Tensor y(out, x.dims());
  for (int64_t r = 0; r < x.dim(0); ++r) {
    if (k > x.dim(1) || k < -x.dim(0)) break;  // diagonal entirely outside (and no overflow below)
    const int64_t c = r + k;
    if (c >= 0 && c < x.dim(1)) ref::StoreDouble(y, r * x.dim(1) + c, 1.0);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status TriluKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return InvalidArgument("input must have rank >= 2, got ", x.ShapeString());
  int64_t k = 0;
  if (ctx.has_input(1)) { KILN_ASSIGN_OR_RETURN(k, ScalarInput(ctx, 1, "k")); }
  KILN_ASSIGN_OR_RETURN(int64_t upper, ctx.attrs().GetInt("upper", 1));
  Tensor y(x.dtype(), x.dims());
  const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = i % cols, r = (i / cols) % rows;
    const bool keep = upper ? c - r >= k : c - r <= k;
    if (keep) CopyElement(y, i, x, i);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

namespace ref {

void RegisterTensorCreateKernels(RefKernelRegistry& r) {
  r.Add("", "Shape", &TensorInputs<ShapeKernel>);
  r.Add("", "Size", &TensorInputs<SizeKernel>);
  r.Add("", "ConstantOfShape", &TensorInputs<ConstantOfShapeKernel>);
  r.Add("", "Constant", &ConstantKernel);
  r.Add("", "Range", &TensorInputs<RangeKernel>);
  r.Add("", "OneHot", &TensorInputs<OneHotKernel>);
  r.Add("", "EyeLike", &TensorInputs<EyeLikeKernel>);
  r.Add("", "Trilu", &TensorInputs<TriluKernel>);
}

}  // namespace ref

}  // namespace kiln
