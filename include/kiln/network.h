// kiln public API: define a network layer by layer (for frameworks without an ONNX
// exporter), then build it into an Engine like an imported model.
//
//   #include <kiln/network.h>
//   kiln::NetworkDefinition net;
//   kiln::NetworkTensor x = net.AddInput("input", kiln::DataType::kFloat32, {1, 3, 32, 32});
//   kiln::NetworkTensor c = net.AddConvolution(x, 16, {3, 3}, conv_w, conv_b, {.pads = {1, 1}}, "conv1");
//   kiln::NetworkTensor r = net.AddActivation(c, kiln::ActivationType::kRelu, "relu1");
//   net.MarkOutput(r, "features");
//   auto engine = kiln::BuildFromNetwork(net);          // optimizer + memory planner, as for ONNX
//   if (!engine.ok()) { std::cerr << engine.status().ToString() << "\n"; return 1; }
//   kiln::SavePlan(**engine, "net.plan");
//
// Every Add* checks its arguments and infers the layer's output type at once. On an error
// it returns an invalid NetworkTensor (valid() is false) and records the error, which names
// the layer, e.g. "layer 'conv1' (Convolution): weights have 27 elements, expected 432
// (16x3x3x3)"; status() and BuildFromNetwork return the first such error. A layer that gets an
// invalid tensor fails too, without hiding the first error. Errors are values, never
// exceptions.
//
// Weights are copied when the layer is added: the caller's buffers need not outlive the call.
// Semantics are ONNX's (opset 17) unless a layer says otherwise; layouts are NCHW.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/status.h"

namespace kiln {

// A tensor of one NetworkDefinition: a small value (network id + index) to pass around by
// copy. Default-constructed or returned by a failed Add*, it is invalid.
class KILN_API NetworkTensor {
 public:
  NetworkTensor() = default;
  bool valid() const { return network_ != 0 && index_ >= 0; }

 private:
  friend class NetworkDefinition;
  NetworkTensor(uint64_t network, int32_t index) : network_(network), index_(index) {}
  uint64_t network_ = 0;  // the owning network's id (ids start at 1)
  int32_t index_ = -1;    // the tensor's index in that network
};

// A view of weight values (not owned; copied by the Add* call that receives it).
struct Weights {
  DataType dtype = DataType::kFloat32;
  const void* values = nullptr;  // count elements of dtype (for kString: an array of std::string)
  int64_t count = 0;  // elements; 0 means "none" where weights are optional (a bias)

  Weights() = default;
  Weights(DataType t, const void* v, int64_t n) : dtype(t), values(v), count(n) {}
  Weights(const float* v, int64_t n) : values(v), count(n) {}
  Weights(const std::vector<float>& v) : values(v.data()), count(static_cast<int64_t>(v.size())) {}  // NOLINT: implicit by design
};

enum class ActivationType {
  kRelu,
  kSigmoid,
  kTanh,
  kLeakyRelu,  // alpha: slope for x < 0 (default 0.01)
  kClip,       // alpha: min, beta: max (both required)
  kGelu,       // exact, 0.5 x (1 + erf(x / sqrt 2))
  kGeluTanh,   // tanh approximation
  kSilu,       // x * sigmoid(x) (a.k.a. swish)
  kElu,        // alpha (default 1)
  kSoftplus,
  kHardSigmoid,  // max(0, min(1, alpha x + beta)) (defaults 0.2, 0.5)
};

enum class ElementWiseOp { kAdd, kSub, kMul, kDiv, kMax, kMin, kPow };

enum class PoolingType { kMax, kAverage };

enum class ReduceOp { kSum, kMean, kMax, kMin, kProd, kSumSquare, kL2 };

// Geometry of a convolution. Empty vectors mean the defaults (stride 1, no padding,
// dilation 1). `pads` is either one value per spatial dim (both sides) or ONNX's
// [begin_0, begin_1, ..., end_0, end_1, ...].
struct ConvParams {
  std::vector<int64_t> strides = {};  // "= {}": designated initializers may leave any member out
  std::vector<int64_t> pads = {};
  std::vector<int64_t> dilations = {};
  int64_t groups = 1;
};

// Geometry of a pooling window; empty strides mean stride = window (no overlap).
struct PoolParams {
  std::vector<int64_t> strides = {};
  std::vector<int64_t> pads = {};  // as in ConvParams
  bool ceil_mode = false;
  bool count_include_pad = false;  // average pooling: divide by the full window, pads included
};

class KILN_API NetworkDefinition {
 public:
  NetworkDefinition();
  ~NetworkDefinition();
  NetworkDefinition(NetworkDefinition&&) noexcept;
  NetworkDefinition& operator=(NetworkDefinition&&) noexcept;
  NetworkDefinition(const NetworkDefinition&) = delete;
  NetworkDefinition& operator=(const NetworkDefinition&) = delete;

  // A graph input. -1 in `dims` is a dynamic dimension (fixed at build by
  // BuildOptions::input_shapes, else 1).
  NetworkTensor AddInput(const std::string& name, DataType dtype, const std::vector<int64_t>& dims);
  // A constant tensor of `dims` holding `values` (count must match).
  NetworkTensor AddConstant(const std::vector<int64_t>& dims, const Weights& values, const std::string& name = "");

  // N-d convolution of an [N, C, spatial...] float tensor. weights: [out_channels,
  // C / groups, kernel...] row-major; bias: out_channels values or none.
  NetworkTensor AddConvolution(NetworkTensor input, int64_t out_channels, const std::vector<int64_t>& kernel,
                               const Weights& weights, const Weights& bias = {}, const ConvParams& params = {},
                               const std::string& name = "");
  // y = x W^T + b over the last dim of x ([..., K] -> [..., out_features]); weights are
  // [out_features, K] row-major (PyTorch Linear's layout), bias out_features values or none.
  NetworkTensor AddFullyConnected(NetworkTensor input, int64_t out_features, const Weights& weights,
                                  const Weights& bias = {}, const std::string& name = "");
  // NumPy matmul of two tensors (batch dims broadcast).
  NetworkTensor AddMatrixMultiply(NetworkTensor a, NetworkTensor b, const std::string& name = "");

  NetworkTensor AddActivation(NetworkTensor input, ActivationType type, const std::string& name = "");
  NetworkTensor AddActivation(NetworkTensor input, ActivationType type, float alpha, float beta = 0.0f,
                              const std::string& name = "");
  // NumPy-broadcasting binary op of two tensors of one dtype.
  NetworkTensor AddElementWise(NetworkTensor a, NetworkTensor b, ElementWiseOp op, const std::string& name = "");

  // Max or average pooling over the spatial dims of [N, C, spatial...] with `window`.
  NetworkTensor AddPooling(NetworkTensor input, PoolingType type, const std::vector<int64_t>& window,
                           const PoolParams& params = {}, const std::string& name = "");
  // Pooling over all spatial dims: [N, C, spatial...] -> [N, C, 1, ...].
  NetworkTensor AddGlobalPooling(NetworkTensor input, PoolingType type, const std::string& name = "");

  NetworkTensor AddSoftmax(NetworkTensor input, int axis = -1, const std::string& name = "");
  NetworkTensor AddConcatenation(const std::vector<NetworkTensor>& inputs, int axis, const std::string& name = "");
  // ONNX Reshape: 0 copies the input's dim, -1 is inferred.
  NetworkTensor AddReshape(NetworkTensor input, const std::vector<int64_t>& dims, const std::string& name = "");
  // [d0, ..., d(axis-1), d(axis), ...] -> [d0 * ... * d(axis-1), d(axis) * ...].
  NetworkTensor AddFlatten(NetworkTensor input, int axis = 1, const std::string& name = "");
  NetworkTensor AddTranspose(NetworkTensor input, const std::vector<int64_t>& perm, const std::string& name = "");

  // Inference batch normalization over dim 1 of [N, C, ...]: each has C values.
  NetworkTensor AddBatchNormalization(NetworkTensor input, const Weights& scale, const Weights& bias,
                                      const Weights& mean, const Weights& variance, float epsilon = 1e-5f,
                                      const std::string& name = "");
  // y = x * scale + shift per channel (dim 1 of [N, C, ...]); each has C values, or shift none.
  NetworkTensor AddScale(NetworkTensor input, const Weights& scale, const Weights& shift = {},
                         const std::string& name = "");
  // Normalizes over dims [axis, rank); scale and bias (or none) have as many values as those dims.
  NetworkTensor AddLayerNormalization(NetworkTensor input, const Weights& scale, const Weights& bias = {},
                                      int axis = -1, float epsilon = 1e-5f, const std::string& name = "");
  // Reduces over `axes` (all dims when empty).
  NetworkTensor AddReduce(NetworkTensor input, ReduceOp op, const std::vector<int64_t>& axes, bool keep_dims,
                          const std::string& name = "");

  // Makes `t` a network output named `name` ("" keeps its tensor name). Outputs come in
  // the order they are marked.
  Status MarkOutput(NetworkTensor t, const std::string& name = "");

  // The name, element type and shape (-1 for a dynamic dim) of one of this network's tensors.
  StatusOr<TensorInfo> GetTensorInfo(NetworkTensor t) const;
  // OK, or the first error any call on this network recorded.
  Status status() const;
  int num_layers() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
