// Reference kernels: If, Loop, Scan, SequenceMap, sequence and optional ops.
#include <algorithm>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/tensor_util.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

StatusOr<bool> ScalarBool(const RValue& v, const char* what) {
  if (!v.is_tensor() || v.tensor.numel() != 1) return InvalidArgument(what, " must be a one-element tensor");
  return v.tensor.GetAsDouble(0) != 0;
}

Status IfKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(bool cond, ScalarBool(ctx.input_value(0), "cond"));
  KILN_ASSIGN_OR_RETURN(auto branch, ctx.attrs().RequireGraph(cond ? "then_branch" : "else_branch"));
  KILN_ASSIGN_OR_RETURN(std::vector<RValue> outs, ctx.RunSubgraph(*branch, {}));
  if (static_cast<int>(outs.size()) != ctx.num_outputs()) return InvalidArgument("branch returned ", outs.size(), " values");
  for (int i = 0; i < ctx.num_outputs(); ++i) ctx.set_output_value(i, std::move(outs[static_cast<size_t>(i)]));
  return Status::OK();
}

// Stacks per-iteration tensors along a new axis 0.
StatusOr<Tensor> Stack(const std::vector<Tensor>& items, DType dt) {
  if (items.empty()) return Tensor(dt, {0});
  std::vector<int64_t> dims = items[0].dims();
  for (const Tensor& t : items)
    if (t.dims() != dims || t.dtype() != items[0].dtype()) return InvalidArgument("scan outputs differ in shape across iterations");
  dims.insert(dims.begin(), static_cast<int64_t>(items.size()));
  Tensor y(items[0].dtype(), dims);
  const int64_t per = items[0].numel();
  for (size_t k = 0; k < items.size(); ++k)
    for (int64_t i = 0; i < per; ++i) ref::CopyElement(y, static_cast<int64_t>(k) * per + i, items[k], i);
  return y;
}

Status LoopKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto body, ctx.attrs().RequireGraph("body"));
  int64_t max_trip = std::numeric_limits<int64_t>::max();
  if (ctx.has_input(0)) {
    if (ctx.input(0).numel() != 1) return InvalidArgument("M must be a scalar");
    max_trip = static_cast<int64_t>(ctx.input(0).GetAsDouble(0));
  }
  bool cond = true;
  if (ctx.has_input(1)) { KILN_ASSIGN_OR_RETURN(cond, ScalarBool(ctx.input_value(1), "cond")); }
  const int n_carried = ctx.num_inputs() - 2;
  std::vector<RValue> carried;
  for (int i = 0; i < n_carried; ++i) carried.push_back(ctx.input_value(i + 2));
  const int n_scan = ctx.num_outputs() - n_carried;
  std::vector<std::vector<Tensor>> scans(static_cast<size_t>(std::max(0, n_scan)));
  // Without M and cond the loop never ends: cap it so bad models cannot hang.
  constexpr int64_t kMaxIterations = int64_t{1} << 24;
  for (int64_t it = 0; it < max_trip && cond; ++it) {
    if (it >= kMaxIterations) return InvalidArgument("Loop ran more than 2^24 iterations");
    std::vector<RValue> in = {RValue(Tensor::Scalar<int64_t>(it)), RValue(Tensor::Scalar<bool>(cond))};
    for (auto& c : carried) in.push_back(c);
    KILN_ASSIGN_OR_RETURN(std::vector<RValue> out, ctx.RunSubgraph(*body, std::move(in)));
    if (static_cast<int>(out.size()) != 1 + n_carried + n_scan) return InvalidArgument("body returned ", out.size(), " values");
    KILN_ASSIGN_OR_RETURN(cond, ScalarBool(out[0], "body cond output"));
    for (int i = 0; i < n_carried; ++i) carried[static_cast<size_t>(i)] = std::move(out[static_cast<size_t>(i + 1)]);
    for (int i = 0; i < n_scan; ++i) {
      const RValue& v = out[static_cast<size_t>(1 + n_carried + i)];
      if (!v.is_tensor()) return InvalidArgument("scan outputs must be tensors");
      scans[static_cast<size_t>(i)].push_back(v.tensor);
    }
  }
  for (int i = 0; i < n_carried; ++i) ctx.set_output_value(i, std::move(carried[static_cast<size_t>(i)]));
  for (int i = 0; i < n_scan; ++i) {
    const Value* out_v = nullptr;
    (void)out_v;
    DType dt = DType::kFloat32;
    const Graph& b = *body;
    const Value& bv = b.value(b.outputs()[static_cast<size_t>(1 + n_carried + i)]);
    if (bv.type.dtype != DType::kUndefined) dt = bv.type.dtype;
    KILN_ASSIGN_OR_RETURN(Tensor t, Stack(scans[static_cast<size_t>(i)], dt));
    ctx.set_output(n_carried + i, std::move(t));
  }
  return Status::OK();
}

// Moves `axis` of t to the front (a copy).
Tensor MoveAxisToFront(const Tensor& t, int axis) {
  if (axis == 0) return t;
  std::vector<int64_t> od = {t.dim(axis)}, strides = StridesOf(t.dims()), os = {strides[static_cast<size_t>(axis)]};
  for (int d = 0; d < t.rank(); ++d)
    if (d != axis) { od.push_back(t.dim(d)); os.push_back(strides[static_cast<size_t>(d)]); }
  Tensor y(t.dtype(), od);
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    ref::Unravel(i, od, pos);
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) off += pos[d] * os[d];
    ref::CopyElement(y, i, t, off);
  }
  return y;
}

// Inverse of MoveAxisToFront: axis 0 of t goes to position `axis`.
Tensor MoveFrontToAxis(const Tensor& t, int axis) {
  if (axis == 0) return t;
  std::vector<int64_t> perm;  // output dim d reads input dim perm[d]
  for (int d = 1; d <= axis; ++d) perm.push_back(d);
  perm.push_back(0);
  for (int d = axis + 1; d < t.rank(); ++d) perm.push_back(d);
  std::vector<int64_t> od, os, strides = StridesOf(t.dims());
  for (int64_t p : perm) { od.push_back(t.dim(static_cast<int>(p))); os.push_back(strides[static_cast<size_t>(p)]); }
  Tensor y(t.dtype(), od);
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    ref::Unravel(i, od, pos);
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) off += pos[d] * os[d];
    ref::CopyElement(y, i, t, off);
  }
  return y;
}

Tensor SliceFront(const Tensor& t, int64_t k) {
  std::vector<int64_t> dims(t.dims().begin() + 1, t.dims().end());
  Tensor y(t.dtype(), dims);
  for (int64_t i = 0; i < y.numel(); ++i) ref::CopyElement(y, i, t, k * y.numel() + i);
  return y;
}

Status ScanKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto body, ctx.attrs().RequireGraph("body"));
  KILN_ASSIGN_OR_RETURN(int64_t m, ctx.attrs().RequireInt("num_scan_inputs"));
  const int n_state = ctx.num_inputs() - static_cast<int>(m);
  const int n_scan_out = ctx.num_outputs() - n_state;
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> in_axes, ctx.attrs().GetInts("scan_input_axes", std::vector<int64_t>(static_cast<size_t>(m), 0)));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> in_dirs, ctx.attrs().GetInts("scan_input_directions", std::vector<int64_t>(static_cast<size_t>(m), 0)));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out_axes, ctx.attrs().GetInts("scan_output_axes", std::vector<int64_t>(static_cast<size_t>(std::max(0, n_scan_out)), 0)));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out_dirs, ctx.attrs().GetInts("scan_output_directions", std::vector<int64_t>(static_cast<size_t>(std::max(0, n_scan_out)), 0)));
  if (static_cast<int64_t>(in_axes.size()) != m || static_cast<int64_t>(in_dirs.size()) != m) return InvalidArgument("scan input attributes must have num_scan_inputs entries");
  std::vector<RValue> state;
  for (int i = 0; i < n_state; ++i) state.push_back(ctx.input_value(i));
  std::vector<Tensor> scans;
  int64_t len = -1;
  for (int i = 0; i < m; ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(n_state + i));
    const Tensor& t = ctx.input(n_state + i);
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(in_axes[static_cast<size_t>(i)], t.rank(), "scan_input_axes"));
    scans.push_back(MoveAxisToFront(t, ax));
    if (len >= 0 && scans.back().dim(0) != len) return InvalidArgument("scan inputs have different lengths");
    len = scans.back().dim(0);
  }
  std::vector<std::vector<Tensor>> outs(static_cast<size_t>(std::max(0, n_scan_out)));
  for (int64_t it = 0; it < len; ++it) {
    std::vector<RValue> in = state;
    for (int i = 0; i < m; ++i) in.emplace_back(SliceFront(scans[static_cast<size_t>(i)], in_dirs[static_cast<size_t>(i)] ? len - 1 - it : it));
    KILN_ASSIGN_OR_RETURN(std::vector<RValue> out, ctx.RunSubgraph(*body, std::move(in)));
    if (static_cast<int>(out.size()) != n_state + n_scan_out) return InvalidArgument("body returned ", out.size(), " values");
    for (int i = 0; i < n_state; ++i) state[static_cast<size_t>(i)] = out[static_cast<size_t>(i)];
    for (int i = 0; i < n_scan_out; ++i) outs[static_cast<size_t>(i)].push_back(out[static_cast<size_t>(n_state + i)].tensor);
  }
  for (int i = 0; i < n_state; ++i) ctx.set_output_value(i, state[static_cast<size_t>(i)]);
  for (int i = 0; i < n_scan_out; ++i) {
    auto& items = outs[static_cast<size_t>(i)];
    if (out_dirs[static_cast<size_t>(i)]) std::reverse(items.begin(), items.end());
    KILN_ASSIGN_OR_RETURN(Tensor t, Stack(items, DType::kFloat32));
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(out_axes[static_cast<size_t>(i)], t.rank(), "scan_output_axes"));
    ctx.set_output(n_state + i, MoveFrontToAxis(t, ax));
  }
  return Status::OK();
}

Status SequenceMapKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto body, ctx.attrs().RequireGraph("body"));
  if (!ctx.input_value(0).is_sequence()) return InvalidArgument("input 0 must be a sequence");
  const size_t n = ctx.input_value(0).sequence.size();
  std::vector<std::vector<Tensor>> outs(static_cast<size_t>(ctx.num_outputs()));
  for (size_t k = 0; k < n; ++k) {
    std::vector<RValue> in;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      const RValue& v = ctx.input_value(i);
      if (v.is_sequence()) {
        if (v.sequence.size() != n) return InvalidArgument("sequences have different lengths");
        in.emplace_back(v.sequence[k]);
      } else {
        in.push_back(v);
      }
    }
    KILN_ASSIGN_OR_RETURN(std::vector<RValue> out, ctx.RunSubgraph(*body, std::move(in)));
    for (int i = 0; i < ctx.num_outputs(); ++i) outs[static_cast<size_t>(i)].push_back(out[static_cast<size_t>(i)].tensor);
  }
  for (int i = 0; i < ctx.num_outputs(); ++i) ctx.set_output_value(i, RValue::Sequence(std::move(outs[static_cast<size_t>(i)])));
  return Status::OK();
}

StatusOr<const std::vector<Tensor>*> Seq(RefContext& ctx, int i) {
  if (!ctx.input_value(i).is_sequence()) return InvalidArgument("input ", i, " must be a sequence");
  return &ctx.input_value(i).sequence;
}

// Position input (scalar, negative counts from the end); `allow_end` permits == size.
StatusOr<int64_t> Position(RefContext& ctx, int i, int64_t size, bool allow_end, int64_t dflt) {
  if (!ctx.has_input(i)) return dflt;
  if (ctx.input(i).numel() != 1) return InvalidArgument("position must be a scalar");
  int64_t p = static_cast<int64_t>(ctx.input(i).GetAsDouble(0));
  if (p < 0) p += size;
  if (p < 0 || p > size || (p == size && !allow_end)) return OutOfRange("position out of range for a sequence of ", size);
  return p;
}

Status SequenceKernel(RefContext& ctx) {
  const std::string& op = ctx.node().op_type;
  if (op == "SequenceConstruct") {
    std::vector<Tensor> items;
    for (int i = 0; i < ctx.num_inputs(); ++i) { KILN_RETURN_IF_ERROR(ctx.RequireTensor(i)); items.push_back(ctx.input(i)); }
    ctx.set_output_value(0, RValue::Sequence(std::move(items)));
    return Status::OK();
  }
  if (op == "SequenceEmpty") { ctx.set_output_value(0, RValue::Sequence({})); return Status::OK(); }
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, Seq(ctx, 0));
  const int64_t n = static_cast<int64_t>(seq->size());
  if (op == "SequenceLength") { ctx.set_output(0, Tensor::Scalar<int64_t>(n)); return Status::OK(); }
  if (op == "SequenceAt") {
    KILN_ASSIGN_OR_RETURN(int64_t p, Position(ctx, 1, n, false, 0));
    ctx.set_output(0, (*seq)[static_cast<size_t>(p)]);
    return Status::OK();
  }
  std::vector<Tensor> items = *seq;
  if (op == "SequenceInsert") {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
    KILN_ASSIGN_OR_RETURN(int64_t p, Position(ctx, 2, n, true, n));
    items.insert(items.begin() + p, ctx.input(1));
  } else {  // SequenceErase
    KILN_ASSIGN_OR_RETURN(int64_t p, Position(ctx, 1, n, false, n - 1));
    items.erase(items.begin() + p);
  }
  ctx.set_output_value(0, RValue::Sequence(std::move(items)));
  return Status::OK();
}

Status SplitToSequenceKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int64_t keep, ctx.attrs().GetInt("keepdims", 1));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  Tensor moved = MoveAxisToFront(x, ax);
  const int64_t d = x.dim(ax);
  std::vector<int64_t> sizes;
  bool scalar_split = !ctx.has_input(1);
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> s, ctx.input(1).ToInt64Vector());
    if (ctx.input(1).rank() == 0) {
      if (s[0] <= 0) return InvalidArgument("split must be positive");
      for (int64_t start = 0; start < d; start += s[0]) sizes.push_back(std::min(s[0], d - start));
    } else {
      sizes = s;
      int64_t total = 0;
      for (int64_t v : s) total += v;
      if (total != d) return InvalidArgument("split sums to ", total, " but the axis has ", d);
    }
  } else {
    sizes.assign(static_cast<size_t>(d), 1);
  }
  std::vector<Tensor> items;
  int64_t start = 0;
  const int64_t per = d ? moved.numel() / d : 0;
  for (int64_t len : sizes) {
    std::vector<int64_t> dims = moved.dims();
    dims[0] = len;
    Tensor part(x.dtype(), dims);
    for (int64_t i = 0; i < part.numel(); ++i) ref::CopyElement(part, i, moved, start * per + i);
    start += len;
    Tensor back = MoveFrontToAxis(part, ax);
    if (scalar_split && !keep) {
      std::vector<int64_t> nd = back.dims();
      nd.erase(nd.begin() + ax);
      back = back.Reshaped(nd);
    }
    items.push_back(back);
  }
  ctx.set_output_value(0, RValue::Sequence(std::move(items)));
  return Status::OK();
}

Status ConcatFromSequenceKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const std::vector<Tensor>* seq, Seq(ctx, 0));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().RequireInt("axis"));
  KILN_ASSIGN_OR_RETURN(int64_t new_axis, ctx.attrs().GetInt("new_axis", 0));
  if (seq->empty()) return InvalidArgument("cannot concatenate an empty sequence");
  const int r = (*seq)[0].rank() + (new_axis ? 1 : 0);
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, r));
  std::vector<Tensor> parts;
  for (const Tensor& t : *seq) {
    Tensor u = t;
    if (new_axis) {
      std::vector<int64_t> d = t.dims();
      d.insert(d.begin() + ax, 1);
      u = t.Reshaped(d);
    }
    parts.push_back(MoveAxisToFront(u, ax));
  }
  std::vector<int64_t> dims = parts[0].dims();
  dims[0] = 0;
  for (const Tensor& p : parts) {
    if (p.rank() != static_cast<int>(dims.size())) return InvalidArgument("sequence elements differ in rank");
    for (size_t k = 1; k < dims.size(); ++k) if (p.dim(static_cast<int>(k)) != dims[k]) return InvalidArgument("sequence elements differ in shape");
    dims[0] += p.dim(0);
  }
  Tensor cat(parts[0].dtype(), dims);
  int64_t off = 0;
  for (const Tensor& p : parts)
    for (int64_t i = 0; i < p.numel(); ++i) ref::CopyElement(cat, off++, p, i);
  ctx.set_output(0, MoveFrontToAxis(cat, ax));
  return Status::OK();
}

Status OptionalKernel(RefContext& ctx) {
  const std::string& op = ctx.node().op_type;
  const RValue& v = ctx.input_value(0);
  if (op == "Optional") { ctx.set_output_value(0, v); return Status::OK(); }
  if (op == "OptionalHasElement") { ctx.set_output(0, Tensor::Scalar<bool>(!v.is_none())); return Status::OK(); }
  if (v.is_none()) return InvalidArgument("optional has no element");
  ctx.set_output_value(0, v);
  return Status::OK();
}

}  // namespace

void RegisterControlFlowKernels(RefKernelRegistry& r) {
  r.Add("", "If", &IfKernel);
  r.Add("", "Loop", &LoopKernel);
  r.Add("", "Scan", &ScanKernel);
  r.Add("", "SequenceMap", &SequenceMapKernel);
  for (const char* op : {"SequenceConstruct", "SequenceEmpty", "SequenceAt", "SequenceInsert", "SequenceErase", "SequenceLength"})
    r.Add("", op, &SequenceKernel);
  r.Add("", "SplitToSequence", &SplitToSequenceKernel);
  r.Add("", "ConcatFromSequence", &ConcatFromSequenceKernel);
  for (const char* op : {"Optional", "OptionalGetElement", "OptionalHasElement"}) r.Add("", op, &OptionalKernel);
}

}  // namespace kiln
