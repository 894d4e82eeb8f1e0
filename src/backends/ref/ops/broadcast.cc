#include "backends/ref/ops/broadcast.h"

namespace kiln::ref {

StatusOr<std::vector<int64_t>> BroadcastDims(const std::vector<std::vector<int64_t>>& dims) {
  size_t rank = 0;
  for (const auto& d : dims) rank = std::max(rank, d.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& d : dims) {
    size_t off = rank - d.size();
    for (size_t i = 0; i < d.size(); ++i) {
      int64_t& o = out[off + i];
      if (d[i] == o || d[i] == 1) continue;
      if (o == 1) { o = d[i]; continue; }
      return InvalidArgument("shapes cannot be broadcast: dimension ", off + i, " is ", o, " vs ", d[i]);
    }
  }
  return out;
}

BroadcastIter::BroadcastIter(const std::vector<int64_t>& out_dims, const std::vector<std::vector<int64_t>>& in_dims)
    : out_dims_(out_dims), counter_(out_dims.size(), 0), offsets_(in_dims.size(), 0) {
  const size_t rank = out_dims.size();
  // An empty output: nothing to iterate. (Its other dims may be huge: their product, and
  // the inputs' strides, need not fit in int64.)
  for (int64_t d : out_dims)
    if (d == 0) {
      total_ = 0;
      strides_.assign(in_dims.size(), std::vector<int64_t>(rank, 0));
      return;
    }
  for (int64_t d : out_dims) total_ *= d;
  for (const auto& d : in_dims) {
    std::vector<int64_t> s(rank, 0);
    int64_t acc = 1;
    for (size_t i = d.size(); i-- > 0;) {
      size_t axis = rank - d.size() + i;
      s[axis] = d[i] == 1 ? 0 : acc;
      acc *= d[i];
    }
    strides_.push_back(std::move(s));
  }
}

void BroadcastIter::Next() {
  ++index_;
  for (size_t axis = out_dims_.size(); axis-- > 0;) {
    if (++counter_[axis] < out_dims_[axis]) {
      for (size_t k = 0; k < offsets_.size(); ++k) offsets_[k] += strides_[k][axis];
      return;
    }
    for (size_t k = 0; k < offsets_.size(); ++k) offsets_[k] -= strides_[k][axis] * (out_dims_[axis] - 1);
    counter_[axis] = 0;
  }
}

double LoadDouble(const Tensor& t, int64_t i) { return t.GetAsDouble(i); }

void StoreDouble(Tensor& t, int64_t i, double v) {
  VisitNumeric(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    t.data<T>()[i] = FromDouble<T>(v);
  });
}

}  // namespace kiln::ref
