// The model repository, laid out like Triton's:
//
//   DIR/<model>/config.json            optional (ModelConfig below)
//   DIR/<model>/<version>/model.plan   a plan from `kiln build`, or
//   DIR/<model>/<version>/model.onnx   an ONNX model (built on load; the plan is cached in
//                                      DIR/<model>/<version>/.kiln-cache/)
//
// Model names come from the directory, never from a request: a request's name is looked
// up among the names a scan found, so no request can name a path.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/kiln.h"

namespace kiln::server {

// config.json. Unknown keys are an error naming the key.
struct ModelConfig {
  // > 0: the model's inputs and outputs have a batch dimension first, and the server
  // combines requests up to this many samples (dynamic batching). 0: each request runs as
  // given.
  int max_batch_size = 0;
  // Dynamic batching: how long the first request of a batch waits for more, and the batch
  // sizes to run as soon as they are reached.
  int64_t max_queue_delay_us = 0;
  std::vector<int> preferred_batch_sizes;
  // Requests waiting per model version; more are refused with 503 / UNAVAILABLE.
  int max_queue_size = 256;
  // Execution contexts over the one shared engine, each on its own thread.
  int instance_count = 1;
  // Threads per inference (0: the server's --threads).
  int threads = 0;
  std::string precision = "fp32";
  // Shapes for dynamic dimensions other than the batch dimension.
  std::map<std::string, std::vector<int64_t>> input_shapes;
  // Versions served: the newest `latest_versions` (0: all).
  int latest_versions = 1;
  // A request that has not started running after this long is answered 504 (0: no limit;
  // a request's own "timeout" parameter, in microseconds, overrides it).
  int64_t default_timeout_us = 0;
  // Warm-up runs on zeros before the version is ready: -1 (default) only where something
  // must compile first (a dynamic engine specializes per batch size), 1 always (first
  // touches of the arena and caches too), 0 never.
  int warmup = -1;
  // The raw text, for GET .../config and the plan-cache key.
  std::string text;
};
StatusOr<ModelConfig> ParseModelConfig(const std::string& text, const std::string& source);

struct VersionFiles {
  int64_t version = 0;
  std::string model_path;   // model.plan or model.onnx
  std::string fingerprint;  // changes when any file of the version changes (size, mtime, inode)
};

struct ModelFiles {
  std::string name;
  std::string dir;
  std::string config_path;  // empty: none
  std::string config_fingerprint;
  std::map<int64_t, VersionFiles> versions;
  std::vector<std::string> problems;  // version folders that were skipped, and why
};

// 1-128 characters from [A-Za-z0-9_.-], not starting with '.'.
bool IsValidModelName(std::string_view name);

class ModelRepository {
 public:
  explicit ModelRepository(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }
  // Every model folder (invalid names are listed in `skipped`).
  StatusOr<std::map<std::string, ModelFiles>> Scan(std::vector<std::string>* skipped = nullptr) const;
  // One model, found by listing the repository (NotFound if no folder has that name).
  StatusOr<ModelFiles> ScanModel(const std::string& name) const;

 private:
  std::string root_;
};

}  // namespace kiln::server
