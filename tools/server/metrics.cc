#include "tools/server/metrics.h"

#include <fmt/format.h>

namespace kiln::server {

namespace {

struct Family {
  const char* name;
  const char* type;
  const char* help;
};
constexpr Family kFamilies[] = {
    {"kiln_request_success_total", "counter", "Inference requests answered successfully"},
    {"kiln_request_failure_total", "counter", "Inference requests answered with an error"},
    {"kiln_request_rejected_total", "counter", "Inference requests refused because the queue was full"},
    {"kiln_inference_count_total", "counter", "Samples inferred (a batch of N counts N)"},
    {"kiln_execution_count_total", "counter", "Engine executions (a batch counts 1)"},
    {"kiln_queue_duration_us_total", "counter", "Cumulative time requests waited in the queue, microseconds"},
    {"kiln_compute_duration_us_total", "counter", "Cumulative engine time of the requests, microseconds"},
    {"kiln_request_duration_us_total", "counter", "Cumulative request time from arrival to answer, microseconds"},
    {"kiln_inflight_requests", "gauge", "Requests accepted and not yet answered"},
    {"kiln_queue_depth", "gauge", "Requests waiting for an instance"},
    {"kiln_model_load_duration_ms", "gauge", "Time the version took to load (and build), milliseconds"},
    {"kiln_batch_size", "histogram", "Batch sizes the dynamic batcher executed"},
};

}  // namespace

void ModelStats::RecordBatch(int size) {
  size_t i = 0;
  while (i < kBatchBuckets.size() && size > kBatchBuckets[i]) ++i;
  batch_hist[i].fetch_add(1, std::memory_order_relaxed);
  batch_sum.fetch_add(static_cast<uint64_t>(size), std::memory_order_relaxed);
}

std::string RenderMetrics(const std::vector<StatsSource>& sources) {
  std::string out;
  auto family = [&](const Family& f, auto value_of) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, f.type);
    for (const StatsSource& s : sources)
      out += fmt::format("{}{{model=\"{}\",version=\"{}\"}} {}\n", f.name, s.model, s.version, value_of(*s.stats));
  };
  // Model names are [A-Za-z0-9_.-]: nothing to escape in a label value.
  const Family* f = kFamilies;
  family(*f++, [](const ModelStats& m) { return m.request_success.load(); });
  family(*f++, [](const ModelStats& m) { return m.request_failure.load(); });
  family(*f++, [](const ModelStats& m) { return m.rejected_queue_full.load(); });
  family(*f++, [](const ModelStats& m) { return m.inference_count.load(); });
  family(*f++, [](const ModelStats& m) { return m.execution_count.load(); });
  family(*f++, [](const ModelStats& m) { return m.queue_us.load(); });
  family(*f++, [](const ModelStats& m) { return m.compute_us.load(); });
  family(*f++, [](const ModelStats& m) { return m.request_us.load(); });
  family(*f++, [](const ModelStats& m) { return m.in_flight.load(); });
  family(*f++, [](const ModelStats& m) { return m.queue_depth.load(); });
  family(*f++, [](const ModelStats& m) { return fmt::format("{:.1f}", m.load_ms); });
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f->name, f->help, f->name, f->type);
  for (const StatsSource& s : sources) {
    const ModelStats& m = *s.stats;
    const std::string labels = fmt::format("model=\"{}\",version=\"{}\"", s.model, s.version);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < ModelStats::kBatchBuckets.size(); ++i) {
      cumulative += m.batch_hist[i].load();
      out += fmt::format("kiln_batch_size_bucket{{{},le=\"{}\"}} {}\n", labels, ModelStats::kBatchBuckets[i], cumulative);
    }
    cumulative += m.batch_hist[ModelStats::kBatchBuckets.size()].load();
    out += fmt::format("kiln_batch_size_bucket{{{},le=\"+Inf\"}} {}\n", labels, cumulative);
    out += fmt::format("kiln_batch_size_sum{{{}}} {}\n", labels, m.batch_sum.load());
    out += fmt::format("kiln_batch_size_count{{{}}} {}\n", labels, cumulative);
  }
  return out;
}

}  // namespace kiln::server
