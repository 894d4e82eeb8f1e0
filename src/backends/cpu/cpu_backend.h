// The fast CPU backend: the optimized graph lowered to oneDNN primitives (convolution,
// matmul, pooling, concat, layer norm, softmax, binary/eltwise with the fused layer's
// post-ops in one primitive) plus kiln's reference kernels for everything else, executed
// from one activation arena per context.
//
// Lifecycle (DESIGN.md): Compile() picks each layer's implementation and tactic (timing
// the candidates on the real shapes when the builder gives it a timer), reorders weights into the primitive's layout and
// plans the arena — once per engine. A Context binds an arena and oneDNN memory handles
// once; Run() is the hot path: no map lookups, no arena allocation (the output tensors it
// returns are allocated unless the caller bound buffers for them).
//
// This header is the backend's whole surface; oneDNN types stay inside src/backends/cpu.
#pragma once

#include <map>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/tactic_timer.h"
#include "ir/graph.h"
#include "ir/tensor.h"
#include "plan/memory_plan.h"

namespace kiln::cpu {

struct CompileOptions {
  int threads = 0;          // OpenMP threads for this engine's layers; 0 = all cores
  // Times the candidate implementations of each layer (the builder's; base/tactic_timer.h).
  // Null: no timing — a plan's recorded tactic, else oneDNN's own choice.
  TacticTimer* timer = nullptr;
  // "fp32", or "bf16": convolutions, matmuls and pooling in BF16 with FP32 accumulation
  // (activations between them stay BF16); normalizations, softmax and everything on the
  // reference kernels stay FP32. A node's "kiln.precision" attribute (from a plan) wins.
  std::string precision = "fp32";
  // Refuse to compile a graph that has a step on a reference implementation (kiln's or
  // oneDNN's), naming every such step and why (`kiln build --strict`).
  bool strict = false;
  // A plan's arena for this program (BackendArena): its offsets are used when the program
  // places the same buffers (same count and sizes) and they pass the lifetime check;
  // otherwise the program places its own. Null: place them.
  const BackendArena* arena = nullptr;
};

// Whether a step's implementation (StepInfo::impl, or a oneDNN impl_info_str) is a
// reference one: kiln's reference kernels ("ref") or oneDNN's ("ref:any", ...). A step on
// one is a slow path that the builder reports (and --strict refuses).
bool IsReferenceImpl(const std::string& impl);

// One executed step, for inspect/profiles.
struct StepInfo {
  StepInfo() = default;
  StepInfo(std::string name_, std::string op_, std::string impl_, std::string tactic_ = "", double tactic_ms_ = 0,
           int node_ = -1, std::string precision_ = "")
      : name(std::move(name_)), op(std::move(op_)), impl(std::move(impl_)), tactic(std::move(tactic_)),
        tactic_ms(tactic_ms_), node(node_), precision(std::move(precision_)) {}
  std::string name;    // layer (node) name, or "reorder <value>"
  std::string op;      // op type of the layer
  std::string impl;    // "onednn:conv jit:avx512_core", "ref", "view", ...
  std::string tactic;  // chosen candidate ("direct", "winograd") when there was a choice
  double tactic_ms = 0;  // its measured time at build, when timed
  int node = -1;         // the graph node it lowers (-1: a reorder/split of the backend's own)
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

// The OpenMP threads an engine built with `threads` uses (0 = all cores).
int EffectiveThreads(int threads);

// Checks a precision name against this CPU: "fp32"; "bf16" needs AVX512-BF16 (or AMX);
// "fp16" is refused with the reason.
Status CheckPrecision(const std::string& precision);

class Program;

// Whether the graph can run on this backend at all: static shapes, tensors only, no
// control flow. The reason when not (the engine then runs the reference backend).
Status CheckSupported(const Graph& graph);

StatusOr<std::shared_ptr<const Program>> Compile(std::shared_ptr<const Graph> graph, const CompileOptions& options);

const std::vector<StepInfo>& Steps(const Program& program);
// The steps on reference implementations (slow paths; not tiny ones, see
// kTinyStepElements), as "layer (op): impl - why" lines.
std::vector<std::string> SlowSteps(const Program& program);
// The (specialized, optimized) graph a program was compiled from.
std::shared_ptr<const Graph> ProgramGraph(const Program& program);
// Weights the program holds packed in its kernels' layouts, for a plan to store: per entry
// the fused node, its weight constant, the descriptor bytes and the packed bytes (owned by
// the program).
// Plan attributes (src/plan/FORMAT.md): kiln.packed_md — the layout of the weight
// constant's bytes; kiln.packed_weights — those bytes when padding makes them larger than
// the constant (which then names their first bytes); kiln.kernel_md + kiln.kernel_weights —
// an extra copy in a form that cannot be turned back (Winograd, BF16, a matmul's operand),
// used in place when the loading CPU's kernel wants exactly that layout.
inline constexpr const char* kPackedMdAttr = "kiln.packed_md";
inline constexpr const char* kPackedWeightsAttr = "kiln.packed_weights";
inline constexpr const char* kKernelMdAttr = "kiln.kernel_md";
inline constexpr const char* kKernelWeightsAttr = "kiln.kernel_weights";
struct PackedWeights {
  int node;
  ValueId value;
  std::vector<uint8_t> md;
  const void* data;
  size_t bytes;
  bool relayout;  // the constant's values in a blocked layout of its dims (PrimitiveKernel)
};
std::vector<PackedWeights> PackedWeightList(const Program& program);
// Weight bytes the program's kernels use as stored vs. had to repack when it was compiled
// (from a plan: repacking is what makes a load slow).
struct WeightsPacking {
  int64_t in_place_bytes = 0;
  int64_t repacked_bytes = 0;
};
WeightsPacking WeightsPackingOf(const Program& program);
// Rewrites every packed weight constant of `graph` (a loaded plan's) back to row-major and
// drops the attribute: for the reference backend, which reads weights as ONNX lays them out.
Status UnpackWeights(Graph& graph);
// How a plan stores a node's weights, for `kiln inspect`: "" (row-major), "packed Acdb16a",
// "packed Acdb48a (padded)", or "kernel copy: winograd" (see FORMAT.md). `w`: the node's
// weight constant. Never fails: a descriptor that does not check out says so.
std::string DescribePlanWeights(const Node& node, const Tensor& w);
// sizeof(dnnl_memory_desc_t): the size of a packed-weights descriptor attribute.
size_t PackedDescriptorBytes();
// The row-major contents of a node's weight constant (a copy when it is stored packed).
StatusOr<Tensor> RowMajorWeights(const Node& node, const Tensor& w);

// Empty tensors (dtype + dims, no data) describing the program's outputs.
Status OutputTypes(const Program& program, std::vector<Tensor>* types);
int64_t ArenaBytes(const Program& program);
// The program's arena as placed (for a plan to store), and whether it came from a plan.
BackendArena ArenaLayout(const Program& program);
bool ArenaFromPlan(const Program& program);

// Per-thread execution state over a Program: its arena, scratchpad and memory handles.
class Context {
 public:
  explicit Context(std::shared_ptr<const Program> program);
  ~Context();
  // inputs: one tensor per non-constant graph input, in graph-input order (dense,
  // row-major, already checked against the graph). Outputs are freshly allocated tensors
  // (row-major), one per graph output.
  // out_buffers (optional, one per output, null = not bound): caller memory for outputs,
  // of the output's size; the kernels write there directly where the output's buffer is
  // its own (else it is copied there). Bound outputs come back as views of that memory.
  Status Run(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
             const std::vector<void*>* out_buffers = nullptr);
  // Per-step wall times of the last Run() in milliseconds (when profiling is on).
  void set_profiling(bool on) { profiling_ = on; }
  bool profiling() const { return profiling_; }
  const std::vector<double>& step_ms() const { return step_ms_; }

  struct State;

 private:
  std::shared_ptr<const Program> program_;
  std::unique_ptr<State> state_;
  bool profiling_ = false;
  std::vector<double> step_ms_;
};

}  // namespace kiln::cpu
