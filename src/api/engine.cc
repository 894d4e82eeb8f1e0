// The public Engine / ExecutionContext (include/kiln/kiln.h) over the optimized graph.
// Today every layer runs on the reference backend; the engine owns the graph (immutable,
// shared by contexts) and each context owns its bindings and results.
#include <cstring>
#include <fstream>

#include "api/model.h"
#include "api/optimize.h"
#include "backends/cpu/cpu_backend.h"
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
};

struct ExecutionContext::State {
  std::shared_ptr<const Engine::Impl> engine;
  std::vector<RValue> inputs;      // bound views of the caller's buffers
  std::vector<bool> bound;
  std::vector<RValue> outputs;     // results of the last Run()
  std::unique_ptr<cpu::Context> cpu;
};

namespace {

DType ToDType(DataType t) { return static_cast<DType>(static_cast<int>(t)); }
DataType ToDataType(DType t) { return static_cast<DataType>(static_cast<int>(t)); }

bool IsPublicDType(DType t) {
  switch (t) {
    case DType::kFloat32: case DType::kUInt8: case DType::kInt8: case DType::kInt32: case DType::kInt64:
    case DType::kBool: case DType::kFloat16: case DType::kFloat64: case DType::kBFloat16:
      return true;
    default:
      return false;
  }
}

StatusOr<TensorInfo> InfoOf(const Value& v) {
  if (!v.type.is_tensor() || !IsPublicDType(v.type.dtype))
    return Unimplemented("graph input/output '", v.name, "' of type ", v.type.ToString(),
                         " is not supported by the Engine API (use `kiln run`)");
  TensorInfo info{v.name, ToDataType(v.type.dtype), {}};
  if (v.type.shape.has_rank())
    for (const Dim& d : v.type.shape.dims()) info.shape.push_back(d.known() ? d.value : -1);
  return info;
}

HostTensor ToHost(const Tensor& t) {
  HostTensor h = HostTensor::Allocate(ToDataType(t.dtype()), t.dims());
  if (t.nbytes() > 0) std::memcpy(h.data(), t.raw_data(), t.nbytes());
  return h;
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

HostTensor HostTensor::Allocate(DataType dtype, std::vector<int64_t> shape) {
  HostTensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
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
                                                   const BuildOptions& options);
}  // namespace

StatusOr<std::shared_ptr<const Engine>> Engine::BuildFromOnnx(const std::string& path, const BuildOptions& options) {
  KILN_ASSIGN_OR_RETURN(OnnxModel model, LoadOnnxModel(path));
  auto engine = BuildEngineFromGraph(std::move(model.graph), options);
  if (!engine.ok()) return engine.status().WithPrefix(path);
  return engine;
}

StatusOr<std::shared_ptr<const Engine>> BuildEngineFromGraph(std::shared_ptr<Graph> g, const BuildOptions& options) {
  KILN_RETURN_IF_ERROR(SetInputShapes(*g, options.input_shapes));
  if (options.optimize) KILN_RETURN_IF_ERROR(OptimizeGraph(*g).status());
  KILN_ASSIGN_OR_RETURN(MemoryPlan memory, PlanMemory(*g));
  return MakeEngine(std::move(g), std::move(memory), options);
}

Status Engine::Save(const std::string& plan_path) const {
  if (!impl_->cpu) return WritePlan(*impl_->graph, impl_->memory, PlanOptions{}, plan_path);
  // The tactics chosen by timing go into the plan, so that loading it rebuilds the same
  // kernels (and bit-identical results) without timing again. Constants are shared, not copied.
  Graph g = *impl_->graph;
  PlanOptions po;
  po.backend = "cpu";
  for (const cpu::StepInfo& s : cpu::Steps(*impl_->cpu)) {
    if (s.node < 0) continue;
    if (!s.tactic.empty()) g.node(s.node).attrs.set("kiln.tactic", Attr::String(s.tactic));
    g.node(s.node).attrs.set("kiln.precision", Attr::String(s.precision.empty() ? "fp32" : s.precision));
    if (s.precision == "bf16" && po.isa_features.empty()) po.isa_features.push_back("avx512bf16");
  }
  return WritePlan(g, impl_->memory, po, plan_path);
}

namespace {
StatusOr<std::shared_ptr<const Engine>> MakeEngine(std::shared_ptr<const Graph> g, MemoryPlan memory,
                                                   const BuildOptions& options) {
  auto impl = std::make_shared<Engine::Impl>();
  if (options.backend == "cpu") {
    Status ok = cpu::CheckSupported(*g);
    if (ok.ok()) {
      cpu::CompileOptions co;
      co.threads = options.threads;
      co.precision = options.precision;
      cpu::TimingCache cache;
      if (!options.timing_cache.empty()) {
        KILN_ASSIGN_OR_RETURN(cache, cpu::TimingCache::Load(options.timing_cache));
        co.timing_cache = &cache;
      }
      KILN_ASSIGN_OR_RETURN(impl->cpu, cpu::Compile(g, co));
      if (cache.changed) KILN_RETURN_IF_ERROR(cache.Save(options.timing_cache));
    } else {
      impl->backend_note = ok.message();
    }
  } else if (options.backend == "ref") {
    if (options.precision != "fp32")
      return InvalidArgument("precision '", options.precision, "' needs the cpu backend (the reference backend is FP32)");
  } else {
    return InvalidArgument("unknown backend '", options.backend, "' (expected cpu or ref)");
  }
  impl->memory = std::move(memory);
  for (ValueId v : g->inputs()) {
    if (g->value(v).constant) continue;
    KILN_ASSIGN_OR_RETURN(TensorInfo info, InfoOf(g->value(v)));
    impl->inputs.push_back(std::move(info));
  }
  for (ValueId v : g->outputs()) {
    KILN_ASSIGN_OR_RETURN(TensorInfo info, InfoOf(g->value(v)));
    impl->outputs.push_back(std::move(info));
  }
  impl->graph = std::move(g);
  return std::make_shared<const Engine>(std::move(impl));
}
}  // namespace

StatusOr<std::shared_ptr<const Engine>> MakeEngineFromOptimized(std::shared_ptr<const Graph> graph, MemoryPlan memory,
                                                                const BuildOptions& options) {
  return MakeEngine(std::move(graph), std::move(memory), options);
}

StatusOr<std::shared_ptr<const Engine>> Engine::Load(const std::string& path, const BuildOptions& options) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(StatusCode::kIoError, StrCat(path, ": cannot open"));
  if (IsPlanFile(path)) {
    KILN_ASSIGN_OR_RETURN(LoadedPlan plan, LoadPlan(path));
    return MakeEngine(std::shared_ptr<const Graph>(std::move(plan.graph)), std::move(plan.memory), options);
  }
  return BuildFromOnnx(path, options);
}

const Graph& EngineGraph(const Engine& engine) { return *engine.impl().graph; }

const cpu::Program* EngineCpuProgram(const Engine& engine) { return engine.impl().cpu.get(); }

std::string EngineBackendSummary(const Engine& engine) {
  const Engine::Impl& e = engine.impl();
  if (!e.cpu) return e.backend_note.empty() ? "reference" : StrCat("reference (", e.backend_note, ")");
  std::map<std::string, int> kinds;
  for (const cpu::StepInfo& s : cpu::Steps(*e.cpu)) {
    std::string k = s.impl.substr(0, s.impl.find(' '));
    if (k == "onednn:reorder" && s.op != "Reorder") k = "onednn:" + s.op;
    ++kinds[k];
  }
  std::string out = StrCat("cpu (", cpu::Steps(*e.cpu).size(), " steps:");
  for (const auto& [k, n] : kinds) out += StrCat(" ", n, " ", k);
  return out + ")";
}

cpu::Context* ContextCpuState(ExecutionContext& context) { return context.state().cpu.get(); }

std::unique_ptr<ExecutionContext> Engine::CreateContext() const {
  auto s = std::make_unique<ExecutionContext::State>();
  s->engine = impl_;
  s->inputs.resize(impl_->inputs.size());
  s->bound.assign(impl_->inputs.size(), false);
  if (impl_->cpu) s->cpu = std::make_unique<cpu::Context>(impl_->cpu);
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

Status ExecutionContext::SetInput(const std::string& name, const HostTensor& t) {
  const auto& ins = state_->engine->inputs;
  for (size_t i = 0; i < ins.size(); ++i)
    if (ins[i].name == name) return SetInput(static_cast<int>(i), t);
  std::string names;
  for (const TensorInfo& in : ins) names += (names.empty() ? "" : ", ") + in.name;
  return NotFound("the model has no input '", name, "' (inputs: ", names, ")");
}

Status ExecutionContext::SetInput(int index, const HostTensor& t) {
  const auto& ins = state_->engine->inputs;
  if (index < 0 || static_cast<size_t>(index) >= ins.size())
    return OutOfRange("input index ", index, " is out of range: the model has ", ins.size(), " inputs");
  if (t.data() == nullptr && t.numel() != 0) return InvalidArgument("input '", ins[static_cast<size_t>(index)].name, "' has no data");
  for (int64_t d : t.shape())
    if (d < 0) return InvalidArgument("input '", ins[static_cast<size_t>(index)].name, "' has a negative dimension");
  // A view of the caller's bytes: read during Run(), never written.
  Tensor view = Tensor::FromExternal(ToDType(t.dtype()), t.shape(), const_cast<void*>(t.data()), nullptr);
  const Graph& g = *state_->engine->graph;
  KILN_RETURN_IF_ERROR(CheckInputMatches(g.value(*g.FindValue(ins[static_cast<size_t>(index)].name)), RValue(view)));
  state_->inputs[static_cast<size_t>(index)] = RValue(std::move(view));
  state_->bound[static_cast<size_t>(index)] = true;
  return Status::OK();
}

Status ExecutionContext::Run() {
  const Engine::Impl& e = *state_->engine;
  for (size_t i = 0; i < e.inputs.size(); ++i)
    if (!state_->bound[i]) return FailedPrecondition("input '", e.inputs[i].name, "' is not set");
  if (state_->cpu) {
    std::vector<const Tensor*> ins;
    ins.reserve(state_->inputs.size());
    for (const RValue& v : state_->inputs) ins.push_back(&v.tensor);
    std::vector<Tensor> outs;
    KILN_RETURN_IF_ERROR(state_->cpu->Run(ins, &outs));
    state_->outputs.clear();
    for (Tensor& t : outs) state_->outputs.emplace_back(std::move(t));
    return Status::OK();
  }
  RefExecutor ex;
  KILN_ASSIGN_OR_RETURN(state_->outputs, ex.Run(*e.graph, state_->inputs));
  return Status::OK();
}

StatusOr<HostTensor> ExecutionContext::Output(int index) const {
  const auto& outs = state_->engine->outputs;
  if (index < 0 || static_cast<size_t>(index) >= outs.size())
    return OutOfRange("output index ", index, " is out of range: the model has ", outs.size(), " outputs");
  if (state_->outputs.size() != outs.size()) return FailedPrecondition("no results yet: call Run() first");
  const RValue& v = state_->outputs[static_cast<size_t>(index)];
  if (!v.is_tensor()) return Internal("output '", outs[static_cast<size_t>(index)].name, "' is not a tensor");
  return ToHost(v.tensor);
}

StatusOr<HostTensor> ExecutionContext::Output(const std::string& name) const {
  const auto& outs = state_->engine->outputs;
  for (size_t i = 0; i < outs.size(); ++i)
    if (outs[i].name == name) return Output(static_cast<int>(i));
  return NotFound("the model has no output '", name, "'");
}

}  // namespace kiln
