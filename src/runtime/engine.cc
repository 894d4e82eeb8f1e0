// The runtime's Engine (kiln/runtime.h): made from a plan (or, by the builder, from an
// optimized graph), it holds the optimized graph and what executes it — one CPU program
// (or batch-parallel slice programs), CPU programs per input shape of a dynamic engine,
// CPU islands inside a host graph the reference executor runs, or the reference backend
// alone. Immutable to its users; the caches of programs compiled as inputs arrive are
// guarded by a mutex. Executing it is execution_context.cc's.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <set>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/partition.h"
#include "base/file.h"
#include "plan/plan_reader.h"
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

StatusOr<std::shared_ptr<const cpu::Program>> Specialize(const Engine::Impl& e,
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
  KILN_RETURN_IF_ERROR(cpu::CheckSupported(*g));
  cpu::CompileOptions co = e.compile_options;
  co.timer = timer;
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const cpu::Program> p, cpu::Compile(g, co));
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

StatusOr<std::shared_ptr<const Engine>> MakeEngine(std::shared_ptr<const Graph> g, MemoryPlan memory,
                                                   const EngineOptions& options, std::vector<ShapeProfileSpec> profiles,
                                                   int64_t plan_slice, TacticTimer* timer,
                                                   const BackendArena* plan_arena) {
  auto impl = std::make_shared<Engine::Impl>();
  impl->profiles = std::move(profiles);
  // A dynamic graph the CPU backend cannot take whole even at profile 0's opt shapes
  // (control flow, shapes from data) is partitioned as it is: its dynamic islands compile per
  // input dims as they run.
  // (The probe is the graph profile 0's first specialization compiles, not made twice.)
  Status whole_at_opt = Status::OK();
  std::shared_ptr<Graph> probe;
  if (options.backend == Backend::kCpu && !impl->profiles.empty()) {
    probe = std::make_shared<Graph>(DeepCopy(*g));
    std::map<std::string, std::vector<int64_t>> opt;
    for (const auto& [name, r] : impl->profiles[0]) opt[name] = r.opt;
    whole_at_opt = SetInputShapes(*probe, opt).WithPrefix("specializing the engine for the given input shapes");
    if (whole_at_opt.ok()) whole_at_opt = cpu::CheckSupported(*probe);
  }
  if (options.backend == Backend::kCpu && !impl->profiles.empty() && whole_at_opt.ok()) {
    // Dynamic shapes: one program per input shapes, compiled on first use; profile opt
    // shapes right away (below), so the kernel timing happens at build.
    KILN_RETURN_IF_ERROR(cpu::CheckPrecision(options.precision));
    impl->cpu_dynamic = true;
    impl->compile_options.threads = options.threads;
    impl->compile_options.precision = options.precision;
    impl->compile_options.strict = options.strict;
  } else if (options.backend == Backend::kCpu) {
    Status ok = impl->profiles.empty() ? cpu::CheckSupported(*g) : whole_at_opt;
    cpu::CompileOptions co;
    co.threads = options.threads;
    co.precision = options.precision;
    co.strict = options.strict;
    co.timer = timer;
    if (ok.ok()) {
      // A plan that recorded a batch-parallel schedule compiles the slice program only.
      if (plan_slice > 0 && options.batch_parallel != BatchParallel::kOff)
        KILN_RETURN_IF_ERROR(ChooseBatchSchedule(*impl, g, co, options.batch_parallel, plan_slice, timer));
      if (!impl->slice_program) {
        cpu::CompileOptions whole = co;
        whole.arena = plan_arena;
        KILN_ASSIGN_OR_RETURN(impl->cpu, cpu::Compile(g, whole));
        if (plan_slice <= 0)
          KILN_RETURN_IF_ERROR(ChooseBatchSchedule(*impl, g, co, options.batch_parallel, plan_slice, timer));
      }
    } else {
      // Per-layer fallback: CPU islands for every layer they can take, the rest on the
      // reference kernels (strict mode refuses the latter).
      KILN_RETURN_IF_ERROR(cpu::CheckPrecision(options.precision));
      impl->backend_note = ok.message();
      auto part = cpu::CompilePartitioned(*g, co);
      if (!part.ok() && options.strict) return part.status();
      if (part.ok()) {
        if (options.strict) {
          std::vector<std::string> slow;
          for (const cpu::Island& i : part->islands)
            if (i.program)
              for (std::string& l : cpu::SlowSteps(*i.program)) slow.push_back(std::move(l));
          slow.insert(slow.end(), part->host_layers.begin(), part->host_layers.end());
          if (!slow.empty()) {
            std::string list;
            for (const std::string& l : slow) list += "\n  " + l;
            return FailedPrecondition(slow.size(), " layer(s) would run on a reference implementation (strict mode; ",
                                      part->host_layers.size(),
                                      " of them because the cpu backend cannot take them):", list);
          }
        }
        impl->partition = std::make_shared<const cpu::Partition>(std::move(*part));
        impl->compile_options = co;
        impl->compile_options.timer = nullptr;  // dynamic islands compile as they run, untimed
      } else {
        impl->backend_note += StrCat("; partitioning it failed: ", part.status().message());
        // The reference backend reads weights row-major (a plan's may be packed).
        auto unpacked = std::make_shared<Graph>(*g);
        KILN_RETURN_IF_ERROR(cpu::UnpackWeights(*unpacked));
        g = std::move(unpacked);
      }
    }
  } else if (options.precision != "fp32") {  // Backend::kRef
    return InvalidArgument("precision '", options.precision, "' needs the cpu backend (the reference backend is FP32)");
  }
  impl->memory = std::move(memory);
  KILN_ASSIGN_OR_RETURN(ModelSignature io, SignatureOf(*g));
  impl->inputs = std::move(io.inputs);
  impl->outputs = std::move(io.outputs);
  impl->graph = std::move(g);
  if (impl->cpu_dynamic) {
    for (const ShapeProfileSpec& p : impl->profiles) {
      std::map<std::string, std::vector<int64_t>> opt;
      for (const auto& [name, r] : p) opt[name] = r.opt;
      KILN_RETURN_IF_ERROR(Specialize(*impl, opt, timer, std::move(probe)).status());
    }
    // Batch-parallel for batches > 1: the plan's choice, or decided (timed, for "auto") on
    // profile 0's opt shapes; other batches use the same slice size when it divides them.
    const BatchParallel mode = options.batch_parallel;
    if (mode != BatchParallel::kOff && cpu::EffectiveThreads(options.threads) >= 2) {
      if (plan_slice > 0) {
        impl->dyn_slice = plan_slice;
      } else if (plan_slice < 0 || mode == BatchParallel::kOn) {
        std::map<std::string, std::vector<int64_t>> opt;
        for (const auto& [name, r] : impl->profiles[0]) opt[name] = r.opt;
        KILN_ASSIGN_OR_RETURN(std::shared_ptr<const cpu::Program> whole, Specialize(*impl, opt));
        Engine::Impl trial;
        trial.cpu = whole;
        cpu::CompileOptions co = impl->compile_options;
        KILN_RETURN_IF_ERROR(ChooseBatchSchedule(trial, cpu::ProgramGraph(*whole), co, mode, -1, timer));
        impl->batch_note = trial.batch_note;
        if (trial.slice_program) {
          impl->dyn_slice = trial.slice;
          std::map<std::string, std::vector<int64_t>> small = opt;
          for (auto& [name, d] : small) d[0] = trial.slice;
          impl->slice_programs.emplace(small, trial.slice_program);  // the opt batch's slices, compiled already
        }
      }
    }
  }
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
  return ImplOf(engine).cpu ? ImplOf(engine).cpu.get() : ImplOf(engine).slice_program.get();
}

std::string EngineBackendSummary(const Engine& engine) {
  const Engine::Impl& e = ImplOf(engine);
  if (e.cpu_dynamic) {
    std::lock_guard<std::mutex> lock(e.mu);
    return StrCat("cpu, dynamic shapes (", e.profiles.size(), " profiles, ", e.specialized.size(), " specializations)",
                  e.dyn_slice > 0 ? StrCat(", batch-parallel: slices of ", e.dyn_slice, " for batches > 1") : "");
  }
  const cpu::Program* program = e.cpu ? e.cpu.get() : e.slice_program.get();
  std::vector<const cpu::Program*> programs;
  if (program) programs.push_back(program);
  if (e.partition)
    for (const cpu::Island& i : e.partition->islands)
      if (i.program) programs.push_back(i.program.get());
  if (programs.empty() && !e.partition)
    return e.backend_note.empty() ? "reference" : StrCat("reference (", e.backend_note, ")");
  std::map<std::string, int> kinds;
  size_t steps = 0;
  for (const cpu::Program* p : programs) {
    steps += cpu::Steps(*p).size();
    for (const cpu::StepInfo& s : cpu::Steps(*p)) {
      std::string k = s.impl.substr(0, s.impl.find(' '));
      if (k == "onednn:reorder" && s.op != "Reorder") k = "onednn:" + s.op;
      ++kinds[k];
    }
  }
  std::string out = "cpu";
  if (steps > 0) {
    out += StrCat(" (", steps, " steps:");
    for (const auto& [k, n] : kinds) out += StrCat(" ", n, " ", k);
    out += ")";
  }
  if (e.partition)
    out = StrCat(
        out, " in ", e.partition->islands.size(), " CPU island(s) holding ", e.partition->island_layers, " layers",
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
  if (e.cpu_dynamic) {
    std::lock_guard<std::mutex> lock(e.mu);
    std::set<std::string> seen;  // one line per layer over all specializations compiled so far
    for (const auto& [shapes, p] : e.specialized)
      if (p)
        for (std::string& s : cpu::SlowSteps(*p))
          if (seen.insert(s).second) out.push_back(std::move(s));
    return out;
  }
  const cpu::Program* program = e.cpu ? e.cpu.get() : e.slice_program.get();
  if (program) return cpu::SlowSteps(*program);
  if (e.partition) {
    for (const cpu::Island& i : e.partition->islands)
      if (i.program)
        for (std::string& s : cpu::SlowSteps(*i.program)) out.push_back(std::move(s));
    out.insert(out.end(), e.partition->host_layers.begin(), e.partition->host_layers.end());
    return out;
  }
  if (!e.backend_note.empty()) out.push_back(StrCat("every layer (reference backend): ", e.backend_note));
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
  if (impl_->cpu) {
    s->cpu = std::make_unique<cpu::Context>(impl_->cpu);
    s->cpu_program = impl_->cpu.get();
  }
  if (impl_->slice_program)
    for (int t = 0; t < impl_->slice_threads; ++t)
      s->slices.push_back(std::make_unique<cpu::Context>(impl_->slice_program));
  s->slices_program = impl_->slice_program.get();
  if (impl_->partition) {
    for (const cpu::Island& i : impl_->partition->islands)
      s->islands.push_back(i.program ? std::make_unique<cpu::Context>(i.program) : nullptr);
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
