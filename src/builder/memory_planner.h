// Activation memory planning: every intermediate tensor gets an offset in one arena, so a
// run allocates nothing. Tensors whose lifetimes do not overlap share bytes (greedy by
// size, as in TFLite's arena planner); shape-only ops (Reshape, Flatten, Squeeze,
// Unsqueeze, Identity) are views of their input; an elementwise op whose input dies at
// that op writes in place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "ir/graph.h"

namespace kiln {

struct TensorPlacement {
  ValueId value = kNoValue;
  int64_t offset = -1;   // in the arena; -1: not in the arena (graph input/output, constant)
  int64_t bytes = 0;
  int first_use = 0;     // step (index in the execution order) that defines it
  int last_use = 0;      // last step that reads it
  ValueId alias_of = kNoValue;  // a view or in-place result shares this value's bytes
};

struct MemoryPlan {
  int64_t arena_bytes = 0;   // size of the planned arena
  int64_t naive_bytes = 0;   // sum of all intermediate tensor sizes (one buffer each)
  int num_tensors = 0;       // intermediate tensors
  int num_in_place = 0;      // tensors that reuse their input's bytes (views + in place)
  std::vector<TensorPlacement> placements;  // indexed by ValueId
};

inline constexpr int64_t kArenaAlignment = 64;

// Plans the graph's intermediate tensors for its static shapes. Values with a dynamic
// size are an error naming the value (plan for a concrete shape profile instead).
StatusOr<MemoryPlan> PlanMemory(const Graph& graph);

}  // namespace kiln
