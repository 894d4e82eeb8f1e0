#include "frontend/onnx/tensor_proto.h"

#include <onnx/onnx_pb.h>
#include <onnx/onnx-data.pb.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "ir/rvalue.h"
#include "base/checked_math.h"

namespace kiln {

namespace {

// Copies `count` typed values from a repeated field into the tensor, converting each.
template <typename Dst, typename Field, typename Conv>
Status CopyField(const Field& field, Tensor& t, int64_t per_elem, const std::string& what, const char* field_name,
                 Conv conv) {
  if (static_cast<int64_t>(field.size()) != t.numel() * per_elem)
    return InvalidArgument(what, ": ", field_name, " holds ", field.size(), " values but the dims ",
                           DimsToString(t.dims()), " need ", t.numel() * per_elem);
  Dst* dst = t.data<Dst>();
  for (int64_t i = 0; i < t.numel(); ++i) dst[i] = conv(field, i);
  return Status::OK();
}

StatusOr<std::string> ReadExternal(const onnx::TensorProto& proto, const ExternalDataPolicy& policy,
                                   const std::string& what, size_t expected_bytes) {
  // ONNX's keys: location (required), offset, length, checksum. A key given twice is an
  // error, not "the last one wins": two locations would make the checks and the read disagree.
  std::string location;
  int64_t offset = 0, length = -1;
  bool seen_location = false, seen_offset = false, seen_length = false, seen_checksum = false;
  for (const auto& kv : proto.external_data()) {
    bool* seen = kv.key() == "location" ? &seen_location
                 : kv.key() == "offset" ? &seen_offset
                 : kv.key() == "length" ? &seen_length
                 : kv.key() == "checksum" ? &seen_checksum
                                          : nullptr;
    if (seen == nullptr)
      return InvalidArgument(what, ": unknown external_data key '", kv.key(),
                             "' (ONNX defines location, offset, length and checksum)");
    if (*seen) return InvalidArgument(what, ": external_data key '", kv.key(), "' is given more than once");
    *seen = true;
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(kv.value().c_str(), &end, 10);
      if (kv.value().empty() || end == kv.value().c_str() || *end != '\0' || v < 0 || errno == ERANGE)
        return InvalidArgument(what, ": external_data '", kv.key(), "' is not a non-negative integer: '", kv.value(), "'");
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  if (!seen_location) return InvalidArgument(what, ": external data without a 'location'");
  auto it = policy.open_files ? policy.open_files->find(location) : decltype(policy.open_files->end()){};
  ReadOnlyFile file;
  if (policy.open_files && it != policy.open_files->end()) {
    file = it->second;
  } else {
    KILN_ASSIGN_OR_RETURN(file, ReadOnlyFile::OpenInside(policy.base_dir, location, what));
    if (policy.open_files) policy.open_files->emplace(location, file);
  }
  if (offset > file.size())
    return InvalidArgument(what, ": external data offset ", offset, " is past the end of '", location, "' (",
                           file.size(), " bytes)");
  if (length < 0) length = file.size() - offset;
  if (static_cast<uint64_t>(length) != expected_bytes)
    return InvalidArgument(what, ": external data has ", length, " bytes", seen_length ? "" : " (to the end of the file)",
                           " but the dims need ", expected_bytes);
  if (length > file.size() - offset)
    return InvalidArgument(what, ": external data [", offset, ", +", length, ") runs past the end of '", location,
                           "' (", file.size(), " bytes)");
  auto bytes = file.ReadRange(offset, length);
  if (!bytes.ok()) return bytes.status().WithPrefix(what);
  return bytes;
}

}  // namespace

StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto, const ExternalDataPolicy& policy,
                                 const std::string& what_in) {
  std::string what = what_in.empty() ? StrCat("tensor '", proto.name(), "'") : what_in;
  if (proto.has_segment()) return Unimplemented(what, ": segmented tensors are not supported");
  if (!IsValidDType(proto.data_type()))
    return InvalidArgument(what, ": invalid data_type ", proto.data_type());
  DType dtype = static_cast<DType>(proto.data_type());
  std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  const bool external = proto.data_location() == onnx::TensorProto::EXTERNAL;
  // The data must be there before the tensor is allocated: a few bytes of protobuf must not
  // make kiln allocate what its dims claim (found by fuzzing: 64 GiB for an empty tensor).
  std::string ext;
  if (dtype != DType::kString) {
    KILN_ASSIGN_OR_RETURN(int64_t numel, CheckedNumel(dims, what));
    int64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(DTypeSize(dtype)), &nbytes))
      return InvalidArgument(what, ": ", DimsToString(dims), " is too large");
    if (external) {
      KILN_ASSIGN_OR_RETURN(ext, ReadExternal(proto, policy, what, static_cast<size_t>(nbytes)));
    } else if (proto.has_raw_data()) {
      if (static_cast<int64_t>(proto.raw_data().size()) != nbytes)
        return InvalidArgument(what, ": raw_data has ", proto.raw_data().size(), " bytes but ", DimsToString(dims),
                               " needs ", nbytes);
    } else {
      // The one field this dtype is stored in must hold every value before anything is
      // allocated (complex types hold two per element).
      int64_t provided = 0, needed = numel;
      switch (dtype) {
        case DType::kFloat32: provided = proto.float_data_size(); break;
        case DType::kComplex64: provided = proto.float_data_size(), needed = 2 * numel; break;
        case DType::kFloat64: provided = proto.double_data_size(); break;
        case DType::kComplex128: provided = proto.double_data_size(), needed = 2 * numel; break;
        case DType::kInt64: provided = proto.int64_data_size(); break;
        case DType::kUInt32:
        case DType::kUInt64: provided = proto.uint64_data_size(); break;
        default: provided = proto.int32_data_size(); break;
      }
      if (numel > 0 && needed > provided)
        return InvalidArgument(what, ": holds ", provided, " values but ", DimsToString(dims), " needs ", needed);
    }
  } else {
    KILN_ASSIGN_OR_RETURN(int64_t numel, CheckedNumel(dims, what));
    if (numel > proto.string_data_size())
      return InvalidArgument(what, ": holds ", proto.string_data_size(), " strings but ", DimsToString(dims), " needs ", numel);
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Create(dtype, dims, what));

  if (external || proto.has_raw_data()) {
    if (dtype == DType::kString) return InvalidArgument(what, ": string tensors cannot use raw or external data");
    const std::string* bytes = external ? &ext : &proto.raw_data();
    if (bytes->size() != t.nbytes())
      return InvalidArgument(what, ": raw_data has ", bytes->size(), " bytes but ", t.ShapeString(), " needs ",
                             t.nbytes());
    if (t.nbytes() > 0) std::memcpy(t.raw_data(), bytes->data(), t.nbytes());
    if (dtype == DType::kBool)  // normalize to 0/1 so bool reads are defined
      for (int64_t i = 0; i < t.numel(); ++i) reinterpret_cast<uint8_t*>(t.raw_data())[i] = reinterpret_cast<uint8_t*>(t.raw_data())[i] != 0;
    return t;
  }

  auto i32 = [](const auto& f, int64_t i) { return f.Get(static_cast<int>(i)); };
  switch (dtype) {
    case DType::kFloat32:
      KILN_RETURN_IF_ERROR(CopyField<float>(proto.float_data(), t, 1, what, "float_data", i32));
      break;
    case DType::kComplex64: {
      if (proto.float_data_size() != t.numel() * 2)
        return InvalidArgument(what, ": float_data holds ", proto.float_data_size(), " values, need ", t.numel() * 2);
      auto* d = t.data<std::complex<float>>();
      for (int64_t i = 0; i < t.numel(); ++i) d[i] = {proto.float_data(int(2 * i)), proto.float_data(int(2 * i + 1))};
      break;
    }
    case DType::kComplex128: {
      if (proto.double_data_size() != t.numel() * 2)
        return InvalidArgument(what, ": double_data holds ", proto.double_data_size(), " values, need ", t.numel() * 2);
      auto* d = t.data<std::complex<double>>();
      for (int64_t i = 0; i < t.numel(); ++i) d[i] = {proto.double_data(int(2 * i)), proto.double_data(int(2 * i + 1))};
      break;
    }
    case DType::kFloat64:
      KILN_RETURN_IF_ERROR(CopyField<double>(proto.double_data(), t, 1, what, "double_data", i32));
      break;
    case DType::kInt64:
      KILN_RETURN_IF_ERROR(CopyField<int64_t>(proto.int64_data(), t, 1, what, "int64_data", i32));
      break;
    case DType::kUInt32:
      KILN_RETURN_IF_ERROR(CopyField<uint32_t>(proto.uint64_data(), t, 1, what, "uint64_data",
                                               [](const auto& f, int64_t i) { return static_cast<uint32_t>(f.Get(int(i))); }));
      break;
    case DType::kUInt64:
      KILN_RETURN_IF_ERROR(CopyField<uint64_t>(proto.uint64_data(), t, 1, what, "uint64_data", i32));
      break;
    case DType::kString:
      KILN_RETURN_IF_ERROR(CopyField<std::string>(proto.string_data(), t, 1, what, "string_data", i32));
      break;
    case DType::kInt32:
      KILN_RETURN_IF_ERROR(CopyField<int32_t>(proto.int32_data(), t, 1, what, "int32_data", i32));
      break;
    default: {
      // int8/uint8/int16/uint16/bool/float16/bfloat16: stored in int32_data (16-bit types as bits).
      bool ok = VisitNumeric(dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        Status st = CopyField<T>(proto.int32_data(), t, 1, what, "int32_data", [](const auto& f, int64_t i) {
          int32_t v = f.Get(static_cast<int>(i));
          if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return T::FromBits(static_cast<uint16_t>(v));
          else if constexpr (std::is_same_v<T, bool>) return v != 0;
          else return static_cast<T>(v);
        });
        if (!st.ok()) t = Tensor();
        (void)st;
      });
      if (!ok || !t.defined()) return InvalidArgument(what, ": int32_data does not match the dims ", DimsToString(dims));
      break;
    }
  }
  return t;
}

StatusOr<TypeInfo> TypeFromProto(const onnx::TypeProto& proto, const std::string& what) {
  switch (proto.value_case()) {
    case onnx::TypeProto::kTensorType: {
      const auto& tt = proto.tensor_type();
      TypeInfo t;
      if (tt.elem_type() != 0) {
        if (!IsValidDType(tt.elem_type())) return InvalidArgument(what, ": invalid elem_type ", tt.elem_type());
        t.dtype = static_cast<DType>(tt.elem_type());
      }
      if (tt.has_shape()) {
        std::vector<Dim> dims;
        for (const auto& d : tt.shape().dim()) {
          if (d.has_dim_value()) {
            if (d.dim_value() < 0) return InvalidArgument(what, ": negative dimension ", d.dim_value());
            dims.emplace_back(d.dim_value());
          } else if (d.has_dim_param() && !d.dim_param().empty()) {
            dims.push_back(Dim::Symbol(d.dim_param()));
          } else {
            dims.push_back(Dim::Unknown());
          }
        }
        t.shape = Shape(std::move(dims));
      }
      return t;
    }
    case onnx::TypeProto::kSequenceType: {
      if (!proto.sequence_type().has_elem_type()) return TypeInfo::Sequence(TypeInfo{});
      KILN_ASSIGN_OR_RETURN(TypeInfo e, TypeFromProto(proto.sequence_type().elem_type(), what));
      return TypeInfo::Sequence(std::move(e));
    }
    case onnx::TypeProto::kOptionalType: {
      if (!proto.optional_type().has_elem_type()) return TypeInfo::Optional(TypeInfo{});
      KILN_ASSIGN_OR_RETURN(TypeInfo e, TypeFromProto(proto.optional_type().elem_type(), what));
      return TypeInfo::Optional(std::move(e));
    }
    case onnx::TypeProto::VALUE_NOT_SET:
      return TypeInfo{};
    default:
      return Unimplemented(what, ": map and sparse-tensor types are not supported");
  }
}

namespace {

// A serialized proto is at most 2 GiB (protobuf's own limit).
constexpr int64_t kMaxProtoFileBytes = int64_t{2} << 30;

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(ReadOnlyFile f, ReadOnlyFile::Open(path));
  return f.ReadAll(kMaxProtoFileBytes);
}

StatusOr<RValue> SequenceToValue(const onnx::SequenceProto& seq, const std::string& what) {
  if (seq.elem_type() != onnx::SequenceProto::TENSOR && seq.elem_type() != onnx::SequenceProto::UNDEFINED)
    return Unimplemented(what, ": only sequences of tensors are supported");
  std::vector<Tensor> items;
  for (int i = 0; i < seq.tensor_values_size(); ++i) {
    KILN_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(seq.tensor_values(i), {}, StrCat(what, "[", i, "]")));
    items.push_back(std::move(t));
  }
  return RValue::Sequence(std::move(items));
}

}  // namespace

StatusOr<Tensor> ReadTensorProtoFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) return InvalidArgument(path, ": not a valid TensorProto");
  return TensorFromProto(proto, {}, path);
}

namespace {

// What a .pb file's bytes decode to as each of the three messages: strictly (no unknown
// fields, the message's own invariants), so a file written as one kind is not taken for
// another (protobuf parses almost any bytes as almost any message).
StatusOr<RValue> DecodeAs(const std::string& bytes, TypeInfo::Kind kind, const std::string& path) {
  if (kind == TypeInfo::Kind::kSequence) {
    onnx::SequenceProto seq;
    if (!seq.ParseFromString(bytes) || !seq.unknown_fields().empty() || seq.elem_type() == onnx::SequenceProto::UNDEFINED)
      return InvalidArgument(path, ": not a SequenceProto");
    for (const auto& t : seq.tensor_values())
      if (!t.unknown_fields().empty()) return InvalidArgument(path, ": not a SequenceProto");
    return SequenceToValue(seq, path);
  }
  if (kind == TypeInfo::Kind::kOptional) {
    onnx::OptionalProto opt;
    if (!opt.ParseFromString(bytes) || !opt.unknown_fields().empty()) return InvalidArgument(path, ": not an OptionalProto");
    // (An empty optional may leave elem_type UNDEFINED; one with a value may not.)
    const bool has_value = opt.has_tensor_value() || opt.has_sequence_value() || opt.has_sparse_tensor_value() ||
                           opt.has_map_value() || opt.has_optional_value();
    if (opt.elem_type() == onnx::OptionalProto::UNDEFINED && has_value) return InvalidArgument(path, ": not an OptionalProto");
    if (opt.has_tensor_value()) {
      KILN_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(opt.tensor_value(), {}, path));
      return RValue(std::move(t));
    }
    if (opt.has_sequence_value()) return SequenceToValue(opt.sequence_value(), path);
    return RValue::None();
  }
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes) || !proto.unknown_fields().empty() || proto.has_segment() ||
      proto.data_type() == onnx::TensorProto::UNDEFINED)
    return InvalidArgument(path, ": not a TensorProto");
  KILN_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(proto, {}, path));
  return RValue(std::move(t));
}

const char* MessageName(TypeInfo::Kind k) {
  return k == TypeInfo::Kind::kSequence ? "SequenceProto" : k == TypeInfo::Kind::kOptional ? "OptionalProto" : "TensorProto";
}

}  // namespace

StatusOr<RValue> ReadValueProtoFile(const std::string& path, const TypeInfo* hint) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  const TypeInfo::Kind kind = hint ? hint->kind : TypeInfo::Kind::kTensor;
  StatusOr<RValue> v = DecodeAs(bytes, kind, path);
  if (v.ok()) return v;
  // Say what the file holds instead, when it is one of the others (an empty sequence and an
  // empty optional can be the same bytes: both are named then).
  std::string holds;
  for (TypeInfo::Kind other : {TypeInfo::Kind::kTensor, TypeInfo::Kind::kSequence, TypeInfo::Kind::kOptional}) {
    if (other == kind || !DecodeAs(bytes, other, path).ok()) continue;
    holds += StrCat(holds.empty() ? "a " : " or an ", MessageName(other));
  }
  if (!holds.empty())
    return InvalidArgument(path, " holds ", holds, ", but a ", MessageName(kind), " is needed",
                           hint ? StrCat(" (the value's type is ", hint->ToString(), ")") : std::string());
  return v.status();
}

namespace {

void TensorToProto(const Tensor& t, const std::string& name, onnx::TensorProto* p) {
  p->set_name(name);
  p->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.dims()) p->add_dims(d);
  if (t.dtype() == DType::kString) {
    for (int64_t i = 0; i < t.numel(); ++i) p->add_string_data(t.data<std::string>()[i]);
  } else {
    p->set_raw_data(t.raw_data(), t.nbytes());
  }
}

void SequenceToProto(const std::vector<Tensor>& items, const std::string& name, onnx::SequenceProto* p) {
  p->set_name(name);
  p->set_elem_type(onnx::SequenceProto::TENSOR);
  for (const Tensor& t : items) TensorToProto(t, "", p->add_tensor_values());
}

}  // namespace

Status WriteValueProtoFile(const std::string& path, const RValue& v, const TypeInfo& type, const std::string& name) {
  std::string bytes;
  if (type.kind == TypeInfo::Kind::kOptional) {
    onnx::OptionalProto opt;
    opt.set_name(name);
    const bool seq = type.elem && type.elem->kind == TypeInfo::Kind::kSequence;
    opt.set_elem_type(seq || v.is_sequence() ? onnx::OptionalProto::SEQUENCE : onnx::OptionalProto::TENSOR);
    if (v.is_tensor()) TensorToProto(v.tensor, "", opt.mutable_tensor_value());
    if (v.is_sequence()) SequenceToProto(v.sequence, "", opt.mutable_sequence_value());
    bytes = opt.SerializeAsString();
  } else if (v.is_sequence()) {
    onnx::SequenceProto seq;
    SequenceToProto(v.sequence, name, &seq);
    bytes = seq.SerializeAsString();
  } else if (v.is_tensor()) {
    onnx::TensorProto t;
    TensorToProto(v.tensor, name, &t);
    bytes = t.SerializeAsString();
  } else {
    return InvalidArgument(path, ": '", name, "' holds no value but its type ", type.ToString(), " is not optional");
  }
  KILN_ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(path));
  KILN_RETURN_IF_ERROR(out.Write(bytes.data(), bytes.size()));
  return out.Commit();
}

}  // namespace kiln
