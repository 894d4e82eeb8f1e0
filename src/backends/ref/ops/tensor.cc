// Reference kernels of the tensor family, layout part: ops that only rearrange elements
// (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice, Expand, Tile,
// Pad, DepthToSpace, SpaceToDepth). The other parts live in tensor_*.cc; this file holds
// the family's registration.
#include <algorithm>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "backends/ref/ops/tensor_util.h"
#include "base/checked_math.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"
#include "ir/ops/tensor_geometry.h"

namespace kiln {

namespace {

using ref::CopyElement;
using ref::DimProduct;
using ref::IntsInput;
using ref::StridedCopy;
using ref::TensorInputs;
using ref::Unravel;

// Reshape's target dims: 0 copies the input dim (unless allowzero), one -1 is inferred.
StatusOr<std::vector<int64_t>> ReshapeTarget(const Tensor& x, std::vector<int64_t> shape, bool allowzero) {
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowzero) {
      if (i >= x.dims().size()) return InvalidArgument("shape[", i, "] = 0 but the input has rank ", x.rank());
      shape[i] = x.dim(static_cast<int>(i));
    }
    if (shape[i] == -1) {
      if (infer >= 0) return InvalidArgument("input 'shape' has more than one -1");
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      return InvalidArgument("input 'shape' has an invalid value ", shape[i]);
    } else if (!CheckedMul(known, shape[i], &known)) {
      return InvalidArgument("input 'shape' overflows");
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known) return InvalidArgument("cannot reshape ", x.ShapeString(), " to ", DimsToString(shape));
    shape[static_cast<size_t>(infer)] = x.numel() / known;
  } else if (known != x.numel()) {
    return InvalidArgument("cannot reshape ", x.ShapeString(), " to ", DimsToString(shape));
  }
  return shape;
}

Status ReshapeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, IntsInput(ctx, 1, "shape"));
  KILN_ASSIGN_OR_RETURN(int64_t allowzero, ctx.attrs().GetInt("allowzero", 0));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, ReshapeTarget(x, std::move(shape), allowzero != 0));
  ctx.set_output(0, x.Clone().Reshaped(std::move(dims)));
  return Status::OK();
}

Status FlattenKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 1));
  if (axis < -x.rank() || axis > x.rank()) return InvalidArgument("attribute 'axis' ", axis, " is out of range for rank ", x.rank());
  if (axis < 0) axis += x.rank();
  const int a = static_cast<int>(axis);
  ctx.set_output(0, x.Clone().Reshaped({DimProduct(x.dims(), 0, a), DimProduct(x.dims(), a, x.rank())}));
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
  std::vector<int64_t> dims;
  for (int i = 0; i < x.rank(); ++i)
    if (!drop[static_cast<size_t>(i)]) dims.push_back(x.dim(i));
  ctx.set_output(0, x.Clone().Reshaped(dims));
  return Status::OK();
}

Status UnsqueezeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, IntsInput(ctx, 1, "axes"));
  const int r = x.rank() + static_cast<int>(axes.size());
  std::vector<bool> inserted(static_cast<size_t>(r), false);
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, "axes"));
    if (inserted[static_cast<size_t>(ax)]) return InvalidArgument("input 'axes' has a duplicate: ", a);
    inserted[static_cast<size_t>(ax)] = true;
  }
  std::vector<int64_t> dims;
  int k = 0;
  for (int i = 0; i < r; ++i) dims.push_back(inserted[static_cast<size_t>(i)] ? 1 : x.dim(k++));
  ctx.set_output(0, x.Clone().Reshaped(dims));
  return Status::OK();
}

Status TransposeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, ctx.attrs().GetInts("perm"));
  if (perm.empty())
    for (int i = x.rank() - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int>(perm.size()) != x.rank()) return InvalidArgument("attribute 'perm' does not match the input rank");
  std::vector<int64_t> strides = StridesOf(x.dims()), out_dims, src_strides;
  std::vector<bool> seen(perm.size(), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= x.rank() || seen[static_cast<size_t>(p)]) return InvalidArgument("attribute 'perm' is not a permutation");
    seen[static_cast<size_t>(p)] = true;
    out_dims.push_back(x.dim(static_cast<int>(p)));
    src_strides.push_back(strides[static_cast<size_t>(p)]);
  }
  ctx.set_output(0, StridedCopy(x, out_dims, src_strides));
  return Status::OK();
}

Status ConcatKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().RequireInt("axis"));
  std::vector<const Tensor*> ins;
  for (int i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i)) ins.push_back(&ctx.input(i));
  const int r = ins[0]->rank();
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, r));
  std::vector<int64_t> out_dims = ins[0]->dims();
  out_dims[static_cast<size_t>(ax)] = 0;
  for (const Tensor* t : ins) {
    if (t->rank() != r || t->dtype() != ins[0]->dtype()) return InvalidArgument("inputs differ in rank or type");
    for (int d = 0; d < r; ++d)
      if (d != ax && t->dim(d) != ins[0]->dim(d)) return InvalidArgument("inputs differ in dimension ", d);
    out_dims[static_cast<size_t>(ax)] += t->dim(ax);
  }
  Tensor y(ins[0]->dtype(), out_dims);
  const int64_t outer = DimProduct(out_dims, 0, ax), inner = DimProduct(out_dims, ax + 1, r);
  const int64_t out_block = out_dims[static_cast<size_t>(ax)] * inner;
  int64_t off = 0;  // where this input's block starts inside each output block
  for (const Tensor* t : ins) {
    const int64_t block = t->dim(ax) * inner;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < block; ++k) CopyElement(y, o * out_block + off + k, *t, o * block + k);
    off += block;
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// x[.., start:start+len, ..] along `ax`.
Tensor SliceAxis(const Tensor& x, int ax, int64_t start, int64_t len) {
  std::vector<int64_t> out_dims = x.dims();
  out_dims[static_cast<size_t>(ax)] = len;
  std::vector<int64_t> strides = StridesOf(x.dims());
  return StridedCopy(x, out_dims, strides, len > 0 ? start * strides[static_cast<size_t>(ax)] : 0);
}

Status SplitKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  const int n = ctx.num_outputs();
  const int64_t d = x.dim(ax);
  std::vector<int64_t> sizes;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(sizes, IntsInput(ctx, 1, "split"));
    if (static_cast<int>(sizes.size()) != n) return InvalidArgument("input 'split' has ", sizes.size(), " entries for ", n, " outputs");
    int64_t total = 0;
    for (int64_t s : sizes) {
      if (s < 0) return InvalidArgument("input 'split' has a negative size");
      total += s;
    }
    if (total != d) return InvalidArgument("input 'split' sums to ", total, " but the axis has ", d);
  } else {
    // Equal parts; when d is not divisible the last part is smaller (opset 18 num_outputs).
    const int64_t chunk = (d + n - 1) / n;
    for (int i = 0; i < n; ++i) sizes.push_back(std::clamp<int64_t>(d - chunk * i, 0, chunk));
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
  std::vector<int64_t> axes, steps(starts.size(), 1);
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(axes, IntsInput(ctx, 3, "axes"));
  } else {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (ctx.has_input(4)) { KILN_ASSIGN_OR_RETURN(steps, IntsInput(ctx, 4, "steps")); }
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return InvalidArgument("starts, ends, axes and steps must have the same length");
  const size_t r = static_cast<size_t>(x.rank());
  std::vector<int64_t> first(r, 0), step_of(r, 1), out_dims = x.dims();
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < axes.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axes[i], x.rank(), "axes"));
    if (seen[static_cast<size_t>(ax)]) return InvalidArgument("input 'axes' repeats axis ", axes[i]);
    seen[static_cast<size_t>(ax)] = true;
    if (steps[i] == 0) return InvalidArgument("input 'steps' must not contain 0");
    const SliceAxisRange range = ComputeSliceAxis(starts[i], ends[i], steps[i], x.dim(ax));
    first[static_cast<size_t>(ax)] = range.start;
    step_of[static_cast<size_t>(ax)] = steps[i];
    out_dims[static_cast<size_t>(ax)] = range.length;
  }
  std::vector<int64_t> strides = StridesOf(x.dims()), src_strides(r);
  int64_t base = 0;
  for (size_t a = 0; a < r; ++a) {
    src_strides[a] = out_dims[a] > 1 ? strides[a] * step_of[a] : 0;  // one element: the step never applies
    if (out_dims[a] > 0) base += first[a] * strides[a];
  }
  ctx.set_output(0, StridedCopy(x, out_dims, src_strides, base));
  return Status::OK();
}

Status ExpandKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, IntsInput(ctx, 1, "shape"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out_dims, ref::BroadcastDims({x.dims(), shape}));
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(x.dtype(), out_dims, "output"));
  for (ref::BroadcastIter it(out_dims, {x.dims()}); !it.done(); it.Next()) CopyElement(y, it.index(), x, it.offset(0));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status TileKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> reps, IntsInput(ctx, 1, "repeats"));
  if (static_cast<int>(reps.size()) != x.rank()) return InvalidArgument("input 'repeats' must have one entry per dimension");
  std::vector<int64_t> out_dims(reps.size());
  for (int d = 0; d < x.rank(); ++d) {
    const int64_t rep = reps[static_cast<size_t>(d)];
    if (rep < 0) return InvalidArgument("input 'repeats' must be non-negative");
    if (!CheckedMul(x.dim(d), rep, &out_dims[static_cast<size_t>(d)])) return InvalidArgument("output of Tile overflows");
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(x.dtype(), out_dims, "output"));
  std::vector<int64_t> strides = StridesOf(x.dims()), pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    Unravel(i, out_dims, pos);
    int64_t off = 0;
    for (int d = 0; d < x.rank(); ++d) off += (pos[static_cast<size_t>(d)] % x.dim(d)) * strides[static_cast<size_t>(d)];
    CopyElement(y, i, x, off);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

StatusOr<PadMode> ParsePadMode(const std::string& mode) {
  if (mode == "constant") return PadMode::kConstant;
  if (mode == "reflect") return PadMode::kReflect;
  if (mode == "edge") return PadMode::kEdge;
  if (mode == "wrap") return PadMode::kWrap;
  return InvalidArgument("attribute 'mode' has unknown value '", mode, "'");
}

// Maps a position p outside [0, n) of a padded axis back into the input (n > 0).
int64_t PadSource(int64_t p, int64_t n, PadMode mode) {
  switch (mode) {
    case PadMode::kEdge: return p < 0 ? 0 : n - 1;
    case PadMode::kWrap: return ((p % n) + n) % n;
    case PadMode::kReflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);  // reflection without repeating the edge
      p = ((p % period) + period) % period;
      return p >= n ? period - p : p;
    }
    case PadMode::kConstant: break;
  }
  return p;
}

Status PadKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, IntsInput(ctx, 1, "pads"));
  KILN_ASSIGN_OR_RETURN(std::string mode_name, ctx.attrs().GetString("mode", "constant"));
  KILN_ASSIGN_OR_RETURN(PadMode mode, ParsePadMode(mode_name));
  const int r = x.rank();
  std::vector<int64_t> axes;
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(axes, IntsInput(ctx, 3, "axes"));
  } else {
    for (int i = 0; i < r; ++i) axes.push_back(i);
  }
  if (pads.size() != 2 * axes.size()) return InvalidArgument("input 'pads' has ", pads.size(), " entries, need ", 2 * axes.size());
  std::vector<int64_t> lo(static_cast<size_t>(r), 0), out_dims = x.dims();
  for (size_t i = 0; i < axes.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axes[i], r, "axes"));
    const size_t a = static_cast<size_t>(ax);
    lo[a] = pads[i];
    int64_t grown;
    if (!CheckedAdd(pads[i], pads[i + axes.size()], &grown) || !CheckedAdd(out_dims[a], grown, &out_dims[a]))
      return InvalidArgument("input 'pads' overflows");
    if (out_dims[a] < 0) return InvalidArgument("input 'pads' makes dimension ", ax, " negative");
    if (mode != PadMode::kConstant && x.dim(ax) == 0 && out_dims[a] > 0)
      return InvalidArgument("cannot pad an empty dimension in mode '", mode_name, "'");
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(x.dtype(), out_dims, "output"));
  const bool has_value = ctx.has_input(2) && ctx.input(2).numel() > 0;
  if (has_value && ctx.input(2).dtype() != x.dtype()) return InvalidArgument("input 'constant_value' must have the data's type");
  std::vector<int64_t> strides = StridesOf(x.dims()), pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    Unravel(i, out_dims, pos);
    int64_t off = 0;
    bool outside = false;
    for (int d = 0; d < r && !outside; ++d) {
      int64_t p = pos[static_cast<size_t>(d)] - lo[static_cast<size_t>(d)];
      if (p < 0 || p >= x.dim(d)) {
        if (mode == PadMode::kConstant) outside = true;
        else p = PadSource(p, x.dim(d), mode);
      }
      off += p * strides[static_cast<size_t>(d)];
    }
    if (!outside) CopyElement(y, i, x, off);
    else if (has_value) CopyElement(y, i, ctx.input(2), 0);  // else stays zero / ""
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// DepthToSpace (DCR or CRD) and SpaceToDepth as one index mapping: for an output element
// of the rearranged tensor, the input element it copies.
Status DepthSpaceKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 4) return InvalidArgument("input must be 4-D, got ", x.ShapeString());
  KILN_ASSIGN_OR_RETURN(int64_t b, ctx.attrs().RequireInt("blocksize"));
  if (b <= 0 || b > (int64_t{1} << 20)) return InvalidArgument("attribute 'blocksize' must be positive, got ", b);
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const std::vector<int64_t> s = StridesOf(x.dims());
  if (ctx.node().op_type == "DepthToSpace") {
    KILN_ASSIGN_OR_RETURN(std::string mode, ctx.attrs().GetString("mode", "DCR"));
    if (mode != "DCR" && mode != "CRD") return InvalidArgument("attribute 'mode' must be DCR or CRD, got '", mode, "'");
    if (c % (b * b)) return InvalidArgument("channels (", c, ") not divisible by blocksize^2");
    const int64_t oc = c / (b * b);
    Tensor y(x.dtype(), {n, oc, h * b, w * b});
    int64_t i = 0;
    for (int64_t ni = 0; ni < n; ++ni)
      for (int64_t ci = 0; ci < oc; ++ci)
        for (int64_t hi = 0; hi < h * b; ++hi)
          for (int64_t wi = 0; wi < w * b; ++wi, ++i) {
            const int64_t bh = hi % b, bw = wi % b;
            const int64_t src_c = mode == "DCR" ? (bh * b + bw) * oc + ci : ci * b * b + bh * b + bw;
            CopyElement(y, i, x, ni * s[0] + src_c * s[1] + (hi / b) * s[2] + (wi / b) * s[3]);
          }
    ctx.set_output(0, std::move(y));
    return Status::OK();
  }
  if (h % b || w % b) return InvalidArgument("spatial size (", h, "x", w, ") not divisible by blocksize");
  Tensor y(x.dtype(), {n, c * b * b, h / b, w / b});
  int64_t i = 0;
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t oc = 0; oc < c * b * b; ++oc)
      for (int64_t hi = 0; hi < h / b; ++hi)
        for (int64_t wi = 0; wi < w / b; ++wi, ++i) {
          const int64_t blk = oc / c, ci = oc % c, bh = blk / b, bw = blk % b;
          CopyElement(y, i, x, ni * s[0] + ci * s[1] + (hi * b + bh) * s[2] + (wi * b + bw) * s[3]);
        }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

namespace ref {

void RegisterTensorLayoutKernels(RefKernelRegistry& r) {
  r.Add("", "Reshape", &TensorInputs<ReshapeKernel>);
  r.Add("", "Flatten", &TensorInputs<FlattenKernel>);
  r.Add("", "Squeeze", &TensorInputs<SqueezeKernel>);
  r.Add("", "Unsqueeze", &TensorInputs<UnsqueezeKernel>);
  r.Add("", "Transpose", &TensorInputs<TransposeKernel>);
  r.Add("", "Concat", &TensorInputs<ConcatKernel>);
  r.Add("", "Split", &TensorInputs<SplitKernel>);
  r.Add("", "Slice", &TensorInputs<SliceKernel>);
  r.Add("", "Expand", &TensorInputs<ExpandKernel>);
  r.Add("", "Tile", &TensorInputs<TileKernel>);
  r.Add("", "Pad", &TensorInputs<PadKernel>);
  r.Add("", "DepthToSpace", &TensorInputs<DepthSpaceKernel>);
  r.Add("", "SpaceToDepth", &TensorInputs<DepthSpaceKernel>);
}

}  // namespace ref

void RegisterTensorKernels(RefKernelRegistry& r) {
  ref::RegisterTensorLayoutKernels(r);
  ref::RegisterTensorIndexKernels(r);
  ref::RegisterTensorCreateKernels(r);
  ref::RegisterTensorSortKernels(r);
}

}  // namespace kiln
