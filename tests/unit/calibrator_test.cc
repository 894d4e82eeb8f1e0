// Calibrators on distributions with known answers, and the calibration cache file.
#include "builder/calibrator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <unistd.h>

namespace kiln {
namespace {

TensorStats Gaussian(int n, int outliers, float outlier_value, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(rng);
  for (int i = 0; i < outliers; ++i) x[static_cast<size_t>(i) * 997 % x.size()] = (i % 2 ? -1 : 1) * outlier_value;
  TensorStats s;
  // In batches, so that the histogram's range grows as it would in a calibration run.
  for (size_t at = 0; at < x.size(); at += 10000) s.Add(x.data() + at, static_cast<int64_t>(std::min<size_t>(10000, x.size() - at)));
  return s;
}

TEST(Calibrator, MinMaxIsTheLargestMagnitude) {
  TensorStats s = Gaussian(200000, 4, 50.0f);
  const Int8Range r = ComputeRange(s, {Calibrator::kMinMax});
  EXPECT_FLOAT_EQ(r.threshold, 50.0f);
  EXPECT_FALSE(r.is_unsigned);
  EXPECT_FLOAT_EQ(r.scale(), 50.0f / 127.0f);
}

TEST(Calibrator, EntropySaturatesRareOutliers) {
  // N(0, 1) with a handful of outliers at 50: max-abs wastes almost all resolution on them;
  // the KL threshold sits a few sigma out, far below 50.
  TensorStats s = Gaussian(200000, 4, 50.0f);
  const Int8Range r = ComputeRange(s, {Calibrator::kEntropy});
  EXPECT_GT(r.threshold, 2.0f);
  EXPECT_LT(r.threshold, 12.0f);
}

TEST(Calibrator, RangeGrowthKeepsTheResolutionOfTheDensePart) {
  // 2M values of N(0, 1), then a batch with one value at 1000: the histogram grows 200-fold
  // (merging bin pairs on every doubling would leave N(0, 1) in ~10 bins, and the entropy
  // search could not go below 1000 * 128 / 2048 = 62). The threshold stays a few sigma out.
  TensorStats s;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> x(100000);
  for (int b = 0; b < 20; ++b) {
    for (float& v : x) v = normal(rng);
    s.Add(x.data(), static_cast<int64_t>(x.size()));
  }
  std::vector<float> spike = {1000.0f, 0.5f, -0.25f};
  s.Add(spike.data(), 3);
  EXPECT_FLOAT_EQ(s.max_abs(), 1000.0f);
  const Int8Range r = ComputeRange(s, {Calibrator::kEntropy});
  EXPECT_GT(r.threshold, 2.0f);
  EXPECT_LT(r.threshold, 12.0f);
  EXPECT_NEAR(s.Quantile(0.5), 0.674, 0.03);  // the median of |N(0, 1)|, to a collected bin (~0.02)
  double total = 0;
  for (double c : s.histogram()) total += c;
  EXPECT_EQ(total, 2000003.0);
}

TEST(Calibrator, EntropyKeepsAUniformRange) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  std::vector<float> x(100000);
  for (float& v : x) v = u(rng);
  TensorStats s;
  s.Add(x.data(), static_cast<int64_t>(x.size()));
  const Int8Range r = ComputeRange(s, {Calibrator::kEntropy});
  EXPECT_GT(r.threshold, 3.6f);  // nothing to gain by clipping a flat distribution
  EXPECT_LE(r.threshold, 4.0f);
}

TEST(Calibrator, PercentileOfAKnownDistribution) {
  // |x| uniform on [0, 10): the 99th percentile is 9.9 (within a bin).
  std::vector<float> x(100000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = (i % 2 ? -1.0f : 1.0f) * 10.0f * static_cast<float>(i) / static_cast<float>(x.size());
  TensorStats s;
  s.Add(x.data(), static_cast<int64_t>(x.size()));
  CalibratorOptions o{Calibrator::kPercentile, 99.0};
  EXPECT_NEAR(ComputeRange(s, o).threshold, 9.9f, 0.02f);
}

TEST(Calibrator, NonNegativeTensorsAreUnsigned) {
  std::vector<float> x = {0.0f, 0.5f, 3.0f, 1.0f};
  TensorStats s;
  s.Add(x.data(), 4);
  const Int8Range r = ComputeRange(s, {Calibrator::kMinMax});
  EXPECT_TRUE(r.is_unsigned);
  EXPECT_FLOAT_EQ(r.threshold, 3.0f);
  EXPECT_FLOAT_EQ(r.scale(), 3.0f / 255.0f);
}

TEST(Calibrator, RangeGrowsWithoutLosingCounts) {
  TensorStats s;
  std::vector<float> a(1000, 0.5f), b(10, 100.0f);
  s.Add(a.data(), 1000);
  s.Add(b.data(), 10);
  double total = 0;
  for (double c : s.histogram()) total += c;
  EXPECT_EQ(total, 1010.0);
  EXPECT_GE(s.bin_width() * TensorStats::kBins, 100.0);
  EXPECT_EQ(s.count(), 1010);
}

TEST(Calibrator, EmptyAndZeroTensorsGetAUsableRange) {
  TensorStats empty;
  EXPECT_FLOAT_EQ(ComputeRange(empty, {}).threshold, 1.0f);
  std::vector<float> z(16, 0.0f);
  TensorStats zeros;
  zeros.Add(z.data(), 16);
  EXPECT_FLOAT_EQ(ComputeRange(zeros, {}).threshold, 1.0f);
}

TEST(Calibrator, ParseNames) {
  EXPECT_EQ(*ParseCalibrator("entropy"), Calibrator::kEntropy);
  EXPECT_EQ(*ParseCalibrator("percentile"), Calibrator::kPercentile);
  EXPECT_EQ(*ParseCalibrator("minmax"), Calibrator::kMinMax);
  EXPECT_NE(ParseCalibrator("kl").status().message().find("entropy, percentile or minmax"), std::string::npos);
}

std::string TempPath(const char* name) { return ::testing::TempDir() + "/" + name + std::to_string(getpid()); }

TEST(CalibrationCache, RoundTrips) {
  CalibrationCache c;
  c.calibrator = "entropy";
  c.ranges["conv1 out"] = Int8Range{1.2345678f, false};
  c.ranges["relu_7"] = Int8Range{6.0f, true};
  const std::string path = TempPath("calib_cache");
  ASSERT_TRUE(c.Write(path).ok());
  auto r = CalibrationCache::Read(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->calibrator, "entropy");
  EXPECT_EQ(r->kiln_version, KILN_VERSION);
  ASSERT_EQ(r->ranges.size(), 2u);
  EXPECT_EQ(r->ranges["conv1 out"].threshold, 1.2345678f);  // bit-exact (hex floats)
  EXPECT_FALSE(r->ranges["conv1 out"].is_unsigned);
  EXPECT_TRUE(r->ranges["relu_7"].is_unsigned);
  std::remove(path.c_str());
}

TEST(CalibrationCache, BadFilesNameTheLine) {
  const std::string path = TempPath("calib_bad");
  auto write = [&](const std::string& text) { std::ofstream(path) << text; };
  write("0.5 s8 x\n");
  EXPECT_NE(CalibrationCache::Read(path).status().message().find("not a kiln calibration cache"), std::string::npos);
  write("# kiln calibration cache 1\n0.5 s8 x\n-1 s8 y\n");
  auto st = CalibrationCache::Read(path).status();
  EXPECT_NE(st.message().find(":3:"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("'y'"), std::string::npos);
  write("# kiln calibration cache 1\n0.5 s16 x\n");
  EXPECT_NE(CalibrationCache::Read(path).status().message().find("s16"), std::string::npos);
  write("# kiln calibration cache 1\n0.5 s8 x\n0.7 u8 x\n");
  EXPECT_NE(CalibrationCache::Read(path).status().message().find("twice"), std::string::npos);
  write("# kiln calibration cache 2\n");
  EXPECT_NE(CalibrationCache::Read(path).status().message().find("version"), std::string::npos);
  std::remove(path.c_str());
  EXPECT_FALSE(CalibrationCache::Read(path).ok());  // missing
}

}  // namespace
}  // namespace kiln
