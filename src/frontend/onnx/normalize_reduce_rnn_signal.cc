// Opset normalization: Reduce* before opset 18 (ReduceSum before 13) carried `axes` as an
// attribute; the IR form takes it as input 1.
#include "frontend/onnx/normalize.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

Status ReduceAxesAttr(NormalizeContext& ctx) { return ctx.MoveIntsAttrToInput("axes", 1); }

}  // namespace

void RegisterReduceRnnSignalNormalizers(NormalizerTable& t) {
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
    t.Add(op, &ReduceAxesAttr);
}

}  // namespace kiln
