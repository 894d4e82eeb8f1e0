// The public Engine / ExecutionContext (include/kiln/kiln.h) over the optimized graph.
// Today every layer runs on the reference backend; the engine owns the graph (immutable,
// shared by contexts) and each context owns its bindings and results.
#include <malloc.h>
#include <omp.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <tuple>

#include "base/file.h"
#include "api/batch_parallel.h"
#include "api/model.h"
#include "backends/cpu/parallel.h"
#include "api/optimize.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/partition.h"
#include "backends/ref/kernel.h"
#include "builder/memory_planner.h"
#include "kiln/kiln.h"
#include "api/engine_internal.h"
#include "plan/plan_reader.h"
#include "plan/plan_writer.h"

namespace kiln {

struct Engine::Impl {
  std::shared_ptr<const Graph> graph;
  MemoryPlan memory;
  std::vector<TensorInfo> inputs, outputs;
  std::shared_ptr<const cpu::Program> cpu;  // null: the reference backend runs the graph
  std::string backend_note;                 // why the reference backend runs it, when it does
  // Per-layer fallback (cpu/partition.h): CPU islands inside a host graph the reference
  // executor runs; set when the CPU backend cannot take the whole graph.
  std::shared_ptr<const cpu::Partition> partition;
  // Its dynamic islands' programs per (island, input dims), compiled on first use (null: not
  // compilable for those dims; the reference kernels run it). Guarded by `mu`.
  // (The key: island, input dims, and the values of its baked inputs.)
  mutable std::map<std::tuple<int, std::vector<std::vector<int64_t>>, std::vector<int64_t>>, std::shared_ptr<const cpu::Program>>
      island_programs;
  mutable std::map<int, std::string> island_failures;  // why an island last failed to compile (profiles)
  // Dynamic shapes: the profiles, and the CPU programs specialized per input shapes so far
  // (the engine stays immutable to its users; this cache is guarded by `mu`).
  std::vector<ShapeProfileSpec> profiles;
  bool cpu_dynamic = false;  // specialize for the CPU backend (else the reference runs)
  cpu::CompileOptions compile_options;
  mutable std::mutex mu;
  mutable std::map<std::map<std::string, std::vector<int64_t>>, std::shared_ptr<const cpu::Program>> specialized;
  // Batch-parallel schedule (batch_parallel.h): `slice_program` runs `slice` samples on one
  // thread; a run executes batch/slice of them on `slice_threads` threads. `cpu` is then
  // null. `batch_note` says why the schedule is not used, when it was considered.
  std::shared_ptr<const cpu::Program> slice_program;
  int64_t batch = 0, slice = 0;
  int slice_threads = 1;
  std::string batch_note;
  // Dynamic engines: the slice size for batches > 1 (0: whole batches; chosen at build for
  // profile 0's opt shapes, or recorded in the plan), and per input shapes the slice program
  // (null: those shapes run whole, e.g. a batch the slice does not divide). Guarded by `mu`.
  int64_t dyn_slice = 0;
  mutable std::map<std::map<std::string, std::vector<int64_t>>, std::shared_ptr<const cpu::Program>> dyn_slices;
  mutable std::map<std::map<std::string, std::vector<int64_t>>, std::shared_ptr<const cpu::Program>> slice_programs;
};

struct ExecutionContext::State {
  std::shared_ptr<const Engine::Impl> engine;
  std::vector<RValue> inputs;      // bound views of the caller's buffers
  std::vector<bool> bound;
  std::vector<RValue> outputs;     // results of the last Run()
  std::unique_ptr<cpu::Context> cpu;
  const cpu::Program* cpu_program = nullptr;  // what `cpu` runs (dynamic engines switch)
  std::vector<HostTensor> bound_outputs;      // SetOutput(); undefined = not bound
  std::map<std::string, std::vector<int64_t>> cpu_shapes;  // input shapes `cpu` was specialized for
  std::vector<std::unique_ptr<cpu::Context>> slices;       // batch-parallel: one per thread
  const cpu::Program* slices_program = nullptr;            // what `slices` run
  std::shared_ptr<const cpu::Program> dyn_slice_program;   // dynamic engines: this shape's slices
  std::vector<std::unique_ptr<cpu::Context>> islands;      // partitioned engines: one per CPU island
  // Partitioned engines: per dynamic island, a context per specialization it ran (bounded);
  // per island, the program and context of its last run (profiles).
  std::vector<std::map<const cpu::Program*, std::unique_ptr<cpu::Context>>> dynamic_islands;
  std::vector<std::pair<const cpu::Program*, cpu::Context*>> island_last;
  bool profiling = false;                                  // SetProfiling
  std::vector<std::pair<NodeId, double>> host_ms;          // reference executor's node times (profiling)
};

namespace {

DType ToDType(DataType t) { return static_cast<DType>(static_cast<int>(t)); }
DataType ToDataType(DType t) { return static_cast<DataType>(static_cast<int>(t)); }

StatusOr<TensorInfo> InfoOf(const Value& v) {
  TensorInfo info;
  info.name = v.name;
  const TypeInfo* t = &v.type;
  if (t->kind == TypeInfo::Kind::kOptional) {
    if (!t->elem) return Unimplemented("graph input/output '", v.name, "' is an optional of unknown type");
    t = t->elem.get();
    info.kind = t->kind == TypeInfo::Kind::kSequence ? ValueKind::kOptionalSequence : ValueKind::kOptionalTensor;
  } else if (t->kind == TypeInfo::Kind::kSequence) {
    info.kind = ValueKind::kSequence;
  }
  if (t->kind == TypeInfo::Kind::kSequence) {
    if (!t->elem || !t->elem->is_tensor())
      return Unimplemented("graph input/output '", v.name, "' of type ", v.type.ToString(),
                           " (a sequence of non-tensors) is not supported");
    t = t->elem.get();
  } else if (t->kind != TypeInfo::Kind::kTensor) {
    return Unimplemented("graph input/output '", v.name, "' of type ", v.type.ToString(), " is not supported");
  }
  if (t->dtype != DType::kUndefined && !IsValidDType(static_cast<int32_t>(t->dtype)))
    return Unimplemented("graph input/output '", v.name, "' has element type ", static_cast<int>(t->dtype),
                         ", which kiln does not compute");
  info.dtype = ToDataType(t->dtype);
  info.has_rank = t->shape.has_rank();
  if (info.has_rank)
    for (const Dim& d : t->shape.dims()) info.shape.push_back(d.known() ? d.value : -1);
  return info;
}

// The graph's non-constant inputs and its outputs, as the public API describes them.
StatusOr<ModelSignature> SignatureOf(const Graph& g) {
  ModelSignature sig;
  for (ValueId v : g.inputs()) {
    if (g.value(v).constant) continue;
    KILN_ASSIGN_OR_RETURN(TensorInfo info, InfoOf(g.value(v)));
    sig.inputs.push_back(std::move(info));
  }
  for (ValueId v : g.outputs()) {
    KILN_ASSIGN_OR_RETURN(TensorInfo info, InfoOf(g.value(v)));
    sig.outputs.push_back(std::move(info));
  }
  return sig;
}

HostTensor ToHost(const Tensor& t) {
  HostTensor h = HostTensor::Allocate(ToDataType(t.dtype()), t.dims());
  if (t.dtype() == DType::kString) {
    std::copy(t.data<std::string>(), t.data<std::string>() + t.numel(), h.data_as<std::string>());
  } else if (t.nbytes() > 0) {
    std::memcpy(h.data(), t.raw_data(), t.nbytes());
  }
  return h;
}

// A view of the caller's tensor (no copy), checked for a usable shape and data.
StatusOr<Tensor> ViewOf(const HostTensor& t, const std::string& what) {
  if (static_cast<int>(t.dtype()) < 1 || static_cast<int>(t.dtype()) > 16)
    return InvalidArgument(what, " has an unknown element type (", static_cast<int>(t.dtype()), ")");
  if (t.data() == nullptr && t.numel() != 0) return InvalidArgument(what, " has no data");
  for (int64_t d : t.shape())
    if (d < 0) return InvalidArgument(what, " has a negative dimension");
  return Tensor::FromExternal(ToDType(t.dtype()), t.shape(), const_cast<void*>(t.data()), nullptr);
}

}  // namespace

// ---- HostTensor ----

const char* DataTypeName(DataType t) { return DTypeName(ToDType(t)); }
size_t DataTypeSize(DataType t) { return DTypeSize(ToDType(t)); }

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

const char* ValueKindName(ValueKind k) {
  switch (k) {
    case ValueKind::kTensor: return "tensor";
    case ValueKind::kSequence: return "sequence";
    case ValueKind::kOptionalTensor: return "optional(tensor)";
    case ValueKind::kOptionalSequence: return "optional(sequence)";
  }
  return "?";
}

HostTensor HostTensor::Allocate(DataType dtype, std::vector<int64_t> shape) {
  HostTensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  if (dtype == DataType::kString) {
    auto* strings = new std::string[static_cast<size_t>(std::max<int64_t>(t.numel(), 1))];
    t.owner_ = std::shared_ptr<void>(strings, [](void* p) { delete[] static_cast<std::string*>(p); });
    t.data_ = strings;
    return t;
  }
  const size_t bytes = std::max<size_t>(t.nbytes(), 1);
  t.owner_ = std::shared_ptr<void>(::operator new(bytes, std::align_val_t{64}),
                                   [](void* p) { ::operator delete(p, std::align_val_t{64}); });
  t.data_ = t.owner_.get();
  return t;
}

HostTensor HostTensor::Wrap(DataType dtype, std::vector<int64_t> shape, void* data) {
  HostTensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

// ---- Engine ----

Engine::Engine(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

const std::vector<TensorInfo>& Engine::inputs() const { return impl_->inputs; }
const std::vector<TensorInfo>& Engine::outputs() const { return impl_->outputs; }

namespace {
StatusOr<std::shared_ptr<const Engine>> MakeEngine(std::shared_ptr<const Graph> g, MemoryPlan memory,
                                                   const BuildOptions& options, std::vector<ShapeProfileSpec> profiles,
                                                   int64_t plan_slice = -1);

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
}  // namespace

StatusOr<std::shared_ptr<const Engine>> Engine::BuildFromOnnx(const std::string& path, const BuildOptions& options) {
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
  return MakeEngine(std::move(g), std::move(memory), options, std::move(profiles));
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

// A copy of `g` whose subgraphs (fused epilogues, control flow) are copies too: type
// inference writes into them. Tensors (constants) share their storage.
Graph DeepCopy(const Graph& g) {
  Graph out = g;
  for (NodeId n = 0; n < out.num_nodes(); ++n) {
    Node& node = out.node(n);
    std::vector<std::pair<std::string, Attr>> changed;
    for (const auto& [name, a] : node.attrs.all()) {
      if (a.type == Attr::Type::kGraph && a.g) {
        Attr c = a;
        c.g = std::make_shared<Graph>(DeepCopy(*a.g));
        changed.emplace_back(name, std::move(c));
      } else if (a.type == Attr::Type::kGraphs) {
        Attr c = a;
        for (auto& sg : c.graphs)
          if (sg) sg = std::make_shared<Graph>(DeepCopy(*sg));
        changed.emplace_back(name, std::move(c));
      }
    }
    for (auto& [name, a] : changed) node.attrs.set(name, std::move(a));
  }
  return out;
}

// The CPU program for these input shapes (a dynamic engine): compiled on first use, cached.
// Kernels are timed for the profiles' opt shapes (at build); other shapes compile without
// timing (the first viable candidate), so that a new shape costs milliseconds, not seconds.
// `prepared`: the graph specialized for `shapes` already (MakeEngine's probe), or null.
StatusOr<std::shared_ptr<const cpu::Program>> Specialize(const Engine::Impl& e,
                                                         const std::map<std::string, std::vector<int64_t>>& shapes,
                                                         bool time_tactics = false,
                                                         std::shared_ptr<Graph> prepared = nullptr) {
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
  co.time_tactics = time_tactics;
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const cpu::Program> p, cpu::Compile(g, co));
  // Bounded: beyond kMaxSpecializations distinct shapes, an entry other than the profiles'
  // opt shapes is dropped (contexts running it keep it alive; it is rebuilt if asked again).
  constexpr size_t kMaxSpecializations = 64;
  if (e.specialized.size() >= kMaxSpecializations) {
    for (auto it = e.specialized.begin(); it != e.specialized.end(); ++it) {
      bool opt = false;
      for (const ShapeProfileSpec& prof : e.profiles) {
        bool all = true;
        for (const auto& [name, r] : prof) all = all && it->first.count(name) && it->first.at(name) == r.opt;
        opt = opt || all;
      }
      if (!opt) {
        e.specialized.erase(it);
        break;
      }
    }
  }
  e.specialized.emplace(shapes, p);
  return p;
}

Status Engine::Save(const std::string& plan_path) const {
  PlanOptions po;
  po.profiles = impl_->profiles;
  // A dynamic engine records the kernel choices made for profile 0's opt shapes.
  std::shared_ptr<const cpu::Program> program = impl_->cpu ? impl_->cpu : impl_->slice_program;
  po.batch_slice = impl_->slice_program ? impl_->slice : impl_->dyn_slice;
  if (impl_->cpu_dynamic) {
    std::map<std::string, std::vector<int64_t>> opt;
    for (const auto& [name, r] : impl_->profiles[0]) opt[name] = r.opt;
    KILN_ASSIGN_OR_RETURN(program, Specialize(*impl_, opt));
  }
  const cpu::Partition* part = impl_->partition.get();
  if (!program && !part) return WritePlan(*impl_->graph, impl_->memory, po, plan_path);
  // The tactics chosen by timing go into the plan, so that loading it rebuilds the same
  // kernels (and bit-identical results) without timing again. Constants are shared, not copied.
  Graph g = *impl_->graph;
  po.backend = "cpu";
  // A partitioned engine's islands: their graphs' ids map back onto the engine graph's.
  struct Source {
    const cpu::Program* program;
    const cpu::Island* island;  // null: the whole graph's program (ids are the graph's)
    int index;
  };
  std::vector<Source> sources;
  if (program) sources.push_back({program.get(), nullptr, -1});
  if (part)
    for (size_t i = 0; i < part->islands.size(); ++i)
      if (part->islands[i].program && !part->islands[i].nested)  // (dynamic: compiled as it runs; nested: ids of a body)
        sources.push_back({part->islands[i].program.get(), &part->islands[i], static_cast<int>(i)});
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
  return WritePlan(g, impl_->memory, po, plan_path);
}

namespace {

// ---- Batch-parallel schedule (batch_parallel.h) ----

// Runs the batch as batch/slice slices on up to `threads` threads, slice s on the context
// of the thread that takes it; each slice reads its rows of the inputs in place and writes
// its rows of the outputs (out_ptrs: whole-batch buffers, out_bytes: their sizes).
Status RunSlices(std::vector<std::unique_ptr<cpu::Context>>& contexts, int threads, int64_t batch, int64_t slice,
                 const std::vector<const Tensor*>& inputs, const std::vector<void*>& out_ptrs,
                 const std::vector<size_t>& out_bytes) {
  const int64_t n = batch / slice;
  std::vector<Status> status(static_cast<size_t>(n));
  const int nt = static_cast<int>(std::min<int64_t>({static_cast<int64_t>(threads), n,
                                                     static_cast<int64_t>(contexts.size())}));
  cpu::ParallelFor(n, nt, [&](int64_t s) {
    cpu::Context& c = *contexts[static_cast<size_t>(omp_get_thread_num())];
    std::vector<Tensor> views;
    views.reserve(inputs.size());
    std::vector<const Tensor*> ins;
    for (const Tensor* t : inputs) {
      std::vector<int64_t> d = t->dims();
      d[0] /= n;
      const size_t bytes = t->nbytes() / static_cast<size_t>(n);
      views.push_back(Tensor::FromExternal(t->dtype(), std::move(d),
                                           static_cast<char*>(const_cast<void*>(t->raw_data())) + static_cast<size_t>(s) * bytes,
                                           nullptr));
      ins.push_back(&views.back());
    }
    std::vector<void*> outs(out_ptrs.size());
    for (size_t o = 0; o < outs.size(); ++o)
      outs[o] = static_cast<char*>(out_ptrs[o]) + static_cast<size_t>(s) * (out_bytes[o] / static_cast<size_t>(n));
    std::vector<Tensor> results;
    status[static_cast<size_t>(s)] = c.Run(ins, &results, &outs);
  });
  for (const Status& st : status) KILN_RETURN_IF_ERROR(st);
  return Status::OK();
}

// Drops the types inference wrote into subgraphs (fused epilogues): re-inference for other
// input shapes must not merge with the old ones.
void ClearSubgraphTypes(Graph& g) {
  for (NodeId n = 0; n < g.num_nodes(); ++n)
    for (const auto& [name, a] : g.node(n).attrs.all())
      if (a.type == Attr::Type::kGraph && a.g) {
        Graph& sub = *a.g;
        for (ValueId v = 0; v < sub.num_values(); ++v)
          if (!sub.value(v).constant) sub.value(v).type = TypeInfo{};
        ClearSubgraphTypes(sub);
      }
}

// The program for `slice` samples of `g` (single-threaded), or null with `why` set when
// the graph mixes samples (or cannot be specialized for that batch).
StatusOr<std::shared_ptr<const cpu::Program>> CompileSlice(std::shared_ptr<const Graph> g, cpu::CompileOptions co,
                                                           int64_t batch, int64_t slice, std::string* why) {
  auto small = std::make_shared<Graph>(DeepCopy(*g));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (ValueId v : g->inputs()) {
    const Value& val = g->value(v);
    if (val.constant) continue;
    std::vector<int64_t> d = val.type.shape.Sizes();
    d[0] = slice;
    // The input's batch was fixed at build: re-open it for the slice's (shapes then re-infer).
    small->value(v).type.shape = Shape::FromDims(d);
    shapes[val.name] = std::move(d);
  }
  ClearSubgraphTypes(*small);
  Status st = SetInputShapes(*small, shapes);
  if (st.ok()) st = BatchSeparable(*g, *small, batch, slice);
  if (st.ok()) st = cpu::CheckSupported(*small);
  if (!st.ok()) {
    *why = st.message();
    return std::shared_ptr<const cpu::Program>();
  }
  co.threads = 1;
  return cpu::Compile(small, co);
}

// Zero-filled inputs of `g`'s input types, for timing whole-program schedules.
std::vector<Tensor> ZeroInputs(const Graph& g) {
  std::vector<Tensor> out;
  for (ValueId v : g.inputs()) {
    const Value& val = g.value(v);
    if (val.constant) continue;
    Tensor t(val.type.dtype, val.type.shape.Sizes());
    if (t.nbytes() > 0) std::memset(t.raw_data(), 0, t.nbytes());
    out.push_back(std::move(t));
  }
  return out;
}

// Median wall time of `run` over a few runs after one warm-up (ms).
StatusOr<double> MedianMs(const std::function<Status()>& run) {
  KILN_RETURN_IF_ERROR(run());
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 15; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    KILN_RETURN_IF_ERROR(run());
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (i >= 4 && std::chrono::duration<double>(t1 - start).count() > 1.0) break;
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// A stable fingerprint of the engine's problem for the timing cache: ops and shapes.
std::string GraphFingerprint(const Graph& g) {
  std::string text;
  for (ValueId v : g.inputs()) text += g.value(v).type.ToString() + ";";
  for (NodeId id = 0; id < g.num_nodes(); ++id) {
    const Node& n = g.node(id);
    if (n.dead) continue;
    text += n.op_type + "(";
    for (ValueId v : n.outputs)
      if (v != kNoValue) text += g.value(v).type.ToString() + ",";
    text += ")";
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH3_64bits(text.data(), text.size())));
  return hex;
}

// Decides the batch-parallel schedule of a static CPU engine whose whole-batch program
// is `impl.cpu` (null when a plan recorded `plan_slice` > 0: only that is compiled then).
// plan_slice < 0: building (time the schedules for "auto").
Status ChooseBatchSchedule(Engine::Impl& impl, const std::shared_ptr<const Graph>& g, const cpu::CompileOptions& co,
                           const std::string& mode, int64_t plan_slice) {
  const int threads = cpu::EffectiveThreads(co.threads);
  const int64_t batch = CommonInputBatch(*g);
  if (mode == "off" || (plan_slice == 0 && mode == "auto")) return Status::OK();
  if (threads < 2 || batch < 2) {
    if (mode == "on") impl.batch_note = StrCat("batch-parallel needs batch > 1 and threads > 1 (batch ", batch, ", ", threads, " threads)");
    return Status::OK();
  }
  std::vector<int64_t> candidates;
  if (plan_slice > 0) {
    candidates.push_back(plan_slice);
  } else {
    // One sample per slice (each thread's activations stay in its cache); with "auto"
    // also one slice per thread (better weight reuse in large matmuls).
    candidates.push_back(1);
    if (mode == "auto" && batch % threads == 0 && batch / threads > 1) candidates.push_back(batch / threads);
  }
  std::vector<std::pair<int64_t, std::shared_ptr<const cpu::Program>>> programs;
  for (int64_t k : candidates) {
    if (k >= batch || batch % k != 0) {
      impl.batch_note = StrCat("a batch of ", batch, " does not split into slices of ", k);
      continue;
    }
    std::string why;
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const cpu::Program> p, CompileSlice(g, co, batch, k, &why));
    if (!p) {
      impl.batch_note = StrCat("batch-parallel: not used: ", why);
      break;  // the same reason holds for every slice size
    }
    programs.emplace_back(k, std::move(p));
  }
  if (programs.empty()) return Status::OK();
  size_t best = 0;
  if (mode == "auto" && plan_slice < 0) {
    // Time the whole-batch program and each slice schedule on zeros (the timing cache
    // makes the choice reproducible).
    const std::string key = StrCat("batch_parallel ", GraphFingerprint(*g), " threads=", threads, " precision=", co.precision);
    std::vector<Tensor> zeros = ZeroInputs(*g);
    std::vector<const Tensor*> ins;
    for (const Tensor& t : zeros) ins.push_back(&t);
    auto timed = [&](const std::string& k, const std::function<Status()>& run) -> StatusOr<double> {
      if (co.timing_cache != nullptr) {
        auto it = co.timing_cache->ms.find(k);
        if (it != co.timing_cache->ms.end()) return it->second;
      }
      KILN_ASSIGN_OR_RETURN(double ms, MedianMs(run));
      if (co.timing_cache != nullptr) {
        co.timing_cache->ms[k] = ms;
        co.timing_cache->changed = true;
      }
      return ms;
    };
    double whole_ms = 0;
    {
      cpu::Context whole(impl.cpu);
      std::vector<Tensor> outs;
      KILN_ASSIGN_OR_RETURN(whole_ms, timed(key + " whole", [&] { return whole.Run(ins, &outs); }));
    }
    std::vector<Tensor> types;
    KILN_RETURN_IF_ERROR(cpu::OutputTypes(*impl.cpu, &types));
    std::vector<Tensor> out_tensors;
    std::vector<void*> out_ptrs;
    std::vector<size_t> out_bytes;
    for (const Tensor& t : types) {
      out_tensors.emplace_back(t.dtype(), t.dims());
      out_ptrs.push_back(out_tensors.back().raw_data());
      out_bytes.push_back(t.nbytes());
    }
    double best_ms = 0;
    for (size_t i = 0; i < programs.size(); ++i) {
      std::vector<std::unique_ptr<cpu::Context>> ctxs;
      for (int t = 0; t < threads; ++t) ctxs.push_back(std::make_unique<cpu::Context>(programs[i].second));
      KILN_ASSIGN_OR_RETURN(double ms, timed(StrCat(key, " slice=", programs[i].first), [&] {
        return RunSlices(ctxs, threads, batch, programs[i].first, ins, out_ptrs, out_bytes);
      }));
      if (i == 0 || ms < best_ms) {
        best = i;
        best_ms = ms;
      }
    }
    // The simpler schedule unless slicing is clearly faster.
    for (size_t i = 0; i < programs.size(); ++i)
      if (i != best) programs[i].second.reset();
    if (!(best_ms < 0.97 * whole_ms)) {
#ifdef __GLIBC__
      malloc_trim(0);
#endif
      impl.batch_note = StrCat("batch-parallel: not used: the whole batch is faster (", whole_ms, " ms vs ", best_ms,
                               " ms in slices of ", programs[best].first, ")");
      return Status::OK();
    }
    impl.batch_note = StrCat("timed: ", best_ms, " ms vs ", whole_ms, " ms for the whole batch");
  }
  impl.slice_program = programs[best].second;
  impl.slice = programs[best].first;
  impl.batch = batch;
  impl.slice_threads = threads;
  impl.cpu.reset();  // the slices replace the whole-batch program
#ifdef __GLIBC__
  malloc_trim(0);  // the dropped programs' packed weights and arenas go back to the system
#endif
  return Status::OK();
}

// A dynamic engine's slice program for these input shapes (cached), or null when they
// run whole: batch 1, a batch the slice size does not divide, or shapes for which the
// graph does not keep samples apart.
StatusOr<std::shared_ptr<const cpu::Program>> DynamicSlices(const Engine::Impl& e,
                                                            const std::map<std::string, std::vector<int64_t>>& shapes) {
  std::lock_guard<std::mutex> lock(e.mu);
  if (auto it = e.dyn_slices.find(shapes); it != e.dyn_slices.end()) return it->second;
  constexpr size_t kMaxEntries = 64;
  if (e.dyn_slices.size() >= kMaxEntries) e.dyn_slices.clear();
  if (e.slice_programs.size() >= kMaxEntries) e.slice_programs.clear();
  std::shared_ptr<const cpu::Program> result;
  int64_t batch = 0;
  bool same_batch = true;
  for (const auto& [name, d] : shapes) {
    if (d.empty()) same_batch = false;
    else if (batch == 0) batch = d[0];
    else same_batch = same_batch && d[0] == batch;
  }
  if (same_batch && batch >= 2 && e.dyn_slice < batch && batch % e.dyn_slice == 0) {
    std::map<std::string, std::vector<int64_t>> small_shapes = shapes;
    for (auto& [name, d] : small_shapes) d[0] = e.dyn_slice;
    auto big = std::make_shared<Graph>(DeepCopy(*e.graph));
    auto small = std::make_shared<Graph>(DeepCopy(*e.graph));
    Status st = SetInputShapes(*big, shapes);
    if (st.ok()) st = SetInputShapes(*small, small_shapes);
    if (st.ok()) st = BatchSeparable(*big, *small, batch, e.dyn_slice);
    if (st.ok()) st = cpu::CheckSupported(*small);
    if (st.ok()) {
      if (auto it = e.slice_programs.find(small_shapes); it != e.slice_programs.end()) {
        result = it->second;
      } else {
        cpu::CompileOptions co = e.compile_options;
        co.threads = 1;
        co.time_tactics = false;
        KILN_ASSIGN_OR_RETURN(result, cpu::Compile(small, co));
        e.slice_programs.emplace(small_shapes, result);
      }
    }
  }
  e.dyn_slices.emplace(shapes, result);
  return result;
}

StatusOr<std::shared_ptr<const Engine>> MakeEngine(std::shared_ptr<const Graph> g, MemoryPlan memory,
                                                   const BuildOptions& options, std::vector<ShapeProfileSpec> profiles,
                                                   int64_t plan_slice) {
  if (options.batch_parallel != "auto" && options.batch_parallel != "on" && options.batch_parallel != "off")
    return InvalidArgument("unknown batch_parallel '", options.batch_parallel, "' (expected auto, on or off)");
  auto impl = std::make_shared<Engine::Impl>();
  impl->profiles = std::move(profiles);
  // A dynamic graph the CPU backend cannot take whole even at profile 0's opt shapes
  // (control flow, shapes from data) is partitioned as it is: its dynamic islands compile per
  // input dims as they run.
  // (The probe is the graph profile 0's first specialization compiles, not made twice.)
  Status whole_at_opt = Status::OK();
  std::shared_ptr<Graph> probe;
  if (options.backend == "cpu" && !impl->profiles.empty()) {
    probe = std::make_shared<Graph>(DeepCopy(*g));
    std::map<std::string, std::vector<int64_t>> opt;
    for (const auto& [name, r] : impl->profiles[0]) opt[name] = r.opt;
    whole_at_opt = SetInputShapes(*probe, opt).WithPrefix("specializing the engine for the given input shapes");
    if (whole_at_opt.ok()) whole_at_opt = cpu::CheckSupported(*probe);
  }
  if (options.backend == "cpu" && !impl->profiles.empty() && whole_at_opt.ok()) {
    // Dynamic shapes: one program per input shapes, compiled on first use; profile opt
    // shapes right away (below), so the kernel timing happens at build.
    KILN_RETURN_IF_ERROR(cpu::CheckPrecision(options.precision));
    impl->cpu_dynamic = true;
    impl->compile_options.threads = options.threads;
    impl->compile_options.precision = options.precision;
    impl->compile_options.strict = options.strict;
  } else if (options.backend == "cpu") {
    Status ok = impl->profiles.empty() ? cpu::CheckSupported(*g) : whole_at_opt;
    cpu::CompileOptions co;
    co.threads = options.threads;
    co.precision = options.precision;
    co.strict = options.strict;
    cpu::TimingCache cache;
    if (!options.timing_cache.empty()) {
      KILN_ASSIGN_OR_RETURN(cache, cpu::TimingCache::Load(options.timing_cache));
      co.timing_cache = &cache;
    }
    if (ok.ok()) {
      // A plan that recorded a batch-parallel schedule compiles the slice program only.
      if (plan_slice > 0 && options.batch_parallel != "off")
        KILN_RETURN_IF_ERROR(ChooseBatchSchedule(*impl, g, co, options.batch_parallel, plan_slice));
      if (!impl->slice_program) {
        KILN_ASSIGN_OR_RETURN(impl->cpu, cpu::Compile(g, co));
        if (plan_slice <= 0) KILN_RETURN_IF_ERROR(ChooseBatchSchedule(*impl, g, co, options.batch_parallel, plan_slice));
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
                                      part->host_layers.size(), " of them because the cpu backend cannot take them):", list);
          }
        }
        impl->partition = std::make_shared<const cpu::Partition>(std::move(*part));
        impl->compile_options = co;
        impl->compile_options.timing_cache = nullptr;  // (MakeEngine's own, gone after it)
        impl->compile_options.time_tactics = false;    // dynamic islands compile as they run
      } else {
        impl->backend_note += StrCat("; partitioning it failed: ", part.status().message());
        // The reference backend reads weights row-major (a plan's may be packed).
        auto unpacked = std::make_shared<Graph>(*g);
        KILN_RETURN_IF_ERROR(cpu::UnpackWeights(*unpacked));
        g = std::move(unpacked);
      }
    }
    if (cache.changed) KILN_RETURN_IF_ERROR(cache.Save(options.timing_cache));
  } else if (options.backend == "ref") {
    if (options.precision != "fp32")
      return InvalidArgument("precision '", options.precision, "' needs the cpu backend (the reference backend is FP32)");
  } else {
    return InvalidArgument("unknown backend '", options.backend, "' (expected cpu or ref)");
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
      KILN_RETURN_IF_ERROR(Specialize(*impl, opt, /*time_tactics=*/true, std::move(probe)).status());
    }
    // Batch-parallel for batches > 1: the plan's choice, or decided (timed, for "auto") on
    // profile 0's opt shapes; other batches use the same slice size when it divides them.
    const std::string& mode = options.batch_parallel;
    if (mode != "off" && cpu::EffectiveThreads(options.threads) >= 2) {
      if (plan_slice > 0) {
        impl->dyn_slice = plan_slice;
      } else if (plan_slice < 0 || mode == "on") {
        std::map<std::string, std::vector<int64_t>> opt;
        for (const auto& [name, r] : impl->profiles[0]) opt[name] = r.opt;
        KILN_ASSIGN_OR_RETURN(std::shared_ptr<const cpu::Program> whole, Specialize(*impl, opt));
        Engine::Impl trial;
        trial.cpu = whole;
        cpu::CompileOptions co = impl->compile_options;
        KILN_RETURN_IF_ERROR(ChooseBatchSchedule(trial, cpu::ProgramGraph(*whole), co, mode, -1));
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
  return std::make_shared<const Engine>(std::move(impl));
}
}  // namespace

StatusOr<std::shared_ptr<const Engine>> MakeEngineFromOptimized(std::shared_ptr<const Graph> graph, MemoryPlan memory,
                                                                const BuildOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<ShapeProfileSpec> profiles, ProfileSpecs(options));
  return MakeEngine(std::move(graph), std::move(memory), options, std::move(profiles));
}

StatusOr<std::shared_ptr<const Engine>> Engine::Load(const std::string& path, const BuildOptions& options) {
  KILN_RETURN_IF_ERROR(ReadOnlyFile::Open(path).status());  // exists, readable, a regular file
  if (IsPlanFile(path)) {
    KILN_ASSIGN_OR_RETURN(LoadedPlan plan, LoadPlan(path));
    // Packed weights serve the CPU backend; anything else reads them row-major.
    // (A graph the CPU backend takes in part keeps them too: its islands hold those layers.)
    if (options.backend != "cpu") KILN_RETURN_IF_ERROR(cpu::UnpackWeights(*plan.graph).WithPrefix(path));
    return MakeEngine(std::shared_ptr<const Graph>(std::move(plan.graph)), std::move(plan.memory), options,
                      std::move(plan.profiles), plan.batch_slice);
  }
  return BuildFromOnnx(path, options);
}

StatusOr<ModelSignature> ReadSignature(const std::string& path) {
  KILN_RETURN_IF_ERROR(ReadOnlyFile::Open(path).status());
  std::unique_ptr<Graph> owned;
  if (IsPlanFile(path)) {
    KILN_ASSIGN_OR_RETURN(LoadedPlan plan, LoadPlan(path));
    owned = std::move(plan.graph);
  } else {
    KILN_ASSIGN_OR_RETURN(OnnxModel model, LoadOnnxModel(path));
    owned = std::move(model.graph);
  }
  return SignatureOf(*owned);
}

const Graph& EngineGraph(const Engine& engine) { return *engine.impl().graph; }

const cpu::Program* EngineCpuProgram(const Engine& engine) {
  return engine.impl().cpu ? engine.impl().cpu.get() : engine.impl().slice_program.get();
}

std::string EngineBackendSummary(const Engine& engine) {
  const Engine::Impl& e = engine.impl();
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
  if (programs.empty() && !e.partition) return e.backend_note.empty() ? "reference" : StrCat("reference (", e.backend_note, ")");
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
    out = StrCat(out, " in ", e.partition->islands.size(), " CPU island(s) holding ", e.partition->island_layers, " layers",
                 e.partition->dynamic_islands ? StrCat(" (", e.partition->dynamic_islands, " of them compiled per input shapes as they run)") : "",
                 ", and ", e.partition->host_layers.size(), " layer(s) on the reference backend (", e.backend_note, ")");
  if (e.slice_program)
    out += StrCat(", batch-parallel: ", e.batch / e.slice, " slices of ", e.slice, " on ", e.slice_threads, " threads");
  return out;
}

cpu::Context* ContextCpuState(ExecutionContext& context) {
  ExecutionContext::State& s = context.state();
  if (!s.cpu && !s.slices.empty()) return s.slices[0].get();  // batch-parallel: the first thread's slices
  return s.cpu.get();
}

std::string EngineBatchNote(const Engine& engine) { return engine.impl().batch_note; }

void SetProfiling(ExecutionContext& context, bool on) {
  ExecutionContext::State& s = context.state();
  s.profiling = on;
  if (s.cpu) s.cpu->set_profiling(on);
  for (auto& c : s.slices) c->set_profiling(on);
  for (auto& c : s.islands)
    if (c) c->set_profiling(on);
}

StatusOr<std::vector<ProfiledStep>> LastRunProfile(ExecutionContext& context) {
  ExecutionContext::State& s = context.state();
  const Engine::Impl& e = *s.engine;
  std::vector<ProfiledStep> out;
  auto add_program = [&](const cpu::Program& p, const cpu::Context& c) -> Status {
    const auto& steps = cpu::Steps(p);
    if (c.step_ms().size() != steps.size()) return FailedPrecondition("no profiled run yet (SetProfiling, then Run)");
    for (size_t i = 0; i < steps.size(); ++i)
      out.push_back({steps[i].name, steps[i].op, steps[i].impl, steps[i].tactic, c.step_ms()[i], cpu::IsSlowStep(steps[i])});
    return Status::OK();
  };
  if (s.cpu && s.cpu_program) {
    KILN_RETURN_IF_ERROR(add_program(*s.cpu_program, *s.cpu));
  } else if (!s.slices.empty() && s.slices_program) {
    KILN_RETURN_IF_ERROR(add_program(*s.slices_program, *s.slices[0]));
  } else {
    if (s.host_ms.empty()) return FailedPrecondition("no profiled run yet (SetProfiling, then Run)");
    const Graph& host = e.partition ? *e.partition->host : *e.graph;
    for (const auto& [id, ms] : s.host_ms) {
      const Node& n = host.node(id);
      if (n.domain == kExternalDomain && e.partition) {
        KILN_ASSIGN_OR_RETURN(int64_t k, n.attrs.GetInt(cpu::kIslandIndexAttr, -1));
        if (k < 0 || static_cast<size_t>(k) >= s.islands.size()) return Internal("CPU island index ", k, " out of range");
        const auto& [program, context] = s.island_last[static_cast<size_t>(k)];
        if (program && context) {
          KILN_RETURN_IF_ERROR(add_program(*program, *context));
        } else {  // a dynamic island on the reference kernels (not compilable for these shapes)
          std::lock_guard<std::mutex> lock(e.mu);
          auto why = e.island_failures.find(static_cast<int>(k));
          out.push_back({n.name, "CpuIsland", why == e.island_failures.end() ? "reference backend" : "reference backend - " + why->second,
                         "", ms, true});
        }
      } else {
        out.push_back({n.name.empty() ? n.DisplayName(id) : n.name, n.op_type, "reference backend", "", ms, true});
      }
    }
  }
  return out;
}

std::vector<std::string> EngineSlowPaths(const Engine& engine) {
  const Engine::Impl& e = engine.impl();
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
  if (!engine.impl().profiles.empty())
    for (const auto& [name, r] : engine.impl().profiles[0]) out[name] = r.opt;
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
    for (int t = 0; t < impl_->slice_threads; ++t) s->slices.push_back(std::make_unique<cpu::Context>(impl_->slice_program));
  s->slices_program = impl_->slice_program.get();
  if (impl_->partition) {
    for (const cpu::Island& i : impl_->partition->islands)
      s->islands.push_back(i.program ? std::make_unique<cpu::Context>(i.program) : nullptr);
    s->dynamic_islands.resize(impl_->partition->islands.size());
    s->island_last.resize(impl_->partition->islands.size());
  }
  return std::make_unique<ExecutionContext>(std::move(s));
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

// ---- ExecutionContext ----

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
    return InvalidArgument("input '", info.name, "' is a ", ValueKindName(info.kind), ": bind it with SetInputSequence");
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
    return InvalidArgument("input '", info.name, "' is a ", ValueKindName(info.kind), " and needs a value (only optional inputs may be empty)");
  state_->inputs[static_cast<size_t>(index)] = RValue::None();
  state_->bound[static_cast<size_t>(index)] = true;
  return Status::OK();
}

namespace {

// A dynamic island's program for these input dims: compiled on first use (no tactic
// timing: milliseconds), cached per engine; null when the island cannot be compiled for them
// (a shape that still depends on data), and then the reference kernels run it.
// Baked inputs (island.bake: shapes computed elsewhere) become constants of the copy.
StatusOr<std::shared_ptr<const cpu::Program>> SpecializeIsland(const Engine::Impl& e, int index,
                                                               const std::vector<const Tensor*>& ins) {
  const cpu::Island& island = e.partition->islands[static_cast<size_t>(index)];
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
  if (st.ok()) st = cpu::CheckSupported(*g);
  std::shared_ptr<const cpu::Program> program;
  if (st.ok()) {
    auto compiled = cpu::Compile(g, e.compile_options);
    if (compiled.ok()) program = std::move(*compiled);
    else st = compiled.status();
  }
  if (!st.ok()) e.island_failures[index] = st.message();
  constexpr size_t kMaxEntries = 256;
  if (e.island_programs.size() >= kMaxEntries) e.island_programs.clear();  // (contexts keep theirs alive)
  e.island_programs.emplace(std::move(key), program);
  return program;
}

// A CPU island of a partitioned engine, as the reference executor's host graph reaches it:
// its inputs checked against the island's types, its program (compiled at build, or for
// these dims now) run on this context's state for it.
Status RunIsland(ExecutionContext::State& state, const Node& node, RefContext& ctx) {
  const Engine::Impl& e = *state.engine;
  const cpu::Partition& part = *e.partition;
  KILN_ASSIGN_OR_RETURN(int64_t index, node.attrs.GetInt(cpu::kIslandIndexAttr, -1));
  if (index < 0 || static_cast<size_t>(index) >= part.islands.size() || static_cast<size_t>(index) >= state.islands.size())
    return Internal("CPU island index ", index, " out of range");
  const size_t k = static_cast<size_t>(index);
  const cpu::Island& island = part.islands[k];
  const Graph& ig = *island.graph;
  if (static_cast<size_t>(ctx.num_inputs()) != ig.inputs().size()) return Internal("CPU island input count mismatch");
  std::vector<const Tensor*> ins;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
    const Tensor& t = ctx.input(i);
    const TypeInfo& want = ig.value(ig.inputs()[static_cast<size_t>(i)]).type;
    bool match = t.dtype() == want.dtype && want.shape.has_rank() && t.rank() == want.shape.rank();
    for (int d = 0; match && d < t.rank(); ++d) match = !want.shape.dim(d).known() || want.shape.dim(d).value == t.dim(d);
    if (!match)
      return Internal("CPU island input '", ig.value(ig.inputs()[static_cast<size_t>(i)]).name, "' is ", t.ShapeString(),
                      ", the island was made for ", want.ToString());
    ins.push_back(&t);
  }
  std::shared_ptr<const cpu::Program> program = island.program;
  cpu::Context* context = state.islands[k].get();
  if (!program) {
    KILN_ASSIGN_OR_RETURN(program, SpecializeIsland(e, index, ins));
    if (!program) {
      if (e.compile_options.strict)
        return FailedPrecondition("CPU island ", index, " cannot be compiled for these input shapes, so it would run on "
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
      it = contexts.emplace(program.get(), std::make_unique<cpu::Context>(program)).first;
    }
    context = it->second.get();
    // Baked inputs are constants of the specialized program: it takes the others.
    std::vector<const Tensor*> rest;
    for (size_t i = 0; i < ins.size(); ++i)
      if (!island.bake[i]) rest.push_back(ins[i]);
    ins = std::move(rest);
  }
  context->set_profiling(state.profiling);
  std::vector<Tensor> outs;
  KILN_RETURN_IF_ERROR(context->Run(ins, &outs));
  for (size_t o = 0; o < outs.size(); ++o) ctx.set_output(static_cast<int>(o), std::move(outs[o]));
  state.island_last[k] = {program.get(), context};
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
  if (!e.profiles.empty()) {
    std::map<std::string, std::vector<int64_t>> shapes;
    for (size_t i = 0; i < e.inputs.size(); ++i) shapes[e.inputs[i].name] = state_->inputs[i].tensor.dims();
    // The same shapes as the last run: the same program, no profile check or cache lookup.
    const bool same = (state_->cpu != nullptr || state_->dyn_slice_program != nullptr) && shapes == state_->cpu_shapes;
    bool inside = same;
    for (const ShapeProfileSpec& p : e.profiles) inside = inside || ProfileContains(p, shapes);
    if (!inside) {
      std::string got, profiles;
      for (const auto& [name, d] : shapes) got += (got.empty() ? "" : ", ") + name + " " + DimsToString(d);
      for (size_t i = 0; i < e.profiles.size(); ++i) profiles += StrCat("; profile ", i, ": ", DescribeProfile(e.profiles[i]));
      return InvalidArgument("input shapes ", got, " are outside every profile of this engine", profiles);
    }
    if (e.cpu_dynamic && !same) {
      state_->dyn_slice_program.reset();
      if (e.dyn_slice > 0) {
        KILN_ASSIGN_OR_RETURN(state_->dyn_slice_program, DynamicSlices(e, shapes));
      }
      if (state_->dyn_slice_program) {
        if (state_->slices_program != state_->dyn_slice_program.get()) {
          state_->slices.clear();
          const int threads = cpu::EffectiveThreads(e.compile_options.threads);
          for (int t = 0; t < threads; ++t) {
            state_->slices.push_back(std::make_unique<cpu::Context>(state_->dyn_slice_program));
            state_->slices.back()->set_profiling(state_->profiling);
          }
          state_->slices_program = state_->dyn_slice_program.get();
        }
      } else {
        KILN_ASSIGN_OR_RETURN(std::shared_ptr<const cpu::Program> program, Specialize(e, shapes));
        if (state_->cpu_program != program.get()) {
          state_->cpu = std::make_unique<cpu::Context>(program);
          state_->cpu->set_profiling(state_->profiling);
          state_->cpu_program = program.get();
        }
      }
      state_->cpu_shapes = shapes;
    }
  }
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
  const cpu::Program* slice_program = e.slice_program ? e.slice_program.get() : state_->dyn_slice_program.get();
  if (slice_program != nullptr) {
    // Batch-parallel: each slice writes its rows of the outputs (the caller's when bound).
    std::vector<const Tensor*> ins;
    for (const RValue& v : state_->inputs) ins.push_back(&v.tensor);
    std::vector<Tensor> types;
    KILN_RETURN_IF_ERROR(cpu::OutputTypes(*slice_program, &types));
    std::vector<Tensor> outs;
    std::vector<void*> ptrs(e.outputs.size());
    std::vector<size_t> bytes(e.outputs.size());
    const int64_t slice = e.slice_program ? e.slice : e.dyn_slice;
    const int64_t batch = e.slice_program ? e.batch : ins.empty() ? 0 : ins[0]->dims()[0];
    const int threads = e.slice_program ? e.slice_threads : cpu::EffectiveThreads(e.compile_options.threads);
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
  if (state_->cpu) {
    std::vector<const Tensor*> ins;
    ins.reserve(state_->inputs.size());
    for (const RValue& v : state_->inputs) ins.push_back(&v.tensor);
    std::vector<Tensor> outs;
    if (any_bound) {
      // Sizes first: a buffer of the wrong shape must not be written.
      std::vector<Tensor> shapes;
      KILN_RETURN_IF_ERROR(cpu::OutputTypes(*state_->cpu_program, &shapes));
      for (size_t i = 0; i < out_ptrs.size(); ++i)
        if (out_ptrs[i] != nullptr) KILN_RETURN_IF_ERROR(check_bound(i, shapes[i]));
    }
    KILN_RETURN_IF_ERROR(state_->cpu->Run(ins, &outs, any_bound ? &out_ptrs : nullptr));
    state_->outputs.clear();
    for (Tensor& t : outs) state_->outputs.emplace_back(std::move(t));
    return Status::OK();
  }
  RefExecutor::Options ro;
  state_->host_ms.clear();
  if (state_->profiling) ro.node_ms = &state_->host_ms;
  if (e.partition) ro.external = [this](const Node& node, RefContext& ctx) { return RunIsland(*state_, node, ctx); };
  RefExecutor ex(ro);
  KILN_ASSIGN_OR_RETURN(state_->outputs, ex.Run(e.partition ? *e.partition->host : *e.graph, state_->inputs));
  for (size_t i = 0; i < out_ptrs.size(); ++i) {
    if (out_ptrs[i] == nullptr || !state_->outputs[i].is_tensor()) continue;
    const Tensor& t = state_->outputs[i].tensor;
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
  if (static_cast<size_t>(index) < state_->bound_outputs.size() && state_->bound_outputs[static_cast<size_t>(index)].data() != nullptr)
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
    return InvalidArgument("output '", info.name, "' is ", DataTypeName(info.dtype), ", the buffer is ", DataTypeName(t.dtype()));
  bool shape_ok = t.shape().size() == info.shape.size();
  for (size_t d = 0; shape_ok && d < info.shape.size(); ++d) shape_ok = info.shape[d] < 0 || info.shape[d] == t.shape()[d];
  if (!shape_ok)
    return InvalidArgument("output '", info.name, "' has shape ", DimsToString(info.shape), ", the buffer ", DimsToString(t.shape()));
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
  if (!v.is_sequence()) return InvalidArgument("output '", info.name, "' is a tensor, not a sequence: read it with Output");
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

}  // namespace kiln
