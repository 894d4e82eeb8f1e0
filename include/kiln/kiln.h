// kiln public API: load a model, run inference. Nothing else to set up.
//
//   #include <kiln/kiln.h>
//   auto engine = kiln::Engine::Load("resnet50.plan");          // or "resnet50.onnx"
//   if (!engine.ok()) { std::cerr << engine.status().ToString() << "\n"; return 1; }
//   std::vector<float> image(1 * 3 * 224 * 224);
//   auto outputs = (*engine)->Infer({{"input", kiln::HostTensor::Wrap(image.data(), {1, 3, 224, 224})}});
//   if (!outputs.ok()) { std::cerr << outputs.status().ToString() << "\n"; return 1; }
//   const kiln::HostTensor& logits = outputs->at("logits");
//
// An Engine is immutable and shared by any number of threads; each thread that runs it
// concurrently uses its own ExecutionContext (Engine::Infer makes a temporary one).
// Errors are values (Status / StatusOr), never exceptions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "kiln/status.h"

namespace kiln {

// Every ONNX tensor element type the reference backend computes (values are ONNX's
// TensorProto.DataType). kString: each element is a std::string (any bytes; ops that read
// text want UTF-8); a string HostTensor holds std::string objects, not raw bytes.
enum class DataType : int {
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kComplex64 = 14,   // interleaved (real, imaginary) float32 pairs
  kComplex128 = 15,  // interleaved float64 pairs
  kBFloat16 = 16,    // bit pattern (uint16) of the upper half of a float32
};

const char* DataTypeName(DataType t);
// Bytes per element; sizeof(std::string) for kString.
size_t DataTypeSize(DataType t);

// A dense, row-major tensor in host memory: either owning its bytes or a view of the
// caller's buffer (Wrap: no copy; the caller keeps the buffer alive while it is used).
// A kString tensor's elements are std::string objects: Allocate constructs them (empty),
// Wrap takes an array of them.
class HostTensor {
 public:
  HostTensor() = default;
  static HostTensor Allocate(DataType dtype, std::vector<int64_t> shape);
  static HostTensor Wrap(DataType dtype, std::vector<int64_t> shape, void* data);
  static HostTensor Wrap(float* data, std::vector<int64_t> shape) { return Wrap(DataType::kFloat32, std::move(shape), data); }
  template <typename T>
  static HostTensor Copy(DataType dtype, std::vector<int64_t> shape, const std::vector<T>& values);

  DataType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * DataTypeSize(dtype_); }
  void* data() { return data_; }
  const void* data() const { return data_; }
  template <typename T>
  T* data_as() { return static_cast<T*>(data_); }
  template <typename T>
  const T* data_as() const { return static_cast<const T*>(data_); }
  bool defined() const { return data_ != nullptr || numel() == 0; }

 private:
  DataType dtype_ = DataType::kFloat32;
  std::vector<int64_t> shape_;
  std::shared_ptr<void> owner_;  // null for a view
  void* data_ = nullptr;
};

// What a graph input or output holds: a tensor, a sequence of tensors (ONNX
// sequence(tensor)), or an ONNX optional of either (which may hold no value).
enum class ValueKind : int { kTensor, kSequence, kOptionalTensor, kOptionalSequence };
const char* ValueKindName(ValueKind k);  // "tensor", "sequence", "optional(tensor)", ...

// A graph input or output: name, kind, element type, shape (-1 for a dynamic dimension).
// For sequences and optionals, dtype and shape describe the tensors inside; `has_rank`
// false: the rank is not known (shape is empty then).
struct TensorInfo {
  std::string name;
  DataType dtype = DataType::kFloat32;
  std::vector<int64_t> shape;
  ValueKind kind = ValueKind::kTensor;
  bool has_rank = true;
};

// The shapes one input takes within a profile: every dimension d with min <= d <= max; the
// kernels are chosen (timed) for opt.
struct ShapeRange {
  std::vector<int64_t> min, opt, max;
};

struct BuildOptions {
  // Concrete shapes for inputs with dynamic dims ("input" -> {1, 3, 224, 224}); inputs
  // not listed get 1 for every dynamic dim.
  std::map<std::string, std::vector<int64_t>> input_shapes;
  bool optimize = true;  // run the graph optimizer
  // "cpu": oneDNN and kiln's fast kernels (layers they do not cover run the reference
  // kernels); "ref": the reference backend only (the oracle; slow).
  std::string backend = "cpu";
  int threads = 0;  // threads per inference; 0 = all cores
  // "fp32", or "bf16" (cpu backend, CPUs with AVX512-BF16/AMX): convolutions and matmuls
  // with constant weights compute in BF16 with FP32 accumulation; the rest stays FP32.
  // "int8" (cpu backend): convolutions compute in INT8 — weights symmetric per output
  // channel, activations with the ranges of `calibration` — and layers without an INT8
  // kernel stay FP32.
  std::string precision = "fp32";
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
  // Batch-parallel schedule (cpu backend, static shapes, batch > 1, threads > 1): run the
  // batch as independent slices, one per thread, each slice's layers single-threaded,
  // instead of splitting every layer across the threads. Only for graphs proven not to mix
  // samples. "auto": the builder times both schedules and keeps the faster (a plan records
  // the choice); "on": slice whenever the graph allows; "off": never.
  std::string batch_parallel = "auto";
  // Every layer on a fast kernel, or no engine: a layer that would run on a reference
  // implementation (kiln's reference kernels, oneDNN's ref:any), or a graph the cpu backend
  // cannot take at all, is a build error naming each such layer and why. Off: they run,
  // and Engine::SlowPaths() lists them.
  bool strict = false;
};

// A model's graph inputs and outputs as its file declares them (an .onnx model: after type
// inference, -1 for dynamic dimensions; a plan: as built), without building anything.
struct ModelSignature {
  std::vector<TensorInfo> inputs, outputs;
};
StatusOr<ModelSignature> ReadSignature(const std::string& path);

class ExecutionContext;

class Engine {
 public:
  // A .plan file (detected by its contents) or an .onnx model, which is built first.
  static StatusOr<std::shared_ptr<const Engine>> Load(const std::string& path, const BuildOptions& options = {});
  // Builds from an ONNX model file.
  static StatusOr<std::shared_ptr<const Engine>> BuildFromOnnx(const std::string& path, const BuildOptions& options = {});
  static StatusOr<std::shared_ptr<const Engine>> Build(const class NetworkDefinition& network, const BuildOptions& options = {});  // kiln/network.h

  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;

  // Writes this engine as a plan file (atomically: a failure leaves no file behind), which
  // Load() later reads in milliseconds without the optimizer.
  Status Save(const std::string& plan_path) const;

  // A context for one thread at a time; any number may exist per engine.
  std::unique_ptr<ExecutionContext> CreateContext() const;
  // One-shot inference on named inputs (every input must be given); outputs by name.
  StatusOr<std::map<std::string, HostTensor>> Infer(const std::map<std::string, HostTensor>& inputs) const;

  struct Impl;
  explicit Engine(std::shared_ptr<const Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

class ExecutionContext {
 public:
  ~ExecutionContext();
  // Binds an input by name or index; its dtype and shape are checked against the engine.
  // The bytes are read during Run(), not copied here.
  Status SetInput(const std::string& name, const HostTensor& t);
  Status SetInput(int index, const HostTensor& t);
  // Binds a sequence input (kSequence or kOptionalSequence): its elements, each checked
  // against the element type; all of one dtype. Read during Run(), not copied here.
  Status SetInputSequence(const std::string& name, const std::vector<HostTensor>& elements);
  Status SetInputSequence(int index, const std::vector<HostTensor>& elements);
  // Binds "no value" to an optional input (an optional input left unbound has none too).
  Status SetInputNone(const std::string& name);
  Status SetInputNone(int index);
  // Binds a caller buffer for an output (dtype and shape checked against what Run()
  // produces): Run() writes that output there — on the CPU backend straight from the last
  // kernel, without a copy — and Output() returns a view of it. Unbound outputs are
  // returned as new tensors.
  Status SetOutput(const std::string& name, const HostTensor& t);
  Status SetOutput(int index, const HostTensor& t);
  Status Run();
  // Output of the last Run(), by name or index (a view of the bound buffer, if any).
  StatusOr<HostTensor> Output(const std::string& name) const;
  StatusOr<HostTensor> Output(int index) const;
  // A sequence output of the last Run() (its elements, copied out).
  StatusOr<std::vector<HostTensor>> OutputSequence(const std::string& name) const;
  StatusOr<std::vector<HostTensor>> OutputSequence(int index) const;
  // Whether an optional output of the last Run() holds no value (false for other kinds).
  StatusOr<bool> OutputIsNone(const std::string& name) const;
  StatusOr<bool> OutputIsNone(int index) const;

  struct State;
  explicit ExecutionContext(std::unique_ptr<State> state);
  State& state() { return *state_; }

 private:
  std::unique_ptr<State> state_;
};

template <typename T>
HostTensor HostTensor::Copy(DataType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  HostTensor t = Allocate(dtype, std::move(shape));
  if constexpr (std::is_same_v<T, std::string>) {
    if (dtype == DataType::kString) {
      const size_t n = std::min(values.size(), static_cast<size_t>(t.numel()));
      std::copy(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(n), t.template data_as<std::string>());
      return t;
    }
  }
  const size_t n = std::min(values.size() * sizeof(T), t.nbytes());
  const char* src = reinterpret_cast<const char*>(values.data());
  std::copy(src, src + n, static_cast<char*>(t.data()));
  return t;
}

}  // namespace kiln
