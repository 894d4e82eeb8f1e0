#include "tools/server/request_builder.h"

#include <fmt/format.h>

#include <algorithm>

#include "tools/server/tensor_codec.h"

namespace kiln::server {

namespace {

std::string Names(const std::vector<TensorInfo>& infos) {
  std::vector<std::string> names;
  for (const TensorInfo& i : infos) names.push_back("'" + i.name + "'");
  return fmt::format("{}", fmt::join(names, ", "));
}

std::string Shape(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ",")); }

}  // namespace

RequestBuilder::RequestBuilder(const ModelVersion& model)
    : model_(model), inputs_(model.inputs.size()), given_(model.inputs.size(), false) {}

std::string RequestBuilder::Describe(const std::string& name) const {
  return fmt::format("model '{}' input '{}'", model_.name, name);
}

Reply RequestBuilder::BeginInput(const std::string& name, const std::string& datatype,
                                 const std::vector<int64_t>& shape, DataType* dtype) {
  current_ = -1;
  for (size_t i = 0; i < model_.inputs.size(); ++i)
    if (model_.inputs[i].name == name) current_ = static_cast<int>(i);
  if (current_ < 0)
    return Reply::Error(ReplyCode::kBadRequest, fmt::format("model '{}' has no input '{}' (its inputs: {})", model_.name,
                                                            name, Names(model_.inputs)));
  const TensorInfo& info = model_.inputs[static_cast<size_t>(current_)];
  if (given_[static_cast<size_t>(current_)])
    return Reply::Error(ReplyCode::kBadRequest, fmt::format("{} is given twice", Describe(name)));
  std::optional<DataType> t = ParseWireType(datatype);
  if (!t)
    return Reply::Error(ReplyCode::kBadRequest, fmt::format("{}: unknown datatype '{}' (BOOL, UINT8..UINT64, INT8..INT64, "
                                                            "FP16, FP32, FP64, BF16, BYTES)", Describe(name), datatype));
  if (*t != info.dtype)
    return Reply::Error(ReplyCode::kBadRequest, fmt::format("{} is {}, the request says {}", Describe(name),
                                                            WireTypeName(info.dtype) ? WireTypeName(info.dtype) : "?",
                                                            datatype));
  bool shape_ok = !info.has_rank || shape.size() == info.shape.size();
  for (size_t d = 0; shape_ok && info.has_rank && d < shape.size(); ++d)
    shape_ok = info.shape[d] < 0 || info.shape[d] == shape[d];
  if (!shape_ok)
    return Reply::Error(ReplyCode::kBadRequest, fmt::format("{} has shape {} (-1: any size), the request gives {}",
                                                            Describe(name), Shape(info.shape), Shape(shape)));
  for (int64_t d : shape)
    if (d < 0) return Reply::Error(ReplyCode::kBadRequest, fmt::format("{}: shape {} has a negative dimension", Describe(name), Shape(shape)));
  const int max_batch = model_.config.max_batch_size;
  if (max_batch > 0 && !shape.empty() && (shape[0] < 1 || shape[0] > max_batch))
    return Reply::Error(ReplyCode::kBadRequest, fmt::format("{}: batch size {} is outside 1..{} (max_batch_size)",
                                                            Describe(name), shape[0], max_batch));
  *dtype = *t;
  return Reply::Ok();
}

void RequestBuilder::SetData(HostTensor t) {
  inputs_[static_cast<size_t>(current_)] = std::move(t);
  given_[static_cast<size_t>(current_)] = true;
}

Reply RequestBuilder::AddOutput(const std::string& name, bool binary) {
  for (size_t i = 0; i < model_.outputs.size(); ++i) {
    if (model_.outputs[i].name != name) continue;
    if (std::find(outputs_.begin(), outputs_.end(), static_cast<int>(i)) != outputs_.end())
      return Reply::Error(ReplyCode::kBadRequest, fmt::format("output '{}' is requested twice", name));
    outputs_.push_back(static_cast<int>(i));
    binary_.push_back(binary);
    return Reply::Ok();
  }
  return Reply::Error(ReplyCode::kBadRequest, fmt::format("model '{}' has no output '{}' (its outputs: {})", model_.name,
                                                          name, Names(model_.outputs)));
}

Reply RequestBuilder::Finish(bool binary_default, InferRequest* out) {
  std::vector<std::string> missing;
  for (size_t i = 0; i < given_.size(); ++i)
    if (!given_[i]) missing.push_back("'" + model_.inputs[i].name + "'");
  if (!missing.empty())
    return Reply::Error(ReplyCode::kBadRequest, fmt::format("model '{}' needs input{} {}, which the request lacks",
                                                            model_.name, missing.size() > 1 ? "s" : "",
                                                            fmt::join(missing, ", ")));
  if (model_.config.max_batch_size > 0) {
    // Every input carries the same batch.
    for (const HostTensor& t : inputs_)
      if (t.shape().empty() || t.shape()[0] != inputs_[0].shape()[0])
        return Reply::Error(ReplyCode::kBadRequest, fmt::format("model '{}': the inputs' batch sizes differ ({} vs {})",
                                                                model_.name, Shape(inputs_[0].shape()), Shape(t.shape())));
  }
  if (outputs_.empty())
    for (size_t i = 0; i < model_.outputs.size(); ++i) {
      outputs_.push_back(static_cast<int>(i));
      binary_.push_back(binary_default);
    }
  out->inputs = std::move(inputs_);
  out->outputs = outputs_;
  return Reply::Ok();
}

}  // namespace kiln::server
