#include "tools/server/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace kiln::server {

namespace {

int64_t MicrosBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

std::future<InferResult> Answered(Reply reply) {
  std::promise<InferResult> p;
  InferResult r;
  r.reply = std::move(reply);
  p.set_value(std::move(r));
  return p.get_future();
}

// Rows [begin, begin + rows) of t's first dimension, copied.
HostTensor SliceRows(const HostTensor& t, int64_t begin, int64_t rows) {
  std::vector<int64_t> shape = t.shape();
  const int64_t total = shape[0];
  shape[0] = rows;
  HostTensor out = HostTensor::Allocate(t.dtype(), shape);
  const int64_t per_row = total == 0 ? 0 : t.numel() / total;
  if (t.dtype() == DataType::kString) {
    const auto* src = t.data_as<std::string>() + begin * per_row;
    std::copy(src, src + rows * per_row, out.data_as<std::string>());
  } else if (out.nbytes() > 0) {
    const size_t row_bytes = static_cast<size_t>(per_row) * DataTypeSize(t.dtype());
    std::memcpy(out.data(), static_cast<const char*>(t.data()) + static_cast<size_t>(begin) * row_bytes, out.nbytes());
  }
  return out;
}

// The requests' tensors joined along the first dimension.
HostTensor JoinRows(const std::vector<const HostTensor*>& parts, int64_t total) {
  std::vector<int64_t> shape = parts[0]->shape();
  shape[0] = total;
  HostTensor out = HostTensor::Allocate(parts[0]->dtype(), shape);
  if (out.dtype() == DataType::kString) {
    auto* dst = out.data_as<std::string>();
    for (const HostTensor* p : parts) dst = std::copy(p->data_as<std::string>(), p->data_as<std::string>() + p->numel(), dst);
  } else {
    char* dst = static_cast<char*>(out.data());
    for (const HostTensor* p : parts) {
      if (p->nbytes()) std::memcpy(dst, p->data(), p->nbytes());
      dst += p->nbytes();
    }
  }
  return out;
}

}  // namespace

ModelScheduler::ModelScheduler(std::shared_ptr<const Engine> engine, SchedulerOptions options, ModelStats* stats,
                               const Warmup& warmup)
    : engine_(std::move(engine)), options_(std::move(options)), stats_(stats) {
  std::sort(options_.preferred_batch_sizes.begin(), options_.preferred_batch_sizes.end());
  const int n = std::max(1, options_.instances);
  std::vector<std::promise<void>> warmed(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    workers_.emplace_back([this, &warmup, i, &warmed] { Worker(warmup ? &warmup : nullptr, i, &warmed[static_cast<size_t>(i)]); });
  for (auto& w : warmed) w.get_future().wait();  // `warmup` and `warmed` outlive their use
}

ModelScheduler::~ModelScheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

std::future<InferResult> ModelScheduler::Submit(InferRequest request) {
  auto p = std::make_unique<Pending>();
  if (options_.max_batch_size > 0) {
    // The batch dimension is each input's first; the rest must agree to share a batch.
    p->samples = request.inputs.empty() || request.inputs[0].shape().empty() ? 1 : request.inputs[0].shape()[0];
    for (const HostTensor& t : request.inputs) {
      p->shape_key += fmt::format("{}:", static_cast<int>(t.dtype()));
      for (size_t d = 1; d < t.shape().size(); ++d) p->shape_key += fmt::format("{},", t.shape()[d]);
      p->shape_key += ';';
    }
  }
  p->request = std::move(request);
  std::future<InferResult> f = p->promise.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Answered(Reply::Error(ReplyCode::kUnavailable, "the model version is unloading; retry"));
    if (static_cast<int>(queue_.size()) >= options_.max_queue_size) {
      stats_->rejected_queue_full.fetch_add(1);
      return Answered(Reply::Error(ReplyCode::kUnavailable,
                                   fmt::format("the queue is full ({} requests waiting); retry later", queue_.size())));
    }
    queue_.push_back(std::move(p));
    stats_->queue_depth.store(static_cast<int64_t>(queue_.size()));
  }
  // Every instance: one may be gathering a batch that this request can join.
  cv_.notify_all();
  return f;
}

bool ModelScheduler::IsPreferred(int64_t total) const {
  const auto& p = options_.preferred_batch_sizes;
  return std::find(p.begin(), p.end(), total) != p.end();
}

void ModelScheduler::TakeCompatible(Batch& batch, int64_t& total) {
  for (auto it = queue_.begin(); it != queue_.end() && total < options_.max_batch_size;) {
    if ((*it)->shape_key == batch[0]->shape_key && total + (*it)->samples <= options_.max_batch_size) {
      total += (*it)->samples;
      batch.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

void ModelScheduler::Worker(const Warmup* warmup, int instance, std::promise<void>* warmed) {
  std::unique_ptr<ExecutionContext> context = engine_->CreateContext();
  if (warmup) (*warmup)(*context, instance);
  warmed->set_value();
  for (;;) {
    Batch batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || (!queue_.empty() && !gathering_); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
      if (options_.max_batch_size > 0) {
        gathering_ = true;
        int64_t total = batch[0]->samples;
        const Clock::time_point until =
            batch[0]->request.arrival + std::chrono::microseconds(options_.max_queue_delay_us);
        for (;;) {
          TakeCompatible(batch, total);
          if (total >= options_.max_batch_size || IsPreferred(total) || stopping_) break;
          if (Clock::now() >= until) break;
          cv_.wait_until(lock, until);
        }
        gathering_ = false;
      }
      stats_->queue_depth.store(static_cast<int64_t>(queue_.size()));
    }
    cv_.notify_all();  // another instance may start the next batch
    Execute(*context, batch);
  }
}

void ModelScheduler::Execute(ExecutionContext& context, Batch& batch) {
  const Clock::time_point start = Clock::now();
  // Requests whose deadline passed or whose client went away are answered, not run.
  Batch live;
  for (auto& p : batch) {
    InferResult r;
    r.queue_us = MicrosBetween(p->request.arrival, start);
    if (p->request.cancelled && p->request.cancelled->load()) {
      r.reply = Reply::Error(ReplyCode::kCancelled, "the request was cancelled");
    } else if (start > p->request.deadline) {
      r.reply = Reply::Error(ReplyCode::kTimeout,
                             fmt::format("the request's timeout passed after {} us in the queue", r.queue_us));
    } else {
      live.push_back(std::move(p));
      continue;
    }
    stats_->queue_us.fetch_add(static_cast<uint64_t>(r.queue_us));
    p->promise.set_value(std::move(r));
  }
  if (live.empty()) return;
  int64_t total = 0;
  for (auto& p : live) total += p->samples;

  auto fail_all = [&](const Reply& reply) {
    for (auto& p : live) {
      InferResult r;
      r.reply = reply;
      r.queue_us = MicrosBetween(p->request.arrival, start);
      p->promise.set_value(std::move(r));
    }
  };
  const size_t n_inputs = engine_->inputs().size();
  for (size_t i = 0; i < n_inputs; ++i) {
    Status s;
    if (live.size() == 1) {
      s = context.SetInput(static_cast<int>(i), live[0]->request.inputs[i]);
    } else {
      std::vector<const HostTensor*> parts;
      for (auto& p : live) parts.push_back(&p->request.inputs[i]);
      // The joined tensor must outlive Run(): kept in the first request's slot.
      HostTensor joined = JoinRows(parts, total);
      live[0]->request.inputs[i] = std::move(joined);
      s = context.SetInput(static_cast<int>(i), live[0]->request.inputs[i]);
    }
    if (!s.ok()) return fail_all(Reply::FromStatus(s));
  }
  const Clock::time_point run_start = Clock::now();
  Status s = context.Run();
  const int64_t compute_us = MicrosBetween(run_start, Clock::now());
  if (!s.ok()) return fail_all(Reply::FromStatus(s));
  stats_->execution_count.fetch_add(1);
  stats_->inference_count.fetch_add(static_cast<uint64_t>(total));
  stats_->compute_us.fetch_add(static_cast<uint64_t>(compute_us) * live.size());
  stats_->RecordBatch(static_cast<int>(total));

  // Each requested output once, then each request's rows of it.
  std::vector<int> wanted;
  for (auto& p : live)
    for (int o : p->request.outputs)
      if (std::find(wanted.begin(), wanted.end(), o) == wanted.end()) wanted.push_back(o);
  std::vector<HostTensor> outs(engine_->outputs().size());
  for (int o : wanted) {
    StatusOr<HostTensor> t = context.Output(o);
    if (!t.ok()) return fail_all(Reply::FromStatus(t.status()));
    if (live.size() > 1 && (t->shape().empty() || t->shape()[0] != total))
      return fail_all(Reply::Error(ReplyCode::kInternal,
                                   fmt::format("output '{}' of a batch of {} has no batch dimension of {} to split",
                                               engine_->outputs()[static_cast<size_t>(o)].name, total, total)));
    outs[static_cast<size_t>(o)] = std::move(*t);
  }
  int64_t row = 0;
  for (auto& p : live) {
    InferResult r;
    r.queue_us = MicrosBetween(p->request.arrival, start);
    r.compute_us = compute_us;
    r.batch_size = static_cast<int>(total);
    for (int o : p->request.outputs) {
      const HostTensor& t = outs[static_cast<size_t>(o)];
      r.outputs.emplace_back(engine_->outputs()[static_cast<size_t>(o)].name,
                             live.size() == 1 ? t : SliceRows(t, row, p->samples));
    }
    row += p->samples;
    stats_->queue_us.fetch_add(static_cast<uint64_t>(r.queue_us));
    p->promise.set_value(std::move(r));
  }
}

}  // namespace kiln::server
