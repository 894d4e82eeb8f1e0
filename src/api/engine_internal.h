// Internal entry points shared by the engine builders (ONNX import, the network-definition
// API): everything after a Graph exists — shape specialization, optimization, memory plan.
#pragma once

#include <memory>

#include "ir/graph.h"
#include "kiln/kiln.h"

namespace kiln {

// Specializes `graph`'s input shapes, optimizes it (unless options.optimize is false),
// plans its memory and wraps it in an Engine. Errors name the node or value at fault.
StatusOr<std::shared_ptr<const Engine>> BuildEngineFromGraph(std::shared_ptr<Graph> graph, const BuildOptions& options);

}  // namespace kiln
