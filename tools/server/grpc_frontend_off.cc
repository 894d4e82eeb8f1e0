// GrpcFrontend for builds without gRPC (KILN_GRPC off): says so.
#include "tools/server/grpc_frontend.h"

namespace kiln::server {

std::unique_ptr<GrpcFrontend> GrpcFrontend::Create(ModelManager&, GrpcOptions, std::function<bool()>, std::string* error) {
  *error = "this kiln was built without gRPC (install libgrpc++-dev and protobuf-compiler-grpc, rebuild); use "
           "--grpc-port -1 to serve HTTP only";
  return nullptr;
}

}  // namespace kiln::server
