// Precision "int8": which layers quantize, their activation ranges (calibration or a
// cache), and the kiln.int8 marks the CPU backend compiles (backends/cpu/int8.h).
//
// Calibration runs the optimized FP32 graph — the very graph the INT8 engine is compiled
// from, so the tensors measured are the tensors quantized, after BN folding and fusion —
// on the CPU backend with every quantized layer's input made an extra graph output, and
// feeds each batch's values into per-tensor statistics (builder/calibrator.h).
#include <algorithm>
#include <cmath>
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

using Batch = std::map<std::string, HostTensor>;

StatusOr<CalibrationCache> Calibrate(const Graph& g, const std::vector<std::pair<NodeId, ValueId>>& layers,
                                     const std::vector<ValueId>& extra, const BuildOptions& options,
                                     std::vector<Batch>* holdout) {
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
  po.batch_parallel = BatchParallel::kOff;
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
    if (holdout && holdout->size() < static_cast<size_t>(std::max(0, cal.holdout_batches))) {
      holdout->push_back(std::move(batch));  // kept apart: the accuracy budget is measured on these
      continue;
    }
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
  if (done == 0)
    return InvalidArgument("calibration: no calibration batches were given",
                           holdout && !holdout->empty() ? StrCat(" beyond the ", holdout->size(), " held out for the accuracy budget") : "");
  CalibrationCache cache;
  cache.calibrator = CalibratorName(which);
  CalibratorOptions co;
  co.calibrator = which;
  co.percentile = cal.percentile;
  for (const auto& [name, s] : stats) cache.ranges[name] = ComputeRange(s, co);
  return cache;
}

// Runs `g` on the batches; the float outputs of each, flattened.
StatusOr<std::vector<std::vector<float>>> RunOutputs(std::shared_ptr<const Graph> g, const std::vector<Batch>& batches,
                                                     const BuildOptions& options) {
  BuildOptions po;
  po.threads = options.threads;
  po.batch_parallel = BatchParallel::kOff;
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Engine> engine, MakeEngineFromOptimized(std::move(g), MemoryPlan{}, po));
  std::vector<std::vector<float>> out;
  for (const Batch& b : batches) {
    KILN_ASSIGN_OR_RETURN(auto result, engine->Infer(b));
    std::vector<float> flat;
    for (const auto& [name, t] : result)
      if (t.dtype() == DataType::kFloat32) flat.insert(flat.end(), t.data_as<float>(), t.data_as<float>() + t.numel());
    out.push_back(std::move(flat));
  }
  return out;
}

// Mean over batches of |y - ref| / |ref| (L2).
double RelativeError(const std::vector<std::vector<float>>& y, const std::vector<std::vector<float>>& ref) {
  double sum = 0;
  for (size_t b = 0; b < ref.size(); ++b) {
    double d = 0, r = 0;
    for (size_t i = 0; i < ref[b].size() && i < y[b].size(); ++i) {
      d += (static_cast<double>(y[b][i]) - ref[b][i]) * (static_cast<double>(y[b][i]) - ref[b][i]);
      r += static_cast<double>(ref[b][i]) * ref[b][i];
    }
    sum += r > 0 ? std::sqrt(d / r) : std::sqrt(d);
  }
  return ref.empty() ? 0 : sum / static_cast<double>(ref.size());
}

// The accuracy budget: which layers stay FP32 (their marks removed from `g`).
Status FitAccuracyBudget(Graph& g, const std::vector<std::pair<NodeId, ValueId>>& layers, const std::vector<Batch>& holdout,
                         const BuildOptions& options, Int8Report* report) {
  const double budget = options.calibration.accuracy_budget;
  if (holdout.empty()) return InvalidArgument("the accuracy budget needs held-out batches (holdout_batches > 0)");
  auto unmarked = std::make_shared<Graph>(DeepCopy(g));
  for (const auto& [node, v] : layers) unmarked->node(node).attrs.erase(cpu::kInt8Attr);
  KILN_ASSIGN_OR_RETURN(auto ref, RunOutputs(unmarked, holdout, options));
  // The error with the layers in `fp32` kept FP32.
  auto error_with = [&](const std::set<NodeId>& fp32) -> StatusOr<double> {
    auto trial = std::make_shared<Graph>(DeepCopy(g));
    for (NodeId n : fp32) trial->node(n).attrs.erase(cpu::kInt8Attr);
    KILN_ASSIGN_OR_RETURN(auto y, RunOutputs(trial, holdout, options));
    return RelativeError(y, ref);
  };
  std::set<NodeId> none;
  KILN_ASSIGN_OR_RETURN(report->error_all_int8, error_with(none));
  report->error_final = report->error_all_int8;
  if (report->error_all_int8 <= budget) return Status::OK();
  // Sensitivity: each layer alone in INT8.
  std::vector<std::pair<double, NodeId>> sens;
  std::set<NodeId> all;
  for (const auto& [node, v] : layers) all.insert(node);
  for (const auto& [node, v] : layers) {
    std::set<NodeId> others = all;
    others.erase(node);
    KILN_ASSIGN_OR_RETURN(double e, error_with(others));
    sens.emplace_back(e, node);
  }
  std::sort(sens.begin(), sens.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  // The fewest most-sensitive layers in FP32 that fit (binary search on their number; the
  // error falls, not always monotonically, as layers go back to FP32: the result is checked).
  size_t lo = 1, hi = sens.size();
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    std::set<NodeId> fp32;
    for (size_t i = 0; i < mid; ++i) fp32.insert(sens[i].second);
    KILN_ASSIGN_OR_RETURN(double e, error_with(fp32));
    if (e <= budget) hi = mid;
    else lo = mid + 1;
  }
  std::set<NodeId> fp32;
  for (size_t i = 0; i < lo; ++i) {
    fp32.insert(sens[i].second);
    g.node(sens[i].second).attrs.erase(cpu::kInt8Attr);
    report->kept_fp32.emplace_back(g.node(sens[i].second).name, sens[i].first);
  }
  KILN_ASSIGN_OR_RETURN(report->error_final, error_with(fp32));
  report->layers -= static_cast<int>(lo);
  return Status::OK();
}

}  // namespace

StatusOr<Int8Report> QuantizeInt8(Graph& g, const BuildOptions& options, const std::vector<ValueId>& extra) {
  Int8Report report;
  if (!g.quant_ranges.empty() && options.backend == Backend::kCpu && options.calibration.cache.empty() &&
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
  if (options.precision != Precision::kInt8) return report;
  if (options.backend != Backend::kCpu) return InvalidArgument("precision int8 needs the cpu backend");
  if (!options.profiles.empty())
    return Unimplemented("precision int8 with shape profiles: calibrate a build with fixed input shapes");
  KILN_RETURN_IF_ERROR(cpu::CheckPrecision("int8"));
  const BuildOptions::Calibration& cal = options.calibration;
  const auto layers = Int8Layers(g, cal.keep_fp32);
  CalibrationCache cache;
  std::vector<Batch> holdout;
  if (cal.accuracy_budget < 0 || !std::isfinite(cal.accuracy_budget))
    return InvalidArgument("accuracy budget ", cal.accuracy_budget, " is not a non-negative number");
  if (cal.accuracy_budget > 0 && !cal.next_batch)
    return InvalidArgument("an accuracy budget needs calibration data (held-out batches measure it)");
  if (cal.next_batch) {
    KILN_ASSIGN_OR_RETURN(cache, Calibrate(g, layers, extra, options, cal.accuracy_budget > 0 ? &holdout : nullptr));
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
  if (cal.accuracy_budget > 0) KILN_RETURN_IF_ERROR(FitAccuracyBudget(g, layers, holdout, options, &report));
  for (ValueId v : extra) {
    auto it = cache.ranges.find(g.value(v).name);
    if (it != cache.ranges.end()) report.extra_ranges[it->first] = Graph::QuantRange{it->second.scale(), it->second.is_unsigned};
  }
  report.tensors = static_cast<int>(cache.ranges.size());
  return report;
}

}  // namespace kiln
