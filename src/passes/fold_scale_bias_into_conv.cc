// Conv(x, W, b) followed by Mul(k) or Add(k), with k a constant per output channel (shape
// [M,1,..], [1,M,1,..] or a scalar) and the Conv output read only there:
//   Mul: W' = W * k[m], b' = b * k[m];   Add: b' = b + k[m].
// The same for Gemm with a per-column (shape [N] or [1,N]) or scalar k.
#include <algorithm>

#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

namespace {

// k as one value per output channel (length m), if its shape allows it.
bool PerChannel(const Tensor& k, int64_t m, int channel_axis, int out_rank, std::vector<float>* out) {
  if (k.dtype() != DType::kFloat32) return false;
  out->assign(static_cast<size_t>(m), 0.f);
  if (k.numel() == 1) {
    std::fill(out->begin(), out->end(), k.data<float>()[0]);
    return k.rank() <= out_rank;
  }
  if (k.numel() != m || k.rank() > out_rank) return false;
  // The non-1 dim of k must land on the channel axis after right-aligned broadcasting.
  const int offset = out_rank - k.rank();
  for (int i = 0; i < k.rank(); ++i)
    if (k.dim(i) != 1 && i + offset != channel_axis) return false;
  for (int64_t i = 0; i < m; ++i) (*out)[static_cast<size_t>(i)] = k.data<float>()[i];
  return true;
}

// Folds the one consumer of node n's output if it is a per-channel Mul/Add by a constant.
StatusOr<bool> FoldOne(Graph& graph, int n, PassContext& ctx, const std::set<std::string>& captured) {
  Node& op = graph.node(n);
  const bool is_conv = op.op_type == "Conv", is_gemm = op.op_type == "Gemm";
  if (op.dead || !op.domain.empty() || (!is_conv && !is_gemm) || op.attrs.has("kiln.epilogue")) return false;
  if (op.outputs.size() != 1 || op.inputs.size() < 2) return false;
  const ValueId y = op.outputs[0];
  const Value& yv = graph.value(y);
  if (yv.consumers.size() != 1 || IsGraphOutput(graph, y) || captured.count(yv.name)) return false;
  if (!yv.type.is_tensor() || !yv.type.shape.has_rank() || yv.type.dtype != DType::kFloat32) return false;
  Node& next = graph.node(yv.consumers[0]);
  if (!next.domain.empty() || (next.op_type != "Mul" && next.op_type != "Add") || next.inputs.size() != 2) return false;
  const ValueId kid = next.inputs[0] == y ? next.inputs[1] : next.inputs[0];
  if (kid == y || !graph.value(kid).constant) return false;
  const Value& wv = graph.value(op.inputs[1]);
  if (!wv.constant || wv.constant->dtype() != DType::kFloat32) return false;
  // The output channel count m and how W is laid out per channel.
  const Tensor& w = *wv.constant;
  int64_t m, per_channel_stride = 0, channel_step = 0;  // element (c, j) of W: c*channel_step + j*per_channel_stride
  int channel_axis;
  if (is_conv) {
    m = w.dim(0);
    channel_axis = 1;
    channel_step = w.numel() / m;
    per_channel_stride = 1;
  } else {
    auto tb = op.attrs.GetInt("transB", 0);
    auto alpha = op.attrs.GetFloat("alpha", 1.f);
    auto beta = op.attrs.GetFloat("beta", 1.f);
    if (!tb.ok() || !alpha.ok() || !beta.ok() || *alpha != 1.f || *beta != 1.f || w.rank() != 2) return false;
    m = *tb ? w.dim(0) : w.dim(1);
    channel_axis = 1;
    channel_step = *tb ? w.dim(1) : 1;
    per_channel_stride = *tb ? 1 : w.dim(1);
  }
  std::vector<float> k;
  if (!PerChannel(*graph.value(kid).constant, m, channel_axis, yv.type.shape.rank(), &k)) return false;
  if (graph.value(next.outputs[0]).type.shape != yv.type.shape) return false;  // k must not broadcast y up
  // Bias (input 2), made explicit with shape [m] when absent.
  Tensor bias(DType::kFloat32, {m});
  const bool has_bias = op.inputs.size() > 2 && op.inputs[2] != kNoValue;
  if (has_bias) {
    const Value& bv = graph.value(op.inputs[2]);
    if (!bv.constant || bv.constant->dtype() != DType::kFloat32 || bv.constant->numel() != m) return false;
    for (int64_t i = 0; i < m; ++i) bias.data<float>()[i] = bv.constant->data<float>()[i];
  }
  Tensor w2 = w;
  if (next.op_type == "Mul") {
    w2 = w.Clone();
    const int64_t per = w.numel() / m;
    for (int64_t c = 0; c < m; ++c) {
      for (int64_t j = 0; j < per; ++j) w2.data<float>()[c * channel_step + j * per_channel_stride] *= k[static_cast<size_t>(c)];
      bias.data<float>()[c] *= k[static_cast<size_t>(c)];
    }
  } else {
    for (int64_t c = 0; c < m; ++c) bias.data<float>()[c] += k[static_cast<size_t>(c)];
  }
  const std::string base = op.name.empty() ? StrCat("node", n) : op.name;
  const std::vector<std::string> absorbed = AbsorbedNames(next);
  const ValueId z = next.outputs[0];
  const NodeId next_id = yv.consumers[0];
  graph.RemoveNode(next_id);
  // Rewire the Conv/Gemm: new constants, output z.
  Node& conv = graph.node(n);
  auto replace_input = [&](size_t slot, ValueId v) {
    if (conv.inputs.size() <= slot) conv.inputs.resize(slot + 1, kNoValue);
    ValueId old = conv.inputs[slot];
    if (old != kNoValue) {
      auto& c = graph.value(old).consumers;
      c.erase(std::find(c.begin(), c.end(), n));
    }
    conv.inputs[slot] = v;
    graph.value(v).consumers.push_back(n);
  };
  if (next.op_type == "Mul") {
    std::string wname;
    for (int i = 0;; ++i) if (!graph.FindValue(wname = StrCat(base, "/W_folded", i ? StrCat(i) : ""))) break;
    KILN_ASSIGN_OR_RETURN(ValueId wid, graph.AddConstant(wname, std::move(w2)));
    replace_input(1, wid);
  }
  std::string bname;
  for (int i = 0;; ++i) if (!graph.FindValue(bname = StrCat(base, "/B_folded", i ? StrCat(i) : ""))) break;
  KILN_ASSIGN_OR_RETURN(ValueId bid, graph.AddConstant(bname, std::move(bias)));
  replace_input(2, bid);
  graph.node(n).outputs[0] = z;
  graph.value(z).producer = n;
  graph.value(y).producer = -1;
  Node& folded = graph.node(n);
  if (folded.fused_from.empty()) folded.fused_from.push_back(folded.name);
  for (const std::string& a : absorbed)
    if (std::find(folded.fused_from.begin(), folded.fused_from.end(), a) == folded.fused_from.end()) folded.fused_from.push_back(a);
  ctx.records.push_back({"fold_scale_bias_into_conv", folded.name, absorbed});
  return true;
}

}  // namespace

StatusOr<bool> FoldScaleBiasIntoConv(Graph& graph, PassContext& ctx) {
  const std::set<std::string> captured = CapturedNames(graph);
  bool changed = false;
  for (int n = 0; n < graph.num_nodes(); ++n) {
    // A Conv may fold a Mul and then an Add (a decomposed BatchNorm): repeat until it stops.
    while (true) {
      KILN_ASSIGN_OR_RETURN(bool folded, FoldOne(graph, n, ctx, captured));
      if (!folded) break;
      changed = true;
    }
  }
  return changed;
}

}  // namespace kiln
