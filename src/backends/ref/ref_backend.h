// The reference backend behind the backend interface (backends/backend.h): every layer on
// kiln's reference kernels, one tensor allocated per value as it runs. The oracle the other
// backends are tested against, and the host of a partitioned graph (backends/partition.h).
#pragma once

#include <memory>

#include "backends/backend.h"

namespace kiln::ref {

std::unique_ptr<ExecutionBackend> MakeBackend();

}  // namespace kiln::ref
