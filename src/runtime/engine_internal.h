// The runtime's introspection for kiln's tools (inspect, bench, the server): what executes
// an engine, its slow paths, per-step profiles. Not a public header.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "ir/graph.h"
#include "kiln/runtime.h"

namespace kiln {

namespace cpu {
class Program;
}  // namespace cpu

// The engine's optimized graph (for inspect, bench profiles).
const Graph& EngineGraph(const Engine& engine);
// What executes the engine, for humans: "cpu (N steps: ...)" or "reference (why)".
std::string EngineBackendSummary(const Engine& engine);
// The whole graph's program when the CPU backend compiled it (null otherwise: another
// backend, a partitioned or a dynamic engine). With a batch-parallel schedule, the slice
// program (what runs, one slice per thread).
const cpu::Program* EngineCpuProgram(const Engine& engine);
// Why the batch-parallel schedule is not used (or how it was timed); empty when not considered.
std::string EngineBatchNote(const Engine& engine);
// The layers that run on reference implementations (slow paths), one line each:
// "layer (op): impl - why"; the whole graph when the reference backend runs it.
std::vector<std::string> EngineSlowPaths(const Engine& engine);
// Profile 0's opt shapes of a dynamic engine (empty for a static one).
std::map<std::string, std::vector<int64_t>> EngineOptShapes(const Engine& engine);

// Per-step profile of a context's runs: turn it on, run, read the last run's steps (CPU
// program steps; with a batch-parallel schedule, the first thread's slice; layers on the
// reference backend one step each, a CPU island's steps in its place).
struct ProfiledStep {
  std::string name, op, impl, tactic;
  double ms = 0;
  bool slow = false;  // a reference implementation (kiln's or oneDNN's ref:any), not a tiny one
};
void SetProfiling(ExecutionContext& context, bool on);
StatusOr<std::vector<ProfiledStep>> LastRunProfile(ExecutionContext& context);

}  // namespace kiln
