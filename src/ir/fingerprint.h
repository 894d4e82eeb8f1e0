// A stable fingerprint of a graph's problem, for timing caches (whole-program and
// batch-schedule timings key on it).
#pragma once

#include <string>

#include "ir/graph.h"

namespace kiln {

// The graph's input types and, per live node, the op and output types (not names, not
// weights), hashed to 16 hex digits.
std::string ProblemFingerprint(const Graph& g);

}  // namespace kiln
