// Writes a plan file: an optimized graph, its memory plan and its target (FORMAT.md).
// The bytes depend only on the inputs: no timestamps, no paths, no pointer order, so two
// builds of the same model with the same options give identical files.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "plan/shape_profile.h"

#include "base/status.h"
#include "plan/memory_plan.h"
#include "ir/graph.h"

namespace kiln {

struct PlanOptions {
  std::string backend = "ref";            // the backend whose kernels the plan holds
  std::vector<std::string> isa_features;  // CPU features those kernels need (none for "ref")
  std::string device;                     // accelerator model for GPU backends; "" for CPU
  std::vector<ShapeProfileSpec> profiles;  // for a graph with dynamic input dims
  int64_t batch_slice = 0;                 // batch-parallel slice size; 0 = whole batch
  BackendArena cpu_arena;                  // the CPU program's arena; empty: none
};

// Serializes `optimized` (live nodes only, in execution order; values nothing reads are
// dropped) with `mem`, the plan PlanMemory made for it. An empty `mem.placements` means the
// graph has no memory plan (dynamic shapes): the plan then runs on the reference backend
// only. Errors name the graph, node or value that cannot be stored.
StatusOr<std::vector<uint8_t>> SerializePlan(const Graph& optimized, const MemoryPlan& mem, const PlanOptions& options);

// SerializePlan, streamed to `path.tmp.<pid>`, synced, then renamed to `path`: readers
// never see a half-written plan, and on any error the temporary file is removed and an
// existing `path` is left as it was.
Status WritePlan(const Graph& optimized, const MemoryPlan& mem, const PlanOptions& options, const std::string& path);

// A plan file from its two sections: `weights` (placed at file offset kPlanHeaderSize, so
// tensor offsets inside it are known before the flatbuffer is built) and the `flatbuffer`.
// Fills in the header and the checksum. For tools and tests that edit plans.
std::vector<uint8_t> AssemblePlanFile(std::span<const uint8_t> weights, std::span<const uint8_t> flatbuffer);

}  // namespace kiln
