// Schemas and inference rules a family keeps in files of their own, declared once for the
// family file that registers them.
#pragma once

#include "ir/op_schema.h"

namespace kiln {

void RegisterSignalTextSchemas(OpRegistry& r);      // reduce_rnn_signal_signal.cc
Status InferEinsumShape(InferenceContext& ctx);     // einsum_equation.cc

}  // namespace kiln
