// `kiln serve`: the inference server (KServe v2 / Open Inference Protocol over HTTP, and
// gRPC where built with it). Uses only the public API (include/kiln).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kiln::server {

struct ServeOptions {
  std::string repository;
  std::string host = "0.0.0.0";
  int http_port = 8000;     // 0: any free port (printed); -1: off
  int grpc_port = 8001;     // 0: any free port (printed); -1: off
  int metrics_port = 8002;  // 0: any free port (printed); -1: off
  int threads = 0;          // per inference, for models whose config sets none (0: all cores)
  int http_threads = 32;
  std::string model_control = "none";  // none | poll | explicit
  int poll_seconds = 15;
  std::vector<std::string> load_models;  // explicit mode: loaded at start
  size_t max_body_bytes = size_t{64} << 20;
  int read_timeout_seconds = 30;  // a request body that stalls longer is dropped
  double drain_seconds = 0;  // after SIGTERM: not ready, still serving, this long
  bool plan_cache = true;
  bool verbose = false;
  bool access_log = false;  // one JSON line per HTTP request on stdout
};

// Serves until SIGTERM/SIGINT, then stops accepting, answers what it accepted and returns 0;
// non-zero if it cannot start.
int Serve(const ServeOptions& options);

}  // namespace kiln::server
