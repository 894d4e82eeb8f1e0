// Control flow (If, Loop, Scan, SequenceMap), sequences and optionals.
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// A type that holds for values of both a and b (dims that differ become unknown).
TypeInfo Join(const TypeInfo& a, const TypeInfo& b) {
  if (a.kind != b.kind) return a.kind == TypeInfo::Kind::kOptional ? a : b;
  if (a.kind != TypeInfo::Kind::kTensor) {
    if (!a.elem || !b.elem) return a;
    TypeInfo t = a;
    t.elem = std::make_shared<TypeInfo>(Join(*a.elem, *b.elem));
    return t;
  }
  TypeInfo t = a;
  if (a.dtype == DType::kUndefined) t.dtype = b.dtype;
  if (!a.shape.has_rank() || !b.shape.has_rank() || a.shape.rank() != b.shape.rank()) {
    t.shape = Shape();
    return t;
  }
  for (int i = 0; i < a.shape.rank(); ++i)
    if (!(a.shape.dim(i) == b.shape.dim(i))) t.shape.dims()[static_cast<size_t>(i)] = Dim::Unknown();
  return t;
}

// Loop-carried values may change shape between iterations: keep dtype and rank only.
TypeInfo Relaxed(const TypeInfo& t) {
  TypeInfo r = t;
  if (r.kind == TypeInfo::Kind::kTensor && r.shape.has_rank()) r.shape = Shape::OfRank(r.shape.rank());
  if (r.elem) r.elem = std::make_shared<TypeInfo>(Relaxed(*r.elem));
  return r;
}

Status InferIf(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto then_g, ctx.attrs().RequireGraph("then_branch"));
  KILN_ASSIGN_OR_RETURN(auto else_g, ctx.attrs().RequireGraph("else_branch"));
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> t, ctx.infer_subgraph(*then_g, {}));
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> e, ctx.infer_subgraph(*else_g, {}));
  if (t.size() != e.size() || static_cast<int>(t.size()) != ctx.num_outputs())
    return InvalidArgument("then_branch and else_branch must have one output per node output");
  for (int i = 0; i < ctx.num_outputs(); ++i) ctx.set_output_type(i, Join(t[static_cast<size_t>(i)], e[static_cast<size_t>(i)]));
  return Status::OK();
}

Status InferLoop(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto body, ctx.attrs().RequireGraph("body"));
  const int n_carried = ctx.num_inputs() - 2;
  if (n_carried < 0) return InvalidArgument("Loop takes M, cond and the loop-carried values");
  std::vector<TypeInfo> in = {TypeInfo::Tensor(DType::kInt64, Shape::FromDims({})), TypeInfo::Tensor(DType::kBool, Shape::FromDims({}))};
  for (int i = 0; i < n_carried; ++i) in.push_back(Relaxed(ctx.input_type(i + 2)));
  if (static_cast<int>(body->inputs().size()) != 2 + n_carried)
    return InvalidArgument("body has ", body->inputs().size(), " inputs, expected ", 2 + n_carried);
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> out, ctx.infer_subgraph(*body, in));
  if (static_cast<int>(out.size()) < 1 + n_carried) return InvalidArgument("body must return cond and the loop-carried values");
  for (int i = 0; i < n_carried; ++i) ctx.set_output_type(i, Relaxed(Join(ctx.input_type(i + 2), out[static_cast<size_t>(i + 1)])));
  for (int i = n_carried; i < ctx.num_outputs(); ++i) {
    const TypeInfo& s = out[static_cast<size_t>(i + 1)];
    std::vector<Dim> dims = {Dim::Unknown()};
    if (!s.shape.has_rank()) { ctx.set_output(i, s.dtype, Shape()); continue; }
    for (int k = 0; k < s.shape.rank(); ++k) dims.push_back(Dim::Unknown());
    ctx.set_output(i, s.dtype, Shape(std::move(dims)));
  }
  return Status::OK();
}

Status InferScan(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto body, ctx.attrs().RequireGraph("body"));
  KILN_ASSIGN_OR_RETURN(int64_t m, ctx.attrs().RequireInt("num_scan_inputs"));
  const int n_state = ctx.num_inputs() - static_cast<int>(m);
  if (m <= 0 || n_state < 0) return InvalidArgument("bad num_scan_inputs");
  std::vector<TypeInfo> in;
  for (int i = 0; i < n_state; ++i) in.push_back(ctx.input_type(i));
  for (int i = n_state; i < ctx.num_inputs(); ++i) {
    const TypeInfo& t = ctx.input_type(i);
    in.push_back(TypeInfo::Tensor(t.dtype, t.shape.has_rank() && t.shape.rank() > 0 ? Shape::OfRank(t.shape.rank() - 1) : Shape()));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> out, ctx.infer_subgraph(*body, in));
  for (int i = 0; i < ctx.num_outputs() && i < static_cast<int>(out.size()); ++i) {
    const TypeInfo& t = out[static_cast<size_t>(i)];
    if (i < n_state) { ctx.set_output_type(i, t); continue; }
    ctx.set_output(i, t.dtype, t.shape.has_rank() ? Shape::OfRank(t.shape.rank() + 1) : Shape());
  }
  return Status::OK();
}

TypeInfo ElemOf(const TypeInfo& seq) { return seq.elem ? *seq.elem : TypeInfo{}; }

Status InferSequenceConstruct(InferenceContext& ctx) {
  TypeInfo e = ctx.input_type(0);
  for (int i = 1; i < ctx.num_inputs(); ++i) e = Join(e, ctx.input_type(i));
  ctx.set_output_type(0, TypeInfo::Sequence(e));
  return Status::OK();
}

Status InferSequenceEmpty(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("dtype", 1));
  ctx.set_output_type(0, TypeInfo::Sequence(TypeInfo::Tensor(static_cast<DType>(dt), Shape())));
  return Status::OK();
}

Status InferSequenceAt(InferenceContext& ctx) {
  TypeInfo e = ElemOf(ctx.input_type(0));
  if (e.dtype == DType::kUndefined) e.dtype = DType::kFloat32;
  ctx.set_output_type(0, e);
  return Status::OK();
}

Status InferSameSequence(InferenceContext& ctx) {
  TypeInfo s = ctx.input_type(0);
  if (ctx.node().op_type == "SequenceInsert" && ctx.has_input(1) && s.elem) s = TypeInfo::Sequence(Join(*s.elem, ctx.input_type(1)));
  ctx.set_output_type(0, Relaxed(s));
  return Status::OK();
}

Status InferSequenceLength(InferenceContext& ctx) {
  ctx.set_output(0, DType::kInt64, Shape::FromDims({}));
  return Status::OK();
}

Status InferSplitToSequence(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  ctx.set_output_type(0, TypeInfo::Sequence(TypeInfo::Tensor(x.dtype, Shape())));
  return Status::OK();
}

Status InferConcatFromSequence(InferenceContext& ctx) {
  ctx.set_output(0, ElemOf(ctx.input_type(0)).dtype, Shape());
  return Status::OK();
}

Status InferOptional(InferenceContext& ctx) {
  if (ctx.has_input(0)) { ctx.set_output_type(0, TypeInfo::Optional(ctx.input_type(0))); return Status::OK(); }
  const Attr* t = ctx.attrs().find("type");
  if (t == nullptr) return InvalidArgument("Optional without input needs the 'type' attribute");
  TypeInfo e = TypeInfo::Tensor(static_cast<DType>(t->i), Shape());
  if (t->s == "sequence") e = TypeInfo::Sequence(e);
  ctx.set_output_type(0, TypeInfo::Optional(e));
  return Status::OK();
}

Status InferOptionalGetElement(InferenceContext& ctx) {
  const TypeInfo& t = ctx.input_type(0);
  ctx.set_output_type(0, t.kind == TypeInfo::Kind::kOptional && t.elem ? *t.elem : t);
  return Status::OK();
}

Status InferOptionalHasElement(InferenceContext& ctx) {
  ctx.set_output(0, DType::kBool, Shape::FromDims({}));
  return Status::OK();
}

Status InferSequenceMap(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto body, ctx.attrs().RequireGraph("body"));
  std::vector<TypeInfo> in;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    const TypeInfo& t = ctx.input_type(i);
    in.push_back(t.kind == TypeInfo::Kind::kSequence ? Relaxed(ElemOf(t)) : t);
  }
  KILN_ASSIGN_OR_RETURN(std::vector<TypeInfo> out, ctx.infer_subgraph(*body, in));
  for (int i = 0; i < ctx.num_outputs() && i < static_cast<int>(out.size()); ++i)
    ctx.set_output_type(i, TypeInfo::Sequence(Relaxed(out[static_cast<size_t>(i)])));
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
  r.Add(OpSchema{"SequenceInsert", "", 2, 3, 1, 1, InferSameSequence, FusionClass::kOpaque});
  r.Add(OpSchema{"SequenceErase", "", 1, 2, 1, 1, InferSameSequence, FusionClass::kOpaque});
  r.Add(OpSchema{"SequenceLength", "", 1, 1, 1, 1, InferSequenceLength, FusionClass::kOpaque});
  r.Add(OpSchema{"SplitToSequence", "", 1, 2, 1, 1, InferSplitToSequence, FusionClass::kOpaque});
  r.Add(OpSchema{"ConcatFromSequence", "", 1, 1, 1, 1, InferConcatFromSequence, FusionClass::kOpaque});
  r.Add(OpSchema{"Optional", "", 0, 1, 1, 1, InferOptional, FusionClass::kOpaque});
  r.Add(OpSchema{"OptionalGetElement", "", 1, 1, 1, 1, InferOptionalGetElement, FusionClass::kOpaque});
  r.Add(OpSchema{"OptionalHasElement", "", 0, 1, 1, 1, InferOptionalHasElement, FusionClass::kOpaque});
}

}  // namespace kiln
