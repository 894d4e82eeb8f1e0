// Runs one model version's requests: a bounded queue, N instances (execution contexts over
// the one shared engine, each on its own thread) and a dynamic batcher that combines
// queued requests along the batch dimension (up to max_batch_size samples; the first
// request of a batch waits at most max_queue_delay for more, and a preferred batch size
// runs as soon as it is reached), runs them as one batch and splits the outputs back.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kiln/kiln.h"
#include "tools/server/metrics.h"
#include "tools/server/reply.h"

namespace kiln::server {

using Clock = std::chrono::steady_clock;
using NamedTensors = std::vector<std::pair<std::string, HostTensor>>;

struct InferRequest {
  std::string id;
  // Every engine input, in the engine's order, checked against its dtype and shape.
  std::vector<HostTensor> inputs;
  // Engine output indices to return, in the order to return them.
  std::vector<int> outputs;
  Clock::time_point arrival = Clock::now();
  Clock::time_point deadline = Clock::time_point::max();  // not run after this: 504
  std::shared_ptr<std::atomic<bool>> cancelled;           // set when the client went away
};

struct InferResult {
  Reply reply;
  NamedTensors outputs;
  int64_t queue_us = 0, compute_us = 0;
  int batch_size = 0;  // samples in the execution that served it
};

struct SchedulerOptions {
  int max_batch_size = 0;  // 0: no batching
  int64_t max_queue_delay_us = 0;
  std::vector<int> preferred_batch_sizes;
  int max_queue_size = 256;
  int instances = 1;
};

class ModelScheduler {
 public:
  // Runs `warmup` once on each instance, on the instance's own thread and context (so its
  // arena, OpenMP team and caches are warm), before the constructor returns.
  using Warmup = std::function<void(ExecutionContext& context, int instance)>;
  ModelScheduler(std::shared_ptr<const Engine> engine, SchedulerOptions options, ModelStats* stats,
                 const Warmup& warmup = nullptr);
  // Runs every request still queued, then joins the instances.
  ~ModelScheduler();
  ModelScheduler(const ModelScheduler&) = delete;
  ModelScheduler& operator=(const ModelScheduler&) = delete;

  // Queues a request; the future is always fulfilled (a full queue: 503 at once).
  std::future<InferResult> Submit(InferRequest request);

 private:
  struct Pending {
    InferRequest request;
    std::promise<InferResult> promise;
    int64_t samples = 1;    // its batch dimension (1 without batching)
    std::string shape_key;  // requests batch together only with equal keys
  };
  using Batch = std::vector<std::unique_ptr<Pending>>;

  void Worker(const Warmup* warmup, int instance, std::promise<void>* warmed);
  void TakeCompatible(Batch& batch, int64_t& total);
  bool IsPreferred(int64_t total) const;
  void Execute(ExecutionContext& context, Batch& batch);

  std::shared_ptr<const Engine> engine_;
  SchedulerOptions options_;
  ModelStats* stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Pending>> queue_;
  bool gathering_ = false;  // one instance at a time forms a batch
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace kiln::server
