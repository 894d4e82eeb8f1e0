// The builder's internal entry points shared by the engine builders (ONNX import, the
// network-definition API, the CLI's phases): everything after a Graph exists — shape
// specialization, optimization, INT8 marking, memory plan. The runtime's introspection
// (runtime/engine_internal.h) comes with it.
#pragma once

#include <map>
#include <memory>

#include "builder/memory_planner.h"
#include "ir/graph.h"
#include "kiln/kiln.h"
#include "runtime/engine_internal.h"
#include "runtime/specialize.h"

namespace kiln {

// Specializes `graph`'s input shapes, optimizes it (unless options.optimize is false),
// plans its memory and wraps it in an Engine. Errors name the node or value at fault.
StatusOr<std::shared_ptr<const Engine>> BuildEngineFromGraph(std::shared_ptr<Graph> graph, const BuildOptions& options);

// An engine over a graph that is optimized and memory-planned already (kiln build's phases).
StatusOr<std::shared_ptr<const Engine>> MakeEngineFromOptimized(std::shared_ptr<const Graph> graph, MemoryPlan memory,
                                                                const BuildOptions& options);

// The memory plan of an optimized graph the cpu backend takes whole at fixed shapes (`dynamic`:
// the engine has shape profiles), checked with VerifyMemoryPlan when `verify`; an empty plan
// (no placements) for a dynamic or partitioned graph, whose programs plan their own arenas.
StatusOr<MemoryPlan> PlanEngineMemory(const Graph& graph, bool dynamic, bool verify);

// Makes the dimensions that options.profiles let vary symbolic (and fixes the rest, with
// options.input_shapes), re-inferring the graph's types: the first step of a dynamic build.
Status SetDynamicProfileInputs(Graph& graph, const BuildOptions& options);

// Precision "int8" (else nothing): marks the optimized graph's INT8 layers with their input
// ranges — calibrated on options.calibration's batches (writing its cache when named) or
// read from its cache. Errors name the batch, tensor or cache line at fault.
struct Int8Report {
  int layers = 0;        // layers marked INT8
  int tensors = 0;       // activation ranges (calibrated or read)
  bool calibrated = false;  // from data (else from the cache)
  std::string calibrator;
  // Per quantized activation (value name): its INT8 range, as the layers use it.
  std::map<std::string, Graph::QuantRange> ranges;
  // The ranges of `extra_tensors` (calibrated, or found in the cache).
  std::map<std::string, Graph::QuantRange> extra_ranges;
  // Accuracy budget: the output error with every layer INT8, the layers kept FP32 (with
  // their error when alone INT8, most sensitive first) and the error of the result.
  double error_all_int8 = -1, error_final = -1;
  std::vector<std::pair<std::string, double>> kept_fp32;
};
// `extra_tensors`: more values to calibrate (kiln quantize's layer outputs), not quantized here.
StatusOr<Int8Report> QuantizeInt8(Graph& graph, const BuildOptions& options, const std::vector<ValueId>& extra_tensors = {});

}  // namespace kiln
