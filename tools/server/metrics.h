// Per-model-version counters, rendered in the Prometheus text exposition format
// (https://prometheus.io/docs/instrumenting/exposition_formats/): lock-free updates from
// the request and worker threads.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::server {

struct ModelStats {
  std::atomic<uint64_t> request_success{0}, request_failure{0};
  std::atomic<uint64_t> inference_count{0};  // samples run (a batch of 8 counts 8)
  std::atomic<uint64_t> execution_count{0};  // engine runs (a batch counts 1)
  std::atomic<uint64_t> queue_us{0}, compute_us{0}, request_us{0};
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> queue_depth{0};
  std::atomic<uint64_t> rejected_queue_full{0};
  double load_ms = 0;  // set once, before the version serves
  // Executed batch sizes: bucket i counts batches of size <= kBatchBuckets[i].
  static constexpr std::array<int, 9> kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  std::array<std::atomic<uint64_t>, kBatchBuckets.size() + 1> batch_hist{};  // last: +Inf
  std::atomic<uint64_t> batch_sum{0};

  void RecordBatch(int size);
};

struct StatsSource {
  std::string model;
  int64_t version;
  const ModelStats* stats;
};
// The whole scrape: each metric family once, with one sample per model version (labelled
// model="name",version="v"), as the format requires (a family's lines form one group).
std::string RenderMetrics(const std::vector<StatsSource>& sources);

}  // namespace kiln::server
