// Matrix products, normalization, softmax, quantization and losses.
#include "ir/ops/sub_families.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

Status InferGemm(InferenceContext& ctx) {
  const TypeInfo& a = ctx.input_type(0);
  const TypeInfo& b = ctx.input_type(1);
  KILN_ASSIGN_OR_RETURN(int64_t ta, ctx.attrs().GetInt("transA", 0));
  KILN_ASSIGN_OR_RETURN(int64_t tb, ctx.attrs().GetInt("transB", 0));
  if (a.shape.has_rank() && a.shape.rank() != 2) return InvalidArgument("A must be 2-D, got ", a.shape.ToString());
  if (b.shape.has_rank() && b.shape.rank() != 2) return InvalidArgument("B must be 2-D, got ", b.shape.ToString());
  Dim m = a.shape.has_rank() ? a.shape.dim(ta ? 1 : 0) : Dim::Unknown();
  Dim n = b.shape.has_rank() ? b.shape.dim(tb ? 0 : 1) : Dim::Unknown();
  if (a.shape.has_rank() && b.shape.has_rank()) {
    const Dim& ka = a.shape.dim(ta ? 0 : 1);
    const Dim& kb = b.shape.dim(tb ? 1 : 0);
    if (ka.known() && kb.known() && ka.value != kb.value)
      return InvalidArgument("inner dimensions differ: A ", a.shape.ToString(), " vs B ", b.shape.ToString());
  }
  if (ctx.has_input(2)) {
    auto s = BroadcastShapes({Shape({m, n}), ctx.input_type(2).shape});
    if (!s.ok() || (s->has_rank() && s->rank() != 2)) return InvalidArgument("C ", ctx.input_type(2).shape.ToString(), " does not broadcast to [M, N]");
  }
  ctx.set_output(0, a.dtype, Shape({m, n}));
  return Status::OK();
}

// NumPy matmul shapes (1-D operands promoted and the added dim removed).
Status InferMatMul(InferenceContext& ctx) {
  const TypeInfo& a = ctx.input_type(0);
  const TypeInfo& b = ctx.input_type(1);
  const std::string& op = ctx.node().op_type;
  const DType dt = op == "MatMulInteger" ? DType::kInt32 : op == "QLinearMatMul" ? ctx.input_type(7).dtype : a.dtype;
  const TypeInfo& bt = op == "QLinearMatMul" ? ctx.input_type(3) : b;
  if (!a.shape.has_rank() || !bt.shape.has_rank()) { ctx.set_output(0, dt, Shape()); return Status::OK(); }
  std::vector<Dim> ad = a.shape.dims(), bd = bt.shape.dims();
  if (ad.empty() || bd.empty()) return InvalidArgument("MatMul operands must have rank >= 1");
  const bool a1 = ad.size() == 1, b1 = bd.size() == 1;
  if (a1) ad.insert(ad.begin(), Dim(1));
  if (b1) bd.push_back(Dim(1));
  const Dim& k1 = ad.back();
  const Dim& k2 = bd[bd.size() - 2];
  if (k1.known() && k2.known() && k1.value != k2.value)
    return InvalidArgument("inner dimensions differ: ", a.shape.ToString(), " x ", bt.shape.ToString());
  KILN_ASSIGN_OR_RETURN(Shape batch, BroadcastShapes({Shape(std::vector<Dim>(ad.begin(), ad.end() - 2)),
                                                      Shape(std::vector<Dim>(bd.begin(), bd.end() - 2))}));
  std::vector<Dim> out = batch.dims();
  if (!a1) out.push_back(ad[ad.size() - 2]);
  if (!b1) out.push_back(bd.back());
  ctx.set_output(0, dt, Shape(std::move(out)));
  return Status::OK();
}

Status InferBatchNorm(InferenceContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  for (int i = 1; i < ctx.num_outputs(); ++i)
    if (ctx.has_output(i)) ctx.set_output_type(i, ctx.input_type(i + 2));
  return Status::OK();
}

Status InferLayerNorm(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  KILN_ASSIGN_OR_RETURN(int64_t stash, ctx.attrs().GetInt("stash_type", 1));
  ctx.set_output_type(0, x);
  if (!x.shape.has_rank()) {
    for (int i = 1; i < ctx.num_outputs(); ++i) ctx.set_output(i, static_cast<DType>(stash), Shape());
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.shape.rank()));
  Shape s = x.shape;
  for (int i = ax; i < s.rank(); ++i) s.dims()[static_cast<size_t>(i)] = Dim(1);
  for (int i = 1; i < ctx.num_outputs(); ++i) ctx.set_output(i, static_cast<DType>(stash), s);
  return Status::OK();
}

Status InferSoftmax(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  if (x.shape.has_rank()) KILN_RETURN_IF_ERROR(NormalizeAxis(axis, x.shape.rank()).status());
  ctx.set_output_type(0, x);
  return Status::OK();
}

Status InferQuantize(InferenceContext& ctx) {
  DType dt = DType::kUInt8;
  if (ctx.has_input(2)) dt = ctx.input_type(2).dtype;
  ctx.set_output(0, dt, ctx.input_type(0).shape);
  return Status::OK();
}

Status InferDequantize(InferenceContext& ctx) {
  ctx.set_output(0, ctx.input_type(1).dtype, ctx.input_type(0).shape);
  return Status::OK();
}

Status InferDynamicQuantize(InferenceContext& ctx) {
  ctx.set_output(0, DType::kUInt8, ctx.input_type(0).shape);
  ctx.set_output(1, DType::kFloat32, Shape::FromDims({}));
  ctx.set_output(2, DType::kUInt8, Shape::FromDims({}));
  return Status::OK();
}

Status InferLoss(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  KILN_ASSIGN_OR_RETURN(std::string red, ctx.attrs().GetString("reduction", "mean"));
  if (red != "none" && red != "sum" && red != "mean") return InvalidArgument("attribute 'reduction' must be none, sum or mean");
  // Per-element losses have the target's shape; reduced ones are scalars.
  ctx.set_output(0, x.dtype, red == "none" ? ctx.input_type(1).shape : Shape::FromDims({}));
  if (ctx.has_output(1)) ctx.set_output_type(1, x);
  return Status::OK();
}

Status InferDet(InferenceContext& ctx) {
  const TypeInfo& x = ctx.input_type(0);
  if (!x.shape.has_rank()) { ctx.set_output(0, x.dtype, Shape()); return Status::OK(); }
  if (x.shape.rank() < 2) return InvalidArgument("input must have rank >= 2");
  ctx.set_output(0, x.dtype, Shape(std::vector<Dim>(x.shape.dims().begin(), x.shape.dims().end() - 2)));
  return Status::OK();
}

// kiln.Attention(Q, K, V[, mask]): softmax(Q·Kᵀ·scale + mask)·V over the last axis, the
// layer recognize_attention makes of an exported attention block. Q [..., L, D]; K is
// [..., S, D] when transpose_k = 1, else already [..., D, S]; V [..., S, Dv]; mask adds to
// the [..., L, S] scores. Batch dims broadcast. Output [..., L, Dv].
Status InferAttention(InferenceContext& ctx) {
  const TypeInfo& q = ctx.input_type(0);
  const TypeInfo& k = ctx.input_type(1);
  const TypeInfo& v = ctx.input_type(2);
  KILN_ASSIGN_OR_RETURN(int64_t tk, ctx.attrs().GetInt("transpose_k", 0));
  KILN_RETURN_IF_ERROR(ctx.attrs().GetFloat("scale", 1.f).status());
  if (!q.shape.has_rank() || !k.shape.has_rank() || !v.shape.has_rank()) {
    ctx.set_output(0, q.dtype, Shape());
    return Status::OK();
  }
  const auto& qd = q.shape.dims();
  const auto& kd = k.shape.dims();
  const auto& vd = v.shape.dims();
  if (qd.size() < 2 || kd.size() < 2 || vd.size() < 2) return InvalidArgument("Q, K and V must have rank >= 2");
  const Dim& kd_d = tk ? kd[kd.size() - 1] : kd[kd.size() - 2];
  const Dim& kd_s = tk ? kd[kd.size() - 2] : kd[kd.size() - 1];
  const Dim& qd_d = qd.back();
  if (qd_d.known() && kd_d.known() && qd_d.value != kd_d.value)
    return InvalidArgument("Q ", q.shape.ToString(), " and K ", k.shape.ToString(), " disagree on the head size");
  if (kd_s.known() && vd[vd.size() - 2].known() && kd_s.value != vd[vd.size() - 2].value)
    return InvalidArgument("K ", k.shape.ToString(), " and V ", v.shape.ToString(), " disagree on the sequence length");
  auto batch = [](const std::vector<Dim>& d) { return Shape(std::vector<Dim>(d.begin(), d.end() - 2)); };
  KILN_ASSIGN_OR_RETURN(Shape b, BroadcastShapes({batch(qd), batch(kd), batch(vd)}));
  std::vector<Dim> out = b.dims();
  out.push_back(qd[qd.size() - 2]);
  out.push_back(vd.back());
  ctx.set_output(0, q.dtype, Shape(std::move(out)));
  return Status::OK();
}

}  // namespace


void RegisterLinalgNormSchemas(OpRegistry& r) {
  r.Add(OpSchema{"Gemm", "", 2, 3, 1, 1, InferGemm, FusionClass::kComplexOutFusable});
  r.Add(OpSchema{"MatMul", "", 2, 2, 1, 1, InferMatMul, FusionClass::kComplexOutFusable});
  r.Add(OpSchema{"MatMulInteger", "", 2, 4, 1, 1, InferMatMul, FusionClass::kOpaque});
  r.Add(OpSchema{"QLinearMatMul", "", 8, 8, 1, 1, InferMatMul, FusionClass::kOpaque});
  r.Add(OpSchema{"BatchNormalization", "", 5, 5, 1, 3, InferBatchNorm, FusionClass::kElementwise});
  r.Add(OpSchema{"InstanceNormalization", "", 3, 3, 1, 1, InferSameAsInput0, FusionClass::kOpaque});
  r.Add(OpSchema{"LayerNormalization", "", 2, 3, 1, 3, InferLayerNorm, FusionClass::kOpaque});
  r.Add(OpSchema{"GroupNormalization", "", 3, 3, 1, 1, InferSameAsInput0, FusionClass::kOpaque});
  r.Add(OpSchema{"MeanVarianceNormalization", "", 1, 1, 1, 1, InferSameAsInput0, FusionClass::kOpaque});
  r.Add(OpSchema{"LpNormalization", "", 1, 1, 1, 1, InferSameAsInput0, FusionClass::kOpaque});
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"})
    r.Add(OpSchema{op, "", 1, 1, 1, 1, InferSoftmax, FusionClass::kOpaque});
  r.Add(OpSchema{"QuantizeLinear", "", 2, 3, 1, 1, InferQuantize, FusionClass::kOpaque});
  r.Add(OpSchema{"DequantizeLinear", "", 2, 3, 1, 1, InferDequantize, FusionClass::kOpaque});
  r.Add(OpSchema{"DynamicQuantizeLinear", "", 1, 1, 3, 3, InferDynamicQuantize, FusionClass::kOpaque});
  r.Add(OpSchema{"NegativeLogLikelihoodLoss", "", 2, 3, 1, 1, InferLoss, FusionClass::kOpaque});
  r.Add(OpSchema{"SoftmaxCrossEntropyLoss", "", 2, 3, 1, 2, InferLoss, FusionClass::kOpaque});
  r.Add(OpSchema{"Det", "", 1, 1, 1, 1, InferDet, FusionClass::kOpaque});
  r.Add(OpSchema{"Einsum", "", 1, kVariadic, 1, 1, InferEinsumShape, FusionClass::kOpaque});
  r.Add(OpSchema{"Attention", "kiln", 3, 4, 1, 1, InferAttention, FusionClass::kOpaque});
}

}  // namespace kiln
