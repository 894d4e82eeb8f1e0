// kiln's own depthwise convolution (one filter per channel, the MobileNet/PP-OCR layer) on
// NHWC activations — the layout oneDNN's convolutions keep between layers on AVX-512 — with
// the bias and the fused activation applied in registers. AVX-512 (16 channels per vector)
// and AVX2+FMA (8) paths, picked from the CPU's features when the kernel is built; channel
// counts that are not a multiple of the vector use masked loads and stores.
//
// The builder times it against oneDNN's depthwise kernel on the real shapes (tactic
// "kiln_dw", recorded in plans like the others) and keeps the faster.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::cpu {

// An activation applied to each output in registers, in order.
struct DwActivation {
  enum class Kind { kRelu, kClip, kLinear, kHardSwish } kind;
  float alpha = 0, beta = 0;  // relu: negative slope; clip: [alpha, beta]; linear: alpha*x + beta
};

struct DwShape {
  int64_t n = 1, c = 1, ih = 1, iw = 1, oh = 1, ow = 1;
  int64_t kh = 3, kw = 3, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0;
};

class DepthwiseConv {
 public:
  // Null when this CPU has neither AVX-512F nor AVX2+FMA. weights: [C, 1, KH, KW] row-major;
  // bias: C values or null.
  // isa: "" = the best this CPU has; "avx2" forces the AVX2 path (tests).
  static std::unique_ptr<DepthwiseConv> Create(const DwShape& shape, const float* weights, const float* bias,
                                               std::vector<DwActivation> activations, const std::string& isa = "");
  // src: [N, IH, IW, C], dst: [N, OH, OW, C], both dense. Uses the calling OpenMP team size.
  void Run(const float* src, float* dst) const;
  const char* isa() const { return avx512_ ? "avx512" : "avx2"; }

 private:
  DwShape s_;
  int64_t cpad_ = 0;  // channels rounded up to the vector width
  bool avx512_ = false;
  std::vector<float> w_;     // [KH][KW][cpad], zero-padded
  std::vector<float> bias_;  // [cpad]
  std::vector<DwActivation> act_;
};

}  // namespace kiln::cpu
