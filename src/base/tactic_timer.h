// Build-time measurement of implementation candidates ("tactics"): a backend that has a
// choice to make asks a TacticTimer how long each candidate takes on the real shapes. The
// builder provides one (builder/tactic_timer.h: medians of timed runs, a timing-cache file);
// the runtime provides none, and a backend then takes the tactic a plan recorded, or its
// library's own choice, without running anything.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/status.h"

namespace kiln {

// How long to measure one candidate: a warm-up run, then at least `min_runs` and at most
// `max_runs` timed runs, stopping once `max_ms` of timed runs have passed (a layer of a
// megapixel model that takes a second per run is timed once, not six times).
struct TimingBudget {
  int min_runs = 1;
  int max_runs = 5;
  double max_ms = 50;
};

class TacticTimer {
 public:
  virtual ~TacticTimer() = default;
  // The time recorded for `key` (the problem and the candidate) by an earlier measurement
  // (this build, or a timing cache), if any: the candidate need not be set up at all.
  virtual std::optional<double> Lookup(const std::string& key) const = 0;
  // The median time of `run` in ms (the recorded one when `key` has one), recorded under key.
  virtual StatusOr<double> Measure(const std::string& key, const std::function<Status()>& run,
                                   const TimingBudget& budget = {}) = 0;
};

}  // namespace kiln
