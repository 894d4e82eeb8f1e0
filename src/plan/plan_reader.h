// Reads a plan file (FORMAT.md) back into an IR graph and memory plan that the runtime can
// run. A plan is untrusted input: the reader always checks the header, the checksum, the
// FlatBuffers structure (Verifier) and then the meaning (indices in range, weights inside
// the file and aligned, sizes without overflow, one producer per value, execution order,
// the target this runtime and CPU can run) before anything uses it. Any bytes give either
// a plan or an error naming the file and the field at fault, never a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plan/shape_profile.h"

#include "base/status.h"
#include "plan/memory_plan.h"
#include "ir/graph.h"

namespace kiln {

struct PlanTarget {
  std::string backend;                    // "ref"
  std::vector<std::string> isa_features;  // CPU features the kernels need
  std::string device;                     // "" for CPU
};

// A graph input or output as stored in the plan's bindings.
struct PlanBinding {
  std::string name;
  ValueId value = kNoValue;  // in LoadedPlan::graph
  TypeInfo type;
};

struct LoadedPlan {
  std::unique_ptr<Graph> graph;  // live nodes only; node ids are the execution order
  // The arena plan for `graph` (placements indexed by ValueId); empty placements when the
  // plan has none (dynamic shapes).
  MemoryPlan memory;
  PlanTarget target;
  uint32_t format_version = 0;
  std::string kiln_version;  // the kiln that built the plan
  std::vector<PlanBinding> inputs, outputs;
  std::vector<ShapeProfileSpec> profiles;  // empty: static input shapes
  int64_t batch_slice = 0;                 // batch-parallel slice size (0: whole batch)
  BackendArena cpu_arena;                  // the CPU program's arena (empty: none stored)
  uint64_t file_bytes = 0;
  uint64_t weights_bytes = 0;
  // True when the constants point into a memory map of the file (no copy); they keep the
  // mapping alive, so the graph may outlive this struct.
  bool mapped = false;
};

struct LoadPlanOptions {
  // The CPU features to check the plan's isa_features against; unset: this CPU's.
  std::optional<std::vector<std::string>> cpu_features;
};

// The newest plan format this runtime reads.
uint32_t SupportedPlanFormatVersion();

// Maps the file (reads it when it cannot be mapped) and loads it. Errors start with `path`.
StatusOr<LoadedPlan> LoadPlan(const std::string& path, const LoadPlanOptions& options = {});
// From bytes in memory (copied, so `data` need not outlive the call or be aligned).
// `source` names the plan in errors.
StatusOr<LoadedPlan> LoadPlanFromBytes(const void* data, size_t size, const std::string& source,
                                       const LoadPlanOptions& options = {});

// True when the file starts with the plan magic ("KILNPLAN"), whatever its name.
bool IsPlanFile(const std::string& path);

}  // namespace kiln
