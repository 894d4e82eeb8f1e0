#include "plan/cpu_features.h"

#include <array>

namespace kiln {

namespace {

struct CpuFeature {
  const char* name;
  bool (*present)();
};

// __builtin_cpu_supports takes a string literal only, hence one entry per feature.
// clang-format off
#if defined(__x86_64__) || defined(__i386__)
#define KILN_CPU_FEATURE_(name) CpuFeature{name, [] { return __builtin_cpu_supports(name) != 0; }}
#else
#define KILN_CPU_FEATURE_(name) CpuFeature{name, [] { return false; }}
#endif
const std::array<CpuFeature, 17> kFeatures = {
    KILN_CPU_FEATURE_("sse4.2"),     KILN_CPU_FEATURE_("avx"),        KILN_CPU_FEATURE_("avx2"),
    KILN_CPU_FEATURE_("fma"),        KILN_CPU_FEATURE_("f16c"),       KILN_CPU_FEATURE_("avx512f"),
    KILN_CPU_FEATURE_("avx512bw"),   KILN_CPU_FEATURE_("avx512dq"),   KILN_CPU_FEATURE_("avx512vl"),
    KILN_CPU_FEATURE_("avx512cd"),   KILN_CPU_FEATURE_("avx512vnni"), KILN_CPU_FEATURE_("avx512bf16"),
    KILN_CPU_FEATURE_("avx512fp16"), KILN_CPU_FEATURE_("avxvnni"),    KILN_CPU_FEATURE_("amx-tile"),
    KILN_CPU_FEATURE_("amx-int8"),   KILN_CPU_FEATURE_("amx-bf16"),
};
#undef KILN_CPU_FEATURE_
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
