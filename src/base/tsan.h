// Happens-before edges for ThreadSanitizer around kiln's own OpenMP regions. Debian's
// libgomp is not instrumented, so TSan does not see that the fork of a parallel region
// orders the master's writes before the workers' reads (and the join the reverse), and
// reports those as races. KILN_TSAN_RELEASE before the region + KILN_TSAN_ACQUIRE at the
// start of each worker's iteration (and the mirror image at the join) states exactly that
// ordering; without TSan they compile to nothing.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define KILN_TSAN_ENABLED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KILN_TSAN_ENABLED 1
#endif
#endif

#ifdef KILN_TSAN_ENABLED
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define KILN_TSAN_ACQUIRE(addr) __tsan_acquire(static_cast<void*>(addr))
#define KILN_TSAN_RELEASE(addr) __tsan_release(static_cast<void*>(addr))
#else
#define KILN_TSAN_ACQUIRE(addr) ((void)(addr))
#define KILN_TSAN_RELEASE(addr) ((void)(addr))
#endif
