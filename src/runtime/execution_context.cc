// ExecutionContext (kiln/runtime.h): a thread's bindings, results and kernel state for one
// engine. Run() takes one of three paths: the backend's program (the engine's, or this
// shape's for a dynamic engine), the batch-parallel slices, or the reference executor over
// the host graph of a partitioned engine, whose islands run here too (RunIsland).
#include <algorithm>
#include <cstring>
#include <mutex>

#include "backends/ref/kernel.h"
#include "runtime/engine_impl.h"
#include "runtime/engine_internal.h"
#include "runtime/specialize.h"

namespace kiln {

ExecutionContext::ExecutionContext(std::unique_ptr<State> state) : state_(std::move(state)) {}
ExecutionContext::~ExecutionContext() = default;

namespace {

// The input's index by name, or an error listing the inputs.
StatusOr<int> InputIndex(const std::vector<TensorInfo>& ins, const std::string& name) {
  for (size_t i = 0; i < ins.size(); ++i)
    if (ins[i].name == name) return static_cast<int>(i);
  std::string names;
  for (const TensorInfo& in : ins) names += (names.empty() ? "" : ", ") + in.name;
  return NotFound("the model has no input '", name, "' (inputs: ", names, ")");
}

StatusOr<int> OutputIndex(const std::vector<TensorInfo>& outs, const std::string& name) {
  for (size_t i = 0; i < outs.size(); ++i)
    if (outs[i].name == name) return static_cast<int>(i);
  return NotFound("the model has no output '", name, "'");
}

// The description of input/output `index` (`what`: "input" or "output"), or OutOfRange.
StatusOr<const TensorInfo*> InfoAt(const std::vector<TensorInfo>& list, int index, const char* what) {
  if (index < 0 || static_cast<size_t>(index) >= list.size())
    return OutOfRange(what, " index ", index, " is out of range: the model has ", list.size(), " ", what, "s");
  return &list[static_cast<size_t>(index)];
}

}  // namespace

Status ExecutionContext::SetInput(const std::string& name, const HostTensor& t) {
  KILN_ASSIGN_OR_RETURN(int index, InputIndex(state_->engine->inputs, name));
  return SetInput(index, t);
}

Status ExecutionContext::SetInput(int index, const HostTensor& t) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* info_ptr, InfoAt(state_->engine->inputs, index, "input"));
  const TensorInfo& info = *info_ptr;
  if (info.kind == ValueKind::kSequence || info.kind == ValueKind::kOptionalSequence)
    return InvalidArgument("input '", info.name, "' is a ", ValueKindName(info.kind),
                           ": bind it with SetInputSequence");
  // A view of the caller's bytes: read during Run(), never written.
  KILN_ASSIGN_OR_RETURN(Tensor view, ViewOf(t, StrCat("input '", info.name, "'")));
  const Graph& g = *state_->engine->graph;
  KILN_RETURN_IF_ERROR(CheckInputMatches(g.value(*g.FindValue(info.name)), RValue(view)));
  state_->inputs[static_cast<size_t>(index)] = RValue(std::move(view));
  state_->bound[static_cast<size_t>(index)] = true;
  return Status::OK();
}

Status ExecutionContext::SetInputSequence(const std::string& name, const std::vector<HostTensor>& elements) {
  KILN_ASSIGN_OR_RETURN(int index, InputIndex(state_->engine->inputs, name));
  return SetInputSequence(index, elements);
}

Status ExecutionContext::SetInputSequence(int index, const std::vector<HostTensor>& elements) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* info_ptr, InfoAt(state_->engine->inputs, index, "input"));
  const TensorInfo& info = *info_ptr;
  if (info.kind != ValueKind::kSequence && info.kind != ValueKind::kOptionalSequence)
    return InvalidArgument("input '", info.name, "' is a ", ValueKindName(info.kind), ", not a sequence");
  std::vector<Tensor> views;
  for (size_t i = 0; i < elements.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(Tensor view, ViewOf(elements[i], StrCat("input '", info.name, "' element ", i)));
    views.push_back(std::move(view));
  }
  RValue v = RValue::Sequence(std::move(views));
  const Graph& g = *state_->engine->graph;
  KILN_RETURN_IF_ERROR(CheckInputMatches(g.value(*g.FindValue(info.name)), v));
  state_->inputs[static_cast<size_t>(index)] = std::move(v);
  state_->bound[static_cast<size_t>(index)] = true;
  return Status::OK();
}

Status ExecutionContext::SetInputNone(const std::string& name) {
  KILN_ASSIGN_OR_RETURN(int index, InputIndex(state_->engine->inputs, name));
  return SetInputNone(index);
}

Status ExecutionContext::SetInputNone(int index) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* info_ptr, InfoAt(state_->engine->inputs, index, "input"));
  const TensorInfo& info = *info_ptr;
  if (info.kind != ValueKind::kOptionalTensor && info.kind != ValueKind::kOptionalSequence)
    return InvalidArgument("input '", info.name, "' is a ", ValueKindName(info.kind),
                           " and needs a value (only optional inputs may be empty)");
  state_->inputs[static_cast<size_t>(index)] = RValue::None();
  state_->bound[static_cast<size_t>(index)] = true;
  return Status::OK();
}

namespace {

// A dynamic island's program for these input dims: compiled on first use (no tactic
// timing: milliseconds), cached per engine; null when the island cannot be compiled for them
// (a shape that still depends on data), and then the reference kernels run it.
// Baked inputs (island.bake: shapes computed elsewhere) become constants of the copy.
StatusOr<std::shared_ptr<const BackendProgram>> SpecializeIsland(const Engine::Impl& e, int index,
                                                                 const std::vector<const Tensor*>& ins) {
  const Island& island = e.partition->islands[static_cast<size_t>(index)];
  std::vector<std::vector<int64_t>> dims;
  std::vector<int64_t> baked;
  for (size_t i = 0; i < ins.size(); ++i) {
    dims.push_back(ins[i]->dims());
    if (island.bake[i])
      for (int64_t j = 0; j < ins[i]->numel(); ++j) baked.push_back(static_cast<int64_t>(ins[i]->GetAsDouble(j)));
  }
  std::lock_guard<std::mutex> lock(e.mu);
  auto key = std::make_tuple(index, dims, baked);
  if (auto it = e.island_programs.find(key); it != e.island_programs.end()) return it->second;
  auto g = std::make_shared<Graph>(DeepCopy(*island.graph));
  std::map<std::string, std::vector<int64_t>> shapes;
  std::vector<ValueId> kept;
  for (size_t i = 0; i < g->inputs().size() && i < ins.size(); ++i) {
    const ValueId v = g->inputs()[i];
    if (island.bake[i]) {
      g->value(v).constant = ins[i]->Clone();
      g->value(v).type.shape = Shape::FromDims(ins[i]->dims());
    } else {
      shapes[g->value(v).name] = dims[i];
      kept.push_back(v);
    }
  }
  g->inputs() = kept;
  Status st = SetInputShapes(*g, shapes);
  if (st.ok()) st = e.backend->CheckGraph(*g);
  std::shared_ptr<const BackendProgram> program;
  if (st.ok()) {
    auto compiled = e.backend->Compile(g, e.compile_options);
    if (compiled.ok())
      program = std::move(*compiled);
    else
      st = compiled.status();
  }
  if (!st.ok()) e.island_failures[index] = st.message();
  constexpr size_t kMaxEntries = 256;
  if (e.island_programs.size() >= kMaxEntries) e.island_programs.clear();  // (contexts keep theirs alive)
  e.island_programs.emplace(std::move(key), program);
  return program;
}

// An island of a partitioned engine, as the reference executor's host graph reaches it:
// its inputs checked against the island's types, its program (compiled at build, or for
// these dims now) run on this context's state for it.
Status RunIsland(ExecutionContext::State& state, const Node& node, RefContext& ctx) {
  const Engine::Impl& e = *state.engine;
  const Partition& part = *e.partition;
  KILN_ASSIGN_OR_RETURN(int64_t index, node.attrs.GetInt(kIslandIndexAttr, -1));
  if (index < 0 || static_cast<size_t>(index) >= part.islands.size() ||
      static_cast<size_t>(index) >= state.islands.size())
    return Internal("island index ", index, " out of range");
  const size_t k = static_cast<size_t>(index);
  const Island& island = part.islands[k];
  const Graph& ig = *island.graph;
  if (static_cast<size_t>(ctx.num_inputs()) != ig.inputs().size()) return Internal("island input count mismatch");
  std::vector<const Tensor*> ins;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
    const Tensor& t = ctx.input(i);
    const TypeInfo& want = ig.value(ig.inputs()[static_cast<size_t>(i)]).type;
    bool match = t.dtype() == want.dtype && want.shape.has_rank() && t.rank() == want.shape.rank();
    for (int d = 0; match && d < t.rank(); ++d)
      match = !want.shape.dim(d).known() || want.shape.dim(d).value == t.dim(d);
    if (!match)
      return Internal("island input '", ig.value(ig.inputs()[static_cast<size_t>(i)]).name, "' is ", t.ShapeString(),
                      ", the island was made for ", want.ToString());
    ins.push_back(&t);
  }
  std::shared_ptr<const BackendProgram> program = island.program;
  BackendContext* context = state.islands[k].get();
  if (!program) {
    KILN_ASSIGN_OR_RETURN(program, SpecializeIsland(e, index, ins));
    if (!program) {
      if (e.compile_options.strict)
        return FailedPrecondition(e.backend->name(), " island ", index,
                                  " cannot be compiled for these input shapes, so it would run on "
                                  "the reference kernels (strict mode)");
      std::vector<RValue> values;
      for (const Tensor* t : ins) values.emplace_back(*t);
      RefExecutor ex;
      KILN_ASSIGN_OR_RETURN(std::vector<RValue> outs, ex.Run(ig, std::move(values)));
      for (size_t o = 0; o < outs.size(); ++o) ctx.set_output_value(static_cast<int>(o), std::move(outs[o]));
      state.island_last[k] = {nullptr, nullptr};
      return Status::OK();
    }
    auto& contexts = state.dynamic_islands[k];
    auto it = contexts.find(program.get());
    if (it == contexts.end()) {
      constexpr size_t kMaxContexts = 8;
      if (contexts.size() >= kMaxContexts) contexts.clear();
      it = contexts.emplace(program.get(), program->CreateContext()).first;
    }
    context = it->second.get();
    // Baked inputs are constants of the specialized program: it takes the others.
    std::vector<const Tensor*> rest;
    for (size_t i = 0; i < ins.size(); ++i)
      if (!island.bake[i]) rest.push_back(ins[i]);
    ins = std::move(rest);
  }
  context->set_profiling(state.profiling);
  std::vector<RValue> values;
  values.reserve(ins.size());
  for (const Tensor* t : ins) values.emplace_back(*t);  // (views: tensors share their bytes)
  std::vector<RValue> outs;
  KILN_RETURN_IF_ERROR(context->Run(values, &outs));
  for (size_t o = 0; o < outs.size(); ++o) ctx.set_output_value(static_cast<int>(o), std::move(outs[o]));
  state.island_last[k] = {program.get(), context};
  return Status::OK();
}

// A dynamic engine: checks the input shapes against the profiles and points the context at
// the program (or batch slices) for them, compiled on first use.
Status PrepareShapes(ExecutionContext::State& state) {
  const Engine::Impl& e = *state.engine;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (size_t i = 0; i < e.inputs.size(); ++i) shapes[e.inputs[i].name] = state.inputs[i].tensor.dims();
  // The same shapes as the last run: the same program, no profile check or cache lookup.
  const bool same = (state.main != nullptr || state.dyn_slice_program != nullptr) && shapes == state.shapes;
  bool inside = same;
  for (const ShapeProfileSpec& p : e.profiles) inside = inside || ProfileContains(p, shapes);
  if (!inside) {
    std::string got, profiles;
    for (const auto& [name, d] : shapes) got += (got.empty() ? "" : ", ") + name + " " + DimsToString(d);
    for (size_t i = 0; i < e.profiles.size(); ++i)
      profiles += StrCat("; profile ", i, ": ", DescribeProfile(e.profiles[i]));
    return InvalidArgument("input shapes ", got, " are outside every profile of this engine", profiles);
  }
  if (!e.dynamic || same) return Status::OK();
  state.dyn_slice_program.reset();
  if (e.dyn_slice > 0) {
    KILN_ASSIGN_OR_RETURN(state.dyn_slice_program, DynamicSlices(e, shapes));
  }
  if (state.dyn_slice_program) {
    if (state.slices_program != state.dyn_slice_program.get()) {
      state.slices.clear();
      const int threads = e.backend->EffectiveThreads(e.compile_options.threads);
      for (int t = 0; t < threads; ++t) {
        state.slices.push_back(state.dyn_slice_program->CreateContext());
        state.slices.back()->set_profiling(state.profiling);
      }
      state.slices_program = state.dyn_slice_program.get();
    }
  } else {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const BackendProgram> program, Specialize(e, shapes));
    if (state.main_program != program.get()) {
      state.main = program->CreateContext();
      state.main->set_profiling(state.profiling);
      state.main_program = program.get();
    }
  }
  state.shapes = shapes;
  return Status::OK();
}

}  // namespace

Status ExecutionContext::Run() {
  const Engine::Impl& e = *state_->engine;
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    if (state_->bound[i]) continue;
    if (e.inputs[i].kind == ValueKind::kOptionalTensor || e.inputs[i].kind == ValueKind::kOptionalSequence) {
      state_->inputs[i] = RValue::None();  // an unbound optional: no value
      continue;
    }
    return FailedPrecondition("input '", e.inputs[i].name, "' is not set");
  }
  if (!e.profiles.empty()) KILN_RETURN_IF_ERROR(PrepareShapes(*state_));
  // Bound outputs: the buffer must hold what this run produces.
  std::vector<void*> out_ptrs(e.outputs.size(), nullptr);
  bool any_bound = false;
  for (size_t i = 0; i < state_->bound_outputs.size() && i < e.outputs.size(); ++i)
    if (state_->bound_outputs[i].data() != nullptr) {
      out_ptrs[i] = state_->bound_outputs[i].data();
      any_bound = true;
    }
  auto check_bound = [&](size_t i, const Tensor& t) -> Status {
    const HostTensor& b = state_->bound_outputs[i];
    if (ToDType(b.dtype()) != t.dtype() || b.shape() != t.dims())
      return InvalidArgument("output '", e.outputs[i].name, "' is ", DTypeName(t.dtype()), " ", DimsToString(t.dims()),
                             " but the bound buffer is ", DataTypeName(b.dtype()), " ", DimsToString(b.shape()));
    return Status::OK();
  };
  const BackendProgram* slice_program = e.slice_program ? e.slice_program.get() : state_->dyn_slice_program.get();
  if (slice_program != nullptr) {
    // Batch-parallel: each slice writes its rows of the outputs (the caller's when bound).
    std::vector<const Tensor*> ins;
    for (const RValue& v : state_->inputs) ins.push_back(&v.tensor);
    std::vector<Tensor> types;
    if (!slice_program->OutputTypes(&types)) return Internal("batch-parallel slices of unknown output shapes");
    std::vector<Tensor> outs;
    std::vector<void*> ptrs(e.outputs.size());
    std::vector<size_t> bytes(e.outputs.size());
    const int64_t slice = e.slice_program ? e.slice : e.dyn_slice;
    const int64_t batch = e.slice_program ? e.batch : ins.empty() ? 0 : ins[0]->dims()[0];
    const int threads = e.slice_program ? e.slice_threads : e.backend->EffectiveThreads(e.compile_options.threads);
    const int64_t n = batch / slice;
    for (size_t i = 0; i < e.outputs.size(); ++i) {
      std::vector<int64_t> dims = types[i].dims();
      dims[0] *= n;
      Tensor t;
      if (out_ptrs[i] != nullptr) {
        t = Tensor::FromExternal(types[i].dtype(), dims, out_ptrs[i], nullptr);
        KILN_RETURN_IF_ERROR(check_bound(i, t));
      } else {
        t = Tensor(types[i].dtype(), dims);
      }
      ptrs[i] = t.raw_data();
      bytes[i] = t.nbytes();
      outs.push_back(std::move(t));
    }
    KILN_RETURN_IF_ERROR(RunSlices(state_->slices, threads, batch, slice, ins, ptrs, bytes));
    state_->outputs.clear();
    for (Tensor& t : outs) state_->outputs.emplace_back(std::move(t));
    return Status::OK();
  }
  if (state_->main) {
    // Sizes first, when the program knows them: a buffer of the wrong shape must not be
    // written. Otherwise the outputs come back and are copied (checked) below.
    std::vector<Tensor> types;
    const bool known = any_bound && state_->main_program->OutputTypes(&types);
    if (known)
      for (size_t i = 0; i < out_ptrs.size(); ++i)
        if (out_ptrs[i] != nullptr) KILN_RETURN_IF_ERROR(check_bound(i, types[i]));
    KILN_RETURN_IF_ERROR(state_->main->Run(state_->inputs, &state_->outputs, known ? &out_ptrs : nullptr));
  } else {
    // A partitioned engine: the reference executor runs the host graph, the backend's
    // islands through RunIsland.
    RefExecutor::Options ro;
    state_->host_ms.clear();
    if (state_->profiling) ro.node_ms = &state_->host_ms;
    if (!e.partition) return Internal("the engine has no program and no partition");
    ro.external = [this](const Node& node, RefContext& ctx) { return RunIsland(*state_, node, ctx); };
    RefExecutor ex(ro);
    KILN_ASSIGN_OR_RETURN(state_->outputs, ex.Run(*e.partition->host, state_->inputs));
  }
  // Bound outputs the backend did not write in place: copied there.
  for (size_t i = 0; i < out_ptrs.size() && i < state_->outputs.size(); ++i) {
    if (out_ptrs[i] == nullptr || !state_->outputs[i].is_tensor()) continue;
    const Tensor& t = state_->outputs[i].tensor;
    if (t.raw_data() == out_ptrs[i]) continue;
    KILN_RETURN_IF_ERROR(check_bound(i, t));
    if (t.nbytes() > 0) std::memcpy(out_ptrs[i], t.raw_data(), t.nbytes());
    state_->outputs[i] = RValue(Tensor::FromExternal(t.dtype(), t.dims(), out_ptrs[i], nullptr));
  }
  return Status::OK();
}

StatusOr<HostTensor> ExecutionContext::Output(int index) const {
  const auto& outs = state_->engine->outputs;
  KILN_ASSIGN_OR_RETURN(const TensorInfo* info_ptr, InfoAt(outs, index, "output"));
  const TensorInfo& info = *info_ptr;
  if (state_->outputs.size() != outs.size()) return FailedPrecondition("no results yet: call Run() first");
  const RValue& v = state_->outputs[static_cast<size_t>(index)];
  if (v.is_sequence()) return InvalidArgument("output '", info.name, "' is a sequence: read it with OutputSequence");
  if (v.is_none()) return InvalidArgument("output '", info.name, "' is an optional that holds no value (OutputIsNone)");
  if (static_cast<size_t>(index) < state_->bound_outputs.size() &&
      state_->bound_outputs[static_cast<size_t>(index)].data() != nullptr)
    return state_->bound_outputs[static_cast<size_t>(index)];  // the caller's buffer holds it
  return ToHost(v.tensor);
}

Status ExecutionContext::SetOutput(const std::string& name, const HostTensor& t) {
  const auto& outs = state_->engine->outputs;
  for (size_t i = 0; i < outs.size(); ++i)
    if (outs[i].name == name) return SetOutput(static_cast<int>(i), t);
  return NotFound("the model has no output '", name, "'");
}

Status ExecutionContext::SetOutput(int index, const HostTensor& t) {
  const auto& outs = state_->engine->outputs;
  KILN_ASSIGN_OR_RETURN(const TensorInfo* info_ptr, InfoAt(outs, index, "output"));
  const TensorInfo& info = *info_ptr;
  if (info.kind != ValueKind::kTensor || info.dtype == DataType::kString)
    return InvalidArgument("output '", info.name, "' is a ", ValueKindName(info.kind), " of ", DataTypeName(info.dtype),
                           ": only numeric tensor outputs can be bound to a buffer");
  if (t.data() == nullptr) return InvalidArgument("output '", info.name, "': the buffer has no data");
  if (t.dtype() != info.dtype)
    return InvalidArgument("output '", info.name, "' is ", DataTypeName(info.dtype), ", the buffer is ",
                           DataTypeName(t.dtype()));
  bool shape_ok = t.shape().size() == info.shape.size();
  for (size_t d = 0; shape_ok && d < info.shape.size(); ++d)
    shape_ok = info.shape[d] < 0 || info.shape[d] == t.shape()[d];
  if (!shape_ok)
    return InvalidArgument("output '", info.name, "' has shape ", DimsToString(info.shape), ", the buffer ",
                           DimsToString(t.shape()));
  state_->bound_outputs.resize(outs.size());
  state_->bound_outputs[static_cast<size_t>(index)] = t;
  return Status::OK();
}

StatusOr<HostTensor> ExecutionContext::Output(const std::string& name) const {
  KILN_ASSIGN_OR_RETURN(int index, OutputIndex(state_->engine->outputs, name));
  return Output(index);
}

StatusOr<std::vector<HostTensor>> ExecutionContext::OutputSequence(int index) const {
  const auto& outs = state_->engine->outputs;
  KILN_ASSIGN_OR_RETURN(const TensorInfo* info_ptr, InfoAt(outs, index, "output"));
  const TensorInfo& info = *info_ptr;
  if (state_->outputs.size() != outs.size()) return FailedPrecondition("no results yet: call Run() first");
  const RValue& v = state_->outputs[static_cast<size_t>(index)];
  if (v.is_none()) return InvalidArgument("output '", info.name, "' is an optional that holds no value (OutputIsNone)");
  if (!v.is_sequence())
    return InvalidArgument("output '", info.name, "' is a tensor, not a sequence: read it with Output");
  std::vector<HostTensor> elements;
  elements.reserve(v.sequence.size());
  for (const Tensor& t : v.sequence) elements.push_back(ToHost(t));
  return elements;
}

StatusOr<std::vector<HostTensor>> ExecutionContext::OutputSequence(const std::string& name) const {
  KILN_ASSIGN_OR_RETURN(int index, OutputIndex(state_->engine->outputs, name));
  return OutputSequence(index);
}

StatusOr<bool> ExecutionContext::OutputIsNone(int index) const {
  const auto& outs = state_->engine->outputs;
  KILN_RETURN_IF_ERROR(InfoAt(outs, index, "output").status());
  if (state_->outputs.size() != outs.size()) return FailedPrecondition("no results yet: call Run() first");
  return state_->outputs[static_cast<size_t>(index)].is_none();
}

StatusOr<bool> ExecutionContext::OutputIsNone(const std::string& name) const {
  KILN_ASSIGN_OR_RETURN(int index, OutputIndex(state_->engine->outputs, name));
  return OutputIsNone(index);
}

void SetProfiling(ExecutionContext& context, bool on) {
  ExecutionContext::State& s = StateOf(context);
  s.profiling = on;
  if (s.main) s.main->set_profiling(on);
  for (auto& c : s.slices) c->set_profiling(on);
  for (auto& c : s.islands)
    if (c) c->set_profiling(on);
}

StatusOr<std::vector<ProfiledStep>> LastRunProfile(ExecutionContext& context) {
  ExecutionContext::State& s = StateOf(context);
  const Engine::Impl& e = *s.engine;
  std::vector<ProfiledStep> out;
  auto add_program = [&](const BackendProgram& p, const BackendContext& c) -> Status {
    const auto& steps = p.steps();
    if (c.step_ms().size() != steps.size()) return FailedPrecondition("no profiled run yet (SetProfiling, then Run)");
    for (size_t i = 0; i < steps.size(); ++i)
      out.push_back({steps[i].name, steps[i].op, steps[i].impl, steps[i].tactic, c.step_ms()[i],
                     p.backend() == Backend::kRef || IsSlowStep(steps[i])});
    return Status::OK();
  };
  if (s.main && s.main_program) {
    KILN_RETURN_IF_ERROR(add_program(*s.main_program, *s.main));
  } else if (!s.slices.empty() && s.slices_program) {
    KILN_RETURN_IF_ERROR(add_program(*s.slices_program, *s.slices[0]));
  } else {
    if (s.host_ms.empty()) return FailedPrecondition("no profiled run yet (SetProfiling, then Run)");
    const Graph& host = e.partition ? *e.partition->host : *e.graph;
    for (const auto& [id, ms] : s.host_ms) {
      const Node& n = host.node(id);
      if (n.domain == kExternalDomain && e.partition) {
        KILN_ASSIGN_OR_RETURN(int64_t k, n.attrs.GetInt(kIslandIndexAttr, -1));
        if (k < 0 || static_cast<size_t>(k) >= s.islands.size()) return Internal("island index ", k, " out of range");
        const auto& [island_program, island_context] = s.island_last[static_cast<size_t>(k)];
        if (island_program && island_context) {
          KILN_RETURN_IF_ERROR(add_program(*island_program, *island_context));
        } else {  // a dynamic island on the reference kernels (not compilable for these shapes)
          std::lock_guard<std::mutex> lock(e.mu);
          auto why = e.island_failures.find(static_cast<int>(k));
          out.push_back({n.name, kIslandOp,
                         why == e.island_failures.end() ? "reference backend" : "reference backend - " + why->second,
                         "", ms, true});
        }
      } else {
        out.push_back({n.name.empty() ? n.DisplayName(id) : n.name, n.op_type, "reference backend", "", ms, true});
      }
    }
  }
  return out;
}

}  // namespace kiln
