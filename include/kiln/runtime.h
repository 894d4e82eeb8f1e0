// kiln public API, runtime: load a plan, run inference. Nothing else to set up.
//
//   #include <kiln/runtime.h>                              // link kiln::runtime (libkiln_runtime)
//   auto engine = kiln::Engine::Load("resnet50.plan");
//   if (!engine.ok()) { std::cerr << engine.status().ToString() << "\n"; return 1; }
//   std::vector<float> image(1 * 3 * 224 * 224);
//   auto outputs = (*engine)->Infer({{"input", kiln::HostTensor::Wrap(image.data(), {1, 3, 224, 224})}});
//   if (!outputs.ok()) { std::cerr << outputs.status().ToString() << "\n"; return 1; }
//   const kiln::HostTensor& logits = outputs->at("logits");
//
// The runtime (libkiln_runtime) reads plans that `kiln build` or kiln/builder.h wrote; it
// holds no ONNX importer, optimizer, memory planner or kernel timing. libkiln (kiln::kiln,
// kiln/kiln.h) is the runtime plus the builder; with it Engine::Load also takes an .onnx
// model (built with default BuildOptions).
//
// An Engine is immutable and shared by any number of threads; each thread that runs it
// concurrently uses its own ExecutionContext (Engine::Infer makes a temporary one).
// Errors are values (Status / StatusOr), never exceptions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
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

KILN_API const char* DataTypeName(DataType t);
// Bytes per element; sizeof(std::string) for kString.
KILN_API size_t DataTypeSize(DataType t);

// A dense, row-major tensor in host memory: either owning its bytes or a view of the
// caller's buffer (Wrap: no copy; the caller keeps the buffer alive while it is used).
// A kString tensor's elements are std::string objects: Allocate constructs them (empty),
// Wrap takes an array of them.
class KILN_API HostTensor {
 public:
  HostTensor() = default;
  // A new tensor (64-byte aligned; kString: empty strings). When the size overflows or the
  // memory cannot be had, the result is not defined() (check it for large requests).
  static HostTensor Allocate(DataType dtype, std::vector<int64_t> shape);
  static HostTensor Wrap(DataType dtype, std::vector<int64_t> shape, void* data);
  static HostTensor Wrap(float* data, std::vector<int64_t> shape) { return Wrap(DataType::kFloat32, std::move(shape), data); }
  // A new tensor holding `values` (as elements of dtype, which must be T's size); when
  // `values` has fewer elements than the shape, the rest are zero (extra values are ignored).
  template <typename T>
  static HostTensor Copy(DataType dtype, std::vector<int64_t> shape, const std::vector<T>& values);

  DataType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  // Elements (the product of the dims; 1 for a scalar); -1 when a dim is negative or the
  // product overflows int64.
  int64_t numel() const;
  // Bytes of the elements (0 when numel() is -1).
  size_t nbytes() const { return numel() < 0 ? 0 : static_cast<size_t>(numel()) * DataTypeSize(dtype_); }
  void* data() { return data_; }
  const void* data() const { return data_; }
  template <typename T>
  T* data_as() { return static_cast<T*>(data_); }
  template <typename T>
  const T* data_as() const { return static_cast<const T*>(data_); }
  // Whether the tensor has its bytes (a view, an allocation, or no elements at all).
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
KILN_API const char* ValueKindName(ValueKind k);  // "tensor", "sequence", "optional(tensor)", ...

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

// What executes an engine. kCpu: oneDNN and kiln's fast kernels (a layer they do not cover
// runs the reference kernels, and is reported as a slow path); kRef: the reference backend
// only (the oracle; slow).
enum class Backend : int { kCpu = 0, kRef = 1 };
// Batch-parallel schedule (cpu backend, batch > 1, threads > 1): run the batch as
// independent slices, one per thread. kAuto: a plan's recorded choice (the builder times
// both schedules); kOn: slice whenever the graph allows; kOff: never.
enum class BatchParallel : int { kAuto = 0, kOn = 1, kOff = 2 };
// Names ("cpu", "ref"; "auto", "on", "off") and their parsers, for command lines and
// bindings (an unknown name is an error listing the known ones).
KILN_API const char* BackendName(Backend backend);
KILN_API StatusOr<Backend> ParseBackend(const std::string& name);
KILN_API const char* BatchParallelName(BatchParallel mode);
KILN_API StatusOr<BatchParallel> ParseBatchParallel(const std::string& name);

// What Engine::Load does with a plan (none of it changes the plan's kernels or math).
struct LoadOptions {
  Backend backend = Backend::kCpu;
  int threads = 0;  // threads per inference; 0 = all cores
  BatchParallel batch_parallel = BatchParallel::kAuto;
  // Every layer on a fast kernel, or no engine: a layer that would run on a reference
  // implementation is an error naming each such layer and why.
  bool strict = false;
};

// A model's graph inputs and outputs as its file declares them (a plan: as built; an .onnx
// model, when the builder is linked: after type inference, -1 for dynamic dimensions),
// without building anything.
struct ModelSignature {
  std::vector<TensorInfo> inputs, outputs;
};
KILN_API StatusOr<ModelSignature> ReadSignature(const std::string& path);

namespace internal {
struct EngineAccess;  // kiln's own code reaches an engine's and a context's internals through it
}  // namespace internal

class ExecutionContext;

class KILN_API Engine {
 public:
  // A .plan file (detected by its contents; an .onnx model too when the builder is linked:
  // libkiln, not libkiln_runtime). Errors name the file and the part at fault.
  static StatusOr<std::shared_ptr<const Engine>> Load(const std::string& path, const LoadOptions& options = {});
  // (Building options do not silently lose their building part: use kiln::LoadOrBuild.)
  template <typename Options>
  static StatusOr<std::shared_ptr<const Engine>> Load(const std::string& path, const Options& options) = delete;

  // The graph inputs the caller binds and the outputs a run produces, in order.
  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;

  // A context for one thread at a time; any number may exist per engine.
  std::unique_ptr<ExecutionContext> CreateContext() const;
  // One-shot inference on named inputs (every input must be given); outputs by name.
  StatusOr<std::map<std::string, HostTensor>> Infer(const std::map<std::string, HostTensor>& inputs) const;

  struct Impl;  // opaque
  ~Engine();

 private:
  friend struct internal::EngineAccess;
  explicit Engine(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

class KILN_API ExecutionContext {
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

  struct State;  // opaque

 private:
  friend struct internal::EngineAccess;
  explicit ExecutionContext(std::unique_ptr<State> state);
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
  if (!t.defined()) return t;
  const size_t n = std::min(values.size() * sizeof(T), t.nbytes());
  if (n > 0) std::memcpy(t.data(), values.data(), n);
  if (t.nbytes() > n) std::memset(static_cast<char*>(t.data()) + n, 0, t.nbytes() - n);
  return t;
}

}  // namespace kiln
