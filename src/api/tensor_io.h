// Value files: NumPy .npy (read/write) and ONNX TensorProto / SequenceProto / OptionalProto
// .pb (read/write).
#pragma once

#include <string>

#include "base/status.h"
#include "ir/rvalue.h"
#include "ir/shape.h"
#include "ir/tensor.h"

namespace kiln {

// .npy v1/v2/v3, C order, little-endian; dtypes: bool, (u)int8..64, float16/32/64,
// complex64/128, and unicode strings ('<U': kString, UTF-8 in memory).
StatusOr<Tensor> ReadNpy(const std::string& path);
// Writes atomically (temp file + rename). bfloat16 is written as its uint16 bit patterns
// (NumPy has no bfloat16; view them with arr.astype(np.uint32) << 16 as float32); strings
// as a unicode array (an error when one is not valid UTF-8).
Status WriteNpy(const std::string& path, const Tensor& t);
bool IsValidUtf8(const std::string& s);
// A value for a graph input of type `want` (null: unknown): .npy (a tensor; a uint16 array
// for a bfloat16 input is taken as bit patterns) or .pb (the proto `want` calls for; a file
// holding another kind is an error naming both).
StatusOr<RValue> ReadValueFile(const std::string& path, const TypeInfo* want);
// Writes a graph output of type `type` (the model's declared type, where it has one) as
// DIR/<index>_<name>.npy (a tensor) or .pb: an OptionalProto (an optional type, holding a
// value or none), a SequenceProto (a sequence), a TensorProto (strings that are not UTF-8).
// Returns the path.
StatusOr<std::string> WriteValueFile(const std::string& dir, size_t index, const std::string& name, const RValue& v,
                                     const TypeInfo& type);
// By extension: .npy or .pb (TensorProto).
StatusOr<Tensor> ReadTensorFile(const std::string& path);

}  // namespace kiln
