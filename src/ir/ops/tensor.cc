// Data-movement, shape and indexing ops. Inference is exact whenever the shape-like
// inputs are known constants (the driver propagates constants through Shape -> Gather ->
// Concat chains with the reference kernels), and keeps symbolic dims where ops preserve them.
#include <algorithm>

#include "base/checked_math.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

StatusOr<std::vector<int64_t>> ConstInts(const InferenceContext& ctx, int i) {
  const Tensor* t = ctx.input_value(i);
  if (t == nullptr) return NotFound("not constant");
  return t->ToInt64Vector();
}

Shape UnknownOfRank(int r) { return Shape::OfRank(r); }

Status InferReshape(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t allowzero, ctx.attrs().GetInt("allowzero", 0));
  auto shape = ConstInts(ctx, 1);
  if (!shape.ok()) {
    const TypeInfo& st = ctx.input_type(1);
    if (st.shape.has_rank() && st.shape.rank() == 1 && st.shape.dim(0).known())
      ctx.set_output(0, x.dtype, UnknownOfRank(static_cast<int>(st.shape.dim(0).value)));
    else
      ctx.set_output(0, x.dtype, Shape());
    return Status::OK();
  }
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
    int64_t total = *x.shape.Numel(), known = 1;
    bool all = true;
    for (size_t i = 0; i < out.size(); ++i)
      if (static_cast<int>(i) != infer_at) {
        if (out[i].known()) known *= out[i].value;
        else all = false;
      }
    if (all) {
      if (known == 0 || total % known != 0)
        return InvalidArgument("cannot reshape ", x.shape.ToString(), " to ", DimsToString(*shape));
      out[static_cast<size_t>(infer_at)] = Dim(total / known);
    }
  }
  Shape s(std::move(out));
  if (s.IsStatic() && x.shape.IsStatic() && *s.Numel() != *x.shape.Numel())
    return InvalidArgument("cannot reshape ", x.shape.ToString(), " (", *x.shape.Numel(), " elements) to ", s.ToString());
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
    int64_t step = steps[i];
    if (step == 0) return InvalidArgument("steps must not be 0");
    const Dim& d = x.shape.dim(ax);
    if (!d.known()) { s.dims()[static_cast<size_t>(ax)] = Dim::Unknown(); continue; }
    int64_t n = d.value, st = (*starts)[i], en = (*ends)[i];
    if (st < 0) st += n;
    if (en < 0) en += n;
    if (step > 0) {
      st = std::clamp<int64_t>(st, 0, n);
      en = std::clamp<int64_t>(en, 0, n);
      s.dims()[static_cast<size_t>(ax)] = Dim(en > st ? (en - st + step - 1) / step : 0);
    } else {
      st = std::clamp<int64_t>(st, -1, n - 1);
      en = std::clamp<int64_t>(en, -1, n - 1);
      s.dims()[static_cast<size_t>(ax)] = Dim(st > en ? (st - en - step - 1) / (-step) : 0);
    }
  }
  ctx.set_output(0, x.dtype, std::move(s));
  return Status::OK();
}

Status InferGather(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& idx = ctx.input_type(1);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  if (!x.shape.has_rank() || !idx.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.shape.rank()));
  std::vector<Dim> out;
  for (int i = 0; i < ax; ++i) out.push_back(x.shape.dim(i));
  for (const Dim& d : idx.shape.dims()) out.push_back(d);
  for (int i = ax + 1; i < x.shape.rank(); ++i) out.push_back(x.shape.dim(i));
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferGatherElements(InferenceContext& ctx) {
  ctx.set_output(0, ctx.input_type(0).dtype, ctx.input_type(1).shape);
  return Status::OK();
}

Status InferGatherND(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  const TypeInfo& idx = ctx.input_type(1);
  KILN_ASSIGN_OR_RETURN(int64_t b, ctx.attrs().GetInt("batch_dims", 0));
  if (!x.shape.has_rank() || !idx.shape.has_rank() || !idx.shape.dim(idx.shape.rank() - 1).known()) {
    ctx.set_output(0, x.dtype, Shape());
    return Status::OK();
  }
  const int64_t last = idx.shape.dim(idx.shape.rank() - 1).value;
  if (b + last > x.shape.rank()) return InvalidArgument("indices' last dimension is too large for the data rank");
  std::vector<Dim> out;
  for (int i = 0; i < idx.shape.rank() - 1; ++i) out.push_back(idx.shape.dim(i));
  for (int64_t i = b + last; i < x.shape.rank(); ++i) out.push_back(x.shape.dim(static_cast<int>(i)));
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferExpand(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  auto shape = ConstInts(ctx, 1);
  if (!shape.ok()) {
    const TypeInfo& st = ctx.input_type(1);
    if (st.shape.has_rank() && st.shape.rank() == 1 && st.shape.dim(0).known() && x.shape.has_rank())
      ctx.set_output(0, x.dtype, UnknownOfRank(static_cast<int>(std::max<int64_t>(st.shape.dim(0).value, x.shape.rank()))));
    else
      ctx.set_output(0, x.dtype, Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(Shape s, BroadcastShapes({x.shape, Shape::FromDims(*shape)}));
  ctx.set_output(0, x.dtype, std::move(s));
  return Status::OK();
}

Status InferTile(InferenceContext& ctx) {
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
    out.push_back(d.known() ? Dim(d.value * rp) : (rp == 1 ? d : Dim::Unknown()));
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferPad(InferenceContext& ctx) {
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
    if (d.known()) {
      int64_t v = d.value + (*pads)[i] + (*pads)[i + axes.size()];
      if (v < 0) return InvalidArgument("pads make dimension ", ax, " negative");
      d = Dim(v);
    } else if ((*pads)[i] + (*pads)[i + axes.size()] != 0) {
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
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  ctx.set_output(0, DType::kInt64, Shape::FromDims({std::max<int64_t>(0, end - start)}));
  // Known dims propagate as a value (Shape -> Gather -> Concat -> Reshape chains).
  if (x.shape.IsStatic()) {
    const std::vector<int64_t> dims = x.shape.Sizes();
    ctx.set_output_value(0, Tensor::FromVector(std::vector<int64_t>(dims.begin() + start, dims.begin() + std::max(start, end))));
  }
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
                              ? UnknownOfRank(static_cast<int>(st.shape.dim(0).value)) : Shape());
  }
  return Status::OK();
}

Status InferConstant(InferenceContext& ctx) {
  for (const auto& [k, a] : ctx.attrs().all()) {
    if (k == "value") { ctx.set_output(0, a.t.dtype(), Shape::FromDims(a.t.dims())); return Status::OK(); }
    if (k == "value_float") { ctx.set_output(0, DType::kFloat32, Shape::FromDims({})); return Status::OK(); }
    if (k == "value_int") { ctx.set_output(0, DType::kInt64, Shape::FromDims({})); return Status::OK(); }
    if (k == "value_string") { ctx.set_output(0, DType::kString, Shape::FromDims({})); return Status::OK(); }
    if (k == "value_floats") { ctx.set_output(0, DType::kFloat32, Shape::FromDims({int64_t(a.floats.size())})); return Status::OK(); }
    if (k == "value_ints") { ctx.set_output(0, DType::kInt64, Shape::FromDims({int64_t(a.ints.size())})); return Status::OK(); }
    if (k == "value_strings") { ctx.set_output(0, DType::kString, Shape::FromDims({int64_t(a.strings.size())})); return Status::OK(); }
  }
  return InvalidArgument("Constant has no value attribute");
}

Status InferRange(InferenceContext& ctx) {
  const DType dt = ctx.input_type(0).dtype;
  const Tensor* s = ctx.input_value(0);
  const Tensor* l = ctx.input_value(1);
  const Tensor* d = ctx.input_value(2);
  if (s && l && d && s->numel() == 1 && l->numel() == 1 && d->numel() == 1) {
    double st = s->GetAsDouble(0), li = l->GetAsDouble(0), de = d->GetAsDouble(0);
    if (de == 0) return InvalidArgument("delta must not be 0");
    double n = std::ceil((li - st) / de);
    ctx.set_output(0, dt, Shape::FromDims({std::max<int64_t>(0, static_cast<int64_t>(n))}));
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
  if (const Tensor* d = ctx.input_value(1); d && d->numel() == 1) depth = Dim(static_cast<int64_t>(d->GetAsDouble(0)));
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
  if (x.shape.has_rank() && x.shape.rank() != 2) return InvalidArgument("input must be 2-D");
  ctx.set_output(0, static_cast<DType>(dt), x.shape.has_rank() ? x.shape : UnknownOfRank(2));
  return Status::OK();
}

Status InferTopK(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  Shape s = x.shape;
  if (s.has_rank()) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, s.rank()));
    const Tensor* k = ctx.input_value(1);
    s.dims()[static_cast<size_t>(ax)] = k && k->numel() == 1 ? Dim(static_cast<int64_t>(k->GetAsDouble(0))) : Dim::Unknown();
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
  if (ctx.input_type(2).dtype != ctx.input_type(0).dtype) return InvalidArgument("updates must have the data's element type");
  return InferSameAsInput0(ctx);
}

}  // namespace

void RegisterTensorSchemas(OpRegistry& r) {
  r.Add(OpSchema{"Reshape", "", 2, 2, 1, 1, InferReshape, FusionClass::kInjective});
  r.Add(OpSchema{"Flatten", "", 1, 1, 1, 1, InferFlatten, FusionClass::kInjective});
  r.Add(OpSchema{"Squeeze", "", 1, 2, 1, 1, InferSqueeze, FusionClass::kInjective});
  r.Add(OpSchema{"Unsqueeze", "", 2, 2, 1, 1, InferUnsqueeze, FusionClass::kInjective});
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
  r.Add(OpSchema{"Trilu", "", 1, 2, 1, 1, InferSameAsInput0, FusionClass::kOpaque});
  r.Add(OpSchema{"NonZero", "", 1, 1, 1, 1, InferNonZero, FusionClass::kOpaque});
  r.Add(OpSchema{"Compress", "", 2, 2, 1, 1, InferCompress, FusionClass::kOpaque});
  r.Add(OpSchema{"EyeLike", "", 1, 1, 1, 1, InferEyeLike, FusionClass::kOpaque});
  r.Add(OpSchema{"CumSum", "", 2, 2, 1, 1, InferSameAsInput0, FusionClass::kOpaque});
  r.Add(OpSchema{"TopK", "", 2, 2, 2, 2, InferTopK, FusionClass::kOpaque});
  r.Add(OpSchema{"ArgMax", "", 1, 1, 1, 1, InferArgReduce, FusionClass::kReduction});
  r.Add(OpSchema{"ArgMin", "", 1, 1, 1, 1, InferArgReduce, FusionClass::kReduction});
  r.Add(OpSchema{"ReverseSequence", "", 2, 2, 1, 1, InferSameAsInput0, FusionClass::kOpaque});
  r.Add(OpSchema{"Unique", "", 1, 1, 1, 4, InferUnique, FusionClass::kOpaque});
}

}  // namespace kiln
