// `kiln compare A B [--inputs DIR] [--batches N] [--shapes NAME=DIMS]... [--threads N] [--json FILE|-]`
// Runs two models or plans (an FP32 ONNX model and its INT8 plan, two plans built with
// different options, ...) on the same inputs and reports how far B's outputs are from A's:
// per output, the largest absolute and relative differences, the mean absolute one, the
// cosine similarity per sample (mean and worst), and for classifier-like outputs ([N, C],
// C >= 2) the share of samples whose top-1 class agrees and whose top-1 is in A's top-5.
// Inputs: a folder as `kiln build --calib` reads it (tensor files or images), or seeded
// random values. Exit code 0 whatever the differences: the numbers are the result.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "api/engine_internal.h"
#include "backends/cpu/int8.h"
#include "api/model.h"
#include "base/file.h"
#include "ir/op_schema.h"
#include "api/optimize.h"
#include "plan/plan_reader.h"
#include "tools/cli/calib_data.h"
#include "tools/cli/commands.h"

namespace kiln::cli {

namespace {

struct CompareArgs {
  std::string a, b;
  std::string inputs;
  int batches = 0;  // 0: all (random inputs: 8)
  std::vector<std::string> shapes;
  int threads = 0;
  std::string json;
  bool per_layer = false;
  std::string html;
  ImagePreprocessOverrides image;
};

// --per-layer: the graph a model or plan runs (an ONNX model optimized as kiln build does;
// a QDQ model's INT8 layers marked), for matching its tensors with the other side's by name.
StatusOr<std::shared_ptr<Graph>> RunGraphOf(const std::string& path, const BuildOptions& options) {
  if (IsPlanFile(path)) {
    KILN_ASSIGN_OR_RETURN(LoadedPlan plan, LoadPlan(path));
    if (!plan.profiles.empty()) return InvalidArgument(path, ": --per-layer takes plans with fixed shapes");
    return std::shared_ptr<Graph>(std::move(plan.graph));
  }
  KILN_ASSIGN_OR_RETURN(OnnxModel model, LoadOnnxModel(path));
  std::shared_ptr<Graph> g = std::move(model.graph);
  KILN_RETURN_IF_ERROR(SetInputShapes(*g, options.input_shapes).WithPrefix(path));
  KILN_RETURN_IF_ERROR(OptimizeGraph(*g).status().WithPrefix(path));
  KILN_RETURN_IF_ERROR(QuantizeInt8(*g, options).status().WithPrefix(path));
  return g;
}

// The engine of `g` with `extra` values as more outputs.
StatusOr<std::shared_ptr<const Engine>> ProbeEngine(const Graph& g, const std::vector<std::string>& extra,
                                                    const BuildOptions& options) {
  auto probe = std::make_shared<Graph>(DeepCopy(g));
  std::set<ValueId> outs(probe->outputs().begin(), probe->outputs().end());
  for (const std::string& name : extra) {
    std::optional<ValueId> v = probe->FindValue(name);
    if (v && outs.insert(*v).second) probe->outputs().push_back(*v);
  }
  BuildOptions po = options;
  po.batch_parallel = BatchParallel::kOff;
  return MakeEngineFromOptimized(probe, MemoryPlan{}, po);
}

struct LayerDiff {
  std::string tensor, op;
  double max_abs = 0, max_ref = 0, xy = 0, xx = 0, yy = 0;
  double cosine() const { return xx == 0 && yy == 0 ? 1.0 : (xx == 0 || yy == 0 ? 0.0 : xy / std::sqrt(xx * yy)); }
};

// An HTML page: the per-layer table and an SVG chart of each layer's 1 - cosine (log scale).
Status WriteHtml(const std::string& path, const std::string& a, const std::string& b, const std::vector<LayerDiff>& rows) {
  auto esc = [](const std::string& t) {
    std::string o;
    for (char c : t) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
    return o;
  };
  std::ostringstream h;
  h << "<!doctype html><html><head><meta charset=\"utf-8\"><title>kiln compare</title><style>"
       "body{font:13px sans-serif;margin:20px}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
       "text-align:right}td:first-child,th:first-child,td:nth-child(2){text-align:left}</style></head><body>";
  h << "<h2>kiln compare, per layer</h2><p>A = " << esc(a) << "<br>B = " << esc(b)
    << "<br>Bars: 1 - cosine(B, A) of each tensor both run (log scale; higher = further apart).</p>";
  const int bar_h = 14, width = 900, left = 360;
  h << "<svg width=\"" << width << "\" height=\"" << rows.size() * bar_h + 30 << "\" xmlns=\"http://www.w3.org/2000/svg\">";
  for (int d = 1; d <= 8; ++d) {  // decades 1e-8 .. 1
    const int x = left + (width - left - 20) * (8 - d) / 8;
    h << "<line x1=\"" << x << "\" y1=\"0\" x2=\"" << x << "\" y2=\"" << rows.size() * bar_h << "\" stroke=\"#eee\"/>"
      << "<text x=\"" << x << "\" y=\"" << rows.size() * bar_h + 14 << "\" font-size=\"10\">1e-" << d << "</text>";
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const double gap = std::max(1e-8, 1.0 - rows[i].cosine());
    const int w = static_cast<int>((width - left - 20) * (8 + std::log10(gap)) / 8);
    const int y = static_cast<int>(i) * bar_h;
    h << "<text x=\"0\" y=\"" << y + 11 << "\" font-size=\"10\">" << esc(rows[i].tensor.substr(0, 58)) << "</text>"
      << "<rect x=\"" << left << "\" y=\"" << y + 2 << "\" width=\"" << std::max(1, w) << "\" height=\"" << bar_h - 4
      << "\" fill=\"" << (gap > 1e-2 ? "#d62728" : gap > 1e-3 ? "#ff7f0e" : "#1f77b4") << "\"><title>" << esc(rows[i].tensor)
      << ": cosine " << rows[i].cosine() << "</title></rect>";
  }
  h << "</svg><table><tr><th>tensor</th><th>layer op (B)</th><th>max |B-A|</th><th>rel to max</th><th>cosine</th></tr>";
  for (const LayerDiff& r : rows)
    h << "<tr><td>" << esc(r.tensor) << "</td><td>" << esc(r.op) << "</td><td>" << r.max_abs << "</td><td>"
      << (r.max_ref > 0 ? r.max_abs / r.max_ref : 0) << "</td><td>" << r.cosine() << "</td></tr>";
  h << "</table></body></html>\n";
  const std::string text = h.str();
  KILN_ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Create(path));
  KILN_RETURN_IF_ERROR(w.Write(text.data(), text.size()));
  return w.Commit();
}

struct OutputDiff {
  int64_t elements = 0;
  double max_abs = 0, sum_abs = 0, max_ref = 0;
  std::vector<double> cosines;  // per sample
  int64_t rows = 0, top1 = 0, top5 = 0;  // classifier rows
};

double Cosine(const float* x, const float* y, int64_t n) {
  double xy = 0, xx = 0, yy = 0;
  for (int64_t i = 0; i < n; ++i) {
    xy += static_cast<double>(x[i]) * y[i];
    xx += static_cast<double>(x[i]) * x[i];
    yy += static_cast<double>(y[i]) * y[i];
  }
  if (xx == 0 && yy == 0) return 1.0;
  if (xx == 0 || yy == 0) return 0.0;
  return xy / std::sqrt(xx * yy);
}

void Accumulate(const HostTensor& ref, const HostTensor& got, OutputDiff* d) {
  const float* x = ref.data_as<float>();
  const float* y = got.data_as<float>();
  const int64_t n = ref.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double e = std::fabs(static_cast<double>(x[i]) - y[i]);
    d->max_abs = std::max(d->max_abs, e);
    d->sum_abs += e;
    d->max_ref = std::max(d->max_ref, std::fabs(static_cast<double>(x[i])));
  }
  d->elements += n;
  const int64_t samples = ref.shape().empty() ? 1 : std::max<int64_t>(1, ref.shape()[0]);
  const int64_t per = samples > 0 ? n / samples : n;
  for (int64_t s = 0; s < samples; ++s) d->cosines.push_back(Cosine(x + s * per, y + s * per, per));
  if (ref.shape().size() == 2 && ref.shape()[1] >= 2) {
    const int64_t c = ref.shape()[1];
    for (int64_t r = 0; r < ref.shape()[0]; ++r) {
      const float* xr = x + r * c;
      const float* yr = y + r * c;
      const int64_t a1 = std::max_element(xr, xr + c) - xr, b1 = std::max_element(yr, yr + c) - yr;
      std::vector<int64_t> idx(static_cast<size_t>(c));
      std::iota(idx.begin(), idx.end(), 0);
      const size_t k = static_cast<size_t>(std::min<int64_t>(5, c));
      std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                        [&](int64_t i, int64_t j) { return xr[i] > xr[j]; });
      ++d->rows;
      d->top1 += a1 == b1;
      d->top5 += std::find(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), b1) != idx.begin() + static_cast<std::ptrdiff_t>(k);
    }
  }
}

int Compare(const CompareArgs& a) {
  auto fail = [](const std::string& m) {
    std::cerr << "error: " << m << "\n";
    return 1;
  };
  BuildOptions options;
  options.threads = a.threads;
  auto shapes = ParseShapeSpecs(a.shapes);
  if (!shapes.ok()) return fail(shapes.status().message());
  options.input_shapes = *shapes;
  auto ea = LoadOrBuild(a.a, options);
  if (!ea.ok()) return fail(ea.status().message());
  auto eb = LoadOrBuild(a.b, options);
  if (!eb.ok()) return fail(eb.status().message());
  std::vector<CalibrationInput> inputs;
  for (const TensorInfo& t : (*ea)->inputs()) {
    if (t.kind != ValueKind::kTensor) return fail(a.a + ": input '" + t.name + "' is not a tensor; compare takes tensor inputs");
    for (int64_t d : t.shape)
      if (d < 0) return fail(a.a + ": input '" + t.name + "' has a dynamic shape: give it with --shapes");
    inputs.push_back({t.name, t.dtype, t.shape});
  }
  std::function<StatusOr<bool>(std::map<std::string, HostTensor>*)> next;
  std::string source;
  if (!a.inputs.empty()) {
    auto src = CalibrationBatches(a.inputs, inputs, a.image);
    if (!src.ok()) return fail(src.status().message());
    next = src->next;
    source = a.inputs + ": " + src->description;
  } else {
    auto rng = std::make_shared<std::mt19937>(1234);
    auto count = std::make_shared<int>(0);
    const int limit = a.batches > 0 ? a.batches : 8;
    next = [inputs, rng, count, limit](std::map<std::string, HostTensor>* out) -> StatusOr<bool> {
      if ((*count)++ >= limit) return false;
      for (const CalibrationInput& in : inputs) {
        HostTensor t = HostTensor::Allocate(in.dtype, in.shape);
        if (in.dtype != DataType::kFloat32) return InvalidArgument("input '", in.name, "' is not float: give --inputs");
        std::normal_distribution<float> nd;
        for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = nd(*rng);
        (*out)[in.name] = std::move(t);
      }
      return true;
    };
    source = "seeded random N(0,1) inputs";
  }
  // --per-layer: the tensors both sides compute (same name, float, same shape), in B's order.
  std::vector<LayerDiff> layers;
  std::shared_ptr<const Engine> pa, pb;
  if (a.per_layer) {
    auto ga = RunGraphOf(a.a, options);
    if (!ga.ok()) return fail(ga.status().message());
    auto gb = RunGraphOf(a.b, options);
    if (!gb.ok()) return fail(gb.status().message());
    auto order = (*gb)->TopologicalOrder();
    if (!order.ok()) return fail(a.b + ": " + order.status().message());
    std::vector<std::string> names;
    for (NodeId n : *order) {
      const Node& node = (*gb)->node(n);
      for (ValueId v : node.outputs) {
        if (v == kNoValue) continue;
        const Value& vb = (*gb)->value(v);
        std::optional<ValueId> va = (*ga)->FindValue(vb.name);
        if (!va || vb.type.dtype != DType::kFloat32 || !vb.type.shape.IsStatic()) continue;
        const Value& x = (*ga)->value(*va);
        if (x.constant || x.type.dtype != DType::kFloat32 || !x.type.shape.IsStatic() || x.type.shape.Sizes() != vb.type.shape.Sizes())
          continue;
        names.push_back(vb.name);
        LayerDiff d;
        d.tensor = vb.name;
        d.op = node.op_type + (IsFusedNode(node) ? "+" : "");
        if (node.attrs.has(cpu::kInt8Attr)) d.op += " (int8)";
        layers.push_back(d);
      }
    }
    if (names.empty()) return fail("--per-layer: the two models share no tensor name (different optimizations or models?)");
    auto ea2 = ProbeEngine(**ga, names, options);
    if (!ea2.ok()) return fail(a.a + ": " + ea2.status().message());
    auto eb2 = ProbeEngine(**gb, names, options);
    if (!eb2.ok()) return fail(a.b + ": " + eb2.status().message());
    pa = *ea2;
    pb = *eb2;
  }
  std::map<std::string, OutputDiff> diffs;
  int batches = 0;
  std::map<std::string, HostTensor> batch;
  while (a.batches <= 0 || batches < a.batches) {
    batch.clear();
    auto more = next(&batch);
    if (!more.ok()) return fail(more.status().message());
    if (!*more) break;
    auto ra = (*ea)->Infer(batch);
    if (!ra.ok()) return fail(a.a + ": " + ra.status().message());
    auto rb = (*eb)->Infer(batch);
    if (!rb.ok()) return fail(a.b + ": " + rb.status().message());
    if (a.per_layer) {
      auto la = pa->Infer(batch);
      if (!la.ok()) return fail(a.a + ": " + la.status().message());
      auto lb = pb->Infer(batch);
      if (!lb.ok()) return fail(a.b + ": " + lb.status().message());
      for (LayerDiff& d : layers) {
        auto ia = la->find(d.tensor), ib = lb->find(d.tensor);
        if (ia == la->end() || ib == lb->end() || ia->second.numel() != ib->second.numel()) continue;
        const float* x = ia->second.data_as<float>();
        const float* y = ib->second.data_as<float>();
        for (int64_t i = 0; i < ia->second.numel(); ++i) {
          d.max_abs = std::max(d.max_abs, std::fabs(static_cast<double>(x[i]) - y[i]));
          d.max_ref = std::max(d.max_ref, std::fabs(static_cast<double>(x[i])));
          d.xy += static_cast<double>(x[i]) * y[i];
          d.xx += static_cast<double>(x[i]) * x[i];
          d.yy += static_cast<double>(y[i]) * y[i];
        }
      }
    }
    for (const auto& [name, ta] : *ra) {
      auto it = rb->find(name);
      if (it == rb->end() || ta.dtype() != DataType::kFloat32 || it->second.dtype() != DataType::kFloat32) continue;
      if (ta.shape() != it->second.shape()) return fail("output '" + name + "' has different shapes in the two models");
      Accumulate(ta, it->second, &diffs[name]);
    }
    ++batches;
  }
  if (batches == 0) return fail("no inputs to compare on");
  if (diffs.empty()) return fail("the two models share no float output (by name)");
  nlohmann::json j;
  j["a"] = a.a;
  j["b"] = a.b;
  j["inputs"] = source;
  j["batches"] = batches;
  std::printf("kiln compare: B = %s vs A = %s on %d batches (%s)\n", a.b.c_str(), a.a.c_str(), batches, source.c_str());
  std::printf("%-28s %12s %12s %12s %10s %10s %8s %8s\n", "output", "max |B-A|", "rel to max", "mean |B-A|", "cos mean",
              "cos min", "top-1", "top-5");
  for (auto& [name, d] : diffs) {
    std::sort(d.cosines.begin(), d.cosines.end());
    const double cmean = std::accumulate(d.cosines.begin(), d.cosines.end(), 0.0) / static_cast<double>(d.cosines.size());
    const double rel = d.max_ref > 0 ? d.max_abs / d.max_ref : 0;
    const double mean = d.elements ? d.sum_abs / static_cast<double>(d.elements) : 0;
    char t1[32] = "-", t5[32] = "-";
    if (d.rows) {
      std::snprintf(t1, sizeof t1, "%.1f%%", 100.0 * static_cast<double>(d.top1) / static_cast<double>(d.rows));
      std::snprintf(t5, sizeof t5, "%.1f%%", 100.0 * static_cast<double>(d.top5) / static_cast<double>(d.rows));
    }
    std::printf("%-28s %12.4g %12.4g %12.4g %10.6f %10.6f %8s %8s\n", name.c_str(), d.max_abs, rel, mean, cmean,
                d.cosines.front(), t1, t5);
    nlohmann::json o;
    o["max_abs"] = d.max_abs;
    o["max_abs_rel_to_max"] = rel;
    o["mean_abs"] = mean;
    o["cosine_mean"] = cmean;
    o["cosine_min"] = d.cosines.front();
    o["samples"] = d.cosines.size();
    if (d.rows) {
      o["top1_agreement"] = static_cast<double>(d.top1) / static_cast<double>(d.rows);
      o["top5_agreement"] = static_cast<double>(d.top5) / static_cast<double>(d.rows);
    }
    j["outputs"][name] = o;
  }
  if (a.per_layer) {
    std::printf("\nper layer (%zu tensors both compute, in B's order; cosine over all batches):\n", layers.size());
    std::printf("%-48s %-22s %12s %12s %10s\n", "tensor", "layer op (B)", "max |B-A|", "rel to max", "cosine");
    for (const LayerDiff& d : layers) {
      std::printf("%-48s %-22s %12.4g %12.4g %10.6f\n", d.tensor.substr(0, 48).c_str(), d.op.substr(0, 22).c_str(), d.max_abs,
                  d.max_ref > 0 ? d.max_abs / d.max_ref : 0, d.cosine());
      nlohmann::json l;
      l["tensor"] = d.tensor;
      l["op"] = d.op;
      l["max_abs"] = d.max_abs;
      l["cosine"] = d.cosine();
      j["layers"].push_back(l);
    }
    if (!a.html.empty()) {
      if (Status st = WriteHtml(a.html, a.a, a.b, layers); !st.ok()) return fail(st.message());
      std::printf("wrote %s\n", a.html.c_str());
    }
  }
  if (!a.json.empty()) {
    if (a.json == "-") {
      std::cout << j.dump(1) << "\n";
    } else {
      std::ofstream f(a.json);
      f << j.dump(1) << "\n";
      if (!f) return fail(a.json + ": cannot write");
    }
  }
  return 0;
}

}  // namespace

Command AddCompareCommand(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand("compare", "Run two models/plans on the same inputs and report how B's outputs differ from A's");
  cmd->add_option("a", args->a, "Reference model or plan (e.g. the FP32 ONNX model)")->required()->check(kPath);
  cmd->add_option("b", args->b, "Model or plan to judge (e.g. an INT8 plan)")->required()->check(kPath);
  cmd->add_option("--inputs", args->inputs,
                  "A folder of inputs as `kiln build --calib` reads it (tensor files or images); default: seeded random")
      ->check(kPath);
  cmd->add_option("--batches", args->batches, "Compare on at most this many batches (random inputs: default 8)");
  cmd->add_option("--shapes", args->shapes, "NAME=DIMS for inputs with dynamic dims (both models)");
  cmd->add_option("--threads", args->threads, "Threads per inference (0 = all cores)");
  cmd->add_option("--json", args->json, "Also write the figures as JSON to FILE (- for stdout)");
  cmd->add_flag("--per-layer", args->per_layer,
                "Also compare every intermediate tensor both run (same name after optimization), to see where "
                "B departs from A (B's INT8 layers then write float outputs, so chained INT8 layers requantize)");
  cmd->add_option("--html", args->html, "With --per-layer: write the table and a chart as an HTML page")->check(kPath);
  cmd->add_option_function<std::vector<double>>("--mean", [args](const std::vector<double>& v) { args->image.mean = v; },
                                                "Images: per-channel mean (as kiln build --calib-mean)")
      ->delimiter(',');
  cmd->add_option_function<std::vector<double>>("--std", [args](const std::vector<double>& v) { args->image.std = v; },
                                                "Images: per-channel std (as kiln build --calib-std)")
      ->delimiter(',');
  return {cmd, [args] { return Compare(*args); }};
}

}  // namespace kiln::cli
