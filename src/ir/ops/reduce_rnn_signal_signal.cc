// Schemas of the signal ops (DFT, STFT, windows, MelWeightMatrix) and the text ops
// (StringNormalizer, TfIdfVectorizer). Output sizes that depend on scalar inputs are
// computed when those inputs are constants, else left unknown.
#include <algorithm>
#include <optional>
#include <string>

#include "ir/ops/sub_families.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// The value of scalar input i when it is a known constant integer.
std::optional<int64_t> ConstantScalar(const InferenceContext& ctx, int i) {
  if (!ctx.has_input(i)) return std::nullopt;
  const Tensor* t = ctx.input_value(i);
  if (t == nullptr || t->numel() != 1 || !(IsInteger(t->dtype()) || IsFloat(t->dtype()))) return std::nullopt;
  return static_cast<int64_t>(t->GetAsDouble(0));
}

Status CheckFloatInput(const InferenceContext& ctx, int i, const char* what) {
  const DType t = ctx.input_type(i).dtype;
  if (!IsFloat(t) && t != DType::kUndefined) return InvalidArgument("input '", what, "' must be a float tensor");
  return Status::OK();
}

StatusOr<DType> RealOutputType(const InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("output_datatype", 1));
  const DType t = static_cast<DType>(dt);
  if (!IsValidDType(static_cast<int32_t>(dt)) || !(IsFloat(t) || IsInteger(t)))
    return InvalidArgument("attribute 'output_datatype' must be a real numeric type, got ", dt);
  return t;
}

Status InferWindow(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DType dt, RealOutputType(ctx));
  const std::optional<int64_t> n = ConstantScalar(ctx, 0);
  if (n && *n < 0) return InvalidArgument("input 'size' must be >= 0, got ", *n);
  ctx.set_output(0, dt, n ? Shape::FromDims({*n}) : Shape::OfRank(1));
  return Status::OK();
}

// Output [num_spectrogram_bins = dft_length / 2 + 1, num_mel_bins].
Status InferMel(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DType dt, RealOutputType(ctx));
  const std::optional<int64_t> mel = ConstantScalar(ctx, 0), dft = ConstantScalar(ctx, 1);
  if ((mel && *mel <= 0) || (dft && *dft <= 0)) return InvalidArgument("inputs 'num_mel_bins' and 'dft_length' must be positive");
  ctx.set_output(0, dt, Shape({dft ? Dim(*dft / 2 + 1) : Dim::Unknown(), mel ? Dim(*mel) : Dim::Unknown()}));
  return Status::OK();
}

// Same shape as the input except the transformed axis (dft_length, halved plus one when
// onesided) and the last axis, which becomes 2 (real, imaginary).
Status InferDft(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_RETURN_IF_ERROR(CheckFloatInput(ctx, 0, "input"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 1));
  KILN_ASSIGN_OR_RETURN(int64_t onesided, ctx.attrs().GetInt("onesided", 0));
  KILN_ASSIGN_OR_RETURN(int64_t inverse, ctx.attrs().GetInt("inverse", 0));
  if (onesided && inverse) return InvalidArgument("attributes 'inverse' and 'onesided' cannot both be set");
  if (!x.shape.has_rank()) {
    ctx.set_output(0, x.dtype, Shape());
    return Status::OK();
  }
  const int rank = x.shape.rank();
  if (rank < 2) return InvalidArgument("input must have rank >= 2, got ", x.shape.ToString());
  const Dim& last = x.shape.dim(rank - 1);
  if (last.known() && last.value != 1 && last.value != 2)
    return InvalidArgument("the last dim of input must be 1 (real) or 2 (complex), got ", last.value);
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, rank));
  if (ax == rank - 1) return InvalidArgument("attribute 'axis' must not be the last (real/imaginary) axis");
  Dim n = x.shape.dim(ax);
  if (ctx.has_input(1)) {
    const std::optional<int64_t> len = ConstantScalar(ctx, 1);
    if (len && *len <= 0) return InvalidArgument("input 'dft_length' must be positive, got ", *len);
    n = len ? Dim(*len) : Dim::Unknown();
  }
  Shape s = x.shape;
  s.dims()[static_cast<size_t>(ax)] = !onesided ? n : n.known() ? Dim(n.value / 2 + 1) : Dim::Unknown();
  s.dims().back() = Dim(2);
  ctx.set_output(0, x.dtype, std::move(s));
  return Status::OK();
}

// Output [batch, frames, bins, 2] with frames = (length - frame_length) / frame_step + 1.
Status InferStft(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_RETURN_IF_ERROR(CheckFloatInput(ctx, 0, "signal"));
  KILN_ASSIGN_OR_RETURN(int64_t onesided, ctx.attrs().GetInt("onesided", 1));
  if (x.shape.has_rank() && x.shape.rank() != 3) return InvalidArgument("input 'signal' must be [batch, length, 1 or 2]");
  if (!ctx.has_input(2) && !ctx.has_input(3)) return InvalidArgument("STFT needs input 'window' or 'frame_length'");
  Dim batch = Dim::Unknown(), length = Dim::Unknown(), frame = Dim::Unknown();
  if (x.shape.has_rank()) {
    batch = x.shape.dim(0);
    length = x.shape.dim(1);
  }
  if (ctx.has_input(2)) {
    const TypeInfo& w = ctx.input_type(2);
    if (w.shape.has_rank() && w.shape.rank() != 1) return InvalidArgument("input 'window' must be 1-D");
    if (w.shape.has_rank()) frame = w.shape.dim(0);
  }
  if (const std::optional<int64_t> fl = ConstantScalar(ctx, 3)) {
    if (frame.known() && frame.value != *fl) return InvalidArgument("input 'frame_length' differs from the window length");
    frame = Dim(*fl);
  }
  const std::optional<int64_t> step = ConstantScalar(ctx, 1);
  if (step && *step <= 0) return InvalidArgument("input 'frame_step' must be positive");
  Dim frames = Dim::Unknown(), bins = Dim::Unknown();
  if (frame.known()) {
    if (frame.value <= 0 || (length.known() && frame.value > length.value))
      return InvalidArgument("frame length ", frame.value, " must be in [1, signal length]");
    bins = Dim(onesided ? frame.value / 2 + 1 : frame.value);
    if (length.known() && step) frames = Dim((length.value - frame.value) / *step + 1);
  }
  ctx.set_output(0, x.dtype, Shape({batch, frames, bins, Dim(2)}));
  return Status::OK();
}

Status InferStringNormalizer(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (x.dtype != DType::kString) return InvalidArgument("input 'X' must be a string tensor");
  KILN_ASSIGN_OR_RETURN(std::string action, ctx.attrs().GetString("case_change_action", "NONE"));
  if (action != "NONE" && action != "LOWER" && action != "UPPER")
    return InvalidArgument("attribute 'case_change_action' must be NONE, LOWER or UPPER, got '", action, "'");
  KILN_RETURN_IF_ERROR(ctx.attrs().GetStrings("stopwords").status());
  if (!x.shape.has_rank()) {
    ctx.set_output(0, DType::kString, Shape());
    return Status::OK();
  }
  const int r = x.shape.rank();
  if (r < 1 || r > 2 || (r == 2 && x.shape.dim(0).known() && x.shape.dim(0).value != 1))
    return InvalidArgument("input 'X' must be [C] or [1, C], got ", x.shape.ToString());
  // Stop words decide the number of survivors at run time.
  ctx.set_output(0, DType::kString, r == 2 ? Shape({Dim(1), Dim::Unknown()}) : Shape::OfRank(1));
  return Status::OK();
}

// [C] -> [max(ngram_indexes) + 1]; [N, C] -> [N, max(ngram_indexes) + 1].
Status InferTfIdf(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> indexes, ctx.attrs().GetInts("ngram_indexes"));
  if (indexes.empty() || *std::min_element(indexes.begin(), indexes.end()) < 0)
    return InvalidArgument("attribute 'ngram_indexes' must be non-empty with no negative values");
  const int64_t width = *std::max_element(indexes.begin(), indexes.end()) + 1;
  const bool strings = ctx.attrs().has("pool_strings");
  if (strings == ctx.attrs().has("pool_int64s"))
    return InvalidArgument("exactly one of attributes 'pool_strings' and 'pool_int64s' must be set");
  if (strings ? x.dtype != DType::kString : (x.dtype != DType::kInt32 && x.dtype != DType::kInt64))
    return InvalidArgument("input 'X' must be ", strings ? "string (pool_strings)" : "int32/int64 (pool_int64s)");
  if (!x.shape.has_rank()) {
    ctx.set_output(0, DType::kFloat32, Shape());
    return Status::OK();
  }
  const int r = x.shape.rank();
  if (r != 1 && r != 2) return InvalidArgument("input 'X' must have rank 1 or 2, got ", x.shape.ToString());
  ctx.set_output(0, DType::kFloat32, r == 1 ? Shape({Dim(width)}) : Shape({x.shape.dim(0), Dim(width)}));
  return Status::OK();
}

}  // namespace

void RegisterSignalTextSchemas(OpRegistry& r) {
  r.Add(OpSchema{"DFT", "", 1, 2, 1, 1, InferDft, FusionClass::kOpaque});
  r.Add(OpSchema{"STFT", "", 2, 4, 1, 1, InferStft, FusionClass::kOpaque});
  r.Add(OpSchema{"MelWeightMatrix", "", 5, 5, 1, 1, InferMel, FusionClass::kOpaque});
  for (const char* op : {"HannWindow", "HammingWindow", "BlackmanWindow"})
    r.Add(OpSchema{op, "", 1, 1, 1, 1, InferWindow, FusionClass::kOpaque});
  r.Add(OpSchema{"StringNormalizer", "", 1, 1, 1, 1, InferStringNormalizer, FusionClass::kOpaque});
  r.Add(OpSchema{"TfIdfVectorizer", "", 1, 1, 1, 1, InferTfIdf, FusionClass::kOpaque});
}

}  // namespace kiln
