// Elementwise ops: unary math and activations, broadcasting binary/variadic arithmetic,
// comparisons and logic, Where, Clip, Cast, Identity, Dropout, random generators.
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

Status InferIsClass(InferenceContext& ctx) {
  ctx.set_output(0, DType::kBool, ctx.input_type(0).shape);
  return Status::OK();
}

Status InferWhere(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Shape s, BroadcastShapes({ctx.input_type(0).shape, ctx.input_type(1).shape,
                                                  ctx.input_type(2).shape}));
  if (ctx.input_type(0).dtype != DType::kBool) return InvalidArgument("input 0 (condition) must be bool");
  if (ctx.input_type(1).dtype != ctx.input_type(2).dtype)
    return InvalidArgument("inputs 1 and 2 must have the same element type, got ", DTypeName(ctx.input_type(1).dtype),
                           " and ", DTypeName(ctx.input_type(2).dtype));
  ctx.set_output(0, ctx.input_type(1).dtype, std::move(s));
  return Status::OK();
}

Status InferSameTypeBroadcast(InferenceContext& ctx) {
  DType dt = ctx.input_type(0).dtype;
  for (int i = 1; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i) && ctx.input_type(i).dtype != dt)
      return InvalidArgument("input ", i, " is ", DTypeName(ctx.input_type(i).dtype), " but input 0 is ",
                             DTypeName(dt), " (both must have the same element type)");
  return InferBroadcast(ctx);
}

Status InferCompare(InferenceContext& ctx) {
  if (ctx.input_type(0).dtype != ctx.input_type(1).dtype)
    return InvalidArgument("inputs must have the same element type, got ", DTypeName(ctx.input_type(0).dtype), " and ",
                           DTypeName(ctx.input_type(1).dtype));
  return InferBroadcastBool(ctx);
}

Status InferCast(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t to, ctx.attrs().RequireInt("to"));
  if (!IsValidDType(static_cast<int32_t>(to))) return InvalidArgument("attribute 'to' is not a valid type: ", to);
  ctx.set_output(0, static_cast<DType>(to), ctx.input_type(0).shape);
  return Status::OK();
}

Status InferCastLike(InferenceContext& ctx) {
  ctx.set_output(0, ctx.input_type(1).dtype, ctx.input_type(0).shape);
  return Status::OK();
}

Status InferClip(InferenceContext& ctx) {
  for (int i = 1; i < 3; ++i) {
    if (!ctx.has_input(i)) continue;
    const TypeInfo& t = ctx.input_type(i);
    if (t.shape.has_rank() && t.shape.rank() != 0 && !(t.shape.rank() == 1 && t.shape.dim(0).value == 1))
      return InvalidArgument("input ", i == 1 ? "'min'" : "'max'", " must be a scalar");
  }
  return InferSameAsInput0(ctx);
}

Status InferDropout(InferenceContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  if (ctx.has_output(1)) ctx.set_output(1, DType::kBool, ctx.input_type(0).shape);
  return Status::OK();
}

Status InferRandomLike(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("dtype", static_cast<int64_t>(ctx.input_type(0).dtype)));
  ctx.set_output(0, static_cast<DType>(dt), ctx.input_type(0).shape);
  return Status::OK();
}

Status InferRandom(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("dtype", 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ctx.attrs().GetInts("shape"));
  if (!ctx.attrs().has("shape")) return InvalidArgument("required attribute 'shape' is missing");
  ctx.set_output(0, static_cast<DType>(dt), Shape::FromDims(shape));
  return Status::OK();
}

Status InferBernoulli(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("dtype", static_cast<int64_t>(ctx.input_type(0).dtype)));
  ctx.set_output(0, static_cast<DType>(dt), ctx.input_type(0).shape);
  return Status::OK();
}

}  // namespace

void RegisterElementwiseSchemas(OpRegistry& r) {
  for (const char* op :
       {"Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Cos", "Cosh", "Erf", "Exp", "Floor", "Log",
        "Neg", "Reciprocal", "Round", "Sign", "Sin", "Sinh", "Sqrt", "Tan", "Tanh", "Relu", "Sigmoid", "Softplus",
        "Softsign", "HardSwish", "Swish", "Mish", "Elu", "Selu", "Celu", "LeakyRelu", "HardSigmoid", "ThresholdedRelu",
        "Shrink", "Gelu", "Not", "BitwiseNot"})
    r.Add(OpSchema{op, "", 1, 1, 1, 1, InferSameAsInput0, FusionClass::kElementwise});
  r.Add(OpSchema{"IsNaN", "", 1, 1, 1, 1, InferIsClass, FusionClass::kElementwise});
  r.Add(OpSchema{"IsInf", "", 1, 1, 1, 1, InferIsClass, FusionClass::kElementwise});
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "PRelu",
                         "And", "Or", "Xor"})
    r.Add(OpSchema{op, "", 2, 2, 1, 1, InferSameTypeBroadcast, FusionClass::kBroadcast});
  r.Add(OpSchema{"Pow", "", 2, 2, 1, 1, InferBroadcast, FusionClass::kBroadcast});
  for (const char* op : {"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"})
    r.Add(OpSchema{op, "", 2, 2, 1, 1, InferCompare, FusionClass::kBroadcast});
  for (const char* op : {"Max", "Min", "Mean", "Sum"})
    r.Add(OpSchema{op, "", 1, kVariadic, 1, 1, InferSameTypeBroadcast, FusionClass::kBroadcast});
  r.Add(OpSchema{"Where", "", 3, 3, 1, 1, InferWhere, FusionClass::kBroadcast});
  r.Add(OpSchema{"Clip", "", 1, 3, 1, 1, InferClip, FusionClass::kElementwise});
  r.Add(OpSchema{"Cast", "", 1, 1, 1, 1, InferCast, FusionClass::kElementwise});
  r.Add(OpSchema{"CastLike", "", 2, 2, 1, 1, InferCastLike, FusionClass::kElementwise});
  r.Add(OpSchema{"Identity", "", 1, 1, 1, 1, InferSameAsInput0, FusionClass::kOpaque, /*view=*/true});
  r.Add(OpSchema{"Dropout", "", 1, 3, 1, 2, InferDropout, FusionClass::kOpaque});
  r.Add(OpSchema{"RandomUniformLike", "", 1, 1, 1, 1, InferRandomLike, FusionClass::kOpaque});
  r.Add(OpSchema{"RandomNormalLike", "", 1, 1, 1, 1, InferRandomLike, FusionClass::kOpaque});
  r.Add(OpSchema{"RandomUniform", "", 0, 0, 1, 1, InferRandom, FusionClass::kOpaque});
  r.Add(OpSchema{"RandomNormal", "", 0, 0, 1, 1, InferRandom, FusionClass::kOpaque});
  r.Add(OpSchema{"Bernoulli", "", 1, 1, 1, 1, InferBernoulli, FusionClass::kOpaque});
}

}  // namespace kiln
