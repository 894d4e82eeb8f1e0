// Aligned host memory, one allocator for every buffer kiln owns (tensors, arenas, plans read
// into memory, HostTensors): 64-byte aligned (what every kernel's vector loads want), and
// buffers of 2 MiB or more on transparent huge pages where the kernel offers them (madvise
// mode), so first touch takes a fault per 2 MiB instead of per 4 KiB — thousands fewer on a
// large model, and each is expensive under virtualization.
#pragma once

#include <cstddef>
#include <memory>

namespace kiln {

inline constexpr size_t kBufferAlignment = 64;

// `bytes` (at least one) aligned to kBufferAlignment, freed when the last owner goes; null when
// the memory is not there (never throws). `zeroed`: the bytes read as zero (fresh huge-page
// mappings are zero already and are not written).
std::shared_ptr<void> AllocateAligned(size_t bytes, bool zeroed = false);

}  // namespace kiln
