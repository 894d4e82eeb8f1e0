// CPU features a plan's kernels may require, named as GCC's __builtin_cpu_supports spells
// them ("avx2", "avx512f", "avx512vnni", ...). The builder records the features of the
// kernels it picked; the reader refuses a plan whose features this CPU lacks, instead of
// dying on an illegal instruction in the middle of a run.
#pragma once

#include <span>
#include <string>

#include "base/status.h"

namespace kiln {

// Every feature name kiln knows, in a fixed order.
std::span<const char* const> KnownCpuFeatures();

// Whether this CPU has `feature`; an error when kiln does not know the name (a plan from a
// newer kiln, or a typo).
StatusOr<bool> CpuHasFeature(const std::string& feature);

}  // namespace kiln
