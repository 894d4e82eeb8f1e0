// The CPU backend's executor: a Context binds a compiled Program to its buffers (activation
// arena, scratchpad) and runs its kernels; PrimitiveKernel's binding and execution.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>

#include "backends/cpu/program.h"
#include "base/aligned.h"

namespace kiln::cpu {

// ---- PrimitiveKernel ----

void PrimitiveKernel::Bind(ExecContext& ctx, int index) const {
  auto& args = ctx.args[static_cast<size_t>(index)];
  auto& owned = ctx.owned[static_cast<size_t>(index)];
  for (const auto& [arg, slot] : slot_args) args.push_back({arg, ctx.mems[static_cast<size_t>(slot)].get()});
  for (const auto& [arg, mem] : const_args) args.push_back({arg, mem.get()});
  if (scratchpad) {
    owned.emplace_back(*scratchpad, ctx.program->engine, ctx.scratch);
    args.push_back({DNNL_ARG_SCRATCHPAD, owned.back().get()});
  }
}

Status PrimitiveKernel::Execute(ExecContext& ctx, int index) const {
  const auto& args = ctx.args[static_cast<size_t>(index)];
  dnnl_status_t st = dnnl_primitive_execute(prim.get(), ctx.stream.get(), static_cast<int>(args.size()), args.data());
  if (st != dnnl_success) return Internal("oneDNN primitive failed with status ", static_cast<int>(st));
  return Status::OK();
}

struct Context::State {
  ExecContext ctx;
  std::shared_ptr<char> arena, scratch;
  std::vector<std::vector<int>> input_users;  // per input: slots rooted at it
  // Per output: the slots rooted at its buffer when a caller buffer can replace that buffer
  // (an arena root of exactly the output's bytes, row-major, no other output in it); empty:
  // bound outputs are copied.
  std::vector<std::vector<int>> output_users;
  std::string error;  // the arena could not be allocated: every Run() fails with this
};

namespace {
// 64-byte aligned; throws std::bad_alloc when the memory is not there.
std::shared_ptr<char> AlignedBuffer(int64_t bytes) {
  // base/aligned.h: arenas of 2 MiB or more on transparent huge pages.
  std::shared_ptr<void> p = AllocateAligned(static_cast<size_t>(std::max<int64_t>(bytes, 64)));
  if (!p) throw std::bad_alloc();
  return std::static_pointer_cast<char>(p);
}
}  // namespace

Context::Context(std::shared_ptr<const Program> program) : program_(std::move(program)), state_(std::make_unique<State>()) {
  const Program& p = *program_;
  ExecContext& c = state_->ctx;
  c.program = &p;
  c.stream = dnnl::stream(p.engine);
  try {
    state_->arena = AlignedBuffer(p.arena_size);
    state_->scratch = AlignedBuffer(p.scratch_bytes);
  } catch (const std::bad_alloc&) {
    state_->error = StrCat("cannot allocate the activation arena (", p.arena_size, " bytes) and scratchpad (",
                           p.scratch_bytes, " bytes) of this engine");
    return;
  }
  c.scratch = state_->scratch.get();
  const size_t n = p.slots.size();
  c.ptrs.assign(n, nullptr);
  c.mems.resize(n);
  state_->input_users.resize(p.input_slots.size());
  for (size_t s = 0; s < n; ++s) {
    const Slot& root = p.slots[static_cast<size_t>(p.Root(static_cast<int>(s)))];
    char* ptr = nullptr;
    if (root.kind == Slot::Kind::kArena) ptr = state_->arena.get() + std::max<int64_t>(root.offset, 0);
    if (root.kind == Slot::Kind::kConstant) ptr = static_cast<char*>(const_cast<void*>(root.constant));
    if (root.kind == Slot::Kind::kInput) state_->input_users[static_cast<size_t>(root.input_index)].push_back(static_cast<int>(s));
    if (ptr != nullptr) ptr += p.slots[s].alias_bytes;
    c.ptrs[s] = ptr;
    if (p.slots[s].has_md) c.mems[s] = dnnl::memory(p.slots[s].md, p.engine, ptr != nullptr ? ptr : state_->arena.get());
  }
  state_->output_users.resize(p.output_slots.size());
  for (size_t o = 0; o < p.output_slots.size(); ++o) {
    const int s = p.output_slots[o];
    const int r = p.Root(s);
    const Slot& root = p.slots[static_cast<size_t>(r)];
    const Slot& out = p.slots[static_cast<size_t>(s)];
    bool ok = root.kind == Slot::Kind::kArena && root.bytes == out.bytes && IsPlain(out) &&
              (!out.has_md || out.md.data.offset0 == 0) && out.alias_bytes == 0;
    for (size_t o2 = 0; o2 < p.output_slots.size(); ++o2)
      ok = ok && (o2 == o || p.Root(p.output_slots[o2]) != r);
    if (!ok) continue;
    for (size_t t = 0; t < n; ++t)
      if (p.Root(static_cast<int>(t)) == r) state_->output_users[o].push_back(static_cast<int>(t));
  }
  c.args.resize(p.kernels.size());
  c.owned.resize(p.kernels.size());
  for (size_t k = 0; k < p.kernels.size(); ++k) p.kernels[k]->Bind(c, static_cast<int>(k));
}

Context::~Context() = default;

Status Context::Run(const std::vector<RValue>& inputs, std::vector<RValue>* outputs,
                    const std::vector<void*>* out_buffers) {
  std::vector<const Tensor*> ins;
  ins.reserve(inputs.size());
  for (const RValue& v : inputs) {
    if (!v.is_tensor()) return Internal("the cpu backend takes tensor inputs only");
    ins.push_back(&v.tensor);
  }
  std::vector<Tensor> outs;
  KILN_RETURN_IF_ERROR(RunTensors(ins, &outs, out_buffers));
  outputs->clear();
  outputs->reserve(outs.size());
  for (Tensor& t : outs) outputs->emplace_back(std::move(t));
  return Status::OK();
}

std::unique_ptr<BackendContext> Program::CreateContext() const {
  return std::make_unique<Context>(std::static_pointer_cast<const Program>(shared_from_this()));
}

bool Program::OutputTypes(std::vector<Tensor>* types) const { return cpu::OutputTypes(*this, types).ok(); }

Status Context::RunTensors(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                           const std::vector<void*>* out_buffers) {
  const Program& p = *program_;
  ExecContext& c = state_->ctx;
  if (!state_->error.empty()) return InvalidArgument(state_->error);
  if (inputs.size() != p.input_slots.size()) return Internal("expected ", p.input_slots.size(), " inputs, got ", inputs.size());
  // Every run sets its thread count: OpenMP's is per calling thread and outlives a run, so
  // an engine with threads = 1 must not leave the next "all cores" engine on one thread.
  omp_set_num_threads(EffectiveThreads(p.threads));
  for (size_t i = 0; i < inputs.size(); ++i) {
    char* ptr = static_cast<char*>(const_cast<void*>(inputs[i]->raw_data()));
    for (int s : state_->input_users[i]) {
      char* at = ptr + p.slots[static_cast<size_t>(s)].alias_bytes;
      c.ptrs[static_cast<size_t>(s)] = at;
      if (p.slots[static_cast<size_t>(s)].has_md) c.mems[static_cast<size_t>(s)].set_data_handle(at);
    }
  }
  // Bound outputs whose buffer can be the caller's: point every slot of it there for this
  // run (restored below, so that an unbound run writes to the arena again).
  auto redirect = [&](size_t o, char* ptr) {
    for (int s : state_->output_users[o]) {
      char* at = ptr + p.slots[static_cast<size_t>(s)].alias_bytes;
      c.ptrs[static_cast<size_t>(s)] = at;
      if (p.slots[static_cast<size_t>(s)].has_md) c.mems[static_cast<size_t>(s)].set_data_handle(at);
    }
  };
  const size_t n_out = p.output_slots.size();
  std::vector<bool> direct(n_out, false);
  if (out_buffers != nullptr)
    for (size_t o = 0; o < n_out && o < out_buffers->size(); ++o)
      if ((*out_buffers)[o] != nullptr && !state_->output_users[o].empty()) {
        redirect(o, static_cast<char*>((*out_buffers)[o]));
        direct[o] = true;
      }
  struct Restore {
    std::function<void()> f;
    ~Restore() { f(); }
  } restore{[&] {
    for (size_t o = 0; o < n_out; ++o)
      if (direct[o]) redirect(o, state_->arena.get() + p.slots[static_cast<size_t>(p.Root(p.output_slots[o]))].offset);
  }};
  if (profiling_) step_ms_.assign(p.kernels.size(), 0.0);
  for (size_t k = 0; k < p.kernels.size(); ++k) {
    std::chrono::steady_clock::time_point t0;
    if (profiling_) t0 = std::chrono::steady_clock::now();
    Status st = p.kernels[k]->Execute(c, static_cast<int>(k));
    if (!st.ok()) {
      const StepInfo& info = p.kernels[k]->info;
      // "node 'gather_7' (Gather)", or "node #3 (Gather)" for an unnamed one, as at build.
      if (info.node >= 0 && info.node < p.source->num_nodes())
        return st.WithPrefix(StrCat("node ", p.source->node(info.node).DisplayName(info.node)));
      return st.WithPrefix(StrCat(info.name, " (", info.op, ")"));
    }
    if (profiling_) {
      c.stream.wait();
      step_ms_[k] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
  }
  c.stream.wait();
  outputs->clear();
  for (size_t o = 0; o < n_out; ++o) {
    const int s = p.output_slots[o];
    const Slot& slot = p.slots[static_cast<size_t>(s)];
    void* bound = out_buffers != nullptr && o < out_buffers->size() ? (*out_buffers)[o] : nullptr;
    if (bound != nullptr) {
      Tensor t = Tensor::FromExternal(slot.dtype, slot.dims, bound, nullptr);
      if (!direct[o] && t.nbytes() > 0) std::memcpy(bound, c.ptrs[static_cast<size_t>(s)], t.nbytes());
      outputs->push_back(std::move(t));
      continue;
    }
    Tensor t(slot.dtype, slot.dims);
    if (t.nbytes() > 0) std::memcpy(t.raw_data(), c.ptrs[static_cast<size_t>(s)], t.nbytes());
    outputs->push_back(std::move(t));
  }
  return Status::OK();
}

}  // namespace kiln::cpu
