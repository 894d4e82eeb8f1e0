// Reference kernels: If, Loop, Scan (opset 9+ form and the batched Scan-8 form),
// SequenceMap. The sequence and optional ops live in control_flow_sequence.cc.
#include <algorithm>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/control_flow_util.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

using namespace ref::control_flow;  // NOLINT: this family's private helpers

// Marks the Scan-8 form (see normalize_control_flow.cc and InferScan).
constexpr const char* kScanBatchedAttr = "kiln.scan8_batched";
// A loop without a trip count could run forever; the oracle gives up instead of hanging.
constexpr int64_t kMaxUnboundedIterations = int64_t{1} << 24;

StatusOr<std::shared_ptr<Graph>> Body(const RefContext& ctx, const char* name) {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<Graph> g, ctx.attrs().RequireGraph(name));
  if (!g) return InvalidArgument("attribute '", name, "' holds no graph");
  return g;
}

Status CheckBodyOutputs(const std::vector<RValue>& outs, size_t expected, const char* name) {
  if (outs.size() != expected) return InvalidArgument("'", name, "' returned ", outs.size(), " values, expected ", expected);
  return Status::OK();
}

// A value replacing `before` across iterations must keep its kind and dtype (an empty
// optional may become a value and back).
Status CheckSameKind(const RValue& before, const RValue& after, const std::string& what) {
  if (before.is_none() || after.is_none()) return Status::OK();
  if (before.kind != after.kind) return InvalidArgument(what, " changes between tensor and sequence");
  if (before.is_tensor() && before.tensor.dtype() != after.tensor.dtype())
    return InvalidArgument(what, " changes element type from ", DTypeName(before.tensor.dtype()), " to ",
                           DTypeName(after.tensor.dtype()));
  return Status::OK();
}

// ---------------------------------------------------------------------------------------

Status IfKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(bool cond, ReadCondition(ctx.input_value(0), "input 'cond'"));
  const char* name = cond ? "then_branch" : "else_branch";
  KILN_ASSIGN_OR_RETURN(auto branch, Body(ctx, name));
  KILN_ASSIGN_OR_RETURN(std::vector<RValue> outs, ctx.RunSubgraph(*branch, {}));
  KILN_RETURN_IF_ERROR(CheckBodyOutputs(outs, static_cast<size_t>(ctx.num_outputs()), name));
  for (int i = 0; i < ctx.num_outputs(); ++i) ctx.set_output_value(i, std::move(outs[static_cast<size_t>(i)]));
  return Status::OK();
}

// Loop: see the operating modes in the ONNX spec. Without `cond`, the body's condition
// output is ignored; without `M`, only the condition ends the loop.
Status LoopKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto body, Body(ctx, "body"));
  const int n_carried = ctx.num_inputs() - 2;
  const int n_scan = ctx.num_outputs() - n_carried;
  if (n_carried < 0 || n_scan < 0) return InvalidArgument("Loop needs M, cond and one output per loop-carried value");
  const bool has_trip_count = ctx.has_input(0), has_cond = ctx.has_input(1);
  int64_t trip_count = 0;
  if (has_trip_count) { KILN_ASSIGN_OR_RETURN(trip_count, ReadInteger(ctx.input_value(0), "input 'M'")); }
  bool cond = true;
  if (has_cond) { KILN_ASSIGN_OR_RETURN(cond, ReadCondition(ctx.input_value(1), "input 'cond'")); }

  std::vector<RValue> carried;
  for (int i = 0; i < n_carried; ++i) carried.push_back(ctx.input_value(i + 2));
  std::vector<std::vector<Tensor>> scans(static_cast<size_t>(n_scan));
  for (int64_t it = 0; cond && (!has_trip_count || it < trip_count); ++it) {
    if (!has_trip_count && it >= kMaxUnboundedIterations)
      return InvalidArgument("Loop without 'M' ran ", kMaxUnboundedIterations, " iterations; giving up");
    std::vector<RValue> in = {RValue(Tensor::Scalar<int64_t>(it)), RValue(Tensor::Scalar<bool>(cond))};
    in.insert(in.end(), carried.begin(), carried.end());
    KILN_ASSIGN_OR_RETURN(std::vector<RValue> out, ctx.RunSubgraph(*body, std::move(in)));
    KILN_RETURN_IF_ERROR(CheckBodyOutputs(out, static_cast<size_t>(1 + n_carried + n_scan), "body"));
    if (has_cond) { KILN_ASSIGN_OR_RETURN(cond, ReadCondition(out[0], "body output 0 (cond)")); }
    for (int i = 0; i < n_carried; ++i) {
      RValue& next = out[static_cast<size_t>(1 + i)];
      KILN_RETURN_IF_ERROR(CheckSameKind(carried[static_cast<size_t>(i)], next, StrCat("loop-carried value ", i)));
      carried[static_cast<size_t>(i)] = std::move(next);
    }
    for (int k = 0; k < n_scan; ++k) {
      const RValue& v = out[static_cast<size_t>(1 + n_carried + k)];
      if (!v.is_tensor()) return InvalidArgument("body scan output ", k, " must be a tensor");
      scans[static_cast<size_t>(k)].push_back(v.tensor);
    }
  }
  for (int i = 0; i < n_carried; ++i) ctx.set_output_value(i, std::move(carried[static_cast<size_t>(i)]));
  for (int k = 0; k < n_scan; ++k) {
    const TypeInfo& elem = SubgraphOutputType(*body, static_cast<size_t>(1 + n_carried + k));
    KILN_ASSIGN_OR_RETURN(Tensor t, StackFront(scans[static_cast<size_t>(k)], elem, StrCat("scan output ", k)));
    ctx.set_output(n_carried + k, std::move(t));
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------------------
// Scan

struct ScanSpec {
  std::shared_ptr<Graph> body;
  int n_state = 0, n_scan_in = 0, n_scan_out = 0;
  std::vector<int64_t> in_axes, in_dirs, out_axes, out_dirs;
};

StatusOr<ScanSpec> ReadScanSpec(const RefContext& ctx, int first_input) {
  ScanSpec s;
  KILN_ASSIGN_OR_RETURN(s.body, Body(ctx, "body"));
  KILN_ASSIGN_OR_RETURN(int64_t m, ctx.attrs().RequireInt("num_scan_inputs"));
  const int n_in = ctx.num_inputs() - first_input;
  if (m < 1 || m > n_in) return InvalidArgument("attribute 'num_scan_inputs' is ", m, " for ", n_in, " inputs");
  s.n_scan_in = static_cast<int>(m);
  s.n_state = n_in - s.n_scan_in;
  s.n_scan_out = ctx.num_outputs() - s.n_state;
  if (s.n_scan_out < 0) return InvalidArgument("Scan needs one output per state");
  const auto zeros = [](int n) { return std::vector<int64_t>(static_cast<size_t>(n), 0); };
  KILN_ASSIGN_OR_RETURN(s.in_axes, ctx.attrs().GetInts("scan_input_axes", zeros(s.n_scan_in)));
  KILN_ASSIGN_OR_RETURN(s.in_dirs, ctx.attrs().GetInts("scan_input_directions", zeros(s.n_scan_in)));
  KILN_ASSIGN_OR_RETURN(s.out_axes, ctx.attrs().GetInts("scan_output_axes", zeros(s.n_scan_out)));
  KILN_ASSIGN_OR_RETURN(s.out_dirs, ctx.attrs().GetInts("scan_output_directions", zeros(s.n_scan_out)));
  if (s.in_axes.size() != static_cast<size_t>(s.n_scan_in) || s.in_dirs.size() != static_cast<size_t>(s.n_scan_in) ||
      s.out_axes.size() != static_cast<size_t>(s.n_scan_out) || s.out_dirs.size() != static_cast<size_t>(s.n_scan_out))
    return InvalidArgument("scan axes/directions attributes need one entry per scan input/output");
  return s;
}

struct ScanResult {
  std::vector<Tensor> states;
  std::vector<Tensor> outputs;  // stacked along axis 0, in output direction order
};

// The scan proper: `sequences` hold each scan input with its scanned axis first; `len`
// steps run (len <= every sequence's length).
StatusOr<ScanResult> RunScan(const RefContext& ctx, const ScanSpec& s, std::vector<Tensor> states,
                             const std::vector<Tensor>& sequences, int64_t len) {
  std::vector<std::vector<Tensor>> items(static_cast<size_t>(s.n_scan_out));
  for (int64_t t = 0; t < len; ++t) {
    std::vector<RValue> in(states.begin(), states.end());
    for (int i = 0; i < s.n_scan_in; ++i)
      in.emplace_back(IndexFront(sequences[static_cast<size_t>(i)], s.in_dirs[static_cast<size_t>(i)] ? len - 1 - t : t));
    KILN_ASSIGN_OR_RETURN(std::vector<RValue> out, ctx.RunSubgraph(*s.body, std::move(in)));
    KILN_RETURN_IF_ERROR(CheckBodyOutputs(out, static_cast<size_t>(s.n_state + s.n_scan_out), "body"));
    for (int i = 0; i < s.n_state; ++i) {
      RValue& next = out[static_cast<size_t>(i)];
      Tensor& state = states[static_cast<size_t>(i)];
      if (!next.is_tensor() || next.tensor.dtype() != state.dtype() || next.tensor.dims() != state.dims())
        return InvalidArgument("body state output ", i, " must keep the state's type ", state.ShapeString());
      state = std::move(next.tensor);
    }
    for (int k = 0; k < s.n_scan_out; ++k) {
      RValue& v = out[static_cast<size_t>(s.n_state + k)];
      if (!v.is_tensor()) return InvalidArgument("body scan output ", k, " must be a tensor");
      items[static_cast<size_t>(k)].push_back(std::move(v.tensor));
    }
  }
  ScanResult r{std::move(states), {}};
  for (int k = 0; k < s.n_scan_out; ++k) {
    auto& it = items[static_cast<size_t>(k)];
    if (s.out_dirs[static_cast<size_t>(k)]) std::reverse(it.begin(), it.end());
    const TypeInfo& elem = SubgraphOutputType(*s.body, static_cast<size_t>(s.n_state + k));
    KILN_ASSIGN_OR_RETURN(Tensor stacked, StackFront(it, elem, StrCat("scan output ", k)));
    r.outputs.push_back(std::move(stacked));
  }
  return r;
}

// Opset 9+ Scan: per-input scan axes and directions, per-output axes and directions.
Status ScanKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ScanSpec s, ReadScanSpec(ctx, 0));
  std::vector<Tensor> states, sequences;
  for (int i = 0; i < s.n_state; ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
    states.push_back(ctx.input(i));
  }
  int64_t len = -1;
  for (int i = 0; i < s.n_scan_in; ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(s.n_state + i));
    const Tensor& x = ctx.input(s.n_state + i);
    if (x.rank() < 1) return InvalidArgument("scan input ", i, " is a scalar");
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(s.in_axes[static_cast<size_t>(i)], x.rank(), "scan_input_axes"));
    if (len >= 0 && x.dim(axis) != len)
      return InvalidArgument("scan input ", i, " has ", x.dim(axis), " steps but scan input 0 has ", len);
    len = x.dim(axis);
    sequences.push_back(MoveAxisToFront(x, axis));
  }
  KILN_ASSIGN_OR_RETURN(ScanResult r, RunScan(ctx, s, std::move(states), sequences, len));
  for (int i = 0; i < s.n_state; ++i) ctx.set_output(i, std::move(r.states[static_cast<size_t>(i)]));
  for (int k = 0; k < s.n_scan_out; ++k) {
    Tensor& y = r.outputs[static_cast<size_t>(k)];
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(s.out_axes[static_cast<size_t>(k)], y.rank(), "scan_output_axes"));
    ctx.set_output(s.n_state + k, MoveFrontToAxis(y, axis));
  }
  return Status::OK();
}

// Scan-8: input 0 is the optional sequence_lens, every other input has a leading batch
// axis and scan inputs scan along axis 1. Each batch entry runs as its own scan; scan
// outputs past an entry's length are zero (the spec leaves them undefined).
Status BatchedScanKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ScanSpec s, ReadScanSpec(ctx, 1));
  std::vector<Tensor> inputs;
  for (int i = 1; i < ctx.num_inputs(); ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
    if (ctx.input(i).rank() < (i > s.n_state ? 2 : 1))
      return InvalidArgument("input ", i, " lacks the batch (and sequence) axes of the Scan-8 form");
    inputs.push_back(ctx.input(i));
  }
  const Tensor& first_scan = inputs[static_cast<size_t>(s.n_state)];
  const int64_t batch = first_scan.dim(0), max_len = first_scan.dim(1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].dim(0) != batch) return InvalidArgument("input ", i + 1, " has batch size ", inputs[i].dim(0), ", expected ", batch);
    if (static_cast<int>(i) >= s.n_state && inputs[i].dim(1) != max_len)
      return InvalidArgument("input ", i + 1, " has ", inputs[i].dim(1), " steps, expected ", max_len);
  }
  std::vector<int64_t> lens(static_cast<size_t>(batch), max_len);
  if (ctx.has_input(0)) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
    KILN_ASSIGN_OR_RETURN(lens, ctx.input(0).ToInt64Vector());
    if (static_cast<int64_t>(lens.size()) != batch) return InvalidArgument("input 'sequence_lens' needs ", batch, " entries");
    for (int64_t l : lens)
      if (l < 0 || l > max_len) return InvalidArgument("input 'sequence_lens' has ", l, ", outside [0, ", max_len, "]");
  }
  std::vector<std::vector<Tensor>> states_by_batch(static_cast<size_t>(s.n_state)), outs_by_batch(static_cast<size_t>(s.n_scan_out));
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<Tensor> states, sequences;
    for (int i = 0; i < s.n_state; ++i) states.push_back(IndexFront(inputs[static_cast<size_t>(i)], b));
    for (int i = 0; i < s.n_scan_in; ++i) sequences.push_back(IndexFront(inputs[static_cast<size_t>(s.n_state + i)], b));
    KILN_ASSIGN_OR_RETURN(ScanResult r, RunScan(ctx, s, std::move(states), sequences, lens[static_cast<size_t>(b)]));
    for (int i = 0; i < s.n_state; ++i) states_by_batch[static_cast<size_t>(i)].push_back(std::move(r.states[static_cast<size_t>(i)]));
    for (int k = 0; k < s.n_scan_out; ++k)
      outs_by_batch[static_cast<size_t>(k)].push_back(PadFront(r.outputs[static_cast<size_t>(k)], max_len));
  }
  for (int i = 0; i < s.n_state; ++i) {
    if (batch == 0) { ctx.set_output(i, inputs[static_cast<size_t>(i)]); continue; }
    KILN_ASSIGN_OR_RETURN(Tensor y, StackFront(states_by_batch[static_cast<size_t>(i)], {}, StrCat("state ", i)));
    ctx.set_output(i, std::move(y));
  }
  for (int k = 0; k < s.n_scan_out; ++k) {
    TypeInfo elem = SubgraphOutputType(*s.body, static_cast<size_t>(s.n_state + k));
    if (elem.shape.has_rank()) elem.shape.dims().insert(elem.shape.dims().begin(), Dim(max_len));
    KILN_ASSIGN_OR_RETURN(Tensor y, StackFront(outs_by_batch[static_cast<size_t>(k)], elem, StrCat("scan output ", k)));
    ctx.set_output(s.n_state + k, std::move(y));
  }
  return Status::OK();
}

Status ScanDispatchKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t batched, ctx.attrs().GetInt(kScanBatchedAttr, 0));
  return batched ? BatchedScanKernel(ctx) : ScanKernel(ctx);
}

// ---------------------------------------------------------------------------------------

// SequenceMap: runs the body once per element of input 0; other sequence inputs are read
// at the same position, tensor inputs are passed whole every time.
Status SequenceMapKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto body, Body(ctx, "body"));
  if (!ctx.input_value(0).is_sequence()) return InvalidArgument("input 0 'input_sequence' must be a sequence");
  const size_t n = ctx.input_value(0).sequence.size();
  for (int i = 1; i < ctx.num_inputs(); ++i) {
    const RValue& v = ctx.input_value(i);
    if (v.is_none()) return InvalidArgument("input ", i, " is missing");
    if (v.is_sequence() && v.sequence.size() != n)
      return InvalidArgument("input ", i, " has ", v.sequence.size(), " elements but input 0 has ", n);
  }
  std::vector<std::vector<Tensor>> outs(static_cast<size_t>(ctx.num_outputs()));
  for (size_t k = 0; k < n; ++k) {
    std::vector<RValue> in;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      const RValue& v = ctx.input_value(i);
      in.push_back(v.is_sequence() ? RValue(v.sequence[k]) : v);
    }
    KILN_ASSIGN_OR_RETURN(std::vector<RValue> out, ctx.RunSubgraph(*body, std::move(in)));
    KILN_RETURN_IF_ERROR(CheckBodyOutputs(out, outs.size(), "body"));
    for (size_t i = 0; i < outs.size(); ++i) {
      if (!out[i].is_tensor()) return InvalidArgument("body output ", i, " must be a tensor");
      outs[i].push_back(std::move(out[i].tensor));
    }
  }
  for (size_t i = 0; i < outs.size(); ++i) ctx.set_output_value(static_cast<int>(i), RValue::Sequence(std::move(outs[i])));
  return Status::OK();
}

}  // namespace

void RegisterControlFlowKernels(RefKernelRegistry& r) {
  r.Add("", "If", &IfKernel);
  r.Add("", "Loop", &LoopKernel);
  r.Add("", "Scan", &ScanDispatchKernel);
  r.Add("", "SequenceMap", &SequenceMapKernel);
  RegisterControlFlowSequenceKernels(r);
}

}  // namespace kiln
