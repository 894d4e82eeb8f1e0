#include "builder/memory_planner.h"

#include <algorithm>
#include <numeric>

#include "ir/op_schema.h"

namespace kiln {

namespace {

int64_t AlignUp(int64_t n) { return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }

bool IsView(const Node& n) {
  return n.domain.empty() && !n.attrs.has(kEpilogueAttr) &&
         (n.op_type == "Reshape" || n.op_type == "Flatten" || n.op_type == "Squeeze" || n.op_type == "Unsqueeze" ||
          n.op_type == "Identity");
}

bool CanRunInPlace(const Node& n) {
  const OpSchema* s = OpRegistry::Global().Find(n.domain, n.op_type);
  return s != nullptr && (s->fusion == FusionClass::kElementwise || s->fusion == FusionClass::kBroadcast);
}

}  // namespace

StatusOr<MemoryPlan> PlanMemory(const Graph& g) {
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
      plan.naive_bytes += AlignUp(p.bytes);
      ++plan.num_tensors;
    }
    for (ValueId in : n.inputs)
      if (in != kNoValue && planned[static_cast<size_t>(in)])
        plan.placements[static_cast<size_t>(in)].last_use = static_cast<int>(step);
  }

  // Aliases: views always; elementwise results in place when their input dies here.
  // root[v] = the value whose bytes v uses.
  std::vector<ValueId> root(static_cast<size_t>(g.num_values()));
  std::iota(root.begin(), root.end(), 0);
  auto find = [&](ValueId v) {
    while (root[static_cast<size_t>(v)] != v) v = root[static_cast<size_t>(v)];
    return v;
  };
  for (size_t step = 0; step < order.size(); ++step) {
    const Node& n = g.node(order[step]);
    if (n.outputs.empty() || n.outputs[0] == kNoValue || !planned[static_cast<size_t>(n.outputs[0])]) continue;
    const ValueId out = n.outputs[0];
    const TensorPlacement& po = plan.placements[static_cast<size_t>(out)];
    for (ValueId in : n.inputs) {
      if (in == kNoValue || !planned[static_cast<size_t>(in)]) continue;
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

  // Greedy by size: biggest buffers first, each at the lowest offset free for its lifetime.
  std::vector<ValueId> roots;
  for (int v = 0; v < g.num_values(); ++v)
    if (planned[static_cast<size_t>(v)] && find(v) == v) roots.push_back(v);
  std::stable_sort(roots.begin(), roots.end(), [&](ValueId a, ValueId b) {
    return plan.placements[static_cast<size_t>(a)].bytes > plan.placements[static_cast<size_t>(b)].bytes;
  });
  std::vector<ValueId> placed;
  for (ValueId v : roots) {
    TensorPlacement& p = plan.placements[static_cast<size_t>(v)];
    std::vector<std::pair<int64_t, int64_t>> busy;  // [offset, end) of live-overlapping buffers
    for (ValueId q : placed) {
      const TensorPlacement& o = plan.placements[static_cast<size_t>(q)];
      if (o.first_use <= p.last_use && p.first_use <= o.last_use) busy.emplace_back(o.offset, o.offset + AlignUp(o.bytes));
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [b, e] : busy) {
      if (offset + AlignUp(p.bytes) <= b) break;
      offset = std::max(offset, e);
    }
    p.offset = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + AlignUp(p.bytes));
    placed.push_back(v);
  }
  for (int v = 0; v < g.num_values(); ++v)
    if (planned[static_cast<size_t>(v)] && find(v) != v)
      plan.placements[static_cast<size_t>(v)].offset = plan.placements[static_cast<size_t>(find(v))].offset;
  return plan;
}

}  // namespace kiln
