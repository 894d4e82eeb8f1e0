// `kiln run MODEL.onnx|MODEL.plan [FILE...] [--input NAME=FILE]... [--output-dir DIR]`
// Imports the model (or loads a plan from `kiln build`, recognized by its magic bytes), runs
// it on the chosen backend (the fast CPU backend unless --backend ref) and writes one .npy
// per output. Inputs' shapes specialize the model's dynamic dimensions.
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "api/engine_internal.h"
#include "api/model.h"
#include "api/optimize.h"
#include "api/tensor_io.h"
#include "backends/cpu/cpu_backend.h"
#include "plan/plan_reader.h"
#include "tools/cli/commands.h"

namespace kiln::cli {

namespace {

struct RunArgs {
  std::string model;
  std::vector<std::string> positional;
  std::vector<std::string> named;
  std::string output_dir;
  int iterations = 1;
  bool optimize = false;     // --optimize: the reference backend runs the optimized graph
  bool no_optimize = false;  // --no-optimize: the CPU backend runs the graph as imported
  std::string backend = "cpu";
  int threads = 0;
  std::string precision = "fp32";
  std::string batch_parallel;  // "": a plan's recorded choice; off for an ONNX model (one run: no timing)
  bool strict = false;
};

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

StatusOr<RValue> ReadInput(const Value& v, const std::string& path) {
  auto r = ReadValueFile(path, &v.type);
  if (!r.ok()) return r.status().WithPrefix(StrCat("input '", v.name, "' (", v.type.ToString(), ")"));
  return r;
}

StatusOr<std::vector<RValue>> BindInputs(const Graph& g, const RunArgs& a) {
  const size_t n = g.inputs().size();
  std::vector<RValue> inputs(n);
  std::vector<bool> bound(n, false);
  if (a.positional.size() > n)
    return InvalidArgument("the model takes ", n, " inputs, but ", a.positional.size(), " input files were given");
  for (size_t i = 0; i < a.positional.size(); ++i) {
    const Value& v = g.value(g.inputs()[i]);
    KILN_ASSIGN_OR_RETURN(inputs[i], ReadInput(v, a.positional[i]));
    bound[i] = true;
  }
  for (const std::string& spec : a.named) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) return InvalidArgument("--input '", spec, "': expected NAME=FILE");
    std::string name = spec.substr(0, eq);
    size_t idx = n;
    for (size_t i = 0; i < n; ++i)
      if (g.value(g.inputs()[i]).name == name) idx = i;
    if (idx == n) {
      std::string names;
      for (ValueId v : g.inputs()) names += (names.empty() ? "" : ", ") + g.value(v).name;
      return InvalidArgument("--input '", spec, "': the model has no input named '", name, "' (inputs: ", names, ")");
    }
    if (bound[idx]) return InvalidArgument("input '", name, "' is given twice");
    const Value& v = g.value(g.inputs()[idx]);
    KILN_ASSIGN_OR_RETURN(inputs[idx], ReadInput(v, spec.substr(eq + 1)));
    bound[idx] = true;
  }
  for (size_t i = 0; i < n; ++i) {
    if (bound[i]) continue;
    const Value& v = g.value(g.inputs()[i]);
    if (v.type.kind == TypeInfo::Kind::kOptional) continue;  // an absent optional input
    return InvalidArgument("input '", v.name, "' (", v.type.ToString(), ") is missing: pass it as a positional file or --input ",
                           v.name, "=FILE");
  }
  return inputs;
}

// The engine's graph (constants shared) in the importer's wrapper: binds the inputs.
OnnxModel ModelOfEngine(const Engine& e) {
  OnnxModel m;
  m.graph = std::make_unique<Graph>(EngineGraph(e));
  m.producer = "kiln plan";
  return m;
}

// A plan's graph in the importer's wrapper, so both kinds of file run the same way.
StatusOr<OnnxModel> LoadPlanAsModel(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(LoadedPlan plan, LoadPlan(path));
  KILN_RETURN_IF_ERROR(cpu::UnpackWeights(*plan.graph).WithPrefix(path));  // the reference reads row-major
  OnnxModel m;
  m.graph = std::move(plan.graph);  // its constants keep the file mapped
  m.producer = "kiln " + plan.kiln_version;
  return m;
}

int Run(const RunArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  const bool is_plan = IsPlanFile(a.model);
  // A plan run on the CPU backend is loaded once, as the engine; its graph binds the inputs.
  StatusOr<std::shared_ptr<const Engine>> plan_engine = Status::OK();
  const bool have_plan_engine = is_plan && a.backend == "cpu";
  if (have_plan_engine) {
    BuildOptions po;
    po.threads = a.threads;
    po.strict = a.strict;
    if (Status st = ParseEngineFlags("", a.precision, a.batch_parallel, &po); !st.ok()) {
      std::cerr << "error: " << st.message() << "\n";
      return 1;
    }
    plan_engine = LoadOrBuild(a.model, po);
    if (!plan_engine.ok()) {
      std::cerr << "error: " << plan_engine.status().message() << "\n";
      return 1;
    }
  }
  auto model = have_plan_engine ? StatusOr<OnnxModel>(ModelOfEngine(**plan_engine))
                                : is_plan ? LoadPlanAsModel(a.model) : LoadOnnxModel(a.model);
  if (!model.ok()) {
    std::cerr << "error: " << model.status().message() << "\n";
    return 1;
  }
  for (const std::string& w : model->warnings) std::cerr << "warning: " << w << "\n";
  if (a.backend != "cpu" && a.backend != "ref") {
    std::cerr << "error: --backend '" << a.backend << "': expected cpu or ref\n";
    return 1;
  }
  if (a.optimize && a.backend == "ref" && !is_plan) {  // a plan is optimized already
    auto report = OptimizeGraph(*model->graph);
    if (!report.ok()) {
      std::cerr << "error: " << a.model << ": " << report.status().message() << "\n";
      return 1;
    }
  }
  double load_ms = MsSince(t0);
  const std::vector<TypeInfo> declared = model->declared_outputs;
  std::shared_ptr<Graph> graph(std::move(model->graph));  // shared with the engine (cpu backend)
  const Graph& g = *graph;
  auto inputs = BindInputs(g, a);
  if (!inputs.ok()) {
    std::cerr << "error: " << a.model << ": " << inputs.status().message() << "\n";
    return 1;
  }
  std::vector<double> times;
  StatusOr<std::vector<RValue>> outs = std::vector<RValue>{};
  std::string backend = "reference backend";
  if (a.backend == "cpu") {
    // The engine path: shapes from the inputs, optimizer, CPU backend (layers it lacks run
    // the reference kernels; graphs it cannot take at all run on the reference backend).
    auto t1 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < inputs->size(); ++i) {
      Status st = CheckInputMatches(g.value(g.inputs()[i]), (*inputs)[i]);
      if (!st.ok()) {
        std::cerr << "error: " << a.model << ": " << st.message() << "\n";
        return 1;
      }
    }
    BuildOptions options;
    options.backend = Backend::kCpu;
    options.threads = a.threads;
    options.batch_parallel = is_plan ? BatchParallel::kAuto : BatchParallel::kOff;
    if (Status st = ParseEngineFlags("", a.precision, a.batch_parallel, &options); !st.ok()) {
      std::cerr << "error: " << st.message() << "\n";
      return 1;
    }
    options.optimize = !a.no_optimize && !is_plan;
    options.strict = a.strict;
    if (!is_plan)
      for (size_t i = 0; i < inputs->size(); ++i)
        if ((*inputs)[i].is_tensor() && g.value(g.inputs()[i]).type.is_tensor())
          options.input_shapes[g.value(g.inputs()[i]).name] = (*inputs)[i].tensor.dims();
    auto engine = have_plan_engine ? plan_engine : is_plan ? LoadOrBuild(a.model, options) : BuildEngineFromGraph(graph, options);
    if (!engine.ok()) {
      std::cerr << "error: " << a.model << ": " << engine.status().message() << "\n";
      return 1;
    }
    load_ms += MsSince(t1);
    backend = EngineBackendSummary(**engine);
    WarnSlowPaths(**engine, a.model);
    auto ctx = (*engine)->CreateContext();
    auto wrap = [](Tensor& t) { return HostTensor::Wrap(static_cast<DataType>(static_cast<int>(t.dtype())), t.dims(), t.raw_data()); };
    for (size_t i = 0; i < inputs->size(); ++i) {
      RValue& v = (*inputs)[i];
      Status st = Status::OK();
      if (v.is_tensor()) {
        st = ctx->SetInput(static_cast<int>(i), wrap(v.tensor));
      } else if (v.is_sequence()) {
        std::vector<HostTensor> elems;
        for (Tensor& t : v.sequence) elems.push_back(wrap(t));
        st = ctx->SetInputSequence(static_cast<int>(i), elems);
      } else {
        st = ctx->SetInputNone(static_cast<int>(i));
      }
      if (!st.ok()) {
        std::cerr << "error: " << a.model << ": " << st.message() << "\n";
        return 1;
      }
    }
    Status st = Status::OK();
    for (int it = 0; it < std::max(1, a.iterations) && st.ok(); ++it) {
      auto t2 = std::chrono::steady_clock::now();
      st = ctx->Run();
      times.push_back(MsSince(t2));
    }
    if (!st.ok()) {
      outs = st;
    } else {
      auto to_tensor = [](const HostTensor& h) {
        Tensor t(static_cast<DType>(static_cast<int>(h.dtype())), h.shape());
        if (h.dtype() == DataType::kString)
          std::copy(h.data_as<std::string>(), h.data_as<std::string>() + h.numel(), t.data<std::string>());
        else if (t.nbytes() > 0)
          std::memcpy(t.raw_data(), h.data(), t.nbytes());
        return t;
      };
      std::vector<RValue> results;
      for (size_t i = 0; i < (*engine)->outputs().size() && outs.ok(); ++i) {
        const int index = static_cast<int>(i);
        const ValueKind kind = (*engine)->outputs()[i].kind;
        auto none = ctx->OutputIsNone(index);
        if (!none.ok()) {
          outs = none.status();
        } else if (*none) {
          results.push_back(RValue::None());
        } else if (kind == ValueKind::kSequence || kind == ValueKind::kOptionalSequence) {
          auto seq = ctx->OutputSequence(index);
          if (!seq.ok()) {
            outs = seq.status();
            break;
          }
          std::vector<Tensor> items;
          for (const HostTensor& h : *seq) items.push_back(to_tensor(h));
          results.push_back(RValue::Sequence(std::move(items)));
        } else {
          auto h = ctx->Output(index);
          if (!h.ok()) {
            outs = h.status();
            break;
          }
          results.emplace_back(to_tensor(*h));
        }
      }
      if (outs.ok()) outs = std::move(results);
    }
  } else {
    if (have_plan_engine) {  // the engine's graph keeps its weights packed: row-major for the reference
      Status st = cpu::UnpackWeights(*graph);
      if (!st.ok()) {
        std::cerr << "error: " << a.model << ": " << st.message() << "\n";
        return 1;
      }
    }
    for (int it = 0; it < std::max(1, a.iterations); ++it) {
      auto t1 = std::chrono::steady_clock::now();
      outs = RunReference(g, *inputs);
      times.push_back(MsSince(t1));
      if (!outs.ok()) break;
    }
  }
  if (!outs.ok()) {
    std::cerr << "error: " << a.model << ": " << outs.status().message() << "\n";
    return 1;
  }
  if (!a.output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(a.output_dir, ec);
    if (ec) {
      std::cerr << "error: cannot create output directory '" << a.output_dir << "': " << ec.message() << "\n";
      return 1;
    }
  }
  for (size_t i = 0; i < outs->size(); ++i) {
    const Value& out = g.value(g.outputs()[i]);
    const RValue& v = (*outs)[i];
    if (v.is_tensor())
      std::printf("%s: %s %s\n", out.name.c_str(), DTypeName(v.tensor.dtype()), DimsToString(v.tensor.dims()).c_str());
    else
      std::printf("%s: %s\n", out.name.c_str(), v.is_sequence() ? StrCat("sequence of ", v.sequence.size()).c_str() : "none");
    if (!a.output_dir.empty()) {
      // The model's declared type where it gives the kind (inference may give a broader one).
      const TypeInfo& type = i < declared.size() && (declared[i].kind != TypeInfo::Kind::kTensor ||
                                                     declared[i].dtype != DType::kUndefined)
                                 ? declared[i]
                                 : out.type;
      auto path = WriteValueFile(a.output_dir, i, out.name, v, type);
      if (!path.ok()) {
        std::cerr << "error: " << path.status().message() << "\n";
        return 1;
      }
    }
  }
  std::sort(times.begin(), times.end());
  std::fprintf(stderr, "load %.1f ms, inference %.2f ms (median of %zu; %s)\n", load_ms, times[times.size() / 2],
               times.size(), backend.c_str());
  return 0;
}

}  // namespace

Command AddRunCommand(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Run a model on given inputs and write its outputs as .npy");
  cmd->add_option("model", args->model, "ONNX model or plan file (from `kiln build`)")->required()->check(kPath);
  cmd->add_option("inputs", args->positional,
                  "Input files, bound to graph inputs in order: .npy (a tensor; strings as a unicode array; a uint16 "
                  "array for a bfloat16 input holds its bit patterns) or .pb (a TensorProto, SequenceProto or "
                  "OptionalProto, as the input's type calls for)");
  cmd->add_option("-i,--input", args->named, "NAME=FILE: bind an input by name (repeatable)");
  cmd->add_option("-o,--output-dir", args->output_dir,
                  "Write DIR/<i>_<name>.npy per tensor output (bfloat16 as uint16 bit patterns), DIR/<i>_<name>.pb "
                  "(SequenceProto / OptionalProto) per sequence or optional output")
      ->check(kPath);
  cmd->add_option("--backend", args->backend, "cpu (default: oneDNN and kiln's kernels) or ref (the reference backend, slow)");
  cmd->add_option("--precision", args->precision, "fp32 (default) or bf16 (cpu backend; AVX512-BF16): BF16 convolutions/matmuls with FP32 accumulation. "
                  "INT8 needs calibration: kiln build --precision int8 --calib DIR, then run the plan (a QDQ model runs "
                  "its quantized layers in INT8 as it is)");
  cmd->add_option("--batch-parallel", args->batch_parallel,
                  "auto, on or off: run a batch > 1 as independent slices, one per thread (default: a plan's "
                  "recorded choice; off for an ONNX model, whose one run would not repay timing the schedules)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--threads", args->threads, "Threads per inference (cpu backend; 0 = all cores)");
  cmd->add_flag("-O,--optimize", args->optimize, "Optimize the graph (fusion, folding) first; always on for --backend cpu");
  cmd->add_flag("--no-optimize", args->no_optimize, "cpu backend: run the graph as imported");
  cmd->add_flag("--strict", args->strict, kStrictHelp);
  cmd->add_option("-n,--iterations", args->iterations, "Run N times and report the median time")->check(CLI::PositiveNumber);
  return {cmd, [args] { return Run(*args); }};
}

}  // namespace kiln::cli
