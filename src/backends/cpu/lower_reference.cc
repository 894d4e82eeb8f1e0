// The fallback for every layer the fast kernels do not cover: the reference kernel runs
// on a one-node graph over views of the row-major slots, and its result is copied into
// the layer's output slot.
#include <algorithm>
#include <cstring>
#include <map>

#include "backends/cpu/lower_util.h"
#include "backends/ref/kernel.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

namespace {

class ReferenceKernel : public Kernel {
 public:
  Graph mini;
  std::vector<int> in_slots;   // per mini-graph input
  std::vector<int> out_slots;  // per mini-graph output

  Status Execute(ExecContext& ctx, int index) const override {
    std::vector<RValue> ins;
    ins.reserve(in_slots.size());
    for (size_t i = 0; i < in_slots.size(); ++i) {
      const Slot& s = ctx.program->slots[static_cast<size_t>(in_slots[i])];
      ins.emplace_back(Tensor::FromExternal(s.dtype, s.dims, ctx.ptrs[static_cast<size_t>(in_slots[i])], nullptr));
    }
    RefExecutor::Options o;
    o.check_inferred_types = false;
    RefExecutor ex(o);
    KILN_ASSIGN_OR_RETURN(std::vector<RValue> outs, ex.Run(mini, std::move(ins)));
    for (size_t i = 0; i < out_slots.size(); ++i) {
      const Slot& s = ctx.program->slots[static_cast<size_t>(out_slots[i])];
      if (!outs[i].is_tensor() || outs[i].tensor.dims() != s.dims || outs[i].tensor.dtype() != s.dtype)
        return Internal("output ", i, " is not the planned ", DTypeName(s.dtype), " tensor");
      if (outs[i].tensor.nbytes() > 0)
        std::memcpy(ctx.ptrs[static_cast<size_t>(out_slots[i])], outs[i].tensor.raw_data(), outs[i].tensor.nbytes());
    }
    return Status::OK();
  }
};

// Why no fast kernel took the node, for the slow-path report: the first thing that sets it
// apart from what the fast kernels take (a non-f32 tensor, a fused epilogue that has no
// post-op form), else the op itself.
std::string ReferenceReason(const Graph& g, const Node& node) {
  for (ValueId v : node.inputs)
    if (v != kNoValue && !g.value(v).constant && DTypeOfValue(g, v) != DType::kFloat32)
      return StrCat("input '", g.value(v).name, "' is ", DTypeName(DTypeOfValue(g, v)), " (fast kernels take f32)");
  for (ValueId v : node.outputs)
    if (v != kNoValue && DTypeOfValue(g, v) != DType::kFloat32)
      return StrCat("output '", g.value(v).name, "' is ", DTypeName(DTypeOfValue(g, v)), " (fast kernels take f32)");
  if (node.attrs.has(kEpilogueAttr) && !node.outputs.empty() && node.outputs[0] != kNoValue &&
      !TranslateEpilogue(g, node, g.value(node.outputs[0]).type.shape.rank()))
    return "its fused epilogue has no oneDNN post-op form";
  return StrCat("no fast kernel for ", node.op_type, " with these attributes/shapes");
}

}  // namespace

Status LowerReference(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (RefKernelRegistry::Global().Find(node.domain, node.op_type) == nullptr)
    return Unimplemented("no kernel for this op");
  auto k = std::make_unique<ReferenceKernel>();
  std::map<ValueId, ValueId> remap;
  Node copy = node;
  copy.attrs.erase(kPackedMdAttr);
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const ValueId v = node.inputs[i];
    if (v == kNoValue) continue;
    auto it = remap.find(v);
    if (it == remap.end()) {
      const Value& val = g.value(v);
      ValueId mv;
      if (val.constant) {
        // A plan's packed weights run here (no fast kernel took the layer): row-major again.
        if (i == 1 && node.attrs.has(kPackedMdAttr)) {
          KILN_ASSIGN_OR_RETURN(Tensor plain, RowMajorWeights(node, *val.constant));
          KILN_ASSIGN_OR_RETURN(mv, k->mini.AddConstant(val.name, plain));
        } else {
          KILN_ASSIGN_OR_RETURN(mv, k->mini.AddConstant(val.name, *val.constant));
        }
      } else {
        KILN_ASSIGN_OR_RETURN(mv, k->mini.AddValue(val.name, val.type));
        k->mini.inputs().push_back(mv);
        const int s = c.Plain(c.SlotOf(v));
        k->in_slots.push_back(s);
        k->reads.push_back(s);
      }
      it = remap.emplace(v, mv).first;
    }
    copy.inputs[i] = it->second;
  }
  for (size_t o = 0; o < node.outputs.size(); ++o) {
    const ValueId v = node.outputs[o];
    if (v == kNoValue) continue;
    const Value& val = g.value(v);
    KILN_ASSIGN_OR_RETURN(ValueId mv, k->mini.AddValue(val.name, val.type));
    copy.outputs[o] = mv;
    k->mini.outputs().push_back(mv);
    const int s = c.NewRawSlot(v, val.type.shape.Sizes(), val.type.dtype);
    k->out_slots.push_back(s);
    k->writes.push_back(s);
  }
  KILN_RETURN_IF_ERROR(k->mini.AddNode(std::move(copy)).status());
  k->info = {node.name, node.op_type, "ref", "", 0};
  k->info.note = ReferenceReason(g, node);
  k->info.elements = 0;
  for (ValueId v : node.outputs)
    if (v != kNoValue && g.value(v).type.is_tensor() && g.value(v).type.shape.IsStatic())
      k->info.elements = std::max(k->info.elements, Numel(g.value(v).type.shape.Sizes()));
  c.AddKernel(std::move(k));
  return Status::OK();
}

}  // namespace kiln::cpu
