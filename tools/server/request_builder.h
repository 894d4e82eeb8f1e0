// Builds an InferRequest from a protocol's pieces, checking each against the model as it
// comes: the input's name (known, given once), datatype (the model's), shape (the model's
// rank and fixed dimensions; with batching, a batch of at most max_batch_size), then that
// every input was given and every requested output exists. Shared by the HTTP and gRPC
// frontends so both answer bad input with the same words.
#pragma once

#include <string>
#include <vector>

#include "tools/server/model_manager.h"

namespace kiln::server {

class RequestBuilder {
 public:
  explicit RequestBuilder(const ModelVersion& model);

  // Checks input `name`; on success `*dtype` is the element type its data must decode to.
  Reply BeginInput(const std::string& name, const std::string& datatype, const std::vector<int64_t>& shape,
                   DataType* dtype);
  // The data of the input last begun (its dtype and shape as BeginInput checked them).
  void SetData(HostTensor t);
  // A requested output; `binary` is remembered for the HTTP frontend.
  Reply AddOutput(const std::string& name, bool binary);
  // Checks that every input was given; no outputs requested means all, with `binary_default`.
  Reply Finish(bool binary_default, InferRequest* out);
  // Per requested output (in InferRequest::outputs order): whether to send it as binary.
  const std::vector<bool>& binary_outputs() const { return binary_; }
  // "input 'x'" for messages.
  std::string Describe(const std::string& name) const;

 private:
  const ModelVersion& model_;
  std::vector<HostTensor> inputs_;
  std::vector<bool> given_;
  int current_ = -1;
  std::vector<int> outputs_;
  std::vector<bool> binary_;
};

}  // namespace kiln::server
