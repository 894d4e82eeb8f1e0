#include "runtime/backend_registry.h"

#include <memory>

#include "backends/cpu/cpu_backend.h"
#include "backends/ref/ref_backend.h"

namespace kiln {

namespace {

// Made once, on first use; never destroyed (engines may outlive static destruction order).
const std::vector<std::unique_ptr<ExecutionBackend>>& Registry() {
  static const auto* backends = [] {
    auto* list = new std::vector<std::unique_ptr<ExecutionBackend>>;
    list->push_back(cpu::MakeBackend());
    list->push_back(ref::MakeBackend());
    return list;
  }();
  return *backends;
}

}  // namespace

const ExecutionBackend* FindBackend(Backend kind) {
  for (const auto& b : Registry())
    if (b->kind() == kind) return b.get();
  return nullptr;
}

std::vector<const ExecutionBackend*> RegisteredBackends() {
  std::vector<const ExecutionBackend*> out;
  for (const auto& b : Registry()) out.push_back(b.get());
  return out;
}

}  // namespace kiln
