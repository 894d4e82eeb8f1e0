// The runtime's internals: what an Engine and an ExecutionContext hold, and the functions
// the runtime's files (and the builder, which makes engines and writes them as plans) share.
// Not a public header.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "backends/backend.h"
#include "backends/partition.h"
#include "base/tactic_timer.h"
#include "ir/graph.h"
#include "ir/rvalue.h"
#include "kiln/runtime.h"
#include "plan/memory_plan.h"
#include "plan/shape_profile.h"

namespace kiln {

struct Engine::Impl {
  std::shared_ptr<const Graph> graph;
  MemoryPlan memory;
  std::vector<TensorInfo> inputs, outputs;
  // The engine's backend (runtime/backend_registry.h), and its program for the whole graph
  // (null: a dynamic, batch-parallel or partitioned engine — below).
  const ExecutionBackend* backend = nullptr;
  std::shared_ptr<const BackendProgram> program;
  std::string backend_note;  // why the backend does not take the whole graph, when it does not
  // Per-layer fallback (backends/partition.h): the backend's islands inside a host graph the
  // reference executor runs; set when the backend cannot take the whole graph.
  std::shared_ptr<const Partition> partition;
  // Its dynamic islands' programs per (island, input dims), compiled on first use (null: not
  // compilable for those dims; the reference kernels run it). Guarded by `mu`.
  // (The key: island, input dims, and the values of its baked inputs.)
  mutable std::map<std::tuple<int, std::vector<std::vector<int64_t>>, std::vector<int64_t>>,
                   std::shared_ptr<const BackendProgram>>
      island_programs;
  mutable std::map<int, std::string> island_failures;  // why an island last failed to compile (profiles)
  // Dynamic shapes: the profiles, and the programs specialized per input shapes so far (the
  // engine stays immutable to its users; this cache is guarded by `mu`).
  std::vector<ShapeProfileSpec> profiles;
  bool dynamic = false;  // specialize the whole graph per input shapes
  BackendOptions compile_options;
  mutable std::mutex mu;
  mutable std::map<std::map<std::string, std::vector<int64_t>>, std::shared_ptr<const BackendProgram>> specialized;
  // Batch-parallel schedule (batch_parallel.h): `slice_program` runs `slice` samples on one
  // thread; a run executes batch/slice of them on `slice_threads` threads. `program` is
  // then null. `batch_note` says why the schedule is not used, when it was considered.
  std::shared_ptr<const BackendProgram> slice_program;
  int64_t batch = 0, slice = 0;
  int slice_threads = 1;
  std::string batch_note;
  // Dynamic engines: the slice size for batches > 1 (0: whole batches; chosen at build for
  // profile 0's opt shapes, or recorded in the plan), and per input shapes the slice program
  // (null: those shapes run whole, e.g. a batch the slice does not divide). Guarded by `mu`.
  int64_t dyn_slice = 0;
  mutable std::map<std::map<std::string, std::vector<int64_t>>, std::shared_ptr<const BackendProgram>> dyn_slices;
  mutable std::map<std::map<std::string, std::vector<int64_t>>, std::shared_ptr<const BackendProgram>> slice_programs;
};

struct ExecutionContext::State {
  std::shared_ptr<const Engine::Impl> engine;
  std::vector<RValue> inputs;  // bound views of the caller's buffers
  std::vector<bool> bound;
  std::vector<RValue> outputs;                              // results of the last Run()
  std::unique_ptr<BackendContext> main;                     // runs `main_program`
  const BackendProgram* main_program = nullptr;             // the engine's, or this shape's (dynamic)
  std::vector<HostTensor> bound_outputs;                    // SetOutput(); undefined = not bound
  std::map<std::string, std::vector<int64_t>> shapes;       // input shapes `main` was specialized for
  std::vector<std::unique_ptr<BackendContext>> slices;      // batch-parallel: one per thread
  const BackendProgram* slices_program = nullptr;           // what `slices` run
  std::shared_ptr<const BackendProgram> dyn_slice_program;  // dynamic engines: this shape's slices
  std::vector<std::unique_ptr<BackendContext>> islands;     // partitioned engines: one per island
  // Partitioned engines: per dynamic island, a context per specialization it ran (bounded);
  // per island, the program and context of its last run (profiles).
  std::vector<std::map<const BackendProgram*, std::unique_ptr<BackendContext>>> dynamic_islands;
  std::vector<std::pair<const BackendProgram*, BackendContext*>> island_last;
  bool profiling = false;                          // SetProfiling
  std::vector<std::pair<NodeId, double>> host_ms;  // reference executor's node times (profiling)
};

namespace internal {
struct EngineAccess {
  static const Engine::Impl& impl(const Engine& e) { return *e.impl_; }
  static ExecutionContext::State& state(ExecutionContext& c) { return *c.state_; }
  static std::shared_ptr<const Engine> Make(std::shared_ptr<const Engine::Impl> impl) {
    return std::shared_ptr<const Engine>(new Engine(std::move(impl)));
  }
  static std::unique_ptr<ExecutionContext> MakeContext(std::unique_ptr<ExecutionContext::State> state) {
    return std::unique_ptr<ExecutionContext>(new ExecutionContext(std::move(state)));
  }
};
}  // namespace internal
inline const Engine::Impl& ImplOf(const Engine& e) { return internal::EngineAccess::impl(e); }
inline ExecutionContext::State& StateOf(ExecutionContext& c) { return internal::EngineAccess::state(c); }

// ---- signature.cc: the public types over the IR's ----
inline DType ToDType(DataType t) { return static_cast<DType>(static_cast<int>(t)); }
inline DataType ToDataType(DType t) { return static_cast<DataType>(static_cast<int>(t)); }
// A graph input/output as the public API describes it.
StatusOr<TensorInfo> InfoOf(const Value& v);
// The graph's non-constant inputs and its outputs.
StatusOr<ModelSignature> SignatureOf(const Graph& g);
// A copy of a tensor as a HostTensor.
HostTensor ToHost(const Tensor& t);
// A view of the caller's tensor (no copy), checked for a usable shape and data.
StatusOr<Tensor> ViewOf(const HostTensor& t, const std::string& what);

// ---- engine.cc ----
// What makes an engine from an optimized graph (LoadOptions, plus the builder's precision).
struct EngineOptions {
  Backend backend = Backend::kCpu;
  int threads = 0;
  std::string precision = "fp32";  // the CPU backend's name for it (cpu::CompileOptions)
  bool strict = false;
  BatchParallel batch_parallel = BatchParallel::kAuto;
};
EngineOptions ToEngineOptions(const LoadOptions& options);
// An engine over an optimized graph: the backend's program(s) compiled, or its islands in a
// partition the reference executor hosts.
// `plan_slice`: the batch-parallel slice a plan recorded (0: none); < 0 while building.
// `timer`: the builder's (kernels and schedules are timed); null when loading a plan (the
// plan's recorded tactics, or the kernel libraries' own choices). `plan_arena`: the CPU
// program's arena a plan stored (the whole graph's program uses it when it fits).
// The backend comes from the registry (an error when it is not compiled in).
StatusOr<std::shared_ptr<const Engine>> MakeEngine(std::shared_ptr<const Graph> g, MemoryPlan memory,
                                                   const EngineOptions& options, std::vector<ShapeProfileSpec> profiles,
                                                   int64_t plan_slice, TacticTimer* timer,
                                                   const BackendArena* plan_arena = nullptr);
// The program for these input shapes (a dynamic engine): compiled on first use, cached.
// Kernels are timed (with `timer`) for the profiles' opt shapes at build; other shapes compile
// without timing (the first viable candidate), so that a new shape costs milliseconds.
// `prepared`: the graph specialized for `shapes` already (MakeEngine's probe), or null.
StatusOr<std::shared_ptr<const BackendProgram>> Specialize(const Engine::Impl& e,
                                                           const std::map<std::string, std::vector<int64_t>>& shapes,
                                                           TacticTimer* timer = nullptr,
                                                           std::shared_ptr<Graph> prepared = nullptr);
// What the runtime does with an ONNX model when the builder is linked (libkiln): the
// builder registers it (api/engine_build.cc); the runtime alone refuses such files.
struct OnnxSupport {
  std::function<StatusOr<std::shared_ptr<const Engine>>(const std::string& path, const LoadOptions& options)> build;
  std::function<StatusOr<ModelSignature>(const std::string& path)> signature;
};
bool RegisterOnnxSupport(OnnxSupport support);

// ---- batch_schedule.cc: batch-parallel execution (batch_parallel.h) ----
// Runs the batch as batch/slice slices on up to `threads` threads, slice s on the context
// of the thread that takes it; each slice reads its rows of the inputs in place and writes
// its rows of the outputs (out_ptrs: whole-batch buffers, out_bytes: their sizes).
Status RunSlices(std::vector<std::unique_ptr<BackendContext>>& contexts, int threads, int64_t batch, int64_t slice,
                 const std::vector<const Tensor*>& inputs, const std::vector<void*>& out_ptrs,
                 const std::vector<size_t>& out_bytes);
// Decides the batch-parallel schedule of a static engine whose whole-batch program is
// `impl.program` (null when a plan recorded `plan_slice` > 0: only that is compiled then).
// plan_slice < 0: building ("auto" times the schedules with `timer`).
Status ChooseBatchSchedule(Engine::Impl& impl, const std::shared_ptr<const Graph>& g, const BackendOptions& co,
                           BatchParallel mode, int64_t plan_slice, TacticTimer* timer);
// A dynamic engine's slice program for these input shapes (cached), or null when they
// run whole.
StatusOr<std::shared_ptr<const BackendProgram>> DynamicSlices(
    const Engine::Impl& e, const std::map<std::string, std::vector<int64_t>>& shapes);

}  // namespace kiln
