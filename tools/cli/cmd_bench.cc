// `kiln bench MODEL(.onnx|.plan) [--threads N] [--batch B] [--iterations N] [--warmup N]
//   [--shapes NAME=DIMS]... [--json FILE|-] [--profile FILE]`
// Times what a deployment sees: engine load (plan load, or import + optimize + kernel
// selection for an ONNX file), the first inference, then steady-state latency (median, p90,
// p99, min, mean) and single-stream throughput, on seeded random inputs. --profile adds a
// per-layer time table (stdout) and a Chrome trace (chrome://tracing, Perfetto) of the steps.
#include <nlohmann/json.hpp>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include "api/engine_internal.h"
#include "api/model.h"
#include "backends/cpu/cpu_backend.h"
#include "plan/plan_reader.h"
#include "tools/cli/commands.h"

namespace kiln::cli {

namespace {

struct BenchArgs {
  std::string model;
  int threads = 0;
  std::string precision = "fp32";
  std::string batch_parallel = "auto";
  bool peak = false;
  int batch = 0;  // 0: the model's own (dynamic batch dims get 1)
  int iterations = 50;
  int warmup = 5;
  std::vector<std::string> shapes;
  std::string json;
  std::string profile;
  std::string backend = "cpu";
  std::string timing_cache;
  std::string int_range = "0:100";  // integer inputs drawn from [lo, hi) (ORT's harness default)
  bool strict = false;
};

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// numpy's default (linear) percentile of sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(pos), hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

// Resident set size and its peak (MiB) from /proc/self/status; 0 where unavailable.
std::pair<double, double> RssMib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  double rss = 0, peak = 0;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::atof(line.c_str() + 6) / 1024.0;
    if (line.rfind("VmHWM:", 0) == 0) peak = std::atof(line.c_str() + 6) / 1024.0;
  }
  return {rss, peak};
}

// Shapes for an ONNX model's inputs: --shapes, then --batch for a dynamic first dim, then 1.
StatusOr<std::map<std::string, std::vector<int64_t>>> InputShapes(const Graph& g, const BenchArgs& a) {
  std::map<std::string, std::vector<int64_t>> given;
  for (const std::string& s : a.shapes) {
    KILN_ASSIGN_OR_RETURN(auto spec, ParseShapeSpec(s));
    given[spec.first] = spec.second;
  }
  std::map<std::string, std::vector<int64_t>> out;
  for (ValueId v : g.inputs()) {
    const Value& val = g.value(v);
    if (val.constant) continue;
    if (auto it = given.find(val.name); it != given.end()) {
      out[val.name] = it->second;
      given.erase(it);
      continue;
    }
    if (!val.type.is_tensor()) return InvalidArgument("input '", val.name, "' is not a tensor: kiln bench times tensor inputs only");
    std::vector<int64_t> dims;
    const Shape& shape = val.type.shape;
    if (!shape.has_rank()) return InvalidArgument("input '", val.name, "' has unknown rank: give --shapes ", val.name, "=DIMS");
    for (int i = 0; i < shape.rank(); ++i) {
      const Dim& d = shape.dim(i);
      if (d.known()) {
        if (i == 0 && a.batch > 0 && d.value != a.batch)
          return InvalidArgument("input '", val.name, "' has a fixed batch dimension of ", d.value, "; --batch ", a.batch,
                                 " needs a dynamic one (or give --shapes)");
        dims.push_back(d.value);
      } else {
        dims.push_back(i == 0 && a.batch > 0 ? a.batch : 1);
      }
    }
    out[val.name] = dims;
  }
  if (!given.empty()) return InvalidArgument("--shapes: the model has no input named '", given.begin()->first, "'");
  return out;
}

// Seeded random contents: floats in [-1, 1), integers in [lo, hi), booleans.
HostTensor RandomTensor(const TensorInfo& info, std::mt19937& rng, int lo, int hi) {
  HostTensor t = HostTensor::Allocate(info.dtype, info.shape);
  const int64_t n = t.numel();
  std::uniform_real_distribution<float> uf(-1.0f, 1.0f);
  std::uniform_int_distribution<int> ui(lo, hi - 1);
  for (int64_t i = 0; i < n; ++i) {
    switch (info.dtype) {
      case DataType::kFloat32: t.data_as<float>()[i] = uf(rng); break;
      case DataType::kFloat64: t.data_as<double>()[i] = uf(rng); break;
      case DataType::kInt64: t.data_as<int64_t>()[i] = ui(rng); break;
      case DataType::kInt32: t.data_as<int32_t>()[i] = ui(rng); break;
      case DataType::kInt8: t.data_as<int8_t>()[i] = static_cast<int8_t>(ui(rng)); break;
      case DataType::kUInt8: t.data_as<uint8_t>()[i] = static_cast<uint8_t>(ui(rng)); break;
      case DataType::kBool: t.data_as<bool>()[i] = (ui(rng) & 1) != 0; break;
      default: std::memset(t.data(), 0, t.nbytes()); i = n; break;
    }
  }
  return t;
}

struct StepTime {
  int step;
  double ms;
};

#if defined(__x86_64__)
// One core's FP32 multiply-add peak, measured: 12 independent FMA chains on the widest
// vectors the CPU has, ~0.1 s. (The denominator of "% of peak"; a core's real ceiling,
// clocks and all, rather than a datasheet number.)
__attribute__((target("avx512f"))) double PeakAvx512(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(0.0001f);
  const auto t0 = std::chrono::steady_clock::now();
  for (long n = 0; n < iters; ++n)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  alignas(64) float out[16];
  float sink = 0;
  for (int i = 0; i < 12; ++i) {
    _mm512_store_ps(out, acc[i]);
    sink += out[0];
  }
  if (sink == 1234.5f) std::printf(" ");
  return static_cast<double>(iters) * 12 * 32 / s;
}
__attribute__((target("avx2,fma"))) double PeakAvx2(long iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(0.0001f);
  const auto t0 = std::chrono::steady_clock::now();
  for (long n = 0; n < iters; ++n)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  alignas(32) float out[8];
  float sink = 0;
  for (int i = 0; i < 12; ++i) {
    _mm256_store_ps(out, acc[i]);
    sink += out[0];
  }
  if (sink == 1234.5f) std::printf(" ");
  return static_cast<double>(iters) * 12 * 16 / s;
}
#endif

// FLOP/s of one core (0 when unknown), best of three short runs.
double MeasurePeakFlops(std::string* how) {
#if defined(__x86_64__)
  double best = 0;
  const bool avx512 = __builtin_cpu_supports("avx512f");
  if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
  *how = avx512 ? "AVX-512 FMA" : "AVX2 FMA";
  for (int r = 0; r < 3; ++r) best = std::max(best, avx512 ? PeakAvx512(3000000) : PeakAvx2(3000000));
  return best;
#else
  (void)how;
  return 0;
#endif
}

// Multiply-add work of one inference, in FLOPs (2 per multiply-add): convolutions,
// deconvolutions, matmuls and attention, the layers that bound a network's time. 0 when a
// shape is not static (a dynamic engine's graph).
double ModelFlops(const Graph& g) {
  auto dims = [&](ValueId v, std::vector<int64_t>* d) {
    if (v == kNoValue) return false;
    const Value& val = g.value(v);
    if (val.constant) {
      *d = val.constant->dims();
      return true;
    }
    if (!val.type.is_tensor() || !val.type.shape.IsStatic()) return false;
    *d = val.type.shape.Sizes();
    return true;
  };
  auto prod = [](const std::vector<int64_t>& d, size_t from = 0) {
    double p = 1;
    for (size_t i = from; i < d.size(); ++i) p *= static_cast<double>(d[i]);
    return p;
  };
  double flops = 0;
  for (NodeId id = 0; id < g.num_nodes(); ++id) {
    const Node& n = g.node(id);
    if (n.dead || n.inputs.size() < 2 || n.outputs.empty()) continue;
    std::vector<int64_t> a, b, out;
    if (!dims(n.inputs[0], &a) || !dims(n.inputs[1], &b) || !dims(n.outputs[0], &out)) continue;
    // A horizontally fused layer's outputs are split: its whole output is the sum of theirs.
    double out_elems = 0;
    for (ValueId o : n.outputs) {
      std::vector<int64_t> d;
      if (dims(o, &d)) out_elems += prod(d);
    }
    if (n.op_type == "Conv" && b.size() >= 3) {
      flops += 2 * out_elems * prod(b, 1);  // weights [OC, IC/group, k...]
    } else if (n.op_type == "ConvTranspose" && b.size() >= 3 && a.size() >= 2) {
      flops += 2 * prod(a) * static_cast<double>(b[1]) * prod(b, 2);  // weights [IC, OC/group, k...]
    } else if ((n.op_type == "MatMul" || n.op_type == "Gemm") && !a.empty()) {
      auto ta = n.attrs.GetInt("transA", 0);
      const bool trans_a = n.op_type == "Gemm" && ta.ok() && *ta != 0;
      const double k = static_cast<double>(trans_a && a.size() >= 2 ? a[a.size() - 2] : a.back());
      flops += 2 * out_elems * k;
    } else if (n.op_type == "Attention" && n.domain == "kiln" && n.inputs.size() >= 3 && a.size() >= 2 && b.size() >= 2) {
      // softmax(Q K^T) V: [.., Sq, D] x [.., D, Sk] then [.., Sq, Sk] x [.., Sk, Dv]
      const double sk = static_cast<double>(b[b.size() - 2]);
      flops += 2 * prod(a) * sk + 2 * out_elems * sk;
    }
  }
  return flops;
}

int Bench(const BenchArgs& a) {
  auto fail = [&](const std::string& msg) {
    std::cerr << "error: " << a.model << ": " << msg << "\n";
    return 1;
  };
  if (a.backend != "cpu" && a.backend != "ref") return fail("--backend '" + a.backend + "': expected cpu or ref");
  if (!a.profile.empty() && a.backend != "cpu") return fail("--profile needs the cpu backend");
  BuildOptions options;
  if (Status st = ParseEngineFlags(a.backend, a.precision, a.batch_parallel, &options); !st.ok())
    return fail(st.message());
  options.threads = a.threads;
  options.timing_cache = a.timing_cache;
  options.strict = a.strict;
  const auto t0 = std::chrono::steady_clock::now();
  StatusOr<std::shared_ptr<const Engine>> engine = Status::OK();
  const bool is_plan = IsPlanFile(a.model);
  if (is_plan) {
    engine = LoadOrBuild(a.model, options);
  } else {
    auto model = LoadOnnxModel(a.model);
    if (!model.ok()) return fail(model.status().message());
    auto shapes = InputShapes(*model->graph, a);
    if (!shapes.ok()) return fail(shapes.status().message());
    options.input_shapes = *shapes;
    engine = BuildEngineFromGraph(std::move(model->graph), options);
  }
  if (!engine.ok()) return fail(engine.status().message());
  const double load_ms = MsSince(t0);
  const Engine& e = **engine;
  const std::string backend = EngineBackendSummary(e);
  WarnSlowPaths(e, a.model);
  // Weights the kernels use as loaded vs. repacked while loading (a plan's should be none).
  cpu::WeightsPacking packing;
  if (const cpu::Program* p = EngineCpuProgram(e)) packing = cpu::WeightsPackingOf(*p);
  const double flops = ModelFlops(EngineGraph(e));
  // A plan with dynamic dims (profiles): --shapes, else profile 0's opt shapes, with --batch
  // for a dynamic first dimension.
  std::vector<TensorInfo> run_inputs = e.inputs();
  const auto opt = EngineOptShapes(e);
  std::map<std::string, std::vector<int64_t>> given;
  for (const std::string& s : a.shapes) {
    auto spec = ParseShapeSpec(s);
    if (!spec.ok()) return fail(spec.status().message());
    given[spec->first] = spec->second;
  }
  int batch = 0;
  for (TensorInfo& in : run_inputs) {
    const bool dynamic0 = !in.shape.empty() && in.shape[0] < 0;
    if (is_plan && given.count(in.name)) in.shape = given[in.name];
    else if (opt.count(in.name)) in.shape = opt.at(in.name);
    if (dynamic0 && a.batch > 0 && !given.count(in.name)) in.shape[0] = a.batch;
    if (in.shape.empty()) continue;
    if (a.batch > 0 && in.shape[0] != a.batch)
      return fail("input '" + in.name + "' has batch " + std::to_string(in.shape[0]) + " in this plan, not " +
                  std::to_string(a.batch) + " (build the plan with --shapes or a profile for that batch)");
    batch = std::max<int>(batch, static_cast<int>(in.shape[0]));
  }
  if (batch == 0) batch = 1;

  int int_lo = 0, int_hi = 0;
  if (std::sscanf(a.int_range.c_str(), "%d:%d", &int_lo, &int_hi) != 2 || int_hi <= int_lo)
    return fail("--int-range '" + a.int_range + "': expected LO:HI with LO < HI");
  auto ctx = e.CreateContext();
  std::mt19937 rng(1234);
  std::vector<HostTensor> inputs;
  for (size_t i = 0; i < run_inputs.size(); ++i) {
    inputs.push_back(RandomTensor(run_inputs[i], rng, int_lo, int_hi));
    if (Status st = ctx->SetInput(static_cast<int>(i), inputs.back()); !st.ok()) return fail(st.message());
  }
  const auto rss_loaded = RssMib();
  const auto t1 = std::chrono::steady_clock::now();
  if (Status st = ctx->Run(); !st.ok()) return fail(st.message());
  const double first_ms = MsSince(t1);
  for (int i = 0; i < a.warmup; ++i)
    if (Status st = ctx->Run(); !st.ok()) return fail(st.message());
  std::vector<double> lat;
  const auto t2 = std::chrono::steady_clock::now();
  for (int i = 0; i < std::max(1, a.iterations); ++i) {
    const auto t = std::chrono::steady_clock::now();
    if (Status st = ctx->Run(); !st.ok()) return fail(st.message());
    lat.push_back(MsSince(t));
  }
  const double total_ms = MsSince(t2);
  std::vector<double> sorted = lat;
  std::sort(sorted.begin(), sorted.end());
  double mean = 0;
  for (double v : lat) mean += v;
  mean /= static_cast<double>(lat.size());
  const double median = Percentile(sorted, 50), p90 = Percentile(sorted, 90), p99 = Percentile(sorted, 99);
  const double throughput = median > 0 ? 1000.0 * batch / median : 0;
  const auto rss_end = RssMib();

  // Per-step profile: separate runs with a clock around every step (the steady-state runs
  // above are not slowed by it).
  nlohmann::json profile_json;
  std::string profile_table;
  if (!a.profile.empty()) {
    SetProfiling(*ctx, true);
    const int runs = std::max(5, std::min(a.iterations, 20));
    std::vector<ProfiledStep> steps;
    std::vector<std::vector<double>> per;
    for (int r = 0; r < runs; ++r) {
      if (Status st = ctx->Run(); !st.ok()) return fail(st.message());
      auto prof = LastRunProfile(*ctx);
      if (!prof.ok()) return fail("--profile: " + prof.status().message());
      if (r == 0) {
        steps = std::move(*prof);
        per.resize(steps.size());
        for (size_t s = 0; s < steps.size(); ++s) per[s].push_back(steps[s].ms);
        continue;
      }
      if (prof->size() != steps.size()) return fail("--profile: the run's steps changed between runs");
      for (size_t s = 0; s < steps.size(); ++s) per[s].push_back((*prof)[s].ms);
    }
    SetProfiling(*ctx, false);
    std::vector<double> med(steps.size());
    double sum = 0;
    for (size_t s = 0; s < steps.size(); ++s) {
      std::sort(per[s].begin(), per[s].end());
      med[s] = per[s][per[s].size() / 2];
      sum += med[s];
    }
    // Chrome trace: the median step times back to back, one process/thread.
    nlohmann::json events = nlohmann::json::array();
    double ts = 0;
    for (size_t s = 0; s < steps.size(); ++s) {
      events.push_back({{"name", steps[s].name}, {"cat", steps[s].op}, {"ph", "X"}, {"ts", ts * 1000.0},
                        {"dur", med[s] * 1000.0}, {"pid", 0}, {"tid", 0},
                        {"args", {{"impl", steps[s].impl}, {"tactic", steps[s].tactic}, {"step", s},
                                  {"slow_path", steps[s].slow}}}});
      ts += med[s];
    }
    std::ofstream f(a.profile);
    f << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump(1) << "\n";
    if (!f) return fail("--profile: cannot write '" + a.profile + "'");
    // Table: by op type, then the slowest steps.
    std::map<std::string, std::pair<double, int>> by_op;
    for (size_t s = 0; s < steps.size(); ++s) {
      by_op[steps[s].op].first += med[s];
      ++by_op[steps[s].op].second;
    }
    std::vector<std::pair<std::string, std::pair<double, int>>> ops(by_op.begin(), by_op.end());
    std::sort(ops.begin(), ops.end(), [](const auto& x, const auto& y) { return x.second.first > y.second.first; });
    char line[512];
    profile_table += "per-layer profile (median of " + std::to_string(runs) + " runs; sum of steps " +
                     std::to_string(sum).substr(0, std::to_string(sum).find('.') + 3) + " ms" +
                     (backend.find("batch-parallel") != std::string::npos ? "; batch-parallel: one slice on one thread" : "") +
                     ")\n";
    profile_table += "  by op:\n";
    for (const auto& [op, v] : ops) {
      std::snprintf(line, sizeof line, "    %-24s %4d steps %9.3f ms %5.1f%%\n", op.c_str(), v.second, v.first,
                    sum > 0 ? 100.0 * v.first / sum : 0.0);
      profile_table += line;
    }
    std::vector<size_t> order(steps.size());
    for (size_t s = 0; s < order.size(); ++s) order[s] = s;
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return med[x] > med[y]; });
    double slow_ms = 0;
    int slow_n = 0;
    for (size_t s = 0; s < steps.size(); ++s)
      if (steps[s].slow) slow_ms += med[s], ++slow_n;
    std::snprintf(line, sizeof line, "  slow paths (reference implementations, marked *): %d steps, %.3f ms, %.1f%%\n",
                  slow_n, slow_ms, sum > 0 ? 100.0 * slow_ms / sum : 0.0);
    profile_table += line;
    profile_table += "  slowest steps:\n";
    for (size_t r = 0; r < std::min<size_t>(order.size(), 25); ++r) {
      const size_t s = order[r];
      std::snprintf(line, sizeof line, "  %s %4zu %-36.36s %-18.18s %8.3f ms %5.1f%%  %s%s%s\n",
                    steps[s].slow ? "*" : " ", s, steps[s].name.c_str(),
                    steps[s].op.c_str(), med[s], sum > 0 ? 100.0 * med[s] / sum : 0.0, steps[s].impl.c_str(),
                    steps[s].tactic.empty() ? "" : " tactic=", steps[s].tactic.c_str());
      profile_table += line;
    }
    for (size_t s = 0; s < steps.size(); ++s)
      profile_json.push_back({{"step", s}, {"name", steps[s].name}, {"op", steps[s].op}, {"impl", steps[s].impl},
                              {"tactic", steps[s].tactic}, {"median_ms", med[s]},
                              {"slow_path", steps[s].slow}});
  }

  std::string peak_how;
  const double peak = a.peak ? MeasurePeakFlops(&peak_how) : 0;
  const int peak_threads = cpu::EffectiveThreads(a.threads);
  nlohmann::json j = {
      {"model", a.model},
      {"format", is_plan ? "plan" : "onnx"},
      {"backend", backend},
      {"slow_paths", EngineSlowPaths(e)},
      {"batch_parallel", EngineBatchNote(e)},
      {"threads", a.threads},
      {"batch", batch},
      {"load_ms", load_ms},
      {"first_inference_ms", first_ms},
      {"weights_in_place_mib", static_cast<double>(packing.in_place_bytes) / (1 << 20)},
      {"arena_from_plan", EngineCpuProgram(e) != nullptr && cpu::ArenaFromPlan(*EngineCpuProgram(e))},
      {"weights_repacked_mib", static_cast<double>(packing.repacked_bytes) / (1 << 20)},
      {"iterations", static_cast<int>(lat.size())},
      {"warmup", a.warmup},
      {"latency_ms", {{"median", median}, {"p90", p90}, {"p99", p99}, {"min", sorted.front()}, {"mean", mean},
                      {"max", sorted.back()}}},
      {"throughput_per_s", throughput},
      {"gflop_per_run", flops / 1e9},
      {"gflops_per_s", median > 0 ? flops / median / 1e6 : 0.0},
      {"peak_gflops_per_core", peak / 1e9},
      {"throughput_total_per_s", total_ms > 0 ? 1000.0 * batch * static_cast<double>(lat.size()) / total_ms : 0.0},
      {"rss_mib_after_load", rss_loaded.first},
      {"peak_rss_mib", rss_end.second},
  };
  if (!profile_json.is_null()) j["profile"] = profile_json;
  if (!a.json.empty()) {
    if (a.json == "-") {
      std::cout << j.dump(1) << "\n";
      return 0;
    }
    std::ofstream f(a.json);
    f << j.dump(1) << "\n";
    if (!f) return fail("--json: cannot write '" + a.json + "'");
  }
  std::printf("%s: %s, batch %d, threads %s\n", a.model.c_str(), backend.c_str(), batch,
              a.threads > 0 ? std::to_string(a.threads).c_str() : "all");
  if (const std::string note = EngineBatchNote(e); !note.empty()) std::printf("  %s\n", note.c_str());
  std::printf("  load %.1f ms, first inference %.2f ms, RSS after load %.1f MiB (peak %.1f MiB)\n", load_ms, first_ms,
              rss_loaded.first, rss_end.second);
  if (packing.in_place_bytes + packing.repacked_bytes > 0)
    std::printf("  kernel weights: %.1f MiB used as loaded, %.1f MiB repacked while loading\n",
                static_cast<double>(packing.in_place_bytes) / (1 << 20), static_cast<double>(packing.repacked_bytes) / (1 << 20));
  if (const cpu::Program* p = EngineCpuProgram(e))
    std::printf("  activation arena %.2f MiB, %s\n", static_cast<double>(cpu::ArenaBytes(*p)) / (1 << 20),
                cpu::ArenaFromPlan(*p) ? "as the plan placed it" : "placed while loading");
  std::printf("  latency over %zu runs: median %.3f ms, p90 %.3f, p99 %.3f, min %.3f, mean %.3f\n", lat.size(), median, p90,
              p99, sorted.front(), mean);
  std::printf("  throughput %.1f inferences/s\n", throughput);
  if (flops > 0)
    std::printf("  compute %.3f GFLOP per run (conv/matmul multiply-adds x 2): %.1f GFLOP/s at the median\n", flops / 1e9,
                median > 0 ? flops / median / 1e6 : 0.0);
  if (peak > 0 && flops > 0 && median > 0)
    std::printf("  peak: one core %.1f GFLOP/s (%s loop); at %d threads this run reaches %.0f%% of %.1f\n", peak / 1e9,
                peak_how.c_str(), peak_threads, 100.0 * flops / median / 1e6 / (peak_threads * peak / 1e9),
                peak_threads * peak / 1e9);
  if (!profile_table.empty()) std::printf("%s  trace: %s\n", profile_table.c_str(), a.profile.c_str());
  return 0;
}

}  // namespace

Command AddBenchCommand(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Time engine load, first inference, latency and throughput");
  cmd->add_option("model", args->model, "ONNX model or plan file")->required()->check(kPath);
  cmd->add_option("--precision", args->precision, "fp32 (default) or bf16 (cpu backend; AVX512-BF16): BF16 convolutions/matmuls with FP32 accumulation. "
                  "INT8 needs calibration: kiln build --precision int8 --calib DIR, then run the plan (a QDQ model runs "
                  "its quantized layers in INT8 as it is)");
  cmd->add_flag("--peak", args->peak,
                "Also measure one core's FP32 FMA peak and print the run's share of it (for threads cores)");
  cmd->add_option("--batch-parallel", args->batch_parallel,
                  "auto (default: time both schedules), on or off: run a batch > 1 as independent slices, one per thread")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--threads", args->threads, "Threads per inference (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", args->batch, "Batch size for a dynamic first input dimension")->check(CLI::PositiveNumber);
  cmd->add_option("-n,--iterations", args->iterations, "Timed runs (default 50)")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", args->warmup, "Untimed runs after the first inference (default 5)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--shapes", args->shapes, "NAME=1x3x224x224: an input's shape (repeatable; ONNX models)");
  cmd->add_option("--json", args->json, "Write the figures as JSON to FILE ('-': stdout only)")->check(kPath);
  cmd->add_option("--profile", args->profile, "Per-layer time table on stdout and a Chrome trace JSON in FILE")->check(kPath);
  cmd->add_option("--backend", args->backend, "cpu (default) or ref");
  cmd->add_flag("--strict", args->strict, kStrictHelp);
  cmd->add_option("--timing-cache", args->timing_cache, "Kernel timing cache FILE (see kiln build)")->check(kPath);
  cmd->add_option("--int-range", args->int_range, "LO:HI: integer inputs drawn from [LO, HI) (default 0:100, as ORT's harness)");
  return {cmd, [args] { return Bench(*args); }};
}

}  // namespace kiln::cli
