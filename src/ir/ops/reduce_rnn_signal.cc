// Reductions (and, as they arrive, recurrent, signal and text ops).
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// Reduce*: axes as optional input 1 (the opset-18 form every version is normalized to).
Status InferReduce(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t keep, ctx.attrs().GetInt("keepdims", 1));
  KILN_ASSIGN_OR_RETURN(int64_t noop, ctx.attrs().GetInt("noop_with_empty_axes", 0));
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  const int r = x.shape.rank();
  std::vector<int64_t> axes;
  if (ctx.has_input(1)) {
    const Tensor* a = ctx.input_value(1);
    if (a == nullptr) {
      ctx.set_output(0, x.dtype, keep ? Shape::OfRank(r) : Shape());
      return Status::OK();
    }
    KILN_ASSIGN_OR_RETURN(axes, a->ToInt64Vector());
  }
  if (axes.empty() && noop) { ctx.set_output(0, x.dtype, x.shape); return Status::OK(); }
  std::vector<bool> red(static_cast<size_t>(r), axes.empty());
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, "axes"));
    red[static_cast<size_t>(ax)] = true;
  }
  std::vector<Dim> out;
  for (int i = 0; i < r; ++i) {
    if (!red[static_cast<size_t>(i)]) out.push_back(x.shape.dim(i));
    else if (keep) out.push_back(Dim(1));
  }
  ctx.set_output(0, x.dtype, Shape(std::move(out)));
  return Status::OK();
}

Status InferWindow(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("output_datatype", 1));
  if (!IsValidDType(static_cast<int32_t>(dt))) return InvalidArgument("attribute 'output_datatype' is not a valid type");
  const Tensor* n = ctx.input_value(0);
  ctx.set_output(static_cast<int>(0), static_cast<DType>(dt),
                 n && n->numel() == 1 ? Shape::FromDims({static_cast<int64_t>(n->GetAsDouble(0))}) : Shape::OfRank(1));
  return Status::OK();
}

Status InferStringNormalizer(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (x.dtype != DType::kString) return InvalidArgument("input must be a string tensor");
  ctx.set_output(0, DType::kString, x.shape.has_rank() ? Shape::OfRank(x.shape.rank()) : Shape());
  return Status::OK();
}

Status InferNms(InferenceContext& ctx) {
  ctx.set_output(0, DType::kInt64, Shape({Dim::Unknown(), Dim(3)}));
  return Status::OK();
}

// RNN/GRU/LSTM: Y [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]), Y_h (and Y_c)
// [dirs, batch, hidden] (layout 1: [batch, dirs, hidden]).
Status InferRecurrent(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t layout, ctx.attrs().GetInt("layout", 0));
  KILN_ASSIGN_OR_RETURN(int64_t hidden, ctx.attrs().RequireInt("hidden_size"));
  KILN_ASSIGN_OR_RETURN(std::string dir, ctx.attrs().GetString("direction", "forward"));
  if (hidden <= 0) return InvalidArgument("attribute 'hidden_size' must be positive");
  const Dim dirs(dir == "bidirectional" ? 2 : 1);
  Dim seq = Dim::Unknown(), batch = Dim::Unknown();
  if (x.shape.has_rank()) {
    if (x.shape.rank() != 3) return InvalidArgument("X must be 3-D, got ", x.shape.ToString());
    seq = x.shape.dim(layout ? 1 : 0);
    batch = x.shape.dim(layout ? 0 : 1);
  }
  if (ctx.has_output(0))
    ctx.set_output(0, x.dtype, layout ? Shape({batch, seq, dirs, Dim(hidden)}) : Shape({seq, dirs, batch, Dim(hidden)}));
  for (int i = 1; i < ctx.num_outputs(); ++i)
    if (ctx.has_output(i)) ctx.set_output(i, x.dtype, layout ? Shape({batch, dirs, Dim(hidden)}) : Shape({dirs, batch, Dim(hidden)}));
  return Status::OK();
}

Status InferDft(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 1));
  KILN_ASSIGN_OR_RETURN(int64_t onesided, ctx.attrs().GetInt("onesided", 0));
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  if (x.shape.rank() < 2) return InvalidArgument("input must have rank >= 2");
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.shape.rank() - 1));
  Shape s = x.shape;
  Dim n = x.shape.dim(ax);
  if (ctx.has_input(1)) {
    const Tensor* l = ctx.input_value(1);
    n = l && l->numel() == 1 ? Dim(static_cast<int64_t>(l->GetAsDouble(0))) : Dim::Unknown();
  }
  s.dims()[static_cast<size_t>(ax)] = onesided ? (n.known() ? Dim(n.value / 2 + 1) : Dim::Unknown()) : n;
  s.dims().back() = Dim(2);
  ctx.set_output(0, x.dtype, std::move(s));
  return Status::OK();
}

Status InferStft(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  Dim batch = x.shape.has_rank() && x.shape.rank() == 3 ? x.shape.dim(0) : Dim::Unknown();
  ctx.set_output(0, x.dtype, Shape({batch, Dim::Unknown(), Dim::Unknown(), Dim(2)}));
  return Status::OK();
}

Status InferMel(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("output_datatype", 1));
  if (!IsValidDType(static_cast<int32_t>(dt))) return InvalidArgument("attribute 'output_datatype' is not a valid type");
  ctx.set_output(0, static_cast<DType>(dt), Shape::OfRank(2));
  return Status::OK();
}

}  // namespace

void RegisterReduceRnnSignalSchemas(OpRegistry& r) {
  r.Add(OpSchema{"DFT", "", 1, 2, 1, 1, InferDft, FusionClass::kOpaque});
  r.Add(OpSchema{"STFT", "", 2, 4, 1, 1, InferStft, FusionClass::kOpaque});
  r.Add(OpSchema{"MelWeightMatrix", "", 5, 5, 1, 1, InferMel, FusionClass::kOpaque});
  r.Add(OpSchema{"RNN", "", 3, 6, 0, 2, InferRecurrent, FusionClass::kOpaque});
  r.Add(OpSchema{"GRU", "", 3, 6, 0, 2, InferRecurrent, FusionClass::kOpaque});
  r.Add(OpSchema{"LSTM", "", 3, 8, 0, 3, InferRecurrent, FusionClass::kOpaque});
  r.Add(OpSchema{"NonMaxSuppression", "", 2, 5, 1, 1, InferNms, FusionClass::kOpaque});
  for (const char* op : {"HannWindow", "HammingWindow", "BlackmanWindow"})
    r.Add(OpSchema{op, "", 1, 1, 1, 1, InferWindow, FusionClass::kOpaque});
  r.Add(OpSchema{"StringNormalizer", "", 1, 1, 1, 1, InferStringNormalizer, FusionClass::kOpaque});
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
    r.Add(OpSchema{op, "", 1, 2, 1, 1, InferReduce, FusionClass::kReduction});
}

}  // namespace kiln
