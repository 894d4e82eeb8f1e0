#include "plan/cpu_features.h"

#include <array>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace kiln {

namespace {

struct CpuFeature {
  const char* name;
  bool (*present)();
};

#if defined(__x86_64__) || defined(__i386__)
// CPUID leaf/subleaf, register (0 eax .. 3 edx), bit, and the XCR0 state bits the OS must
// have enabled: for the features that clang's __builtin_cpu_supports does not know (clang 14:
// f16c, avx512fp16, avxvnni, amx-*), checked the way GCC's builtin checks them.
bool CpuidHas(unsigned leaf, unsigned subleaf, int reg, int bit, uint64_t xcr0_mask) {
  unsigned r[4] = {0, 0, 0, 0};
  if (static_cast<unsigned>(__get_cpuid_max(0, nullptr)) < leaf) return false;
  __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
  if (((r[reg] >> bit) & 1u) == 0) return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid(1, a, b, c, d);
  if ((c & (1u << 27)) == 0) return false;  // OSXSAVE: xgetbv available
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const uint64_t xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  return (xcr0 & xcr0_mask) == xcr0_mask;
}
constexpr uint64_t kXcrAvx = 0x6, kXcrAvx512 = 0xe6, kXcrAmx = 0x60000;
#endif

// __builtin_cpu_supports takes a string literal only, hence one entry per feature.
// clang-format off
#if defined(__x86_64__) || defined(__i386__)
#define KILN_CPU_FEATURE_(name) CpuFeature{name, [] { return __builtin_cpu_supports(name) != 0; }}
#define KILN_CPUID_FEATURE_(name, leaf, sub, reg, bit, xcr) \
  CpuFeature{name, [] { return CpuidHas(leaf, sub, reg, bit, xcr); }}
#else
#define KILN_CPU_FEATURE_(name) CpuFeature{name, [] { return false; }}
#define KILN_CPUID_FEATURE_(name, leaf, sub, reg, bit, xcr) CpuFeature{name, [] { return false; }}
#endif
const std::array<CpuFeature, 17> kFeatures = {
    KILN_CPU_FEATURE_("sse4.2"),     KILN_CPU_FEATURE_("avx"),        KILN_CPU_FEATURE_("avx2"),
    KILN_CPU_FEATURE_("fma"),        KILN_CPUID_FEATURE_("f16c", 1, 0, 2, 29, kXcrAvx), KILN_CPU_FEATURE_("avx512f"),
    KILN_CPU_FEATURE_("avx512bw"),   KILN_CPU_FEATURE_("avx512dq"),   KILN_CPU_FEATURE_("avx512vl"),
    KILN_CPU_FEATURE_("avx512cd"),   KILN_CPU_FEATURE_("avx512vnni"), KILN_CPU_FEATURE_("avx512bf16"),
    KILN_CPUID_FEATURE_("avx512fp16", 7, 0, 3, 23, kXcrAvx512),
    KILN_CPUID_FEATURE_("avxvnni", 7, 1, 0, 4, kXcrAvx),
    KILN_CPUID_FEATURE_("amx-tile", 7, 0, 3, 24, kXcrAmx),
    KILN_CPUID_FEATURE_("amx-int8", 7, 0, 3, 25, kXcrAmx),
    KILN_CPUID_FEATURE_("amx-bf16", 7, 0, 3, 22, kXcrAmx),
};
#undef KILN_CPU_FEATURE_
#undef KILN_CPUID_FEATURE_
// clang-format on

const std::array<const char*, kFeatures.size()> kNames = [] {
  std::array<const char*, kFeatures.size()> names{};
  for (size_t i = 0; i < kFeatures.size(); ++i) names[i] = kFeatures[i].name;
  return names;
}();

}  // namespace

std::span<const char* const> KnownCpuFeatures() { return kNames; }

StatusOr<bool> CpuHasFeature(const std::string& feature) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();  // idempotent; needed when called before constructors ran
#endif
  for (const CpuFeature& f : kFeatures)
    if (feature == f.name) return f.present();
  return NotFound("unknown CPU feature '", feature, "'");
}

}  // namespace kiln
