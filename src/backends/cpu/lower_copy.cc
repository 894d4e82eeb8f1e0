// Lowering of the data-movement ops onto views, reorders and concat: Concat, Split (and
// the split of horizontally fused layers' outputs), Slice, Transpose, Reshape-like views.
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backends/cpu/int8.h"
#include "backends/cpu/lower_dnnl_util.h"
#include "backends/cpu/lower_util.h"
#include "ir/op_schema.h"
#include "ir/ops/tensor_geometry.h"

namespace kiln::cpu {

using tag = dnnl::memory::format_tag;
using mdt = dnnl::memory::data_type;


void SplitInto(Compiler& c, const Node& node, int whole, int axis, const std::vector<int64_t>& sizes,
               const std::vector<float>* piece_qscales) {
  const Slot& w = c.program().slots[static_cast<size_t>(whole)];
  const DType wdtype = w.dtype;
  const std::vector<int64_t> dims = w.dims;
  const dnnl::memory::desc wmd = w.md;
  auto t = ActivationTag(wmd);
  int64_t start = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    std::vector<int64_t> part = dims;
    part[static_cast<size_t>(axis)] = sizes[k];
    dnnl::memory::dims offs(dims.size(), 0);
    offs[static_cast<size_t>(axis)] = start;
    start += sizes[k];
    if (k >= node.outputs.size() || node.outputs[k] == kNoValue) continue;
    dnnl::memory::desc src_md, dst_md;
    int src = whole;
    try {
      src_md = wmd.submemory_desc(ToDnnl(part), offs);
      dst_md = t ? dnnl::memory::desc(ToDnnl(part), wmd.data_type(), *t) : PlainMd(part, wmd.data_type());
    } catch (const dnnl::error&) {
      // (INT8 pieces: a row-major INT8 copy of the whole, bytes as they are.)
      src = piece_qscales != nullptr ? c.InLayout(whole, PlainMd(dims, wmd.data_type())) : c.Plain(whole);
      src_md = c.program().slots[static_cast<size_t>(src)].md.submemory_desc(ToDnnl(part), offs);
      dst_md = PlainMd(part, wmd.data_type());
    }
    int view = c.ViewMd(src, src_md, part);
    int out;
    if (piece_qscales != nullptr) {
      // INT8 pieces, each in its own scale (the whole has none): copied as they are.
      c.program().slots[static_cast<size_t>(view)].qscale = (*piece_qscales)[k];
      out = c.NewSlot(node.outputs[k], dst_md, part, wdtype);
      c.program().slots[static_cast<size_t>(out)].qscale = (*piece_qscales)[k];
    } else if (auto target = c.ConcatTarget(node.outputs[k], dst_md)) {
      dst_md = target->md;
      out = target->slot;
    } else {
      out = c.NewSlot(node.outputs[k], dst_md, part);
    }
    c.AddReorder(view, out, "split " + c.graph().value(node.outputs[k]).name, "Split");
  }
}

StatusOr<bool> LowerConcat(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Concat" || IsFusedNode(node) || !IsF32(g, node.outputs[0])) return false;
  const std::vector<int64_t> out_dims = DimsOf(g, node.outputs[0]);
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", 0));
  if (axis < 0) axis += static_cast<int64_t>(out_dims.size());
  if (const std::optional<Int8Quant> q8 = Int8OutputFor(g, node.outputs[0]); q8 && !c.ConcatWhole(id)) {
    // Read only by INT8 layers: the concat runs in INT8, its pieces in its output's scale.
    std::vector<int> srcs;
    std::vector<std::vector<int64_t>> pdims;
    for (ValueId v : node.inputs) {
      if (v == kNoValue || !IsF32(g, v)) return false;
      if (Numel(DimsOf(g, v)) == 0) continue;
      srcs.push_back(c.SlotOf(v));
      pdims.push_back(DimsOf(g, v));
    }
    if (!srcs.empty() &&
        AddInt8CopyConcat(c, srcs, pdims, out_dims, axis, node.outputs[0], node.name, id, q8->scale, q8->is_unsigned))
      return true;
  }
  if (auto whole = c.ConcatWhole(id)) {
    // Some producers wrote into this buffer already (ConcatTarget); copy in the others —
    // with kiln's copy concat when the layouts allow (oneDNN's reorder into a strided
    // sub-memory is its slow generic one), else one reorder each.
    const dnnl::memory::desc wmd = c.program().slots[static_cast<size_t>(*whole)].md;
    {
      std::vector<int> pieces;
      std::vector<std::vector<int64_t>> pdims;
      bool ok = true;
      for (ValueId v : node.inputs) {
        if (v == kNoValue || !IsF32(g, v)) { ok = false; break; }
        const std::vector<int64_t> d = DimsOf(g, v);
        if (Numel(d) == 0) continue;
        const int s = c.SlotOf(v);
        pieces.push_back(c.program().Root(s) == c.program().Root(*whole) ? -1 : s);
        pdims.push_back(d);
      }
      if (ok && !pieces.empty() &&
          AddCopyConcatInto(c, pieces, pdims, out_dims, axis, node.outputs[0], node.name, id, *whole))
        return true;
    }
    int64_t offset = 0;
    for (ValueId v : node.inputs) {
      const std::vector<int64_t> d = DimsOf(g, v);
      dnnl::memory::dims offs(out_dims.size(), 0);
      offs[static_cast<size_t>(axis)] = offset;
      offset += d[static_cast<size_t>(axis)];
      if (Numel(d) == 0) continue;
      const int s = c.SlotOf(v);
      if (c.program().Root(s) == c.program().Root(*whole)) continue;
      const dnnl::memory::desc sub = wmd.submemory_desc(ToDnnl(d), offs);
      const int view = c.ViewMd(*whole, sub, d);
      c.AddReorder(s, view, node.name + " <- " + g.value(v).name, node.op_type, id);
    }
    return true;
  }
  std::vector<dnnl::memory::desc> mds;
  std::vector<int> srcs;
  for (ValueId v : node.inputs) {
    if (v == kNoValue || !IsF32(g, v)) return false;
    if (Numel(DimsOf(g, v)) == 0) continue;  // empty pieces add nothing
    int s = c.SlotOf(v);
    srcs.push_back(s);
    mds.push_back(c.program().slots[static_cast<size_t>(s)].md);
  }
  if (srcs.empty() || out_dims.empty()) return false;
  // Mixed layouts, or a blocked layout oneDNN concatenates only with its reference
  // implementation (offsets off the channel blocks): every piece row-major.
  bool mixed = false;
  for (size_t i = 1; i < srcs.size(); ++i)
    mixed = mixed || !ActivationTag(mds[i]) || ActivationTag(mds[i]) != ActivationTag(mds[0]) ||
            mds[i].data_type() != mds[0].data_type();
  if (!mixed && srcs.size() > 1) {
    const std::string impl = TrialImpl([&] { return dnnl::concat::primitive_desc(static_cast<int>(axis), mds, c.program().engine, BaseAttr()); });
    mixed = impl.empty() || IsReferenceImpl(impl);
  }
  std::vector<std::vector<int64_t>> piece_dims;
  for (int s : srcs) piece_dims.push_back(c.program().slots[static_cast<size_t>(s)].dims);
  if (!mixed && AddCopyConcat(c, srcs, piece_dims, out_dims, axis, node.outputs[0], node.name, id)) return true;
  if (mixed) srcs = PiecesInCommonLayout(c, srcs, axis);
  if (mixed && AddCopyConcat(c, srcs, piece_dims, out_dims, axis, node.outputs[0], node.name, id)) return true;
  if (mixed)
    for (int& s : srcs) s = c.Plain(s);
  if (mixed && AddCopyConcat(c, srcs, piece_dims, out_dims, axis, node.outputs[0], node.name, id)) return true;
  for (size_t i = 0; i < srcs.size(); ++i) mds[i] = c.program().slots[static_cast<size_t>(srcs[i])].md;
  dnnl::concat::primitive_desc pd(static_cast<int>(axis), mds, c.program().engine, BaseAttr());
  auto k = std::make_unique<PrimitiveKernel>();
  k->prim = dnnl::concat(pd);
  for (size_t i = 0; i < srcs.size(); ++i) {
    k->slot_args.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), srcs[i]});
    k->reads.push_back(srcs[i]);
  }
  const int dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
  k->slot_args.push_back({DNNL_ARG_DST, dst});
  k->writes.push_back(dst);
  k->info = {node.name, node.op_type, ImplName(pd, "concat"), "", 0};
  c.AddKernel(std::move(k));
  return true;
}

StatusOr<bool> LowerView(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  // (A Cast to the type it already has is one too: compute_fp16_in_fp32 leaves them at graph
  // outputs, where remove_no_ops cannot forward the name.)
  static const std::set<std::string> kViews = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast", "CastLike"};
  if (!kViews.count(node.op_type) || IsFusedNode(node) || node.inputs.empty() || node.outputs.size() != 1) return false;
  const ValueId in = node.inputs[0];
  if (in == kNoValue || DTypeOfValue(g, in) != DTypeOfValue(g, node.outputs[0])) return false;
  const std::vector<int64_t> out_dims = DimsOf(g, node.outputs[0]);
  if (Numel(out_dims) != Numel(DimsOf(g, in))) return false;
  const int s = c.View(c.Plain(c.SlotOf(in)), out_dims);
  c.SetValueSlot(node.outputs[0], s);
  return true;
}

StatusOr<bool> LowerTranspose(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Transpose" || IsFusedNode(node) || !IsF32(g, node.inputs[0])) return false;
  const std::vector<int64_t> in_dims = DimsOf(g, node.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const int rank = static_cast<int>(in_dims.size());
  if (rank == 0) return false;
  std::vector<int64_t> perm;
  KILN_ASSIGN_OR_RETURN(perm, node.attrs.GetInts("perm", {}));
  if (perm.empty())
    for (int i = rank - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int>(perm.size()) != rank) return false;
  std::vector<int64_t> in_strides(static_cast<size_t>(rank), 1);
  for (int i = rank - 2; i >= 0; --i) in_strides[static_cast<size_t>(i)] = in_strides[static_cast<size_t>(i) + 1] * in_dims[static_cast<size_t>(i) + 1];
  dnnl::memory::dims strides;
  for (int64_t p : perm) strides.push_back(in_strides[static_cast<size_t>(p)]);
  const int src = c.Plain(c.SlotOf(node.inputs[0]));
  const dnnl::memory::desc src_md(ToDnnl(out_dims), mdt::f32, strides);
  const int view = c.ViewMd(src, src_md, out_dims);
  const int dst = c.NewSlot(node.outputs[0], PlainMd(out_dims), out_dims);
  c.AddReorder(view, dst, node.name, node.op_type, id);
  return true;
}

StatusOr<bool> LowerSlice(Compiler& c, NodeId id) {
  // Unit-step Slice of a float tensor: one reorder from a sub-memory view of the input.
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Slice" || IsFusedNode(node) || node.inputs.size() < 3 || !IsF32(g, node.inputs[0])) return false;
  const std::vector<int64_t> x_dims = DimsOf(g, node.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const int rank = static_cast<int>(x_dims.size());
  auto p = ConstSliceParams(g, node);
  if (!p || rank == 0 || Numel(out_dims) == 0) return false;
  const std::vector<int64_t>&starts = p->starts, &ends = p->ends, &axes = p->axes, &steps = p->steps;
  dnnl::memory::dims offs(static_cast<size_t>(rank), 0);
  std::vector<int64_t> dims = x_dims;
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t ax = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (ax < 0 || ax >= rank || steps[i] != 1) return false;
    const SliceAxisRange r = ComputeSliceAxis(starts[i], ends[i], 1, x_dims[static_cast<size_t>(ax)]);
    offs[static_cast<size_t>(ax)] = r.start;
    dims[static_cast<size_t>(ax)] = r.length;
  }
  if (dims != out_dims) return false;
  const int src = c.Plain(c.SlotOf(node.inputs[0]));
  const dnnl::memory::desc src_md = PlainMd(x_dims).submemory_desc(ToDnnl(out_dims), offs);
  const int view = c.ViewMd(src, src_md, out_dims);
  const int dst = c.NewSlot(node.outputs[0], PlainMd(out_dims), out_dims);
  c.AddReorder(view, dst, node.name, node.op_type, id);
  return true;
}

StatusOr<bool> LowerSplit(Compiler& c, NodeId id) {
  // Split of a float tensor: one reorder per output from a sub-memory view (SplitInto, as
  // for horizontally fused layers), in the input's own layout where it allows.
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Split" || IsFusedNode(node) || node.inputs.empty() || !IsF32(g, node.inputs[0])) return false;
  const std::vector<int64_t> x_dims = DimsOf(g, node.inputs[0]);
  const int rank = static_cast<int>(x_dims.size());
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", 0));
  if (axis < 0) axis += rank;
  if (rank == 0 || axis < 0 || axis >= rank) return false;
  std::vector<int64_t> sizes;
  int64_t total = 0;
  for (ValueId v : node.outputs) {
    if (v == kNoValue) return false;
    const std::vector<int64_t> d = DimsOf(g, v);
    if (static_cast<int>(d.size()) != rank) return false;
    sizes.push_back(d[static_cast<size_t>(axis)]);
    total += sizes.back();
  }
  if (total != x_dims[static_cast<size_t>(axis)]) return false;
  SplitInto(c, node, c.SlotOf(node.inputs[0]), static_cast<int>(axis), sizes);
  return true;
}

}  // namespace kiln::cpu
