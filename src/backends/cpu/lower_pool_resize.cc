// Lowering of the window and resampling layers onto oneDNN: pooling (max, average,
// global) and nearest-neighbour Resize by integer factors.
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/lower_dnnl_util.h"
#include "backends/cpu/lower_util.h"
#include "ir/op_schema.h"
#include "ir/ops/conv_pool_geometry.h"

namespace kiln::cpu {

using tag = dnnl::memory::format_tag;

StatusOr<bool> LowerPool(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  const std::string& op = node.op_type;
  const bool global = op == "GlobalAveragePool" || op == "GlobalMaxPool";
  if (op != "MaxPool" && op != "AveragePool" && !global) return false;
  const Node main = MainPartOf(node);
  if (main.inputs.empty() || !IsF32(g, main.inputs[0]) || !OnlyOutput0Used(g, node) || node.attrs.has(kSplitSizesAttr))
    return false;
  const std::vector<int64_t> x_dims = DimsOf(g, main.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const int spatial = static_cast<int>(x_dims.size()) - 2;
  if (spatial < 1 || spatial > 3) return false;
  dnnl::memory::dims kernel, strides, dil, pl, pr;
  bool include_pad = false;
  if (global) {
    for (int i = 0; i < spatial; ++i) {
      kernel.push_back(x_dims[static_cast<size_t>(i + 2)]);
      strides.push_back(1);
      dil.push_back(0);
      pl.push_back(0);
      pr.push_back(0);
    }
  } else {
    KILN_ASSIGN_OR_RETURN(WindowGeometry geo, ReadWindowGeometry(main.attrs, spatial, {}));
    KILN_ASSIGN_OR_RETURN(int64_t cip, main.attrs.GetInt("count_include_pad", 0));
    include_pad = cip != 0 && op == "AveragePool";
    for (int i = 0; i < spatial; ++i) {
      KILN_ASSIGN_OR_RETURN(int64_t o, WindowOutputSize(geo, i, x_dims[static_cast<size_t>(i + 2)]));
      if (o != out_dims[static_cast<size_t>(i + 2)]) return false;
      const int64_t s = geo.strides[static_cast<size_t>(i)], d = geo.dilations[static_cast<size_t>(i)];
      const int64_t kk = geo.kernel[static_cast<size_t>(i)], ext = (kk - 1) * d + 1;
      const int64_t left = geo.pads[static_cast<size_t>(i)];
      const int64_t right = (o - 1) * s + ext - x_dims[static_cast<size_t>(i + 2)] - left;
      // ceil_mode's extra window tail counts as padding for oneDNN's include-padding average.
      if (include_pad && right != geo.pads[static_cast<size_t>(i + spatial)]) return false;
      if (right < 0) return false;
      kernel.push_back(kk);
      strides.push_back(s);
      dil.push_back(d - 1);
      pl.push_back(left);
      pr.push_back(right);
    }
  }
  const dnnl::algorithm a = (op == "MaxPool" || op == "GlobalMaxPool") ? dnnl::algorithm::pooling_max
                            : include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                          : dnnl::algorithm::pooling_avg_exclude_padding;
  auto k = std::make_unique<PrimitiveKernel>();
  dnnl::primitive_attr attr = BaseAttr();
  if (!PostOpsFor(c, node, out_dims, &attr, k.get())) return false;
  int src = c.SlotOf(main.inputs[0]);
  // An INT8 input (its producer wrote it for INT8 readers, Int8OutputFor): max pooling runs
  // on it in its scale; any other pooling, or one with an epilogue, on its float values.
  const float qscale = c.program().slots[static_cast<size_t>(src)].qscale;
  const bool int8 = qscale > 0 && a == dnnl::algorithm::pooling_max && attr.get_post_ops().len() == 0;
  if (qscale > 0 && !int8) {
    const Slot& s8 = c.program().slots[static_cast<size_t>(src)];
    src = c.InLayout(src, PlainMd(s8.dims));
  }
  const dnnl::memory::desc src_md = c.program().slots[static_cast<size_t>(src)].md;
  const dnnl::memory::desc dst_any(ToDnnl(out_dims), src_md.data_type(), tag::any);
  dnnl::pooling_v2_forward::primitive_desc pd(
      dnnl::pooling_v2_forward::desc(dnnl::prop_kind::forward_inference, a, src_md, dst_any, strides, kernel, dil, pl, pr),
      attr, c.program().engine);
  k->prim = dnnl::pooling_v2_forward(pd);
  const int dst = int8 ? c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims, c.program().slots[static_cast<size_t>(src)].dtype)
                       : c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
  if (int8) c.program().slots[static_cast<size_t>(dst)].qscale = qscale;
  k->slot_args.push_back({DNNL_ARG_SRC, src});
  k->slot_args.push_back({DNNL_ARG_DST, dst});
  k->reads.push_back(src);
  k->writes.push_back(dst);
  k->info = {node.name, op, ImplName(pd, "pool"), "", 0, id, int8 ? "int8" : ""};
  c.AddKernel(std::move(k));
  return true;
}

StatusOr<bool> LowerResize(Compiler& c, NodeId id) {
  // Nearest-neighbour Resize by integer factors as oneDNN resampling, for the coordinate
  // modes where ONNX picks the same source pixel as oneDNN (floor(dst / k)): asymmetric with
  // floor, half_pixel / pytorch_half_pixel with round_prefer_floor / round_prefer_ceil.
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Resize" || IsFusedNode(node) || node.inputs.empty() || !IsF32(g, node.inputs[0])) return false;
  KILN_ASSIGN_OR_RETURN(std::string mode, node.attrs.GetString("mode", "nearest"));
  KILN_ASSIGN_OR_RETURN(std::string coord, node.attrs.GetString("coordinate_transformation_mode", "half_pixel"));
  KILN_ASSIGN_OR_RETURN(std::string nearest, node.attrs.GetString("nearest_mode", "round_prefer_floor"));
  KILN_ASSIGN_OR_RETURN(int64_t antialias, node.attrs.GetInt("antialias", 0));
  if (mode != "nearest" || antialias != 0) return false;
  const bool same_pixel = (coord == "asymmetric" && nearest == "floor") ||
                          ((coord == "half_pixel" || coord == "pytorch_half_pixel") &&
                           (nearest == "round_prefer_floor" || nearest == "round_prefer_ceil"));
  if (!same_pixel) return false;
  const std::vector<int64_t> x_dims = DimsOf(g, node.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const int rank = static_cast<int>(x_dims.size());
  if (rank < 3 || rank > 5 || static_cast<int>(out_dims.size()) != rank || x_dims[0] != out_dims[0] ||
      x_dims[1] != out_dims[1])
    return false;
  for (int i = 2; i < rank; ++i)
    if (x_dims[static_cast<size_t>(i)] == 0 || out_dims[static_cast<size_t>(i)] % x_dims[static_cast<size_t>(i)] != 0)
      return false;
  const int src = c.SlotOf(node.inputs[0]);
  const dnnl::memory::desc src_md = c.program().slots[static_cast<size_t>(src)].md;
  const dnnl::memory::desc dst_any(ToDnnl(out_dims), src_md.data_type(), tag::any);
  auto make_pd = [&](const dnnl::memory::desc& dst_md) {
    return dnnl::resampling_forward::primitive_desc(
        dnnl::resampling_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::resampling_nearest, src_md,
                                       dst_md),
        BaseAttr(), c.program().engine);
  };
  dnnl::resampling_forward::primitive_desc pd = make_pd(dst_any);
  // Concat elimination, as for convolutions: straight into the concat's buffer when the
  // same implementation takes the strided destination.
  int dst = -1;
  if (auto part = c.ConcatTarget(node.outputs[0], pd.dst_desc())) {
    try {
      auto in_place = make_pd(part->md);
      if (std::string(in_place.impl_info_str()) == pd.impl_info_str()) {
        pd = in_place;
        dst = part->slot;
      }
    } catch (const dnnl::error&) {
    }
  }
  auto k = std::make_unique<PrimitiveKernel>();
  k->prim = dnnl::resampling_forward(pd);
  if (dst < 0) dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
  k->slot_args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  k->reads = {src};
  k->writes = {dst};
  k->info = {node.name, node.op_type, ImplName(pd, "resampling"), "", 0, id};
  c.AddKernel(std::move(k));
  return true;
}

}  // namespace kiln::cpu
