#include "backends/cpu/depthwise.h"

// GCC 12 reports _mm512_min/max_ps's internal _mm512_undefined_ps() as maybe-uninitialized
// (a known false positive of the intrinsic headers).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <omp.h>

#include <algorithm>

#include "backends/cpu/parallel.h"
#include "plan/cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kiln::cpu {

#if defined(__x86_64__)
namespace {

// One row of outputs (n, oh) for the channels [c0, c0 + vector width): T outputs at a time
// in registers, each the sum over the window's valid taps, then bias and activations.
struct RowArgs {
  const DwShape* s;
  int64_t cpad;
  const float* w;
  const float* b;
  const DwActivation* act;
  size_t nact;
  const float* src;
  float* dst;
};

#define KILN_TARGET_AVX512 __attribute__((target("avx512f")))
#define KILN_TARGET_AVX2 __attribute__((target("avx2,fma")))

KILN_TARGET_AVX512 inline __m512 Activate512(__m512 x, const DwActivation* a, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    switch (a[i].kind) {
      case DwActivation::Kind::kRelu: {
        const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
        x = _mm512_mask_mul_ps(x, neg, x, _mm512_set1_ps(a[i].alpha));
        break;
      }
      case DwActivation::Kind::kClip:
        x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(a[i].alpha)), _mm512_set1_ps(a[i].beta));
        break;
      case DwActivation::Kind::kLinear:
        x = _mm512_fmadd_ps(x, _mm512_set1_ps(a[i].alpha), _mm512_set1_ps(a[i].beta));
        break;
      case DwActivation::Kind::kHardSwish: {
        __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f));
        t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
        x = _mm512_mul_ps(x, t);
        break;
      }
    }
  }
  return x;
}

// T outputs (ow0 .. ow0+T-1) x J channel vectors from c0 (J * 16 contiguous channels of
// each pixel: the loads of a tap read whole cache lines in order). Interior: every tap of
// every output is inside the input row (no checks); else each tap is checked. The last
// vector takes `tail` (the channels left of it, masked).
template <int T, int J, bool kInterior>
KILN_TARGET_AVX512 inline void Chunk512(const RowArgs& a, const float* in_n, float* out_row, int64_t oh, int64_t ow0,
                                        int64_t c0, __mmask16 tail) {
  const DwShape& s = *a.s;
  const int64_t C = s.c, step = s.sw * C;
  __m512 acc[T][J];
#pragma GCC unroll 16
  for (int j = 0; j < J; ++j) {
    const __m512 bias = _mm512_loadu_ps(a.b + c0 + 16 * j);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[t][j] = bias;
  }
  for (int64_t kh = 0; kh < s.kh; ++kh) {
    const int64_t ih = oh * s.sh - s.pt + kh * s.dh;
    if (ih < 0 || ih >= s.ih) continue;
    const float* in_row = in_n + ih * s.iw * C + c0;
    const float* wrow = a.w + kh * s.kw * a.cpad + c0;
    for (int64_t kw = 0; kw < s.kw; ++kw) {
      const int64_t iw0 = ow0 * s.sw - s.pl + kw * s.dw;
      const float* p = in_row + iw0 * C;
      __m512 wv[J];
#pragma GCC unroll 16
      for (int j = 0; j < J; ++j) wv[j] = _mm512_loadu_ps(wrow + kw * a.cpad + 16 * j);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        if (!kInterior) {
          const int64_t iw = iw0 + t * s.sw;
          if (iw < 0 || iw >= s.iw) continue;
        }
#pragma GCC unroll 16
        for (int j = 0; j < J; ++j) {
          const __m512 x = j == J - 1 ? _mm512_maskz_loadu_ps(tail, p + t * step + 16 * j) : _mm512_loadu_ps(p + t * step + 16 * j);
          acc[t][j] = _mm512_fmadd_ps(x, wv[j], acc[t][j]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t)
#pragma GCC unroll 16
    for (int j = 0; j < J; ++j) {
      const __m512 y = Activate512(acc[t][j], a.act, a.nact);
      float* q = out_row + (ow0 + t) * C + c0 + 16 * j;
      if (j == J - 1) _mm512_mask_storeu_ps(q, tail, y);
      else _mm512_storeu_ps(q, y);
    }
}

// The interior fast path for a kernel width KW and stride SW known at compile time
// (dilation 1): each input pixel of a kernel row is loaded once and feeds every output
// whose window covers it (a 512-bit load costs as much as an FMA on some cores, so the
// loads, not the FMAs, bound the naive loop). T outputs x J full channel vectors.
template <int T, int J, int KW, int SW>
KILN_TARGET_AVX512 inline void FastChunk512(const RowArgs& a, const float* in_n, float* out_row, int64_t oh, int64_t ow0,
                                            int64_t c0) {
  const DwShape& s = *a.s;
  const int64_t C = s.c;
  __m512 acc[T][J];
#pragma GCC unroll 16
  for (int j = 0; j < J; ++j) {
    const __m512 bias = _mm512_loadu_ps(a.b + c0 + 16 * j);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[t][j] = bias;
  }
  constexpr int kPixels = (T - 1) * SW + KW;
  for (int64_t kh = 0; kh < s.kh; ++kh) {
    const int64_t ih = oh * s.sh - s.pt + kh * s.dh;
    if (ih < 0 || ih >= s.ih) continue;
    const float* p = in_n + (ih * s.iw + ow0 * SW - s.pl) * C + c0;
    const float* wrow = a.w + kh * KW * a.cpad + c0;
    __m512 wv[KW][J];
#pragma GCC unroll 16
    for (int kw = 0; kw < KW; ++kw)
#pragma GCC unroll 16
      for (int j = 0; j < J; ++j) wv[kw][j] = _mm512_loadu_ps(wrow + kw * a.cpad + 16 * j);
#pragma GCC unroll 64
    for (int q = 0; q < kPixels; ++q) {
#pragma GCC unroll 16
      for (int j = 0; j < J; ++j) {
        const __m512 x = _mm512_loadu_ps(p + q * C + 16 * j);
#pragma GCC unroll 16
        for (int kw = 0; kw < KW; ++kw) {
          const int d = q - kw;
          if (d >= 0 && d % SW == 0 && d / SW < T) acc[d / SW][j] = _mm512_fmadd_ps(x, wv[kw][j], acc[d / SW][j]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t)
#pragma GCC unroll 16
    for (int j = 0; j < J; ++j)
      _mm512_storeu_ps(out_row + (ow0 + t) * C + c0 + 16 * j, Activate512(acc[t][j], a.act, a.nact));
}

// Interior outputs [ow, hi) of one row with the fast path where it applies; returns the
// first output it did not compute.
template <int KW, int SW>
KILN_TARGET_AVX512 int64_t FastSpan512(const RowArgs& a, const float* in_n, float* out_row, int64_t oh, int64_t ow,
                                       int64_t hi, int64_t cb0, int64_t cb1) {
  const int64_t C = a.s->c;
  constexpr int T = KW <= 3 ? 8 : 6;
  for (; ow + T <= hi; ow += T) {
    int64_t cb = cb0;
    for (; cb + 2 <= cb1 && (cb + 2) * 16 <= C; cb += 2) FastChunk512<T, 2, KW, SW>(a, in_n, out_row, oh, ow, cb * 16);
    for (; cb < cb1 && (cb + 1) * 16 <= C; ++cb) FastChunk512<T, 1, KW, SW>(a, in_n, out_row, oh, ow, cb * 16);
    if (cb < cb1) {  // a partial last vector: the checked path
      const __mmask16 m = static_cast<__mmask16>((1u << (C - cb * 16)) - 1);
      for (int64_t t = 0; t < T; ++t) Chunk512<1, 1, true>(a, in_n, out_row, oh, ow + t, cb * 16, m);
    }
  }
  return ow;
}

// Outputs [ow_begin, ow_end) of one row, channel vectors [cb0, cb1): groups of 4 vectors,
// then single ones (the last one masked when C is not a multiple of 16).
template <int T, bool kInterior>
KILN_TARGET_AVX512 inline void Span512(const RowArgs& a, const float* in_n, float* out_row, int64_t oh, int64_t ow,
                                       int64_t cb0, int64_t cb1) {
  const int64_t C = a.s->c;
  int64_t cb = cb0;
  for (; cb + 4 <= cb1 && (cb + 4) * 16 <= C; cb += 4)
    Chunk512<T, 4, kInterior>(a, in_n, out_row, oh, ow, cb * 16, static_cast<__mmask16>(0xFFFF));
  for (; cb < cb1; ++cb) {
    const int64_t left = C - cb * 16;
    const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    Chunk512<T, 1, kInterior>(a, in_n, out_row, oh, ow, cb * 16, m);
  }
}

// Output row (n, oh), channel vectors [cb0, cb1): the interior 2 outputs at a time, the
// borders one at a time; all channels of a pixel before the next (contiguous reads).
KILN_TARGET_AVX512 void Row512(const RowArgs& a, int64_t n, int64_t oh, int64_t cb0, int64_t cb1) {
  const DwShape& s = *a.s;
  const int64_t C = s.c;
  const float* in_n = a.src + n * s.ih * s.iw * C;
  float* out_row = a.dst + (n * s.oh + oh) * s.ow * C;
  // Interior outputs: ow * sw - pl >= 0 and ow * sw - pl + (kw - 1) * dw < iw.
  const int64_t lo = std::min(s.ow, (s.pl + s.sw - 1) / s.sw);
  const int64_t last = s.iw - 1 + s.pl - (s.kw - 1) * s.dw;  // ow * sw <= last
  const int64_t hi = std::max(lo, std::min(s.ow, last < 0 ? 0 : last / s.sw + 1));
  int64_t ow = 0;
  for (; ow < lo; ++ow) Span512<1, false>(a, in_n, out_row, oh, ow, cb0, cb1);
  if (s.dw == 1 && s.kw == 3 && s.sw == 1) ow = FastSpan512<3, 1>(a, in_n, out_row, oh, ow, hi, cb0, cb1);
  else if (s.dw == 1 && s.kw == 3 && s.sw == 2) ow = FastSpan512<3, 2>(a, in_n, out_row, oh, ow, hi, cb0, cb1);
  else if (s.dw == 1 && s.kw == 5 && s.sw == 1) ow = FastSpan512<5, 1>(a, in_n, out_row, oh, ow, hi, cb0, cb1);
  else if (s.dw == 1 && s.kw == 5 && s.sw == 2) ow = FastSpan512<5, 2>(a, in_n, out_row, oh, ow, hi, cb0, cb1);
  for (; ow + 2 <= hi; ow += 2) Span512<2, true>(a, in_n, out_row, oh, ow, cb0, cb1);
  for (; ow < s.ow; ++ow) Span512<1, false>(a, in_n, out_row, oh, ow, cb0, cb1);
}

KILN_TARGET_AVX2 inline __m256 Activate256(__m256 x, const DwActivation* a, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    switch (a[i].kind) {
      case DwActivation::Kind::kRelu: {
        const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
        x = _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(a[i].alpha)), neg);
        break;
      }
      case DwActivation::Kind::kClip:
        x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(a[i].alpha)), _mm256_set1_ps(a[i].beta));
        break;
      case DwActivation::Kind::kLinear:
        x = _mm256_fmadd_ps(x, _mm256_set1_ps(a[i].alpha), _mm256_set1_ps(a[i].beta));
        break;
      case DwActivation::Kind::kHardSwish: {
        __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.0f / 6.0f), _mm256_set1_ps(0.5f));
        t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
        x = _mm256_mul_ps(x, t);
        break;
      }
    }
  }
  return x;
}

// Lanes [0, valid) of 8 set.
KILN_TARGET_AVX2 inline __m256i TailMask256(int64_t valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(valid, 8))),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int T, bool kInterior>
KILN_TARGET_AVX2 inline void Chunk256(const RowArgs& a, const float* in_n, float* out_row, int64_t oh, int64_t ow0,
                                      int64_t c0, __m256i mask) {
  const DwShape& s = *a.s;
  const int64_t C = s.c;
  __m256 acc[T];
  const __m256 bias = _mm256_loadu_ps(a.b + c0);
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = bias;
  for (int64_t kh = 0; kh < s.kh; ++kh) {
    const int64_t ih = oh * s.sh - s.pt + kh * s.dh;
    if (ih < 0 || ih >= s.ih) continue;
    const float* in_row = in_n + ih * s.iw * C + c0;
    for (int64_t kw = 0; kw < s.kw; ++kw) {
      const __m256 wv = _mm256_loadu_ps(a.w + (kh * s.kw + kw) * a.cpad + c0);
      const int64_t iw0 = ow0 * s.sw - s.pl + kw * s.dw;
      const float* p = in_row + iw0 * C;
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        if (!kInterior) {
          const int64_t iw = iw0 + t * s.sw;
          if (iw < 0 || iw >= s.iw) continue;
        }
        acc[t] = _mm256_fmadd_ps(_mm256_maskload_ps(p + t * s.sw * C, mask), wv, acc[t]);
      }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) _mm256_maskstore_ps(out_row + (ow0 + t) * C + c0, mask, Activate256(acc[t], a.act, a.nact));
}

// The AVX2 counterpart of FastChunk512: T outputs x one 8-channel vector, each input
// pixel of a kernel row loaded once.
template <int T, int KW, int SW>
KILN_TARGET_AVX2 inline void FastChunk256(const RowArgs& a, const float* in_n, float* out_row, int64_t oh, int64_t ow0,
                                          int64_t c0) {
  const DwShape& s = *a.s;
  const int64_t C = s.c;
  __m256 acc[T];
  const __m256 bias = _mm256_loadu_ps(a.b + c0);
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = bias;
  constexpr int kPixels = (T - 1) * SW + KW;
  for (int64_t kh = 0; kh < s.kh; ++kh) {
    const int64_t ih = oh * s.sh - s.pt + kh * s.dh;
    if (ih < 0 || ih >= s.ih) continue;
    const float* p = in_n + (ih * s.iw + ow0 * SW - s.pl) * C + c0;
    const float* wrow = a.w + kh * KW * a.cpad + c0;
    __m256 wv[KW];
#pragma GCC unroll 16
    for (int kw = 0; kw < KW; ++kw) wv[kw] = _mm256_loadu_ps(wrow + kw * a.cpad);
#pragma GCC unroll 64
    for (int q = 0; q < kPixels; ++q) {
      const __m256 x = _mm256_loadu_ps(p + q * C);
#pragma GCC unroll 16
      for (int kw = 0; kw < KW; ++kw) {
        const int d = q - kw;
        if (d >= 0 && d % SW == 0 && d / SW < T) acc[d / SW] = _mm256_fmadd_ps(x, wv[kw], acc[d / SW]);
      }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out_row + (ow0 + t) * C + c0, Activate256(acc[t], a.act, a.nact));
}

template <int KW, int SW>
KILN_TARGET_AVX2 int64_t FastSpan256(const RowArgs& a, const float* in_n, float* out_row, int64_t oh, int64_t ow,
                                     int64_t hi, int64_t cb0, int64_t cb1) {
  const int64_t C = a.s->c;
  constexpr int T = KW <= 3 ? 8 : 6;
  for (; ow + T <= hi; ow += T) {
    int64_t cb = cb0;
    for (; cb < cb1 && (cb + 1) * 8 <= C; ++cb) FastChunk256<T, KW, SW>(a, in_n, out_row, oh, ow, cb * 8);
    if (cb < cb1)  // a partial last vector: the checked path
      for (int64_t t = 0; t < T; ++t) Chunk256<1, true>(a, in_n, out_row, oh, ow + t, cb * 8, TailMask256(C - cb * 8));
  }
  return ow;
}

KILN_TARGET_AVX2 void Row256(const RowArgs& a, int64_t n, int64_t oh, int64_t cb0, int64_t cb1) {
  const DwShape& s = *a.s;
  const int64_t C = s.c;
  const float* in_n = a.src + n * s.ih * s.iw * C;
  float* out_row = a.dst + (n * s.oh + oh) * s.ow * C;
  const int64_t lo = std::min(s.ow, (s.pl + s.sw - 1) / s.sw);
  const int64_t last = s.iw - 1 + s.pl - (s.kw - 1) * s.dw;
  const int64_t hi = std::max(lo, std::min(s.ow, last < 0 ? 0 : last / s.sw + 1));
  int64_t ow = 0;
  for (; ow < lo; ++ow)
    for (int64_t cb = cb0; cb < cb1; ++cb) Chunk256<1, false>(a, in_n, out_row, oh, ow, cb * 8, TailMask256(C - cb * 8));
  if (s.dw == 1 && s.kw == 3 && s.sw == 1) ow = FastSpan256<3, 1>(a, in_n, out_row, oh, ow, hi, cb0, cb1);
  else if (s.dw == 1 && s.kw == 3 && s.sw == 2) ow = FastSpan256<3, 2>(a, in_n, out_row, oh, ow, hi, cb0, cb1);
  else if (s.dw == 1 && s.kw == 5 && s.sw == 1) ow = FastSpan256<5, 1>(a, in_n, out_row, oh, ow, hi, cb0, cb1);
  else if (s.dw == 1 && s.kw == 5 && s.sw == 2) ow = FastSpan256<5, 2>(a, in_n, out_row, oh, ow, hi, cb0, cb1);
  for (; ow + 4 <= hi; ow += 4)
    for (int64_t cb = cb0; cb < cb1; ++cb) Chunk256<4, true>(a, in_n, out_row, oh, ow, cb * 8, TailMask256(C - cb * 8));
  for (; ow < s.ow; ++ow)
    for (int64_t cb = cb0; cb < cb1; ++cb) Chunk256<1, false>(a, in_n, out_row, oh, ow, cb * 8, TailMask256(C - cb * 8));
}

}  // namespace
#endif  // __x86_64__

std::unique_ptr<DepthwiseConv> DepthwiseConv::Create(const DwShape& shape, const float* weights, const float* bias,
                                                     std::vector<DwActivation> activations, const std::string& isa) {
#if defined(__x86_64__)
  // plan/cpu_features.h: what the CPU has and the OS has enabled (the AVX-512 state).
  auto has = [](const char* f) {
    StatusOr<bool> r = CpuHasFeature(f);
    return r.ok() && *r;
  };
  const bool avx512 = has("avx512f") && isa != "avx2";
  const bool avx2 = has("avx2") && has("fma");
  if (!avx512 && !avx2) return nullptr;
  auto k = std::unique_ptr<DepthwiseConv>(new DepthwiseConv());
  k->s_ = shape;
  k->avx512_ = avx512;
  const int64_t vec = avx512 ? 16 : 8;
  k->cpad_ = (shape.c + vec - 1) / vec * vec;
  k->w_.assign(static_cast<size_t>(shape.kh * shape.kw * k->cpad_), 0.0f);
  for (int64_t c = 0; c < shape.c; ++c)
    for (int64_t i = 0; i < shape.kh * shape.kw; ++i)
      k->w_[static_cast<size_t>(i * k->cpad_ + c)] = weights[c * shape.kh * shape.kw + i];
  k->bias_.assign(static_cast<size_t>(k->cpad_), 0.0f);
  if (bias != nullptr) std::copy(bias, bias + shape.c, k->bias_.begin());
  k->act_ = std::move(activations);
  return k;
#else
  (void)shape, (void)weights, (void)bias, (void)activations, (void)isa;
  return nullptr;
#endif
}

void DepthwiseConv::Run(const float* src, float* dst) const {
#if defined(__x86_64__)
  const RowArgs a{&s_, cpad_, w_.data(), bias_.data(), act_.data(), act_.size(), src, dst};
  const int64_t vec = avx512_ ? 16 : 8;
  const int64_t blocks = cpad_ / vec;
  // Tasks: output rows, each split into channel groups when there are few rows for the team.
  const int64_t rows = s_.n * s_.oh;
  const int64_t groups = rows >= 4 * omp_get_max_threads() ? 1 : std::min<int64_t>(blocks, 4);
  const int64_t per = (blocks + groups - 1) / groups;
  const int64_t tasks = rows * groups;
  ParallelFor(tasks, 0, [&](int64_t task) {
    const int64_t gi = task % groups, row = task / groups;
    const int64_t n = row / s_.oh, oh = row % s_.oh;
    const int64_t cb0 = gi * per, cb1 = std::min(blocks, cb0 + per);
    if (cb0 >= cb1) return;
    if (avx512_) Row512(a, n, oh, cb0, cb1);
    else Row256(a, n, oh, cb0, cb1);
  });
#else
  (void)src, (void)dst;
#endif
}

}  // namespace kiln::cpu
