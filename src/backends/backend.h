// The backend interface: what executes a graph (DESIGN.md; in the spirit of ONNX Runtime's
// execution providers and ggml's backends). A backend
//   - says, per node, whether it can run it (capability: WhyNotSupported), and whether it
//     can take a whole graph (CheckGraph: static shapes, say);
//   - compiles a graph — a whole model, a shape specialization of one, a batch slice or a
//     partition's island — into a BackendProgram for fixed input shapes, picking kernels and
//     tactics (timed with the builder's TacticTimer when it gives one) and placing memory;
//   - makes per-thread BackendContexts from a program, which run it.
// Programs are immutable and shared by every context of an engine; a context is one
// thread's state (arena, scratch, handles). The runtime never asks which backend it holds
// (no name compares): it asks the registry (runtime/backend_registry.h) for kiln::Backend's
// implementation and talks to it through this header. `ref` (backends/ref) and `cpu`
// (backends/cpu) implement it; a `cuda` backend is the third.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/tactic_timer.h"
#include "ir/graph.h"
#include "ir/rvalue.h"
#include "ir/tensor.h"
#include "kiln/runtime.h"
#include "plan/memory_plan.h"

namespace kiln {

// How a backend compiles a graph.
struct BackendOptions {
  int threads = 0;  // threads for this engine's layers; 0 = all cores
  // Times the candidate implementations of each layer (the builder's; base/tactic_timer.h).
  // Null: no timing — a plan's recorded tactic, else the kernel library's own choice.
  TacticTimer* timer = nullptr;
  // "fp32", "bf16" (convolutions, matmuls and pooling in BF16 with FP32 accumulation), or
  // "int8" (layers a calibration or QDQ pairs gave scales). A node's "kiln.precision"
  // attribute (from a plan) wins.
  std::string precision = "fp32";
  // Refuse to compile a graph that has a step on a reference implementation (kiln's or a
  // kernel library's), naming every such step and why (`kiln build --strict`).
  bool strict = false;
  // A plan's arena for this program (BackendArena): its offsets are used when the program
  // places the same buffers (same count and sizes) and they pass the lifetime check;
  // otherwise the program places its own. Null: place them.
  const BackendArena* arena = nullptr;
};

// Whether a step's implementation (StepInfo::impl, or a oneDNN impl_info_str) is a
// reference one: kiln's reference kernels ("ref", "reference backend") or oneDNN's
// ("ref:any", ...). A step on one is a slow path that the builder reports (and --strict
// refuses).
bool IsReferenceImpl(const std::string& impl);

// One executed step of a program, for inspect and profiles.
struct StepInfo {
  StepInfo() = default;
  StepInfo(std::string name_, std::string op_, std::string impl_, std::string tactic_ = "", double tactic_ms_ = 0,
           int node_ = -1, std::string precision_ = "")
      : name(std::move(name_)),
        op(std::move(op_)),
        impl(std::move(impl_)),
        tactic(std::move(tactic_)),
        tactic_ms(tactic_ms_),
        node(node_),
        precision(std::move(precision_)) {}
  std::string name;       // layer (node) name, or "reorder <value>"
  std::string op;         // op type of the layer
  std::string impl;       // "onednn:conv jit:avx512_core", "ref", "view", ...
  std::string tactic;     // chosen candidate ("direct", "winograd") when there was a choice
  double tactic_ms = 0;   // its measured time at build, when timed
  int node = -1;          // the graph node it lowers (-1: a reorder/split of the backend's own)
  std::string precision;  // "bf16" when the layer computes in BF16
  std::string note;       // why a reference implementation runs it (see IsReferenceImpl)
  int64_t elements = -1;  // reference kernels: elements of the largest output
};
// Reference-kernel steps whose outputs have at most this many elements (shape arithmetic,
// a scalar gate) cost microseconds: they are not reported as slow paths.
inline constexpr int64_t kTinyStepElements = 64;
// A step on a reference implementation that is not tiny: a slow path.
inline bool IsSlowStep(const StepInfo& s) {
  return IsReferenceImpl(s.impl) && !(s.elements >= 0 && s.elements <= kTinyStepElements);
}
// The slow steps of a step list as "layer (op): impl - why" lines.
std::vector<std::string> SlowStepLines(const std::vector<StepInfo>& steps);

// One thread's state for running a program.
class BackendContext {
 public:
  virtual ~BackendContext() = default;
  // inputs: one value per non-constant graph input, in graph-input order, already checked
  // against the graph. outputs: one per graph output (replaced).
  // out_buffers (optional, one per output, null = not bound): caller memory for tensor
  // outputs, of the output's size (the caller checked it against OutputTypes); a backend
  // may write those outputs there directly (they come back as views of that memory) or
  // ignore it (the runtime copies). Programs whose OutputTypes are unknown get none.
  virtual Status Run(const std::vector<RValue>& inputs, std::vector<RValue>* outputs,
                     const std::vector<void*>* out_buffers = nullptr) = 0;
  // Per-step wall times of the last Run() in milliseconds, one per BackendProgram::steps()
  // entry (0 for a step that did not run), when profiling is on.
  void set_profiling(bool on) { profiling_ = on; }
  bool profiling() const { return profiling_; }
  const std::vector<double>& step_ms() const { return step_ms_; }

 protected:
  bool profiling_ = false;
  std::vector<double> step_ms_;
};

// A graph compiled by a backend for fixed input shapes. Immutable; shared by contexts.
class BackendProgram : public std::enable_shared_from_this<BackendProgram> {
 public:
  virtual ~BackendProgram() = default;
  virtual Backend backend() const = 0;
  // A fresh context (its memory allocated now; a failure shows on its first Run).
  virtual std::unique_ptr<BackendContext> CreateContext() const = 0;
  // What runs, step by step (inspect, profiles, slow-path reports).
  virtual const std::vector<StepInfo>& steps() const = 0;
  // The (specialized, optimized) graph the program was compiled from.
  virtual std::shared_ptr<const Graph> graph() const = 0;
  // Empty tensors (dtype + dims) describing the outputs when they are known before a run;
  // false when only running tells (data-dependent shapes, sequences).
  virtual bool OutputTypes(std::vector<Tensor>* types) const = 0;
  // Activation memory one context holds (0: allocated per tensor as it runs).
  virtual int64_t arena_bytes() const { return 0; }
};

// An execution backend (see the top of this file).
class ExecutionBackend {
 public:
  virtual ~ExecutionBackend() = default;
  virtual Backend kind() const = 0;
  const char* name() const { return BackendName(kind()); }
  // Capability per node: "" when node `n` of `g` can run inside one of this backend's
  // programs (given shapes known when it compiles), else why not.
  virtual std::string WhyNotSupported(const Graph& g, NodeId n) const = 0;
  // Whether the whole graph compiles here as it is (every node supported, static shapes...);
  // the reason when not — the runtime then partitions it (backends/partition.h).
  virtual Status CheckGraph(const Graph& g) const = 0;
  // Whether this backend, on this machine, computes in `precision`.
  virtual Status CheckPrecision(const std::string& precision) const = 0;
  virtual StatusOr<std::shared_ptr<const BackendProgram>> Compile(std::shared_ptr<const Graph> graph,
                                                                  const BackendOptions& options) const = 0;
  // The threads a program compiled with `threads` uses (0 = all cores).
  virtual int EffectiveThreads(int threads) const = 0;
  // Whether programs are compiled for fixed input shapes (a dynamic engine then compiles one
  // per input shapes it meets); false: one program runs any shapes (the reference backend).
  virtual bool fixed_shapes() const { return true; }
};

}  // namespace kiln
