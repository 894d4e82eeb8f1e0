// kiln's depthwise convolution kernel (src/backends/cpu/depthwise.h) against a plain loop:
// random shapes with odd channel counts (masked tails), strides, paddings, dilations,
// kernel sizes 3/5/other, batch > 1, every activation; both the AVX-512 and AVX2 paths
// where the CPU has them.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/cpu/depthwise.h"

namespace kiln::cpu {
namespace {

float Apply(float x, const std::vector<DwActivation>& acts) {
  for (const DwActivation& a : acts) {
    switch (a.kind) {
      case DwActivation::Kind::kRelu: x = x < 0 ? x * a.alpha : x; break;
      case DwActivation::Kind::kClip: x = std::min(std::max(x, a.alpha), a.beta); break;
      case DwActivation::Kind::kLinear: x = a.alpha * x + a.beta; break;
      case DwActivation::Kind::kHardSwish: x = x * std::min(std::max(x / 6.0f + 0.5f, 0.0f), 1.0f); break;
    }
  }
  return x;
}

TEST(DepthwiseKernel, MatchesAPlainLoopOnRandomShapes) {
  std::mt19937 rng(4242);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  const std::vector<std::vector<DwActivation>> activations = {
      {},
      {{DwActivation::Kind::kRelu, 0, 0}},
      {{DwActivation::Kind::kClip, 0, 6}},
      {{DwActivation::Kind::kRelu, 0.1f, 0}},
      {{DwActivation::Kind::kHardSwish, 0, 0}},
      {{DwActivation::Kind::kLinear, 0.5f, 0.25f}, {DwActivation::Kind::kClip, -0.3f, 0.4f}},
  };
  int checked = 0;
  for (const char* isa : {"", "avx2"}) {
    for (int iter = 0; iter < 60; ++iter) {
      DwShape s;
      s.n = pick(1, 2);
      s.c = iter % 3 == 0 ? 16 * pick(1, 4) : pick(1, 70);
      s.kh = iter % 4 == 3 ? pick(1, 4) : (iter % 2 ? 5 : 3);
      s.kw = iter % 4 == 3 ? pick(1, 4) : s.kh;
      s.sh = pick(1, 2);
      s.sw = iter % 5 == 4 ? pick(1, 3) : s.sh;
      s.dh = iter % 7 == 6 ? 2 : 1;
      s.dw = s.dh;
      s.pt = pick(0, s.kh / 2 + 1);
      s.pl = pick(0, s.kw / 2 + 1);
      s.ih = pick(s.kh * s.dh, 30);
      s.iw = pick(s.kw * s.dw, 40);
      s.oh = (s.ih + 2 * s.pt - (s.kh - 1) * s.dh - 1) / s.sh + 1;
      s.ow = (s.iw + 2 * s.pl - (s.kw - 1) * s.dw - 1) / s.sw + 1;
      std::vector<float> w(static_cast<size_t>(s.c * s.kh * s.kw)), b(static_cast<size_t>(s.c));
      std::vector<float> x(static_cast<size_t>(s.n * s.ih * s.iw * s.c));
      for (float& v : w) v = val(rng);
      for (float& v : b) v = val(rng);
      for (float& v : x) v = 4.0f * val(rng);
      const auto& acts = activations[static_cast<size_t>(iter) % activations.size()];
      const bool with_bias = iter % 2 == 0;
      auto k = DepthwiseConv::Create(s, w.data(), with_bias ? b.data() : nullptr, acts, isa);
      if (!k) GTEST_SKIP() << "this CPU has neither AVX-512F nor AVX2+FMA";
      std::vector<float> y(static_cast<size_t>(s.n * s.oh * s.ow * s.c), NAN);
      k->Run(x.data(), y.data());
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t oh = 0; oh < s.oh; ++oh)
          for (int64_t ow = 0; ow < s.ow; ++ow)
            for (int64_t c = 0; c < s.c; ++c) {
              double acc = with_bias ? b[static_cast<size_t>(c)] : 0.0;
              for (int64_t kh = 0; kh < s.kh; ++kh)
                for (int64_t kw = 0; kw < s.kw; ++kw) {
                  const int64_t ih = oh * s.sh - s.pt + kh * s.dh, iw = ow * s.sw - s.pl + kw * s.dw;
                  if (ih < 0 || ih >= s.ih || iw < 0 || iw >= s.iw) continue;
                  acc += static_cast<double>(x[static_cast<size_t>(((n * s.ih + ih) * s.iw + iw) * s.c + c)]) *
                         w[static_cast<size_t>((c * s.kh + kh) * s.kw + kw)];
                }
              const float want = Apply(static_cast<float>(acc), acts);
              const float got = y[static_cast<size_t>(((n * s.oh + oh) * s.ow + ow) * s.c + c)];
              ASSERT_NEAR(got, want, 1e-4f * (1.0f + std::fabs(want)))
                  << k->isa() << " c" << s.c << " k" << s.kh << "x" << s.kw << " s" << s.sh << "," << s.sw << " d" << s.dh
                  << " p" << s.pt << "," << s.pl << " in " << s.ih << "x" << s.iw << " at n" << n << " oh" << oh << " ow"
                  << ow << " c" << c;
            }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 120);
}

}  // namespace
}  // namespace kiln::cpu
