// The models a server serves: loads them from the repository (an ONNX model is built into a
// plan once and the plan cached next to it, keyed by the model's bytes, its config, the
// kiln version and the CPU), keeps the versions its policy serves, reloads changed ones
// without failing a request in flight (the old version serves until the new one is ready;
// requests holding it finish on it), and unloads.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "tools/server/metrics.h"
#include "tools/server/model_repository.h"
#include "tools/server/reply.h"
#include "tools/server/scheduler.h"

namespace kiln::server {

// One loaded version. Immutable once serving, except its counters.
struct ModelVersion {
  std::string name;
  int64_t version = 0;
  std::string model_path;
  std::string platform;  // "kiln_plan" or "onnx"
  std::string fingerprint;
  ModelConfig config;
  std::shared_ptr<const Engine> engine;
  // As served: with batching, every input's and output's first dimension is -1.
  std::vector<TensorInfo> inputs, outputs;
  ModelStats stats;
  std::unique_ptr<ModelScheduler> scheduler;  // last: stopped before the rest goes

  ~ModelVersion() { scheduler.reset(); }
  // Runs a checked request; waits for its answer. `cancelled`, if given, is polled while
  // the request waits: once it says so, the request is dropped instead of run.
  InferResult Infer(InferRequest request, const std::function<bool()>& cancelled = nullptr);
};

struct ManagerOptions {
  std::string repository;
  int threads = 0;        // per inference, for models whose config sets none
  bool plan_cache = true;
  bool verbose = false;
};

class ModelManager {
 public:
  explicit ModelManager(ManagerOptions options);

  // Loads every model in the repository (startup); models that fail are listed UNAVAILABLE
  // with the reason. Returns how many failed.
  int LoadAll();
  // Loads or reloads one model from the repository (404 if it has no folder).
  Reply Load(const std::string& name);
  Reply Unload(const std::string& name);
  // Rescans the repository: loads new models, reloads changed ones, unloads removed ones.
  void Poll();

  // The version to serve: `version` as given ("" = the newest ready one).
  Reply Find(const std::string& name, const std::string& version, std::shared_ptr<ModelVersion>* out) const;

  struct IndexEntry {
    std::string name, version, state, reason;
  };
  std::vector<IndexEntry> Index() const;
  // Every serving version (for metrics), held alive by the caller while it reads them.
  std::vector<std::shared_ptr<ModelVersion>> Serving() const;

 private:
  struct ModelEntry {
    std::mutex load_mu;  // one load/unload of this model at a time
    std::map<int64_t, std::shared_ptr<ModelVersion>> versions;  // serving, guarded by mu_
    std::string state = "UNAVAILABLE";
    std::string reason;
    std::string source;  // the repository files the last load saw (Poll reloads when they change)
  };
  std::shared_ptr<ModelEntry> Entry(const std::string& name);
  StatusOr<std::shared_ptr<ModelVersion>> LoadVersion(const ModelFiles& files, const VersionFiles& version,
                                                      const ModelConfig& config) const;
  Reply LoadFrom(const std::string& name, const StatusOr<ModelFiles>& files);

  ManagerOptions options_;
  ModelRepository repository_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ModelEntry>> models_;
};

}  // namespace kiln::server
