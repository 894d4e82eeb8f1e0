#include "builder/calibrator.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "base/file.h"

namespace kiln {

StatusOr<Calibrator> ParseCalibrator(const std::string& name) {
  if (name == "minmax") return Calibrator::kMinMax;
  if (name == "percentile") return Calibrator::kPercentile;
  if (name == "entropy") return Calibrator::kEntropy;
  return InvalidArgument("unknown calibrator '", name, "' (expected entropy, percentile or minmax)");
}

const char* CalibratorName(Calibrator c) {
  switch (c) {
    case Calibrator::kMinMax: return "minmax";
    case Calibrator::kPercentile: return "percentile";
    case Calibrator::kEntropy: return "entropy";
  }
  return "?";
}

float TensorStats::max_abs() const { return std::max(std::fabs(min_), std::fabs(max_)); }

void TensorStats::Cover(double amax) {
  if (width_ == 0) {
    // The first nonzero batch sets the resolution: kBins bins up to a hair above its max.
    width_ = amax * (1.0 + 1e-6) / kBins;
    fine_.assign(kBins, 0.0);
    fine_[0] += zeros_;
    zeros_ = 0;
    return;
  }
  const double need = std::floor(amax / width_) + 1;
  if (need <= static_cast<double>(fine_.size())) return;
  double bins = need;
  while (bins > kMaxFineBins) {
    // Merge pairs: half the bins, twice the width.
    const size_t half = (fine_.size() + 1) / 2;
    for (size_t i = 0; i < half; ++i) fine_[i] = fine_[2 * i] + (2 * i + 1 < fine_.size() ? fine_[2 * i + 1] : 0.0);
    fine_.resize(half);
    width_ *= 2;
    bins = std::floor(amax / width_) + 1;
  }
  if (bins > static_cast<double>(fine_.size())) fine_.resize(static_cast<size_t>(bins), 0.0);
}

void TensorStats::Add(const float* data, int64_t n) {
  if (n <= 0) return;
  // Pass 1: min and max (NaNs skipped: they compare false both ways).
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int64_t i = 0; i < n; ++i) {
    const float x = data[i];
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }
  if (lo > hi) return;  // all NaN
  if (count_ == 0) {
    min_ = lo;
    max_ = hi;
  } else {
    min_ = std::min(min_, lo);
    max_ = std::max(max_, hi);
  }
  count_ += n;
  const double amax = std::max(std::fabs(static_cast<double>(lo)), std::fabs(static_cast<double>(hi)));
  if (!std::isfinite(amax)) return;  // +-inf: counted in min/max, no bin can hold it
  if (amax == 0 && width_ == 0) {
    zeros_ += static_cast<double>(n);  // all zeros so far
    return;
  }
  Cover(amax);
  // Pass 2: the bins, counted in 32-bit integers per call (one batch's tensor) and added
  // once: the scatter is the calibration's hot loop.
  const float inv = static_cast<float>(1.0 / width_);
  const size_t nb = fine_.size();
  const float last = static_cast<float>(nb - 1);
  std::vector<uint32_t> counts(nb, 0);
  for (int64_t at = 0; at < n; at += int64_t{1} << 31) {
    const int64_t end = std::min(n, at + (int64_t{1} << 31));
    for (int64_t i = at; i < end; ++i) {
      const float b = std::fabs(data[i]) * inv;
      // (NaN fails b >= 0 and goes to no bin; the clamp guards the rounding of the product.)
      if (b >= 0) ++counts[static_cast<size_t>(std::min(b, last))];
    }
    for (size_t i = 0; i < nb; ++i) {
      fine_[i] += counts[i];
      counts[i] = 0;
    }
  }
}

double TensorStats::Quantile(double q) const {
  double total = zeros_;
  for (double c : fine_) total += c;
  const double want = total * q;
  double cum = zeros_;
  if (cum >= want || fine_.empty()) return 0;
  for (size_t i = 0; i < fine_.size(); ++i) {
    cum += fine_[i];
    if (cum >= want) return static_cast<double>(i + 1) * width_;
  }
  return static_cast<double>(fine_.size()) * width_;
}

std::vector<double> TensorStats::histogram(double upper) const {
  std::vector<double> h(kBins, 0.0);
  h[0] += zeros_;
  const double top = upper > 0 ? std::min<double>(upper, max_abs()) : max_abs();
  if (fine_.empty()) return h;
  if (!(top > 0) || !std::isfinite(top)) {
    for (double c : fine_) h[0] += c;
    return h;
  }
  const double inv = kBins / top;
  for (size_t i = 0; i < fine_.size(); ++i) {
    if (fine_[i] == 0) continue;
    const double centre = (static_cast<double>(i) + 0.5) * width_;
    h[static_cast<size_t>(std::min<double>(kBins - 1, std::floor(centre * inv)))] += fine_[i];
  }
  return h;
}

void TensorStats::Merge(const TensorStats& other) {
  if (other.count_ == 0) return;
  if (count_ == 0) {
    *this = other;
    return;
  }
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  zeros_ += other.zeros_;
  if (other.fine_.empty()) return;
  const double top = other.width_ * static_cast<double>(other.fine_.size());
  Cover(top * (1.0 - 1e-9));
  for (size_t i = 0; i < other.fine_.size(); ++i) {
    if (other.fine_[i] == 0) continue;
    const double centre = (static_cast<double>(i) + 0.5) * other.width_;
    fine_[static_cast<size_t>(std::min<double>(static_cast<double>(fine_.size() - 1), std::floor(centre / width_)))] += other.fine_[i];
  }
}

float Int8Range::scale() const { return threshold / (is_unsigned ? 255.0f : 127.0f); }

double EntropyThreshold(const std::vector<double>& hist, double bin_width, int levels) {
  const int nbins = static_cast<int>(hist.size());
  // The last nonzero bin: candidates past it change nothing but the resolution.
  int last = nbins;
  while (last > 0 && hist[static_cast<size_t>(last - 1)] == 0) --last;
  if (last <= levels) return last * bin_width;
  std::vector<double> suffix(static_cast<size_t>(nbins) + 1, 0.0);
  for (int i = nbins - 1; i >= 0; --i) suffix[static_cast<size_t>(i)] = suffix[static_cast<size_t>(i) + 1] + hist[static_cast<size_t>(i)];
  double best_kl = std::numeric_limits<double>::infinity();
  int best = last;
  std::vector<double> p, q;
  for (int i = levels; i <= last; ++i) {
    // P: the first i bins, the outliers clipped into the last of them.
    p.assign(hist.begin(), hist.begin() + i);
    p[static_cast<size_t>(i) - 1] += suffix[static_cast<size_t>(i)];
    // Q: the first i bins merged into `levels` quantized bins, each expanded back evenly over
    // the bins of its span that P has values in.
    q.assign(static_cast<size_t>(i), 0.0);
    const double span = static_cast<double>(i) / levels;
    for (int j = 0; j < levels; ++j) {
      const int start = static_cast<int>(std::floor(j * span));
      const int end = j == levels - 1 ? i : static_cast<int>(std::floor((j + 1) * span));
      double total = 0;
      int nonzero = 0;
      for (int k = start; k < end; ++k) {
        total += hist[static_cast<size_t>(k)];
        if (p[static_cast<size_t>(k)] != 0) ++nonzero;
      }
      if (nonzero == 0) continue;
      for (int k = start; k < end; ++k)
        if (p[static_cast<size_t>(k)] != 0) q[static_cast<size_t>(k)] = total / nonzero;
    }
    double psum = 0, qsum = 0;
    for (int k = 0; k < i; ++k) {
      psum += p[static_cast<size_t>(k)];
      qsum += q[static_cast<size_t>(k)];
    }
    if (psum == 0 || qsum == 0) continue;
    // KL(P || Q); a bin where P has mass and Q none (the clipped outliers of an empty tail)
    // gets a tiny Q rather than an infinite divergence.
    double kl = 0;
    for (int k = 0; k < i; ++k) {
      const double pk = p[static_cast<size_t>(k)] / psum;
      if (pk == 0) continue;
      const double qk = std::max(q[static_cast<size_t>(k)] / qsum, 1e-12);
      kl += pk * std::log(pk / qk);
    }
    if (kl < best_kl) {
      best_kl = kl;
      best = i;
    }
  }
  return best * bin_width;
}

Int8Range ComputeRange(const TensorStats& stats, const CalibratorOptions& options) {
  Int8Range r;
  r.is_unsigned = !stats.empty() && stats.min() >= 0;
  const double amax = stats.max_abs();
  if (stats.empty() || !(amax > 0) || !std::isfinite(amax)) {
    r.threshold = std::isfinite(amax) && amax > 0 ? static_cast<float>(amax) : 1.0f;
    return r;
  }
  double t = amax;
  const std::vector<double> h = stats.histogram();
  switch (options.calibrator) {
    case Calibrator::kMinMax:
      break;
    case Calibrator::kPercentile: {
      double total = 0;
      for (double c : h) total += c;
      const double want = total * std::clamp(options.percentile, 0.0, 100.0) / 100.0;
      double cum = 0;
      for (int b = 0; b < TensorStats::kBins; ++b) {
        cum += h[static_cast<size_t>(b)];
        if (cum >= want) {
          t = (b + 1) * stats.bin_width();
          break;
        }
      }
      break;
    }
    case Calibrator::kEntropy: {
      // The search window: up to the |x| that all but a millionth of the values stay under
      // (the rest clip into its last bin, priced by the divergence like any clipping). Over
      // [0, max |x|], a few extreme values would put every candidate far above the dense
      // part (the first candidate is 128 or 256 bins of 2048 up: max/16 or max/8).
      const double window = std::max(stats.Quantile(1.0 - 1e-6), amax / TensorStats::kBins);
      std::vector<double> levelled = stats.histogram(window);
      // The first bin holds every exact zero (half of a ReLU's outputs): a spike that no
      // threshold can quantize badly, and that would otherwise dominate the divergence and
      // pull the threshold down. Level it with its neighbour (as NVIDIA's
      // pytorch-quantization does) before the search.
      if (levelled.size() > 1) levelled[0] = levelled[1];
      t = EntropyThreshold(levelled, std::min(window, amax) / TensorStats::kBins, r.is_unsigned ? 256 : 128);
      break;
    }
  }
  r.threshold = static_cast<float>(std::min(t, amax));
  if (!(r.threshold > 0)) r.threshold = static_cast<float>(amax);
  return r;
}

StatusOr<CalibrationCache> CalibrationCache::Read(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(ReadOnlyFile f, ReadOnlyFile::Open(path));
  KILN_ASSIGN_OR_RETURN(std::string text, f.ReadAll(64 << 20));
  CalibrationCache cache;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    auto err = [&](const std::string& what) {
      return InvalidArgument(path, ":", lineno, ": ", what);
    };
    if (line[0] == '#') {
      std::istringstream h(line.substr(1));
      std::string key, value;
      h >> key;
      std::getline(h >> std::ws, value);
      if (key == "kiln" && value.rfind("calibration cache", 0) == 0) {
        if (value != "calibration cache 1")
          return err(StrCat("unsupported calibration cache version '", value, "' (this kiln reads version 1)"));
        header = true;
      } else if (key == "calibrator") {
        cache.calibrator = value;
      } else if (key == "kiln") {
        cache.kiln_version = value;
      }
      continue;
    }
    if (!header) return err("not a kiln calibration cache (the first line must be '# kiln calibration cache 1')");
    std::istringstream l(line);
    std::string tstr, kind, name;
    l >> tstr >> kind;
    std::getline(l >> std::ws, name);
    if (tstr.empty() || kind.empty() || name.empty())
      return err("expected '<threshold> <s8|u8> <tensor name>'");
    char* end = nullptr;
    const float t = std::strtof(tstr.c_str(), &end);
    if (end == tstr.c_str() || *end != '\0' || !std::isfinite(t) || !(t > 0))
      return err(StrCat("threshold '", tstr, "' of tensor '", name, "' is not a positive finite number"));
    if (kind != "s8" && kind != "u8") return err(StrCat("type '", kind, "' of tensor '", name, "' is not s8 or u8"));
    if (cache.ranges.count(name)) return err(StrCat("tensor '", name, "' is listed twice"));
    cache.ranges[name] = Int8Range{t, kind == "u8"};
  }
  if (!header) return InvalidArgument(path, ": not a kiln calibration cache (empty)");
  return cache;
}

Status CalibrationCache::Write(const std::string& path) const {
  std::string text = "# kiln calibration cache 1\n";
  text += StrCat("# calibrator ", calibrator.empty() ? "unknown" : calibrator, "\n");
  text += StrCat("# kiln ", kiln_version.empty() ? std::string(KILN_VERSION) : kiln_version, "\n");
  text += "# <threshold T> <s8: [-T,T] onto [-127,127] | u8: [0,T] onto [0,255]> <tensor>\n";
  for (const auto& [name, r] : ranges) {
    if (name.find('\n') != std::string::npos)
      return InvalidArgument("tensor name '", name, "' holds a line break: it cannot go into a calibration cache");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%a", static_cast<double>(r.threshold));
    text += StrCat(buf, " ", r.is_unsigned ? "u8" : "s8", " ", name, "\n");
  }
  KILN_ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(path));
  KILN_RETURN_IF_ERROR(out.Write(text.data(), text.size()));
  return out.Commit();
}

}  // namespace kiln
