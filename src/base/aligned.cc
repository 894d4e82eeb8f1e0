#include "base/aligned.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace kiln {

std::shared_ptr<void> AllocateAligned(size_t bytes, bool zeroed) {
  const size_t size = (std::max<size_t>(bytes, 1) + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  if (size < bytes) return nullptr;  // overflow
  constexpr size_t kHuge = size_t{2} << 20;
  if (size >= kHuge && size <= SIZE_MAX - 2 * kHuge) {
    const size_t mapped = (size + kHuge - 1) / kHuge * kHuge + kHuge;  // room to align to 2 MiB
    void* m = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    char* base = static_cast<char*>(m);
    char* aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) / kHuge * kHuge);
    ::madvise(aligned, mapped - kHuge, MADV_HUGEPAGE);  // (aligned - base < kHuge: it fits)
    return std::shared_ptr<void>(aligned, [base, mapped](void*) { ::munmap(base, mapped); });
  }
  void* p = std::aligned_alloc(kBufferAlignment, size);
  if (p == nullptr) return nullptr;
  if (zeroed) std::memset(p, 0, size);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

}  // namespace kiln
