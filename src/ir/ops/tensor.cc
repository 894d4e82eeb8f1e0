// Data-movement, shape and indexing ops. Inference is exact whenever the shape-like
// inputs are known constants (the driver propagates constants through Shape -> Gather ->
// Concat chains with the reference kernels), and keeps symbolic dims where ops preserve them.
#include <algorithm>

#include "base/checked_math.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/tensor_geometry.h"

namespace kiln {

namespace {

StatusOr<std::vector<int64_t>> ConstInts(const InferenceContext& ctx, int i) {
  const Tensor* t = ctx.input_value(i);
  if (t == nullptr) return NotFound("not constant");
  return t->ToInt64Vector();
}

Shape UnknownOfRank(int r) { return Shape::OfRank(r); }

// The output of an op whose rank is the length of a 1-D shape-like input (Reshape's
// `shape`, Expand's, ConstantOfShape's): that many unknown dims when the length is known
// and plausible, else unknown rank. The length comes from the model's declared types, so
// it is untrusted: a declared int64[2147483647] must not allocate 2^31 dims.
constexpr int64_t kMaxDeclaredRank = 1024;
Shape UnknownOfLength(const Dim& length, int64_t at_least = 0) {
  if (!length.known() || length.value < 0 || length.value > kMaxDeclaredRank) return Shape();
  return Shape::OfRank(static_cast<int>(std::max(length.value, at_least)));
}

// Constant indices into a dimension of known size are checked here, at build time: an index
// out of [-size, size) is the model's error, and the build (not the first run) must say so.
// `stride`/`first` pick which indices apply to this dimension (GatherND's index tuples).
Status CheckConstIndices(const InferenceContext& ctx, int input, const Dim& size, const char* what, int axis,
                         int64_t stride = 1, int64_t first = 0) {
  const Tensor* t = ctx.input_value(input);
  if (t == nullptr || !size.known() || t->numel() == 0) return Status::OK();
  if (t->dtype() != DType::kInt32 && t->dtype() != DType::kInt64) return Status::OK();
  const int64_t d = size.value;
  for (int64_t i = first; i < t->numel(); i += stride) {
    const int64_t v = t->dtype() == DType::kInt64 ? t->data<int64_t>()[i] : t->data<int32_t>()[i];
    if (v < -d || v >= d)
      return InvalidArgument("constant ", what, " holds ", v, " (element ", i, "), out of range for axis ", axis,
                             " of size ", d, " (valid: ", -d, " to ", d - 1, ")");
  }
  return Status::OK();
}

// Index-like inputs (indices, shapes, axes) must be int32 or int64.
Status CheckIndexType(const InferenceContext& ctx, int i, const char* what) {
  if (!ctx.has_input(i)) return Status::OK();
  const DType dt = ctx.input_type(i).dtype;
  if (dt != DType::kInt32 && dt != DType::kInt64 && dt != DType::kUndefined)
    return InvalidArgument("input '", what, "' must be int32 or int64, got ", DTypeName(dt));
  return Status::OK();
}

Status InferReshape(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "shape"));
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t allowzero, ctx.attrs().GetInt("allowzero", 0));
  auto shape = ConstInts(ctx, 1);
  if (!shape.ok()) {
    const TypeInfo& st = ctx.input_type(1);
    if (st.shape.has_rank() && st.shape.rank() == 1 && st.shape.dim(0).known())
      ctx.set_output(0, x.dtype, UnknownOfLength(st.shape.dim(0)));
    else
      ctx.set_output(0, x.dtype, Shape());
    return Status::OK();
  }
  if (allowzero && std::count(shape->begin(), shape->end(), 0) && std::count(shape->begin(), shape->end(), -1))
    return InvalidArgument("input 'shape' has both 0 and -1 with allowzero = 1");
  std::vector<Dim> out;
  int infer_at = -1;
  for (size_t i = 0; i < shape->size(); ++i) {
    int64_t d = (*shape)[i];
    if (d == -1) {
      if (infer_at >= 0) return InvalidArgument("shape has more than one -1");
      infer_at = static_cast<int>(i);
      out.push_back(Dim::Unknown());
    } else if (d == 0 && !allowzero) {
      if (!x.shape.has_rank() || static_cast<int>(i) >= x.shape.rank()) {
        if (x.shape.has_rank()) return InvalidArgument("shape[", i, "] = 0 copies a dimension the input does not have");
        out.push_back(Dim::Unknown());
      } else {
        out.push_back(x.shape.dim(static_cast<int>(i)));
      }
    } else if (d < 0) {
      return InvalidArgument("invalid shape value ", d);
    } else {
      out.push_back(Dim(d));
    }
  }
  if (infer_at >= 0 && x.shape.IsStatic()) {
    auto numel = x.shape.Numel();
    if (!numel) return InvalidArgument("input ", x.shape.ToString(), " has more elements than int64 can count");
    int64_t total = *numel, known = 1;
    bool all = true;
    for (size_t i = 0; i < out.size(); ++i)
      if (static_cast<int>(i) != infer_at) {
        if (!out[i].known()) all = false;
        else if (__builtin_mul_overflow(known, out[i].value, &known))
          return InvalidArgument("shape ", DimsToString(*shape), " has more elements than int64 can count");
      }
    if (all) {
      if (known == 0 || total % known != 0)
        return InvalidArgument("cannot reshape ", x.shape.ToString(), " to ", DimsToString(*shape));
      out[static_cast<size_t>(infer_at)] = Dim(total / known);
    }
  }
  Shape s(std::move(out));
  if (s.IsStatic() && x.shape.IsStatic() && s.Numel() != x.shape.Numel())
    return InvalidArgument("cannot reshape ", x.shape.ToString(), " to ", s.ToString());
  ctx.set_output(0, x.dtype, std::move(s));
  return Status::OK();
}

Status InferFlatten(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 1));
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, UnknownOfRank(2)); return Status::OK(); }
  int r = x.shape.rank();
  if (axis < -r || axis > r) return InvalidArgument("axis ", axis, " is out of range for rank ", r);
  if (axis < 0) axis += r;
  Dim a(1), b(1);
  for (int i = 0; i < r; ++i) {
    Dim& t = i < axis ? a : b;
    const Dim& d = x.shape.dim(i);
    if (t.known() && d.known()) t = Dim(t.value * d.value);
    else if (t.known() && t.value == 1) t = d;
    else if (!(d.known() && d.value == 1)) t = Dim::Unknown();
  }
  ctx.set_output(0, x.dtype, Shape({a, b}));
  return Status::OK();
}

Status InferSqueeze(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "axes"));
  const TypeInfo& x = ctx.input_type(0);
  std::vector<int64_t> axes;
  if (ctx.has_input(1)) {
    auto a = ConstInts(ctx, 1);
    if (!a.ok()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
    axes = *a;
  }
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  int r = x.shape.rank();
  std::vector<bool> drop(static_cast<size_t>(r), false);
  if (axes.empty()) {
    for (int i = 0; i < r; ++i) {
      if (!x.shape.dim(i).known()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
      drop[static_cast<size_t>(i)] = x.shape.dim(i).value == 1;
    }
  }
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, "axes"));
    if (x.shape.dim(ax).known() && x.shape.dim(ax).value != 1)
      return InvalidArgument("cannot squeeze axis ", a, " of size ", x.shape.dim(ax).value);
    drop[static_cast<size_t>(ax)] = true;
  }
  std::vector<Dim> out;
  for (int i = 0; i < r; ++i)
    if (!drop[static_cast<size_t>(i)]) out.push_back(x.shape.dim(i));
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferUnsqueeze(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "axes"));
  const TypeInfo& x = ctx.input_type(0);
  auto axes = ConstInts(ctx, 1);
  if (!axes.ok() || !x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  int r = x.shape.rank() + static_cast<int>(axes->size());
  std::vector<bool> ins(static_cast<size_t>(r), false);
  for (int64_t a : *axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, "axes"));
    if (ins[static_cast<size_t>(ax)]) return InvalidArgument("axes has a duplicate: ", a);
    ins[static_cast<size_t>(ax)] = true;
  }
  std::vector<Dim> out;
  int k = 0;
  for (int i = 0; i < r; ++i) out.push_back(ins[static_cast<size_t>(i)] ? Dim(1) : x.shape.dim(k++));
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferTranspose(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  int r = x.shape.rank();
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, ctx.attrs().GetInts("perm"));
  if (perm.empty()) for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int>(perm.size()) != r) return InvalidArgument("attribute 'perm' has ", perm.size(), " entries for rank ", r);
  std::vector<bool> seen(static_cast<size_t>(r), false);
  std::vector<Dim> out;
  for (int64_t p : perm) {
    if (p < 0 || p >= r || seen[static_cast<size_t>(p)]) return InvalidArgument("attribute 'perm' is not a permutation");
    seen[static_cast<size_t>(p)] = true;
    out.push_back(x.shape.dim(static_cast<int>(p)));
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferConcat(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().RequireInt("axis"));
  const DType dt = ctx.input_type(0).dtype;
  int rank = -1;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (ctx.input_type(i).dtype != dt) return InvalidArgument("input ", i, " has another element type");
    if (ctx.input_type(i).shape.has_rank()) {
      if (rank >= 0 && ctx.input_type(i).shape.rank() != rank) return InvalidArgument("inputs have different ranks");
      rank = ctx.input_type(i).shape.rank();
    }
  }
  if (rank < 0) { ctx.set_output(0, dt, Shape()); return Status::OK(); }
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, rank));
  std::vector<Dim> out(static_cast<size_t>(rank), Dim::Unknown());
  int64_t sum = 0;
  bool sum_known = true;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    const Shape& s = ctx.input_type(i).shape;
    if (!s.has_rank()) { sum_known = false; continue; }
    for (int d = 0; d < rank; ++d) {
      if (d == ax) {
        if (s.dim(d).known()) sum += s.dim(d).value;
        else sum_known = false;
        continue;
      }
      Dim& o = out[static_cast<size_t>(d)];
      const Dim& v = s.dim(d);
      if (v.known() && o.known() && v.value != o.value)
        return InvalidArgument("input ", i, " has dimension ", d, " = ", v.value, ", others ", o.value);
      if (v.known() || (!o.known() && o.symbol.empty())) o = v;
    }
  }
  out[static_cast<size_t>(ax)] = sum_known ? Dim(sum) : Dim::Unknown();
  ctx.set_output(0, dt, Shape(std::move(out)));
  return Status::OK();
}

Status InferSplit(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "split"));
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  const int n = ctx.num_outputs();
  if (!x.shape.has_rank()) {
    for (int i = 0; i < n; ++i) ctx.set_output(i, x.dtype, Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.shape.rank()));
  std::vector<int64_t> sizes;
  if (ctx.has_input(1)) {
    auto s = ConstInts(ctx, 1);
    if (s.ok()) {
      sizes = *s;
      if (static_cast<int>(sizes.size()) != n) return InvalidArgument("'split' has ", sizes.size(), " entries for ", n, " outputs");
      int64_t total = 0;
      for (int64_t v : sizes) {
        if (v < 0) return InvalidArgument("'split' has a negative size");
        total += v;
      }
      if (x.shape.dim(ax).known() && total != x.shape.dim(ax).value)
        return InvalidArgument("'split' sums to ", total, " but the axis has ", x.shape.dim(ax).value);
    }
  } else if (x.shape.dim(ax).known()) {
    int64_t d = x.shape.dim(ax).value, chunk = (d + n - 1) / n;
    for (int i = 0; i < n; ++i) sizes.push_back(std::max<int64_t>(0, std::min(chunk, d - chunk * i)));
  }
  for (int i = 0; i < n; ++i) {
    Shape s = x.shape;
    s.dims()[static_cast<size_t>(ax)] = sizes.empty() ? Dim::Unknown() : Dim(sizes[static_cast<size_t>(i)]);
    ctx.set_output(i, x.dtype, std::move(s));
  }
  return Status::OK();
}

Status InferSlice(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "starts"));
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 2, "ends"));
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 3, "axes"));
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 4, "steps"));
  const TypeInfo& x = ctx.input_type(0);
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  const int r = x.shape.rank();
  auto starts = ConstInts(ctx, 1), ends = ConstInts(ctx, 2);
  std::vector<int64_t> axes, steps;
  bool axes_known = true, steps_known = true;
  if (ctx.has_input(3)) { auto a = ConstInts(ctx, 3); axes_known = a.ok(); if (a.ok()) axes = *a; }
  if (ctx.has_input(4)) { auto s = ConstInts(ctx, 4); steps_known = s.ok(); if (s.ok()) steps = *s; }
  if (!starts.ok() || !ends.ok() || !axes_known || !steps_known) {
    Shape s = x.shape;
    if (!axes_known) for (auto& d : s.dims()) d = Dim::Unknown();
    else if (axes.empty()) for (auto& d : s.dims()) d = Dim::Unknown();
    else for (int64_t a : axes) { KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, "axes")); s.dims()[static_cast<size_t>(ax)] = Dim::Unknown(); }
    ctx.set_output(0, x.dtype, std::move(s));
    return Status::OK();
  }
  if (axes.empty()) for (size_t i = 0; i < starts->size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts->size(), 1);
  if (starts->size() != ends->size() || axes.size() != starts->size() || steps.size() != starts->size())
    return InvalidArgument("starts, ends, axes and steps must have the same length");
  Shape s = x.shape;
  for (size_t i = 0; i < axes.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axes[i], r, "axes"));
    if (steps[i] == 0) return InvalidArgument("input 'steps' must not contain 0");
    const Dim& d = x.shape.dim(ax);
    const bool whole_axis = (*starts)[i] == 0 && (*ends)[i] >= INT32_MAX && steps[i] == 1;  // keeps a symbol
    if (d.known()) s.dims()[static_cast<size_t>(ax)] = Dim(ComputeSliceAxis((*starts)[i], (*ends)[i], steps[i], d.value).length);
    else if (!whole_axis) s.dims()[static_cast<size_t>(ax)] = Dim::Unknown();
  }
  ctx.set_output(0, x.dtype, std::move(s));
  return Status::OK();
}

Status InferGather(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "indices"));
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& idx = ctx.input_type(1);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  if (!x.shape.has_rank() || !idx.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.shape.rank()));
  KILN_RETURN_IF_ERROR(CheckConstIndices(ctx, 1, x.shape.dim(ax), "indices", ax));
  std::vector<Dim> out;
  for (int i = 0; i < ax; ++i) out.push_back(x.shape.dim(i));
  for (const Dim& d : idx.shape.dims()) out.push_back(d);
  for (int i = ax + 1; i < x.shape.rank(); ++i) out.push_back(x.shape.dim(i));
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferGatherElements(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "indices"));
  if (ctx.input_type(0).shape.has_rank()) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, ctx.input_type(0).shape.rank()));
    KILN_RETURN_IF_ERROR(CheckConstIndices(ctx, 1, ctx.input_type(0).shape.dim(ax), "indices", ax));
  }
  ctx.set_output(0, ctx.input_type(0).dtype, ctx.input_type(1).shape);
  return Status::OK();
}

Status InferGatherND(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "indices"));
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& idx = ctx.input_type(1);
  KILN_ASSIGN_OR_RETURN(int64_t b, ctx.attrs().GetInt("batch_dims", 0));
  if (x.shape.has_rank() && x.shape.rank() < 1) return InvalidArgument("data must have rank >= 1");
  if (idx.shape.has_rank() && idx.shape.rank() < 1) return InvalidArgument("indices must have rank >= 1");
  if (b < 0 || (x.shape.has_rank() && b >= x.shape.rank()) || (idx.shape.has_rank() && b >= idx.shape.rank()))
    return InvalidArgument("batch_dims ", b, " must be in [0, min(rank of data, rank of indices))");
  if (!x.shape.has_rank() || !idx.shape.has_rank() || !idx.shape.dim(idx.shape.rank() - 1).known()) {
    ctx.set_output(0, x.dtype, Shape());
    return Status::OK();
  }
  const int64_t last = idx.shape.dim(idx.shape.rank() - 1).value;
  if (last < 1 || b + last > x.shape.rank())
    return InvalidArgument("indices' last dimension ", last, " must be in [1, rank of data - batch_dims]");
  for (int64_t j = 0; j < last; ++j)
    KILN_RETURN_IF_ERROR(CheckConstIndices(ctx, 1, x.shape.dim(static_cast<int>(b + j)), "indices",
                                           static_cast<int>(b + j), last, j));
  std::vector<Dim> out;
  for (int i = 0; i < idx.shape.rank() - 1; ++i) out.push_back(idx.shape.dim(i));
  for (int64_t i = b + last; i < x.shape.rank(); ++i) out.push_back(x.shape.dim(static_cast<int>(i)));
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferExpand(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "shape"));
  const TypeInfo& x = ctx.input_type(0);
  auto shape = ConstInts(ctx, 1);
  if (!shape.ok()) {
    const TypeInfo& st = ctx.input_type(1);
    if (st.shape.has_rank() && st.shape.rank() == 1 && st.shape.dim(0).known() && x.shape.has_rank())
      ctx.set_output(0, x.dtype, UnknownOfLength(st.shape.dim(0), x.shape.rank()));
    else
      ctx.set_output(0, x.dtype, Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(Shape s, BroadcastShapes({x.shape, Shape::FromDims(*shape)}));
  ctx.set_output(0, x.dtype, std::move(s));
  return Status::OK();
}

Status InferTile(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "repeats"));
  const TypeInfo& x = ctx.input_type(0);
  auto reps = ConstInts(ctx, 1);
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  if (!reps.ok()) { ctx.set_output(0, x.dtype, UnknownOfRank(x.shape.rank())); return Status::OK(); }
  if (static_cast<int>(reps->size()) != x.shape.rank()) return InvalidArgument("'repeats' must have one entry per input dimension");
  std::vector<Dim> out;
  for (int i = 0; i < x.shape.rank(); ++i) {
    int64_t rp = (*reps)[static_cast<size_t>(i)];
    if (rp < 0) return InvalidArgument("'repeats' must be non-negative");
    const Dim& d = x.shape.dim(i);
    int64_t size = -1;
    if (d.known() && !CheckedMul(d.value, rp, &size)) return InvalidArgument("input 'repeats' makes dimension ", i, " overflow");
    out.push_back(d.known() ? Dim(size) : (rp == 1 ? d : Dim::Unknown()));
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferPad(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "pads"));
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 3, "axes"));
  const TypeInfo& x = ctx.input_type(0);
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  const int r = x.shape.rank();
  auto pads = ConstInts(ctx, 1);
  std::vector<int64_t> axes;
  if (ctx.has_input(3)) {
    auto a = ConstInts(ctx, 3);
    if (!a.ok()) { ctx.set_output(0, x.dtype, UnknownOfRank(r)); return Status::OK(); }
    axes = *a;
  } else {
    for (int i = 0; i < r; ++i) axes.push_back(i);
  }
  if (!pads.ok()) { ctx.set_output(0, x.dtype, UnknownOfRank(r)); return Status::OK(); }
  if (pads->size() != 2 * axes.size()) return InvalidArgument("'pads' has ", pads->size(), " entries, need ", 2 * axes.size());
  Shape s = x.shape;
  for (size_t i = 0; i < axes.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axes[i], r, "axes"));
    Dim& d = s.dims()[static_cast<size_t>(ax)];
    int64_t both = 0, v = 0;
    if (!CheckedAdd((*pads)[i], (*pads)[i + axes.size()], &both) || (d.known() && !CheckedAdd(d.value, both, &v)))
      return InvalidArgument("'pads' ", (*pads)[i], " and ", (*pads)[i + axes.size()], " overflow dimension ", ax);
    if (d.known()) {
      if (v < 0) return InvalidArgument("pads make dimension ", ax, " negative");
      d = Dim(v);
    } else if (both != 0) {
      d = Dim::Unknown();
    }
  }
  ctx.set_output(0, x.dtype, std::move(s));
  return Status::OK();
}

Status InferShape(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (!x.shape.has_rank()) { ctx.set_output(0, DType::kInt64, UnknownOfRank(1)); return Status::OK(); }
  const int r = x.shape.rank();
  KILN_ASSIGN_OR_RETURN(int64_t start, ctx.attrs().GetInt("start", 0));
  KILN_ASSIGN_OR_RETURN(int64_t end, ctx.attrs().GetInt("end", r));
  const DimRange range = ComputeShapeRange(start, end, r);
  ctx.set_output(0, DType::kInt64, Shape::FromDims({range.end - range.begin}));
  // Known dims propagate as a value (Shape -> Gather -> Concat -> Reshape chains).
  bool all_known = true;
  std::vector<int64_t> dims;
  for (int64_t i = range.begin; i < range.end; ++i) {
    all_known = all_known && x.shape.dim(static_cast<int>(i)).known();
    dims.push_back(x.shape.dim(static_cast<int>(i)).value);
  }
  if (all_known) ctx.set_output_value(0, Tensor::FromVector(dims));
  return Status::OK();
}

Status InferSize(InferenceContext& ctx) {
  ctx.set_output(0, DType::kInt64, Shape::FromDims({}));
  if (auto n = ctx.input_type(0).shape.Numel()) ctx.set_output_value(0, Tensor::Scalar<int64_t>(*n));
  return Status::OK();
}

Status InferConstantOfShape(InferenceContext& ctx) {
  DType dt = DType::kFloat32;
  if (const Attr* v = ctx.attrs().find("value")) {
    if (v->type != Attr::Type::kTensor) return InvalidArgument("attribute 'value' must be TENSOR");
    if (v->t.numel() != 1) return InvalidArgument("attribute 'value' must hold one element");
    dt = v->t.dtype();
  }
  auto shape = ConstInts(ctx, 0);
  if (shape.ok()) {
    for (int64_t d : *shape) if (d < 0) return InvalidArgument("negative dimension ", d);
    KILN_RETURN_IF_ERROR(CheckedNumel(*shape, "output").status());
    ctx.set_output(0, dt, Shape::FromDims(*shape));
  } else {
    const TypeInfo& st = ctx.input_type(0);
    ctx.set_output(0, dt, st.shape.has_rank() && st.shape.rank() == 1 && st.shape.dim(0).known()
                              ? UnknownOfLength(st.shape.dim(0)) : Shape());
  }
  return Status::OK();
}

// Constant's value attributes: exactly one must be present, with its declared type.
struct ConstantForm {
  const char* name;
  Attr::Type type;
  DType dtype;
};
constexpr ConstantForm kConstantForms[] = {
    {"value", Attr::Type::kTensor, DType::kUndefined},  // dtype from the tensor
    {"value_float", Attr::Type::kFloat, DType::kFloat32},
    {"value_int", Attr::Type::kInt, DType::kInt64},
    {"value_string", Attr::Type::kString, DType::kString},
    {"value_floats", Attr::Type::kFloats, DType::kFloat32},
    {"value_ints", Attr::Type::kInts, DType::kInt64},
    {"value_strings", Attr::Type::kStrings, DType::kString},
};

Status InferConstant(InferenceContext& ctx) {
  if (ctx.attrs().has("sparse_value")) return Unimplemented("Constant with attribute 'sparse_value' is not supported");
  const ConstantForm* form = nullptr;
  for (const ConstantForm& f : kConstantForms) {
    const Attr* a = ctx.attrs().find(f.name);
    if (a == nullptr) continue;
    if (form != nullptr) return InvalidArgument("Constant has both '", form->name, "' and '", f.name, "'");
    if (a->type != f.type) return InvalidArgument("attribute '", f.name, "' must be ", AttrTypeName(f.type));
    form = &f;
  }
  if (form == nullptr) return InvalidArgument("Constant needs one of the attributes value, value_float(s), value_int(s), value_string(s)");
  const Attr& a = *ctx.attrs().find(form->name);
  switch (form->type) {
    case Attr::Type::kTensor:
      if (!a.t.defined()) return InvalidArgument("attribute 'value' holds no tensor");
      ctx.set_output(0, a.t.dtype(), Shape::FromDims(a.t.dims()));
      break;
    case Attr::Type::kFloats: ctx.set_output(0, form->dtype, Shape::FromDims({static_cast<int64_t>(a.floats.size())})); break;
    case Attr::Type::kInts: ctx.set_output(0, form->dtype, Shape::FromDims({static_cast<int64_t>(a.ints.size())})); break;
    case Attr::Type::kStrings: ctx.set_output(0, form->dtype, Shape::FromDims({static_cast<int64_t>(a.strings.size())})); break;
    default: ctx.set_output(0, form->dtype, Shape::FromDims({})); break;
  }
  return Status::OK();
}

Status InferRange(InferenceContext& ctx) {
  const DType dt = ctx.input_type(0).dtype;
  for (int i = 1; i < 3; ++i)
    if (ctx.input_type(i).dtype != dt) return InvalidArgument("start, limit and delta must have one type");
  if (!IsInteger(dt) && !IsFloat(dt)) return InvalidArgument("Range needs numeric inputs, got ", DTypeName(dt));
  const Tensor* s = ctx.input_value(0);
  const Tensor* l = ctx.input_value(1);
  const Tensor* d = ctx.input_value(2);
  if (s && l && d && s->numel() == 1 && l->numel() == 1 && d->numel() == 1) {
    double st = s->GetAsDouble(0), li = l->GetAsDouble(0), de = d->GetAsDouble(0);
    if (de == 0) return InvalidArgument("input 'delta' must not be 0");
    const double n = std::max(0.0, std::ceil((li - st) / de));
    if (!(n <= static_cast<double>(kMaxElements))) return InvalidArgument("Range would produce ", n, " elements");
    ctx.set_output(0, dt, Shape::FromDims({static_cast<int64_t>(n)}));
  } else {
    ctx.set_output(0, dt, UnknownOfRank(1));
  }
  return Status::OK();
}

Status InferOneHot(InferenceContext& ctx) {
  const TypeInfo& idx = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  const DType dt = ctx.input_type(2).dtype;
  if (!idx.shape.has_rank()) { ctx.set_output(0, dt, Shape()); return Status::OK(); }
  const int r = idx.shape.rank() + 1;
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, r));
  Dim depth = Dim::Unknown();
  if (const Tensor* d = ctx.input_value(1); d && d->numel() == 1) {
    const double v = d->GetAsDouble(0);
    if (!(v >= 1 && v <= static_cast<double>(kMaxElements))) return InvalidArgument("input 'depth' must be positive, got ", v);
    depth = Dim(static_cast<int64_t>(v));
  }
  std::vector<Dim> out = idx.shape.dims();
  out.insert(out.begin() + ax, depth);
  ctx.set_output(0, dt, Shape(std::move(out)));
  return Status::OK();
}

Status InferDepthSpace(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t b, ctx.attrs().RequireInt("blocksize"));
  if (b <= 0) return InvalidArgument("attribute 'blocksize' must be positive");
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, UnknownOfRank(4)); return Status::OK(); }
  if (x.shape.rank() != 4) return InvalidArgument("input must be 4-D");
  const bool d2s = ctx.node().op_type == "DepthToSpace";
  if (d2s) {
    KILN_ASSIGN_OR_RETURN(std::string mode, ctx.attrs().GetString("mode", "DCR"));
    if (mode != "DCR" && mode != "CRD") return InvalidArgument("attribute 'mode' must be DCR or CRD, got '", mode, "'");
  }
  auto f = [](const Dim& d, int64_t m, bool mul) {
    return d.known() ? Dim(mul ? d.value * m : d.value / m) : Dim::Unknown();
  };
  const Dim& c = x.shape.dim(1);
  if (c.known() && d2s && c.value % (b * b) != 0) return InvalidArgument("channels not divisible by blocksize^2");
  for (int i = 2; i < 4 && !d2s; ++i)
    if (x.shape.dim(i).known() && x.shape.dim(i).value % b != 0) return InvalidArgument("spatial size not divisible by blocksize");
  ctx.set_output(0, x.dtype, Shape({x.shape.dim(0), f(c, b * b, !d2s), f(x.shape.dim(2), b, d2s), f(x.shape.dim(3), b, d2s)}));
  return Status::OK();
}

Status InferNonZero(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  ctx.set_output(0, DType::kInt64, Shape({x.shape.has_rank() ? Dim(x.shape.rank()) : Dim::Unknown(), Dim::Unknown()}));
  return Status::OK();
}

Status InferCompress(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  const Shape& cond = ctx.input_type(1).shape;
  if (cond.has_rank() && cond.rank() != 1) return InvalidArgument("input 'condition' must be 1-D");
  if (!ctx.attrs().has("axis") || !x.shape.has_rank()) { ctx.set_output(0, x.dtype, UnknownOfRank(1)); return Status::OK(); }
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.shape.rank()));
  Shape s = x.shape;
  s.dims()[static_cast<size_t>(ax)] = Dim::Unknown();
  ctx.set_output(0, x.dtype, std::move(s));
  return Status::OK();
}

Status InferEyeLike(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("dtype", static_cast<int64_t>(x.dtype)));
  const DType out = static_cast<DType>(dt);
  if (!IsValidDType(static_cast<int32_t>(dt)) || (!IsInteger(out) && !IsFloat(out) && out != DType::kBool))
    return InvalidArgument("attribute 'dtype' ", dt, " is not a numeric type");
  if (x.shape.has_rank() && x.shape.rank() != 2) return InvalidArgument("input must be 2-D, got ", x.shape.ToString());
  ctx.set_output(0, static_cast<DType>(dt), x.shape.has_rank() ? x.shape : UnknownOfRank(2));
  return Status::OK();
}

Status InferTopK(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  Shape s = x.shape;
  if (s.has_rank()) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, s.rank()));
    s.dims()[static_cast<size_t>(ax)] = Dim::Unknown();
    if (const Tensor* k = ctx.input_value(1)) {
      KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kv, k->ToInt64Vector());
      if (kv.size() != 1) return InvalidArgument("input 'K' must have one element");
      const Dim& n = x.shape.dim(ax);
      if (kv[0] < 0 || (n.known() && kv[0] > n.value))
        return InvalidArgument("input 'K' = ", kv[0], " is out of range for an axis of ", n.ToString());
      s.dims()[static_cast<size_t>(ax)] = Dim(kv[0]);
    }
  }
  ctx.set_output(0, x.dtype, s);
  ctx.set_output(1, DType::kInt64, s);
  return Status::OK();
}

Status InferArgReduce(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int64_t keep, ctx.attrs().GetInt("keepdims", 1));
  if (!x.shape.has_rank()) { ctx.set_output(0, DType::kInt64, Shape()); return Status::OK(); }
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.shape.rank()));
  std::vector<Dim> out;
  for (int i = 0; i < x.shape.rank(); ++i) {
    if (i == ax) { if (keep) out.push_back(Dim(1)); }
    else out.push_back(x.shape.dim(i));
  }
  ctx.set_output(0, DType::kInt64, Shape(std::move(out)));
  return Status::OK();
}

Status InferUnique(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (!ctx.attrs().has("axis") || !x.shape.has_rank()) {
    ctx.set_output(0, x.dtype, UnknownOfRank(1));
  } else {
    KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.shape.rank()));
    Shape s = x.shape;
    s.dims()[static_cast<size_t>(ax)] = Dim::Unknown();
    ctx.set_output(0, x.dtype, std::move(s));
  }
  for (int i = 1; i < 4; ++i) ctx.set_output(i, DType::kInt64, UnknownOfRank(1));
  return Status::OK();
}

Status InferScatter(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "indices"));
  if (ctx.input_type(2).dtype != ctx.input_type(0).dtype) return InvalidArgument("updates must have the data's element type");
  const Shape& data = ctx.input_type(0).shape;
  if (data.has_rank() && data.rank() > 0) {
    if (ctx.node().op_type == "ScatterND") {
      const Shape& idx = ctx.input_type(1).shape;
      if (idx.has_rank() && idx.rank() >= 1 && idx.dim(idx.rank() - 1).known()) {
        const int64_t last = idx.dim(idx.rank() - 1).value;
        if (last < 1 || last > data.rank())
          return InvalidArgument("indices' last dimension ", last, " must be in [1, rank of data]");
        for (int64_t j = 0; j < last; ++j)
          KILN_RETURN_IF_ERROR(CheckConstIndices(ctx, 1, data.dim(static_cast<int>(j)), "indices", static_cast<int>(j), last, j));
      }
    } else {  // Scatter / ScatterElements
      KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
      KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, data.rank()));
      KILN_RETURN_IF_ERROR(CheckConstIndices(ctx, 1, data.dim(ax), "indices", ax));
    }
  }
  return InferSameAsInput0(ctx);
}

Status InferTrilu(InferenceContext& ctx) {
  const Shape& s = ctx.input_type(0).shape;
  if (s.has_rank() && s.rank() < 2) return InvalidArgument("input must have rank >= 2, got ", s.ToString());
  KILN_RETURN_IF_ERROR(ctx.attrs().GetInt("upper", 1).status());  // a bad attribute fails at build time
  return InferSameAsInput0(ctx);
}

Status InferCumSum(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "axis"));
  const Shape& s = ctx.input_type(0).shape;
  if (const Tensor* axis = ctx.input_value(1); axis != nullptr && s.has_rank()) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> a, axis->ToInt64Vector());
    if (a.size() != 1) return InvalidArgument("input 'axis' must be a scalar");
    KILN_RETURN_IF_ERROR(NormalizeAxis(a[0], s.rank()).status());
  }
  return InferSameAsInput0(ctx);
}

Status InferReverseSequence(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(CheckIndexType(ctx, 1, "sequence_lens"));
  KILN_ASSIGN_OR_RETURN(int64_t batch_axis, ctx.attrs().GetInt("batch_axis", 1));
  KILN_ASSIGN_OR_RETURN(int64_t time_axis, ctx.attrs().GetInt("time_axis", 0));
  if ((batch_axis != 0 && batch_axis != 1) || (time_axis != 0 && time_axis != 1) || batch_axis == time_axis)
    return InvalidArgument("attributes 'batch_axis' and 'time_axis' must be 0 and 1");
  const Shape& s = ctx.input_type(0).shape;
  if (s.has_rank() && s.rank() < 2) return InvalidArgument("input must have rank >= 2");
  return InferSameAsInput0(ctx);
}

}  // namespace

void RegisterTensorSchemas(OpRegistry& r) {
  r.Add(OpSchema{"Reshape", "", 2, 2, 1, 1, InferReshape, FusionClass::kInjective, /*view=*/true});
  r.Add(OpSchema{"Flatten", "", 1, 1, 1, 1, InferFlatten, FusionClass::kInjective, /*view=*/true});
  r.Add(OpSchema{"Squeeze", "", 1, 2, 1, 1, InferSqueeze, FusionClass::kInjective, /*view=*/true});
  r.Add(OpSchema{"Unsqueeze", "", 2, 2, 1, 1, InferUnsqueeze, FusionClass::kInjective, /*view=*/true});
  r.Add(OpSchema{"Transpose", "", 1, 1, 1, 1, InferTranspose, FusionClass::kInjective});
  r.Add(OpSchema{"Concat", "", 1, kVariadic, 1, 1, InferConcat, FusionClass::kInjective});
  r.Add(OpSchema{"Split", "", 1, 2, 1, kVariadic, InferSplit, FusionClass::kInjective});
  r.Add(OpSchema{"Slice", "", 3, 5, 1, 1, InferSlice, FusionClass::kInjective});
  r.Add(OpSchema{"Gather", "", 2, 2, 1, 1, InferGather, FusionClass::kInjective});
  r.Add(OpSchema{"GatherElements", "", 2, 2, 1, 1, InferGatherElements, FusionClass::kInjective});
  r.Add(OpSchema{"GatherND", "", 2, 2, 1, 1, InferGatherND, FusionClass::kInjective});
  r.Add(OpSchema{"ScatterElements", "", 3, 3, 1, 1, InferScatter, FusionClass::kOpaque});
  r.Add(OpSchema{"Scatter", "", 3, 3, 1, 1, InferScatter, FusionClass::kOpaque});
  r.Add(OpSchema{"ScatterND", "", 3, 3, 1, 1, InferScatter, FusionClass::kOpaque});
  r.Add(OpSchema{"Expand", "", 2, 2, 1, 1, InferExpand, FusionClass::kInjective});
  r.Add(OpSchema{"Tile", "", 2, 2, 1, 1, InferTile, FusionClass::kInjective});
  r.Add(OpSchema{"Pad", "", 2, 4, 1, 1, InferPad, FusionClass::kInjective});
  r.Add(OpSchema{"Shape", "", 1, 1, 1, 1, InferShape, FusionClass::kOpaque});
  r.Add(OpSchema{"Size", "", 1, 1, 1, 1, InferSize, FusionClass::kOpaque});
  r.Add(OpSchema{"ConstantOfShape", "", 1, 1, 1, 1, InferConstantOfShape, FusionClass::kOpaque});
  r.Add(OpSchema{"Constant", "", 0, 0, 1, 1, InferConstant, FusionClass::kOpaque});
  r.Add(OpSchema{"Range", "", 3, 3, 1, 1, InferRange, FusionClass::kOpaque});
  r.Add(OpSchema{"OneHot", "", 3, 3, 1, 1, InferOneHot, FusionClass::kOpaque});
  r.Add(OpSchema{"DepthToSpace", "", 1, 1, 1, 1, InferDepthSpace, FusionClass::kInjective});
  r.Add(OpSchema{"SpaceToDepth", "", 1, 1, 1, 1, InferDepthSpace, FusionClass::kInjective});
  r.Add(OpSchema{"Trilu", "", 1, 2, 1, 1, InferTrilu, FusionClass::kOpaque});
  r.Add(OpSchema{"NonZero", "", 1, 1, 1, 1, InferNonZero, FusionClass::kOpaque});
  r.Add(OpSchema{"Compress", "", 2, 2, 1, 1, InferCompress, FusionClass::kOpaque});
  r.Add(OpSchema{"EyeLike", "", 1, 1, 1, 1, InferEyeLike, FusionClass::kOpaque});
  r.Add(OpSchema{"CumSum", "", 2, 2, 1, 1, InferCumSum, FusionClass::kOpaque});
  r.Add(OpSchema{"TopK", "", 2, 2, 2, 2, InferTopK, FusionClass::kOpaque});
  r.Add(OpSchema{"ArgMax", "", 1, 1, 1, 1, InferArgReduce, FusionClass::kReduction});
  r.Add(OpSchema{"ArgMin", "", 1, 1, 1, 1, InferArgReduce, FusionClass::kReduction});
  r.Add(OpSchema{"ReverseSequence", "", 2, 2, 1, 1, InferReverseSequence, FusionClass::kOpaque});
  r.Add(OpSchema{"Unique", "", 1, 1, 1, 4, InferUnique, FusionClass::kOpaque});
}

}  // namespace kiln
