// Reference kernels: sequence ops (SequenceConstruct/Empty/At/Insert/Erase/Length,
// SplitToSequence, ConcatFromSequence) and optionals (Optional, OptionalGetElement,
// OptionalHasElement). Sequences hold tensors by handle: no element is ever copied.
#include <algorithm>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/control_flow_util.h"
#include "base/checked_math.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

using namespace ref::control_flow;  // NOLINT: this family's private helpers

StatusOr<const std::vector<Tensor>*> SequenceInput(const RefContext& ctx, int i) {
  if (!ctx.input_value(i).is_sequence()) return InvalidArgument("input ", i, " 'input_sequence' must be a sequence");
  return &ctx.input_value(i).sequence;
}

// A position input in [-n, n - 1] (or [-n, n] when `allow_end`); negative counts from the
// back. Absent: `dflt`.
StatusOr<size_t> PositionInput(const RefContext& ctx, int i, size_t n, bool allow_end, int64_t dflt) {
  int64_t p = dflt;
  if (ctx.has_input(i)) { KILN_ASSIGN_OR_RETURN(p, ReadInteger(ctx.input_value(i), "input 'position'")); }
  const int64_t size = static_cast<int64_t>(n);
  const int64_t hi = allow_end ? size : size - 1;
  if (p < -size || p > hi)
    return OutOfRange("input 'position' is ", p, ", out of range [", -size, ", ", hi, "] for a sequence of ", n);
  return static_cast<size_t>(p < 0 ? p + size : p);
}

Status SequenceConstructKernel(RefContext& ctx) {
  std::vector<Tensor> items;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
    if (i > 0 && ctx.input(i).dtype() != items[0].dtype())
      return InvalidArgument("input ", i, " is ", DTypeName(ctx.input(i).dtype()), " but input 0 is ", DTypeName(items[0].dtype()));
    items.push_back(ctx.input(i));
  }
  ctx.set_output_value(0, RValue::Sequence(std::move(items)));
  return Status::OK();
}

Status SequenceEmptyKernel(RefContext& ctx) {
  ctx.set_output_value(0, RValue::Sequence({}));
  return Status::OK();
}

Status SequenceAtKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SequenceInput(ctx, 0));
  if (!ctx.has_input(1)) return InvalidArgument("input 'position' is required");
  KILN_ASSIGN_OR_RETURN(size_t p, PositionInput(ctx, 1, seq->size(), false, 0));
  ctx.set_output(0, (*seq)[p]);
  return Status::OK();
}

Status SequenceInsertKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SequenceInput(ctx, 0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& t = ctx.input(1);
  if (!seq->empty() && t.dtype() != seq->front().dtype())
    return InvalidArgument("input 'tensor' is ", DTypeName(t.dtype()), " but the sequence holds ", DTypeName(seq->front().dtype()));
  KILN_ASSIGN_OR_RETURN(size_t p, PositionInput(ctx, 2, seq->size(), true, static_cast<int64_t>(seq->size())));
  std::vector<Tensor> items = *seq;
  items.insert(items.begin() + static_cast<std::ptrdiff_t>(p), t);
  ctx.set_output_value(0, RValue::Sequence(std::move(items)));
  return Status::OK();
}

Status SequenceEraseKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SequenceInput(ctx, 0));
  if (seq->empty()) return OutOfRange("cannot erase from an empty sequence");
  KILN_ASSIGN_OR_RETURN(size_t p, PositionInput(ctx, 1, seq->size(), false, -1));
  std::vector<Tensor> items = *seq;
  items.erase(items.begin() + static_cast<std::ptrdiff_t>(p));
  ctx.set_output_value(0, RValue::Sequence(std::move(items)));
  return Status::OK();
}

Status SequenceLengthKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SequenceInput(ctx, 0));
  ctx.set_output(0, Tensor::Scalar<int64_t>(static_cast<int64_t>(seq->size())));
  return Status::OK();
}

// Chunk lengths along an axis of size `dim`: from the optional `split` input (a scalar
// chunk size, the last chunk taking the remainder, or explicit 1-D lengths), else all 1.
StatusOr<std::vector<int64_t>> ChunkLengths(const RefContext& ctx, int64_t dim) {
  if (!ctx.has_input(1)) return std::vector<int64_t>(static_cast<size_t>(dim), 1);
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& split = ctx.input(1);
  if (split.rank() > 1) return InvalidArgument("input 'split' must be a scalar or 1-D, got ", split.ShapeString());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, split.ToInt64Vector());
  if (split.rank() == 0) {
    if (v[0] <= 0) return InvalidArgument("input 'split' must be positive, got ", v[0]);
    std::vector<int64_t> lengths;
    for (int64_t start = 0; start < dim; start += v[0]) lengths.push_back(std::min(v[0], dim - start));
    return lengths;
  }
  if (v.empty()) return InvalidArgument("input 'split' is empty");
  int64_t total = 0;
  for (int64_t len : v) {
    if (len < 0) return InvalidArgument("input 'split' has negative length ", len);
    if (!CheckedAdd(total, len, &total)) return InvalidArgument("input 'split' sums past int64");
  }
  if (total != dim) return InvalidArgument("input 'split' sums to ", total, " but the axis has size ", dim);
  return v;
}

Status SplitToSequenceKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  if (x.rank() == 0) return InvalidArgument("input 'input' must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int64_t axis_attr, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int64_t keepdims, ctx.attrs().GetInt("keepdims", 1));
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_attr, x.rank()));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> lengths, ChunkLengths(ctx, x.dim(axis)));
  // keepdims applies only to the default split into chunks of 1.
  const bool squeeze = !ctx.has_input(1) && keepdims == 0;
  std::vector<int64_t> squeezed = x.dims();
  squeezed.erase(squeezed.begin() + axis);
  const Tensor front = MoveAxisToFront(x, axis);
  std::vector<Tensor> items;
  int64_t start = 0;
  for (int64_t len : lengths) {
    Tensor chunk = MoveFrontToAxis(SliceFront(front, start, len), axis);
    items.push_back(squeeze ? chunk.Reshaped(squeezed) : chunk);
    start += len;
  }
  ctx.set_output_value(0, RValue::Sequence(std::move(items)));
  return Status::OK();
}

Status ConcatFromSequenceKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, SequenceInput(ctx, 0));
  KILN_ASSIGN_OR_RETURN(int64_t axis_attr, ctx.attrs().RequireInt("axis"));
  KILN_ASSIGN_OR_RETURN(int64_t new_axis, ctx.attrs().GetInt("new_axis", 0));
  if (new_axis != 0 && new_axis != 1) return InvalidArgument("attribute 'new_axis' must be 0 or 1, got ", new_axis);
  if (seq->empty()) return InvalidArgument("cannot concatenate an empty sequence");
  const int rank = seq->front().rank();
  const int out_rank = rank + static_cast<int>(new_axis);
  if (out_rank == 0) return InvalidArgument("cannot concatenate scalars without 'new_axis'");
  KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_attr, out_rank));
  std::vector<Tensor> parts;
  for (size_t k = 0; k < seq->size(); ++k) {
    const Tensor& t = (*seq)[k];
    if (t.rank() != rank) return InvalidArgument("sequence element ", k, " has rank ", t.rank(), ", element 0 has ", rank);
    std::vector<int64_t> dims = t.dims();
    if (new_axis) dims.insert(dims.begin() + axis, 1);
    parts.push_back(MoveAxisToFront(t.Reshaped(dims), axis));
  }
  KILN_ASSIGN_OR_RETURN(Tensor cat, ConcatFront(parts, "sequence element"));
  ctx.set_output(0, MoveFrontToAxis(cat, axis));
  return Status::OK();
}

// ---------------------------------------------------------------------------------------
// Optionals: an optional holding a value is that value at run time; an empty one is
// RValue::None().

Status OptionalKernel(RefContext& ctx) {
  ctx.set_output_value(0, ctx.input_value(0));
  return Status::OK();
}

Status OptionalGetElementKernel(RefContext& ctx) {
  const RValue& v = ctx.input_value(0);
  if (v.is_none()) return InvalidArgument("input 0 is an empty optional");
  ctx.set_output_value(0, v);
  return Status::OK();
}

Status OptionalHasElementKernel(RefContext& ctx) {
  ctx.set_output(0, Tensor::Scalar<bool>(!ctx.input_value(0).is_none()));
  return Status::OK();
}

}  // namespace

void RegisterControlFlowSequenceKernels(RefKernelRegistry& r) {
  r.Add("", "SequenceConstruct", &SequenceConstructKernel);
  r.Add("", "SequenceEmpty", &SequenceEmptyKernel);
  r.Add("", "SequenceAt", &SequenceAtKernel);
  r.Add("", "SequenceInsert", &SequenceInsertKernel);
  r.Add("", "SequenceErase", &SequenceEraseKernel);
  r.Add("", "SequenceLength", &SequenceLengthKernel);
  r.Add("", "SplitToSequence", &SplitToSequenceKernel);
  r.Add("", "ConcatFromSequence", &ConcatFromSequenceKernel);
  r.Add("", "Optional", &OptionalKernel);
  r.Add("", "OptionalGetElement", &OptionalGetElementKernel);
  r.Add("", "OptionalHasElement", &OptionalHasElementKernel);
}

}  // namespace kiln
