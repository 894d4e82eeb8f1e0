// Opset normalization: Reduce* before opset 18 (ReduceSum before 13) carried `axes` as an
// attribute; the IR form takes it as input 1 (an empty or absent list still means "reduce
// all", since noop_with_empty_axes keeps its default 0).
// The family's other ops need no rewriting across opsets 7..17: RNN/GRU/LSTM-14 only added
// `layout` (default 0 = the older behaviour), NonMaxSuppression-11 only clarified wording,
// and the signal and text ops have a single version.
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
