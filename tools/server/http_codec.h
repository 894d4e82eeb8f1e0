// The KServe v2 REST infer message: a JSON header (inputs with `data` or
// `parameters.binary_data_size`, requested outputs, `parameters.timeout` in microseconds)
// optionally followed by the binary tensor data extension's bytes, decoded and checked against
// the model into an InferRequest; and the answer encoded back. Apart from the HTTP server so
// the decoding can be fuzzed on its own (fuzz/fuzz_infer_request.cc).
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/server/model_manager.h"
#include "tools/server/reply.h"
#include "tools/server/scheduler.h"

namespace kiln::server {

struct InferLimits {
  size_t max_body_bytes = size_t{64} << 20;  // also bounds what JSON data may allocate (4x)
  int max_json_depth = 64;
};

struct ParsedInfer {
  InferRequest request;
  std::vector<bool> binary;  // per requested output: send as binary data
  nlohmann::json id;         // echoed when given
};

// `head`: the JSON header; `binary`: the bytes after it (empty without the extension).
Reply ParseInfer(const ModelVersion& model, const char* head, size_t head_size, const char* binary, size_t binary_size,
                 const InferLimits& limits, ParsedInfer* out);

// The answer's body: the JSON header, then the binary outputs' bytes (`*json_size`: where the
// JSON ends; equal to the size when no output is binary).
std::string EncodeInferResult(const ModelVersion& model, const ParsedInfer& parsed, const InferResult& result,
                              size_t* json_size);

// JSON text that never throws on invalid UTF-8 in strings that came from a client.
std::string DumpJson(const nlohmann::json& j);

}  // namespace kiln::server
