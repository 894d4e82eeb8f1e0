// kiln's own parallel loops, on the OpenMP team that oneDNN uses too (one pool, no
// oversubscription; a loop inside another parallel region runs on the calling thread).
//
// ThreadSanitizer: Debian's libgomp is not instrumented, so TSan cannot see that a
// region's fork orders the caller's writes before the workers' reads (and the join the
// reverse) and reports those as races. ParallelFor states that ordering with explicit
// happens-before edges around each iteration, and the region's own compiler-generated
// prologue (which reads the caller's stack before any edge can run) is not instrumented.
#pragma once

#include <cstdint>

#include "base/tsan.h"

namespace kiln::cpu {

namespace detail {
struct ParallelJob {
  const void* body;
  void (*call)(const void* body, int64_t i);
  int fork = 0, join = 0;  // TSan synchronization objects
};
void RunParallelJob(ParallelJob& job, int64_t n, int threads);
}  // namespace detail

// body(i) for every i in [0, n), static schedule over `threads` threads (0: the current
// OpenMP default). `body` must not throw.
template <class F>
void ParallelFor(int64_t n, int threads, const F& body) {
  detail::ParallelJob job{&body, [](const void* f, int64_t i) { (*static_cast<const F*>(f))(i); }};
  KILN_TSAN_RELEASE(&job.fork);
  detail::RunParallelJob(job, n, threads);
  KILN_TSAN_ACQUIRE(&job.join);
}

}  // namespace kiln::cpu
