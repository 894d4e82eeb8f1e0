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

#include "backends/backend.h"
#include "base/status.h"
#include "base/tactic_timer.h"
#include "ir/graph.h"
#include "ir/tensor.h"
#include "plan/memory_plan.h"

namespace kiln::cpu {

// The backend interface's types (backends/backend.h), under the names this backend's code uses.
using CompileOptions = ::kiln::BackendOptions;
using ::kiln::IsReferenceImpl;
using ::kiln::IsSlowStep;
using ::kiln::kTinyStepElements;
using ::kiln::StepInfo;

// The CPU backend behind the backend interface (registered in runtime/backend_registry.cc).
std::unique_ptr<ExecutionBackend> MakeBackend();

class Program;
// The CPU program behind a backend program, or null when another backend compiled it (for
// what only the CPU backend has: packed weights, its arena, weight repacking figures).
const Program* AsProgram(const BackendProgram* program);

// The OpenMP threads an engine built with `threads` uses (0 = all cores).
int EffectiveThreads(int threads);

// Checks a precision name against this CPU: "fp32"; "bf16" needs AVX512-BF16 (or AMX);
// "fp16" is refused with the reason.
Status CheckPrecision(const std::string& precision);


// Whether the graph can run on this backend at all: static shapes, tensors only, no
// control flow. The reason when not (the engine then runs the reference backend).
Status CheckSupported(const Graph& graph);

StatusOr<std::shared_ptr<const Program>> Compile(const std::shared_ptr<const Graph>& graph, const CompileOptions& options);

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
class Context final : public BackendContext {
 public:
  explicit Context(std::shared_ptr<const Program> program);
  ~Context() override;
  // The backend interface's Run (tensor inputs; see RunTensors).
  Status Run(const std::vector<RValue>& inputs, std::vector<RValue>* outputs,
             const std::vector<void*>* out_buffers = nullptr) override;
  // inputs: one tensor per non-constant graph input, in graph-input order (dense,
  // row-major, already checked against the graph). Outputs are freshly allocated tensors
  // (row-major), one per graph output.
  // out_buffers (optional, one per output, null = not bound): caller memory for outputs,
  // of the output's size; the kernels write there directly where the output's buffer is
  // its own (else it is copied there). Bound outputs come back as views of that memory.
  Status RunTensors(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                    const std::vector<void*>* out_buffers = nullptr);

  struct State;

 private:
  std::shared_ptr<const Program> program_;
  std::unique_ptr<State> state_;
};

}  // namespace kiln::cpu
