// INT8 calibration: per activation tensor, the threshold T that maps its values onto the
// integer range — [-T, T] onto [-127, 127] (s8), or [0, T] onto [0, 255] (u8, for tensors
// that calibration never saw negative). Values beyond T saturate.
//
// A TensorStats gathers what every calibrator needs as batches arrive: the min, max and a
// histogram of |x| at the first batch's resolution, extended as larger values arrive (no
// value dropped, no second pass), handed to the calibrators as 2048 bins over [0, max|x|].
// Calibrators then read T off it:
//   minmax      max |x| (no saturation: outliers cost resolution);
//   percentile  the given percentile of |x| (the upper edge of the bin that reaches it);
//   entropy     the candidate T (a bin edge, from the number of quantized levels upward)
//               whose quantized distribution is closest to the original in KL divergence
//               (TensorRT's calibrator: Migacz, "8-bit Inference with TensorRT", GTC 2017).
//
// The calibration cache is a text file, one tensor per line, that can be edited and reused
// (a rebuild from it needs no data):
//   # kiln calibration cache 1
//   # calibrator entropy
//   # kiln 0.9.0
//   <threshold as %a hex float> <s8|u8> <tensor name to the end of the line>
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"

namespace kiln {

enum class Calibrator { kMinMax, kPercentile, kEntropy };

StatusOr<Calibrator> ParseCalibrator(const std::string& name);  // "minmax", "percentile", "entropy"
const char* CalibratorName(Calibrator c);

class TensorStats {
 public:
  // The calibrators' resolution: kBins bins over [0, max |x|] (histogram()).
  static constexpr int kBins = 2048;
  // Collection keeps the first batch's bin width (its max |x| / kBins) and adds bins as
  // larger values arrive — so a tensor whose range grows batch after batch keeps the
  // resolution of its dense part (merging bin pairs on every doubling would blur it into a
  // few bins, and the entropy search with it) — up to this many, then merges pairs.
  static constexpr int kMaxFineBins = 1 << 16;
  void Add(const float* data, int64_t n);
  bool empty() const { return count_ == 0; }
  float min() const { return min_; }
  float max() const { return max_; }
  float max_abs() const;
  int64_t count() const { return count_; }
  // kBins bins of |x| over [0, upper] (0: max_abs()), each collected bin counted in the bin
  // of its centre; values past `upper` in the last bin.
  std::vector<double> histogram(double upper = 0) const;
  // The |x| below which a share q of the values lie (upper edge of the collected bin).
  double Quantile(double q) const;
  double bin_width() const { return static_cast<double>(max_abs()) / kBins; }
  // Merges another tensor's statistics (the same tensor seen by another worker).
  void Merge(const TensorStats& other);

 private:
  void Cover(double amax);  // bins up to amax, merging pairs past kMaxFineBins
  std::vector<double> fine_;
  double width_ = 0;  // 0 until the first nonzero |x|
  float min_ = 0, max_ = 0;
  int64_t count_ = 0;
  double zeros_ = 0;  // values counted before any nonzero one (all exact zeros)
};

// A quantization range: T, and whether the tensor maps onto u8 (never negative) or s8.
struct Int8Range {
  float threshold = 0;
  bool is_unsigned = false;
  // The scale of one integer step: real = q * scale.
  float scale() const;
};

struct CalibratorOptions {
  Calibrator calibrator = Calibrator::kEntropy;
  double percentile = 99.99;  // for kPercentile, in (0, 100]
};

// T for one tensor's statistics (an empty or all-zero tensor gets T = 1: nothing to lose).
Int8Range ComputeRange(const TensorStats& stats, const CalibratorOptions& options);

// The entropy calibrator on a histogram of |x| with bins of `bin_width`: the threshold
// (in the histogram's units) minimising KL(P || Q) over candidates of `levels` quantized
// levels or more bins. Exposed for tests.
double EntropyThreshold(const std::vector<double>& hist, double bin_width, int levels);

struct CalibrationCache {
  std::string calibrator;  // the header's calibrator name ("" when none)
  std::string kiln_version;
  std::map<std::string, Int8Range> ranges;
  static StatusOr<CalibrationCache> Read(const std::string& path);
  Status Write(const std::string& path) const;  // atomically
};

}  // namespace kiln
