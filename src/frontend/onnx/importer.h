// ONNX model import: protobuf (Debian's libonnx protos) -> IR graph with declared types,
// opset-normalized ops and validated structure. Types are completed afterwards by
// InferTypes (see src/api/model.h, which ties import, inference and folding together).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "ir/graph.h"

namespace kiln {

struct OnnxModel {
  std::unique_ptr<Graph> graph;
  int64_t ir_version = 0;
  std::map<std::string, int64_t> opsets;  // domain ("" = ai.onnx) -> version
  std::string producer;                   // "pytorch 1.13.1"
  std::vector<std::string> warnings;      // e.g. a newer opset than kiln knows
  // Per graph output, its type as the model declares it (kind kTensor with dtype
  // kUndefined where it declares none): inference may give a broader one (a Loop-16 carried
  // optional(sequence) comes out as optional(sequence) where the model says sequence).
  std::vector<TypeInfo> declared_outputs;
};

// The newest ai.onnx opset whose ops kiln knows (ONNX 1.12).
inline constexpr int64_t kMaxKnownOpset = 17;
// The newest IR version kiln accepts (ONNX 1.18). Its protos are IR 8 (ONNX 1.12); IR 9-11
// add element types (float8, int4, float4) that import refuses by type where a model uses them.
inline constexpr int64_t kMaxKnownIrVersion = 11;
// Subgraphs (If/Loop/Scan bodies) nested deeper than this are refused, naming the node.
inline constexpr int kMaxGraphNesting = 64;
// Protobuf's message-nesting limit: three levels per subgraph (graph > node > attribute), and room.
inline constexpr int kProtoRecursionLimit = 3 * kMaxGraphNesting + 32;
// Largest model file accepted (protobuf's 2 GiB limit); weights beyond that go in external data.
inline constexpr int64_t kMaxModelBytes = (int64_t{1} << 31) - 1;

// Every error names the file, then the node/op/tensor/field at fault.
StatusOr<OnnxModel> ImportOnnxFile(const std::string& path);
// From bytes already in memory; `base_dir` resolves external data ("" forbids it);
// `source` names the model in errors.
StatusOr<OnnxModel> ImportOnnxBytes(const void* data, size_t size, const std::string& base_dir,
                                    const std::string& source);

}  // namespace kiln
