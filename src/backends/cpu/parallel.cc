#include "backends/cpu/parallel.h"

#include <omp.h>

namespace kiln::cpu::detail {

namespace {
void RunOne(ParallelJob& job, int64_t i) {
  KILN_TSAN_ACQUIRE(&job.fork);
  job.call(job.body, i);
  KILN_TSAN_RELEASE(&job.join);
}
}  // namespace

#ifdef KILN_TSAN_ENABLED
__attribute__((no_sanitize("thread")))
#endif
void RunParallelJob(ParallelJob& job, int64_t n, int threads) {
  if (threads > 0) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) RunOne(job, i);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) RunOne(job, i);
  }
}

}  // namespace kiln::cpu::detail
