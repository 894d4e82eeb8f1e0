// Helpers shared by the CPU backend's lowering functions.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/program.h"

namespace kiln::cpu {

struct EltwiseOp {
  dnnl::algorithm alg;
  float alpha, beta;
};

// The oneDNN eltwise algorithm computing a unary ONNX op (with its attributes and
// constant inputs), or nullopt.
// `constant_of` resolves a value of `g` to constant data where g alone cannot (an
// epilogue's inputs that are the outer graph's constants); null: g's own constants only.
std::optional<EltwiseOp> UnaryAlgorithm(const Graph& g, const Node& n,
                                        const std::function<const Tensor*(ValueId)>* constant_of = nullptr);
std::optional<dnnl::algorithm> BinaryAlgorithm(const std::string& op);
// dims with leading 1s up to `rank`.
std::vector<int64_t> LeftPad(std::vector<int64_t> dims, int rank);

// The channel-blocked format tag (nCw8c, nChw16c, nCdhw8c, ...) of a rank-3..5 tensor
// with channel blocks of `blk` (8 or 16); undef otherwise.
inline dnnl::memory::format_tag BlockedChannelTag(size_t rank, int64_t blk) {
  using tag = dnnl::memory::format_tag;
  if (blk != 8 && blk != 16) return tag::undef;
  if (rank == 3) return blk == 8 ? tag::nCw8c : tag::nCw16c;
  if (rank == 4) return blk == 8 ? tag::nChw8c : tag::nChw16c;
  if (rank == 5) return blk == 8 ? tag::nCdhw8c : tag::nCdhw16c;
  return tag::undef;
}

// The channels-last format tag (nwc, nhwc, ndhwc) of a rank-3..5 tensor; undef otherwise.
inline dnnl::memory::format_tag ChannelsLastTag(size_t rank) {
  using tag = dnnl::memory::format_tag;
  return rank == 3 ? tag::nwc : rank == 4 ? tag::nhwc : rank == 5 ? tag::ndhwc : tag::undef;
}

// Slice's constant parameters (axes default to 0..n-1, steps to 1), or nullopt when one is
// not a constant integer list or the lists differ in length (strided_copy.cc).
struct SliceParams {
  std::vector<int64_t> starts, ends, axes, steps;
};
std::optional<SliceParams> ConstSliceParams(const Graph& g, const Node& n);

// Static dims and dtype of a value (CheckSupported guarantees them for activations).
inline std::vector<int64_t> DimsOf(const Graph& g, ValueId v) {
  const Value& val = g.value(v);
  if (val.constant) return val.constant->dims();
  return val.type.shape.Sizes();
}
inline DType DTypeOfValue(const Graph& g, ValueId v) {
  const Value& val = g.value(v);
  return val.constant ? val.constant->dtype() : val.type.dtype;
}
inline bool IsF32(const Graph& g, ValueId v) { return v != kNoValue && DTypeOfValue(g, v) == DType::kFloat32; }
inline int64_t Numel(const std::vector<int64_t>& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

}  // namespace kiln::cpu
