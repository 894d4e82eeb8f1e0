// HostTensor and StatusOr: what the public API promises when sizes are impossible and when
// a value is read from an error (kiln/runtime.h, kiln/status.h).
#include <gtest/gtest.h>

#include <cstdint>

#include "kiln/runtime.h"

namespace kiln {
namespace {

TEST(HostTensor, ImpossibleSizesAreNotDefinedAndNeverThrow) {
  const int64_t big = int64_t{1} << 40;
  HostTensor overflow = HostTensor::Allocate(DataType::kFloat32, {big, big});  // numel overflows int64
  EXPECT_EQ(overflow.numel(), -1);
  EXPECT_EQ(overflow.nbytes(), 0u);
  EXPECT_FALSE(overflow.defined());
  HostTensor bytes = HostTensor::Allocate(DataType::kFloat64, {int64_t{1} << 61});  // bytes overflow
  EXPECT_FALSE(bytes.defined());
  HostTensor negative = HostTensor::Allocate(DataType::kInt8, {2, -3});
  EXPECT_EQ(negative.numel(), -1);
  EXPECT_FALSE(negative.defined());
  HostTensor empty = HostTensor::Allocate(DataType::kFloat32, {0, 5});
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_TRUE(empty.defined());
}

TEST(HostTensor, LargeAllocationsAreAlignedAndUsable) {
  HostTensor t = HostTensor::Allocate(DataType::kFloat32, {3, 1024, 1024});  // 12 MiB: huge pages
  ASSERT_TRUE(t.defined());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  float* p = t.data_as<float>();
  p[0] = 1;
  p[t.numel() - 1] = 2;
  EXPECT_EQ(p[t.numel() - 1], 2);
}

TEST(HostTensor, CopyZeroFillsWhatValuesDoNotCover) {
  HostTensor t = HostTensor::Copy<float>(DataType::kFloat32, {2, 3}, {1.f, 2.f});
  ASSERT_TRUE(t.defined());
  const float* p = t.data_as<float>();
  EXPECT_EQ(p[0], 1.f);
  EXPECT_EQ(p[1], 2.f);
  for (int i = 2; i < 6; ++i) EXPECT_EQ(p[i], 0.f) << i;
}

TEST(StatusOrDeathTest, ValueOnAnErrorPrintsItAndAborts) {
  StatusOr<int> bad = Status(StatusCode::kNotFound, "no such tensor 'x'");
  EXPECT_DEATH((void)bad.value(), "StatusOr::value\\(\\) called on an error: NotFound: no such tensor 'x'");
  StatusOr<int> good = 7;
  EXPECT_EQ(good.value(), 7);
}

}  // namespace
}  // namespace kiln
