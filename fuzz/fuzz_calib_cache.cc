// libFuzzer target: bytes -> the INT8 calibration pieces that read user data: the calibration
// cache parser (CalibrationCache::Read, through a temp file, as `kiln build --calib-cache`
// reads it) and the statistics/calibrators on arbitrary float bits (NaN, infinities,
// denormals, huge ranges: TensorStats::Add, ComputeRange with every calibrator). Any input
// gives a cache or a clear error, and a finite positive threshold; never a crash or a hang.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "builder/calibrator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/kiln_fuzz_calib_" + std::to_string(getpid());
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
    auto cache = kiln::CalibrationCache::Read(path);
    if (cache.ok())
      for (const auto& [name, r] : cache->ranges)
        if (!(r.threshold > 0) || !std::isfinite(r.threshold)) std::abort();  // the reader promises these
  }
  std::vector<float> x(size / 4);
  if (!x.empty()) std::memcpy(x.data(), data, x.size() * 4);
  kiln::TensorStats stats;
  for (size_t at = 0; at < x.size(); at += 7) stats.Add(x.data() + at, static_cast<int64_t>(std::min<size_t>(7, x.size() - at)));
  for (kiln::Calibrator c : {kiln::Calibrator::kMinMax, kiln::Calibrator::kPercentile, kiln::Calibrator::kEntropy}) {
    kiln::CalibratorOptions o;
    o.calibrator = c;
    const kiln::Int8Range r = kiln::ComputeRange(stats, o);
    if (!(r.threshold > 0) || !std::isfinite(r.threshold)) std::abort();
  }
  return 0;
}
