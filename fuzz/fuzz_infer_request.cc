// libFuzzer target: bytes -> kiln serve's REST infer decoding (tools/server/http_codec.h),
// the code every HTTP infer request's body goes through, for a fixed model: input `x` FP32
// [-1,16], `s` BYTES [2], `n` INT64 [3]; outputs `y` FP32 [-1,8], `t` BYTES [2]; batching on
// (max 8). The first 2 bytes (little-endian) say where the JSON header ends and the binary
// section begins, as Inference-Header-Content-Length does. Any bytes give a checked request
// or a 4xx reply -- never a crash, an out-of-bounds read, or an allocation past the body
// limit (scripts/fuzz.sh runs it with -malloc_limit_mb=64). A request that decodes is
// answered with its own inputs as outputs, through the encoder.
#include <cstddef>
#include <cstdint>

#include "tools/server/http_codec.h"

namespace {

kiln::server::ModelVersion* MakeModel() {
  using kiln::DataType;
  auto* m = new kiln::server::ModelVersion;
  m->name = "m";
  m->version = 1;
  m->config.max_batch_size = 8;
  m->inputs = {{"x", DataType::kFloat32, {-1, 16}}, {"s", DataType::kString, {2}}, {"n", DataType::kInt64, {3}}};
  m->outputs = {{"y", DataType::kFloat32, {-1, 8}}, {"t", DataType::kString, {2}}};
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const kiln::server::ModelVersion* model = MakeModel();
  if (size < 2) return 0;
  size_t head = static_cast<size_t>(data[0]) | static_cast<size_t>(data[1]) << 8;
  if (head > size - 2) head = size - 2;
  const char* body = reinterpret_cast<const char*>(data) + 2;
  kiln::server::InferLimits limits;
  limits.max_body_bytes = size_t{1} << 20;
  kiln::server::ParsedInfer parsed;
  kiln::server::Reply r = kiln::server::ParseInfer(*model, body, head, body + head, size - 2 - head, limits, &parsed);
  if (!r.ok()) return 0;
  kiln::server::InferResult result;
  for (int o : parsed.request.outputs) {
    const kiln::HostTensor& t = parsed.request.inputs[o == 0 ? 0 : 1];
    result.outputs.emplace_back(model->outputs[static_cast<size_t>(o)].name, t);
  }
  size_t json_size = 0;
  const std::string answer = kiln::server::EncodeInferResult(*model, parsed, result, &json_size);
  if (json_size > answer.size()) __builtin_trap();
  return 0;
}
