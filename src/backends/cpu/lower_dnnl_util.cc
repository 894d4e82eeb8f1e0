// Helpers shared by the oneDNN lowerings (declared in lower_dnnl_util.h), and
// IsReferenceImpl (cpu_backend.h).
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/lower_dnnl_util.h"
#include "backends/cpu/lower_util.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

dnnl::primitive_attr BaseAttr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

dnnl::primitive_attr TrialAttr(const std::vector<PostOp>& ops, const std::vector<int64_t>& dst_dims,
                               const dnnl::memory::desc& dst_md) {
  dnnl::primitive_attr attr = BaseAttr();
  dnnl::post_ops po;
  for (const PostOp& op : ops) {
    if (op.kind == PostOp::Kind::kEltwise) po.append_eltwise(1.0f, op.alg, op.alpha, op.beta);
    else if (op.kind == PostOp::Kind::kSum) po.append_sum(1.0f);
    else if (op.src1 != kNoValue && op.src1_dims == dst_dims) po.append_binary(op.alg, dst_md);
    else po.append_binary(op.alg, op.src1 == kNoValue ? BroadcastOperandMd(op.src1_dims, &dst_md) : PlainMd(op.src1_dims));
  }
  attr.set_post_ops(po);
  return attr;
}

std::string ImplName(const dnnl::primitive_desc_base& pd, const char* what) {
  return std::string("onednn:") + what + " " + pd.impl_info_str();
}

bool PostOpsFor(Compiler& c, const Node& node, const std::vector<int64_t>& out_dims, dnnl::primitive_attr* attr,
                PrimitiveKernel* k, const dnnl::memory::desc* dst_md) {
  auto ops = TranslateEpilogue(c.graph(), node, static_cast<int>(out_dims.size()));
  if (!ops) return false;
  return ApplyPostOps(c, *ops, out_dims, attr, &k->slot_args, &k->const_args, &k->reads, dst_md).ok();
}

std::optional<dnnl::memory::format_tag> ActivationTag(const dnnl::memory::desc& md) {
  using tag = dnnl::memory::format_tag;
  const int nd = md.data.ndims;
  std::vector<tag> cands;
  if (nd == 4) cands = {tag::nchw, tag::nhwc, tag::nChw16c, tag::nChw8c};
  if (nd == 3) cands = {tag::ncw, tag::nwc, tag::nCw16c, tag::nCw8c};
  if (nd == 5) cands = {tag::ncdhw, tag::ndhwc, tag::nCdhw16c, tag::nCdhw8c};
  if (nd == 2) cands = {tag::nc};
  dnnl::memory::dims dims(md.data.dims, md.data.dims + nd);
  for (tag t : cands)
    if (dnnl::memory::desc(dims, md.data_type(), t) == md) return t;
  return std::nullopt;
}

std::vector<int64_t> WholeOutputDims(const Graph& g, const Node& node, int* split_axis, std::vector<int64_t>* sizes) {
  std::vector<int64_t> dims = DimsOf(g, node.outputs[0]);
  *split_axis = -1;
  if (const Attr* s = node.attrs.find(kSplitSizesAttr)) {
    auto ax = node.attrs.GetInt(kSplitAxisAttr, 0);
    *split_axis = ax.ok() ? static_cast<int>(*ax) : 0;
    *sizes = s->ints;
    int64_t total = 0;
    for (int64_t v : s->ints) total += v;
    dims[static_cast<size_t>(*split_axis)] = total;
  }
  return dims;
}

bool OnlyOutput0Used(const Graph& g, const Node& node) {
  for (size_t o = 1; o < node.outputs.size(); ++o)
    if (node.outputs[o] != kNoValue && (!g.value(node.outputs[o]).consumers.empty())) return false;
  for (size_t o = 1; o < node.outputs.size(); ++o)
    for (ValueId v : g.outputs())
      if (v == node.outputs[o]) return false;
  return true;
}


}  // namespace kiln::cpu
