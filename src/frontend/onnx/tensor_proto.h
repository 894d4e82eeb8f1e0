// ONNX protobuf messages -> IR values: TensorProto, TypeProto, SequenceProto, OptionalProto.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/file.h"
#include "base/status.h"
#include "ir/shape.h"
#include "ir/tensor.h"

namespace onnx {
class TensorProto;
class TypeProto;
class SequenceProto;
class OptionalProto;
}  // namespace onnx

namespace kiln {

struct RValue;

// Where external-data files of a model may live: only inside `base_dir` (the model's
// directory), opened through ReadOnlyFile::OpenInside (no absolute paths, "..", symbolic
// links, hard links, FIFOs or devices).
struct ExternalDataPolicy {
  std::string base_dir;  // empty: external data is an error
  // Files already opened (and checked) for this model, by location: thousands of initializers
  // usually share one file.
  std::shared_ptr<std::map<std::string, ReadOnlyFile>> open_files = std::make_shared<std::map<std::string, ReadOnlyFile>>();
};

// Converts a TensorProto (raw_data, typed fields or external data) into a Tensor.
// Every size is checked against the declared dims; `what` names the tensor in errors.
StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto, const ExternalDataPolicy& policy,
                                 const std::string& what);

// TypeProto -> TypeInfo (tensor, sequence, optional; maps/sparse are Unimplemented).
StatusOr<TypeInfo> TypeFromProto(const onnx::TypeProto& proto, const std::string& what);

// Reads a serialized TensorProto / SequenceProto / OptionalProto file (ONNX test data).
StatusOr<Tensor> ReadTensorProtoFile(const std::string& path);
// Reads a .pb file holding a TensorProto, SequenceProto or OptionalProto; `hint` picks the
// message kind when known (from the model's input/output type), else a TensorProto is tried.
// A file that holds another of the three messages is an error that names both.
StatusOr<RValue> ReadValueProtoFile(const std::string& path, const TypeInfo* hint);
// Writes `v` (atomically) as the message its type calls for: an OptionalProto for an
// optional type (empty for no value), else a SequenceProto or a TensorProto; `name` is
// recorded in the message.
Status WriteValueProtoFile(const std::string& path, const RValue& v, const TypeInfo& type, const std::string& name);

}  // namespace kiln
