// Private helpers of the tensor family's reference kernels (tensor*.cc): type-agnostic
// element copies (strings included), index checks, typed element comparison, and the
// per-file registration functions that RegisterTensorKernels calls.
#pragma once

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backends/ref/kernel.h"
#include "ir/tensor.h"

namespace kiln::ref {

// Copies element `si` of `src` into element `di` of `dst` (same dtype).
inline void CopyElement(Tensor& dst, int64_t di, const Tensor& src, int64_t si) {
  if (src.dtype() == DType::kString) {
    dst.data<std::string>()[di] = src.data<std::string>()[si];
    return;
  }
  const size_t e = DTypeSize(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw_data()) + di * e, static_cast<const char*>(src.raw_data()) + si * e, e);
}

// Multi-index of offset `off` in a C-ordered tensor of `dims`.
inline void Unravel(int64_t off, const std::vector<int64_t>& dims, std::vector<int64_t>& idx) {
  idx.resize(dims.size());
  for (size_t i = dims.size(); i-- > 0;) {
    idx[i] = dims[i] ? off % dims[i] : 0;
    off = dims[i] ? off / dims[i] : 0;
  }
}

// Product of dims[begin, end) (dims already validated by the tensor that holds them).
int64_t DimProduct(const std::vector<int64_t>& dims, int begin, int end);

// Input i read as int64 values (int32/int64 tensors); an error naming `what` otherwise.
StatusOr<std::vector<int64_t>> IntsInput(RefContext& ctx, int i, const char* what);
// Input i as one integer (a scalar or a one-element tensor of any numeric type).
StatusOr<int64_t> ScalarInput(RefContext& ctx, int i, const char* what);

// An index into a dimension of size n, negative counting from the end; OutOfRange otherwise.
StatusOr<int64_t> CheckIndex(int64_t i, int64_t n, const char* what);

// Three-way comparison of elements a and b of one tensor in its own type (exact for
// int64, lexicographic for strings). NaN compares greater than every number and equal to
// itself, as NumPy's sort orders it. Error for complex and undefined dtypes.
using ElementCompare = std::function<int(int64_t a, int64_t b)>;
StatusOr<ElementCompare> MakeElementCompare(const Tensor& t);

// out[i] = x[base + sum_a idx_a * src_strides[a]] over the output index space.
Tensor StridedCopy(const Tensor& x, const std::vector<int64_t>& out_dims, const std::vector<int64_t>& src_strides,
                   int64_t base = 0);

// Every tensor-family kernel takes tensor inputs; this wrapper checks that once.
template <RefKernelFn Fn>
Status TensorInputs(RefContext& ctx) {
  for (int i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i) && !ctx.input_value(i).is_tensor()) return InvalidArgument("input ", i, " must be a tensor");
  if (ctx.num_inputs() > 0 && !ctx.has_input(0)) return InvalidArgument("input 0 is required");
  return Fn(ctx);
}

// Registration of each file of the family (called by RegisterTensorKernels).
void RegisterTensorLayoutKernels(RefKernelRegistry& r);   // tensor.cc: reshape, transpose, concat, slice, pad...
void RegisterTensorIndexKernels(RefKernelRegistry& r);    // tensor_index.cc: gather, scatter, compress, nonzero
void RegisterTensorCreateKernels(RefKernelRegistry& r);   // tensor_create.cc: shape, constants, range, eye, one-hot
void RegisterTensorSortKernels(RefKernelRegistry& r);     // tensor_sort.cc: topk, arg*, unique, cumsum, reverse

}  // namespace kiln::ref
