#include "backends/cpu/int8.h"

#include <algorithm>
#include <cmath>

#include "ir/op_schema.h"

namespace kiln::cpu {

std::optional<Int8Quant> Int8InputOf(const Node& node) {
  const Attr* a = node.attrs.find(kInt8Attr);
  if (a == nullptr || a->type != Attr::Type::kFloats || a->floats.size() != 2) return std::nullopt;
  const float scale = a->floats[0];
  if (!(scale > 0) || !std::isfinite(scale)) return std::nullopt;
  return Int8Quant{scale, a->floats[1] != 0};
}

Int8ConvParams PrepareInt8Conv(const Int8Quant& in, const Tensor& w, const Tensor* bias,
                               const std::optional<Int8Quant>& out, bool quantize_weights) {
  Int8ConvParams p;
  p.in = in;
  p.out = out;
  const int64_t oc = w.dim(0);
  const int64_t per = oc > 0 ? w.numel() / oc : 0;
  const float* wf = w.data<float>();
  p.w_scales.resize(static_cast<size_t>(oc));
  p.out_scales.resize(static_cast<size_t>(oc));
  if (bias) p.bias.resize(static_cast<size_t>(oc));
  for (int64_t o = 0; o < oc; ++o) {
    const float* row = wf + o * per;
    float amax = 0;
    for (int64_t i = 0; i < per; ++i) amax = std::max(amax, std::fabs(row[i]));
    const float ws = amax > 0 ? amax / 127.0f : 1.0f;
    p.w_scales[static_cast<size_t>(o)] = ws;
    const float acc_scale = in.scale * ws;  // one unit of the int32 accumulator, in real units
    if (bias) p.bias[static_cast<size_t>(o)] = bias->data<float>()[o] / acc_scale;
    p.out_scales[static_cast<size_t>(o)] = out ? acc_scale / out->scale : acc_scale;
  }
  if (quantize_weights) QuantizeConvWeights(w, &p);
  return p;
}

void QuantizeConvWeights(const Tensor& w, Int8ConvParams* p) {
  const int64_t oc = w.dim(0);
  const int64_t per = oc > 0 ? w.numel() / oc : 0;
  const float* wf = w.data<float>();
  p->weights.resize(static_cast<size_t>(w.numel()));
  for (int64_t o = 0; o < oc; ++o) {
    const float ws = p->w_scales[static_cast<size_t>(o)];
    const float* row = wf + o * per;
    int8_t* q = p->weights.data() + o * per;
    for (int64_t i = 0; i < per; ++i) q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(row[i] / ws), -127.0f, 127.0f));
  }
}

namespace {

bool OnnxOp(const Node& n, const char* op) { return n.op_type == op && (n.domain.empty() || n.domain == "ai.onnx"); }

// Int8OutputFor, with `soft`: set when the answer comes only from max poolings (which take
// any scale and keep it: their readers rescale), not from a reader that needs that scale.
std::optional<Int8Quant> OutputFor(const Graph& g, ValueId v, int depth, bool* soft) {
  const Value& val = g.value(v);
  *soft = false;
  if (depth > 8 || val.consumers.empty() || val.type.dtype != DType::kFloat32) return std::nullopt;
  for (ValueId o : g.outputs())
    if (o == v) return std::nullopt;
  std::optional<Int8Quant> hard, loose;
  auto agree = [](std::optional<Int8Quant>& have, const Int8Quant& q) {
    if (have && !(*have == q)) return false;
    have = q;
    return true;
  };
  for (NodeId c : val.consumers) {
    const Node& n = g.node(c);
    if (std::count(n.inputs.begin(), n.inputs.end(), v) != 1) return std::nullopt;
    if (OnnxOp(n, "Conv")) {
      const std::optional<Int8Quant> q = Int8InputOf(n);
      if (!q || !agree(hard, *q)) return std::nullopt;
      const Node main = MainPartOf(n);
      if (main.inputs.empty() || main.inputs[0] != v) return std::nullopt;
      if (const Attr* p = n.attrs.find("kiln.precision"); p != nullptr && p->s == "bf16") return std::nullopt;
    } else if (OnnxOp(n, "Concat") && !IsFusedNode(n)) {
      // An INT8 concat: every piece in the scale its output is read with (saturating a piece
      // there is saturating the concat's output there: the same numbers).
      bool s = false;
      const std::optional<Int8Quant> q = OutputFor(g, n.outputs[0], depth + 1, &s);
      if (!q || !agree(s ? loose : hard, *q)) return std::nullopt;
    } else if (OnnxOp(n, "MaxPool") && !IsFusedNode(n) && n.inputs[0] == v &&
               (n.outputs.size() == 1 || n.outputs[1] == kNoValue)) {
      // Max commutes with rounding and saturation: pooling INT8 values is pooling, then
      // quantizing. It keeps its input's scale; its readers rescale if they want another.
      bool s = false;
      const std::optional<Int8Quant> q = OutputFor(g, n.outputs[0], depth + 1, &s);
      if (!q || !agree(loose, *q)) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  if (hard) {
    // A pooling branch that wants the other signedness cannot take this tensor.
    if (loose && loose->is_unsigned != hard->is_unsigned) return std::nullopt;
    return hard;
  }
  *soft = loose.has_value();
  return loose;
}

}  // namespace

std::optional<Int8Quant> Int8OutputFor(const Graph& g, ValueId v) {
  bool soft = false;
  return OutputFor(g, v, 0, &soft);
}

}  // namespace kiln::cpu
