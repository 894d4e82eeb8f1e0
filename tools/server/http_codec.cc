#include "tools/server/http_codec.h"

#include <fmt/format.h>

#include <algorithm>

#include "tools/server/request_builder.h"
#include "tools/server/tensor_codec.h"

namespace kiln::server {

using json = nlohmann::json;

std::string DumpJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

namespace {

// Deepest nesting of arrays/objects in a JSON text (strings skipped), stopping at `limit`+1.
int JsonDepth(const char* p, size_t n, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth && (max_depth = depth) > limit) return max_depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

// The shape array of a request input: non-negative integers.
Reply ReadShape(const json& j, const std::string& what, std::vector<int64_t>* shape) {
  if (!j.is_array()) return Reply::Error(ReplyCode::kBadRequest, what + ": 'shape' must be an array of integers");
  if (j.size() > 32) return Reply::Error(ReplyCode::kBadRequest, what + ": 'shape' has more than 32 dimensions");
  for (const json& d : j) {
    if (!d.is_number_integer() || (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0) ||
        (d.is_number_unsigned() && d.get<uint64_t>() > (uint64_t{1} << 62)))
      return Reply::Error(ReplyCode::kBadRequest, fmt::format("{}: 'shape' holds {}, not a dimension", what, DumpJson(d)));
    shape->push_back(d.get<int64_t>());
  }
  return Reply::Ok();
}

bool BoolParameter(const json& params, const char* key, bool fallback) {
  if (!params.is_object()) return fallback;
  auto it = params.find(key);
  return it != params.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace

// The JSON header `head` and the binary section after it, into a checked request.
Reply ParseInfer(const ModelVersion& model, const char* head, size_t head_size, const char* binary, size_t binary_size,
                 const InferLimits& options, ParsedInfer* out) {
  if (JsonDepth(head, head_size, options.max_json_depth) > options.max_json_depth)
    return Reply::Error(ReplyCode::kBadRequest,
                        fmt::format("the request JSON nests deeper than {} levels", options.max_json_depth));
  json j = json::parse(head, head + head_size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Reply::Error(ReplyCode::kBadRequest, "the request body is not valid JSON");
  if (!j.is_object()) return Reply::Error(ReplyCode::kBadRequest, "the request must be a JSON object");
  if (j.contains("id")) {
    if (!j["id"].is_string()) return Reply::Error(ReplyCode::kBadRequest, "'id' must be a string");
    out->id = j["id"];
  }
  const json params = j.value("parameters", json::object());
  if (!params.is_object()) return Reply::Error(ReplyCode::kBadRequest, "'parameters' must be an object");
  int64_t timeout_us = model.config.default_timeout_us;
  if (params.contains("timeout")) {
    if (!params["timeout"].is_number_unsigned())
      return Reply::Error(ReplyCode::kBadRequest, "parameter 'timeout' must be a non-negative integer (microseconds)");
    timeout_us = static_cast<int64_t>(std::min<uint64_t>(params["timeout"].get<uint64_t>(), uint64_t{1} << 40));
  }
  if (timeout_us > 0) out->request.deadline = out->request.arrival + std::chrono::microseconds(timeout_us);
  const bool binary_default = BoolParameter(params, "binary_data_output", false);

  auto inputs = j.find("inputs");
  if (inputs == j.end() || !inputs->is_array())
    return Reply::Error(ReplyCode::kBadRequest, "the request needs an 'inputs' array");
  RequestBuilder builder(model);
  size_t offset = 0;  // into the binary section
  // Allocation bound for JSON data: every element takes at least 2 bytes of the body.
  const size_t json_limit = options.max_body_bytes * 4;
  for (const json& in : *inputs) {
    if (!in.is_object() || !in.contains("name") || !in["name"].is_string())
      return Reply::Error(ReplyCode::kBadRequest, "each input needs a 'name' string");
    const std::string name = in["name"].get<std::string>();
    const std::string what = builder.Describe(name);
    if (!in.contains("datatype") || !in["datatype"].is_string())
      return Reply::Error(ReplyCode::kBadRequest, what + " needs a 'datatype' string");
    if (!in.contains("shape")) return Reply::Error(ReplyCode::kBadRequest, what + " needs a 'shape'");
    std::vector<int64_t> shape;
    Reply r = ReadShape(in["shape"], what, &shape);
    if (!r.ok()) return r;
    DataType dtype;
    r = builder.BeginInput(name, in["datatype"].get<std::string>(), shape, &dtype);
    if (!r.ok()) return r;
    const json in_params = in.value("parameters", json::object());
    StatusOr<HostTensor> t = Status(StatusCode::kInternal, "unset");
    if (in_params.is_object() && in_params.contains("binary_data_size")) {
      if (!in_params["binary_data_size"].is_number_unsigned())
        return Reply::Error(ReplyCode::kBadRequest, what + ": 'binary_data_size' must be a non-negative integer");
      const uint64_t size = in_params["binary_data_size"].get<uint64_t>();
      if (size > binary_size - offset)
        return Reply::Error(ReplyCode::kBadRequest,
                            fmt::format("{}: binary_data_size {} is past the end of the binary data ({} bytes, {} "
                                        "left)", what, size, binary_size, binary_size - offset));
      if (in.contains("data"))
        return Reply::Error(ReplyCode::kBadRequest, what + " has both 'data' and binary_data_size");
      t = TensorFromRaw(dtype, shape, binary + offset, size, options.max_body_bytes, what);
      offset += size;
    } else {
      if (!in.contains("data")) return Reply::Error(ReplyCode::kBadRequest, what + " has no 'data' (nor binary_data_size)");
      t = TensorFromJson(dtype, shape, in["data"], json_limit, what);
    }
    if (!t.ok()) return Reply::FromStatus(t.status());
    builder.SetData(std::move(*t));
  }
  if (offset != binary_size)
    return Reply::Error(ReplyCode::kBadRequest,
                        fmt::format("the request carries {} bytes of binary data, its inputs' binary_data_size add up "
                                    "to {}", binary_size, offset));
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) return Reply::Error(ReplyCode::kBadRequest, "'outputs' must be an array");
    for (const json& o : j["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string())
        return Reply::Error(ReplyCode::kBadRequest, "each requested output needs a 'name' string");
      Reply r = builder.AddOutput(o["name"].get<std::string>(),
                                  BoolParameter(o.value("parameters", json::object()), "binary_data", binary_default));
      if (!r.ok()) return r;
    }
  }
  Reply r = builder.Finish(binary_default, &out->request);
  out->binary = builder.binary_outputs();
  return r;
}


std::string EncodeInferResult(const ModelVersion& model, const ParsedInfer& parsed, const InferResult& result,
                              size_t* json_size) {
  json outputs = json::array();
  std::string binary;
  for (size_t i = 0; i < result.outputs.size(); ++i) {
    const auto& [name, t] = result.outputs[i];
    const char* type = WireTypeName(t.dtype());
    json o{{"name", name}, {"datatype", type ? type : DataTypeName(t.dtype())}, {"shape", t.shape()}};
    if (i < parsed.binary.size() && parsed.binary[i]) {
      const size_t before = binary.size();
      AppendRaw(t, &binary);
      o["parameters"] = json{{"binary_data_size", binary.size() - before}};
    } else {
      o["data"] = TensorToJson(t);
    }
    outputs.push_back(std::move(o));
  }
  json j{{"model_name", model.name}, {"model_version", std::to_string(model.version)}, {"outputs", std::move(outputs)}};
  if (!parsed.id.is_null()) j["id"] = parsed.id;
  std::string body = DumpJson(j);
  *json_size = body.size();
  body += binary;
  return body;
}

}  // namespace kiln::server
