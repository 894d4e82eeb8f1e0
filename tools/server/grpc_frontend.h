// The KServe v2 gRPC protocol (inference.GRPCInferenceService, proto/grpc_service.proto):
// health, metadata, ModelInfer (typed contents or raw_input_contents), and the repository
// extension. Built when gRPC is found (KILN_GRPC); otherwise Create() says so.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace kiln::server {

class ModelManager;

struct GrpcOptions {
  std::string host = "0.0.0.0";
  int port = 8001;  // 0: any free port
  size_t max_message_bytes = size_t{64} << 20;
  bool repository_control = false;
};

class GrpcFrontend {
 public:
  // Listening on return; null with `error` set if it cannot (or this build has no gRPC).
  static std::unique_ptr<GrpcFrontend> Create(ModelManager& manager, GrpcOptions options, std::function<bool()> ready,
                                              std::string* error);
  virtual ~GrpcFrontend() = default;
  virtual int port() const = 0;
  // Stops accepting, answers the calls in flight, returns.
  virtual void Shutdown() = 0;
};

}  // namespace kiln::server
