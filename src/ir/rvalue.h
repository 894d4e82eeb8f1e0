// A runtime value as the reference backend and the tools see it.
#pragma once

#include <utility>
#include <vector>

#include "ir/tensor.h"

namespace kiln {

// A runtime value: a tensor, a sequence of tensors, or an empty optional.
struct RValue {
  enum class Kind { kNone, kTensor, kSequence };
  Kind kind = Kind::kNone;
  Tensor tensor;
  std::vector<Tensor> sequence;

  RValue() = default;
  RValue(Tensor t) : kind(Kind::kTensor), tensor(std::move(t)) {}  // NOLINT: implicit by design
  static RValue Sequence(std::vector<Tensor> s) { RValue v; v.kind = Kind::kSequence; v.sequence = std::move(s); return v; }
  static RValue None() { return RValue(); }
  bool is_tensor() const { return kind == Kind::kTensor; }
  bool is_sequence() const { return kind == Kind::kSequence; }
  bool is_none() const { return kind == Kind::kNone; }
};

}  // namespace kiln
