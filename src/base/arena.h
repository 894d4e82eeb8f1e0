// Arena placement: offsets for buffers with known lifetimes, so that buffers alive at the
// same time never share bytes and the arena stays small. One algorithm for the builder's
// memory plan (builder/memory_planner.h) and the CPU backend's program arena.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace kiln {

inline constexpr int64_t kArenaBlockAlignment = 64;  // every offset; sizes are rounded up to it

inline int64_t ArenaAlignUp(int64_t n) {
  return (n + kArenaBlockAlignment - 1) / kArenaBlockAlignment * kArenaBlockAlignment;
}

// A buffer alive from step `first` to step `last` (inclusive).
struct ArenaBlock {
  int64_t bytes = 0;
  int first = 0, last = 0;
  int64_t offset = -1;  // set by PlaceBlocks
};

// Greedy by size (as TFLite's arena planner): biggest buffers first, each at the lowest
// aligned offset free for its whole lifetime. Sets every block's offset; returns the arena
// size. Ties keep the input order, so a plan is reproducible.
int64_t PlaceBlocks(std::vector<ArenaBlock>& blocks);

// The verifier of any placement (the memory plan's, a backend's): a pair of blocks alive at
// the same step whose bytes overlap, as indices {i, j}, or nothing. Blocks of no bytes
// occupy nothing. O(n log n): plans of very large graphs are checked too.
std::optional<std::pair<size_t, size_t>> FindArenaOverlap(const std::vector<ArenaBlock>& blocks);

}  // namespace kiln
