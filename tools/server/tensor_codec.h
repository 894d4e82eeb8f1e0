// Tensors on the wire of the KServe v2 / Open Inference Protocol: datatype names, JSON
// `data` arrays, and the raw little-endian bytes of the binary-data extension and of gRPC's
// raw_input_contents (BYTES elements: a 4-byte little-endian length, then the bytes).
// Every size read from a request is checked before anything is allocated.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/kiln.h"

namespace kiln::server {

// "FP32", "INT64", "BYTES", "BF16", ...; nullptr for types the protocol has no name for
// (complex).
const char* WireTypeName(DataType t);
std::optional<DataType> ParseWireType(std::string_view name);

// The number of elements of `shape`, or an error (negative dimension, or more than
// `max_bytes` bytes at `element_size` bytes each: the request cannot be that large).
StatusOr<int64_t> CheckedElementCount(const std::vector<int64_t>& shape, size_t element_size, size_t max_bytes,
                                      const std::string& what);

// A tensor from raw bytes: exactly numel * element size bytes (BYTES: exactly numel
// length-prefixed strings filling `size`).
StatusOr<HostTensor> TensorFromRaw(DataType dtype, const std::vector<int64_t>& shape, const char* data, size_t size,
                                   size_t max_bytes, const std::string& what);
// Appends the tensor's raw bytes (the inverse of TensorFromRaw).
void AppendRaw(const HostTensor& t, std::string* out);

// A tensor from a JSON `data` value: a flat or nested array of numbers (booleans for BOOL,
// strings for BYTES) with exactly numel elements in row-major order.
StatusOr<HostTensor> TensorFromJson(DataType dtype, const std::vector<int64_t>& shape, const nlohmann::json& data,
                                    size_t max_bytes, const std::string& what);
// A flat JSON array of the tensor's elements (FP16/BF16 as numbers, BYTES as strings).
nlohmann::json TensorToJson(const HostTensor& t);

// The element size on the wire: DataTypeSize, except BYTES (variable; 0 here).
size_t WireElementSize(DataType t);

}  // namespace kiln::server
