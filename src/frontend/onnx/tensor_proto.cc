#include "frontend/onnx/tensor_proto.h"

#include <onnx/onnx_pb.h>
#include <onnx/onnx-data.pb.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "ir/rvalue.h"
#include "base/checked_math.h"

namespace kiln {

namespace fs = std::filesystem;

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
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : proto.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset" || kv.key() == "length") {
      char* end = nullptr;
      long long v = std::strtoll(kv.value().c_str(), &end, 10);
      if (end == kv.value().c_str() || *end != '\0' || v < 0)
        return InvalidArgument(what, ": external_data '", kv.key(), "' is not a non-negative integer: '", kv.value(), "'");
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  if (location.empty()) return InvalidArgument(what, ": external data without a 'location'");
  if (policy.base_dir.empty())
    return InvalidArgument(what, ": external data '", location, "' but the model has no directory to resolve it in");
  fs::path rel(location);
  if (rel.is_absolute()) return InvalidArgument(what, ": external data location '", location, "' is an absolute path");
  for (const auto& part : rel)
    if (part == "..") return InvalidArgument(what, ": external data location '", location, "' escapes the model directory");
  std::error_code ec;
  fs::path base = fs::weakly_canonical(fs::path(policy.base_dir), ec);
  fs::path full = fs::weakly_canonical(base / rel, ec);
  if (ec) return IoError(what, ": cannot resolve external data '", location, "': ", ec.message());
  auto [b, f] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (b != base.end()) return InvalidArgument(what, ": external data '", location, "' resolves outside the model directory");
  std::ifstream in(full, std::ios::binary);
  if (!in) return IoError(what, ": cannot open external data file '", full.string(), "'");
  in.seekg(0, std::ios::end);
  int64_t file_size = static_cast<int64_t>(in.tellg());
  if (length < 0) length = file_size - offset;
  int64_t end;
  if (!CheckedAdd(offset, length, &end) || end > file_size)
    return InvalidArgument(what, ": external data range [", offset, ", +", length, ") exceeds file '", location,
                           "' of ", file_size, " bytes");
  if (static_cast<size_t>(length) != expected_bytes)
    return InvalidArgument(what, ": external data has ", length, " bytes but the dims need ", expected_bytes);
  std::string bytes(static_cast<size_t>(length), '\0');
  in.seekg(offset);
  in.read(bytes.data(), length);
  if (!in) return IoError(what, ": short read from '", location, "'");
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
      const int64_t provided = int64_t{proto.float_data_size()} + proto.int32_data_size() + proto.int64_data_size() +
                               proto.double_data_size() + proto.uint64_data_size();
      if (numel > provided)
        return InvalidArgument(what, ": holds ", provided, " values but ", DimsToString(dims), " needs ", numel);
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

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot open '", path, "'");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return s;
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

StatusOr<RValue> ReadValueProtoFile(const std::string& path, const TypeInfo* hint) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  const TypeInfo::Kind kind = hint ? hint->kind : TypeInfo::Kind::kTensor;
  if (kind == TypeInfo::Kind::kSequence) {
    onnx::SequenceProto seq;
    if (!seq.ParseFromString(bytes)) return InvalidArgument(path, ": not a valid SequenceProto");
    return SequenceToValue(seq, path);
  }
  if (kind == TypeInfo::Kind::kOptional) {
    onnx::OptionalProto opt;
    if (!opt.ParseFromString(bytes)) return InvalidArgument(path, ": not a valid OptionalProto");
    if (opt.has_tensor_value()) {
      KILN_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(opt.tensor_value(), {}, path));
      return RValue(std::move(t));
    }
    if (opt.has_sequence_value()) return SequenceToValue(opt.sequence_value(), path);
    return RValue::None();
  }
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) return InvalidArgument(path, ": not a valid TensorProto");
  KILN_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(proto, {}, path));
  return RValue(std::move(t));
}

}  // namespace kiln
