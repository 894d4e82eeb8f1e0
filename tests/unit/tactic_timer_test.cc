#include "builder/tactic_timer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace kiln {
namespace {

std::string TempPath(const char* name) { return ::testing::TempDir() + "/" + name + std::to_string(::getpid()); }

TEST(TacticTimer, MeasuresOnceThenRemembers) {
  auto timer = MeasuringTimer::Open("");
  ASSERT_TRUE(timer.ok()) << timer.status().ToString();
  int runs = 0;
  auto run = [&] {
    ++runs;
    return Status::OK();
  };
  EXPECT_FALSE((*timer)->Lookup("k").has_value());
  auto ms = (*timer)->Measure("k", run, TimingBudget{3, 3, 1e9});
  ASSERT_TRUE(ms.ok());
  EXPECT_EQ(runs, 4);  // one warm-up, three timed
  EXPECT_GE(*ms, 0.0);
  ASSERT_TRUE((*timer)->Lookup("k").has_value());
  ASSERT_TRUE((*timer)->Measure("k", run).ok());
  EXPECT_EQ(runs, 4);  // remembered: not run again
}

TEST(TacticTimer, AFailingRunIsAnError) {
  auto timer = MeasuringTimer::Open("");
  ASSERT_TRUE(timer.ok());
  auto ms = (*timer)->Measure("k", [] { return InvalidArgument("boom"); });
  EXPECT_FALSE(ms.ok());
  EXPECT_FALSE((*timer)->Lookup("k").has_value());
}

TEST(TacticTimer, CacheFileRoundTripsAndRejectsATruncatedOne) {
  const std::string path = TempPath("kiln_timing_cache");
  ::unlink(path.c_str());
  {
    auto timer = MeasuringTimer::Open(path);  // a missing file: an empty cache
    ASSERT_TRUE(timer.ok());
    ASSERT_TRUE((*timer)->Measure("conv direct x[1,3]", [] { return Status::OK(); }).ok());
    ASSERT_TRUE((*timer)->Save().ok());
  }
  {
    auto timer = MeasuringTimer::Open(path);
    ASSERT_TRUE(timer.ok()) << timer.status().ToString();
    EXPECT_TRUE((*timer)->Lookup("conv direct x[1,3]").has_value());
    EXPECT_EQ((*timer)->size(), 1u);
  }
  std::ofstream(path, std::ios::app) << "0.5 half a line";
  auto bad = MeasuringTimer::Open(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("truncated"), std::string::npos) << bad.status().message();
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace kiln
