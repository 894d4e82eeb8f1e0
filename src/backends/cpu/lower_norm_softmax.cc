// Lowering of LayerNormalization, Softmax and LogSoftmax onto oneDNN's layer
// normalization and softmax primitives.
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/lower_dnnl_util.h"
#include "backends/cpu/lower_util.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

StatusOr<bool> LowerNormSoftmax(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  const std::string& op = node.op_type;
  if (op != "LayerNormalization" && op != "Softmax" && op != "LogSoftmax") return false;
  if (IsFusedNode(node) || node.inputs.empty() || !IsF32(g, node.inputs[0]) || !OnlyOutput0Used(g, node)) return false;
  const std::vector<int64_t> dims = DimsOf(g, node.inputs[0]);
  const int rank = static_cast<int>(dims.size());
  if (rank == 0) return false;
  auto k = std::make_unique<PrimitiveKernel>();
  const int in = c.Plain(c.SlotOf(node.inputs[0]));
  const int out = c.NewSlot(node.outputs[0], PlainMd(dims), dims);
  if (op == "LayerNormalization") {
    KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", -1));
    KILN_ASSIGN_OR_RETURN(float eps, node.attrs.GetFloat("epsilon", 1e-5f));
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return false;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < rank; ++i) (i < axis ? outer : inner) *= dims[static_cast<size_t>(i)];
    const Tensor* scale = nullptr;
    const Tensor* shift = nullptr;
    if (node.inputs.size() > 1 && node.inputs[1] != kNoValue) {
      if (!g.value(node.inputs[1]).constant) return false;
      scale = &*g.value(node.inputs[1]).constant;
    }
    if (node.inputs.size() > 2 && node.inputs[2] != kNoValue) {
      if (!g.value(node.inputs[2]).constant) return false;
      shift = &*g.value(node.inputs[2]).constant;
    }
    if ((scale && (scale->dtype() != DType::kFloat32 || scale->numel() != inner)) ||
        (shift && (shift->dtype() != DType::kFloat32 || shift->numel() != inner)))
      return false;  // broadcast scale/shift: reference kernel
    const std::vector<int64_t> d2 = {outer, inner};
    const int in2 = c.View(in, d2), out2 = c.View(out, d2);
    dnnl::normalization_flags flags = dnnl::normalization_flags::none;
    if (scale) flags |= dnnl::normalization_flags::use_scale;
    if (shift) flags |= dnnl::normalization_flags::use_shift;
    dnnl::layer_normalization_forward::primitive_desc pd(
        dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference, PlainMd(d2), eps, flags), BaseAttr(),
        c.program().engine);
    k->prim = dnnl::layer_normalization_forward(pd);
    const dnnl::memory::desc v_md = PlainMd({inner});
    if (scale) k->const_args.push_back({DNNL_ARG_SCALE, c.ConstantMemory(*scale, v_md, v_md)});
    if (shift) k->const_args.push_back({DNNL_ARG_SHIFT, c.ConstantMemory(*shift, v_md, v_md)});
    k->slot_args = {{DNNL_ARG_SRC, in2}, {DNNL_ARG_DST, out2}};
    k->reads = {in2};
    k->writes = {out2};
    k->info = {node.name, op, ImplName(pd, "layer_norm"), "", 0};
  } else {
    KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", -1));
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return false;
    const dnnl::memory::desc md = PlainMd(dims);
    dnnl::softmax_v2_forward::primitive_desc pd(
        dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                       op == "Softmax" ? dnnl::algorithm::softmax_accurate : dnnl::algorithm::softmax_log,
                                       md, md, static_cast<int>(axis)),
        BaseAttr(), c.program().engine);
    k->prim = dnnl::softmax_v2_forward(pd);
    k->slot_args = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out}};
    k->reads = {in};
    k->writes = {out};
    k->info = {node.name, op, ImplName(pd, "softmax"), "", 0};
  }
  c.AddKernel(std::move(k));
  return true;
}

}  // namespace kiln::cpu
