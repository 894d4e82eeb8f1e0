#include "frontend/onnx/normalize.h"
#include "ir/ops/families.h"

namespace kiln {

void RegisterControlFlowNormalizers(NormalizerTable& t) { (void)t; }

}  // namespace kiln
