#include "backends/ref/ops/control_flow_util.h"

#include "backends/ref/ops/tensor_util.h"

namespace kiln::ref::control_flow {

Tensor Permuted(const Tensor& t, const std::vector<int>& perm) {
  const std::vector<int64_t> in_strides = StridesOf(t.dims());
  std::vector<int64_t> dims, strides;  // output dims and the input stride of each
  for (int p : perm) {
    dims.push_back(t.dim(p));
    strides.push_back(in_strides[static_cast<size_t>(p)]);
  }
  Tensor y(t.dtype(), dims);
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < y.numel(); ++i) {
    Unravel(i, dims, pos);
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) off += pos[d] * strides[d];
    CopyElement(y, i, t, off);
  }
  return y;
}

Tensor MoveAxisToFront(const Tensor& t, int axis) {
  if (axis == 0) return t;
  std::vector<int> perm = {axis};
  for (int d = 0; d < t.rank(); ++d)
    if (d != axis) perm.push_back(d);
  return Permuted(t, perm);
}

Tensor MoveFrontToAxis(const Tensor& t, int axis) {
  if (axis == 0) return t;
  std::vector<int> perm;
  for (int d = 1; d <= axis; ++d) perm.push_back(d);
  perm.push_back(0);
  for (int d = axis + 1; d < t.rank(); ++d) perm.push_back(d);
  return Permuted(t, perm);
}

Tensor SliceFront(const Tensor& t, int64_t start, int64_t len) {
  std::vector<int64_t> dims = t.dims();
  dims[0] = len;
  Tensor y(t.dtype(), dims);
  const int64_t offset = len > 0 ? start * (y.numel() / len) : 0;
  for (int64_t i = 0; i < y.numel(); ++i) CopyElement(y, i, t, offset + i);
  return y;
}

Tensor IndexFront(const Tensor& t, int64_t k) {
  Tensor row = SliceFront(t, k, 1);
  return row.Reshaped(std::vector<int64_t>(t.dims().begin() + 1, t.dims().end()));
}

Tensor PadFront(const Tensor& t, int64_t rows) {
  std::vector<int64_t> dims = t.dims();
  dims[0] = rows;
  Tensor y(t.dtype(), dims);
  for (int64_t i = 0; i < t.numel(); ++i) CopyElement(y, i, t, i);
  return y;
}

StatusOr<Tensor> ConcatFront(const std::vector<Tensor>& parts, const std::string& what) {
  if (parts.empty()) return InvalidArgument("no ", what, " to concatenate");
  const Tensor& first = parts[0];
  std::vector<int64_t> dims = first.dims();
  dims[0] = 0;
  for (size_t k = 0; k < parts.size(); ++k) {
    const Tensor& p = parts[k];
    if (p.dtype() != first.dtype())
      return InvalidArgument(what, " ", k, " is ", DTypeName(p.dtype()), " but ", what, " 0 is ", DTypeName(first.dtype()));
    bool same = p.rank() == first.rank();
    for (int d = 1; same && d < p.rank(); ++d) same = p.dim(d) == first.dim(d);
    if (!same)
      return InvalidArgument(what, " ", k, " has shape ", p.ShapeString(), ", incompatible with ", first.ShapeString());
    dims[0] += p.dim(0);
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(first.dtype(), dims, what));
  int64_t off = 0;
  for (const Tensor& p : parts)
    for (int64_t i = 0; i < p.numel(); ++i) CopyElement(y, off++, p, i);
  return y;
}

StatusOr<Tensor> StackFront(const std::vector<Tensor>& items, const TypeInfo& elem_type, const std::string& what) {
  if (items.empty()) {
    if (elem_type.kind != TypeInfo::Kind::kTensor || elem_type.dtype == DType::kUndefined)
      return InvalidArgument(what, ": no element type known for an empty result");
    std::vector<int64_t> dims = {0};
    if (elem_type.shape.has_rank())
      for (const Dim& d : elem_type.shape.dims()) dims.push_back(d.known() ? d.value : 0);
    return Tensor(elem_type.dtype, dims);
  }
  std::vector<Tensor> parts;
  parts.reserve(items.size());
  for (size_t k = 0; k < items.size(); ++k) {
    if (items[k].dims() != items[0].dims())
      return InvalidArgument(what, " changes shape from ", items[0].ShapeString(), " to ", items[k].ShapeString(),
                             " at step ", k);
    std::vector<int64_t> dims = items[k].dims();
    dims.insert(dims.begin(), 1);
    parts.push_back(items[k].Reshaped(dims));
  }
  return ConcatFront(parts, what);
}

StatusOr<bool> ReadCondition(const RValue& v, const std::string& what) {
  if (!v.is_tensor() || v.tensor.dtype() != DType::kBool || v.tensor.numel() != 1)
    return InvalidArgument(what, " must be a one-element bool tensor");
  return v.tensor.data<bool>()[0];
}

StatusOr<int64_t> ReadInteger(const RValue& v, const std::string& what) {
  if (!v.is_tensor() || v.tensor.numel() != 1) return InvalidArgument(what, " must be a one-element integer tensor");
  if (v.tensor.dtype() == DType::kInt64) return v.tensor.data<int64_t>()[0];
  if (v.tensor.dtype() == DType::kInt32) return v.tensor.data<int32_t>()[0];
  return InvalidArgument(what, " must be int32 or int64, got ", DTypeName(v.tensor.dtype()));
}

const TypeInfo& SubgraphOutputType(const Graph& g, size_t i) { return g.value(g.outputs()[i]).type; }

}  // namespace kiln::ref::control_flow
