// Pad(x, zeros on the spatial axes) read only by a Conv, or by an AveragePool that counts
// padding (count_include_pad = 1, or no padding of its own), becomes that layer's own
// padding: one kernel instead of a copy of the whole tensor plus the layer. PyTorch exports
// AvgPool2d(padding = p, count_include_pad = True) this way (Inception v3's Mixed blocks,
// DenseNet's transitions with p = 0), and TF/Keras models ZeroPadding2D + Conv2D.
// Exact: the folded zeros are the same zeros, counted the same way.
#include "ir/op_schema.h"
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

namespace {

// The Pad's [begin..., end...] pads when it is a zero-valued constant pad of the spatial
// axes only (batch and channels untouched), else empty.
std::vector<int64_t> ZeroSpatialPads(const Graph& g, const Node& pad, int rank) {
  if (pad.inputs.size() < 2 || pad.inputs[1] == kNoValue || !g.value(pad.inputs[1]).constant) return {};
  auto mode = pad.attrs.GetString("mode", "constant");
  if (!mode.ok() || *mode != "constant") return {};
  if (pad.inputs.size() > 2 && pad.inputs[2] != kNoValue) {
    const Value& cv = g.value(pad.inputs[2]);
    if (!cv.constant || cv.constant->numel() > 1 || (cv.constant->numel() == 1 && cv.constant->GetAsDouble(0) != 0))
      return {};
  }
  if (pad.inputs.size() > 3 && pad.inputs[3] != kNoValue) return {};  // axes: not normalized here
  auto pads = g.value(pad.inputs[1]).constant->ToInt64Vector();
  if (!pads.ok() || static_cast<int>(pads->size()) != 2 * rank) return {};
  for (int64_t p : *pads)
    if (p < 0) return {};
  if ((*pads)[0] != 0 || (*pads)[1] != 0 || (*pads)[static_cast<size_t>(rank)] != 0 ||
      (*pads)[static_cast<size_t>(rank) + 1] != 0)
    return {};
  return *pads;
}

}  // namespace

StatusOr<bool> FoldPadIntoWindow(Graph& graph, PassContext& ctx) {
  const std::set<std::string> captured = CapturedNames(graph);
  bool changed = false;
  for (NodeId pid = 0; pid < graph.num_nodes(); ++pid) {
    const Node& pad = graph.node(pid);
    if (pad.dead || !pad.domain.empty() || pad.op_type != "Pad" || IsFusedNode(pad) || pad.outputs.size() != 1) continue;
    const ValueId y = pad.outputs[0], x = pad.inputs[0];
    const Value& yv = graph.value(y);
    if (x == kNoValue || yv.consumers.size() != 1 || IsGraphOutput(graph, y) || captured.count(yv.name)) continue;
    const TypeInfo& xt = graph.value(x).type;
    if (!xt.is_tensor() || !xt.shape.has_rank() || xt.shape.rank() < 3) continue;
    const int rank = xt.shape.rank(), spatial = rank - 2;
    const std::vector<int64_t> pads = ZeroSpatialPads(graph, pad, rank);
    if (pads.empty()) continue;
    const NodeId cid = yv.consumers[0];
    Node& win = graph.node(cid);
    if (win.dead || !win.domain.empty() || IsFusedNode(win) || win.inputs.empty() || win.inputs[0] != y) continue;
    const bool conv = win.op_type == "Conv";
    if (!conv && win.op_type != "AveragePool") continue;
    auto auto_pad = win.attrs.GetString("auto_pad", "NOTSET");
    if (!auto_pad.ok() || (*auto_pad != "NOTSET" && *auto_pad != "VALID")) continue;
    auto own = win.attrs.GetInts("pads", std::vector<int64_t>(static_cast<size_t>(2 * spatial), 0));
    if (!own.ok() || static_cast<int>(own->size()) != 2 * spatial) continue;
    if (*auto_pad == "VALID") own->assign(static_cast<size_t>(2 * spatial), 0);
    if (!conv) {
      auto cip = win.attrs.GetInt("count_include_pad", 0);
      bool own_zero = true;
      for (int64_t p : *own) own_zero = own_zero && p == 0;
      if (!cip.ok() || (*cip == 0 && !own_zero)) continue;
      win.attrs.set("count_include_pad", Attr::Int(1));
    }
    for (int i = 0; i < spatial; ++i) {
      (*own)[static_cast<size_t>(i)] += pads[static_cast<size_t>(i + 2)];
      (*own)[static_cast<size_t>(i + spatial)] += pads[static_cast<size_t>(rank + i + 2)];
    }
    win.attrs.set("pads", Attr::Ints(*own));
    win.attrs.erase("auto_pad");
    // The window reads x directly; the Pad goes.
    win.inputs[0] = x;
    graph.value(x).consumers.push_back(cid);
    graph.value(y).consumers.clear();
    const std::vector<std::string> absorbed = AbsorbedNames(pad);
    graph.RemoveNode(pid);
    if (win.fused_from.empty()) win.fused_from.push_back(win.name);
    win.fused_from.insert(win.fused_from.end(), absorbed.begin(), absorbed.end());
    ctx.records.push_back({"fold_pad_into_window", win.name, absorbed});
    changed = true;
  }
  return changed;
}

}  // namespace kiln
