#include "plan/memory_plan.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>

namespace kiln {

Status VerifyMemoryPlan(const Graph& g, const MemoryPlan& plan) {
  // O(n log n) in the number of values: plans of 300k-node graphs are verified too.
  if (plan.placements.size() != static_cast<size_t>(g.num_values())) return Internal("memory plan: placement count");
  const size_t nv = plan.placements.size();
  auto name = [&](ValueId v) { return g.value(v).name; };
  // Roots of alias chains, memoized (a chain of in-place ops is one long chain).
  std::vector<ValueId> root(nv, kNoValue);
  std::vector<uint8_t> state(nv, 0);  // 0 new, 1 on the current walk, 2 done
  std::vector<ValueId> walk;
  for (size_t s0 = 0; s0 < nv; ++s0) {
    if (plan.placements[s0].value == kNoValue || state[s0] == 2) continue;
    walk.clear();
    ValueId v = static_cast<ValueId>(s0);
    while (state[static_cast<size_t>(v)] == 0) {
      state[static_cast<size_t>(v)] = 1;
      walk.push_back(v);
      const ValueId next = plan.placements[static_cast<size_t>(v)].alias_of;
      if (next == kNoValue) break;
      if (next < 0 || static_cast<size_t>(next) >= nv) return Internal("memory plan: '", name(v), "' aliases a value the graph does not hold");
      v = next;
    }
    if (state[static_cast<size_t>(v)] == 1 && plan.placements[static_cast<size_t>(v)].alias_of != kNoValue)
      return Internal("memory plan: alias cycle at '", name(v), "'");
    const ValueId r = state[static_cast<size_t>(v)] == 2 ? root[static_cast<size_t>(v)] : v;
    for (ValueId w : walk) {
      root[static_cast<size_t>(w)] = r;
      state[static_cast<size_t>(w)] = 2;
    }
  }
  std::vector<ValueId> roots;
  for (size_t i = 0; i < nv; ++i) {
    const ValueId v = static_cast<ValueId>(i);
    const TensorPlacement& p = plan.placements[i];
    if (p.value == kNoValue) continue;
    const ValueId r = root[i];
    const TensorPlacement& pr = plan.placements[static_cast<size_t>(r)];
    if (r == v) {
      if (p.offset < 0 || p.offset + p.bytes > plan.arena_bytes || p.offset % kArenaAlignment != 0)
        return Internal("memory plan: '", name(v), "' at ", p.offset, "+", p.bytes, " outside the arena of ", plan.arena_bytes);
      roots.push_back(v);
      continue;
    }
    if (pr.last_use < p.last_use || pr.first_use > p.first_use)
      return Internal("memory plan: '", name(v), "' outlives the bytes of '", name(r), "'");
    const int64_t extent = p.concat_slice ? p.slice_offset + (p.rows - 1) * p.row_pitch + p.row_bytes : p.bytes;
    if (p.offset - pr.offset < 0 || (p.offset - pr.offset) + (p.concat_slice ? extent - p.slice_offset : p.bytes) > pr.bytes)
      return Internal("memory plan: '", name(v), "' does not fit inside '", name(r), "'");
  }
  // Roots alive at the same step must not share bytes (base/arena.h's verifier).
  auto at = [&](ValueId v) -> const TensorPlacement& { return plan.placements[static_cast<size_t>(v)]; };
  std::vector<ArenaBlock> blocks;
  for (ValueId r : roots) blocks.push_back({at(r).bytes, at(r).first_use, at(r).last_use, at(r).offset});
  if (auto clash = FindArenaOverlap(blocks))
    return Internal("memory plan: '", name(roots[clash->first]), "' and '", name(roots[clash->second]),
                    "' are alive together and share bytes");
  // Slices of one Concat must be disjoint (compare their first rows: all rows share one pitch).
  std::vector<ValueId> slices;
  for (size_t i = 0; i < nv; ++i)
    if (plan.placements[i].value != kNoValue && plan.placements[i].concat_slice) slices.push_back(static_cast<ValueId>(i));
  std::sort(slices.begin(), slices.end(), [&](ValueId a, ValueId b) {
    return std::make_pair(at(a).alias_of, at(a).slice_offset) < std::make_pair(at(b).alias_of, at(b).slice_offset);
  });
  for (size_t i = 1; i < slices.size(); ++i) {
    const TensorPlacement& a = at(slices[i - 1]);
    const TensorPlacement& b = at(slices[i]);
    if (a.alias_of == b.alias_of && b.slice_offset < a.slice_offset + a.row_bytes)
      return Internal("memory plan: slices '", name(slices[i - 1]), "' and '", name(slices[i]), "' overlap");
  }
  return Status::OK();
}

}  // namespace kiln
