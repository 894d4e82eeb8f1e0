#include "frontend/onnx/normalize.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// Scan-8 had a batch axis and a sequence_lens input; kiln implements the opset-9 form.
Status NormalizeScan(NormalizeContext& ctx) {
  if (ctx.opset() < 9) return Unimplemented("Scan before opset 9 (batched form with sequence_lens) is not supported");
  return Status::OK();
}

}  // namespace

void RegisterControlFlowNormalizers(NormalizerTable& t) { t.Add("Scan", &NormalizeScan); }

}  // namespace kiln
