// Broadcasting helpers for reference kernels (NumPy rules).
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "ir/tensor.h"

namespace kiln::ref {

// Output dims of broadcasting all `dims`; error if incompatible.
StatusOr<std::vector<int64_t>> BroadcastDims(const std::vector<std::vector<int64_t>>& dims);

// Walks the output index space of a broadcast, yielding for each output element the
// element offset in every input: for (BroadcastIter it(out, ins); !it.done(); it.Next()) it.offset(k).
class BroadcastIter {
 public:
  BroadcastIter(const std::vector<int64_t>& out_dims, const std::vector<std::vector<int64_t>>& in_dims);
  bool done() const { return index_ >= total_; }
  void Next();
  int64_t index() const { return index_; }
  int64_t offset(size_t k) const { return offsets_[k]; }

 private:
  std::vector<int64_t> out_dims_;
  std::vector<std::vector<int64_t>> strides_;  // per input, per output axis (0 where broadcast)
  std::vector<int64_t> counter_;
  std::vector<int64_t> offsets_;
  int64_t index_ = 0, total_ = 1;
};

// Reads element i of a numeric tensor as double / writes a double into element i.
double LoadDouble(const Tensor& t, int64_t i);
void StoreDouble(Tensor& t, int64_t i, double v);

}  // namespace kiln::ref
