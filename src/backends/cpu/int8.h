// INT8 layers of the CPU backend. The builder marks a convolution for INT8 with the
// kInt8Attr attribute: the scale and signedness its input activation is quantized with
// (from calibration). Its weights quantize here, symmetrically per output channel
// (w_scale[oc] = max|w[oc]| / 127); oneDNN's u8s8/s8s8 convolution accumulates in int32
// and the output scales bring the result back to float — or straight into the INT8 input
// of the next layers, when every reader is an INT8 convolution of the same input scale
// (then no float tensor exists between them).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "base/status.h"
#include "ir/graph.h"
#include "ir/tensor.h"

namespace kiln::cpu {

// Floats {scale, unsigned (0 or 1)}: the layer's input x runs as round(x / scale) in s8
// ([-127, 127]) or u8 ([0, 255]), saturating.
inline constexpr const char* kInt8Attr = "kiln.int8";

struct Int8Quant {
  float scale = 1;
  bool is_unsigned = false;
  bool operator==(const Int8Quant& o) const { return scale == o.scale && is_unsigned == o.is_unsigned; }
};

// The node's INT8 input quantization, or nullopt when it is not marked (or the attribute is
// malformed: such a layer stays float).
std::optional<Int8Quant> Int8InputOf(const Node& node);

// What a marked convolution needs: weights and bias in the kernel's units, the output scales.
struct Int8ConvParams {
  Int8Quant in;
  std::vector<int8_t> weights;  // row-major as the float weights, per output channel scaled
  std::vector<float> w_scales;  // per output channel
  std::vector<float> bias;      // bias / (in.scale * w_scale[oc]): oneDNN 2.x adds the bias
                                // to the int32 accumulator before the output scales
  std::vector<float> out_scales;  // in.scale * w_scale[oc] (/ out scale when out is set)
  std::optional<Int8Quant> out;   // the output written quantized for INT8 readers
};

// `w`: the row-major float weights [OC, ...]; `bias` may be null. `out`: the quantization
// to write the output in (see Int8OutputFor), or nullopt for a float output.
// With `quantize_weights` false, `weights` stays empty (a plan's kernel copy holds them):
// QuantizeConvWeights fills it when needed.
Int8ConvParams PrepareInt8Conv(const Int8Quant& in, const Tensor& w, const Tensor* bias,
                               const std::optional<Int8Quant>& out, bool quantize_weights = true);
void QuantizeConvWeights(const Tensor& w, Int8ConvParams* p);

// The quantization value v can be written in for its readers (v no graph output), nullopt
// when some reader needs floats: every reader is an INT8 convolution reading it as its data
// input, an INT8 concat (one whose output has such a quantization: the pieces take it), or
// a max pooling whose output has one (it pools INT8 values in their scale); the
// convolutions and concats must agree on one quantization. The producer then writes v
// quantized, and no float tensor exists between the INT8 layers.
std::optional<Int8Quant> Int8OutputFor(const Graph& g, ValueId v);

}  // namespace kiln::cpu
