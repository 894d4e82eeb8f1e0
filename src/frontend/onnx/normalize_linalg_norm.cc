// Opset normalization for matrix products, normalization and softmax.
#include "frontend/onnx/normalize.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// Softmax/LogSoftmax/Hardmax < 13 coerce the input to 2-D at `axis` (default 1); the IR
// keeps that meaning explicit in kiln.coerce_2d.
Status NormalizeSoftmax(NormalizeContext& ctx) {
  if (ctx.opset() >= 13) return Status::OK();
  Node& n = ctx.node();
  KILN_ASSIGN_OR_RETURN(int64_t axis, n.attrs.GetInt("axis", 1));
  n.attrs.set("axis", Attr::Int(axis));
  n.attrs.set("kiln.coerce_2d", Attr::Int(1));
  return Status::OK();
}

// BatchNormalization < 9 had `spatial`, < 7 `is_test`/`consumed_inputs`; the inference
// form is unchanged. spatial=0 (per-activation statistics) is not supported.
Status NormalizeBatchNorm(NormalizeContext& ctx) {
  Node& n = ctx.node();
  KILN_ASSIGN_OR_RETURN(int64_t spatial, n.attrs.GetInt("spatial", 1));
  if (spatial == 0) return Unimplemented("BatchNormalization with spatial=0");
  for (const char* a : {"spatial", "is_test", "consumed_inputs"}) n.attrs.erase(a);
  // Opset < 14 extra outputs (mean/var/saved stats) only exist in training graphs.
  if (ctx.opset() < 14 && n.outputs.size() > 1) {
    KILN_ASSIGN_OR_RETURN(int64_t is_test, n.attrs.GetInt("is_test", 1));
    (void)is_test;
  }
  return Status::OK();
}

// Gemm < 7 had `broadcast`; < 11 C was required (it is optional now).
Status NormalizeGemm(NormalizeContext& ctx) {
  ctx.node().attrs.erase("broadcast");
  return Status::OK();
}

}  // namespace

void RegisterLinalgNormNormalizers(NormalizerTable& t) {
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) t.Add(op, &NormalizeSoftmax);
  t.Add("BatchNormalization", &NormalizeBatchNorm);
  t.Add("Gemm", &NormalizeGemm);
}

}  // namespace kiln
