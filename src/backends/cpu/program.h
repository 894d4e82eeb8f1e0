// Internal to the CPU backend: the compiled program (slots, kernels) and the compiler
// that lowers graph nodes onto them. Includes oneDNN; nothing outside src/backends/cpu
// includes this.
#pragma once

#include <dnnl.hpp>

#include <functional>
#include <map>
#include <unordered_map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "ir/graph.h"

namespace kiln::cpu {

// A buffer the program reads or writes: a graph value in one physical layout, or a
// temporary (a reordered copy). Non-f32 values have no oneDNN descriptor (has_md false):
// only reference kernels touch them, always row-major.
struct Slot {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> dims;
  bool has_md = false;
  dnnl::memory::desc md;
  int64_t bytes = 0;
  enum class Kind { kArena, kInput, kConstant } kind = Kind::kArena;
  int input_index = -1;           // kInput: index among the non-constant graph inputs
  const void* constant = nullptr;  // kConstant: the graph's tensor data
  int alias_of = -1;               // shares the root slot's bytes (a view: same bytes, other dims)
  int64_t alias_bytes = 0;         // a view that starts this many bytes into its root's (a concat piece)
  int64_t offset = -1;             // kArena roots: offset in the arena
  // An INT8 slot (md of type s8/u8) holding a float value quantized: real = stored * qscale.
  // 0 for every other slot. Reorders between slots convert (InLayout, Quantized).
  float qscale = 0;
};

struct ExecContext;

class Kernel {
 public:
  virtual ~Kernel() = default;
  std::vector<int> reads, writes;  // slots, for the arena's lifetimes
  StepInfo info;
  // Per-context setup (memory handles, argument arrays); called once per context.
  virtual void Bind(ExecContext& ctx, int index) const {}
  virtual Status Execute(ExecContext& ctx, int index) const = 0;
};

class Program final : public BackendProgram {
 public:
  // The backend interface (backends/backend.h).
  Backend backend() const override { return Backend::kCpu; }
  std::unique_ptr<BackendContext> CreateContext() const override;
  const std::vector<StepInfo>& steps() const override { return step_list; }
  std::shared_ptr<const Graph> graph() const override { return source; }
  bool OutputTypes(std::vector<Tensor>* types) const override;
  int64_t arena_bytes() const override { return arena_size; }

  std::shared_ptr<const Graph> source;  // owns the constants that slots point to
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  int threads = 0;
  std::vector<Slot> slots;
  std::vector<std::unique_ptr<Kernel>> kernels;
  std::vector<StepInfo> step_list;
  std::vector<int> input_slots;   // per non-constant graph input
  std::vector<int> output_slots;  // per graph output (row-major)
  int64_t arena_size = 0;
  bool arena_from_plan = false;  // the offsets are a plan's (CompileOptions::arena)
  int64_t scratch_bytes = 0;
  // Weight bytes the kernels use as stored (a plan's packed weights, in place) and the ones
  // compiling had to repack (reorder) first: repacking is most of a plan's load time.
  int64_t weights_in_place_bytes = 0;
  int64_t weights_repacked_bytes = 0;

  int Root(int s) const {
    while (slots[static_cast<size_t>(s)].alias_of >= 0) s = slots[static_cast<size_t>(s)].alias_of;
    return s;
  }
};

// Per-context execution state.
struct ExecContext {
  const Program* program = nullptr;
  dnnl::stream stream;
  std::vector<char*> ptrs;                 // per slot
  std::vector<dnnl::memory> mems;          // per slot with has_md
  void* scratch = nullptr;
  std::vector<std::vector<dnnl_exec_arg_t>> args;  // per kernel (PrimitiveKernel)
  std::vector<std::vector<dnnl::memory>> owned;    // per kernel: memories its args point at
};

// Row-major descriptor of `dims` (a rank-0 tensor is {1}).
dnnl::memory::desc PlainMd(const std::vector<int64_t>& dims, dnnl::memory::data_type dt = dnnl::memory::data_type::f32);
bool IsPlain(const Slot& s);
std::string MdString(const dnnl::memory::desc& md);

// A oneDNN primitive with its arguments: slots (bound per context) and constants (owned).
class PrimitiveKernel : public Kernel {
 public:
  dnnl::primitive prim;
  std::vector<std::pair<int, int>> slot_args;              // (DNNL_ARG_*, slot)
  std::vector<std::pair<int, dnnl::memory>> const_args;    // weights, bias, post-op constants
  std::optional<dnnl::memory::desc> scratchpad;
  // Weights a plan may store already packed (SavePlan): the graph constant they come
  // from and the memory holding them in the primitive's layout. `packed_relayout`: the
  // packed bytes are the constant's values in an f32 blocked layout of its own dims (a
  // reorder turns them back); otherwise they are a kernel-only form (Winograd-transformed,
  // BF16, a matmul's transposed or scaled operand).
  ValueId packed_value = kNoValue;
  dnnl::memory packed;
  bool packed_relayout = false;
  void Bind(ExecContext& ctx, int index) const override;
  Status Execute(ExecContext& ctx, int index) const override;
};

// Holds the compile state: slot per graph value, layout conversions, constants.
// The layout a chain of convolutions starts in, for the whole-program choice (Compile):
// kAny lets each layer's timing pick (the chain usually takes the first convolution's
// preferred layout, channels-last for oneDNN 2.6's brgconv); kBlocked starts every chain that
// is not channel-blocked yet in nChw16c (nChw8c), where Winograd convolutions live and
// batch-1 concat pieces are dense (ConcatTarget).
enum class ChainSeed { kAny, kBlocked };

class Compiler {
 public:
  Compiler(Program& p, const CompileOptions& o, ChainSeed seed = ChainSeed::kAny) : p_(p), options_(o), seed_(seed) {}
  ChainSeed seed() const { return seed_; }
  Status Run();

  // --- used by the lowering functions (lower_*.cc) ---
  const Graph& graph() const { return *p_.source; }
  Program& program() { return p_; }
  const CompileOptions& options() const { return options_; }
  // The slot holding value v in its current layout (created on first use).
  int SlotOf(ValueId v);
  // A slot with v's data in layout `md`: the same slot, or a reordered copy (cached).
  int InLayout(int slot, const dnnl::memory::desc& md);
  // A slot with the (float) value of `slot` quantized into `md` (s8/u8) with `scale` (real =
  // stored * scale, saturating): the same slot when it holds exactly that, else a scaling
  // reorder (cached).
  int Quantized(int slot, const dnnl::memory::desc& md, float scale);
  int Plain(int slot) { return slot_md_plain(slot); }
  // A row-major view of a row-major slot with other dims (same element count).
  int View(int plain_slot, const std::vector<int64_t>& dims);
  // A view of a row-major slot through an explicit descriptor over the same bytes.
  int ViewMd(int plain_slot, const dnnl::memory::desc& md, const std::vector<int64_t>& dims);
  // A new arena slot for value v (or a temporary when v is kNoValue).
  int NewSlot(ValueId v, const dnnl::memory::desc& md, const std::vector<int64_t>& dims, DType dt = DType::kFloat32);
  int NewRawSlot(ValueId v, const std::vector<int64_t>& dims, DType dt);
  void SetValueSlot(ValueId v, int slot) { value_slot_[v] = slot; }
  // v takes over `dead`'s slot (after IsLastUse(dead, ...)): dead is never read again.
  // Layout copies made of dead's bytes are stale from then on: forgotten.
  void TakeOverSlot(ValueId dead, ValueId v) {
    const int slot = value_slot_.at(dead);
    value_slot_[v] = slot;
    value_slot_.erase(dead);
    for (auto it = layout_cache_.begin(); it != layout_cache_.end();)
      it = it->first.first == slot ? layout_cache_.erase(it) : std::next(it);
  }
  void AddKernel(std::unique_ptr<Kernel> k);
  // Whether node `id` is the last reader of activation v, so that it may overwrite v's
  // buffer (in-place residual sum): every other consumer is lowered already, v is not a
  // graph output, and no other value shares its buffer.
  bool IsLastUse(ValueId v, NodeId id) const;
  // A fresh (uncached) copy of `slot` in layout `md`: a buffer a kernel may overwrite.
  int CopyTo(int slot, const dnnl::memory::desc& md);
  // A kernel copying slot src into slot dst, converting between their layouts.
  // A reorder step; it converts between the slots' quantization scales (Slot::qscale).
  void AddReorder(int src, int dst, std::string name, std::string op, int node = -1);
  // Concat elimination. When v's only reader is a Concat that can take it in place (not
  // fused, every input an activation read only by it, not a graph output), the place for v
  // in the concat's buffer: a sub-memory of the buffer (created on the first call, in the
  // layout of `natural`, the producer's preferred destination, when the offsets along the
  // axis fit its blocking). The producer writes there; LowerConcat copies only the rest.
  struct ConcatPart {
    int slot;                 // a view of the concat's buffer
    dnnl::memory::desc md;    // its descriptor
  };
  std::optional<ConcatPart> ConcatTarget(ValueId v, const dnnl::memory::desc& natural);
  std::optional<int> ConcatWhole(NodeId concat) const {
    auto it = concat_whole_.find(concat);
    if (it == concat_whole_.end()) return std::nullopt;
    return it->second;
  }
  // Whether node n computes in BF16 (its "kiln.precision" attribute, else the options).
  bool Bf16(const Node& n) const {
    if (const Attr* a = n.attrs.find("kiln.precision")) return a->s == "bf16";
    return options_.precision == "bf16";
  }
  // A constant's data as a oneDNN memory in layout `want` (reordered from row-major `from`).
  dnnl::memory ConstantMemory(const Tensor& t, const dnnl::memory::desc& from, const dnnl::memory::desc& want) {
    return ConstantMemory(t.raw_data(), from, want);
  }
  dnnl::memory ConstantMemory(const void* data, const dnnl::memory::desc& from, const dnnl::memory::desc& want);
  // The weights memory of node's kernel, in layout `want`: the plan's kernel copy of them
  // (kiln.kernel_weights) in place when its descriptor is byte-identical to `want`, else
  // `data` (laid out as `from`) in place when that is `want`, else a reordered copy.
  // The plan's kernel copy of node's weights (kiln.kernel_weights) as a memory in `want`,
  // used in place, when its descriptor is byte-identical to `want`; nullopt otherwise.
  std::optional<dnnl::memory> KernelCopy(const Node& node, const dnnl::memory::desc& want);
  dnnl::memory WeightsMemory(const Node& node, const void* data, const dnnl::memory::desc& from,
                             const dnnl::memory::desc& want);
  // Whether the layers' candidates are timed (a builder's timer; never when loading a plan).
  bool timing() const { return options_.timer != nullptr; }
  // A tactic's time under `key` (the layer's problem and the candidate): recorded earlier
  // (this build, a timing cache), else measured by the timer on the runner that prepare()
  // sets up (only then: a hit allocates nothing). Needs timing().
  double TimeTactic(const std::string& key, const std::function<std::function<void()>()>& prepare);
  // Primitive descriptors by a key that fully describes the request (kind, descriptors,
  // post-ops): identical layers -- a transformer's repeated blocks, a long elementwise chain --
  // make oneDNN search its implementations once. An empty descriptor when `make` throws (no
  // implementation), remembered too. An empty key: no memo.
  dnnl::primitive_desc MemoPd(const std::string& key, const std::function<dnnl::primitive_desc()>& make);
  // Whole steps by a key of everything they depend on (the op, its parameters, the source
  // descriptor, the epilogue's ops): the choice a lowering made among its formulations, and
  // the primitive itself, shared by every identical step (oneDNN primitives are immutable
  // and may run concurrently). A long elementwise chain creates one primitive, not one per
  // layer. `aux`: a constant operand the formulation adds (never written).
  struct StepMemo {
    int variant = 0;
    dnnl::primitive prim;
    std::string impl;
    dnnl::memory::desc dst;
    dnnl::memory aux;
  };
  const StepMemo* FindStep(const std::string& key) const {
    auto it = step_memo_.find(key);
    return it == step_memo_.end() ? nullptr : &it->second;
  }
  void RememberStep(const std::string& key, StepMemo m) { step_memo_.emplace(key, std::move(m)); }
  // The time of a reorder from layout `from` to `to` (for TimeTactic's cost of layouts).
  double TimeReorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to);
  // Whether a copy of `slot` in layout `md` exists already (a reorder another reader made).
  bool HasLayoutCopy(int slot, const dnnl::memory::desc& md) const {
    return layout_cache_.count({slot, MdString(md)}) > 0;
  }
  // A runner of a primitive on zeroed scratch buffers (for TimeTactic).
  std::function<void()> PrimitiveRunner(const dnnl::primitive& prim, const dnnl::primitive_desc_base& pd,
                                        const std::vector<int>& arg_ids);

 private:
  int slot_md_plain(int slot);
  Status LowerNode(NodeId id);
  Status PlanArena();

  Program& p_;
  CompileOptions options_;
  ChainSeed seed_ = ChainSeed::kAny;
  std::map<ValueId, int> value_slot_;
  std::vector<bool> lowered_;  // per node
  std::map<NodeId, int> concat_whole_;  // concat node -> its output buffer (ConcatTarget)
  std::map<std::pair<int, std::string>, int> layout_cache_;  // (slot, md string) -> slot
  std::unordered_map<std::string, dnnl::primitive_desc> pd_memo_;
  std::unordered_map<std::string, StepMemo> step_memo_;
};

// Lowering functions: true when the node was lowered, false to fall back (no error).
StatusOr<bool> LowerConv(Compiler& c, NodeId id);
StatusOr<bool> LowerMatMul(Compiler& c, NodeId id);
StatusOr<bool> LowerPool(Compiler& c, NodeId id);
StatusOr<bool> LowerConcat(Compiler& c, NodeId id);
StatusOr<bool> LowerNormSoftmax(Compiler& c, NodeId id);
StatusOr<bool> LowerElementwise(Compiler& c, NodeId id);
StatusOr<bool> LowerView(Compiler& c, NodeId id);
StatusOr<bool> LowerTranspose(Compiler& c, NodeId id);
StatusOr<bool> LowerAttention(Compiler& c, NodeId id);
StatusOr<bool> LowerSlice(Compiler& c, NodeId id);
StatusOr<bool> LowerSplit(Compiler& c, NodeId id);
// strided_copy.cc: Transpose/Slice/Split/Expand of any element type, ConstantOfShape.
StatusOr<bool> LowerStridedCopy(Compiler& c, NodeId id);
// broadcast_binary.cc: Greater/Less/Equal/GreaterOrEqual/LessOrEqual of f32 into bool.
StatusOr<bool> LowerCompare(Compiler& c, NodeId id);
// scatter.cc: ScatterND / ScatterElements without reduction, any element type.
StatusOr<bool> LowerScatter(Compiler& c, NodeId id);
StatusOr<bool> LowerConvTranspose(Compiler& c, NodeId id);
StatusOr<bool> LowerResize(Compiler& c, NodeId id);
StatusOr<bool> LowerResizeKiln(Compiler& c, NodeId id);
StatusOr<bool> LowerPad(Compiler& c, NodeId id);  // pad.cc  // resize.cc: every mode, after LowerResize
StatusOr<bool> LowerGather(Compiler& c, NodeId id);  // lower_gather.cc
// kiln's broadcasting binary kernel (broadcast_binary.cc): dst = alg(a, b) on row-major f32
// slots, b a slot (b_slot >= 0) or the constant *b_const, of dims b_dims (NumPy broadcast to
// dst's dims). False for an algorithm it does not compute.
bool AddBroadcastBinary(Compiler& c, dnnl::algorithm alg, int a_slot, int b_slot, const std::vector<float>* b_const,
                        const std::vector<int64_t>& b_dims, int dst_slot, const std::string& name, const std::string& op,
                        int node);
// kiln's copy Concat (concat.cc): memcpy per (outer index, piece) when every piece shares a
// row-major or channel-blocked layout that makes its part contiguous; false otherwise (and
// nothing added). `srcs[i]` = -1: piece i (dims piece_dims[i]) is in the output already.
// `into` >= 0: write into that slot (the concat's buffer, which must have the layout), else
// a new slot for `out`.
bool AddCopyConcat(Compiler& c, const std::vector<int>& srcs, const std::vector<std::vector<int64_t>>& piece_dims,
                   const std::vector<int64_t>& out_dims, int64_t axis, ValueId out, const std::string& name, int node,
                   int into = -1);
// AddCopyConcat into the concat's buffer `into`, after reordering (densely, in parallel) the
// pieces that are in another layout into the buffer's: a reorder into a strided part of the
// buffer is oneDNN's slow generic one and does not scale over threads.
bool AddCopyConcatInto(Compiler& c, std::vector<int> srcs, const std::vector<std::vector<int64_t>>& piece_dims,
                       const std::vector<int64_t>& out_dims, int64_t axis, ValueId out, const std::string& name, int node,
                       int into);
// An INT8 concat: every piece quantized with `scale` (saturating; those written so by their
// producers as they are) into one layout, then copied: the output is INT8 with that scale.
bool AddInt8CopyConcat(Compiler& c, const std::vector<int>& srcs, const std::vector<std::vector<int64_t>>& piece_dims,
                       const std::vector<int64_t>& out_dims, int64_t axis, ValueId out, const std::string& name, int node,
                       float scale, bool is_unsigned);
// The pieces of a concat along `axis` in one layout kiln's copy concat takes (row-major,
// channels-last or channel-blocked): the layout most of their bytes are in already; the
// others reordered into it (concat.cc).
std::vector<int> PiecesInCommonLayout(Compiler& c, const std::vector<int>& srcs, int64_t axis);
// Every node: the reference kernel on row-major slots.
Status LowerReference(Compiler& c, NodeId id);

// A fused node's epilogue as oneDNN post-ops, or nullopt when some op has no post-op.
struct PostOp {
  // kSum: dst += the operand, through oneDNN's sum post-op (the operand's bytes are in dst
  // before the primitive runs); only the lowering that owns dst can use it.
  enum class Kind { kEltwise, kBinary, kSum } kind = Kind::kEltwise;
  dnnl::algorithm alg = dnnl::algorithm::undef;
  float alpha = 0, beta = 0;
  // kBinary: the other operand, broadcast to the output's rank (leading 1s).
  std::vector<int64_t> src1_dims;
  ValueId src1 = kNoValue;  // a graph value (constant or activation)
  std::vector<float> src1_const;  // or scalar/constant data already materialized
};
// `fusable_only` false: also a chain that NormalizePostOps refuses (linear steps folded),
// for a lowering that can run it as separate steps.
std::optional<std::vector<PostOp>> TranslateEpilogue(const Graph& g, const Node& node, int out_rank,
                                                     bool fusable_only = true);
// Folds consecutive linear steps; false (and `ops` unchanged) when the chain still has one
// eltwise algorithm twice with different parameters, which oneDNN 2.6's JIT kernels compute
// wrongly.
bool NormalizePostOps(std::vector<PostOp>& ops);
void FoldLinearPostOps(std::vector<PostOp>& ops);
bool PostOpsConflict(const std::vector<PostOp>& ops);
// Keys for Compiler::MemoPd: every field of a memory descriptor / an attribute that a
// primitive descriptor depends on ("" for an attribute with something the key cannot say).
std::string MdKey(const dnnl::memory::desc& md);
std::string AttrKey(const dnnl::primitive_attr& attr);
// A key for an epilogue's ops as TranslateEpilogue gives them: kinds, algorithms, exact
// parameters and operand dims (not constant operands' values, which are kernel arguments).
std::string PostOpsKey(const std::vector<PostOp>& ops);
// Builds the attr and registers binary operands as kernel args. `dst_dims` are the
// primitive's output dims (post-op operand dims are matched against them). With `dst_md`
// (the destination's layout, when known), full-size operands are brought into it: oneDNN
// falls back to its slow reference kernels when they differ. A null `attr`: registers the
// operands only (a step whose primitive comes from Compiler::FindStep).
Status ApplyPostOps(Compiler& c, const std::vector<PostOp>& ops, const std::vector<int64_t>& dst_dims,
                    dnnl::primitive_attr* attr, std::vector<std::pair<int, int>>* slot_args,
                    std::vector<std::pair<int, dnnl::memory>>* const_args, std::vector<int>* reads,
                    const dnnl::memory::desc* dst_md = nullptr);

dnnl::memory::dims ToDnnl(const std::vector<int64_t>& v);

// The descriptor of a broadcast operand of dims `d` (rank of the destination) read against
// a destination laid out as `dst`: a per-channel operand [1, C, 1, ...] against a
// channel-blocked destination (nChw8c, C a multiple of the block) in that same tag — the
// bytes are the row-major ones, and oneDNN's JIT binary kernels take it, where a row-major
// descriptor sends them to ref:any; otherwise row-major.
dnnl::memory::desc BroadcastOperandMd(const std::vector<int64_t>& d, const dnnl::memory::desc* dst);

// Packed weights in plans: a node attribute holds the oneDNN descriptor (raw bytes of
// dnnl_memory_desc_t) of its weight constant's bytes. Checked against the constant: f32,
// the constant's dims (or its grouped 5-D split), a dense blocked layout of exactly its
// size — a descriptor from a damaged plan cannot address outside the bytes. With padding
// (oneDNN pads a dim to its block size), the bytes are the node's kiln.packed_weights
// attribute and the layout must fill exactly those.
struct PackedSource {
  dnnl::memory::desc md;
  const void* data;
};
StatusOr<PackedSource> PackedWeightsSource(const Node& node, const Tensor& w);

}  // namespace kiln::cpu
