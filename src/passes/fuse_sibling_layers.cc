// Horizontal fusion: sibling Convs (or MatMuls with constant right operands) that read
// the same input, with the same geometry and the same epilogue, become one wider layer
// whose output is split without copies into the siblings' outputs (kSplitSizesAttr).
// GoogLeNet's inception 1x1 branches are the textbook case.
#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <sstream>

#include "ir/op_schema.h"
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

namespace {

// The axis a fused node's output is split along: channels (Conv) or columns (MatMul).
int SplitAxis(const Node& n, int out_rank) { return n.op_type == "Conv" ? 1 : out_rank - 1; }

// For a constant broadcast against an output of rank out_rank: the dim of c that lines up
// with the split axis when c varies only along it (all other dims 1), else -1.
int ChannelDim(const Tensor& c, int out_rank, int axis) {
  const int at = axis - (out_rank - c.rank());
  if (at < 0 || at >= c.rank()) return -1;
  for (int d = 0; d < c.rank(); ++d)
    if (d != at && c.dim(d) != 1) return -1;
  return at;
}

// Attributes and epilogue of a candidate as a comparable key; "" when not a candidate.
std::string SiblingKey(const Graph& g, const Node& n, ValueId input) {
  if (!n.domain.empty() || n.dead || n.attrs.has(kSplitSizesAttr) || n.outputs.size() != 1) return {};
  const bool conv = n.op_type == "Conv", matmul = n.op_type == "MatMul";
  if (!conv && !matmul) return {};
  if (n.inputs.empty() || n.inputs[0] != input || n.inputs.size() < 2) return {};
  const Value& w = g.value(n.inputs[1]);
  if (!w.constant || w.constant->dtype() != DType::kFloat32) return {};
  const int64_t main = n.attrs.has(kEpilogueMainInputs) ? n.attrs.find(kEpilogueMainInputs)->i : static_cast<int64_t>(n.inputs.size());
  std::ostringstream k;
  k << n.op_type << '|';
  if (conv) {
    auto group = n.attrs.GetInt("group", 1);
    if (!group.ok() || *group != 1 || w.constant->rank() < 3) return {};
    if (main > 2 && n.inputs[2] != kNoValue && !g.value(n.inputs[2]).constant) return {};
    k << DimsToString(std::vector<int64_t>(w.constant->dims().begin() + 1, w.constant->dims().end()));
  } else {
    if (w.constant->rank() != 2 || main != 2) return {};
    k << w.constant->dim(0);
  }
  for (const auto& [name, a] : n.attrs.all()) {
    if (name == kEpilogueAttr || name == kEpilogueMainInputs) continue;
    k << ';' << name << '=';
    if (a.type == Attr::Type::kInts) k << DimsToString(a.ints);
    else if (a.type == Attr::Type::kInt) k << a.i;
    else if (a.type == Attr::Type::kString) k << a.s;
    else if (a.type == Attr::Type::kFloat) k << a.f;
    else return {};
  }
  // The epilogue: the same ops, attributes and extra inputs.
  if (const Attr* e = n.attrs.find(kEpilogueAttr)) {
    auto order = e->g->TopologicalOrder();
    if (!order.ok()) return {};
    k << "|epi:";
    for (NodeId id : *order) {
      const Node& en = e->g->node(id);
      k << en.op_type << '(';
      for (ValueId v : en.inputs) {
        auto it = std::find(e->g->inputs().begin(), e->g->inputs().end(), v);
        k << (it == e->g->inputs().end() ? -1 : it - e->g->inputs().begin()) << ',';
      }
      k << ')';
      for (const auto& [name, a] : en.attrs.all()) {
        if (a.type == Attr::Type::kInt) k << name << a.i;
        else if (a.type == Attr::Type::kFloat) k << name << a.f;
        else if (a.type == Attr::Type::kString) k << name << a.s;
        else return {};
      }
    }
    // Constants inside the epilogue must be scalars (they apply to every channel alike).
    for (ValueId ev = 0; ev < e->g->num_values(); ++ev) {
      const Value& val = e->g->value(ev);
      if (!val.constant) continue;
      if (val.constant->numel() != 1) return {};
      k << "k" << val.constant->GetAsDouble(0) << ',';
    }
    k << "|extra:";
    const TypeInfo& out = g.value(n.outputs[0]).type;
    if (!out.shape.has_rank()) return {};
    const int axis = SplitAxis(n, out.shape.rank());
    for (size_t i = static_cast<size_t>(main); i < n.inputs.size(); ++i) {
      const Value& x = g.value(n.inputs[i]);
      if (!x.constant) return {};  // e.g. a residual: it differs per sibling and cannot be widened
      const Tensor& c = *x.constant;
      if (c.numel() == 1) {
        k << 's' << c.GetAsDouble(0) << ',';
        continue;
      }
      // A per-channel vector aligned with the split axis: concatenated when merging.
      const int at = ChannelDim(c, out.shape.rank(), axis);
      if (at < 0) return {};
      k << 'c' << c.rank() << ',';
    }
  }
  return k.str();
}

// Concatenates the siblings' weights (and biases) along the output-channel axis.
Status MergeWeights(Graph& g, const std::vector<NodeId>& sibs, ValueId* w_out, ValueId* b_out,
                    std::vector<int64_t>* sizes) {
  const Node& first = g.node(sibs[0]);
  const bool conv = first.op_type == "Conv";
  std::vector<const Tensor*> ws;
  int64_t total = 0;
  for (NodeId s : sibs) {
    const Tensor* w = &*g.value(g.node(s).inputs[1]).constant;
    ws.push_back(w);
    const int64_t m = conv ? w->dim(0) : w->dim(1);
    sizes->push_back(m);
    total += m;
  }
  Tensor merged;
  if (conv) {
    std::vector<int64_t> dims = ws[0]->dims();
    dims[0] = total;
    merged = Tensor(DType::kFloat32, dims);
    int64_t off = 0;
    for (const Tensor* w : ws) {
      std::copy(w->data<float>(), w->data<float>() + w->numel(), merged.data<float>() + off);
      off += w->numel();
    }
    Tensor bias(DType::kFloat32, {total});
    int64_t at = 0;
    bool any_bias = false;
    for (size_t i = 0; i < sibs.size(); ++i) {
      const Node& n = g.node(sibs[i]);
      const int64_t m = (*sizes)[i];
      const bool has = n.inputs.size() > 2 && n.inputs[2] != kNoValue &&
                       (!n.attrs.has(kEpilogueMainInputs) || n.attrs.find(kEpilogueMainInputs)->i > 2);
      if (has) {
        const Tensor& b = *g.value(n.inputs[2]).constant;
        for (int64_t j = 0; j < m; ++j) bias.data<float>()[at + j] = static_cast<float>(b.GetAsDouble(j));
        any_bias = true;
      }
      at += m;
    }
    if (any_bias) {
      KILN_ASSIGN_OR_RETURN(*b_out, g.AddConstant(StrCat(first.name, "/B_siblings"), std::move(bias)));
    }
  } else {
    const int64_t k = ws[0]->dim(0);
    merged = Tensor(DType::kFloat32, {k, total});
    for (int64_t r = 0; r < k; ++r) {
      int64_t col = 0;
      for (const Tensor* w : ws) {
        for (int64_t c = 0; c < w->dim(1); ++c) merged.data<float>()[r * total + col + c] = w->data<float>()[r * w->dim(1) + c];
        col += w->dim(1);
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(*w_out, g.AddConstant(StrCat(first.name, "/W_siblings"), std::move(merged)));
  return Status::OK();
}

}  // namespace

StatusOr<bool> FuseSiblingLayers(Graph& graph, PassContext& ctx) {
  bool changed = false;
  for (ValueId v = 0; v < graph.num_values(); ++v) {
    std::map<std::string, std::vector<NodeId>> groups;
    std::vector<NodeId> consumers = graph.value(v).consumers;
    std::sort(consumers.begin(), consumers.end());
    consumers.erase(std::unique(consumers.begin(), consumers.end()), consumers.end());
    for (NodeId c : consumers) {
      std::string key = SiblingKey(graph, graph.node(c), v);
      if (!key.empty()) groups[key].push_back(c);
    }
    for (auto& [key, sibs] : groups) {
      if (sibs.size() < 2) continue;
      const Node& probe = graph.node(sibs[0]);
      const TypeInfo& out_type = graph.value(probe.outputs[0]).type;
      if (!out_type.shape.has_rank() || (probe.op_type == "MatMul" && out_type.shape.rank() < 2)) continue;
      ValueId w = kNoValue, b = kNoValue;
      std::vector<int64_t> sizes;
      KILN_RETURN_IF_ERROR(MergeWeights(graph, sibs, &w, &b, &sizes));
      // The first sibling becomes the fused layer; the others hand it their outputs.
      std::vector<ValueId> outs;
      std::vector<std::string> absorbed;
      for (NodeId s : sibs) {
        outs.push_back(graph.node(s).outputs[0]);
        for (const std::string& a : AbsorbedNames(graph.node(s))) absorbed.push_back(a);
      }
      Node fused = graph.node(sibs[0]);
      for (NodeId s : sibs) graph.RemoveNode(s);
      const bool conv = fused.op_type == "Conv";
      const int64_t main = fused.attrs.has(kEpilogueMainInputs) ? fused.attrs.find(kEpilogueMainInputs)->i
                                                                 : static_cast<int64_t>(fused.inputs.size());
      std::vector<ValueId> extras(fused.inputs.begin() + main, fused.inputs.end());
      // Per-channel epilogue constants (e.g. a MatMul's bias) are concatenated like the weights.
      const int out_rank = graph.value(outs[0]).type.shape.rank();
      const int axis = SplitAxis(fused, out_rank);
      for (size_t i = 0; i < extras.size(); ++i) {
        const Tensor& c0 = *graph.value(extras[i]).constant;
        if (c0.numel() == 1) continue;
        if (c0.dtype() == DType::kString) return Internal("string epilogue constant");
        const int at = ChannelDim(c0, out_rank, axis);
        std::vector<int64_t> dims = c0.dims();
        dims[static_cast<size_t>(at)] = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
        Tensor merged(c0.dtype(), dims);
        int64_t off = 0;
        for (NodeId s : sibs) {
          const Tensor& c = *graph.value(graph.node(s).inputs[static_cast<size_t>(main) + i]).constant;
          if (c.dtype() != c0.dtype()) return Internal("sibling epilogue constants differ in type");
          std::memcpy(static_cast<char*>(merged.raw_data()) + off, c.raw_data(), c.nbytes());
          off += static_cast<int64_t>(c.nbytes());
        }
        KILN_ASSIGN_OR_RETURN(extras[i], graph.AddConstant(StrCat(graph.value(extras[i]).name, "/siblings"), std::move(merged)));
      }
      fused.inputs = {v, w};
      if (conv && b != kNoValue) fused.inputs.push_back(b);
      if (fused.attrs.has(kEpilogueMainInputs)) fused.attrs.set(kEpilogueMainInputs, Attr::Int(static_cast<int64_t>(fused.inputs.size())));
      fused.inputs.insert(fused.inputs.end(), extras.begin(), extras.end());
      fused.outputs = outs;
      const TypeInfo& t = graph.value(outs[0]).type;
      fused.attrs.set(kSplitAxisAttr, Attr::Int(conv ? 1 : (t.shape.has_rank() ? t.shape.rank() - 1 : -1)));
      fused.attrs.set(kSplitSizesAttr, Attr::Ints(sizes));
      fused.fused_from = absorbed;
      // A fresh epilogue graph: the siblings shared one structure but not one object.
      // Its value types are re-inferred at the wider shape.
      if (const Attr* e = fused.attrs.find(kEpilogueAttr)) {
        auto eg = std::make_shared<Graph>(*e->g);
        for (ValueId ev = 0; ev < eg->num_values(); ++ev)
          if (!eg->value(ev).constant) eg->value(ev).type = TypeInfo{};
        fused.attrs.set(kEpilogueAttr, Attr::GraphValue(std::move(eg)));
      }
      const std::string name = fused.name;
      KILN_RETURN_IF_ERROR(graph.AddNode(std::move(fused)).status());
      ctx.records.push_back({"fuse_sibling_layers", name, absorbed});
      changed = true;
    }
  }
  return changed;
}

}  // namespace kiln
