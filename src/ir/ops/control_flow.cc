// Control flow (If, Loop, Scan, SequenceMap), sequences and optionals: schemas and
// type/shape inference.
//
// Soundness matters more than precision here: the reference executor checks every tensor
// a kernel produces against the inferred type, so a dim is only stated when it holds for
// every iteration, branch and sequence element.
#include <algorithm>
#include <climits>
#include <functional>

#include "base/checked_math.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

using Kind = TypeInfo::Kind;

// Set by the ONNX importer on Scan-8 nodes (see normalize_control_flow.cc): input 0 is
// sequence_lens and every other input carries a leading batch axis.
constexpr const char* kScanBatchedAttr = "kiln.scan8_batched";

// ---------------------------------------------------------------------------------------
// Type helpers

const TypeInfo& ElemOf(const TypeInfo& t) {
  static const TypeInfo kUnknown;
  return t.elem ? *t.elem : kUnknown;
}

// The element type when `t` is an optional, else `t` itself (optionals are transparent at
// run time: an optional holding a value is that value).
const TypeInfo& Unwrapped(const TypeInfo& t) { return t.kind == Kind::kOptional ? ElemOf(t) : t; }

Shape JoinShapes(const Shape& a, const Shape& b) {
  if (!a.has_rank() || !b.has_rank() || a.rank() != b.rank()) return Shape();
  Shape s = a;
  for (int i = 0; i < a.rank(); ++i)
    if (!(a.dim(i) == b.dim(i))) s.dims()[static_cast<size_t>(i)] = Dim::Unknown();
  return s;
}

// A type that holds for values of both a and b: dims that differ become unknown, an
// optional absorbs a plain value of its element type.
TypeInfo Join(const TypeInfo& a, const TypeInfo& b) {
  if (a.kind != b.kind) {
    if (a.kind == Kind::kOptional) return TypeInfo::Optional(Join(ElemOf(a), b));
    if (b.kind == Kind::kOptional) return TypeInfo::Optional(Join(a, ElemOf(b)));
    return a;  // callers reject kind mismatches before joining
  }
  if (a.kind != Kind::kTensor) {
    TypeInfo t = a;
    t.elem = std::make_shared<TypeInfo>(Join(ElemOf(a), ElemOf(b)));
    return t;
  }
  TypeInfo t = a;
  if (t.dtype == DType::kUndefined) t.dtype = b.dtype;
  t.shape = JoinShapes(a.shape, b.shape);
  return t;
}

// The same type with every shape forgotten (ONNX's ClearShape): values whose shape may
// change from one iteration to the next.
TypeInfo WithoutShapes(const TypeInfo& t) {
  TypeInfo r = t;
  if (r.kind == Kind::kTensor) r.shape = Shape();
  else r.elem = std::make_shared<TypeInfo>(WithoutShapes(ElemOf(t)));
  return r;
}

// Kind and element type agree (shapes may differ). An optional matches its element type.
bool SameElementType(const TypeInfo& a, const TypeInfo& b) {
  const TypeInfo& x = Unwrapped(a);
  const TypeInfo& y = Unwrapped(b);
  if (x.kind != y.kind) return false;
  if (x.kind == Kind::kSequence) return SameElementType(ElemOf(x), ElemOf(y));
  return x.dtype == DType::kUndefined || y.dtype == DType::kUndefined || x.dtype == y.dtype;
}

// Shape `s` with dim `axis` removed (unknown rank stays unknown).
Shape WithoutDim(const Shape& s, int axis) {
  if (!s.has_rank()) return s;
  std::vector<Dim> d = s.dims();
  d.erase(d.begin() + axis);
  return Shape(std::move(d));
}

// Shape `s` with `dim` inserted at `axis`.
Shape WithDim(const Shape& s, int axis, Dim dim) {
  if (!s.has_rank()) return s;
  std::vector<Dim> d = s.dims();
  d.insert(d.begin() + axis, std::move(dim));
  return Shape(std::move(d));
}

Status RequireTensorType(const TypeInfo& t, const std::string& what) {
  if (t.kind != Kind::kTensor) return InvalidArgument(what, " must be a tensor, got ", t.ToString());
  return Status::OK();
}

Status RequireSequenceType(const TypeInfo& t, const std::string& what) {
  if (t.kind != Kind::kSequence) return InvalidArgument(what, " must be a sequence, got ", t.ToString());
  return Status::OK();
}

// A tensor of dtype `want` (when known) with at most one element (scalar or [1]).
Status RequireScalarOf(const TypeInfo& t, DType want, const std::string& what) {
  KILN_RETURN_IF_ERROR(RequireTensorType(t, what));
  if (t.dtype != DType::kUndefined && t.dtype != want)
    return InvalidArgument(what, " must be ", DTypeName(want), ", got ", DTypeName(t.dtype));
  if (auto n = t.shape.Numel(); n && *n != 1) return InvalidArgument(what, " must have one element, got shape ", t.shape.ToString());
  return Status::OK();
}

// Scalar position / index inputs: int32 or int64.
Status RequireIndexScalar(const TypeInfo& t, const std::string& what) {
  KILN_RETURN_IF_ERROR(RequireTensorType(t, what));
  if (t.dtype != DType::kInt32 && t.dtype != DType::kInt64)
    return InvalidArgument(what, " must be int32 or int64, got ", DTypeName(t.dtype));
  // The spec says scalar; ONNX's own test data (sequence_insert_at_front) passes shape [1].
  if (auto n = t.shape.Numel(); n && *n != 1) return InvalidArgument(what, " must be a scalar, got shape ", t.shape.ToString());
  return Status::OK();
}

// Inputs [first, first + count) must be present (an omitted input in the middle of the
// list is not caught by the arity check).
Status RequireInputs(const InferenceContext& ctx, int first, int count) {
  for (int i = first; i < first + count; ++i)
    if (!ctx.has_input(i)) return InvalidArgument("input ", i, " is required");
  return Status::OK();
}

StatusOr<std::shared_ptr<Graph>> GraphAttr(const InferenceContext& ctx, const char* name) {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<Graph> g, ctx.attrs().RequireGraph(name));
  if (!g) return InvalidArgument("attribute '", name, "' holds no graph");
  return g;
}

Status CheckBodyArity(const Graph& body, const char* name, size_t inputs, size_t outputs) {
  if (body.inputs().size() != inputs)
    return InvalidArgument("'", name, "' has ", body.inputs().size(), " inputs, expected ", inputs);
  if (body.outputs().size() != outputs)
    return InvalidArgument("'", name, "' has ", body.outputs().size(), " outputs, expected ", outputs);
  return Status::OK();
}

// ---------------------------------------------------------------------------------------
// If, Loop, Scan, SequenceMap

Status InferIf(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 0, 1));
  KILN_RETURN_IF_ERROR(RequireScalarOf(ctx.input_type(0), DType::kBool, "input 'cond'"));
  KILN_ASSIGN_OR_RETURN(auto then_g, GraphAttr(ctx, "then_branch"));
  KILN_ASSIGN_OR_RETURN(auto else_g, GraphAttr(ctx, "else_branch"));
  const size_t n = static_cast<size_t>(ctx.num_outputs());
  KILN_RETURN_IF_ERROR(CheckBodyArity(*then_g, "then_branch", 0, n));
  KILN_RETURN_IF_ERROR(CheckBodyArity(*else_g, "else_branch", 0, n));
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> t, ctx.infer_subgraph(*then_g, {}));
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> e, ctx.infer_subgraph(*else_g, {}));
  for (size_t i = 0; i < n; ++i) {
    if (!SameElementType(t[i], e[i]))
      return InvalidArgument("output ", i, ": then_branch gives ", t[i].ToString(), ", else_branch gives ", e[i].ToString());
    ctx.set_output_type(static_cast<int>(i), Join(t[i], e[i]));
  }
  return Status::OK();
}

// Loop(M?, cond?, v_initial...) -> (v_final..., scan_outputs...).
// Body: (iteration_num, cond, v...) -> (cond, v..., scan_elements...).
Status InferLoop(InferenceContext& ctx) {
  const int n_carried = ctx.num_inputs() - 2;
  const int n_scan = ctx.num_outputs() - n_carried;
  if (n_scan < 0) return InvalidArgument("Loop has ", n_carried, " loop-carried inputs but only ", ctx.num_outputs(), " outputs");
  if (ctx.has_input(0)) KILN_RETURN_IF_ERROR(RequireScalarOf(ctx.input_type(0), DType::kInt64, "input 'M'"));
  if (ctx.has_input(1)) KILN_RETURN_IF_ERROR(RequireScalarOf(ctx.input_type(1), DType::kBool, "input 'cond'"));
  KILN_ASSIGN_OR_RETURN(auto body, GraphAttr(ctx, "body"));
  KILN_RETURN_IF_ERROR(CheckBodyArity(*body, "body", static_cast<size_t>(2 + n_carried), static_cast<size_t>(1 + n_carried + n_scan)));

  // Loop-carried values may change shape between iterations, so the body sees them
  // without shapes (as ONNX does); its outputs then hold for every iteration.
  std::vector<TypeInfo> in = {TypeInfo::Tensor(DType::kInt64, Shape::FromDims({})),
                              TypeInfo::Tensor(DType::kBool, Shape::FromDims({}))};
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 2, n_carried));
  for (int i = 0; i < n_carried; ++i) {
    in.push_back(WithoutShapes(ctx.input_type(i + 2)));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> out, ctx.infer_subgraph(*body, in));
  KILN_RETURN_IF_ERROR(RequireScalarOf(out[0], DType::kBool, "body output 0 (cond)"));
  for (int i = 0; i < n_carried; ++i) {
    const TypeInfo& init = ctx.input_type(i + 2);
    const TypeInfo& next = out[static_cast<size_t>(1 + i)];
    if (!SameElementType(init, next))
      return InvalidArgument("loop-carried value ", i, " enters as ", init.ToString(), " but the body returns ", next.ToString());
    // Zero iterations return the initial value, otherwise the body's last output.
    ctx.set_output_type(i, Join(init, next));
  }
  for (int k = 0; k < n_scan; ++k) {
    const TypeInfo& elem = out[static_cast<size_t>(1 + n_carried + k)];
    KILN_RETURN_IF_ERROR(RequireTensorType(elem, StrCat("body scan output ", k)));
    ctx.set_output(n_carried + k, elem.dtype, WithDim(elem.shape, 0, Dim::Unknown()));
  }
  return Status::OK();
}

struct ScanLayout {
  bool batched = false;  // Scan-8 form: input 0 is sequence_lens, all others have a batch axis
  int first = 0;         // index of the first state input
  int n_state = 0, n_scan_in = 0, n_scan_out = 0;
  std::vector<int64_t> in_axes, out_axes;
};

StatusOr<ScanLayout> ReadScanLayout(const InferenceContext& ctx) {
  ScanLayout l;
  KILN_ASSIGN_OR_RETURN(int64_t batched, ctx.attrs().GetInt(kScanBatchedAttr, 0));
  l.batched = batched != 0;
  l.first = l.batched ? 1 : 0;
  KILN_ASSIGN_OR_RETURN(int64_t m, ctx.attrs().RequireInt("num_scan_inputs"));
  const int n_in = ctx.num_inputs() - l.first;
  if (m < 1 || m > n_in) return InvalidArgument("attribute 'num_scan_inputs' is ", m, " but the node has ", n_in, " state and scan inputs");
  l.n_scan_in = static_cast<int>(m);
  l.n_state = n_in - l.n_scan_in;
  l.n_scan_out = ctx.num_outputs() - l.n_state;
  if (l.n_scan_out < 0) return InvalidArgument("Scan has ", l.n_state, " state inputs but only ", ctx.num_outputs(), " outputs");
  KILN_ASSIGN_OR_RETURN(l.in_axes, ctx.attrs().GetInts("scan_input_axes", std::vector<int64_t>(static_cast<size_t>(l.n_scan_in), 0)));
  KILN_ASSIGN_OR_RETURN(l.out_axes, ctx.attrs().GetInts("scan_output_axes", std::vector<int64_t>(static_cast<size_t>(l.n_scan_out), 0)));
  KILN_ASSIGN_OR_RETURN(auto in_dirs, ctx.attrs().GetInts("scan_input_directions", std::vector<int64_t>(static_cast<size_t>(l.n_scan_in), 0)));
  KILN_ASSIGN_OR_RETURN(auto out_dirs, ctx.attrs().GetInts("scan_output_directions", std::vector<int64_t>(static_cast<size_t>(l.n_scan_out), 0)));
  if (l.in_axes.size() != static_cast<size_t>(l.n_scan_in) || in_dirs.size() != static_cast<size_t>(l.n_scan_in))
    return InvalidArgument("attributes 'scan_input_axes' and 'scan_input_directions' need one entry per scan input (", l.n_scan_in, ")");
  if (l.out_axes.size() != static_cast<size_t>(l.n_scan_out) || out_dirs.size() != static_cast<size_t>(l.n_scan_out))
    return InvalidArgument("attributes 'scan_output_axes' and 'scan_output_directions' need one entry per scan output (", l.n_scan_out, ")");
  for (int64_t d : in_dirs)
    if (d != 0 && d != 1) return InvalidArgument("attribute 'scan_input_directions' entries must be 0 or 1, got ", d);
  for (int64_t d : out_dirs)
    if (d != 0 && d != 1) return InvalidArgument("attribute 'scan_output_directions' entries must be 0 or 1, got ", d);
  if (l.batched && (ctx.attrs().has("scan_input_axes") || ctx.attrs().has("scan_output_axes") || ctx.attrs().has("scan_output_directions")))
    return InvalidArgument("Scan-8 (batched) takes no axes and no output directions");
  return l;
}

// Scan(initial_states..., scan_inputs...) -> (final_states..., scan_outputs...).
// Body: (states..., scan_input_elements...) -> (states..., scan_output_elements...).
Status InferScan(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ScanLayout l, ReadScanLayout(ctx));
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, l.first, l.n_state + l.n_scan_in));
  KILN_ASSIGN_OR_RETURN(auto body, GraphAttr(ctx, "body"));
  KILN_RETURN_IF_ERROR(CheckBodyArity(*body, "body", static_cast<size_t>(l.n_state + l.n_scan_in),
                                      static_cast<size_t>(l.n_state + l.n_scan_out)));
  if (l.batched && ctx.has_input(0)) {
    const TypeInfo& lens = ctx.input_type(0);
    KILN_RETURN_IF_ERROR(RequireTensorType(lens, "input 'sequence_lens'"));
    if (lens.dtype != DType::kInt64) return InvalidArgument("input 'sequence_lens' must be int64, got ", DTypeName(lens.dtype));
  }
  const int lead = l.batched ? 1 : 0;  // leading batch axis of every input in the Scan-8 form
  Dim batch = Dim::Unknown(), seq_len = Dim::Unknown();
  std::vector<TypeInfo> in;
  for (int i = 0; i < l.n_state; ++i) {
    const TypeInfo& t = ctx.input_type(l.first + i);
    KILN_RETURN_IF_ERROR(RequireTensorType(t, StrCat("state input ", i)));
    if (l.batched && t.shape.has_rank() && t.shape.rank() < 1) return InvalidArgument("state input ", i, " needs a batch axis");
    if (l.batched && t.shape.has_rank() && !batch.known()) batch = t.shape.dim(0);
    in.push_back(TypeInfo::Tensor(t.dtype, l.batched ? WithoutDim(t.shape, 0) : t.shape));
  }
  for (int i = 0; i < l.n_scan_in; ++i) {
    const TypeInfo& t = ctx.input_type(l.first + l.n_state + i);
    KILN_RETURN_IF_ERROR(RequireTensorType(t, StrCat("scan input ", i)));
    Shape s = t.shape;
    if (s.has_rank()) {
      if (s.rank() < 1 + lead) return InvalidArgument("scan input ", i, " has rank ", s.rank(), ", too small to scan");
      KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(l.in_axes[static_cast<size_t>(i)], s.rank() - lead, "scan_input_axes"));
      axis += lead;
      if (!seq_len.known()) seq_len = s.dim(axis);
      if (l.batched && !batch.known()) batch = s.dim(0);
      s = WithoutDim(s, axis);
      if (l.batched) s = WithoutDim(s, 0);
    }
    in.push_back(TypeInfo::Tensor(t.dtype, s));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> out, ctx.infer_subgraph(*body, in));
  for (int i = 0; i < l.n_state; ++i) {
    const TypeInfo& init = ctx.input_type(l.first + i);
    const TypeInfo& next = out[static_cast<size_t>(i)];
    KILN_RETURN_IF_ERROR(RequireTensorType(next, StrCat("body state output ", i)));
    if (!SameElementType(init, next))
      return InvalidArgument("state ", i, " enters as ", init.ToString(), " but the body returns ", next.ToString());
    // The kernel rejects a state whose shape changes, so the input's type holds.
    ctx.set_output_type(i, init);
  }
  for (int k = 0; k < l.n_scan_out; ++k) {
    const TypeInfo& elem = out[static_cast<size_t>(l.n_state + k)];
    KILN_RETURN_IF_ERROR(RequireTensorType(elem, StrCat("body scan output ", k)));
    Shape s = elem.shape;
    if (s.has_rank()) {
      KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(l.out_axes[static_cast<size_t>(k)], s.rank() + 1, "scan_output_axes"));
      s = WithDim(s, axis, seq_len);
      if (l.batched) s = WithDim(s, 0, batch);
    }
    ctx.set_output(l.n_state + k, elem.dtype, s);
  }
  return Status::OK();
}

// SequenceMap(input_sequence, additional_inputs...) -> sequences; the body maps one
// element (and the matching element of every other sequence input) at a time.
Status InferSequenceMap(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 0, ctx.num_inputs()));
  KILN_RETURN_IF_ERROR(RequireSequenceType(ctx.input_type(0), "input 0 'input_sequence'"));
  KILN_ASSIGN_OR_RETURN(auto body, GraphAttr(ctx, "body"));
  KILN_RETURN_IF_ERROR(CheckBodyArity(*body, "body", static_cast<size_t>(ctx.num_inputs()), static_cast<size_t>(ctx.num_outputs())));
  std::vector<TypeInfo> in;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    const TypeInfo& t = ctx.input_type(i);
    if (t.kind == Kind::kOptional) return InvalidArgument("input ", i, " must be a tensor or a sequence, got ", t.ToString());
    in.push_back(t.kind == Kind::kSequence ? ElemOf(t) : t);
  }
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> out, ctx.infer_subgraph(*body, in));
  for (int i = 0; i < ctx.num_outputs(); ++i) {
    const TypeInfo& e = out[static_cast<size_t>(i)];
    KILN_RETURN_IF_ERROR(RequireTensorType(e, StrCat("body output ", i)));
    ctx.set_output_type(i, TypeInfo::Sequence(e));
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------------------
// Sequences

Status InferSequenceConstruct(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 0, ctx.num_inputs()));
  TypeInfo elem;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    const TypeInfo& t = ctx.input_type(i);
    KILN_RETURN_IF_ERROR(RequireTensorType(t, StrCat("input ", i)));
    if (i > 0 && t.dtype != elem.dtype)
      return InvalidArgument("input ", i, " is ", DTypeName(t.dtype), " but input 0 is ", DTypeName(elem.dtype));
    elem = i == 0 ? t : Join(elem, t);
  }
  ctx.set_output_type(0, TypeInfo::Sequence(elem));
  return Status::OK();
}

StatusOr<DType> DTypeAttr(const AttrMap& attrs, const char* name, DType dflt) {
  KILN_ASSIGN_OR_RETURN(int64_t v, attrs.GetInt(name, static_cast<int64_t>(dflt)));
  if (v <= 0 || v > INT32_MAX || !IsValidDType(static_cast<int32_t>(v)))
    return InvalidArgument("attribute '", name, "' is not a valid element type: ", v);
  return static_cast<DType>(v);
}

Status InferSequenceEmpty(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DType dt, DTypeAttr(ctx.attrs(), "dtype", DType::kFloat32));
  ctx.set_output_type(0, TypeInfo::Sequence(TypeInfo::Tensor(dt, Shape())));
  return Status::OK();
}

// The element type of a sequence input; error when unknown (the output needs a dtype).
StatusOr<TypeInfo> SequenceElem(const InferenceContext& ctx, int i) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, i, 1));
  const TypeInfo& s = ctx.input_type(i);
  KILN_RETURN_IF_ERROR(RequireSequenceType(s, "input 'input_sequence'"));
  const TypeInfo& e = ElemOf(s);
  if (e.kind != Kind::kTensor || e.dtype == DType::kUndefined)
    return InvalidArgument("input 'input_sequence' has no known tensor element type: ", s.ToString());
  return e;
}

Status InferSequenceAt(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(TypeInfo e, SequenceElem(ctx, 0));
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(RequireIndexScalar(ctx.input_type(1), "input 'position'"));
  ctx.set_output_type(0, e);
  return Status::OK();
}

Status InferSequenceInsert(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(TypeInfo e, SequenceElem(ctx, 0));
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 1, 1));
  const TypeInfo& t = ctx.input_type(1);
  KILN_RETURN_IF_ERROR(RequireTensorType(t, "input 'tensor'"));
  if (t.dtype != e.dtype)
    return InvalidArgument("input 'tensor' is ", DTypeName(t.dtype), " but the sequence holds ", DTypeName(e.dtype));
  if (ctx.has_input(2)) KILN_RETURN_IF_ERROR(RequireIndexScalar(ctx.input_type(2), "input 'position'"));
  ctx.set_output_type(0, TypeInfo::Sequence(Join(e, t)));
  return Status::OK();
}

Status InferSequenceErase(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 0, 1));
  KILN_RETURN_IF_ERROR(RequireSequenceType(ctx.input_type(0), "input 'input_sequence'"));
  if (ctx.has_input(1)) KILN_RETURN_IF_ERROR(RequireIndexScalar(ctx.input_type(1), "input 'position'"));
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::OK();
}

Status InferSequenceLength(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 0, 1));
  KILN_RETURN_IF_ERROR(RequireSequenceType(ctx.input_type(0), "input 'input_sequence'"));
  ctx.set_output(0, DType::kInt64, Shape::FromDims({}));
  return Status::OK();
}

// The size of every chunk along the split axis when all chunks are equal and known.
StatusOr<Dim> UniformChunkSize(const InferenceContext& ctx, const Dim& axis_dim) {
  const Tensor* split = ctx.input_value(1);
  if (split == nullptr) return Dim::Unknown();
  if (split->rank() > 1) return InvalidArgument("input 'split' must be a scalar or 1-D, got ", split->ShapeString());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, split->ToInt64Vector());
  if (sizes.empty()) return InvalidArgument("input 'split' is empty");
  for (int64_t s : sizes)
    if (s < 0 || (split->rank() == 0 && s == 0)) return InvalidArgument("input 'split' has invalid size ", s);
  if (!axis_dim.known()) return Dim::Unknown();
  if (split->rank() == 0) return axis_dim.value % sizes[0] == 0 ? Dim(sizes[0]) : Dim::Unknown();
  int64_t total = 0;
  for (int64_t s : sizes)
    if (!CheckedAdd(total, s, &total)) return InvalidArgument("input 'split' sums past int64");
  if (total != axis_dim.value) return InvalidArgument("input 'split' sums to ", total, " but the axis has size ", axis_dim.value);
  bool uniform = std::adjacent_find(sizes.begin(), sizes.end(), std::not_equal_to<int64_t>()) == sizes.end();
  return uniform ? Dim(sizes[0]) : Dim::Unknown();
}

Status InferSplitToSequence(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 0, 1));
  const TypeInfo& x = ctx.input_type(0);
  KILN_RETURN_IF_ERROR(RequireTensorType(x, "input 'input'"));
  KILN_ASSIGN_OR_RETURN(int64_t axis_attr, ctx.attrs().GetInt("axis", 0));
  KILN_ASSIGN_OR_RETURN(int64_t keepdims, ctx.attrs().GetInt("keepdims", 1));
  const bool has_split = ctx.has_input(1);
  if (has_split) {
    const TypeInfo& s = ctx.input_type(1);
    KILN_RETURN_IF_ERROR(RequireTensorType(s, "input 'split'"));
    if (s.dtype != DType::kInt32 && s.dtype != DType::kInt64) return InvalidArgument("input 'split' must be int32 or int64");
    if (s.shape.has_rank() && s.shape.rank() > 1) return InvalidArgument("input 'split' must be a scalar or 1-D");
  }
  Shape elem;
  if (x.shape.has_rank()) {
    if (x.shape.rank() == 0) return InvalidArgument("input 'input' must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_attr, x.shape.rank()));
    const Dim& d = x.shape.dim(axis);
    if (!has_split && !keepdims) {
      elem = WithoutDim(x.shape, axis);  // keepdims only applies to the default split of 1
    } else {
      elem = x.shape;
      Dim chunk = Dim(1);
      if (has_split) { KILN_ASSIGN_OR_RETURN(chunk, UniformChunkSize(ctx, d)); }
      elem.dims()[static_cast<size_t>(axis)] = chunk;
    }
  }
  ctx.set_output_type(0, TypeInfo::Sequence(TypeInfo::Tensor(x.dtype, elem)));
  return Status::OK();
}

Status InferConcatFromSequence(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(TypeInfo e, SequenceElem(ctx, 0));
  KILN_ASSIGN_OR_RETURN(int64_t axis_attr, ctx.attrs().RequireInt("axis"));
  KILN_ASSIGN_OR_RETURN(int64_t new_axis, ctx.attrs().GetInt("new_axis", 0));
  if (new_axis != 0 && new_axis != 1) return InvalidArgument("attribute 'new_axis' must be 0 or 1, got ", new_axis);
  Shape out;
  if (e.shape.has_rank()) {
    const int out_rank = e.shape.rank() + static_cast<int>(new_axis);
    if (out_rank == 0) return InvalidArgument("cannot concatenate scalars without 'new_axis'");
    KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axis_attr, out_rank));
    // Elements may differ along the axis; how many there are is known only at run time.
    out = new_axis ? WithDim(e.shape, axis, Dim::Unknown()) : e.shape;
    out.dims()[static_cast<size_t>(axis)] = Dim::Unknown();
  }
  ctx.set_output(0, e.dtype, out);
  return Status::OK();
}

// ---------------------------------------------------------------------------------------
// Optionals

// The TYPE_PROTO attribute as the importer stores it: the innermost tensor dtype in `i`,
// the outermost kind ("tensor" / "sequence" / "optional") in `s`.
StatusOr<TypeInfo> TypeAttr(const AttrMap& attrs, const char* name) {
  const Attr* a = attrs.find(name);
  if (a == nullptr) return InvalidArgument("attribute '", name, "' is required when there is no input");
  if (a->type != Attr::Type::kTypeProto) return InvalidArgument("attribute '", name, "' must be a TYPE_PROTO, got ", AttrTypeName(a->type));
  if (a->i <= 0 || a->i > INT32_MAX || !IsValidDType(static_cast<int32_t>(a->i)))
    return InvalidArgument("attribute '", name, "' has no valid element type");
  TypeInfo t = TypeInfo::Tensor(static_cast<DType>(a->i), Shape());
  if (a->s == "sequence") return TypeInfo::Sequence(t);
  if (a->s == "tensor" || a->s.empty()) return t;
  return InvalidArgument("attribute '", name, "' must be a tensor or sequence type, got ", a->s);
}

Status InferOptional(InferenceContext& ctx) {
  if (ctx.has_input(0)) {
    const TypeInfo& t = ctx.input_type(0);
    if (t.kind == Kind::kOptional) return InvalidArgument("input 0 must be a tensor or a sequence, got ", t.ToString());
    if (ctx.attrs().has("type")) {
      KILN_ASSIGN_OR_RETURN(TypeInfo declared, TypeAttr(ctx.attrs(), "type"));
      if (!SameElementType(declared, t)) return InvalidArgument("attribute 'type' says ", declared.ToString(), " but input 0 is ", t.ToString());
    }
    ctx.set_output_type(0, TypeInfo::Optional(t));
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(TypeInfo t, TypeAttr(ctx.attrs(), "type"));
  ctx.set_output_type(0, TypeInfo::Optional(t));
  return Status::OK();
}

// Opset 18 behaviour: a plain tensor or sequence passes through.
Status InferOptionalGetElement(InferenceContext& ctx) {
  KILN_RETURN_IF_ERROR(RequireInputs(ctx, 0, 1));
  const TypeInfo& t = Unwrapped(ctx.input_type(0));
  if (t.kind == Kind::kTensor && t.dtype == DType::kUndefined)
    return InvalidArgument("input 0 has no known element type: ", ctx.input_type(0).ToString());
  ctx.set_output_type(0, t);
  return Status::OK();
}

Status InferOptionalHasElement(InferenceContext& ctx) {
  ctx.set_output(0, DType::kBool, Shape::FromDims({}));
  return Status::OK();
}

}  // namespace

void RegisterControlFlowSchemas(OpRegistry& r) {
  r.Add(OpSchema{"If", "", 1, 1, 1, kVariadic, InferIf, FusionClass::kOpaque});
  r.Add(OpSchema{"Loop", "", 2, kVariadic, 1, kVariadic, InferLoop, FusionClass::kOpaque});
  r.Add(OpSchema{"Scan", "", 1, kVariadic, 1, kVariadic, InferScan, FusionClass::kOpaque});
  r.Add(OpSchema{"SequenceMap", "", 1, kVariadic, 1, kVariadic, InferSequenceMap, FusionClass::kOpaque});
  r.Add(OpSchema{"SequenceConstruct", "", 1, kVariadic, 1, 1, InferSequenceConstruct, FusionClass::kOpaque});
  r.Add(OpSchema{"SequenceEmpty", "", 0, 0, 1, 1, InferSequenceEmpty, FusionClass::kOpaque});
  r.Add(OpSchema{"SequenceAt", "", 2, 2, 1, 1, InferSequenceAt, FusionClass::kOpaque});
  r.Add(OpSchema{"SequenceInsert", "", 2, 3, 1, 1, InferSequenceInsert, FusionClass::kOpaque});
  r.Add(OpSchema{"SequenceErase", "", 1, 2, 1, 1, InferSequenceErase, FusionClass::kOpaque});
  r.Add(OpSchema{"SequenceLength", "", 1, 1, 1, 1, InferSequenceLength, FusionClass::kOpaque});
  r.Add(OpSchema{"SplitToSequence", "", 1, 2, 1, 1, InferSplitToSequence, FusionClass::kOpaque});
  r.Add(OpSchema{"ConcatFromSequence", "", 1, 1, 1, 1, InferConcatFromSequence, FusionClass::kOpaque});
  r.Add(OpSchema{"Optional", "", 0, 1, 1, 1, InferOptional, FusionClass::kOpaque});
  r.Add(OpSchema{"OptionalGetElement", "", 1, 1, 1, 1, InferOptionalGetElement, FusionClass::kOpaque});
  r.Add(OpSchema{"OptionalHasElement", "", 0, 1, 1, 1, InferOptionalHasElement, FusionClass::kOpaque});
}

}  // namespace kiln
