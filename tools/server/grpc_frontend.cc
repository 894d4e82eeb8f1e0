#include "tools/server/grpc_frontend.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <cstring>

#include "grpc_service.grpc.pb.h"
#include "tools/server/model_manager.h"
#include "tools/server/request_builder.h"
#include "tools/server/tensor_codec.h"

namespace kiln::server {

namespace {

grpc::Status ToGrpc(const Reply& r) {
  switch (r.code) {
    case ReplyCode::kOk: return grpc::Status::OK;
    case ReplyCode::kBadRequest:
    case ReplyCode::kPayloadTooLarge: return {grpc::StatusCode::INVALID_ARGUMENT, r.message};
    case ReplyCode::kNotFound: return {grpc::StatusCode::NOT_FOUND, r.message};
    case ReplyCode::kUnavailable: return {grpc::StatusCode::UNAVAILABLE, r.message};
    case ReplyCode::kTimeout: return {grpc::StatusCode::DEADLINE_EXCEEDED, r.message};
    case ReplyCode::kCancelled: return {grpc::StatusCode::CANCELLED, r.message};
    default: return {grpc::StatusCode::INTERNAL, r.message};
  }
}

template <typename Field>
void FillMetadata(const TensorInfo& t, Field* m) {
  m->set_name(t.name);
  const char* type = WireTypeName(t.dtype);
  m->set_datatype(type ? type : DataTypeName(t.dtype));
  for (int64_t d : t.shape) m->add_shape(d);
}

// A tensor from the typed `contents` field the datatype uses.
StatusOr<HostTensor> FromContents(DataType dtype, const std::vector<int64_t>& shape,
                                  const inference::InferTensorContents& c, size_t max_bytes, const std::string& what) {
  StatusOr<int64_t> n = CheckedElementCount(shape, WireElementSize(dtype), max_bytes, what);
  if (!n.ok()) return n.status();
  auto check = [&](int got, const char* field) -> Status {
    if (got != *n)
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("{}: {} holds {} elements, but shape [{}] needs {}", what, field, got,
                                fmt::join(shape, ","), *n));
    return Status::OK();
  };
  HostTensor t;
  auto fill = [&](const auto& field, const char* name, auto convert) -> Status {
    Status s = check(field.size(), name);
    if (!s.ok()) return s;
    t = HostTensor::Allocate(dtype, shape);
    for (int i = 0; i < field.size(); ++i) convert(i, field.Get(i));
    return Status::OK();
  };
  Status s;
  switch (dtype) {
    case DataType::kBool: s = fill(c.bool_contents(), "bool_contents", [&](int i, bool v) { t.data_as<bool>()[i] = v; }); break;
    case DataType::kInt8: s = fill(c.int_contents(), "int_contents", [&](int i, int32_t v) { t.data_as<int8_t>()[i] = static_cast<int8_t>(v); }); break;
    case DataType::kInt16: s = fill(c.int_contents(), "int_contents", [&](int i, int32_t v) { t.data_as<int16_t>()[i] = static_cast<int16_t>(v); }); break;
    case DataType::kInt32: s = fill(c.int_contents(), "int_contents", [&](int i, int32_t v) { t.data_as<int32_t>()[i] = v; }); break;
    case DataType::kInt64: s = fill(c.int64_contents(), "int64_contents", [&](int i, int64_t v) { t.data_as<int64_t>()[i] = v; }); break;
    case DataType::kUInt8: s = fill(c.uint_contents(), "uint_contents", [&](int i, uint32_t v) { t.data_as<uint8_t>()[i] = static_cast<uint8_t>(v); }); break;
    case DataType::kUInt16: s = fill(c.uint_contents(), "uint_contents", [&](int i, uint32_t v) { t.data_as<uint16_t>()[i] = static_cast<uint16_t>(v); }); break;
    case DataType::kUInt32: s = fill(c.uint_contents(), "uint_contents", [&](int i, uint32_t v) { t.data_as<uint32_t>()[i] = v; }); break;
    case DataType::kUInt64: s = fill(c.uint64_contents(), "uint64_contents", [&](int i, uint64_t v) { t.data_as<uint64_t>()[i] = v; }); break;
    case DataType::kFloat32: s = fill(c.fp32_contents(), "fp32_contents", [&](int i, float v) { t.data_as<float>()[i] = v; }); break;
    case DataType::kFloat64: s = fill(c.fp64_contents(), "fp64_contents", [&](int i, double v) { t.data_as<double>()[i] = v; }); break;
    case DataType::kString: s = fill(c.bytes_contents(), "bytes_contents", [&](int i, const std::string& v) { t.data_as<std::string>()[i] = v; }); break;
    default:
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("{}: {} has no typed contents field: send it in raw_input_contents", what,
                                WireTypeName(dtype) ? WireTypeName(dtype) : DataTypeName(dtype)));
  }
  if (!s.ok()) return s;
  return t;
}

class Service final : public inference::GRPCInferenceService::Service {
 public:
  Service(ModelManager& manager, GrpcOptions options, std::function<bool()> ready)
      : manager_(manager), options_(std::move(options)), ready_(std::move(ready)) {}

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* res) override {
    res->set_live(true);
    return grpc::Status::OK;
  }
  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* res) override {
    res->set_ready(ready_());
    return grpc::Status::OK;
  }
  grpc::Status ModelReady(grpc::ServerContext*, const inference::ModelReadyRequest* req,
                          inference::ModelReadyResponse* res) override {
    std::shared_ptr<ModelVersion> mv;
    Reply r = manager_.Find(req->name(), req->version(), &mv);
    if (r.code == ReplyCode::kNotFound) return ToGrpc(r);
    res->set_ready(r.ok());
    return grpc::Status::OK;
  }
  grpc::Status ServerMetadata(grpc::ServerContext*, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* res) override {
    res->set_name("kiln");
    res->set_version(KILN_VERSION);
    for (const char* e : {"binary_tensor_data", "model_repository", "schedule_policy", "statistics"}) res->add_extensions(e);
    return grpc::Status::OK;
  }
  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* req,
                             inference::ModelMetadataResponse* res) override {
    std::shared_ptr<ModelVersion> mv;
    Reply r = manager_.Find(req->name(), req->version(), &mv);
    if (!r.ok()) return ToGrpc(r);
    res->set_name(mv->name);
    res->set_platform(mv->platform);
    for (const ModelManager::IndexEntry& e : manager_.Index())
      if (e.name == mv->name && !e.version.empty()) res->add_versions(e.version);
    for (const TensorInfo& t : mv->inputs) FillMetadata(t, res->add_inputs());
    for (const TensorInfo& t : mv->outputs) FillMetadata(t, res->add_outputs());
    return grpc::Status::OK;
  }
  grpc::Status RepositoryIndex(grpc::ServerContext*, const inference::RepositoryIndexRequest* req,
                               inference::RepositoryIndexResponse* res) override {
    for (const ModelManager::IndexEntry& e : manager_.Index()) {
      if (req->ready() && e.state != "READY") continue;
      auto* m = res->add_models();
      m->set_name(e.name);
      m->set_version(e.version);
      m->set_state(e.state);
      m->set_reason(e.reason);
    }
    return grpc::Status::OK;
  }
  grpc::Status RepositoryModelLoad(grpc::ServerContext*, const inference::RepositoryModelLoadRequest* req,
                                   inference::RepositoryModelLoadResponse*) override {
    if (!options_.repository_control)
      return {grpc::StatusCode::FAILED_PRECONDITION, "model control is off: start kiln serve with --model-control-mode explicit"};
    return ToGrpc(manager_.Load(req->model_name()));
  }
  grpc::Status RepositoryModelUnload(grpc::ServerContext*, const inference::RepositoryModelUnloadRequest* req,
                                     inference::RepositoryModelUnloadResponse*) override {
    if (!options_.repository_control)
      return {grpc::StatusCode::FAILED_PRECONDITION, "model control is off: start kiln serve with --model-control-mode explicit"};
    return ToGrpc(manager_.Unload(req->model_name()));
  }

  grpc::Status ModelInfer(grpc::ServerContext* context, const inference::ModelInferRequest* req,
                          inference::ModelInferResponse* res) override {
    std::shared_ptr<ModelVersion> mv;
    Reply r = manager_.Find(req->model_name(), req->model_version(), &mv);
    if (!r.ok()) return ToGrpc(r);
    InferRequest request;
    r = Build(*mv, *req, context, &request);
    if (!r.ok()) {
      mv->stats.request_failure.fetch_add(1);
      return ToGrpc(r);
    }
    InferResult result = mv->Infer(std::move(request), [context] { return context->IsCancelled(); });
    if (!result.reply.ok()) return ToGrpc(result.reply);
    res->set_model_name(mv->name);
    res->set_model_version(std::to_string(mv->version));
    res->set_id(req->id());
    for (const auto& [name, t] : result.outputs) {
      auto* o = res->add_outputs();
      o->set_name(name);
      const char* type = WireTypeName(t.dtype());
      o->set_datatype(type ? type : DataTypeName(t.dtype()));
      for (int64_t d : t.shape()) o->add_shape(d);
      AppendRaw(t, res->add_raw_output_contents());
    }
    return grpc::Status::OK;
  }

 private:
  // A checked request from the proto.
  Reply Build(const ModelVersion& mv, const inference::ModelInferRequest& req, grpc::ServerContext* context,
              InferRequest* out) {
    InferRequest& request = *out;
    RequestBuilder builder(mv);
    const bool raw = req.raw_input_contents_size() > 0;
    if (raw && req.raw_input_contents_size() != req.inputs_size())
      return Reply::Error(ReplyCode::kBadRequest,
                          fmt::format("raw_input_contents has {} entries for {} inputs (one per input, in order)",
                                      req.raw_input_contents_size(), req.inputs_size()));
    for (int i = 0; i < req.inputs_size(); ++i) {
      const auto& in = req.inputs(i);
      const std::vector<int64_t> shape(in.shape().begin(), in.shape().end());
      DataType dtype;
      Reply r = builder.BeginInput(in.name(), in.datatype(), shape, &dtype);
      if (!r.ok()) return r;
      const std::string what = builder.Describe(in.name());
      StatusOr<HostTensor> t = raw ? TensorFromRaw(dtype, shape, req.raw_input_contents(i).data(),
                                                   req.raw_input_contents(i).size(), options_.max_message_bytes, what)
                                   : FromContents(dtype, shape, in.contents(), options_.max_message_bytes, what);
      if (!t.ok()) return Reply::FromStatus(t.status());
      builder.SetData(std::move(*t));
    }
    for (const auto& o : req.outputs()) {
      Reply r = builder.AddOutput(o.name(), true);
      if (!r.ok()) return r;
    }
    int64_t timeout_us = mv.config.default_timeout_us;
    auto p = req.parameters().find("timeout");
    if (p != req.parameters().end() && p->second.parameter_choice_case() == inference::InferParameter::kInt64Param)
      timeout_us = std::max<int64_t>(0, p->second.int64_param());
    if (timeout_us > 0) request.deadline = request.arrival + std::chrono::microseconds(timeout_us);
    // The client's own deadline bounds it too.
    const auto client = context->deadline();
    const auto now_sys = std::chrono::system_clock::now();
    if (client < now_sys + std::chrono::hours(24 * 365))
      request.deadline = std::min(request.deadline, request.arrival + (client - now_sys));
    request.id = req.id();
    return builder.Finish(true, &request);
  }

  ModelManager& manager_;
  GrpcOptions options_;
  std::function<bool()> ready_;
};

class GrpcFrontendImpl final : public GrpcFrontend {
 public:
  GrpcFrontendImpl(ModelManager& manager, GrpcOptions options, std::function<bool()> ready)
      : service_(manager, options, std::move(ready)), options_(std::move(options)) {}

  bool Start(std::string* error) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(fmt::format("{}:{}", options_.host, options_.port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(options_.max_message_bytes, INT32_MAX)));
    builder.SetMaxSendMessageSize(INT32_MAX);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ <= 0) {
      *error = fmt::format("cannot listen on {}:{}", options_.host, options_.port);
      return false;
    }
    return true;
  }
  int port() const override { return port_; }
  void Shutdown() override {
    if (server_) server_->Shutdown();  // waits for the calls in flight
  }
  ~GrpcFrontendImpl() override { Shutdown(); }

 private:
  Service service_;
  GrpcOptions options_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace

std::unique_ptr<GrpcFrontend> GrpcFrontend::Create(ModelManager& manager, GrpcOptions options,
                                                   std::function<bool()> ready, std::string* error) {
  auto f = std::make_unique<GrpcFrontendImpl>(manager, std::move(options), std::move(ready));
  if (!f->Start(error)) return nullptr;
  return f;
}

}  // namespace kiln::server
