// The builder's TacticTimer (base/tactic_timer.h): medians of timed runs, remembered per
// key for the build and, with a timing-cache file, across builds — so that two builds choose
// the same kernels (`kiln build --timing-cache`).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/tactic_timer.h"

namespace kiln {

class MeasuringTimer final : public TacticTimer {
 public:
  // `cache_path`: a timing-cache file, read now (a missing file is an empty cache) and
  // written by Save(); empty: measurements live as long as the timer.
  static StatusOr<std::unique_ptr<MeasuringTimer>> Open(const std::string& cache_path);

  std::optional<double> Lookup(const std::string& key) const override;
  StatusOr<double> Measure(const std::string& key, const std::function<Status()>& run,
                           const TimingBudget& budget = {}) override;
  // Writes the cache file when it was named and gained entries (atomically: a temporary file
  // of a unique name, then a rename, so concurrent builds never see half a cache).
  Status Save() const;

  size_t size() const { return ms_.size(); }

 private:
  std::string path_;
  std::map<std::string, double> ms_;
  bool changed_ = false;
};

}  // namespace kiln
