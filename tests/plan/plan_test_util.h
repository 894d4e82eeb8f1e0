// Helpers for the plan tests: graphs built the way `kiln build` builds them, bit-exact
// comparison of outputs, and edits of a plan's flatbuffer through the generated object API
// (for plans that pass the checksum and the verifier but are wrong in meaning).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "builder/memory_planner.h"
#include "ir/graph.h"
#include "ir/rvalue.h"
#include "plan/plan_generated.h"
#include "plan/plan_reader.h"

namespace kiln::testing {

// Path of a file in the source tree ("models/tiny_cnn.onnx").
std::string SourcePath(const std::string& relative);

struct BuiltGraph {
  std::shared_ptr<Graph> graph;
  MemoryPlan mem;  // empty placements when the graph's shapes are dynamic
};
// Import, fix dynamic dims to 1 (when `specialize`), optimize (when `optimize`) and plan memory.
StatusOr<BuiltGraph> BuildFromOnnx(const std::string& path, bool specialize = true, bool optimize = true);

// Inputs for every graph input with a static tensor type; small values so that index-like
// inputs stay in range. Same seed, same tensors.
std::vector<RValue> DeterministicInputs(const Graph& g, uint32_t seed = 1);

// Same kinds, dtypes, dims and bytes (strings compared as strings).
::testing::AssertionResult BitExact(const std::vector<RValue>& want, const std::vector<RValue>& got);

// Serializes, loads back from bytes and runs both graphs on `inputs`: bit-exact or a failure
// naming the step. The loaded plan is returned through `loaded` when given.
::testing::AssertionResult RoundTripsBitExact(const Graph& g, const MemoryPlan& mem, const std::vector<RValue>& inputs,
                                              LoadedPlan* loaded = nullptr);

// A plan file taken apart: its weights section and its flatbuffer as objects.
struct PlanParts {
  std::vector<uint8_t> weights;
  std::unique_ptr<plan::fb::PlanT> plan;
};
PlanParts SplitPlan(const std::vector<uint8_t>& file);
// Packs the objects again and assembles a file with a valid header and checksum.
std::vector<uint8_t> JoinPlan(const PlanParts& parts);

// Loads bytes; the error message, or "" when the plan loaded.
std::string LoadError(const std::vector<uint8_t>& file, const LoadPlanOptions& options = {});

}  // namespace kiln::testing
