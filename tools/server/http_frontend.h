// The KServe v2 REST protocol over HTTP/1.1 (cpp-httplib): health, server and model
// metadata, model config, infer (JSON tensors and the binary tensor data extension), the
// repository extension (index, load, unload), and Prometheus metrics on its own port.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace kiln::server {

class ModelManager;

struct HttpOptions {
  std::string host = "0.0.0.0";
  int port = 8000;
  int threads = 32;                            // connections served at once
  size_t max_body_bytes = size_t{64} << 20;    // after decompression
  int max_json_depth = 64;
  int read_timeout_s = 30;                     // a body that stalls longer is dropped
  bool repository_control = false;             // POST /v2/repository/models/*/load|unload
  bool metrics_only = false;                   // only GET /metrics (the metrics port)
  bool access_log = false;                     // one JSON line per request on stdout
};

class HttpFrontend {
 public:
  HttpFrontend(ModelManager& manager, HttpOptions options, std::function<bool()> ready);
  ~HttpFrontend();
  // Binds the port (0: any free one; port() says which). False with a message if it cannot.
  bool Bind(std::string* error);
  int port() const;
  void Run();   // serves until Stop(); answers every request it accepted
  void Stop();  // stops accepting; Run() returns once in-flight requests are answered

  // The metrics endpoint (GET /metrics) on its own port.
  static std::unique_ptr<HttpFrontend> Metrics(ModelManager& manager, const std::string& host, int port);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::server
