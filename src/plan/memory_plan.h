// The activation memory plan of a graph (what a plan file stores): every intermediate
// tensor's offset in one arena, the views and in-place results that share bytes, and the
// Concat slices its producers write straight into. The builder computes it
// (builder/memory_planner.h); the runtime reads and verifies it.
#pragma once

#include <cstdint>
#include <vector>

#include "base/arena.h"
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
  // Concat slices (alias_of = the Concat's output): where this tensor lives inside it.
  bool concat_slice = false;
  int64_t slice_offset = 0;  // bytes from the root's start to this tensor's first element
  int64_t rows = 1;          // product of the dims before the concat axis
  int64_t row_bytes = 0;     // contiguous bytes of this tensor per row
  int64_t row_pitch = 0;     // bytes between rows in the root
};

struct MemoryPlan {
  int64_t arena_bytes = 0;   // size of the planned arena
  int64_t naive_bytes = 0;   // sum of all intermediate tensor sizes (one buffer each)
  int num_tensors = 0;       // intermediate tensors
  int num_in_place = 0;      // tensors that reuse their input's bytes (views + in place)
  int concat_slices = 0;     // tensors written straight into a Concat's output
  int slice_views = 0;       // Split/Slice outputs that are views of their input (no copy)
  std::vector<NodeId> view_nodes;  // Split/Slice nodes all of whose outputs are such views: no kernel
  std::vector<NodeId> eliminated_concats;  // Concats all of whose inputs are slices: no kernel
  std::vector<TensorPlacement> placements;  // indexed by ValueId
};

inline constexpr int64_t kArenaAlignment = kArenaBlockAlignment;

// A backend's own activation arena as the builder placed it (the CPU program's buffers: its
// blocked layouts and reorder temporaries, which the graph-level plan above cannot know):
// the offset and size of every buffer, in the order the program creates them. A plan stores
// it and the runtime executes it (checked first) instead of placing the buffers again.
struct BackendArena {
  int64_t bytes = 0;
  std::vector<int64_t> offsets, sizes;
  bool empty() const { return offsets.empty(); }
};

// Checks a plan's invariants: tensors alive at the same time never share bytes unless one
// aliases the other, slices lie inside their Concat's output and do not overlap, aliases
// do not outlive their root. The planner's tests run this on every model they plan.
Status VerifyMemoryPlan(const Graph& graph, const MemoryPlan& plan);

}  // namespace kiln
