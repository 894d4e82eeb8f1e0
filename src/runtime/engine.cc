// The runtime's Engine (kiln/runtime.h): made from a plan (or, by the builder, from an
// optimized graph), it holds the optimized graph, its backend (the registry's, through the
// backend interface) and what executes it — one program (or batch-parallel slice
// programs), programs per input shape of a dynamic engine, or the backend's islands inside
// a host graph the reference executor runs. Immutable to its users; the caches of programs compiled as inputs arrive
// are guarded by a mutex. Executing it is execution_context.cc's.
#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>
#include <set>

#include "backends/cpu/cpu_backend.h"
#include "backends/partition.h"
#include "base/file.h"
#include "plan/plan_reader.h"
#include "runtime/backend_registry.h"
#include "runtime/engine_impl.h"
#include "runtime/engine_internal.h"
#include "runtime/specialize.h"

namespace kiln {

Engine::Engine(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

const std::vector<TensorInfo>& Engine::inputs() const { return impl_->inputs; }
const std::vector<TensorInfo>& Engine::outputs() const { return impl_->outputs; }

const char* BackendName(Backend backend) {
  switch (backend) {
    case Backend::kCpu:
      return "cpu";
    case Backend::kRef:
      return "ref";
  }
  return "?";
}

StatusOr<Backend> ParseBackend(const std::string& name) {
  if (name == "cpu") return Backend::kCpu;
  if (name == "ref") return Backend::kRef;
  return InvalidArgument("unknown backend '", name, "' (expected cpu or ref)");
}

const char* BatchParallelName(BatchParallel mode) {
  switch (mode) {
    case BatchParallel::kAuto:
      return "auto";
    case BatchParallel::kOn:
      return "on";
    case BatchParallel::kOff:
      return "off";
  }
  return "?";
}

StatusOr<BatchParallel> ParseBatchParallel(const std::string& name) {
  if (name == "auto") return BatchParallel::kAuto;
  if (name == "on") return BatchParallel::kOn;
  if (name == "off") return BatchParallel::kOff;
  return InvalidArgument("unknown batch-parallel mode '", name, "' (expected auto, on or off)");
}

EngineOptions ToEngineOptions(const LoadOptions& options) {
  EngineOptions eo;
  eo.backend = options.backend;
  eo.threads = options.threads;
  eo.strict = options.strict;
  eo.batch_parallel = options.batch_parallel;
  return eo;
}

namespace {

OnnxSupport& OnnxSlot() {
  static OnnxSupport support;
  return support;
}
const OnnxSupport* Onnx() { return OnnxSlot().build ? &OnnxSlot() : nullptr; }

// Why a file that is not a plan cannot be loaded here.
std::string NotAPlanHint(const std::string& path) {
  const bool onnx = path.size() >= 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
  return onnx ? "an ONNX model needs the builder: link libkiln (kiln::kiln) or run `kiln build` first"
              : "no kiln plan header; plans are written by `kiln build` or kiln::SavePlan";
}

}  // namespace

bool RegisterOnnxSupport(OnnxSupport support) {
  OnnxSlot() = std::move(support);
  return true;
}

StatusOr<std::shared_ptr<const BackendProgram>> Specialize(const Engine::Impl& e,
                                                           const std::map<std::string, std::vector<int64_t>>& shapes,
                                                           TacticTimer* timer, std::shared_ptr<Graph> prepared) {
  std::lock_guard<std::mutex> lock(e.mu);
  auto it = e.specialized.find(shapes);
  if (it != e.specialized.end()) return it->second;
  std::shared_ptr<Graph> g = std::move(prepared);
  if (!g) {
    g = std::make_shared<Graph>(DeepCopy(*e.graph));  // constants are shared, not copied
    KILN_RETURN_IF_ERROR(SetInputShapes(*g, shapes).WithPrefix("specializing the engine for the given input shapes"));
  }
  KILN_RETURN_IF_ERROR(e.backend->CheckGraph(*g));
  BackendOptions co = e.compile_options;
  co.timer = timer;
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const BackendProgram> p, e.backend->Compile(g, co));
  // Bounded: beyond kMaxSpecializations distinct shapes, an entry other than the profiles'
  // opt shapes is dropped (contexts running it keep it alive; it is rebuilt if asked again).
  constexpr size_t kMaxSpecializations = 64;
  if (e.specialized.size() >= kMaxSpecializations) {
    for (auto entry = e.specialized.begin(); entry != e.specialized.end(); ++entry) {
      bool opt = false;
      for (const ShapeProfileSpec& prof : e.profiles) {
        bool all = true;
        for (const auto& [name, r] : prof) all = all && entry->first.count(name) && entry->first.at(name) == r.opt;
        opt = opt || all;
      }
      if (!opt) {
        e.specialized.erase(entry);
        break;
      }
    }
  }
  e.specialized.emplace(shapes, p);
  return p;
}

namespace {

// Strict mode: the layers a partition leaves on reference implementations, as an error.
Status RefuseSlowLayers(const Partition& part) {
  std::vector<std::string> slow;
  for (const Island& i : part.islands)
    if (i.program)
      for (std::string& l : SlowStepLines(i.program->steps())) slow.push_back(std::move(l));
  slow.insert(slow.end(), part.host_layers.begin(), part.host_layers.end());
  if (slow.empty()) return Status::OK();
  std::string list;
  for (const std::string& l : slow) list += "\n  " + l;
  return FailedPrecondition(slow.size(), " layer(s) would run on a reference implementation (strict mode; ",
                            part.host_layers.size(), " of them because the backend cannot take them):", list);
}

// Compiles a static engine's graph on its backend: the whole graph (with a batch-parallel
// schedule when it pays), or, when the backend cannot take it whole, its islands in a
// partition (strict mode refuses layers left on reference kernels).
Status CompileStatic(Engine::Impl& impl, std::shared_ptr<const Graph>& g, const Status& whole,
                     const EngineOptions& options, const BackendOptions& co, int64_t plan_slice, TacticTimer* timer,
                     const BackendArena* plan_arena) {
  const ExecutionBackend& backend = *impl.backend;
  if (whole.ok()) {
    // A plan that recorded a batch-parallel schedule compiles the slice program only.
    if (plan_slice > 0 && options.batch_parallel != BatchParallel::kOff)
      KILN_RETURN_IF_ERROR(ChooseBatchSchedule(impl, g, co, options.batch_parallel, plan_slice, timer));
    if (!impl.slice_program) {
      BackendOptions with_arena = co;
      with_arena.arena = plan_arena;
      KILN_ASSIGN_OR_RETURN(impl.program, backend.Compile(g, with_arena));
      if (plan_slice <= 0)
        KILN_RETURN_IF_ERROR(ChooseBatchSchedule(impl, g, co, options.batch_parallel, plan_slice, timer));
    }
    return Status::OK();
  }
  // Per-layer fallback: islands for every layer the backend takes, the rest on the
  // reference kernels (strict mode refuses the latter).
  impl.backend_note = whole.message();
  auto part = CompilePartitioned(*g, backend, co);
  if (part.ok() && options.strict) KILN_RETURN_IF_ERROR(RefuseSlowLayers(*part));
  if (!part.ok() && options.strict) return part.status();
  if (part.ok()) {
    impl.partition = std::make_shared<const Partition>(std::move(*part));
    impl.compile_options = co;
    impl.compile_options.timer = nullptr;  // dynamic islands compile as they run, untimed
    return Status::OK();
  }
  // Nothing the backend could take: the reference backend runs the whole graph (it reads
  // weights row-major; a plan's may be packed).
  impl.backend_note += StrCat("; partitioning it failed: ", part.status().message());
  auto unpacked = std::make_shared<Graph>(*g);
  KILN_RETURN_IF_ERROR(cpu::UnpackWeights(*unpacked));
  g = std::move(unpacked);
  impl.backend = FindBackend(Backend::kRef);
  KILN_ASSIGN_OR_RETURN(impl.program, impl.backend->Compile(g, BackendOptions{}));
  return Status::OK();
}

// A dynamic engine: profile opt shapes compiled now (kernels timed at build); the
// batch-parallel slice size for batches > 1 (the plan's, or timed on profile 0's opt shapes).
Status PrepareDynamic(Engine::Impl& impl, const EngineOptions& options, int64_t plan_slice, TacticTimer* timer,
                      std::shared_ptr<Graph> probe) {
  for (const ShapeProfileSpec& p : impl.profiles) {
    std::map<std::string, std::vector<int64_t>> opt;
    for (const auto& [name, r] : p) opt[name] = r.opt;
    KILN_RETURN_IF_ERROR(Specialize(impl, opt, timer, std::move(probe)).status());
  }
  // Other batches use the same slice size when it divides them.
  const BatchParallel mode = options.batch_parallel;
  if (mode == BatchParallel::kOff || impl.backend->EffectiveThreads(options.threads) < 2) return Status::OK();
  if (plan_slice > 0) {
    impl.dyn_slice = plan_slice;
    return Status::OK();
  }
  if (!(plan_slice < 0 || mode == BatchParallel::kOn)) return Status::OK();
  std::map<std::string, std::vector<int64_t>> opt;
  for (const auto& [name, r] : impl.profiles[0]) opt[name] = r.opt;
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const BackendProgram> whole, Specialize(impl, opt));
  Engine::Impl trial;
  trial.backend = impl.backend;
  trial.program = whole;
  KILN_RETURN_IF_ERROR(ChooseBatchSchedule(trial, whole->graph(), impl.compile_options, mode, -1, timer));
  impl.batch_note = trial.batch_note;
  if (trial.slice_program) {
    impl.dyn_slice = trial.slice;
    std::map<std::string, std::vector<int64_t>> small = opt;
    for (auto& [name, d] : small) d[0] = trial.slice;
    impl.slice_programs.emplace(small, trial.slice_program);  // the opt batch's slices, compiled already
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::shared_ptr<const Engine>> MakeEngine(std::shared_ptr<const Graph> g, MemoryPlan memory,
                                                   const EngineOptions& options, std::vector<ShapeProfileSpec> profiles,
                                                   int64_t plan_slice, TacticTimer* timer,
                                                   const BackendArena* plan_arena) {
  auto impl = std::make_shared<Engine::Impl>();
  impl->profiles = std::move(profiles);
  impl->backend = FindBackend(options.backend);
  if (impl->backend == nullptr)
    return Unimplemented("the ", BackendName(options.backend), " backend is not compiled into this library");
  const ExecutionBackend& backend = *impl->backend;
  KILN_RETURN_IF_ERROR(backend.CheckPrecision(options.precision));
  BackendOptions co;
  co.threads = options.threads;
  co.precision = options.precision;
  co.strict = options.strict;
  co.timer = timer;
  // A dynamic graph the backend cannot take whole even at profile 0's opt shapes (control
  // flow, shapes from data) is partitioned as it is: its dynamic islands compile per input
  // dims as they run. (The probe is the graph profile 0's first specialization compiles.)
  std::shared_ptr<Graph> probe;
  Status whole = Status::OK();
  if (!impl->profiles.empty() && backend.fixed_shapes()) {
    probe = std::make_shared<Graph>(DeepCopy(*g));
    std::map<std::string, std::vector<int64_t>> opt;
    for (const auto& [name, r] : impl->profiles[0]) opt[name] = r.opt;
    whole = SetInputShapes(*probe, opt).WithPrefix("specializing the engine for the given input shapes");
    if (whole.ok()) whole = backend.CheckGraph(*probe);
    if (whole.ok()) {
      // Dynamic shapes: one program per input shapes, compiled on first use; profile opt
      // shapes right away (PrepareDynamic), so the kernel timing happens at build.
      impl->dynamic = true;
      impl->compile_options = co;
      impl->compile_options.timer = nullptr;
    }
  } else {
    whole = backend.CheckGraph(*g);
  }
  if (!impl->dynamic) KILN_RETURN_IF_ERROR(CompileStatic(*impl, g, whole, options, co, plan_slice, timer, plan_arena));
  impl->memory = std::move(memory);
  KILN_ASSIGN_OR_RETURN(ModelSignature io, SignatureOf(*g));
  impl->inputs = std::move(io.inputs);
  impl->outputs = std::move(io.outputs);
  impl->graph = std::move(g);
  if (impl->dynamic) KILN_RETURN_IF_ERROR(PrepareDynamic(*impl, options, plan_slice, timer, std::move(probe)));
  return internal::EngineAccess::Make(std::move(impl));
}
StatusOr<std::shared_ptr<const Engine>> Engine::Load(const std::string& path, const LoadOptions& options) {
  KILN_RETURN_IF_ERROR(ReadOnlyFile::Open(path).status());  // exists, readable, a regular file
  if (IsPlanFile(path)) {
    KILN_ASSIGN_OR_RETURN(LoadedPlan plan, LoadPlan(path));
    // Packed weights serve the CPU backend; anything else reads them row-major.
    // (A graph the CPU backend takes in part keeps them too: its islands hold those layers.)
    if (options.backend != Backend::kCpu) KILN_RETURN_IF_ERROR(cpu::UnpackWeights(*plan.graph).WithPrefix(path));
    auto engine = MakeEngine(std::shared_ptr<const Graph>(std::move(plan.graph)), std::move(plan.memory),
                             ToEngineOptions(options), std::move(plan.profiles), plan.batch_slice, /*timer=*/nullptr,
                             plan.cpu_arena.empty() ? nullptr : &plan.cpu_arena);
    if (!engine.ok()) return engine.status().WithPrefix(path);
    return engine;
  }
  if (const OnnxSupport* onnx = Onnx(); onnx != nullptr && onnx->build) return onnx->build(path, options);
  return InvalidArgument(path, ": not a kiln plan (", NotAPlanHint(path), ")");
}

StatusOr<ModelSignature> ReadSignature(const std::string& path) {
  KILN_RETURN_IF_ERROR(ReadOnlyFile::Open(path).status());
  std::unique_ptr<Graph> owned;
  if (IsPlanFile(path)) {
    KILN_ASSIGN_OR_RETURN(LoadedPlan plan, LoadPlan(path));
    owned = std::move(plan.graph);
  } else if (const OnnxSupport* onnx = Onnx(); onnx != nullptr && onnx->signature) {
    return onnx->signature(path);
  } else {
    return InvalidArgument(path, ": not a kiln plan (", NotAPlanHint(path), ")");
  }
  return SignatureOf(*owned);
}

const Graph& EngineGraph(const Engine& engine) { return *ImplOf(engine).graph; }

const cpu::Program* EngineCpuProgram(const Engine& engine) {
  const Engine::Impl& e = ImplOf(engine);
  return cpu::AsProgram(e.program ? e.program.get() : e.slice_program.get());
}

namespace {
std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

std::string EngineBackendSummary(const Engine& engine) {
  const Engine::Impl& e = ImplOf(engine);
  const std::string name = e.backend->name();
  if (e.dynamic) {
    std::lock_guard<std::mutex> lock(e.mu);
    return StrCat(name, ", dynamic shapes (", e.profiles.size(), " profiles, ", e.specialized.size(),
                  " specializations)",
                  e.dyn_slice > 0 ? StrCat(", batch-parallel: slices of ", e.dyn_slice, " for batches > 1") : "");
  }
  if (e.backend->kind() == Backend::kRef)
    return e.backend_note.empty() ? "reference" : StrCat("reference (", e.backend_note, ")");
  const BackendProgram* program = e.program ? e.program.get() : e.slice_program.get();
  std::vector<const BackendProgram*> programs;
  if (program) programs.push_back(program);
  if (e.partition)
    for (const Island& i : e.partition->islands)
      if (i.program) programs.push_back(i.program.get());
  std::map<std::string, int> kinds;
  size_t steps = 0;
  for (const BackendProgram* p : programs) {
    steps += p->steps().size();
    for (const StepInfo& s : p->steps()) {
      std::string k = s.impl.substr(0, s.impl.find(' '));
      if (k == "onednn:reorder" && s.op != "Reorder") k = "onednn:" + s.op;
      ++kinds[k];
    }
  }
  std::string out = name;
  if (steps > 0) {
    out += StrCat(" (", steps, " steps:");
    for (const auto& [k, n] : kinds) out += StrCat(" ", n, " ", k);
    out += ")";
  }
  if (e.partition)
    out =
        StrCat(out, " in ", e.partition->islands.size(), " ", Upper(name), " island(s) holding ",
               e.partition->island_layers, " layers",
               e.partition->dynamic_islands
                   ? StrCat(" (", e.partition->dynamic_islands, " of them compiled per input shapes as they run)")
                   : "",
               ", and ", e.partition->host_layers.size(), " layer(s) on the reference backend (", e.backend_note, ")");
  if (e.slice_program)
    out += StrCat(", batch-parallel: ", e.batch / e.slice, " slices of ", e.slice, " on ", e.slice_threads, " threads");
  return out;
}

std::string EngineBatchNote(const Engine& engine) { return ImplOf(engine).batch_note; }

std::vector<std::string> EngineSlowPaths(const Engine& engine) {
  const Engine::Impl& e = ImplOf(engine);
  std::vector<std::string> out;
  if (e.dynamic) {
    std::lock_guard<std::mutex> lock(e.mu);
    std::set<std::string> seen;  // one line per layer over all specializations compiled so far
    for (const auto& [shapes, p] : e.specialized)
      if (p)
        for (std::string& s : SlowStepLines(p->steps()))
          if (seen.insert(s).second) out.push_back(std::move(s));
    return out;
  }
  if (e.backend->kind() == Backend::kRef) {
    // Asked for (the oracle), it is no slow path; a fallback to it is.
    if (!e.backend_note.empty()) out.push_back(StrCat("every layer (reference backend): ", e.backend_note));
    return out;
  }
  const BackendProgram* program = e.program ? e.program.get() : e.slice_program.get();
  if (program) return SlowStepLines(program->steps());
  if (e.partition) {
    for (const Island& i : e.partition->islands)
      if (i.program)
        for (std::string& s : SlowStepLines(i.program->steps())) out.push_back(std::move(s));
    out.insert(out.end(), e.partition->host_layers.begin(), e.partition->host_layers.end());
  }
  return out;
}

std::map<std::string, std::vector<int64_t>> EngineOptShapes(const Engine& engine) {
  std::map<std::string, std::vector<int64_t>> out;
  if (!ImplOf(engine).profiles.empty())
    for (const auto& [name, r] : ImplOf(engine).profiles[0]) out[name] = r.opt;
  return out;
}

std::unique_ptr<ExecutionContext> Engine::CreateContext() const {
  auto s = std::make_unique<ExecutionContext::State>();
  s->engine = impl_;
  s->inputs.resize(impl_->inputs.size());
  s->bound.assign(impl_->inputs.size(), false);
  if (impl_->program) {
    s->main = impl_->program->CreateContext();
    s->main_program = impl_->program.get();
  }
  if (impl_->slice_program)
    for (int t = 0; t < impl_->slice_threads; ++t) s->slices.push_back(impl_->slice_program->CreateContext());
  s->slices_program = impl_->slice_program.get();
  if (impl_->partition) {
    for (const Island& i : impl_->partition->islands)
      s->islands.push_back(i.program ? i.program->CreateContext() : nullptr);
    s->dynamic_islands.resize(impl_->partition->islands.size());
    s->island_last.resize(impl_->partition->islands.size());
  }
  return internal::EngineAccess::MakeContext(std::move(s));
}

StatusOr<std::map<std::string, HostTensor>> Engine::Infer(const std::map<std::string, HostTensor>& inputs) const {
  auto ctx = CreateContext();
  for (const auto& [name, t] : inputs) KILN_RETURN_IF_ERROR(ctx->SetInput(name, t));
  KILN_RETURN_IF_ERROR(ctx->Run());
  std::map<std::string, HostTensor> out;
  for (size_t i = 0; i < impl_->outputs.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(HostTensor t, ctx->Output(static_cast<int>(i)));
    out.emplace(impl_->outputs[i].name, std::move(t));
  }
  return out;
}

}  // namespace kiln
