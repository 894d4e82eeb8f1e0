#include "tools/server/http_frontend.h"

#include <fmt/format.h>
#include <httplib.h>

#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/server/model_manager.h"
#include "tools/server/http_codec.h"
#include "tools/server/request_builder.h"
#include "tools/server/tensor_codec.h"

namespace kiln::server {

namespace {

using json = nlohmann::json;

// JSON that never throws on bad UTF-8 in strings that came from the client.
void SendError(httplib::Response& res, ReplyCode code, const std::string& message) {
  res.status = static_cast<int>(code);
  if (code == ReplyCode::kUnavailable) res.set_header("Retry-After", "1");
  res.set_content(DumpJson(json{{"error", message}}), "application/json");
}

void SendJson(httplib::Response& res, const json& j) {
  res.status = 200;
  res.set_content(DumpJson(j), "application/json");
}

json TensorMetadata(const TensorInfo& t) {
  const char* type = WireTypeName(t.dtype);
  return json{{"name", t.name}, {"datatype", type ? type : DataTypeName(t.dtype)}, {"shape", t.shape}};
}

// cpp-httplib's stop() marks the listening socket invalid, and its connection loop then
// closes every accepted connection before reading its next request -- including connections
// accepted but still queued for a worker: requests dropped at shutdown. Stopping by shutting
// the listening socket down instead ends the accept loop (accept fails) while the socket stays
// "valid", so every accepted connection is served until its client closes it or an answer
// says Connection: close (every answer does while draining).
void SendInferResult(httplib::Response& res, const ModelVersion& model, const ParsedInfer& parsed,
                     const InferResult& result) {
  size_t json_size = 0;
  std::string body = EncodeInferResult(model, parsed, result, &json_size);
  res.status = 200;
  if (json_size == body.size()) {
    res.set_content(std::move(body), "application/json");
    return;
  }
  res.set_header("Inference-Header-Content-Length", std::to_string(json_size));
  res.set_content(std::move(body), "application/octet-stream");
}

class DrainableServer : public httplib::Server {
 public:
  void StopAccepting() {
    const socket_t s = svr_sock_;
    if (s != INVALID_SOCKET) ::shutdown(s, SHUT_RDWR);
  }
};

}  // namespace

struct HttpFrontend::Impl {
  ModelManager& manager;
  HttpOptions options;
  std::function<bool()> ready;
  DrainableServer server;
  int port = -1;

  Impl(ModelManager& m, HttpOptions o, std::function<bool()> r) : manager(m), options(std::move(o)), ready(std::move(r)) {}

  // Model and version from the route's captures.
  Reply FindModel(const httplib::Request& req, std::shared_ptr<ModelVersion>* out) {
    return manager.Find(req.matches[1].str(), req.matches.size() > 2 ? req.matches[2].str() : "", out);
  }

  void Routes();
  void MetricsRoutes();
  void Infer(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
};

void HttpFrontend::Impl::Routes() {
  server.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) { SendJson(res, json{{"live", true}}); });
  server.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    if (ready()) return SendJson(res, json{{"ready", true}});
    SendError(res, ReplyCode::kUnavailable, "not ready");
  });
  server.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, json{{"name", "kiln"}, {"version", KILN_VERSION},
                       {"extensions", {"binary_tensor_data", "model_repository", "schedule_policy", "statistics"}}});
  });
  const std::string model = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
  server.Get(model, [this](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<ModelVersion> mv;
    Reply r = FindModel(req, &mv);
    if (!r.ok()) return SendError(res, r.code, r.message);
    json versions = json::array();
    for (const ModelManager::IndexEntry& e : manager.Index())
      if (e.name == mv->name && !e.version.empty()) versions.push_back(e.version);
    json inputs = json::array(), outputs = json::array();
    for (const TensorInfo& t : mv->inputs) inputs.push_back(TensorMetadata(t));
    for (const TensorInfo& t : mv->outputs) outputs.push_back(TensorMetadata(t));
    SendJson(res, json{{"name", mv->name}, {"versions", versions}, {"platform", mv->platform},
                       {"inputs", inputs}, {"outputs", outputs}});
  });
  server.Get(model + "/ready", [this](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<ModelVersion> mv;
    Reply r = FindModel(req, &mv);
    if (!r.ok()) return SendError(res, r.code, r.message);
    SendJson(res, json{{"name", mv->name}, {"ready", true}});
  });
  server.Get(model + "/config", [this](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<ModelVersion> mv;
    Reply r = FindModel(req, &mv);
    if (!r.ok()) return SendError(res, r.code, r.message);
    const ModelConfig& c = mv->config;
    SendJson(res, json{{"name", mv->name}, {"platform", mv->platform}, {"max_batch_size", c.max_batch_size},
                       {"dynamic_batching", {{"max_queue_delay_microseconds", c.max_queue_delay_us},
                                             {"preferred_batch_size", c.preferred_batch_sizes}}},
                       {"max_queue_size", c.max_queue_size}, {"instance_count", c.instance_count},
                       {"precision", c.precision}, {"threads", c.threads}});
  });
  server.Post(model + "/infer", [this](const httplib::Request& req, httplib::Response& res,
                                       const httplib::ContentReader& reader) { Infer(req, res, reader); });
  server.Post("/v2/repository/index", [this](const httplib::Request&, httplib::Response& res,
                                              const httplib::ContentReader& reader) {
    reader([](const char*, size_t) { return true; });
    json out = json::array();
    for (const ModelManager::IndexEntry& e : manager.Index()) {
      json m{{"name", e.name}, {"state", e.state}};
      if (!e.version.empty()) m["version"] = e.version;
      if (!e.reason.empty()) m["reason"] = e.reason;
      out.push_back(std::move(m));
    }
    SendJson(res, out);
  });
  server.Post(R"(/v2/repository/models/([^/]+)/(load|unload))",
              [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
                reader([](const char*, size_t) { return true; });
                if (!options.repository_control)
                  return SendError(res, ReplyCode::kBadRequest,
                                   "model control is off: start kiln serve with --model-control-mode explicit");
                const std::string name = req.matches[1].str();
                Reply r = req.matches[2].str() == "load" ? manager.Load(name) : manager.Unload(name);
                if (!r.ok()) return SendError(res, r.code, r.message);
                SendJson(res, json::object());
              });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // an answer already written
    if (res.status == 404) return SendError(res, ReplyCode::kNotFound, fmt::format("no route {} {}", req.method, req.path));
    if (res.status == 413) return SendError(res, ReplyCode::kPayloadTooLarge, "the request body is over the size limit");
    SendError(res, static_cast<ReplyCode>(res.status), fmt::format("HTTP {}", res.status));
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, ReplyCode::kInternal, "internal error: " + what);
  });
}

void HttpFrontend::Impl::Infer(const httplib::Request& req, httplib::Response& res,
                               const httplib::ContentReader& reader) {
  // The body, up to the limit (after decompression, chunked or not).
  std::string body;
  if (req.has_header("Content-Length")) {
    const uint64_t n = req.get_header_value<uint64_t>("Content-Length");
    if (n <= options.max_body_bytes) body.reserve(static_cast<size_t>(n));  // one buffer, no regrowth
  }
  bool too_large = false;
  const bool read = reader([&](const char* data, size_t n) {
    if (n > options.max_body_bytes - body.size()) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_large || res.status == 413 ||
      (req.has_header("Content-Length") && req.get_header_value<uint64_t>("Content-Length") > options.max_body_bytes))
    return SendError(res, ReplyCode::kPayloadTooLarge,
                     fmt::format("the request body is larger than the limit of {} bytes", options.max_body_bytes));
  if (!read) return SendError(res, ReplyCode::kBadRequest, "the request body could not be read (truncated, timed out, "
                                                           "or badly encoded)");
  std::shared_ptr<ModelVersion> mv;
  Reply r = FindModel(req, &mv);
  if (!r.ok()) return SendError(res, r.code, r.message);

  size_t head_size = body.size();
  if (req.has_header("Inference-Header-Content-Length")) {
    const std::string v = req.get_header_value("Inference-Header-Content-Length");
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0 || v[0] == '-' || n > body.size())
      return SendError(res, ReplyCode::kBadRequest,
                       fmt::format("Inference-Header-Content-Length '{}' is not a length within the {}-byte body", v,
                                   body.size()));
    head_size = static_cast<size_t>(n);
  }
  ParsedInfer parsed;
  r = ParseInfer(*mv, body.data(), head_size, body.data() + head_size, body.size() - head_size,
                 InferLimits{options.max_body_bytes, options.max_json_depth}, &parsed);
  if (!r.ok()) {
    mv->stats.request_failure.fetch_add(1);
    return SendError(res, r.code, r.message);
  }
  parsed.request.id = parsed.id.is_string() ? parsed.id.get<std::string>() : "";
  body.clear();
  body.shrink_to_fit();
  InferResult result = mv->Infer(std::move(parsed.request));
  if (!result.reply.ok()) return SendError(res, result.reply.code, result.reply.message);
  SendInferResult(res, *mv, parsed, result);
}

HttpFrontend::HttpFrontend(ModelManager& manager, HttpOptions options, std::function<bool()> ready)
    : impl_(std::make_unique<Impl>(manager, std::move(options), std::move(ready))) {
  const int threads = std::max(1, impl_->options.threads);
  impl_->server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  impl_->server.set_payload_max_length(impl_->options.max_body_bytes);
  impl_->server.set_read_timeout(impl_->options.read_timeout_s, 0);
  impl_->server.set_keep_alive_timeout(5);
  // Headers and body go out as separate writes: with Nagle on, the body waits for the
  // client's delayed ACK (40 ms on Linux) on every keep-alive request.
  impl_->server.set_tcp_nodelay(true);
  if (impl_->options.metrics_only) impl_->MetricsRoutes();
  else impl_->Routes();
  // Every answer carries a request id: the client's X-Request-Id, else one made here.
  static std::atomic<uint64_t> next_id{1};
  static thread_local Clock::time_point started;
  impl_->server.set_pre_routing_handler([](const httplib::Request&, httplib::Response& res) {
    started = Clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  Impl* impl = impl_.get();
  impl_->server.set_post_routing_handler([impl](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.has_header("X-Request-Id") ? req.get_header_value("X-Request-Id")
                                                          : fmt::format("kiln-{}", next_id.fetch_add(1));
    res.set_header("X-Request-Id", id.substr(0, 128));
    // Draining (or not yet ready): each answer closes its connection, so keep-alive clients
    // reconnect for their next request instead of sending it on a connection the server is
    // about to close (which they would see as a dropped request).
    if (!impl->options.metrics_only && !impl->ready()) res.set_header("Connection", "close");
  });
  if (impl_->options.access_log) {
    impl_->server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      static std::mutex mu;
      const auto now = std::chrono::system_clock::now();
      json line{{"ts", std::chrono::duration<double>(now.time_since_epoch()).count()},
                {"request_id", res.get_header_value("X-Request-Id")},
                {"remote", req.remote_addr},
                {"method", req.method},
                {"path", req.path},
                {"status", res.status},
                {"request_bytes", req.body.size() ? req.body.size() : req.get_header_value<uint64_t>("Content-Length")},
                {"response_bytes", res.body.size()},
                {"ms", std::chrono::duration<double, std::milli>(Clock::now() - started).count()}};
      std::lock_guard<std::mutex> lock(mu);
      std::cout << DumpJson(line) << "\n" << std::flush;
    });
  }
}

HttpFrontend::~HttpFrontend() = default;

bool HttpFrontend::Bind(std::string* error) {
  if (impl_->options.port == 0) {
    impl_->port = impl_->server.bind_to_any_port(impl_->options.host);
  } else if (impl_->server.bind_to_port(impl_->options.host, impl_->options.port)) {
    impl_->port = impl_->options.port;
  }
  if (impl_->port <= 0) {
    *error = fmt::format("cannot listen on {}:{} ({})", impl_->options.host, impl_->options.port, std::strerror(errno));
    return false;
  }
  return true;
}

int HttpFrontend::port() const { return impl_->port; }
void HttpFrontend::Run() { impl_->server.listen_after_bind(); }
void HttpFrontend::Stop() { impl_->server.StopAccepting(); }

std::unique_ptr<HttpFrontend> HttpFrontend::Metrics(ModelManager& manager, const std::string& host, int port) {
  HttpOptions o;
  o.host = host;
  o.port = port;
  o.threads = 2;
  o.metrics_only = true;
  return std::make_unique<HttpFrontend>(manager, o, [] { return true; });
}

void HttpFrontend::Impl::MetricsRoutes() {
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::vector<std::shared_ptr<ModelVersion>> serving = manager.Serving();
    std::vector<StatsSource> sources;
    for (const auto& mv : serving) sources.push_back({mv->name, mv->version, &mv->stats});
    res.set_content(RenderMetrics(sources), "text/plain; version=0.0.4");
  });
}

}  // namespace kiln::server
