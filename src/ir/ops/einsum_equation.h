// Einsum equation parsing shared by inference and the reference kernel.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace kiln {

// Labels per operand and for the output; the ellipsis is expanded to labels 'A'+k (upper
// case is not allowed in ONNX equations... it is, so ellipsis dims use codes >= 128).
struct EinsumEquation {
  std::vector<std::vector<int>> inputs;  // label codes per operand dim
  std::vector<int> output;
};

// `ranks`: rank of each operand (needed to expand "...").
StatusOr<EinsumEquation> ParseEinsum(const std::string& equation, const std::vector<int>& ranks);

}  // namespace kiln
