#include "builder/memory_planner.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <numeric>
#include <optional>

#include "ir/op_schema.h"

namespace kiln {

namespace {

bool IsView(const Node& n) { return IsViewNode(n); }

bool CanRunInPlace(const Node& n) {
  const OpSchema* s = OpRegistry::Global().Find(n.domain, n.op_type);
  return s != nullptr && (s->fusion == FusionClass::kElementwise || s->fusion == FusionClass::kBroadcast);
}

// Split/Slice outputs that are contiguous ranges of their input (every dim before the
// sliced axis is 1, unit steps): their byte offsets in the input, so they run as views.
std::optional<std::vector<int64_t>> ContiguousSliceOffsets(const Graph& g, const Node& n) {
  if (!n.domain.empty() || IsFusedNode(n) || (n.op_type != "Split" && n.op_type != "Slice") || n.inputs.empty()) return std::nullopt;
  const TypeInfo& it = g.value(n.inputs[0]).type;
  if (!it.is_tensor() || !it.shape.Numel() || it.dtype == DType::kString) return std::nullopt;
  const int rank = it.shape.rank();
  std::vector<int64_t> dims;
  for (int d = 0; d < rank; ++d) dims.push_back(it.shape.dim(d).value);
  const int64_t esize = static_cast<int64_t>(DTypeSize(it.dtype));
  auto inner_of = [&](int axis) {
    int64_t inner = esize;
    for (int d = axis + 1; d < rank; ++d) inner *= dims[static_cast<size_t>(d)];
    return inner;
  };
  auto outer_is_one = [&](int axis) {
    for (int d = 0; d < axis; ++d)
      if (dims[static_cast<size_t>(d)] != 1) return false;
    return true;
  };
  std::vector<int64_t> offsets;
  if (n.op_type == "Split") {
    auto axis_attr = n.attrs.GetInt("axis", 0);
    if (!axis_attr.ok() || *axis_attr < -rank || *axis_attr >= rank) return std::nullopt;
    const int axis = static_cast<int>(*axis_attr < 0 ? *axis_attr + rank : *axis_attr);
    if (!outer_is_one(axis)) return std::nullopt;
    int64_t at = 0;
    for (ValueId o : n.outputs) {
      if (o == kNoValue) return std::nullopt;
      const TypeInfo& ot = g.value(o).type;
      if (!ot.shape.Numel() || ot.shape.rank() != rank) return std::nullopt;
      offsets.push_back(at * inner_of(axis));
      at += ot.shape.dim(axis).value;
    }
    return offsets;
  }
  // Slice(data, starts, ends[, axes[, steps]]) with constant starts/axes/steps.
  if (n.outputs.size() != 1 || n.inputs.size() < 3) return std::nullopt;
  const TypeInfo& ot = g.value(n.outputs[0]).type;
  if (!ot.shape.Numel() || ot.shape.rank() != rank) return std::nullopt;
  auto ints = [&](size_t i) -> std::optional<std::vector<int64_t>> {
    if (i >= n.inputs.size() || n.inputs[i] == kNoValue || !g.value(n.inputs[i]).constant) return std::nullopt;
    auto v = g.value(n.inputs[i]).constant->ToInt64Vector();
    return v.ok() ? std::optional(*v) : std::nullopt;
  };
  auto starts = ints(1);
  if (!starts) return std::nullopt;
  std::vector<int64_t> axes(starts->size());
  std::iota(axes.begin(), axes.end(), 0);
  if (n.inputs.size() > 3 && n.inputs[3] != kNoValue) {
    auto a = ints(3);
    if (!a || a->size() != starts->size()) return std::nullopt;
    axes = *a;
  }
  if (n.inputs.size() > 4 && n.inputs[4] != kNoValue) {
    auto st = ints(4);
    if (!st) return std::nullopt;
    for (int64_t x : *st)
      if (x != 1) return std::nullopt;
  }
  int changed = -1;
  for (int d = 0; d < rank; ++d)
    if (ot.shape.dim(d).value != dims[static_cast<size_t>(d)]) {
      if (changed >= 0) return std::nullopt;
      changed = d;
    }
  if (changed < 0) return std::vector<int64_t>{0};
  if (!outer_is_one(changed)) return std::nullopt;
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (a != changed) continue;
    const int64_t dim = dims[static_cast<size_t>(changed)];
    int64_t start = (*starts)[i];
    if (start < 0) start += dim;
    start = std::clamp<int64_t>(start, 0, dim);
    return std::vector<int64_t>{start * inner_of(changed)};
  }
  return std::nullopt;
}

}  // namespace

StatusOr<MemoryPlan> PlanMemory(const Graph& g, const MemoryPlanOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  MemoryPlan plan;
  plan.placements.resize(static_cast<size_t>(g.num_values()));
  std::vector<bool> external(static_cast<size_t>(g.num_values()), false);
  for (ValueId v : g.inputs()) external[static_cast<size_t>(v)] = true;
  for (ValueId v : g.outputs()) external[static_cast<size_t>(v)] = true;
  for (ValueId v : g.captures()) external[static_cast<size_t>(v)] = true;
  for (int v = 0; v < g.num_values(); ++v)
    if (g.value(v).constant) external[static_cast<size_t>(v)] = true;

  // Sizes and lifetimes.
  std::vector<bool> planned(static_cast<size_t>(g.num_values()), false);
  for (size_t step = 0; step < order.size(); ++step) {
    const Node& n = g.node(order[step]);
    for (ValueId o : n.outputs) {
      if (o == kNoValue || external[static_cast<size_t>(o)]) continue;
      const TypeInfo& t = g.value(o).type;
      if (!t.is_tensor()) continue;  // sequences/optionals are not arena tensors
      auto numel = t.shape.Numel();
      if (!numel) return InvalidArgument("value '", g.value(o).name, "' has a dynamic shape ", t.shape.ToString(),
                                         ": plan memory for a concrete shape profile");
      TensorPlacement& p = plan.placements[static_cast<size_t>(o)];
      p.value = o;
      p.bytes = *numel * static_cast<int64_t>(t.dtype == DType::kString ? 32 : DTypeSize(t.dtype));
      p.first_use = p.last_use = static_cast<int>(step);
      planned[static_cast<size_t>(o)] = true;
      plan.naive_bytes += ArenaAlignUp(p.bytes);
      ++plan.num_tensors;
    }
    for (ValueId in : n.inputs)
      if (in != kNoValue && planned[static_cast<size_t>(in)])
        plan.placements[static_cast<size_t>(in)].last_use = static_cast<int>(step);
  }

  // Concat elimination: an input that only the Concat reads, produced by a kernel (not a
  // view, not another Concat, not an external tensor), is written into its slice of the
  // Concat's output. The remaining inputs (if any) are copied by the Concat.
  std::vector<bool> pinned(static_cast<size_t>(g.num_values()), false);  // slices and their roots
  for (size_t step = 0; options.eliminate_concats && step < order.size(); ++step) {
    const Node& n = g.node(order[step]);
    if (n.op_type != "Concat" || !n.domain.empty() || IsFusedNode(n) || n.outputs.size() != 1) continue;
    const ValueId out = n.outputs[0];
    if (out == kNoValue || !planned[static_cast<size_t>(out)] || pinned[static_cast<size_t>(out)]) continue;
    const TypeInfo& ot = g.value(out).type;
    auto axis_attr = n.attrs.GetInt("axis", 0);
    if (!axis_attr.ok() || !ot.shape.has_rank()) continue;
    const int rank = ot.shape.rank();
    const int axis = static_cast<int>(*axis_attr < 0 ? *axis_attr + rank : *axis_attr);
    if (axis < 0 || axis >= rank) continue;
    const int64_t esize = static_cast<int64_t>(DTypeSize(ot.dtype));
    int64_t rows = 1, inner = 1;
    for (int d = 0; d < axis; ++d) rows *= ot.shape.dim(d).value;
    for (int d = axis + 1; d < rank; ++d) inner *= ot.shape.dim(d).value;
    const int64_t total = ot.shape.dim(axis).value;
    TensorPlacement& po = plan.placements[static_cast<size_t>(out)];
    int64_t at = 0, slices = 0;
    std::vector<ValueId> seen;
    for (ValueId in : n.inputs) {
      const TypeInfo& it = g.value(in).type;
      const int64_t len = it.shape.has_rank() && it.shape.rank() == rank ? it.shape.dim(axis).value : 0;
      const Value& iv = g.value(in);
      const bool eligible = planned[static_cast<size_t>(in)] && !pinned[static_cast<size_t>(in)] &&
                            iv.consumers.size() == 1 && iv.producer >= 0 && !IsView(g.node(iv.producer)) &&
                            g.node(iv.producer).op_type != "Concat" && it.dtype == ot.dtype &&
                            std::find(seen.begin(), seen.end(), in) == seen.end();
      seen.push_back(in);
      if (eligible && len > 0) {
        TensorPlacement& pi = plan.placements[static_cast<size_t>(in)];
        pi.alias_of = out;
        pi.concat_slice = true;
        pi.slice_offset = at * inner * esize;
        pi.rows = rows;
        pi.row_bytes = len * inner * esize;
        pi.row_pitch = total * inner * esize;
        po.first_use = std::min(po.first_use, pi.first_use);
        pinned[static_cast<size_t>(in)] = true;
        ++slices;
      }
      at += len;
    }
    if (slices == 0) continue;
    pinned[static_cast<size_t>(out)] = true;
    plan.concat_slices += static_cast<int>(slices);
    if (slices == static_cast<int64_t>(n.inputs.size())) plan.eliminated_concats.push_back(order[step]);
  }

  // Aliases: views always; elementwise results in place when their input dies here.
  // root[v] = the value whose bytes v uses.
  std::vector<ValueId> root(static_cast<size_t>(g.num_values()));
  std::iota(root.begin(), root.end(), 0);
  for (int v = 0; v < g.num_values(); ++v)
    if (plan.placements[static_cast<size_t>(v)].concat_slice) root[static_cast<size_t>(v)] = plan.placements[static_cast<size_t>(v)].alias_of;
  auto find = [&](ValueId v) {
    while (root[static_cast<size_t>(v)] != v) v = root[static_cast<size_t>(v)];
    return v;
  };
  for (size_t step = 0; step < order.size(); ++step) {
    const Node& n = g.node(order[step]);
    if (n.outputs.empty() || n.outputs[0] == kNoValue || !planned[static_cast<size_t>(n.outputs[0])]) continue;
    const ValueId out = n.outputs[0];
    if (plan.placements[static_cast<size_t>(out)].concat_slice) continue;  // lives in its Concat
    // Split/Slice into contiguous ranges: every output is a view at its offset.
    if (const ValueId in = n.inputs.empty() ? kNoValue : n.inputs[0];
        in != kNoValue && planned[static_cast<size_t>(in)] && !plan.placements[static_cast<size_t>(in)].concat_slice) {
      if (auto offsets = ContiguousSliceOffsets(g, n)) {
        const ValueId r = find(in);
        for (size_t o = 0; o < n.outputs.size(); ++o) {
          const ValueId ov = n.outputs[o];
          if (ov == kNoValue || !planned[static_cast<size_t>(ov)] || plan.placements[static_cast<size_t>(ov)].concat_slice) continue;
          TensorPlacement& p = plan.placements[static_cast<size_t>(ov)];
          root[static_cast<size_t>(ov)] = r;
          p.alias_of = r;
          p.slice_offset = plan.placements[static_cast<size_t>(in)].slice_offset + (*offsets)[o];
          ++plan.num_in_place;
          ++plan.slice_views;
        }
        plan.view_nodes.push_back(order[step]);
        continue;
      }
    }
    const TensorPlacement& po = plan.placements[static_cast<size_t>(out)];
    for (ValueId in : n.inputs) {
      if (in == kNoValue || !planned[static_cast<size_t>(in)] || plan.placements[static_cast<size_t>(in)].concat_slice) continue;
      const ValueId r = find(in);
      TensorPlacement& pr = plan.placements[static_cast<size_t>(r)];
      const TensorPlacement& pi = plan.placements[static_cast<size_t>(in)];
      const bool view = IsView(n) && in == n.inputs[0];
      const bool in_place = CanRunInPlace(n) && pi.last_use == static_cast<int>(step) && pi.bytes == po.bytes &&
                            g.value(in).type.dtype == g.value(out).type.dtype;
      if (!view && !in_place) continue;
      // The root's bytes must stay alive as long as any alias is read.
      if (!view && pr.last_use > static_cast<int>(step)) continue;  // another alias still reads it
      root[static_cast<size_t>(out)] = r;
      plan.placements[static_cast<size_t>(out)].alias_of = r;
      plan.placements[static_cast<size_t>(out)].slice_offset = pi.slice_offset;  // same bytes as its input
      pr.last_use = std::max(pr.last_use, po.last_use);
      pr.bytes = std::max(pr.bytes, po.bytes);
      ++plan.num_in_place;
      break;
    }
  }
  // Propagate later last-uses of aliases to their roots (views are read after their input dies).
  for (int v = 0; v < g.num_values(); ++v) {
    if (!planned[static_cast<size_t>(v)]) continue;
    ValueId r = find(v);
    auto& pr = plan.placements[static_cast<size_t>(r)];
    pr.last_use = std::max(pr.last_use, plan.placements[static_cast<size_t>(v)].last_use);
  }

  // Offsets for the roots (base/arena.h); aliases sit inside their root.
  std::vector<ValueId> roots;
  std::vector<ArenaBlock> blocks;
  for (int v = 0; v < g.num_values(); ++v) {
    if (!planned[static_cast<size_t>(v)] || find(v) != v) continue;
    const TensorPlacement& p = plan.placements[static_cast<size_t>(v)];
    roots.push_back(v);
    blocks.push_back({p.bytes, p.first_use, p.last_use});
  }
  plan.arena_bytes = PlaceBlocks(blocks);
  for (size_t i = 0; i < roots.size(); ++i) plan.placements[static_cast<size_t>(roots[i])].offset = blocks[i].offset;
  for (int v = 0; v < g.num_values(); ++v) {
    if (!planned[static_cast<size_t>(v)] || find(v) == v) continue;
    TensorPlacement& p = plan.placements[static_cast<size_t>(v)];
    p.offset = plan.placements[static_cast<size_t>(find(v))].offset + p.slice_offset;
  }
  return plan;
}

}  // namespace kiln
