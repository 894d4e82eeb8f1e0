// The backends compiled into this library, in one place (backend_registry.cc). The runtime
// finds its backend here by kiln::Backend and drives it through backends/backend.h; adding a
// backend (cuda) is one entry there and nothing else in the runtime.
#pragma once

#include <vector>

#include "backends/backend.h"

namespace kiln {

// The backend for `kind`, or null when it is not compiled into this library.
const ExecutionBackend* FindBackend(Backend kind);
// Every backend compiled in, in the order of kiln::Backend.
std::vector<const ExecutionBackend*> RegisteredBackends();

}  // namespace kiln
