// QDQ models (TensorRT's explicit quantization, ONNX Runtime's QDQ format): an activation x
// passes through QuantizeLinear(x, s, zp) -> DequantizeLinear(., s, zp) before the layers
// that should compute in INT8. The pair's float result is x rounded to the grid of s; the
// pass lets the readers take x itself and records the range on the graph
// (Graph::quant_ranges), so that the builder runs those layers on INT8 kernels with that
// very scale — instead of a float Quantize/Dequantize round trip around float layers.
// (Weights' DequantizeLinear of constant integers fold to float constants; the INT8
// convolution quantizes them again per output channel, which gives back the model's
// integers for the usual symmetric per-channel weights: each channel's largest |q| is 127.)
//
// Ranges: s8 with zero point 0 -> [-127s, 127s]; u8 with zero point 0 -> [0, 255s]; any
// other zero point z (asymmetric u8) -> the symmetric s8 range covering the pair's grid,
// T = max(|(lo - z) s|, |(hi - z) s|). Layers that do not run in INT8 see x unrounded
// (within half a quantization step of the model's value).
#include <cmath>

#include "ir/op_schema.h"
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

namespace {

// A scalar constant input's value as a double, with its dtype; nullopt otherwise.
std::optional<std::pair<double, DType>> ScalarConst(const Graph& g, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return std::nullopt;
  const Value& v = g.value(n.inputs[i]);
  if (!v.constant || v.constant->numel() != 1) return std::nullopt;
  return std::make_pair(v.constant->GetAsDouble(0), v.constant->dtype());
}

}  // namespace

StatusOr<bool> FoldQuantizeDequantize(Graph& graph, PassContext& ctx) {
  bool changed = false;
  for (NodeId d = 0; d < graph.num_nodes(); ++d) {
    Node& dq = graph.node(d);
    if (dq.dead || dq.op_type != "DequantizeLinear" || !dq.domain.empty() || IsFusedNode(dq) || dq.inputs.empty() ||
        dq.outputs.empty())
      continue;
    const NodeId qid = graph.value(dq.inputs[0]).producer;
    if (qid < 0) continue;
    const Node& q = graph.node(qid);
    if (q.op_type != "QuantizeLinear" || !q.domain.empty() || IsFusedNode(q) || q.inputs.empty()) continue;
    const ValueId x = q.inputs[0];
    const Value& xv = graph.value(x);
    if (xv.constant || xv.type.dtype != DType::kFloat32) continue;
    if (graph.value(dq.outputs[0]).type.dtype != DType::kFloat32) continue;
    const auto qs = ScalarConst(graph, q, 1), ds = ScalarConst(graph, dq, 1);
    if (!qs || !ds || qs->first != ds->first || !(qs->first > 0) || !std::isfinite(qs->first)) continue;
    // Zero points: absent means uint8 0; both sides the same value and type.
    auto qz = ScalarConst(graph, q, 2), dz = ScalarConst(graph, dq, 2);
    const std::pair<double, DType> none{0.0, DType::kUInt8};
    if ((q.inputs.size() > 2 && q.inputs[2] != kNoValue && !qz) || (dq.inputs.size() > 2 && dq.inputs[2] != kNoValue && !dz))
      continue;
    const auto zq = qz.value_or(none), zd = dz.value_or(none);
    if (zq != zd || (zq.second != DType::kUInt8 && zq.second != DType::kInt8)) continue;
    if (q.attrs.has("block_size") || dq.attrs.has("block_size")) continue;  // blocked quantization
    const double s = qs->first, z = zq.first;
    Graph::QuantRange r;
    if (z == 0) {
      r.scale = static_cast<float>(s);
      r.is_unsigned = zq.second == DType::kUInt8;
    } else {
      const double lo = zq.second == DType::kUInt8 ? 0 : -128, hi = zq.second == DType::kUInt8 ? 255 : 127;
      const double t = std::max(std::fabs((lo - z) * s), std::fabs((hi - z) * s));
      r.scale = static_cast<float>(t / 127.0);
      r.is_unsigned = false;
    }
    if (!ForwardValue(graph, dq.outputs[0], x)) continue;
    // One value may pass through several pairs (one per reader): the first range stays.
    graph.quant_ranges.emplace(xv.name, r);
    ctx.records.push_back({"fold_quantize_dequantize", dq.name, {q.name, dq.name}});
    changed = true;
  }
  return changed;
}

}  // namespace kiln
