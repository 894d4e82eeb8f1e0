// Inference BatchNormalization with constant statistics is an affine map per channel:
// y = x * s + t with s = scale / sqrt(var + eps), t = bias - mean * s. It becomes a Mul and
// an Add by constants of shape [C, 1, ...], which fold_scale_bias_into_conv folds into a
// preceding Conv/Gemm, or fuse_elementwise_epilogue fuses into whatever produced x.
#include <cmath>

#include "ir/op_schema.h"
#include "passes/graph_util.h"
#include "passes/passes.h"

namespace kiln {

StatusOr<bool> DecomposeBatchNorm(Graph& graph, PassContext& ctx) {
  bool changed = false;
  for (int n = 0; n < graph.num_nodes(); ++n) {
    Node& bn = graph.node(n);
    if (bn.dead || bn.op_type != "BatchNormalization" || IsFusedNode(bn) || !bn.domain.empty() || bn.inputs.size() != 5) continue;
    bool extra_outputs = false;
    for (size_t o = 1; o < bn.outputs.size(); ++o) extra_outputs |= bn.outputs[o] != kNoValue;
    auto training = bn.attrs.GetInt("training_mode", 0);
    if (extra_outputs || !training.ok() || *training != 0) continue;
    const Value& x = graph.value(bn.inputs[0]);
    if (!x.type.is_tensor() || !x.type.shape.has_rank() || x.type.shape.rank() < 2 || x.type.dtype != DType::kFloat32)
      continue;
    const Tensor* p[4];
    bool all_const = true;
    for (int i = 0; i < 4; ++i) {
      const Value& v = graph.value(bn.inputs[static_cast<size_t>(i) + 1]);
      all_const = all_const && v.constant && v.constant->dtype() == DType::kFloat32 && v.constant->rank() == 1;
      p[i] = all_const ? &*v.constant : nullptr;
    }
    if (!all_const) continue;
    const int64_t c = p[0]->numel();
    bool same = true;
    for (int i = 1; i < 4; ++i) same = same && p[i]->numel() == c;
    if (!same) continue;
    auto eps = bn.attrs.GetFloat("epsilon", 1e-5f);
    if (!eps.ok()) continue;
    std::vector<int64_t> dims(static_cast<size_t>(x.type.shape.rank() - 1), 1);
    dims[0] = c;
    Tensor s(DType::kFloat32, dims), t(DType::kFloat32, dims);
    for (int64_t i = 0; i < c; ++i) {
      double sc = double(p[0]->data<float>()[i]) / std::sqrt(double(p[3]->data<float>()[i]) + double(*eps));
      s.data<float>()[i] = static_cast<float>(sc);
      t.data<float>()[i] = static_cast<float>(double(p[1]->data<float>()[i]) - double(p[2]->data<float>()[i]) * sc);
    }
    const std::string base = bn.name.empty() ? StrCat("bn", n) : bn.name;
    const ValueId in = bn.inputs[0], out = bn.outputs[0];
    const std::string bn_name = bn.name;
    graph.RemoveNode(n);
    KILN_ASSIGN_OR_RETURN(ValueId sv, graph.AddConstant(base + "/scale_folded", std::move(s)));
    KILN_ASSIGN_OR_RETURN(ValueId tv, graph.AddConstant(base + "/shift_folded", std::move(t)));
    KILN_ASSIGN_OR_RETURN(ValueId mid, graph.AddValue(base + "/scaled", graph.value(out).type));
    Node mul;
    mul.name = base + "/mul";
    mul.op_type = "Mul";
    mul.inputs = {in, sv};
    mul.outputs = {mid};
    mul.fused_from = {bn_name};
    Node add;
    add.name = base + "/add";
    add.op_type = "Add";
    add.inputs = {mid, tv};
    add.outputs = {out};
    add.fused_from = {bn_name};
    KILN_RETURN_IF_ERROR(graph.AddNode(std::move(mul)).status());
    KILN_RETURN_IF_ERROR(graph.AddNode(std::move(add)).status());
    ctx.records.push_back({"decompose_batch_norm", base, {bn_name}});
    changed = true;
  }
  return changed;
}

}  // namespace kiln
