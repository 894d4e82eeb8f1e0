// FP16 models on CPUs: the fast CPU kernels compute in FP32 (and BF16), not FP16, so a
// model exported in half precision (weights and activations FP16, often with FP32 graph
// inputs and outputs: `keep_io_types`) would run every layer on the reference kernels.
// This pass makes the FP16 parts compute in FP32, as ONNX Runtime's CPU provider does
// (its InsertCastTransformer: fp16 nodes without an fp16 kernel run in fp32 between casts,
// and casts between two such nodes vanish):
//   - every node whose op computes in its inputs' float type (no dtype attribute: not
//     Cast/CastLike/ConstantOfShape/Random*/quantization ops; no subgraph) and reads or
//     writes FP16 tensors is "upcast": its FP16 inputs and outputs become FP32;
//   - FP16 constants read by upcast nodes become FP32 (exact);
//   - an FP16 value produced outside the upcast region (a graph input, a Cast to FP16) is
//     read through a Cast to FP32 — or, when it is Cast(FP32 -> FP16) of an FP32 value,
//     from that FP32 value directly (the round trip through FP16 vanishes, as in ORT);
//   - an upcast node's output still read as FP16 (by a graph output or a node left alone)
//     gets a Cast back to FP16 under its own name.
// Results differ from strict FP16 arithmetic by FP16 rounding (they are closer to the
// FP32 model the FP16 one was made from). Disable with --disable-pass compute_fp16_in_fp32.
#include <map>
#include <set>

#include "ir/op_schema.h"
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

namespace {

bool IsF16Tensor(const TypeInfo& t) { return t.is_tensor() && t.dtype == DType::kFloat16; }

// Ops whose output type comes from an attribute or a second type parameter, or that only
// mean something in their own dtype: never upcast.
bool TypedByAttribute(const Node& n) {
  static const std::set<std::string> kOps = {
      "Cast", "CastLike", "ConstantOfShape", "EyeLike", "RandomNormal", "RandomUniform", "RandomNormalLike",
      "RandomUniformLike", "Bernoulli", "Multinomial", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
      "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "HannWindow", "HammingWindow", "BlackmanWindow",
      "MelWeightMatrix", "Constant", "Optional", "OptionalGetElement", "OptionalHasElement"};
  return kOps.count(n.op_type) > 0;
}

void ReplaceInput(Graph& g, NodeId id, size_t slot, ValueId to) {
  Node& n = g.node(id);
  const ValueId from = n.inputs[slot];
  auto& cons = g.value(from).consumers;
  for (auto it = cons.begin(); it != cons.end(); ++it)
    if (*it == id) {
      cons.erase(it);
      break;
    }
  n.inputs[slot] = to;
  g.value(to).consumers.push_back(id);
}

StatusOr<ValueId> AddCast(Graph& g, ValueId in, DType to, const std::string& out_name, ValueId out = kNoValue) {
  if (out == kNoValue) {
    KILN_ASSIGN_OR_RETURN(out, g.AddValue(out_name, TypeInfo::Tensor(to, g.value(in).type.shape)));
  }
  Node cast;
  cast.name = out_name + "/cast";
  cast.op_type = "Cast";
  cast.attrs.set("to", Attr::Int(static_cast<int64_t>(to)));
  cast.inputs = {in};
  cast.outputs = {out};
  KILN_RETURN_IF_ERROR(g.AddNode(std::move(cast)).status());
  return out;
}

std::string FreshName(const Graph& g, const std::string& base) {
  std::string name = base;
  for (int i = 1; g.FindValue(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

}  // namespace

StatusOr<bool> ComputeFp16InFp32(Graph& graph, PassContext& ctx) {
  const std::set<std::string> captured = CapturedNames(graph);
  // 1. The nodes to upcast.
  std::vector<bool> up(static_cast<size_t>(graph.num_nodes()), false);
  bool any = false;
  for (NodeId id = 0; id < graph.num_nodes(); ++id) {
    const Node& n = graph.node(id);
    if (n.dead || !n.domain.empty() || IsFusedNode(n) || HasSubgraph(n) || TypedByAttribute(n)) continue;
    bool f16 = false, ok = true;
    for (ValueId v : n.inputs) {
      if (v == kNoValue) continue;
      const TypeInfo& t = graph.value(v).type;
      ok = ok && t.is_tensor();
      f16 = f16 || IsF16Tensor(t);
    }
    for (ValueId v : n.outputs) {
      if (v == kNoValue) continue;
      const TypeInfo& t = graph.value(v).type;
      // An FP16 op writes FP16 or non-float (Shape, ArgMax) outputs; anything else is left alone.
      ok = ok && t.is_tensor() && t.dtype != DType::kFloat32 && t.dtype != DType::kFloat64 &&
           t.dtype != DType::kBFloat16 && !captured.count(graph.value(v).name);
      f16 = f16 || IsF16Tensor(t);
    }
    if (ok && f16) up[static_cast<size_t>(id)] = any = true;
  }
  if (!any) return false;
  auto is_up = [&](NodeId id) { return id >= 0 && static_cast<size_t>(id) < up.size() && up[static_cast<size_t>(id)]; };

  // 2. Every FP16 value at or inside the region's boundary.
  const int num_values = graph.num_values();
  for (ValueId v = 0; v < num_values; ++v) {
    if (!IsF16Tensor(graph.value(v).type)) continue;
    const NodeId producer = graph.value(v).producer;
    std::vector<std::pair<NodeId, size_t>> up_uses;  // (consumer, input slot) of upcast nodes
    bool other_uses = IsGraphOutput(graph, v) || captured.count(graph.value(v).name) > 0;
    std::set<NodeId> seen;
    for (NodeId c : graph.value(v).consumers) {
      if (!seen.insert(c).second) continue;
      const Node& cn = graph.node(c);
      for (size_t i = 0; i < cn.inputs.size(); ++i) {
        if (cn.inputs[i] != v) continue;
        if (is_up(c)) up_uses.emplace_back(c, i);
        // A Cast to FP32 reading an upcast value becomes a no-op cast (remove_no_ops):
        // the round trip through FP16 between the region and an FP32 reader vanishes too.
        else if (!(is_up(producer) && cn.op_type == "Cast" && cn.domain.empty() && !IsFusedNode(cn) &&
                   cn.attrs.GetInt("to", 0).ok() && *cn.attrs.GetInt("to", 0) == static_cast<int64_t>(DType::kFloat32)))
          other_uses = true;
      }
    }
    if (is_up(producer)) {
      if (!other_uses) {
        graph.value(v).type.dtype = DType::kFloat32;
        continue;
      }
      // Read as FP16 elsewhere: the producer writes an FP32 copy, a Cast gives v back.
      KILN_ASSIGN_OR_RETURN(ValueId v32, graph.AddValue(FreshName(graph, graph.value(v).name + "_fp32"),
                                                        TypeInfo::Tensor(DType::kFloat32, graph.value(v).type.shape)));
      Node& p = graph.node(producer);
      for (ValueId& o : p.outputs)
        if (o == v) o = v32;
      graph.value(v32).producer = producer;
      graph.value(v).producer = -1;
      KILN_RETURN_IF_ERROR(AddCast(graph, v32, DType::kFloat16, graph.value(v).name, v).status());
      for (auto [c, i] : up_uses) ReplaceInput(graph, c, i, v32);
      continue;
    }
    if (up_uses.empty()) continue;
    ValueId src = kNoValue;
    if (graph.value(v).constant) {
      KILN_ASSIGN_OR_RETURN(Tensor t32, graph.value(v).constant->CastTo(DType::kFloat32));
      if (!other_uses) {
        graph.value(v).constant = std::move(t32);
        graph.value(v).type.dtype = DType::kFloat32;
        continue;
      }
      KILN_ASSIGN_OR_RETURN(src, graph.AddConstant(FreshName(graph, graph.value(v).name + "_fp32"), std::move(t32)));
    } else if (producer >= 0 && graph.node(producer).op_type == "Cast" && graph.node(producer).domain.empty() &&
               !graph.node(producer).inputs.empty() && graph.node(producer).inputs[0] != kNoValue &&
               graph.value(graph.node(producer).inputs[0]).type.is_tensor() &&
               graph.value(graph.node(producer).inputs[0]).type.dtype == DType::kFloat32 &&
               !IsFusedNode(graph.node(producer))) {
      src = graph.node(producer).inputs[0];  // Cast(f32 -> f16) read by upcast nodes: skip the round trip
    } else {
      KILN_ASSIGN_OR_RETURN(src, AddCast(graph, v, DType::kFloat32, FreshName(graph, graph.value(v).name + "_fp32")));
    }
    for (auto [c, i] : up_uses) ReplaceInput(graph, c, i, src);
  }
  for (NodeId id = 0; id < static_cast<NodeId>(up.size()); ++id)
    if (up[static_cast<size_t>(id)]) ctx.records.push_back({"compute_fp16_in_fp32", graph.node(id).name, {}});
  return true;
}

}  // namespace kiln
