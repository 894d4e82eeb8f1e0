// Reference kernels of the tensor (data movement, shape, indexing) family.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "backends/ref/ops/tensor_util.h"
#include "base/checked_math.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

using ref::CopyElement;
using ref::Unravel;

StatusOr<std::vector<int64_t>> IntsInput(RefContext& ctx, int i, const char* what) {
  if (!ctx.has_input(i)) return InvalidArgument("input '", what, "' is required");
  auto v = ctx.input(i).ToInt64Vector();
  if (!v.ok()) return v.status().WithPrefix(StrCat("input '", what, "'"));
  return v;
}

// Index into a dimension of size n, negative counting from the end; error if out of range.
StatusOr<int64_t> CheckIndex(int64_t i, int64_t n, const char* what) {
  if (i < -n || i >= n) return OutOfRange(what, " index ", i, " is out of range [", -n, ", ", n, ")");
  return i < 0 ? i + n : i;
}

Status ReshapeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, IntsInput(ctx, 1, "shape"));
  KILN_ASSIGN_OR_RETURN(int64_t allowzero, ctx.attrs().GetInt("allowzero", 0));
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowzero) {
      if (i >= x.dims().size()) return InvalidArgument("shape[", i, "] = 0 but the input has rank ", x.rank());
      shape[i] = x.dim(static_cast<int>(i));
    }
    if (shape[i] == -1) {
      if (infer >= 0) return InvalidArgument("shape has more than one -1");
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      return InvalidArgument("invalid shape value ", shape[i]);
    } else if (!CheckedMul(known, shape[i], &known)) {
      return InvalidArgument("shape overflows");
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known) return InvalidArgument("cannot reshape ", x.ShapeString(), " to ", DimsToString(shape));
    shape[static_cast<size_t>(infer)] = x.numel() / known;
  } else if (known != x.numel()) {
    return InvalidArgument("cannot reshape ", x.ShapeString(), " to ", DimsToString(shape));
  }
  ctx.set_output(0, x.Clone().Reshaped(shape));
  return Status::OK();
}

Status FlattenKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 1));
  if (axis < -x.rank() || axis > x.rank()) return InvalidArgument("axis out of range");
  if (axis < 0) axis += x.rank();
  int64_t a = 1;
  for (int i = 0; i < axis; ++i) a *= x.dim(i);
  ctx.set_output(0, x.Clone().Reshaped({a, a ? x.numel() / a : 0}));
  return Status::OK();
}

Status SqueezeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<bool> drop(static_cast<size_t>(x.rank()), false);
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, IntsInput(ctx, 1, "axes"));
    for (int64_t a : axes) {
      KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, x.rank(), "axes"));
      if (x.dim(ax) != 1) return InvalidArgument("cannot squeeze axis ", a, " of size ", x.dim(ax));
      drop[static_cast<size_t>(ax)] = true;
    }
  } else {
    for (int i = 0; i < x.rank(); ++i) drop[static_cast<size_t>(i)] = x.dim(i) == 1;
  }
  std::vector<int64_t> d;
  for (int i = 0; i < x.rank(); ++i) if (!drop[static_cast<size_t>(i)]) d.push_back(x.dim(i));
  ctx.set_output(0, x.Clone().Reshaped(d));
  return Status::OK();
}

Status UnsqueezeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, IntsInput(ctx, 1, "axes"));
  const int r = x.rank() + static_cast<int>(axes.size());
  std::vector<bool> ins(static_cast<size_t>(r), false);
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, "axes"));
    if (ins[static_cast<size_t>(ax)]) return InvalidArgument("duplicate axis ", a);
    ins[static_cast<size_t>(ax)] = true;
  }
  std::vector<int64_t> d;
  int k = 0;
  for (int i = 0; i < r; ++i) d.push_back(ins[static_cast<size_t>(i)] ? 1 : x.dim(k++));
  ctx.set_output(0, x.Clone().Reshaped(d));
  return Status::OK();
}

// Generic strided gather: out[i] = x[offset(i)], with `src_strides` per output axis.
Tensor StridedCopy(const Tensor& x, const std::vector<int64_t>& out_dims, const std::vector<int64_t>& src_strides,
                   int64_t base = 0) {
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

Status TransposeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, ctx.attrs().GetInts("perm"));
  if (perm.empty()) for (int i = x.rank() - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int>(perm.size()) != x.rank()) return InvalidArgument("'perm' does not match the input rank");
  std::vector<int64_t> strides = StridesOf(x.dims()), od, os;
  for (int64_t p : perm) {
    if (p < 0 || p >= x.rank()) return InvalidArgument("'perm' is not a permutation");
    od.push_back(x.dim(static_cast<int>(p)));
    os.push_back(strides[static_cast<size_t>(p)]);
  }
  ctx.set_output(0, StridedCopy(x, od, os));
  return Status::OK();
}

Status ConcatKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().RequireInt("axis"));
  std::vector<const Tensor*> ins;
  for (int i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i)) ins.push_back(&ctx.input(i));
  if (ins.empty()) return InvalidArgument("no inputs");
  const int r = ins[0]->rank();
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, r));
  std::vector<int64_t> od = ins[0]->dims();
  od[static_cast<size_t>(ax)] = 0;
  for (const Tensor* t : ins) {
    if (t->rank() != r || t->dtype() != ins[0]->dtype()) return InvalidArgument("inputs differ in rank or type");
    for (int d = 0; d < r; ++d)
      if (d != ax && t->dim(d) != ins[0]->dim(d)) return InvalidArgument("inputs differ in dimension ", d);
    od[static_cast<size_t>(ax)] += t->dim(ax);
  }
  Tensor y(ins[0]->dtype(), od);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= od[static_cast<size_t>(d)];
  for (int d = ax + 1; d < r; ++d) inner *= od[static_cast<size_t>(d)];
  int64_t off = 0;
  for (const Tensor* t : ins) {
    const int64_t block = t->dim(ax) * inner;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < block; ++k) CopyElement(y, o * od[static_cast<size_t>(ax)] * inner + off + k, *t, o * block + k);
    off += block;
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Copies x[.., start:start+len, ..] along `ax` into a new tensor.
Tensor SliceAxis(const Tensor& x, int ax, int64_t start, int64_t len) {
  std::vector<int64_t> od = x.dims();
  od[static_cast<size_t>(ax)] = len;
  std::vector<int64_t> strides = StridesOf(x.dims());
  return StridedCopy(x, od, strides, start * strides[static_cast<size_t>(ax)]);
}

Status SplitKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  const int n = ctx.num_outputs();
  std::vector<int64_t> sizes;
  const int64_t d = x.dim(ax);
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(sizes, IntsInput(ctx, 1, "split"));
    if (static_cast<int>(sizes.size()) != n) return InvalidArgument("'split' has ", sizes.size(), " entries for ", n, " outputs");
    int64_t total = 0;
    for (int64_t s : sizes) {
      if (s < 0) return InvalidArgument("'split' has a negative size");
      total += s;
    }
    if (total != d) return InvalidArgument("'split' sums to ", total, " but the axis has ", d);
  } else {
    const int64_t chunk = (d + n - 1) / n;
    for (int i = 0; i < n; ++i) sizes.push_back(std::max<int64_t>(0, std::min(chunk, d - chunk * i)));
  }
  int64_t start = 0;
  for (int i = 0; i < n; ++i) {
    ctx.set_output(i, SliceAxis(x, ax, start, sizes[static_cast<size_t>(i)]));
    start += sizes[static_cast<size_t>(i)];
  }
  return Status::OK();
}

Status SliceKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> starts, IntsInput(ctx, 1, "starts"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ends, IntsInput(ctx, 2, "ends"));
  std::vector<int64_t> axes, steps;
  if (ctx.has_input(3)) { KILN_ASSIGN_OR_RETURN(axes, IntsInput(ctx, 3, "axes")); }
  else for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (ctx.has_input(4)) { KILN_ASSIGN_OR_RETURN(steps, IntsInput(ctx, 4, "steps")); }
  else steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return InvalidArgument("starts, ends, axes and steps must have the same length");
  std::vector<int64_t> st(static_cast<size_t>(x.rank()), 0), sp(static_cast<size_t>(x.rank()), 1), od = x.dims();
  for (size_t i = 0; i < axes.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axes[i], x.rank(), "axes"));
    const int64_t n = x.dim(ax), step = steps[i];
    if (step == 0) return InvalidArgument("steps must not be 0");
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += n;
    if (e < 0) e += n;
    int64_t len;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      len = e > s ? (e - s + step - 1) / step : 0;
    } else {
      s = std::clamp<int64_t>(s, -1, n - 1);
      e = std::clamp<int64_t>(e, -1, n - 1);
      len = s > e ? (s - e - step - 1) / (-step) : 0;
    }
    st[static_cast<size_t>(ax)] = s;
    sp[static_cast<size_t>(ax)] = step;
    od[static_cast<size_t>(ax)] = len;
  }
  std::vector<int64_t> strides = StridesOf(x.dims()), os(strides.size());
  int64_t base = 0;
  for (size_t a = 0; a < strides.size(); ++a) {
    os[a] = strides[a] * sp[a];
    if (od[a] > 0) base += st[a] * strides[a];
  }
  ctx.set_output(0, StridedCopy(x, od, os, base));
  return Status::OK();
}

Status GatherKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  const int64_t n = x.dim(ax);
  for (int64_t& i : idx) { KILN_ASSIGN_OR_RETURN(i, CheckIndex(i, n, "Gather")); }
  std::vector<int64_t> od;
  for (int d = 0; d < ax; ++d) od.push_back(x.dim(d));
  for (int64_t d : ctx.input(1).dims()) od.push_back(d);
  for (int d = ax + 1; d < x.rank(); ++d) od.push_back(x.dim(d));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= x.dim(d);
  for (int d = ax + 1; d < x.rank(); ++d) inner *= x.dim(d);
  Tensor y(x.dtype(), od);
  const int64_t m = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t k = 0; k < inner; ++k) CopyElement(y, (o * m + j) * inner + k, x, (o * n + idx[static_cast<size_t>(j)]) * inner + k);
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status GatherElementsKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& it = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  if (it.rank() != x.rank()) return InvalidArgument("indices must have the data's rank");
  Tensor y(x.dtype(), it.dims());
  std::vector<int64_t> strides = StridesOf(x.dims()), pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    Unravel(i, it.dims(), pos);
    int64_t off = 0;
    for (int d = 0; d < x.rank(); ++d) {
      int64_t p = pos[static_cast<size_t>(d)];
      if (d == ax) { KILN_ASSIGN_OR_RETURN(p, CheckIndex(idx[static_cast<size_t>(i)], x.dim(d), "GatherElements")); }
      else if (p >= x.dim(d)) return OutOfRange("indices shape exceeds the data in dimension ", d);
      off += p * strides[static_cast<size_t>(d)];
    }
    CopyElement(y, i, x, off);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status GatherNDKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& it = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t b, ctx.attrs().GetInt("batch_dims", 0));
  if (it.rank() < 1) return InvalidArgument("indices must have rank >= 1");
  const int64_t last = it.dim(it.rank() - 1);
  if (b < 0 || b + last > x.rank() || b >= it.rank()) return InvalidArgument("indices do not fit the data rank");
  std::vector<int64_t> od(it.dims().begin(), it.dims().end() - 1);
  int64_t slice = 1;
  for (int64_t d = b + last; d < x.rank(); ++d) { od.push_back(x.dim(static_cast<int>(d))); slice *= x.dim(static_cast<int>(d)); }
  int64_t batch = 1;
  for (int64_t d = 0; d < b; ++d) batch *= x.dim(static_cast<int>(d));
  const int64_t tuples = it.numel() / std::max<int64_t>(1, last) / std::max<int64_t>(1, batch);
  std::vector<int64_t> strides = StridesOf(x.dims());
  int64_t batch_stride = b > 0 ? strides[static_cast<size_t>(b - 1)] : x.numel();
  Tensor y(x.dtype(), od);
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t off = bi * batch_stride;
      for (int64_t k = 0; k < last; ++k) {
        int64_t i = idx[static_cast<size_t>((bi * tuples + t) * last + k)];
        KILN_ASSIGN_OR_RETURN(i, CheckIndex(i, x.dim(static_cast<int>(b + k)), "GatherND"));
        off += i * strides[static_cast<size_t>(b + k)];
      }
      for (int64_t s = 0; s < slice; ++s) CopyElement(y, (bi * tuples + t) * slice + s, x, off + s);
    }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Combines an existing element with an update under ScatterElements/ScatterND's `reduction`.
Status ScatterCombine(Tensor& y, int64_t off, const Tensor& u, int64_t ui, const std::string& red) {
  if (red == "none") { CopyElement(y, off, u, ui); return Status::OK(); }
  if (y.dtype() == DType::kString || y.dtype() == DType::kBool) return InvalidArgument("reduction needs numeric data");
  double a = y.GetAsDouble(off), b = u.GetAsDouble(ui), r;
  if (red == "add") r = a + b;
  else if (red == "mul") r = a * b;
  else if (red == "max") r = std::max(a, b);
  else if (red == "min") r = std::min(a, b);
  else return InvalidArgument("unknown reduction '", red, "'");
  ref::StoreDouble(y, off, r);
  return Status::OK();
}

Status ScatterElementsKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& it = ctx.input(1);
  const Tensor& u = ctx.input(2);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(std::string red, ctx.attrs().GetString("reduction", "none"));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  if (it.dims() != u.dims() || it.rank() != x.rank()) return InvalidArgument("indices and updates must have the same shape and the data's rank");
  Tensor y = x.Clone();
  std::vector<int64_t> strides = StridesOf(x.dims()), pos;
  for (int64_t i = 0; i < it.numel(); ++i) {
    Unravel(i, it.dims(), pos);
    int64_t off = 0;
    for (int d = 0; d < x.rank(); ++d) {
      int64_t p = pos[static_cast<size_t>(d)];
      if (d == ax) { KILN_ASSIGN_OR_RETURN(p, CheckIndex(idx[static_cast<size_t>(i)], x.dim(d), "ScatterElements")); }
      else if (p >= x.dim(d)) return OutOfRange("indices shape exceeds the data in dimension ", d);
      off += p * strides[static_cast<size_t>(d)];
    }
    KILN_RETURN_IF_ERROR(ScatterCombine(y, off, u, i, red));
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status ScatterNDKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& it = ctx.input(1);
  const Tensor& u = ctx.input(2);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IntsInput(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(std::string red, ctx.attrs().GetString("reduction", "none"));
  if (it.rank() < 1) return InvalidArgument("indices must have rank >= 1");
  const int64_t last = it.dim(it.rank() - 1);
  if (last > x.rank()) return InvalidArgument("indices' last dimension exceeds the data rank");
  int64_t slice = 1;
  for (int64_t d = last; d < x.rank(); ++d) slice *= x.dim(static_cast<int>(d));
  const int64_t tuples = last ? it.numel() / last : 0;
  if (u.numel() != tuples * slice) return InvalidArgument("updates have the wrong shape");
  std::vector<int64_t> strides = StridesOf(x.dims());
  Tensor y = x.Clone();
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = 0;
    for (int64_t k = 0; k < last; ++k) {
      int64_t i;
      KILN_ASSIGN_OR_RETURN(i, CheckIndex(idx[static_cast<size_t>(t * last + k)], x.dim(static_cast<int>(k)), "ScatterND"));
      off += i * strides[static_cast<size_t>(k)];
    }
    for (int64_t s = 0; s < slice; ++s) KILN_RETURN_IF_ERROR(ScatterCombine(y, off + s, u, t * slice + s, red));
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status ExpandKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, IntsInput(ctx, 1, "shape"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> od, ref::BroadcastDims({x.dims(), shape}));
  KILN_RETURN_IF_ERROR(CheckedNumel(od, "output").status());
  Tensor y(x.dtype(), od);
  for (ref::BroadcastIter it(od, {x.dims()}); !it.done(); it.Next()) CopyElement(y, it.index(), x, it.offset(0));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status TileKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> reps, IntsInput(ctx, 1, "repeats"));
  if (static_cast<int>(reps.size()) != x.rank()) return InvalidArgument("'repeats' must have one entry per dimension");
  std::vector<int64_t> od;
  for (int d = 0; d < x.rank(); ++d) {
    if (reps[static_cast<size_t>(d)] < 0) return InvalidArgument("'repeats' must be non-negative");
    od.push_back(x.dim(d) * reps[static_cast<size_t>(d)]);
  }
  KILN_RETURN_IF_ERROR(CheckedNumel(od, "output").status());
  Tensor y(x.dtype(), od);
  std::vector<int64_t> strides = StridesOf(x.dims()), pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    Unravel(i, od, pos);
    int64_t off = 0;
    for (int d = 0; d < x.rank(); ++d) off += (pos[static_cast<size_t>(d)] % x.dim(d)) * strides[static_cast<size_t>(d)];
    CopyElement(y, i, x, off);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status PadKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads_in, IntsInput(ctx, 1, "pads"));
  KILN_ASSIGN_OR_RETURN(std::string mode, ctx.attrs().GetString("mode", "constant"));
  const int r = x.rank();
  std::vector<int64_t> axes;
  if (ctx.has_input(3)) { KILN_ASSIGN_OR_RETURN(axes, IntsInput(ctx, 3, "axes")); }
  else for (int i = 0; i < r; ++i) axes.push_back(i);
  if (pads_in.size() != 2 * axes.size()) return InvalidArgument("'pads' has ", pads_in.size(), " entries, need ", 2 * axes.size());
  std::vector<int64_t> lo(static_cast<size_t>(r), 0), hi(static_cast<size_t>(r), 0), od = x.dims();
  for (size_t i = 0; i < axes.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axes[i], r, "axes"));
    lo[static_cast<size_t>(ax)] = pads_in[i];
    hi[static_cast<size_t>(ax)] = pads_in[i + axes.size()];
    od[static_cast<size_t>(ax)] += pads_in[i] + pads_in[i + axes.size()];
    if (od[static_cast<size_t>(ax)] < 0) return InvalidArgument("pads make dimension ", ax, " negative");
  }
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    return InvalidArgument("unknown mode '", mode, "'");
  Tensor y(x.dtype(), od);
  const bool has_value = ctx.has_input(2) && ctx.input(2).numel() > 0;
  std::vector<int64_t> strides = StridesOf(x.dims()), pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    Unravel(i, od, pos);
    int64_t off = 0;
    bool outside = false;
    for (int d = 0; d < r; ++d) {
      int64_t p = pos[static_cast<size_t>(d)] - lo[static_cast<size_t>(d)], n = x.dim(d);
      if (p < 0 || p >= n) {
        if (mode == "constant" || n == 0) { outside = true; break; }
        if (mode == "edge") p = p < 0 ? 0 : n - 1;
        else if (mode == "wrap") p = ((p % n) + n) % n;
        else {  // reflect
          if (n == 1) p = 0;
          else {
            const int64_t period = 2 * (n - 1);
            p = ((p % period) + period) % period;
            if (p >= n) p = period - p;
          }
        }
      }
      off += p * strides[static_cast<size_t>(d)];
    }
    if (outside) {
      if (has_value) CopyElement(y, i, ctx.input(2), 0);
    } else {
      CopyElement(y, i, x, off);
    }
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status ShapeKernel(RefContext& ctx) {
  const int r = ctx.input(0).rank();
  KILN_ASSIGN_OR_RETURN(int64_t start, ctx.attrs().GetInt("start", 0));
  KILN_ASSIGN_OR_RETURN(int64_t end, ctx.attrs().GetInt("end", r));
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  std::vector<int64_t> d;
  for (int64_t i = start; i < end; ++i) d.push_back(ctx.input(0).dim(static_cast<int>(i)));
  ctx.set_output(0, Tensor::FromVector(d));
  return Status::OK();
}

Status SizeKernel(RefContext& ctx) {
  ctx.set_output(0, Tensor::Scalar<int64_t>(ctx.input(0).numel()));
  return Status::OK();
}

Status ConstantOfShapeKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, IntsInput(ctx, 0, "input"));
  Tensor v = Tensor::Scalar<float>(0.f);
  if (const Attr* a = ctx.attrs().find("value")) {
    if (a->type != Attr::Type::kTensor || a->t.numel() != 1) return InvalidArgument("attribute 'value' must be a one-element tensor");
    v = a->t;
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(v.dtype(), shape, "output"));
  for (int64_t i = 0; i < y.numel(); ++i) CopyElement(y, i, v, 0);
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status ConstantKernel(RefContext& ctx) {
  for (const auto& [k, a] : ctx.attrs().all()) {
    if (k == "value") { ctx.set_output(0, a.t); return Status::OK(); }
    if (k == "value_float") { ctx.set_output(0, Tensor::Scalar(a.f)); return Status::OK(); }
    if (k == "value_int") { ctx.set_output(0, Tensor::Scalar<int64_t>(a.i)); return Status::OK(); }
    if (k == "value_string") { ctx.set_output(0, Tensor::Scalar<std::string>(a.s)); return Status::OK(); }
    if (k == "value_floats") { ctx.set_output(0, Tensor::FromVector(a.floats)); return Status::OK(); }
    if (k == "value_ints") { ctx.set_output(0, Tensor::FromVector(a.ints)); return Status::OK(); }
    if (k == "value_strings") { ctx.set_output(0, Tensor::FromVector(a.strings)); return Status::OK(); }
  }
  return InvalidArgument("Constant has no value attribute");
}

Status RangeKernel(RefContext& ctx) {
  for (int i = 0; i < 3; ++i)
    if (!ctx.has_input(i) || ctx.input(i).numel() != 1) return InvalidArgument("start, limit and delta must be scalars");
  const DType dt = ctx.input(0).dtype();
  const double st = ctx.input(0).GetAsDouble(0), li = ctx.input(1).GetAsDouble(0), de = ctx.input(2).GetAsDouble(0);
  if (de == 0) return InvalidArgument("delta must not be 0");
  const double n = std::max(0.0, std::ceil((li - st) / de));
  if (n > double(kMaxElements)) return InvalidArgument("Range produces too many elements");
  Tensor y(dt, {static_cast<int64_t>(n)});
  for (int64_t i = 0; i < y.numel(); ++i) {
    if (IsFloat(dt)) ref::StoreDouble(y, i, st + static_cast<double>(i) * de);
    else ref::StoreDouble(y, i, static_cast<double>(static_cast<int64_t>(st) + i * static_cast<int64_t>(de)));
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status OneHotKernel(RefContext& ctx) {
  const Tensor& idx = ctx.input(0);
  if (ctx.input(1).numel() != 1) return InvalidArgument("depth must be a scalar");
  const int64_t depth = static_cast<int64_t>(ctx.input(1).GetAsDouble(0));
  const Tensor& values = ctx.input(2);
  if (values.numel() != 2) return InvalidArgument("values must have two elements");
  if (depth <= 0) return InvalidArgument("depth must be positive");
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, idx.rank() + 1));
  std::vector<int64_t> od = idx.dims();
  od.insert(od.begin() + ax, depth);
  KILN_RETURN_IF_ERROR(CheckedNumel(od, "output").status());
  Tensor y(values.dtype(), od);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= idx.dim(d);
  for (int d = ax; d < idx.rank(); ++d) inner *= idx.dim(d);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < depth; ++k)
      for (int64_t i = 0; i < inner; ++i) {
        double v = idx.GetAsDouble(o * inner + i);
        int64_t iv = static_cast<int64_t>(v);
        if (iv < 0) iv += depth;
        CopyElement(y, (o * depth + k) * inner + i, values, iv == k ? 1 : 0);
      }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status DepthSpaceKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 4) return InvalidArgument("input must be 4-D");
  KILN_ASSIGN_OR_RETURN(int64_t b, ctx.attrs().RequireInt("blocksize"));
  if (b <= 0) return InvalidArgument("blocksize must be positive");
  KILN_ASSIGN_OR_RETURN(std::string mode, ctx.attrs().GetString("mode", "DCR"));
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  std::vector<int64_t> s = StridesOf(x.dims());
  if (ctx.node().op_type == "DepthToSpace") {
    if (c % (b * b)) return InvalidArgument("channels not divisible by blocksize^2");
    const int64_t oc = c / (b * b);
    Tensor y(x.dtype(), {n, oc, h * b, w * b});
    int64_t i = 0;
    for (int64_t ni = 0; ni < n; ++ni)
      for (int64_t ci = 0; ci < oc; ++ci)
        for (int64_t hi = 0; hi < h * b; ++hi)
          for (int64_t wi = 0; wi < w * b; ++wi, ++i) {
            int64_t bh = hi % b, bw = wi % b;
            int64_t src_c = mode == "DCR" ? (bh * b + bw) * oc + ci : ci * b * b + bh * b + bw;
            CopyElement(y, i, x, ni * s[0] + src_c * s[1] + (hi / b) * s[2] + (wi / b) * s[3]);
          }
    ctx.set_output(0, std::move(y));
  } else {
    if (h % b || w % b) return InvalidArgument("spatial size not divisible by blocksize");
    Tensor y(x.dtype(), {n, c * b * b, h / b, w / b});
    int64_t i = 0;
    for (int64_t ni = 0; ni < n; ++ni)
      for (int64_t oc = 0; oc < c * b * b; ++oc)
        for (int64_t hi = 0; hi < h / b; ++hi)
          for (int64_t wi = 0; wi < w / b; ++wi, ++i) {
            int64_t blk = oc / c, ci = oc % c, bh = blk / b, bw = blk % b;
            CopyElement(y, i, x, ni * s[0] + ci * s[1] + (hi * b + bh) * s[2] + (wi * b + bw) * s[3]);
          }
    ctx.set_output(0, std::move(y));
  }
  return Status::OK();
}

Status TriluKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return InvalidArgument("input must have rank >= 2");
  int64_t k = 0;
  if (ctx.has_input(1)) {
    if (ctx.input(1).numel() != 1) return InvalidArgument("k must be a scalar");
    k = static_cast<int64_t>(ctx.input(1).GetAsDouble(0));
  }
  KILN_ASSIGN_OR_RETURN(int64_t upper, ctx.attrs().GetInt("upper", 1));
  Tensor y(x.dtype(), x.dims());
  const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t c = i % cols, r = (i / cols) % rows;
    bool keep = upper ? c - r >= k : c - r <= k;
    if (keep) CopyElement(y, i, x, i);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status NonZeroKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> hits;
  for (int64_t i = 0; i < x.numel(); ++i)
    if (x.GetAsDouble(i) != 0) hits.push_back(i);
  const int r = std::max(1, x.rank());
  Tensor y(DType::kInt64, {x.rank(), static_cast<int64_t>(hits.size())});
  std::vector<int64_t> pos;
  for (size_t j = 0; j < hits.size(); ++j) {
    Unravel(hits[j], x.dims(), pos);
    for (int d = 0; d < x.rank(); ++d) y.data<int64_t>()[d * static_cast<int64_t>(hits.size()) + static_cast<int64_t>(j)] = pos[static_cast<size_t>(d)];
  }
  (void)r;
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status CompressKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& cond = ctx.input(1);
  if (cond.rank() != 1) return InvalidArgument("condition must be 1-D");
  if (!ctx.attrs().has("axis")) {
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < std::min(cond.numel(), x.numel()); ++i) if (cond.GetAsDouble(i) != 0) keep.push_back(i);
    Tensor y(x.dtype(), {static_cast<int64_t>(keep.size())});
    for (size_t j = 0; j < keep.size(); ++j) CopyElement(y, static_cast<int64_t>(j), x, keep[j]);
    ctx.set_output(0, std::move(y));
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < std::min(cond.numel(), x.dim(ax)); ++i) if (cond.GetAsDouble(i) != 0) keep.push_back(i);
  std::vector<int64_t> od = x.dims();
  od[static_cast<size_t>(ax)] = static_cast<int64_t>(keep.size());
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= x.dim(d);
  for (int d = ax + 1; d < x.rank(); ++d) inner *= x.dim(d);
  Tensor y(x.dtype(), od);
  const int64_t m = static_cast<int64_t>(keep.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t k = 0; k < inner; ++k) CopyElement(y, (o * m + j) * inner + k, x, (o * x.dim(ax) + keep[static_cast<size_t>(j)]) * inner + k);
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status EyeLikeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) return InvalidArgument("input must be 2-D");
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("dtype", static_cast<int64_t>(x.dtype())));
  KILN_ASSIGN_OR_RETURN(int64_t k, ctx.attrs().GetInt("k", 0));
  Tensor y(static_cast<DType>(dt), x.dims());
  for (int64_t r = 0; r < x.dim(0); ++r) {
    int64_t c = r + k;
    if (c >= 0 && c < x.dim(1)) ref::StoreDouble(y, r * x.dim(1) + c, 1.0);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status CumSumKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (ctx.input(1).numel() != 1) return InvalidArgument("axis must be a scalar");
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(static_cast<int64_t>(ctx.input(1).GetAsDouble(0)), x.rank()));
  KILN_ASSIGN_OR_RETURN(int64_t exclusive, ctx.attrs().GetInt("exclusive", 0));
  KILN_ASSIGN_OR_RETURN(int64_t reverse, ctx.attrs().GetInt("reverse", 0));
  Tensor y(x.dtype(), x.dims());
  int64_t outer = 1, inner = 1, n = x.dim(ax);
  for (int d = 0; d < ax; ++d) outer *= x.dim(d);
  for (int d = ax + 1; d < x.rank(); ++d) inner *= x.dim(d);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < inner; ++k) {
      double acc = 0;
      for (int64_t j0 = 0; j0 < n; ++j0) {
        int64_t j = reverse ? n - 1 - j0 : j0;
        int64_t off = (o * n + j) * inner + k;
        double v = x.GetAsDouble(off);
        if (exclusive) { ref::StoreDouble(y, off, acc); acc += v; }
        else { acc += v; ref::StoreDouble(y, off, acc); }
      }
    }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status TopKKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (ctx.input(1).numel() != 1) return InvalidArgument("K must have one element");
  const int64_t k = static_cast<int64_t>(ctx.input(1).GetAsDouble(0));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  KILN_ASSIGN_OR_RETURN(int64_t largest, ctx.attrs().GetInt("largest", 1));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  const int64_t n = x.dim(ax);
  if (k < 0 || k > n) return InvalidArgument("K = ", k, " is out of range for an axis of ", n);
  std::vector<int64_t> od = x.dims();
  od[static_cast<size_t>(ax)] = k;
  Tensor vals(x.dtype(), od), idx(DType::kInt64, od);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= x.dim(d);
  for (int d = ax + 1; d < x.rank(); ++d) inner *= x.dim(d);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      std::iota(order.begin(), order.end(), 0);
      auto val = [&](int64_t j) { return x.GetAsDouble((o * n + j) * inner + in); };
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        double va = val(a), vb = val(b);
        return largest ? va > vb : va < vb;
      });
      for (int64_t j = 0; j < k; ++j) {
        int64_t dst = (o * k + j) * inner + in;
        CopyElement(vals, dst, x, (o * n + order[static_cast<size_t>(j)]) * inner + in);
        idx.data<int64_t>()[dst] = order[static_cast<size_t>(j)];
      }
    }
  ctx.set_output(0, std::move(vals));
  ctx.set_output(1, std::move(idx));
  return Status::OK();
}

Status ArgReduceKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int64_t keep, ctx.attrs().GetInt("keepdims", 1));
  KILN_ASSIGN_OR_RETURN(int64_t last, ctx.attrs().GetInt("select_last_index", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  const bool is_max = ctx.node().op_type == "ArgMax";
  const int64_t n = x.dim(ax);
  if (n == 0) return InvalidArgument("cannot reduce an empty axis");
  std::vector<int64_t> od;
  for (int d = 0; d < x.rank(); ++d) {
    if (d == ax) { if (keep) od.push_back(1); }
    else od.push_back(x.dim(d));
  }
  Tensor y(DType::kInt64, od);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= x.dim(d);
  for (int d = ax + 1; d < x.rank(); ++d) inner *= x.dim(d);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      int64_t best = 0;
      double bv = x.GetAsDouble(o * n * inner + in);
      for (int64_t j = 1; j < n; ++j) {
        double v = x.GetAsDouble((o * n + j) * inner + in);
        bool better = is_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv));
        if (better) { best = j; bv = v; }
      }
      y.data<int64_t>()[o * inner + in] = best;
    }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status ReverseSequenceKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> lens, IntsInput(ctx, 1, "sequence_lens"));
  KILN_ASSIGN_OR_RETURN(int64_t batch_axis, ctx.attrs().GetInt("batch_axis", 1));
  KILN_ASSIGN_OR_RETURN(int64_t time_axis, ctx.attrs().GetInt("time_axis", 0));
  if (x.rank() < 2 || (batch_axis != 0 && batch_axis != 1) || (time_axis != 0 && time_axis != 1) || batch_axis == time_axis)
    return InvalidArgument("batch_axis/time_axis must be 0 and 1");
  if (static_cast<int64_t>(lens.size()) != x.dim(static_cast<int>(batch_axis))) return InvalidArgument("sequence_lens must have one entry per batch");
  Tensor y = x.Clone();
  std::vector<int64_t> s = StridesOf(x.dims()), pos;
  for (int64_t i = 0; i < x.numel(); ++i) {
    Unravel(i, x.dims(), pos);
    int64_t b = pos[static_cast<size_t>(batch_axis)], t = pos[static_cast<size_t>(time_axis)];
    int64_t len = lens[static_cast<size_t>(b)];
    if (len < 0 || len > x.dim(static_cast<int>(time_axis))) return InvalidArgument("sequence_lens out of range");
    if (t < len) {
      pos[static_cast<size_t>(time_axis)] = len - 1 - t;
      int64_t off = 0;
      for (size_t d = 0; d < pos.size(); ++d) off += pos[d] * s[d];
      CopyElement(y, i, x, off);
    }
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status UniqueKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t sorted, ctx.attrs().GetInt("sorted", 1));
  const bool has_axis = ctx.attrs().has("axis");
  int ax = 0;
  Tensor src = x;
  if (has_axis) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
    KILN_ASSIGN_OR_RETURN(ax, NormalizeAxis(axis, x.rank()));
  } else {
    src = x.Reshaped({x.numel()});
  }
  const int64_t n = src.dim(ax);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= src.dim(d);
  for (int d = ax + 1; d < src.rank(); ++d) inner *= src.dim(d);
  // Slice j along the axis as a vector of doubles (comparison key).
  auto key = [&](int64_t j) {
    std::vector<double> k;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) k.push_back(src.GetAsDouble((o * n + j) * inner + in));
    return k;
  };
  std::vector<std::vector<double>> keys;
  for (int64_t j = 0; j < n; ++j) keys.push_back(key(j));
  std::vector<int64_t> firsts;  // first occurrence of each unique slice, in order of appearance
  std::vector<int64_t> which(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    int64_t found = -1;
    for (size_t u = 0; u < firsts.size(); ++u)
      if (keys[static_cast<size_t>(firsts[u])] == keys[static_cast<size_t>(j)]) { found = static_cast<int64_t>(u); break; }
    if (found < 0) { found = static_cast<int64_t>(firsts.size()); firsts.push_back(j); }
    which[static_cast<size_t>(j)] = found;
  }
  std::vector<int64_t> order(firsts.size());
  std::iota(order.begin(), order.end(), 0);
  if (sorted)
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return keys[static_cast<size_t>(firsts[static_cast<size_t>(a)])] < keys[static_cast<size_t>(firsts[static_cast<size_t>(b)])];
    });
  std::vector<int64_t> rank_of(order.size());
  for (size_t r = 0; r < order.size(); ++r) rank_of[static_cast<size_t>(order[r])] = static_cast<int64_t>(r);
  const int64_t m = static_cast<int64_t>(order.size());
  std::vector<int64_t> od = src.dims();
  od[static_cast<size_t>(ax)] = m;
  Tensor y(x.dtype(), od), idx(DType::kInt64, {m}), inv(DType::kInt64, {n}), cnt(DType::kInt64, {m});
  for (int64_t r = 0; r < m; ++r) {
    int64_t j = firsts[static_cast<size_t>(order[static_cast<size_t>(r)])];
    idx.data<int64_t>()[r] = j;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) CopyElement(y, (o * m + r) * inner + in, src, (o * n + j) * inner + in);
  }
  for (int64_t j = 0; j < n; ++j) {
    int64_t r = rank_of[static_cast<size_t>(which[static_cast<size_t>(j)])];
    inv.data<int64_t>()[j] = r;
    cnt.data<int64_t>()[r]++;
  }
  ctx.set_output(0, std::move(y));
  ctx.set_output(1, std::move(idx));
  ctx.set_output(2, std::move(inv));
  ctx.set_output(3, std::move(cnt));
  return Status::OK();
}

// All tensor kernels take tensor inputs; this wrapper checks that once.
template <RefKernelFn Fn>
Status TensorInputs(RefContext& ctx) {
  for (int i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i) && !ctx.input_value(i).is_tensor()) return InvalidArgument("input ", i, " must be a tensor");
  if (ctx.num_inputs() > 0 && !ctx.has_input(0) && ctx.node().op_type != "Constant") return InvalidArgument("input 0 is required");
  return Fn(ctx);
}

}  // namespace

void RegisterTensorKernels(RefKernelRegistry& r) {
  r.Add("", "Reshape", &TensorInputs<ReshapeKernel>);
  r.Add("", "Flatten", &TensorInputs<FlattenKernel>);
  r.Add("", "Squeeze", &TensorInputs<SqueezeKernel>);
  r.Add("", "Unsqueeze", &TensorInputs<UnsqueezeKernel>);
  r.Add("", "Transpose", &TensorInputs<TransposeKernel>);
  r.Add("", "Concat", &TensorInputs<ConcatKernel>);
  r.Add("", "Split", &TensorInputs<SplitKernel>);
  r.Add("", "Slice", &TensorInputs<SliceKernel>);
  r.Add("", "Gather", &TensorInputs<GatherKernel>);
  r.Add("", "GatherElements", &TensorInputs<GatherElementsKernel>);
  r.Add("", "GatherND", &TensorInputs<GatherNDKernel>);
  r.Add("", "ScatterElements", &TensorInputs<ScatterElementsKernel>);
  r.Add("", "Scatter", &TensorInputs<ScatterElementsKernel>);
  r.Add("", "ScatterND", &TensorInputs<ScatterNDKernel>);
  r.Add("", "Expand", &TensorInputs<ExpandKernel>);
  r.Add("", "Tile", &TensorInputs<TileKernel>);
  r.Add("", "Pad", &TensorInputs<PadKernel>);
  r.Add("", "Shape", &TensorInputs<ShapeKernel>);
  r.Add("", "Size", &TensorInputs<SizeKernel>);
  r.Add("", "ConstantOfShape", &TensorInputs<ConstantOfShapeKernel>);
  r.Add("", "Constant", &ConstantKernel);
  r.Add("", "Range", &TensorInputs<RangeKernel>);
  r.Add("", "OneHot", &TensorInputs<OneHotKernel>);
  r.Add("", "DepthToSpace", &TensorInputs<DepthSpaceKernel>);
  r.Add("", "SpaceToDepth", &TensorInputs<DepthSpaceKernel>);
  r.Add("", "Trilu", &TensorInputs<TriluKernel>);
  r.Add("", "NonZero", &TensorInputs<NonZeroKernel>);
  r.Add("", "Compress", &TensorInputs<CompressKernel>);
  r.Add("", "EyeLike", &TensorInputs<EyeLikeKernel>);
  r.Add("", "CumSum", &TensorInputs<CumSumKernel>);
  r.Add("", "TopK", &TensorInputs<TopKKernel>);
  r.Add("", "ArgMax", &TensorInputs<ArgReduceKernel>);
  r.Add("", "ArgMin", &TensorInputs<ArgReduceKernel>);
  r.Add("", "ReverseSequence", &TensorInputs<ReverseSequenceKernel>);
  r.Add("", "Unique", &TensorInputs<UniqueKernel>);
}

}  // namespace kiln
