// Activation memory planning: every intermediate tensor gets an offset in one arena (laid
// out by base/arena.h, as the CPU backend's program arena is). Tensors whose lifetimes do not overlap share bytes (greedy by
// size, as in TFLite's arena planner); shape-only ops (Reshape, Flatten, Squeeze,
// Unsqueeze, Identity) are views of their input; an elementwise op whose input dies at
// that op writes in place. Concat elimination: the producers of a Concat write straight
// into their slices of its output, so no copy kernel runs (a slice along an inner axis is
// strided: `rows` runs of `row_bytes`, `row_pitch` apart).
#pragma once

#include "base/status.h"
#include "ir/graph.h"
#include "plan/memory_plan.h"

namespace kiln {

// Plans the graph's intermediate tensors for its static shapes. Values with a dynamic
// size are an error naming the value (plan for a concrete shape profile instead).
struct MemoryPlanOptions {
  bool eliminate_concats = true;
};
StatusOr<MemoryPlan> PlanMemory(const Graph& graph, const MemoryPlanOptions& options = {});

}  // namespace kiln
