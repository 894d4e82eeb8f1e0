// Ties the builder-side layers together: import an ONNX file, infer every type (with the
// reference backend evaluating constant subgraphs for data propagation), run it.
#pragma once

#include <string>
#include <vector>

#include "frontend/onnx/importer.h"
#include "ir/rvalue.h"
#include "runtime/specialize.h"  // CheckInputMatches

namespace kiln {

// Import + type inference. Errors name the file and the node/tensor at fault.
StatusOr<OnnxModel> LoadOnnxModel(const std::string& path);
// The same for a model held in memory (no external data); `source` names it in errors.
StatusOr<OnnxModel> LoadOnnxModelFromBytes(const void* data, size_t size, const std::string& source);

// Runs the graph on the reference backend. `inputs` are in graph-input order; each is
// checked against the input's declared type (dtype, rank, known dims) with a message
// naming the input.
StatusOr<std::vector<RValue>> RunReference(const Graph& graph, std::vector<RValue> inputs);

}  // namespace kiln
