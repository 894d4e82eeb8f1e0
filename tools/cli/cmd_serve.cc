// `kiln serve --model-repository DIR [--http-port 8000] [--grpc-port 8001] [--metrics-port 8002]`
// The inference server (tools/server/): KServe v2 over HTTP and gRPC, dynamic batching,
// plan cache, hot reload, Prometheus metrics.
#include "tools/cli/commands.h"
#include "tools/server/server.h"

namespace kiln::cli {

Command AddServeCommand(CLI::App& app) {
  auto o = std::make_shared<server::ServeOptions>();
  auto max_body_mb = std::make_shared<double>(64);
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve the models of a repository over the KServe v2 / Open Inference Protocol (HTTP and gRPC)");
  cmd->footer(
      "Repository: DIR/<model>/<version>/model.onnx|model.plan, and an optional DIR/<model>/config.json:\n"
      "  {\"max_batch_size\": 8, \"dynamic_batching\": {\"max_queue_delay_microseconds\": 500,\n"
      "   \"preferred_batch_size\": [4, 8]}, \"max_queue_size\": 256, \"instance_count\": 1, \"threads\": 1,\n"
      "   \"precision\": \"fp32\", \"input_shapes\": {\"x\": [1, 128]}, \"version_policy\": {\"latest\": 1},\n"
      "   \"default_timeout_us\": 0, \"warmup\": false}\n"
      "An ONNX model is built on first load and its plan cached in <version>/.kiln-cache/.\n"
      "SIGTERM/SIGINT: readiness fails, then (after --drain-seconds) the server stops accepting,\n"
      "answers every request it accepted, and exits 0.");
  cmd->add_option("--model-repository", o->repository, "The model repository folder")->required()->check(kPath);
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--http-port", o->http_port, "HTTP port (0: any free port; -1: no HTTP)")->capture_default_str();
  cmd->add_option("--grpc-port", o->grpc_port, "gRPC port (0: any free port; -1: no gRPC)")->capture_default_str();
  cmd->add_option("--metrics-port", o->metrics_port, "Prometheus metrics port (0: any; -1: none)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads per inference for models whose config sets none (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--http-threads", o->http_threads, "HTTP connections served at once")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--model-control-mode", o->model_control,
                  "none: load the repository at start; poll: also pick up changes every --repository-poll-secs; "
                  "explicit: load only --load-model at start, then through the repository API")
      ->check(CLI::IsMember({"none", "poll", "explicit"}))
      ->capture_default_str();
  cmd->add_option("--repository-poll-secs", o->poll_seconds, "Poll interval (poll mode)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  cmd->add_option("--load-model", o->load_models, "A model to load at start (explicit mode; repeatable)");
  cmd->add_option("--max-body-mb", *max_body_mb, "Largest request body (after decompression) and gRPC message, MiB")
      ->check(CLI::Range(0.001, 4096.0))
      ->capture_default_str();
  cmd->add_option("--http-read-timeout", o->read_timeout_seconds,
                  "Seconds a request may stall mid-body before its connection is dropped")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--drain-seconds", o->drain_seconds, "After SIGTERM: not ready but still serving, this long")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  cmd->add_flag("--no-plan-cache", [o](int64_t) { o->plan_cache = false; }, "Build ONNX models afresh, cache no plan");
  cmd->add_flag("--verbose", o->verbose, "Log each model version as it becomes ready");
  cmd->add_flag("--access-log", o->access_log,
                "One JSON line per HTTP request on stdout (time, request id, client, path, status, sizes, ms)");
  return {cmd, [o, max_body_mb] {
            o->max_body_bytes = static_cast<size_t>(*max_body_mb * 1024 * 1024);
            return server::Serve(*o);
          }};
}

}  // namespace kiln::cli
