#include "base/arena.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(Arena, BlocksAliveTogetherNeverShareBytes) {
  std::vector<ArenaBlock> b = {{100, 0, 2}, {4096, 1, 3}, {64, 3, 4}, {5000, 4, 5}, {1, 0, 5}};
  const int64_t arena = PlaceBlocks(b);
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(b[i].offset % kArenaBlockAlignment, 0);
    EXPECT_LE(b[i].offset + b[i].bytes, arena);
    for (size_t j = i + 1; j < b.size(); ++j) {
      const bool together = b[i].first <= b[j].last && b[j].first <= b[i].last;
      const bool overlap = b[i].offset < b[j].offset + b[j].bytes && b[j].offset < b[i].offset + b[i].bytes;
      EXPECT_FALSE(together && overlap) << i << " and " << j;
    }
  }
}

TEST(Arena, VerifierFindsBlocksThatShareBytesWhileAlive) {
  std::vector<ArenaBlock> b = {{128, 0, 3, 0}, {64, 2, 4, 64}, {64, 4, 5, 0}};
  auto clash = FindArenaOverlap(b);
  ASSERT_TRUE(clash.has_value());
  EXPECT_EQ(clash->first, 0u);
  EXPECT_EQ(clash->second, 1u);
  b[1].offset = 128;  // now disjoint from 0; 2 reuses 0's bytes after it died
  EXPECT_FALSE(FindArenaOverlap(b).has_value());
  std::vector<ArenaBlock> many;
  for (int i = 0; i < 1000; ++i) many.push_back({int64_t{64} * (i % 7 + 1), i % 50, i % 50 + i % 13, -1});
  PlaceBlocks(many);
  EXPECT_FALSE(FindArenaOverlap(many).has_value());  // the placement passes its own verifier
}

TEST(Arena, DisjointLifetimesReuseBytes) {
  std::vector<ArenaBlock> b = {{1024, 0, 1}, {1024, 2, 3}, {512, 4, 5}};
  EXPECT_EQ(PlaceBlocks(b), 1024);
  EXPECT_EQ(b[0].offset, 0);
  EXPECT_EQ(b[1].offset, 0);
  EXPECT_EQ(b[2].offset, 0);
}

TEST(Arena, BiggestFirstThenLowestFreeOffset) {
  std::vector<ArenaBlock> b = {{64, 0, 1}, {128, 0, 1}, {1, 1, 2}};
  EXPECT_EQ(PlaceBlocks(b), 256);
  EXPECT_EQ(b[1].offset, 0);    // biggest first
  EXPECT_EQ(b[0].offset, 128);  // after it
  EXPECT_EQ(b[2].offset, 192);  // alive with both
}

}  // namespace
}  // namespace kiln
