// Element types. Values match ONNX TensorProto.DataType so the importer maps 1:1.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "base/half.h"

namespace kiln {

enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBFloat16 = 16,
};

// Bytes per element (0 for kUndefined; sizeof(std::string) is NOT used: strings are
// stored out of line, see Tensor).
size_t DTypeSize(DType t);
// "float32", "int64", "bool", ... (NumPy names; "bfloat16" for kBFloat16).
const char* DTypeName(DType t);
// True for a value this enum defines.
bool IsValidDType(int32_t v);
bool IsFloat(DType t);    // f16, bf16, f32, f64
bool IsInteger(DType t);  // signed or unsigned integer (not bool)
bool IsSigned(DType t);   // signed integers and floats

// C++ storage type for each dtype.
template <DType> struct DTypeTraits;
#define KILN_DTYPE_TRAIT_(D, T) \
  template <> struct DTypeTraits<DType::D> { using type = T; }
KILN_DTYPE_TRAIT_(kFloat32, float);
KILN_DTYPE_TRAIT_(kUInt8, uint8_t);
KILN_DTYPE_TRAIT_(kInt8, int8_t);
KILN_DTYPE_TRAIT_(kUInt16, uint16_t);
KILN_DTYPE_TRAIT_(kInt16, int16_t);
KILN_DTYPE_TRAIT_(kInt32, int32_t);
KILN_DTYPE_TRAIT_(kInt64, int64_t);
KILN_DTYPE_TRAIT_(kString, std::string);
KILN_DTYPE_TRAIT_(kBool, bool);
KILN_DTYPE_TRAIT_(kFloat16, Float16);
KILN_DTYPE_TRAIT_(kFloat64, double);
KILN_DTYPE_TRAIT_(kUInt32, uint32_t);
KILN_DTYPE_TRAIT_(kUInt64, uint64_t);
KILN_DTYPE_TRAIT_(kComplex64, std::complex<float>);
KILN_DTYPE_TRAIT_(kComplex128, std::complex<double>);
KILN_DTYPE_TRAIT_(kBFloat16, BFloat16);
#undef KILN_DTYPE_TRAIT_

template <typename T> constexpr DType DTypeOf();
template <> constexpr DType DTypeOf<float>() { return DType::kFloat32; }
template <> constexpr DType DTypeOf<uint8_t>() { return DType::kUInt8; }
template <> constexpr DType DTypeOf<int8_t>() { return DType::kInt8; }
template <> constexpr DType DTypeOf<uint16_t>() { return DType::kUInt16; }
template <> constexpr DType DTypeOf<int16_t>() { return DType::kInt16; }
template <> constexpr DType DTypeOf<int32_t>() { return DType::kInt32; }
template <> constexpr DType DTypeOf<int64_t>() { return DType::kInt64; }
template <> constexpr DType DTypeOf<std::string>() { return DType::kString; }
template <> constexpr DType DTypeOf<bool>() { return DType::kBool; }
template <> constexpr DType DTypeOf<Float16>() { return DType::kFloat16; }
template <> constexpr DType DTypeOf<double>() { return DType::kFloat64; }
template <> constexpr DType DTypeOf<uint32_t>() { return DType::kUInt32; }
template <> constexpr DType DTypeOf<uint64_t>() { return DType::kUInt64; }
template <> constexpr DType DTypeOf<std::complex<float>>() { return DType::kComplex64; }
template <> constexpr DType DTypeOf<std::complex<double>>() { return DType::kComplex128; }
template <> constexpr DType DTypeOf<BFloat16>() { return DType::kBFloat16; }

template <typename T> struct TypeTag { using type = T; };

// Calls fn(TypeTag<T>{}) with T the storage type of `t`, over the numeric types
// (all but string/complex). Returns false (fn not called) for other dtypes.
//   bool ok = VisitNumeric(t, [&](auto tag) { using T = typename decltype(tag)::type; ... });
template <typename Fn>
bool VisitNumeric(DType t, Fn&& fn) {
  switch (t) {
    case DType::kFloat32: fn(TypeTag<float>{}); return true;
    case DType::kFloat64: fn(TypeTag<double>{}); return true;
    case DType::kFloat16: fn(TypeTag<Float16>{}); return true;
    case DType::kBFloat16: fn(TypeTag<BFloat16>{}); return true;
    case DType::kInt8: fn(TypeTag<int8_t>{}); return true;
    case DType::kUInt8: fn(TypeTag<uint8_t>{}); return true;
    case DType::kInt16: fn(TypeTag<int16_t>{}); return true;
    case DType::kUInt16: fn(TypeTag<uint16_t>{}); return true;
    case DType::kInt32: fn(TypeTag<int32_t>{}); return true;
    case DType::kUInt32: fn(TypeTag<uint32_t>{}); return true;
    case DType::kInt64: fn(TypeTag<int64_t>{}); return true;
    case DType::kUInt64: fn(TypeTag<uint64_t>{}); return true;
    case DType::kBool: fn(TypeTag<bool>{}); return true;
    default: return false;
  }
}

// Every dtype, strings and complex included.
template <typename Fn>
bool VisitAny(DType t, Fn&& fn) {
  switch (t) {
    case DType::kString: fn(TypeTag<std::string>{}); return true;
    case DType::kComplex64: fn(TypeTag<std::complex<float>>{}); return true;
    case DType::kComplex128: fn(TypeTag<std::complex<double>>{}); return true;
    default: return VisitNumeric(t, fn);
  }
}

// Numeric conversions usable on every numeric storage type (Float16/BFloat16 go via float).
template <typename T>
inline double ToDouble(T v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return static_cast<double>(v);
}
template <typename T>
inline T FromDouble(double v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return T(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, bool>) return v != 0.0;
  else return static_cast<T>(v);
}

}  // namespace kiln
