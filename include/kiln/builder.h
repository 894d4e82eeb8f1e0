// kiln public API, builder: import an ONNX model or define a network layer by layer,
// optimize it, choose its kernels by timing them on this machine, and save the result as a
// plan that the runtime (kiln/runtime.h) loads in milliseconds. Link kiln::kiln (libkiln).
//
//   #include <kiln/builder.h>
//   kiln::BuildOptions options;
//   options.input_shapes["input"] = {1, 3, 224, 224};
//   auto engine = kiln::BuildFromOnnx("resnet50.onnx", options);
//   if (!engine.ok()) { std::cerr << engine.status().ToString() << "\n"; return 1; }
//   if (kiln::Status st = kiln::SavePlan(**engine, "resnet50.plan"); !st.ok()) { ... }
#pragma once

#include "kiln/runtime.h"

namespace kiln {

// The arithmetic a build may lower layers to (BuildOptions::precision).
enum class Precision : int { kFp32 = 0, kBf16 = 1, kFp16 = 2, kInt8 = 3 };
// "fp32", "bf16", "fp16", "int8", and the parser (an unknown name lists the known ones).
KILN_API const char* PrecisionName(Precision precision);
KILN_API StatusOr<Precision> ParsePrecision(const std::string& name);

// The shapes one input takes within a profile: every dimension d with min <= d <= max; the
// kernels are chosen (timed) for opt.
struct ShapeRange {
  std::vector<int64_t> min, opt, max;
};

// Everything a build decides; the LoadOptions part (backend, threads, batch_parallel,
// strict) means what it means for Engine::Load, and kAuto batch_parallel times the schedules.
struct BuildOptions : LoadOptions {
  // Concrete shapes for inputs with dynamic dims ("input" -> {1, 3, 224, 224}); inputs
  // not listed get 1 for every dynamic dim.
  std::map<std::string, std::vector<int64_t>> input_shapes;
  bool optimize = true;  // run the graph optimizer
  // kFp32, or kBf16 (cpu backend, CPUs with AVX512-BF16/AMX): convolutions and matmuls
  // with constant weights compute in BF16 with FP32 accumulation; the rest stays FP32.
  // kInt8 (cpu backend): convolutions compute in INT8 — weights symmetric per output
  // channel, activations with the ranges of `calibration` — and layers without an INT8
  // kernel stay FP32. kFp16 is refused with the reason (no FP16 kernels on these CPUs).
  Precision precision = Precision::kFp32;
  // INT8 calibration (precision "int8"): each quantized activation's range comes from
  // running the FP32 model on representative batches, or from a calibration cache written
  // by an earlier calibration (then no data is needed).
  struct Calibration {
    // Fills the next batch, one tensor per graph input at the built shapes, and returns
    // true; false when there are no more; an error fails the build. Unset: the ranges come
    // from `cache`, which must exist.
    std::function<StatusOr<bool>(std::map<std::string, HostTensor>* batch)> next_batch;
    std::string calibrator = "entropy";  // "entropy" (KL divergence), "percentile", "minmax"
    double percentile = 99.99;           // for "percentile"
    int max_batches = 0;                 // read at most this many batches (0: all)
    // A calibration cache file (text: tensor, threshold, s8/u8): written after calibrating
    // with next_batch; read when next_batch is unset.
    std::string cache;
    // Layers (node names) that stay FP32.
    std::vector<std::string> keep_fp32;
    // Mixed precision by measurement: the largest output error allowed, relative (0.005 =
    // 0.5 %: mean over held-out batches of |y_int8 - y_fp32| / |y_fp32|, L2 over all float
    // outputs). The first `holdout_batches` batches are kept apart from calibration; each
    // layer's error when it alone runs INT8 ranks the layers, and the most sensitive stay
    // FP32 until the whole fits. 0: every layer INT8. Needs next_batch.
    double accuracy_budget = 0;
    int holdout_batches = 8;
    // Called after each batch with the number done (progress display).
    std::function<void(int batches_done)> on_batch;
  } calibration;
  // A timing-cache file: the builder reuses the kernel timings it holds (so two builds
  // choose the same kernels) and adds the ones it measures. Empty: time afresh.
  std::string timing_cache;
  // Dynamic shapes (TensorRT's optimization profiles): each profile gives, per input, a
  // range of shapes. Dimensions whose range is not a single value become dynamic; the
  // engine serves any shapes inside some profile (specializing its kernels for each new
  // shape on first use, cached) and refuses others with a message naming the profiles.
  // Empty: input shapes are fixed at build (input_shapes).
  std::vector<std::map<std::string, ShapeRange>> profiles;
  // (batch_parallel, LoadOptions: run the batch as independent slices, one per thread, each
  // slice's layers single-threaded, instead of splitting every layer across the threads;
  // only for graphs proven not to mix samples. kAuto: the builder times both schedules and
  // keeps the faster, and the plan records the choice.)
  // (strict, LoadOptions: a graph the cpu backend cannot take at all is refused too.)
};

class NetworkDefinition;  // kiln/network.h

// Builds an engine from an ONNX model file (import, shape inference, the optimizer, INT8
// calibration when asked, kernel choice by timing). Errors name the file and the node.
KILN_API StatusOr<std::shared_ptr<const Engine>> BuildFromOnnx(const std::string& onnx_path, const BuildOptions& options = {});
// Builds an engine from a network defined layer by layer (kiln/network.h).
KILN_API StatusOr<std::shared_ptr<const Engine>> BuildFromNetwork(const NetworkDefinition& network, const BuildOptions& options = {});
// A plan (loaded as Engine::Load does, with the options' LoadOptions part) or an ONNX model
// (built with all of them): what `kiln run MODEL` does.
KILN_API StatusOr<std::shared_ptr<const Engine>> LoadOrBuild(const std::string& path, const BuildOptions& options = {});
// Writes an engine as a plan file (atomically: a failure leaves no file behind): the
// optimized graph, weights packed in the chosen kernels' layouts, the kernel choices, the
// memory plan. Engine::Load reads it in milliseconds, without the builder.
KILN_API Status SavePlan(const Engine& engine, const std::string& plan_path);

}  // namespace kiln
