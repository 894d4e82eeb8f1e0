// Precision "int8": which layers quantize, their activation ranges (calibration or a
// cache), and the kiln.int8 marks the CPU backend compiles (backends/cpu/int8.h).
//
// Calibration runs the optimized FP32 graph — the very graph the INT8 engine is compiled
// from, so the tensors measured are the tensors quantized, after BN folding and fusion —
// on the CPU backend with every quantized layer's input made an extra graph output, and
// feeds each batch's values into per-tensor statistics (builder/calibrator.h).
#include <algorithm>
#include <set>
#include <thread>

#include "api/engine_internal.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/int8.h"
#include "builder/calibrator.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

// The layers that compute in INT8: convolutions over a float activation with constant
// float weights (every group count; oneDNN has INT8 kernels for all), and MatMul/Gemm with
// constant 2-D float weights. Per layer, the value its input quantizes.
std::vector<std::pair<NodeId, ValueId>> Int8Layers(const Graph& g, const std::vector<std::string>& keep_fp32) {
  const std::set<std::string> keep(keep_fp32.begin(), keep_fp32.end());
  std::vector<std::pair<NodeId, ValueId>> out;
  for (NodeId n = 0; n < g.num_nodes(); ++n) {
    const Node& node = g.node(n);
    if (node.dead || !(node.domain.empty() || node.domain == "ai.onnx") || keep.count(node.name)) continue;
    const bool conv = node.op_type == "Conv", mm = node.op_type == "MatMul" || node.op_type == "Gemm";
    if (!conv && !mm) continue;
    const Node main = MainPartOf(node);
    if (main.inputs.size() < 2 || main.inputs[0] == kNoValue || main.inputs[1] == kNoValue) continue;
    // Matrix products: constant 2-D weights (B), A not transposed.
    if (mm) {
      auto ta = main.attrs.GetInt("transA", 0);
      if (g.value(main.inputs[1]).type.shape.rank() != 2 || !ta.ok() || *ta != 0) continue;
    }
    const Value& x = g.value(main.inputs[0]);
    const Value& w = g.value(main.inputs[1]);
    if (x.constant || !x.type.is_tensor() || x.type.dtype != DType::kFloat32 || !x.type.shape.IsStatic()) continue;
    if (!w.constant || w.constant->dtype() != DType::kFloat32) continue;
    out.emplace_back(n, main.inputs[0]);
  }
  return out;
}

StatusOr<CalibrationCache> Calibrate(const Graph& g, const std::vector<std::pair<NodeId, ValueId>>& layers,
                                     const std::vector<ValueId>& extra, const BuildOptions& options) {
  const BuildOptions::Calibration& cal = options.calibration;
  KILN_ASSIGN_OR_RETURN(Calibrator which, ParseCalibrator(cal.calibrator));
  if (which == Calibrator::kPercentile && !(cal.percentile > 0 && cal.percentile <= 100))
    return InvalidArgument("calibration percentile ", cal.percentile, " is not in (0, 100]");
  // The FP32 graph with every quantized input as an extra output.
  auto probe = std::make_shared<Graph>(DeepCopy(g));
  std::set<ValueId> outputs(probe->outputs().begin(), probe->outputs().end());
  std::map<std::string, TensorStats> stats;
  for (const auto& [node, v] : layers) {
    stats[g.value(v).name];
    if (outputs.insert(v).second) probe->outputs().push_back(v);
  }
  for (ValueId v : extra) {
    stats[g.value(v).name];
    if (outputs.insert(v).second) probe->outputs().push_back(v);
  }
  BuildOptions po;
  po.threads = options.threads;
  po.batch_parallel = "off";
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Engine> engine, MakeEngineFromOptimized(probe, MemoryPlan{}, po));
  // One context, its outputs bound once to buffers of ours: no per-batch allocation (fresh
  // pages for ~50 activation tensors a batch cost more than the inference).
  std::unique_ptr<ExecutionContext> ctx = engine->CreateContext();
  std::vector<std::pair<TensorStats*, HostTensor>> work;
  for (const TensorInfo& o : engine->outputs()) {
    HostTensor t = HostTensor::Allocate(o.dtype, o.shape);
    KILN_RETURN_IF_ERROR(ctx->SetOutput(o.name, t));
    auto it = stats.find(o.name);
    if (it != stats.end()) {
      if (o.dtype != DataType::kFloat32) return Internal("calibration: '", o.name, "' is not float");
      work.emplace_back(&it->second, t);
    }
  }
  if (work.size() != stats.size()) return Internal("calibration: the probe engine lacks some quantized tensors");
  int done = 0;
  std::map<std::string, HostTensor> batch;
  while (cal.max_batches <= 0 || done < cal.max_batches) {
    batch.clear();
    StatusOr<bool> more = cal.next_batch(&batch);
    if (!more.ok()) return more.status().WithPrefix(StrCat("calibration batch ", done + 1));
    if (!*more) break;
    for (const auto& [name, t] : batch) {
      Status st = ctx->SetInput(name, t);
      if (!st.ok()) return st.WithPrefix(StrCat("calibration batch ", done + 1));
    }
    Status st = ctx->Run();
    if (!st.ok()) return st.WithPrefix(StrCat("calibration batch ", done + 1));
    // The histograms, tensors spread over the engine's threads.
    const size_t nt = std::min(work.size(), static_cast<size_t>(std::max(1, cpu::EffectiveThreads(options.threads))));
    auto run = [&](size_t t) {
      for (size_t i = t; i < work.size(); i += nt) work[i].first->Add(work[i].second.data_as<float>(), work[i].second.numel());
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < nt; ++t) pool.emplace_back(run, t);
    run(0);
    for (std::thread& th : pool) th.join();
    ++done;
    if (cal.on_batch) cal.on_batch(done);
  }
  if (done == 0) return InvalidArgument("calibration: no calibration batches were given");
  CalibrationCache cache;
  cache.calibrator = CalibratorName(which);
  CalibratorOptions co;
  co.calibrator = which;
  co.percentile = cal.percentile;
  for (const auto& [name, s] : stats) cache.ranges[name] = ComputeRange(s, co);
  return cache;
}

}  // namespace

StatusOr<Int8Report> QuantizeInt8(Graph& g, const BuildOptions& options, const std::vector<ValueId>& extra) {
  Int8Report report;
  if (!g.quant_ranges.empty() && options.backend == "cpu" && options.calibration.cache.empty() &&
      !options.calibration.next_batch && cpu::CheckPrecision("int8").ok()) {
    // A QDQ model: its own scales, for the layers whose input it quantized.
    for (const auto& [node, v] : Int8Layers(g, options.calibration.keep_fp32)) {
      auto it = g.quant_ranges.find(g.value(v).name);
      if (it == g.quant_ranges.end()) continue;
      g.node(node).attrs.set(cpu::kInt8Attr, Attr::Floats({it->second.scale, it->second.is_unsigned ? 1.0f : 0.0f}));
      report.ranges[it->first] = it->second;
      ++report.layers;
    }
    report.tensors = static_cast<int>(g.quant_ranges.size());
    report.calibrator = "qdq";
    return report;
  }
  if (options.precision != "int8") return report;
  if (options.backend != "cpu") return InvalidArgument("precision int8 needs the cpu backend");
  if (!options.profiles.empty())
    return Unimplemented("precision int8 with shape profiles: calibrate a build with fixed input shapes");
  KILN_RETURN_IF_ERROR(cpu::CheckPrecision("int8"));
  const BuildOptions::Calibration& cal = options.calibration;
  const auto layers = Int8Layers(g, cal.keep_fp32);
  CalibrationCache cache;
  if (cal.next_batch) {
    KILN_ASSIGN_OR_RETURN(cache, Calibrate(g, layers, extra, options));
    if (!cal.cache.empty()) KILN_RETURN_IF_ERROR(cache.Write(cal.cache).WithPrefix("calibration cache"));
    report.calibrated = true;
  } else if (!cal.cache.empty()) {
    KILN_ASSIGN_OR_RETURN(cache, CalibrationCache::Read(cal.cache));
    // Every tensor it names must be one of this model's; every quantized input must be there.
    std::set<std::string> names;
    for (ValueId v = 0; v < g.num_values(); ++v) names.insert(g.value(v).name);
    std::vector<std::string> unknown, missing;
    for (const auto& [name, r] : cache.ranges)
      if (!names.count(name)) unknown.push_back(name);
    for (const auto& [node, v] : layers)
      if (!cache.ranges.count(g.value(v).name)) missing.push_back(g.value(v).name);
    std::sort(missing.begin(), missing.end());
    missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 8; ++i) s += StrCat(i ? ", '" : "'", v[i], "'");
      if (v.size() > 8) s += StrCat(" and ", v.size() - 8, " more");
      return s;
    };
    if (!unknown.empty())
      return InvalidArgument(cal.cache, ": the calibration cache names tensors this model (optimized) does not have: ",
                             list(unknown), " — was it made for another model or kiln version?");
    if (!missing.empty())
      return InvalidArgument(cal.cache, ": the calibration cache has no range for ", list(missing),
                             ", which INT8 layers read; calibrate again (with data)");
  } else {
    return InvalidArgument("precision int8 needs calibration data or a calibration cache");
  }
  report.calibrator = cache.calibrator;
  for (const auto& [node, v] : layers) {
    const Int8Range& r = cache.ranges.at(g.value(v).name);
    g.node(node).attrs.set(cpu::kInt8Attr, Attr::Floats({r.scale(), r.is_unsigned ? 1.0f : 0.0f}));
    report.ranges[g.value(v).name] = Graph::QuantRange{r.scale(), r.is_unsigned};
    ++report.layers;
  }
  for (ValueId v : extra) {
    auto it = cache.ranges.find(g.value(v).name);
    if (it != cache.ranges.end()) report.extra_ranges[it->first] = Graph::QuantRange{it->second.scale(), it->second.is_unsigned};
  }
  report.tensors = static_cast<int>(cache.ranges.size());
  return report;
}

}  // namespace kiln
