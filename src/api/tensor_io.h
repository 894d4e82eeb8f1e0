// Tensor files: NumPy .npy (read/write) and ONNX TensorProto .pb (read).
#pragma once

#include <string>

#include "base/status.h"
#include "ir/tensor.h"

namespace kiln {

// .npy v1/v2/v3, C order, little-endian; dtypes: bool, (u)int8..64, float16/32/64.
StatusOr<Tensor> ReadNpy(const std::string& path);
// Writes atomically (temp file + rename). bfloat16 is written as float32 (NumPy has no bf16).
Status WriteNpy(const std::string& path, const Tensor& t);
// By extension: .npy or .pb (TensorProto).
StatusOr<Tensor> ReadTensorFile(const std::string& path);

}  // namespace kiln
