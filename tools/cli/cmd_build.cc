// `kiln build MODEL.onnx -o OUT.plan [--shapes NAME=1x3x224x224]... [--disable-pass NAME]...`
// Imports the model, fixes its input shapes, optimizes it, plans its memory and writes a
// plan file (src/plan/FORMAT.md) that `kiln run` loads without the optimizer. The plan is
// loaded back before the command succeeds, so a plan that builds is a plan that loads.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "api/engine_internal.h"
#include "api/model.h"
#include "api/optimize.h"
#include "backends/cpu/cpu_backend.h"
#include "builder/memory_planner.h"
#include "plan/plan_reader.h"
#include "builder/plan_writer.h"
#include "tools/cli/calib_data.h"
#include "tools/cli/commands.h"

namespace kiln::cli {

namespace {

struct BuildArgs {
  std::string model;
  std::string output;
  std::vector<std::string> shapes;
  std::vector<std::string> disabled;
  std::vector<std::string> min_shapes, opt_shapes, max_shapes;
  std::string backend = "cpu";
  int threads = 0;
  std::string precision = "fp32";
  std::string batch_parallel = "auto";
  std::string timing_cache;
  bool strict = false;
  CalibArgs int8;  // --calib, --calib-cache, ...
};

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Phase reports on stderr: a plain line per finished phase (logs, pipes), or on a terminal
// one bar redrawn in place and wiped at the end.
class Progress {
 public:
  explicit Progress(int phases) : phases_(phases), tty_(::isatty(STDERR_FILENO) != 0) {}

  void Begin(const std::string& what) {
    ++phase_;
    what_ = what;
    t0_ = std::chrono::steady_clock::now();
    if (!tty_) return;
    const int width = 20, filled = width * (phase_ - 1) / phases_;
    std::fprintf(stderr, "\r\033[K[%s%s] %d/%d %s...", std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(width - filled), '-').c_str(), phase_, phases_, what_.c_str());
    std::fflush(stderr);
  }
  void End() {
    if (!tty_) std::fprintf(stderr, "kiln build: [%d/%d] %s: %.0f ms\n", phase_, phases_, what_.c_str(), MsSince(t0_));
  }
  // Progress within the phase ("37/500 batches"), on a terminal only.
  void Detail(const std::string& detail) {
    if (!tty_) return;
    const int width = 20, filled = width * (phase_ - 1) / phases_;
    std::fprintf(stderr, "\r\033[K[%s%s] %d/%d %s: %s", std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(width - filled), '-').c_str(), phase_, phases_, what_.c_str(),
                 detail.c_str());
    std::fflush(stderr);
  }
  void Note(const std::string& line) {
    if (tty_) std::fprintf(stderr, "\r\033[K");
    std::fprintf(stderr, "kiln build: %s\n", line.c_str());
  }
  // Clears the bar so what follows starts on a clean line.
  void Finish() {
    if (tty_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  int phases_;
  int phase_ = 0;
  bool tty_;
  std::string what_;
  std::chrono::steady_clock::time_point t0_;
};

std::string Mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / 1048576.0);
  return buf;
}

int Build(const BuildArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool int8 = a.precision == "int8";
  Progress progress(int8 ? 7 : 6);
  auto fail = [&](const std::string& message) {
    progress.Finish();
    std::cerr << "error: " << message << "\n";
    return 1;
  };
  // Flags first: a typo is an error before minutes of import and optimization.
  BuildOptions engine_flags;
  if (Status st = ParseEngineFlags(a.backend, a.precision, a.batch_parallel, &engine_flags); !st.ok())
    return fail(st.message());
  auto parsed_shapes = ParseShapeSpecs(a.shapes);
  if (!parsed_shapes.ok()) return fail(parsed_shapes.status().message());
  const std::map<std::string, std::vector<int64_t>>& shapes = *parsed_shapes;
  if (IsPlanFile(a.model)) return fail(a.model + ": is already a plan; build takes an ONNX model");
  // Profiles: the k-th --min/--opt/--max-shapes of an input belong to profile k.
  std::vector<std::map<std::string, ShapeRange>> profiles;
  auto add_profile_shapes = [&](const std::vector<std::string>& specs, int which) -> Status {
    std::map<std::string, size_t> seen;
    for (const std::string& spec : specs) {
      KILN_ASSIGN_OR_RETURN(auto parsed, ParseShapeSpec(spec));
      const size_t k = seen[parsed.first]++;
      if (profiles.size() <= k) profiles.resize(k + 1);
      ShapeRange& r = profiles[k][parsed.first];
      (which == 0 ? r.min : which == 1 ? r.opt : r.max) = parsed.second;
    }
    return Status::OK();
  };
  for (int w = 0; w < 3; ++w) {
    Status st = add_profile_shapes(w == 0 ? a.min_shapes : w == 1 ? a.opt_shapes : a.max_shapes, w);
    if (!st.ok()) return fail(st.message());
  }
  for (size_t k = 0; k < profiles.size(); ++k)
    for (auto& [name, r] : profiles[k]) {
      if (r.min.empty() || r.max.empty())
        return fail("profile " + std::to_string(k) + ", input '" + name + "': give both --min-shapes and --max-shapes");
      if (r.opt.empty()) r.opt = r.max;
    }

  progress.Begin("import " + a.model);
  auto model = LoadOnnxModel(a.model);
  if (!model.ok()) return fail(model.status().message());
  for (const std::string& w : model->warnings) std::cerr << "warning: " << w << "\n";
  Graph& g = *model->graph;
  progress.End();

  progress.Begin("specialize input shapes");
  if (profiles.empty()) {
    if (Status st = SetInputShapes(g, shapes); !st.ok()) return fail(a.model + ": " + st.message());
  } else {
    BuildOptions po;
    po.profiles = profiles;
    po.input_shapes = shapes;
    if (Status st = SetDynamicProfileInputs(g, po); !st.ok()) return fail(a.model + ": " + st.message());
  }
  progress.End();

  progress.Begin("optimize");
  OptimizeOptions oo;
  oo.disabled_passes = {a.disabled.begin(), a.disabled.end()};
  auto report = OptimizeGraph(g, oo);
  if (!report.ok()) return fail(a.model + ": " + report.status().message());
  progress.End();

  progress.Begin("plan memory");
  // A dynamic graph (profiles) has no single arena: each specialization plans its own; nor
  // has a graph the cpu backend takes only in part (shapes that depend on data, control flow).
  StatusOr<MemoryPlan> mem = PlanEngineMemory(g, !profiles.empty(), /*verify=*/true);
  if (!mem.ok()) return fail(a.model + ": " + mem.status().message());
  progress.End();

  BuildOptions options;
  options.backend = engine_flags.backend;
  options.precision = engine_flags.precision;
  options.batch_parallel = engine_flags.batch_parallel;
  options.threads = a.threads;
  options.timing_cache = a.timing_cache;
  options.profiles = profiles;
  options.strict = a.strict;
  const CalibArgs& c8 = a.int8;
  if (!int8 && (!c8.calib.empty() || !c8.calib_cache.empty()))
    return fail("--calib and --calib-cache go with --precision int8");
  if (int8) {
    BuildOptions::Calibration& cal = options.calibration;
    auto src = SetUpCalibration(g, c8, &cal);
    if (!src.ok()) return fail(a.model + ": --precision int8: " + src.status().message());
    const int total = src->batches;
    const std::string source = src->description;
    progress.Begin(c8.calib.empty() ? "read calibration cache" : "calibrate (" + c8.calibrator + ")");
    const auto tc = std::chrono::steady_clock::now();
    cal.on_batch = [&](int done) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%d/%d batches, %.1f s", done, total, MsSince(tc) / 1000);
      progress.Detail(buf);
    };
    auto q = QuantizeInt8(g, options);
    if (!q.ok()) return fail(a.model + ": " + q.status().message());
    progress.End();
    if (q->calibrated)
      progress.Note("calibrated " + std::to_string(q->tensors) + " tensors on " + source + " with " + q->calibrator +
                    " in " + std::to_string(static_cast<int>(MsSince(tc))) + " ms" +
                    (c8.calib_cache.empty() ? "" : "; cache " + c8.calib_cache));
    if (q->error_all_int8 >= 0) {
      char line[160];
      std::snprintf(line, sizeof line, "accuracy budget %.3g %%: output error %.3g %% with every layer INT8", c8.accuracy_budget_pct,
                    100 * q->error_all_int8);
      std::string msg = line;
      if (!q->kept_fp32.empty()) {
        msg += "; kept FP32, most sensitive first (error when alone INT8):";
        for (size_t i = 0; i < q->kept_fp32.size(); ++i) {
          if (i == 12) {
            msg += " and " + std::to_string(q->kept_fp32.size() - 12) + " more";
            break;
          }
          std::snprintf(line, sizeof line, " %s (%.3g %%)", q->kept_fp32[i].first.c_str(), 100 * q->kept_fp32[i].second);
          msg += line;
        }
        std::snprintf(line, sizeof line, "; now %.3g %%", 100 * q->error_final);
        msg += line;
      }
      progress.Note(msg);
    }
    progress.Note(std::to_string(q->layers) + " layers INT8 (the rest FP32)");
  } else if (!g.quant_ranges.empty()) {
    // A QDQ model: its quantized layers run in INT8 with its scales.
    auto q = QuantizeInt8(g, options);
    if (!q.ok()) return fail(a.model + ": " + q.status().message());
    progress.Note(std::to_string(q->layers) + " layers INT8 with the scales of the model's QuantizeLinear/DequantizeLinear pairs");
  }
  progress.Begin("select kernels (" + a.backend + ")");
  const int64_t arena_bytes = mem->arena_bytes;
  auto engine = MakeEngineFromOptimized(std::shared_ptr<const Graph>(std::move(model->graph)), std::move(*mem), options);
  if (!engine.ok()) return fail(a.model + ": " + engine.status().message());
  progress.End();
  WarnSlowPaths(**engine, a.model);
  progress.Begin("write " + a.output);
  if (Status st = kiln::SavePlan(**engine, a.output); !st.ok()) return fail(st.message());
  // Load it back with the runtime's checks: a plan the runtime would refuse is a build bug,
  // and must not be left behind for someone to deploy.
  auto loaded = LoadPlan(a.output);
  if (!loaded.ok()) {
    std::error_code ec;
    std::filesystem::remove(a.output, ec);
    return fail("internal error: the plan just written does not load: " + loaded.status().message());
  }
  progress.End();
  progress.Finish();

  std::error_code ec;
  const auto onnx_bytes = std::filesystem::file_size(a.model, ec);
  // The arena that runs: the CPU program's (the same placement algorithm as the graph's
  // memory plan, base/arena.h, over the program's own buffers: blocked layouts, reorders).
  std::string arena = Mib(static_cast<double>(arena_bytes)) + " (graph plan)";
  if (const cpu::Program* program = EngineCpuProgram(**engine))
    arena = Mib(static_cast<double>(cpu::ArenaBytes(*program))) + " as run (graph plan " +
            Mib(static_cast<double>(arena_bytes)) + ")";
  std::printf("%s: %d layers, arena %s, plan %s (weights %s; ONNX %s), built in %.0f ms\n", a.output.c_str(),
              report->layers, arena.c_str(),
              Mib(static_cast<double>(loaded->file_bytes)).c_str(),
              Mib(static_cast<double>(loaded->weights_bytes)).c_str(),
              ec ? "?" : Mib(static_cast<double>(onnx_bytes)).c_str(), MsSince(t0));
  return 0;
}

}  // namespace

Command AddBuildCommand(CLI::App& app) {
  auto args = std::make_shared<BuildArgs>();
  CLI::App* cmd = app.add_subcommand("build", "Optimize an ONNX model and write a plan file for `kiln run`");
  cmd->add_option("model", args->model, "ONNX model file")->required()->check(kPath);
  cmd->add_option("-o,--output", args->output, "The plan file to write")->required()->check(kPath);
  cmd->add_option("--shapes", args->shapes,
                  "NAME=1x3x224x224: fix an input's shape (repeatable; other dynamic dims get 1)");
  cmd->add_option("--disable-pass", args->disabled, "Skip an optimizer pass by name (repeatable)");
  cmd->add_option("--min-shapes", args->min_shapes,
                  "NAME=1x3x224x224: smallest shape of a dynamic-shape profile (repeat per input; the k-th of an input is profile k)");
  cmd->add_option("--opt-shapes", args->opt_shapes, "NAME=DIMS: the profile's typical shape, kernels are timed on it (default: max)");
  cmd->add_option("--max-shapes", args->max_shapes, "NAME=DIMS: largest shape of the profile");
  cmd->add_option("--backend", args->backend, "cpu (default) or ref: the backend whose kernels are chosen");
  cmd->add_option("--precision", args->precision,
                  "fp32 (default); bf16 (cpu backend; AVX512-BF16): BF16 convolutions/matmuls with FP32 accumulation; "
                  "int8 (cpu backend; AVX2+, fast with VNNI/AMX): INT8 convolutions, calibrated with --calib or --calib-cache");
  AddCalibrationOptions(cmd, &args->int8);
  cmd->add_option("--batch-parallel", args->batch_parallel,
                  "auto (default: time both schedules), on or off: run a batch > 1 as independent slices, one per thread")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--threads", args->threads, "Threads the kernels are timed with (0 = all cores)");
  cmd->add_flag("--strict", args->strict, kStrictHelp);
  cmd->add_option("--timing-cache", args->timing_cache,
                  "FILE of kernel timings: reused (reproducible kernel choice across builds) and extended")->check(kPath);
  return {cmd, [args] { return Build(*args); }};
}

}  // namespace kiln::cli
