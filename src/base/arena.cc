#include "base/arena.h"

#include <algorithm>
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

}  // namespace kiln
