// The public API's tensor descriptions and host tensors over the IR's values and tensors.
#include <algorithm>
#include <cstring>

#include "runtime/engine_impl.h"

namespace kiln {

StatusOr<TensorInfo> InfoOf(const Value& v) {
  TensorInfo info;
  info.name = v.name;
  const TypeInfo* t = &v.type;
  if (t->kind == TypeInfo::Kind::kOptional) {
    if (!t->elem) return Unimplemented("graph input/output '", v.name, "' is an optional of unknown type");
    t = t->elem.get();
    info.kind = t->kind == TypeInfo::Kind::kSequence ? ValueKind::kOptionalSequence : ValueKind::kOptionalTensor;
  } else if (t->kind == TypeInfo::Kind::kSequence) {
    info.kind = ValueKind::kSequence;
  }
  if (t->kind == TypeInfo::Kind::kSequence) {
    if (!t->elem || !t->elem->is_tensor())
      return Unimplemented("graph input/output '", v.name, "' of type ", v.type.ToString(),
                           " (a sequence of non-tensors) is not supported");
    t = t->elem.get();
  } else if (t->kind != TypeInfo::Kind::kTensor) {
    return Unimplemented("graph input/output '", v.name, "' of type ", v.type.ToString(), " is not supported");
  }
  if (t->dtype != DType::kUndefined && !IsValidDType(static_cast<int32_t>(t->dtype)))
    return Unimplemented("graph input/output '", v.name, "' has element type ", static_cast<int>(t->dtype),
                         ", which kiln does not compute");
  info.dtype = ToDataType(t->dtype);
  info.has_rank = t->shape.has_rank();
  if (info.has_rank)
    for (const Dim& d : t->shape.dims()) info.shape.push_back(d.known() ? d.value : -1);
  return info;
}

StatusOr<ModelSignature> SignatureOf(const Graph& g) {
  ModelSignature sig;
  for (ValueId v : g.inputs()) {
    if (g.value(v).constant) continue;
    KILN_ASSIGN_OR_RETURN(TensorInfo info, InfoOf(g.value(v)));
    sig.inputs.push_back(std::move(info));
  }
  for (ValueId v : g.outputs()) {
    KILN_ASSIGN_OR_RETURN(TensorInfo info, InfoOf(g.value(v)));
    sig.outputs.push_back(std::move(info));
  }
  return sig;
}

HostTensor ToHost(const Tensor& t) {
  HostTensor h = HostTensor::Allocate(ToDataType(t.dtype()), t.dims());
  if (t.dtype() == DType::kString) {
    std::copy(t.data<std::string>(), t.data<std::string>() + t.numel(), h.data_as<std::string>());
  } else if (t.nbytes() > 0) {
    std::memcpy(h.data(), t.raw_data(), t.nbytes());
  }
  return h;
}

StatusOr<Tensor> ViewOf(const HostTensor& t, const std::string& what) {
  if (static_cast<int>(t.dtype()) < 1 || static_cast<int>(t.dtype()) > 16)
    return InvalidArgument(what, " has an unknown element type (", static_cast<int>(t.dtype()), ")");
  if (t.data() == nullptr && t.numel() != 0) return InvalidArgument(what, " has no data");
  for (int64_t d : t.shape())
    if (d < 0) return InvalidArgument(what, " has a negative dimension");
  return Tensor::FromExternal(ToDType(t.dtype()), t.shape(), const_cast<void*>(t.data()), nullptr);
}

}  // namespace kiln
