// Schemas of the reduce/RNN/signal family: reductions, recurrent ops and NonMaxSuppression
// here; signal and text ops in reduce_rnn_signal_signal.cc.
#include <string>

#include "ir/ops/sub_families.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {


namespace {

// Reduce*: axes as optional input 1 (the opset-18 form every version is normalized to).
Status InferReduce(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t keep, ctx.attrs().GetInt("keepdims", 1));
  KILN_ASSIGN_OR_RETURN(int64_t noop, ctx.attrs().GetInt("noop_with_empty_axes", 0));
  if (x.dtype == DType::kString || x.dtype == DType::kComplex64 || x.dtype == DType::kComplex128)
    return InvalidArgument("input 'data' must be numeric, got ", DTypeName(x.dtype));
  if (ctx.has_input(1)) {
    const TypeInfo& a = ctx.input_type(1);
    if (a.dtype != DType::kInt64 && a.dtype != DType::kInt32 && a.dtype != DType::kUndefined)
      return InvalidArgument("input 'axes' must be int64");
    if (a.shape.has_rank() && a.shape.rank() != 1) return InvalidArgument("input 'axes' must be 1-D");
  }
  if (!x.shape.has_rank()) {
    ctx.set_output(0, x.dtype, Shape());
    return Status::OK();
  }
  const int r = x.shape.rank();
  std::vector<int64_t> axes;
  if (ctx.has_input(1)) {
    const Tensor* a = ctx.input_value(1);
    if (a == nullptr) {  // axes known only at run time: keepdims keeps the rank, nothing else is known
      ctx.set_output(0, x.dtype, keep ? Shape::OfRank(r) : Shape());
      return Status::OK();
    }
    KILN_ASSIGN_OR_RETURN(axes, a->ToInt64Vector());
  }
  if (axes.empty() && noop) {
    ctx.set_output(0, x.dtype, x.shape);
    return Status::OK();
  }
  std::vector<bool> reduced(static_cast<size_t>(r), axes.empty());
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, "axes"));
    reduced[static_cast<size_t>(ax)] = true;
  }
  std::vector<Dim> out;
  for (int i = 0; i < r; ++i) {
    if (!reduced[static_cast<size_t>(i)]) out.push_back(x.shape.dim(i));
    else if (keep) out.push_back(Dim(1));
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

// Checks that a statically known dim of input `what` equals `want` (when both are known).
Status CheckDim(const TypeInfo& t, int axis, const Dim& want, const char* what) {
  if (!t.shape.has_rank() || axis >= t.shape.rank()) return Status::OK();
  const Dim& d = t.shape.dim(axis);
  if (d.known() && want.known() && d.value != want.value)
    return InvalidArgument("input '", what, "' has dim ", axis, " = ", d.value, ", expected ", want.value);
  return Status::OK();
}

Status CheckRank(const TypeInfo& t, int rank, const char* what) {
  if (t.shape.has_rank() && t.shape.rank() != rank)
    return InvalidArgument("input '", what, "' must have rank ", rank, ", got ", t.shape.ToString());
  return Status::OK();
}

// RNN/GRU/LSTM: Y [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]), Y_h (and Y_c)
// [dirs, batch, hidden] (layout 1: [batch, dirs, hidden]).
Status InferRecurrent(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  const std::string& op = ctx.node().op_type;
  const int64_t gates = op == "RNN" ? 1 : op == "GRU" ? 3 : 4;
  KILN_ASSIGN_OR_RETURN(int64_t layout, ctx.attrs().GetInt("layout", 0));
  KILN_ASSIGN_OR_RETURN(int64_t hidden, ctx.attrs().RequireInt("hidden_size"));
  KILN_ASSIGN_OR_RETURN(std::string dir, ctx.attrs().GetString("direction", "forward"));
  if (hidden <= 0 || hidden > (int64_t{1} << 24)) return InvalidArgument("attribute 'hidden_size' must be positive");
  if (layout != 0 && layout != 1) return InvalidArgument("attribute 'layout' must be 0 or 1");
  if (dir != "forward" && dir != "reverse" && dir != "bidirectional")
    return InvalidArgument("attribute 'direction' must be forward, reverse or bidirectional, got '", dir, "'");
  if (!IsFloat(x.dtype) && x.dtype != DType::kUndefined) return InvalidArgument("input 'X' must be a float tensor");
  const Dim dirs(dir == "bidirectional" ? 2 : 1);
  KILN_RETURN_IF_ERROR(CheckRank(x, 3, "X"));
  KILN_RETURN_IF_ERROR(CheckRank(ctx.input_type(1), 3, "W"));
  KILN_RETURN_IF_ERROR(CheckRank(ctx.input_type(2), 3, "R"));
  KILN_RETURN_IF_ERROR(CheckDim(ctx.input_type(1), 0, dirs, "W"));
  KILN_RETURN_IF_ERROR(CheckDim(ctx.input_type(1), 1, Dim(gates * hidden), "W"));
  KILN_RETURN_IF_ERROR(CheckDim(ctx.input_type(2), 0, dirs, "R"));
  KILN_RETURN_IF_ERROR(CheckDim(ctx.input_type(2), 1, Dim(gates * hidden), "R"));
  KILN_RETURN_IF_ERROR(CheckDim(ctx.input_type(2), 2, Dim(hidden), "R"));
  Dim seq = Dim::Unknown(), batch = Dim::Unknown();
  if (x.shape.has_rank()) {
    seq = x.shape.dim(layout ? 1 : 0);
    batch = x.shape.dim(layout ? 0 : 1);
    KILN_RETURN_IF_ERROR(CheckDim(ctx.input_type(1), 2, x.shape.dim(2), "W"));
  }
  if (ctx.has_output(0))
    ctx.set_output(0, x.dtype, layout ? Shape({batch, seq, dirs, Dim(hidden)}) : Shape({seq, dirs, batch, Dim(hidden)}));
  for (int i = 1; i < ctx.num_outputs(); ++i)
    if (ctx.has_output(i)) ctx.set_output(i, x.dtype, layout ? Shape({batch, dirs, Dim(hidden)}) : Shape({dirs, batch, Dim(hidden)}));
  return Status::OK();
}

// Selected indices [num_selected, 3] of (batch, class, box): the count depends on the data.
Status InferNms(InferenceContext& ctx) {
  const TypeInfo& boxes = ctx.input_type(0);
  const TypeInfo& scores = ctx.input_type(1);
  KILN_RETURN_IF_ERROR(CheckRank(boxes, 3, "boxes"));
  KILN_RETURN_IF_ERROR(CheckRank(scores, 3, "scores"));
  KILN_RETURN_IF_ERROR(CheckDim(boxes, 2, Dim(4), "boxes"));
  if (boxes.shape.has_rank() && scores.shape.has_rank()) {
    KILN_RETURN_IF_ERROR(CheckDim(scores, 0, boxes.shape.dim(0), "scores"));
    KILN_RETURN_IF_ERROR(CheckDim(scores, 2, boxes.shape.dim(1), "scores"));
  }
  KILN_ASSIGN_OR_RETURN(int64_t center, ctx.attrs().GetInt("center_point_box", 0));
  if (center != 0 && center != 1) return InvalidArgument("attribute 'center_point_box' must be 0 or 1");
  ctx.set_output(0, DType::kInt64, Shape({Dim::Unknown(), Dim(3)}));
  return Status::OK();
}

}  // namespace

void RegisterReduceRnnSignalSchemas(OpRegistry& r) {
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
    r.Add(OpSchema{op, "", 1, 2, 1, 1, InferReduce, FusionClass::kReduction});
  r.Add(OpSchema{"RNN", "", 3, 6, 0, 2, InferRecurrent, FusionClass::kOpaque});
  r.Add(OpSchema{"GRU", "", 3, 6, 0, 2, InferRecurrent, FusionClass::kOpaque});
  r.Add(OpSchema{"LSTM", "", 3, 8, 0, 3, InferRecurrent, FusionClass::kOpaque});
  r.Add(OpSchema{"NonMaxSuppression", "", 2, 5, 1, 1, InferNms, FusionClass::kOpaque});
  RegisterSignalTextSchemas(r);
}

}  // namespace kiln
