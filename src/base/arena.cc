#include "base/arena.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <numeric>
#include <utility>

namespace kiln {

int64_t PlaceBlocks(std::vector<ArenaBlock>& blocks) {
  std::vector<size_t> order(blocks.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return blocks[a].bytes > blocks[b].bytes; });
  std::vector<size_t> placed;
  std::vector<std::pair<int64_t, int64_t>> busy;  // [offset, end) of placed blocks alive with this one
  int64_t arena = 0;
  for (size_t i : order) {
    ArenaBlock& b = blocks[i];
    const int64_t size = ArenaAlignUp(b.bytes);
    busy.clear();
    for (size_t q : placed) {
      const ArenaBlock& o = blocks[q];
      if (o.first <= b.last && b.first <= o.last) busy.emplace_back(o.offset, o.offset + ArenaAlignUp(o.bytes));
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [lo, hi] : busy) {
      if (offset + size <= lo) break;
      offset = std::max(offset, hi);
    }
    b.offset = offset;
    arena = std::max(arena, offset + size);
    placed.push_back(i);
  }
  return arena;
}

std::optional<std::pair<size_t, size_t>> FindArenaOverlap(const std::vector<ArenaBlock>& blocks) {
  // Sweep the steps in order of first use, keeping the live blocks (pairwise disjoint, or we
  // would have stopped) ordered by offset: a new block only needs its two neighbours checked.
  std::vector<size_t> order;
  for (size_t i = 0; i < blocks.size(); ++i)
    if (blocks[i].bytes > 0) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return blocks[a].first < blocks[b].first; });
  std::map<int64_t, size_t> live;  // offset -> block
  using Expiry = std::pair<int, size_t>;  // (last step, block)
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<Expiry>> expiring;
  for (size_t i : order) {
    const ArenaBlock& b = blocks[i];
    while (!expiring.empty() && expiring.top().first < b.first) {
      live.erase(blocks[expiring.top().second].offset);
      expiring.pop();
    }
    auto clash = [&](std::map<int64_t, size_t>::iterator it) {
      return it != live.end() && b.offset < blocks[it->second].offset + blocks[it->second].bytes &&
             blocks[it->second].offset < b.offset + b.bytes;
    };
    auto next = live.lower_bound(b.offset);
    if (clash(next)) return std::make_pair(next->second, i);
    if (next != live.begin() && clash(std::prev(next))) return std::make_pair(std::prev(next)->second, i);
    live.emplace(b.offset, i);
    expiring.emplace(b.last, i);
  }
  return std::nullopt;
}

}  // namespace kiln
