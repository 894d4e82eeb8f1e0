#include "tools/server/tensor_codec.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

namespace kiln::server {

namespace {

Status Invalid(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }

struct WireType {
  DataType dtype;
  const char* name;
};
constexpr WireType kWireTypes[] = {
    {DataType::kBool, "BOOL"},     {DataType::kUInt8, "UINT8"},   {DataType::kUInt16, "UINT16"},
    {DataType::kUInt32, "UINT32"}, {DataType::kUInt64, "UINT64"}, {DataType::kInt8, "INT8"},
    {DataType::kInt16, "INT16"},   {DataType::kInt32, "INT32"},   {DataType::kInt64, "INT64"},
    {DataType::kFloat16, "FP16"},  {DataType::kFloat32, "FP32"},  {DataType::kFloat64, "FP64"},
    {DataType::kString, "BYTES"},  {DataType::kBFloat16, "BF16"},
};

// IEEE 754 binary16 <-> binary32, round to nearest even.
float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | (x > 0x7f800000u ? 0x7e00 : 0x7c00);  // NaN / Inf
  if (x >= 0x477ff000u) return sign | 0x7c00;                              // overflows to Inf
  if (x < 0x38800000u) {                                                  // subnormal or zero
    if (x < 0x33000000u) return sign;
    const uint32_t e = x >> 23, m = (x & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return sign | static_cast<uint16_t>(r);
  }
  uint32_t r = ((x >> 13) - (112u << 10));
  const uint32_t rem = x & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;
  return sign | static_cast<uint16_t>(r);
}

uint16_t FloatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

float Bf16ToFloat(uint16_t b) {
  const uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// Appends the leaves of a (possibly nested) JSON array to `out` (row-major), up to `limit`.
Status Flatten(const nlohmann::json& v, std::vector<const nlohmann::json*>* out, size_t limit, int depth,
               const std::string& what) {
  if (depth > 64) return Invalid(fmt::format("{}: 'data' is nested deeper than 64 levels", what));
  if (!v.is_array()) {
    if (out->size() >= limit) return Invalid(fmt::format("{}: 'data' holds more elements than the shape's {}", what, limit));
    out->push_back(&v);
    return Status::OK();
  }
  for (const auto& e : v) {
    Status s = Flatten(e, out, limit, depth + 1, what);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

template <typename T>
Status ReadInteger(const nlohmann::json& j, T* out, size_t i, const std::string& what) {
  if (j.is_number_integer()) {
    if (j.is_number_unsigned()) {
      const uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        *out = static_cast<T>(u);
        return Status::OK();
      }
    } else {
      const int64_t s = j.get<int64_t>();
      if ((std::is_signed_v<T> || s >= 0) && s >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
          (s < 0 || static_cast<uint64_t>(s) <= static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        *out = static_cast<T>(s);
        return Status::OK();
      }
    }
    return Invalid(fmt::format("{}: element {} ({}) is out of range for its datatype", what, i, j.dump()));
  }
  return Invalid(fmt::format("{}: element {} is {}, not an integer", what, i, j.type_name()));
}

Status ReadFloat(const nlohmann::json& j, double* out, size_t i, const std::string& what) {
  if (j.is_number()) {
    *out = j.get<double>();
    return Status::OK();
  }
  // JSON has no NaN/Inf literals: accept the strings Python's json module and Triton use.
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (s == "NaN" || s == "nan") { *out = std::numeric_limits<double>::quiet_NaN(); return Status::OK(); }
    if (s == "Infinity" || s == "inf") { *out = std::numeric_limits<double>::infinity(); return Status::OK(); }
    if (s == "-Infinity" || s == "-inf") { *out = -std::numeric_limits<double>::infinity(); return Status::OK(); }
  }
  return Invalid(fmt::format("{}: element {} is {}, not a number", what, i, j.type_name()));
}

}  // namespace

const char* WireTypeName(DataType t) {
  for (const auto& w : kWireTypes)
    if (w.dtype == t) return w.name;
  return nullptr;
}

std::optional<DataType> ParseWireType(std::string_view name) {
  for (const auto& w : kWireTypes)
    if (name == w.name) return w.dtype;
  return std::nullopt;
}

size_t WireElementSize(DataType t) { return t == DataType::kString ? 0 : DataTypeSize(t); }

StatusOr<int64_t> CheckedElementCount(const std::vector<int64_t>& shape, size_t element_size, size_t max_bytes,
                                      const std::string& what) {
  if (shape.size() > 32) return Invalid(fmt::format("{}: rank {} is more than 32", what, shape.size()));
  const uint64_t per = element_size == 0 ? 1 : element_size;
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return Invalid(fmt::format("{}: shape [{}] has a negative dimension", what, fmt::join(shape, ",")));
    if (d != 0 && n > max_bytes / per / static_cast<uint64_t>(d))
      return Invalid(fmt::format("{}: shape [{}] is larger than the request size limit ({} bytes)", what,
                                 fmt::join(shape, ","), max_bytes));
    n *= static_cast<uint64_t>(d);
  }
  return static_cast<int64_t>(n);
}

StatusOr<HostTensor> TensorFromRaw(DataType dtype, const std::vector<int64_t>& shape, const char* data, size_t size,
                                   size_t max_bytes, const std::string& what) {
  StatusOr<int64_t> n = CheckedElementCount(shape, WireElementSize(dtype), max_bytes, what);
  if (!n.ok()) return n.status();
  if (dtype != DataType::kString) {
    const size_t want = static_cast<size_t>(*n) * DataTypeSize(dtype);
    if (size != want)
      return Invalid(fmt::format("{}: {} bytes of data, but shape [{}] of {} needs {}", what, size, fmt::join(shape, ","),
                                 WireTypeName(dtype), want));
    HostTensor t = HostTensor::Allocate(dtype, shape);
    if (size) std::memcpy(t.data(), data, size);
    return t;
  }
  // BYTES: count the elements first, so a bad length allocates nothing.
  size_t pos = 0;
  int64_t count = 0;
  while (pos < size) {
    if (size - pos < 4) return Invalid(fmt::format("{}: BYTES element {} has a truncated 4-byte length", what, count));
    uint32_t len;
    std::memcpy(&len, data + pos, 4);  // little-endian hosts only (x86-64, aarch64)
    pos += 4;
    if (len > size - pos)
      return Invalid(fmt::format("{}: BYTES element {} claims {} bytes, {} remain", what, count, len, size - pos));
    pos += len;
    ++count;
  }
  if (count != *n)
    return Invalid(fmt::format("{}: {} BYTES elements in the data, but shape [{}] needs {}", what, count,
                               fmt::join(shape, ","), *n));
  HostTensor t = HostTensor::Allocate(dtype, shape);
  auto* out = t.data_as<std::string>();
  pos = 0;
  for (int64_t i = 0; i < count; ++i) {
    uint32_t len;
    std::memcpy(&len, data + pos, 4);
    out[i].assign(data + pos + 4, len);
    pos += 4 + len;
  }
  return t;
}

void AppendRaw(const HostTensor& t, std::string* out) {
  if (t.dtype() != DataType::kString) {
    out->append(static_cast<const char*>(t.data()), t.nbytes());
    return;
  }
  const auto* s = t.data_as<std::string>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint32_t len = static_cast<uint32_t>(s[i].size());
    out->append(reinterpret_cast<const char*>(&len), 4);
    out->append(s[i]);
  }
}

StatusOr<HostTensor> TensorFromJson(DataType dtype, const std::vector<int64_t>& shape, const nlohmann::json& data,
                                    size_t max_bytes, const std::string& what) {
  StatusOr<int64_t> n = CheckedElementCount(shape, WireElementSize(dtype), max_bytes, what);
  if (!n.ok()) return n.status();
  std::vector<const nlohmann::json*> leaves;
  leaves.reserve(static_cast<size_t>(*n));
  Status s = Flatten(data, &leaves, static_cast<size_t>(*n), 0, what);
  if (!s.ok()) return s;
  if (leaves.size() != static_cast<size_t>(*n))
    return Invalid(fmt::format("{}: 'data' holds {} elements, but shape [{}] needs {}", what, leaves.size(),
                               fmt::join(shape, ","), *n));
  HostTensor t = HostTensor::Allocate(dtype, shape);
  for (size_t i = 0; i < leaves.size(); ++i) {
    const nlohmann::json& j = *leaves[i];
    switch (dtype) {
      case DataType::kBool:
        if (!j.is_boolean()) return Invalid(fmt::format("{}: element {} is {}, not a boolean", what, i, j.type_name()));
        t.data_as<bool>()[i] = j.get<bool>();
        break;
      case DataType::kString:
        if (!j.is_string()) return Invalid(fmt::format("{}: element {} is {}, not a string", what, i, j.type_name()));
        t.data_as<std::string>()[i] = j.get<std::string>();
        break;
#define KILN_INT_CASE(DT, T) \
  case DT:                   \
    s = ReadInteger<T>(j, t.data_as<T>() + i, i, what); \
    if (!s.ok()) return s;   \
    break;
      KILN_INT_CASE(DataType::kUInt8, uint8_t)
      KILN_INT_CASE(DataType::kUInt16, uint16_t)
      KILN_INT_CASE(DataType::kUInt32, uint32_t)
      KILN_INT_CASE(DataType::kUInt64, uint64_t)
      KILN_INT_CASE(DataType::kInt8, int8_t)
      KILN_INT_CASE(DataType::kInt16, int16_t)
      KILN_INT_CASE(DataType::kInt32, int32_t)
      KILN_INT_CASE(DataType::kInt64, int64_t)
#undef KILN_INT_CASE
      case DataType::kFloat16:
      case DataType::kBFloat16:
      case DataType::kFloat32:
      case DataType::kFloat64: {
        double d = 0;
        s = ReadFloat(j, &d, i, what);
        if (!s.ok()) return s;
        if (dtype == DataType::kFloat64) t.data_as<double>()[i] = d;
        else if (dtype == DataType::kFloat32) t.data_as<float>()[i] = static_cast<float>(d);
        else if (dtype == DataType::kFloat16) t.data_as<uint16_t>()[i] = FloatToHalf(static_cast<float>(d));
        else t.data_as<uint16_t>()[i] = FloatToBf16(static_cast<float>(d));
        break;
      }
      default:
        return Invalid(fmt::format("{}: datatype {} cannot be given as JSON", what, DataTypeName(dtype)));
    }
  }
  return t;
}

nlohmann::json TensorToJson(const HostTensor& t) {
  nlohmann::json a = nlohmann::json::array();
  auto& arr = a.get_ref<nlohmann::json::array_t&>();
  const size_t n = static_cast<size_t>(t.numel());
  arr.reserve(n);
  auto number = [](double d) -> nlohmann::json {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    return d;
  };
  for (size_t i = 0; i < n; ++i) {
    switch (t.dtype()) {
      case DataType::kBool: arr.emplace_back(t.data_as<bool>()[i]); break;
      case DataType::kString: arr.emplace_back(t.data_as<std::string>()[i]); break;
      case DataType::kUInt8: arr.emplace_back(t.data_as<uint8_t>()[i]); break;
      case DataType::kUInt16: arr.emplace_back(t.data_as<uint16_t>()[i]); break;
      case DataType::kUInt32: arr.emplace_back(t.data_as<uint32_t>()[i]); break;
      case DataType::kUInt64: arr.emplace_back(t.data_as<uint64_t>()[i]); break;
      case DataType::kInt8: arr.emplace_back(t.data_as<int8_t>()[i]); break;
      case DataType::kInt16: arr.emplace_back(t.data_as<int16_t>()[i]); break;
      case DataType::kInt32: arr.emplace_back(t.data_as<int32_t>()[i]); break;
      case DataType::kInt64: arr.emplace_back(t.data_as<int64_t>()[i]); break;
      case DataType::kFloat16: arr.emplace_back(number(HalfToFloat(t.data_as<uint16_t>()[i]))); break;
      case DataType::kBFloat16: arr.emplace_back(number(Bf16ToFloat(t.data_as<uint16_t>()[i]))); break;
      case DataType::kFloat32: arr.emplace_back(number(t.data_as<float>()[i])); break;
      case DataType::kFloat64: arr.emplace_back(number(t.data_as<double>()[i])); break;
      default: arr.emplace_back(nullptr); break;
    }
  }
  return a;
}

}  // namespace kiln::server
