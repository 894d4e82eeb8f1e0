// The builder's side of engines (kiln/builder.h): build one from an ONNX model, a network
// definition or an optimized graph (kiln build's phases) — specialize shapes, optimize,
// mark INT8 layers, plan memory, then make the runtime's engine with a timer so that its
// kernels and batch schedule are chosen by measurement — and write one as a plan.
#include <cstring>

#include "api/engine_internal.h"
#include "api/model.h"
#include "api/optimize.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/partition.h"
#include "base/file.h"
#include "builder/memory_planner.h"
#include "builder/plan_writer.h"
#include "builder/tactic_timer.h"
#include "kiln/kiln.h"
#include "plan/plan_reader.h"
#include "runtime/engine_impl.h"

namespace kiln {

const char* PrecisionName(Precision precision) {
  switch (precision) {
    case Precision::kFp32: return "fp32";
    case Precision::kBf16: return "bf16";
    case Precision::kFp16: return "fp16";
    case Precision::kInt8: return "int8";
  }
  return "?";
}

StatusOr<Precision> ParsePrecision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  if (name == "fp16") return Precision::kFp16;
  if (name == "int8") return Precision::kInt8;
  return InvalidArgument("unknown precision '", name, "' (expected fp32, bf16, int8 or fp16)");
}

namespace {

StatusOr<std::vector<ShapeProfileSpec>> ProfileSpecs(const BuildOptions& options) {
  std::vector<ShapeProfileSpec> out;
  for (size_t i = 0; i < options.profiles.size(); ++i) {
    ShapeProfileSpec spec;
    for (const auto& [name, r] : options.profiles[i]) spec[name] = ShapeRangeSpec{r.min, r.opt, r.max};
    KILN_RETURN_IF_ERROR(CheckShapeProfile(spec, static_cast<int>(i)));
    if (i > 0) {
      bool same = spec.size() == out[0].size();
      for (const auto& [name, r] : spec) same = same && out[0].count(name);
      if (!same) return InvalidArgument("profile ", i, " names other inputs than profile 0 (every profile names the same inputs)");
    }
    out.push_back(std::move(spec));
  }
  return out;
}

// Makes the profiles' varying dimensions symbolic ("kiln.<input>.<axis>") and fixes the others.
Status SetProfileInputs(Graph& g, const std::vector<ShapeProfileSpec>& profiles,
                        const std::map<std::string, std::vector<int64_t>>& fixed) {
  std::map<std::string, std::vector<Dim>> dims;
  for (const auto& [name, r0] : profiles[0]) {
    std::vector<Dim> d;
    for (size_t i = 0; i < r0.min.size(); ++i) {
      bool single = true;
      for (const ShapeProfileSpec& p : profiles) {
        const ShapeRangeSpec& r = p.at(name);
        if (r.min.size() != r0.min.size())
          return InvalidArgument("input '", name, "' has different ranks in different profiles");
        single = single && r.min[i] == r.max[i] && r.min[i] == r0.min[i];
      }
      d.push_back(single ? Dim(r0.min[i]) : Dim::Symbol(StrCat("kiln.", name, ".", i)));
    }
    dims[name] = std::move(d);
  }
  return SetInputDims(g, dims, fixed);
}

// The runtime's engine over an optimized graph, its kernels and schedule chosen by timing
// (reusing and extending the options' timing cache).
StatusOr<std::shared_ptr<const Engine>> MakeBuiltEngine(std::shared_ptr<const Graph> g, MemoryPlan memory,
                                                        const BuildOptions& options,
                                                        std::vector<ShapeProfileSpec> profiles) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<MeasuringTimer> timer,
                        MeasuringTimer::Open(options.backend == Backend::kCpu ? options.timing_cache : ""));
  EngineOptions eo = ToEngineOptions(options);
  eo.precision = PrecisionName(options.precision);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Engine> engine,
                        MakeEngine(std::move(g), std::move(memory), eo, std::move(profiles), /*plan_slice=*/-1, timer.get()));
  KILN_RETURN_IF_ERROR(timer->Save());
  return engine;
}

// With the builder linked, the runtime's Engine::Load and ReadSignature take ONNX models too.
const bool kOnnxRegistered = RegisterOnnxSupport(OnnxSupport{
    [](const std::string& path, const LoadOptions& options) {
      BuildOptions bo;
      static_cast<LoadOptions&>(bo) = options;
      return BuildFromOnnx(path, bo);
    },
    [](const std::string& path) -> StatusOr<ModelSignature> {
      KILN_ASSIGN_OR_RETURN(OnnxModel model, LoadOnnxModel(path));
      return SignatureOf(*model.graph);
    }});

}  // namespace

StatusOr<std::shared_ptr<const Engine>> BuildFromOnnx(const std::string& path, const BuildOptions& options) {
  KILN_ASSIGN_OR_RETURN(OnnxModel model, LoadOnnxModel(path));
  auto engine = BuildEngineFromGraph(std::move(model.graph), options);
  if (!engine.ok()) return engine.status().WithPrefix(path);
  return engine;
}

StatusOr<std::shared_ptr<const Engine>> BuildEngineFromGraph(std::shared_ptr<Graph> g, const BuildOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<ShapeProfileSpec> profiles, ProfileSpecs(options));
  if (profiles.empty()) {
    KILN_RETURN_IF_ERROR(SetInputShapes(*g, options.input_shapes));
  } else {
    KILN_RETURN_IF_ERROR(SetProfileInputs(*g, profiles, options.input_shapes));
  }
  if (options.optimize) KILN_RETURN_IF_ERROR(OptimizeGraph(*g).status());
  KILN_RETURN_IF_ERROR(QuantizeInt8(*g, options).status());
  KILN_ASSIGN_OR_RETURN(MemoryPlan memory, PlanEngineMemory(*g, !profiles.empty(), /*verify=*/false));
  return MakeBuiltEngine(std::move(g), std::move(memory), options, std::move(profiles));
}

StatusOr<MemoryPlan> PlanEngineMemory(const Graph& graph, bool dynamic, bool verify) {
  // A dynamic graph (profiles, or shapes that depend on input values) has no memory plan:
  // each specialization or CPU island plans its own arena, the reference kernels allocate.
  if (dynamic || !cpu::CheckSupported(graph).ok()) return MemoryPlan{};
  KILN_ASSIGN_OR_RETURN(MemoryPlan plan, PlanMemory(graph));
  if (verify) KILN_RETURN_IF_ERROR(VerifyMemoryPlan(graph, plan));
  return plan;
}

Status SetDynamicProfileInputs(Graph& graph, const BuildOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<ShapeProfileSpec> profiles, ProfileSpecs(options));
  if (profiles.empty()) return SetInputShapes(graph, options.input_shapes);
  return SetProfileInputs(graph, profiles, options.input_shapes);
}

StatusOr<std::shared_ptr<const Engine>> MakeEngineFromOptimized(std::shared_ptr<const Graph> graph, MemoryPlan memory,
                                                                const BuildOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<ShapeProfileSpec> profiles, ProfileSpecs(options));
  return MakeBuiltEngine(std::move(graph), std::move(memory), options, std::move(profiles));
}


StatusOr<std::shared_ptr<const Engine>> LoadOrBuild(const std::string& path, const BuildOptions& options) {
  KILN_RETURN_IF_ERROR(ReadOnlyFile::Open(path).status());  // exists, readable, a regular file
  if (IsPlanFile(path)) return Engine::Load(path, static_cast<const LoadOptions&>(options));
  return BuildFromOnnx(path, options);
}

Status SavePlan(const Engine& engine, const std::string& plan_path) {
  const Engine::Impl& impl = ImplOf(engine);
  PlanOptions po;
  po.profiles = impl.profiles;
  // A dynamic engine records the kernel choices made for profile 0's opt shapes.
  std::shared_ptr<const BackendProgram> program = impl.program ? impl.program : impl.slice_program;
  po.batch_slice = impl.slice_program ? impl.slice : impl.dyn_slice;
  if (impl.dynamic) {
    std::map<std::string, std::vector<int64_t>> opt;
    for (const auto& [name, r] : impl.profiles[0]) opt[name] = r.opt;
    KILN_ASSIGN_OR_RETURN(program, Specialize(impl, opt));
  }
  const Partition* part = impl.partition.get();
  // (Tactics and packed weights are the CPU backend's; other backends' engines store the graph.)
  const cpu::Program* cpu_program = cpu::AsProgram(program.get());
  if (!cpu_program && !part) return WritePlan(*impl.graph, impl.memory, po, plan_path);
  // The tactics chosen by timing go into the plan, so that loading it rebuilds the same
  // kernels (and bit-identical results) without timing again. Constants are shared, not copied.
  Graph g = *impl.graph;
  po.backend = "cpu";
  // A partitioned engine's islands: their graphs' ids map back onto the engine graph's.
  struct Source {
    const cpu::Program* program;
    const Island* island;  // null: the whole graph's program (ids are the graph's)
    int index;
  };
  std::vector<Source> sources;
  if (cpu_program) sources.push_back({cpu_program, nullptr, -1});
  if (part)
    for (size_t i = 0; i < part->islands.size(); ++i)
      if (const cpu::Program* p = cpu::AsProgram(part->islands[i].program.get());
          p && !part->islands[i].nested)  // (dynamic: compiled as it runs; nested: ids of a body)
        sources.push_back({p, &part->islands[i], static_cast<int>(i)});
  auto bytes_attr = [](const void* data, size_t n) {
    Tensor t(DType::kUInt8, {static_cast<int64_t>(n)});
    std::memcpy(t.raw_data(), data, n);
    return Attr::TensorValue(std::move(t));
  };
  for (const Source& src : sources) {
    auto node_id = [&](int n) { return src.island ? src.island->node_of[static_cast<size_t>(n)] : n; };
    for (const cpu::StepInfo& s : cpu::Steps(*src.program)) {
      if (s.node < 0) continue;
      Node& node = g.node(node_id(s.node));
      if (!s.tactic.empty()) node.attrs.set("kiln.tactic", Attr::String(s.tactic));
      node.attrs.set("kiln.precision", Attr::String(s.precision.empty() ? "fp32" : s.precision));
      if (s.precision == "bf16" && po.isa_features.empty()) po.isa_features.push_back("avx512bf16");
    }
    // Weights go in already packed in their kernels' layouts: loading the plan then uses them
    // in place (a layer whose kernel differs on the loading CPU repacks them). See FORMAT.md.
    for (const cpu::PackedWeights& pw : cpu::PackedWeightList(*src.program)) {
      const ValueId vid = src.island ? src.island->value_of[static_cast<size_t>(pw.value)] : pw.value;
      Value& v = g.value(vid);
      if (!v.constant) continue;
      Node& node = g.node(node_id(pw.node));
      const Tensor& w = *v.constant;
      // An island's weight read by a layer elsewhere (the reference backend, another island)
      // must stay row-major there: relayout only what this island alone reads.
      bool own = true;
      if (src.island)
        for (NodeId c : v.consumers) own = own && part->island_of[static_cast<size_t>(c)] == src.index;
      if (pw.relayout && pw.bytes >= w.nbytes() && own) {
        // The constant's values in another layout: stored once, in that layout (padded layouts
        // keep the whole in kiln.packed_weights; the constant names its first bytes).
        node.attrs.erase(cpu::kKernelWeightsAttr);
        node.attrs.erase(cpu::kKernelMdAttr);
        node.attrs.erase(cpu::kPackedWeightsAttr);
        if (pw.bytes > w.nbytes())
          node.attrs.set(cpu::kPackedWeightsAttr,
                         Attr::TensorValue(Tensor::FromExternal(DType::kUInt8, {static_cast<int64_t>(pw.bytes)},
                                                                const_cast<void*>(pw.data), nullptr)));
        v.constant = Tensor::FromExternal(w.dtype(), w.dims(), const_cast<void*>(pw.data), nullptr);
        node.attrs.set(cpu::kPackedMdAttr, bytes_attr(pw.md.data(), pw.md.size()));
      } else {
        // A form kiln cannot turn back (Winograd, BF16, transposed/scaled): an extra copy.
        node.attrs.set(cpu::kKernelWeightsAttr,
                       Attr::TensorValue(Tensor::FromExternal(DType::kUInt8, {static_cast<int64_t>(pw.bytes)},
                                                              const_cast<void*>(pw.data), nullptr)));
        node.attrs.set(cpu::kKernelMdAttr, bytes_attr(pw.md.data(), pw.md.size()));
      }
    }
  }
  // The whole graph's program: its arena as placed here, which loading the plan executes.
  if (impl.program && program == impl.program && !impl.dynamic && !part && cpu_program)
    po.cpu_arena = cpu::ArenaLayout(*cpu_program);
  return WritePlan(g, impl.memory, po, plan_path);
}

}  // namespace kiln
