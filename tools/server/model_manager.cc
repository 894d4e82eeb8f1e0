#include "tools/server/model_manager.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace kiln::server {

namespace fs = std::filesystem;

namespace {

Status Invalid(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// What makes a plan valid only for this machine: the CPU's model and feature flags.
const std::string& CpuIdentity() {
  static const std::string id = [] {
    std::ifstream f("/proc/cpuinfo");
    std::string line, model, flags;
    while (std::getline(f, line) && (model.empty() || flags.empty())) {
      if (model.empty() && line.rfind("model name", 0) == 0) model = line;
      if (flags.empty() && (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0)) flags = line;
    }
    return model + "|" + flags;
  }();
  return id;
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(StatusCode::kIoError, fmt::format("cannot read {}", path));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The plan cache key of an ONNX version: its bytes and files, the config, kiln, the CPU.
StatusOr<std::string> PlanCacheKey(const VersionFiles& v, const ModelConfig& config, int threads) {
  StatusOr<std::string> bytes = ReadWholeFile(v.model_path);
  if (!bytes.ok()) return bytes.status();
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  auto add = [&](const std::string& s) {
    const uint64_t n = s.size();
    XXH64_update(st, &n, sizeof n);
    XXH64_update(st, s.data(), s.size());
  };
  add(*bytes);
  add(v.fingerprint);  // external data files: by size and time
  add(config.text);
  add(KILN_VERSION);
  add(CpuIdentity());
  add(std::to_string(threads));
  const uint64_t h = XXH64_digest(st);
  XXH64_freeState(st);
  return fmt::format("{:016x}", h);
}

// Zeros for every input at batch `batch` (the first dimension; others from `shapes` or 1).
std::vector<HostTensor> WarmupInputs(const std::vector<TensorInfo>& inputs, int64_t batch) {
  std::vector<HostTensor> out;
  for (const TensorInfo& in : inputs) {
    std::vector<int64_t> shape = in.shape;
    for (size_t d = 0; d < shape.size(); ++d)
      if (shape[d] < 0) shape[d] = d == 0 && batch > 0 ? batch : 1;
    HostTensor t = HostTensor::Allocate(in.dtype, shape);
    if (in.dtype != DataType::kString && t.nbytes()) std::memset(t.data(), 0, t.nbytes());
    out.push_back(std::move(t));
  }
  return out;
}

// Everything a load reads: a change to any of it means a reload.
std::string SourceFingerprint(const ModelFiles& files) {
  std::string fp = files.config_fingerprint + "|";
  for (const auto& [v, vf] : files.versions) fp += fmt::format("{}={};", v, vf.fingerprint);
  return fp;
}

}  // namespace

InferResult ModelVersion::Infer(InferRequest request, const std::function<bool()>& cancelled) {
  const Clock::time_point arrival = request.arrival;
  stats.in_flight.fetch_add(1);
  std::shared_ptr<std::atomic<bool>> flag;
  if (cancelled) request.cancelled = flag = std::make_shared<std::atomic<bool>>(false);
  std::future<InferResult> f = scheduler->Submit(std::move(request));
  if (cancelled)
    while (f.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready)
      if (!flag->load() && cancelled()) flag->store(true);
  InferResult r = f.get();
  stats.in_flight.fetch_sub(1);
  (r.reply.ok() ? stats.request_success : stats.request_failure).fetch_add(1);
  stats.request_us.fetch_add(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - arrival).count()));
  return r;
}

ModelManager::ModelManager(ManagerOptions options)
    : options_(std::move(options)), repository_(options_.repository) {}

std::shared_ptr<ModelManager::ModelEntry> ModelManager::Entry(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& e = models_[name];
  if (!e) e = std::make_shared<ModelEntry>();
  return e;
}

StatusOr<std::shared_ptr<ModelVersion>> ModelManager::LoadVersion(const ModelFiles& files, const VersionFiles& vf,
                                                                  const ModelConfig& config) const {
  const Clock::time_point t0 = Clock::now();
  auto mv = std::make_shared<ModelVersion>();
  mv->name = files.name;
  mv->version = vf.version;
  mv->model_path = vf.model_path;
  mv->fingerprint = vf.fingerprint + "|" + files.config_fingerprint;
  mv->config = config;
  const bool is_onnx = vf.model_path.size() >= 5 && vf.model_path.compare(vf.model_path.size() - 5, 5, ".onnx") == 0;
  mv->platform = is_onnx ? "onnx" : "kiln_plan";
  const std::string what = fmt::format("model '{}' version {}", files.name, vf.version);

  BuildOptions bo;
  bo.threads = config.threads > 0 ? config.threads : options_.threads;
  if (!config.precision.empty()) {
    StatusOr<Precision> precision = ParsePrecision(config.precision);
    if (!precision.ok()) return precision.status().WithPrefix(what);
    bo.precision = *precision;
  }
  const int64_t max_batch = config.max_batch_size;
  if (is_onnx) {
    StatusOr<ModelSignature> sig = ReadSignature(vf.model_path);
    if (!sig.ok()) return sig.status().WithPrefix(what);
    for (const auto& [name, shape] : config.input_shapes) {
      bool found = false;
      for (const TensorInfo& in : sig->inputs) found |= in.name == name;
      if (!found) return Invalid(fmt::format("{}: config input_shapes names '{}', which the model has no input of", what, name));
    }
    if (max_batch > 0) {
      // One profile: the batch dimension from 1 to max_batch_size, timed at the largest
      // preferred size; the other dimensions fixed.
      std::map<std::string, ShapeRange> profile;
      const int64_t opt = config.preferred_batch_sizes.empty() ? max_batch : config.preferred_batch_sizes.back();
      for (const TensorInfo& in : sig->inputs) {
        if (in.kind != ValueKind::kTensor || in.shape.empty() || in.shape[0] >= 0)
          return Invalid(fmt::format("{}: max_batch_size {} needs every input to have a dynamic first (batch) "
                                     "dimension; input '{}' has shape [{}]", what, max_batch, in.name,
                                     fmt::join(in.shape, ",")));
        std::vector<int64_t> fixed = in.shape;
        auto given = config.input_shapes.find(in.name);
        for (size_t d = 1; d < fixed.size(); ++d)
          if (fixed[d] < 0)
            fixed[d] = given != config.input_shapes.end() && d < given->second.size() ? given->second[d] : 1;
        ShapeRange r;
        r.min = r.opt = r.max = fixed;
        r.min[0] = 1;
        r.opt[0] = opt;
        r.max[0] = max_batch;
        profile[in.name] = r;
      }
      bo.profiles.push_back(std::move(profile));
    } else {
      bo.input_shapes = config.input_shapes;
    }
  }

  std::string cache_path;
  if (is_onnx && options_.plan_cache) {
    StatusOr<std::string> key = PlanCacheKey(vf, config, bo.threads);
    if (key.ok()) cache_path = (fs::path(vf.model_path).parent_path() / ".kiln-cache" / ("model-" + *key + ".plan")).string();
  }
  std::error_code ec;
  if (!cache_path.empty() && fs::is_regular_file(cache_path, ec)) {
    StatusOr<std::shared_ptr<const Engine>> e = LoadOrBuild(cache_path, bo);
    if (e.ok()) {
      mv->engine = *e;
      mv->platform = "onnx (cached plan)";
    } else {
      std::cerr << fmt::format("kiln serve: {}: ignoring the cached plan {}: {}\n", what, cache_path,
                               e.status().message());
    }
  }
  if (!mv->engine) {
    StatusOr<std::shared_ptr<const Engine>> e = LoadOrBuild(vf.model_path, bo);
    if (!e.ok()) return e.status().WithPrefix(what);
    mv->engine = *e;
    if (!cache_path.empty()) {
      fs::path dir = fs::path(cache_path).parent_path();
      fs::create_directories(dir, ec);
      // Older plans of this version (another config, kiln or CPU) go.
      for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().rfind("model-", 0) == 0) fs::remove(it->path(), ec);
      Status s = kiln::SavePlan(*mv->engine, cache_path);
      if (!s.ok()) std::cerr << fmt::format("kiln serve: {}: plan not cached: {}\n", what, s.message());
    }
  }

  const double engine_ms = MsSince(t0);
  mv->inputs = mv->engine->inputs();
  mv->outputs = mv->engine->outputs();
  if (max_batch > 0) {
    for (const TensorInfo& in : mv->inputs)
      if (in.kind != ValueKind::kTensor || in.shape.empty() || in.shape[0] >= 0)
        return Invalid(fmt::format("{}: max_batch_size {} needs a dynamic first dimension, but input '{}' has shape [{}]",
                                   what, max_batch, in.name, fmt::join(in.shape, ",")));
    for (TensorInfo& out : mv->outputs) {
      if (out.kind != ValueKind::kTensor || !out.has_rank || out.shape.empty())
        return Invalid(fmt::format("{}: max_batch_size {} needs every output to have a batch dimension; output '{}' "
                                   "has shape [{}]", what, max_batch, out.name, fmt::join(out.shape, ",")));
      out.shape[0] = -1;
    }
  }
  for (const TensorInfo& in : mv->inputs)
    if (in.kind != ValueKind::kTensor)
      return Invalid(fmt::format("{}: input '{}' is a {}: the inference protocol carries tensors only", what, in.name,
                                 ValueKindName(in.kind)));

  // Warm-up: compile every batch size the batcher may form (a dynamic engine specializes
  // per shape on first use), so no request pays for it. Zeros are valid input for almost
  // every model; a failure is reported, not fatal.
  std::vector<int64_t> sizes;
  if (max_batch > 0) {
    for (int64_t b = 1; b <= max_batch && b <= 16; ++b) sizes.push_back(b);
    for (int b : config.preferred_batch_sizes) sizes.push_back(b);
    sizes.push_back(max_batch);
  } else {
    sizes.push_back(0);
  }
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  // A static engine has nothing to compile: by default it serves at once (its first request
  // runs ~1.1x a warm one: arenas on huge pages fault in a few pages), which is most of a
  // cold start (ResNet-50: ~45 of ~230 ms). A dynamic one warms every batch size it may run.
  bool dynamic = max_batch > 0;
  for (const TensorInfo& in : mv->inputs)
    for (int64_t d : in.shape) dynamic = dynamic || d < 0;
  if (config.warmup == 0 || (config.warmup < 0 && !dynamic)) sizes.clear();
  const Clock::time_point warm0 = Clock::now();
  SchedulerOptions so;
  so.max_batch_size = config.max_batch_size;
  so.max_queue_delay_us = config.max_queue_delay_us;
  so.preferred_batch_sizes = config.preferred_batch_sizes;
  so.max_queue_size = config.max_queue_size;
  so.instances = config.instance_count;
  // Each instance warms its own context; the first also compiles the batch sizes (a
  // dynamic engine specializes once per shape, for every context).
  const std::vector<TensorInfo>& inputs = mv->inputs;
  std::atomic<bool> warm_failed{false};
  auto warmup = [&](ExecutionContext& ctx, int instance) {
    for (int64_t b : sizes) {
      if (instance > 0 && b != sizes.back()) continue;
      std::vector<HostTensor> zeros = WarmupInputs(inputs, b);
      Status s;
      for (size_t i = 0; i < zeros.size() && s.ok(); ++i) s = ctx.SetInput(static_cast<int>(i), zeros[i]);
      if (s.ok()) s = ctx.Run();
      if (!s.ok()) {
        if (!warm_failed.exchange(true))
          std::cerr << fmt::format("kiln serve: {}: warm-up with zeros{} failed (it serves anyway): {}\n", what,
                                   b > 0 ? fmt::format(" at batch {}", b) : "", s.message());
        return;
      }
    }
  };
  mv->scheduler = std::make_unique<ModelScheduler>(mv->engine, so, &mv->stats, warmup);
  const double warm_ms = MsSince(warm0);
  mv->stats.load_ms = MsSince(t0);
  if (options_.verbose)
    std::cerr << fmt::format("kiln serve: {} ready ({}, {:.0f} ms: engine {:.0f}, {})\n", what, mv->platform,
                             mv->stats.load_ms, engine_ms,
                             sizes.empty() ? fmt::format("no warm-up, contexts {:.0f}", warm_ms)
                                           : fmt::format("warm-up of {} batch size{} {:.0f}", sizes.size(),
                                                         sizes.size() == 1 ? "" : "s", warm_ms));
  return mv;
}

Reply ModelManager::LoadFrom(const std::string& name, const StatusOr<ModelFiles>& files) {
  std::shared_ptr<ModelEntry> entry = Entry(name);
  std::lock_guard<std::mutex> load_lock(entry->load_mu);
  {
    std::lock_guard<std::mutex> lock(mu_);
    entry->source = files.ok() ? SourceFingerprint(*files) : "";
    if (entry->versions.empty()) entry->state = "LOADING";
  }
  auto set_state = [&](std::map<int64_t, std::shared_ptr<ModelVersion>> versions, std::string reason) {
    std::lock_guard<std::mutex> lock(mu_);
    entry->state = versions.empty() ? "UNAVAILABLE" : "READY";
    entry->versions.swap(versions);  // the old versions die when their last request ends
    entry->reason = std::move(reason);
  };
  if (!files.ok()) {
    set_state({}, files.status().message());
    return Reply::FromStatus(files.status());
  }
  ModelConfig config;
  if (!files->config_path.empty()) {
    StatusOr<std::string> text = ReadWholeFile(files->config_path);
    StatusOr<ModelConfig> c = text.ok() ? ParseModelConfig(*text, files->config_path) : StatusOr<ModelConfig>(text.status());
    if (!c.ok()) {
      // A broken config keeps what serves now serving.
      std::lock_guard<std::mutex> lock(mu_);
      entry->reason = c.status().message();
      if (entry->versions.empty()) entry->state = "UNAVAILABLE";
      return Reply::Error(ReplyCode::kBadRequest, c.status().message());
    }
    config = std::move(*c);
  }
  // The versions the policy serves: the newest `latest_versions` (0: all).
  std::vector<const VersionFiles*> wanted;
  for (auto it = files->versions.rbegin(); it != files->versions.rend(); ++it) {
    if (config.latest_versions > 0 && static_cast<int>(wanted.size()) >= config.latest_versions) break;
    wanted.push_back(&it->second);
  }
  if (wanted.empty()) {
    std::string why = fmt::format("model '{}' has no version to serve", name);
    if (!files->problems.empty()) why += fmt::format(" ({})", fmt::join(files->problems, "; "));
    set_state({}, why);
    return Reply::Error(ReplyCode::kBadRequest, why);
  }
  std::map<int64_t, std::shared_ptr<ModelVersion>> current;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current = entry->versions;
  }
  std::map<int64_t, std::shared_ptr<ModelVersion>> next;
  std::vector<std::string> errors;
  for (const VersionFiles* vf : wanted) {
    auto it = current.find(vf->version);
    if (it != current.end() && it->second->fingerprint == vf->fingerprint + "|" + files->config_fingerprint) {
      next[vf->version] = it->second;  // unchanged: keeps serving as it is
      continue;
    }
    StatusOr<std::shared_ptr<ModelVersion>> mv = LoadVersion(*files, *vf, config);
    if (mv.ok()) {
      next[vf->version] = *mv;
    } else {
      errors.push_back(mv.status().message());
      // A failed reload leaves the version that serves now serving.
      if (it != current.end()) next[vf->version] = it->second;
    }
  }
  std::string reason = fmt::format("{}", fmt::join(errors, "; "));
  const bool none = next.empty();
  set_state(std::move(next), reason);
  if (none) return Reply::Error(ReplyCode::kBadRequest, reason);
  if (!errors.empty()) return Reply::Error(ReplyCode::kBadRequest, reason);
  return Reply::Ok();
}

Reply ModelManager::Load(const std::string& name) { return LoadFrom(name, repository_.ScanModel(name)); }

Reply ModelManager::Unload(const std::string& name) {
  std::shared_ptr<ModelEntry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return Reply::Error(ReplyCode::kNotFound, fmt::format("no model '{}' is loaded", name));
    entry = it->second;
  }
  std::lock_guard<std::mutex> load_lock(entry->load_mu);
  std::map<int64_t, std::shared_ptr<ModelVersion>> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old.swap(entry->versions);
    entry->state = "UNAVAILABLE";
    entry->reason = "unloaded";
  }
  return Reply::Ok();  // `old` goes here; versions still running requests go with their last one
}

int ModelManager::LoadAll() {
  std::vector<std::string> skipped;
  StatusOr<std::map<std::string, ModelFiles>> all = repository_.Scan(&skipped);
  if (!all.ok()) {
    std::cerr << "kiln serve: " << all.status().message() << "\n";
    return 1;
  }
  for (const std::string& s : skipped)
    std::cerr << fmt::format("kiln serve: skipping repository entry '{}' (not a valid model name)\n", s);
  int failed = 0;
  for (const auto& [name, files] : *all) {
    Reply r = LoadFrom(name, files);
    if (!r.ok()) {
      ++failed;
      std::cerr << fmt::format("kiln serve: model '{}' failed to load: {}\n", name, r.message);
    }
  }
  return failed;
}

void ModelManager::Poll() {
  StatusOr<std::map<std::string, ModelFiles>> all = repository_.Scan();
  if (!all.ok()) return;
  std::map<std::string, std::string> tried;  // name -> what its last load saw
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, e] : models_)
      if (e->reason != "unloaded") tried[name] = e->source;
  }
  for (const auto& [name, files] : *all) {
    auto it = tried.find(name);
    if (it != tried.end() && it->second == SourceFingerprint(files)) continue;
    Reply r = LoadFrom(name, files);
    std::cerr << fmt::format("kiln serve: {} model '{}': {}\n", it == tried.end() ? "loaded" : "reloaded", name,
                             r.ok() ? "ready" : r.message);
  }
  for (const auto& [name, fp] : tried)
    if (!all->count(name)) {
      (void)Unload(name);
      std::cerr << fmt::format("kiln serve: model '{}' left the repository: unloaded\n", name);
    }
}

Reply ModelManager::Find(const std::string& name, const std::string& version, std::shared_ptr<ModelVersion>* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end() || (it->second->versions.empty() && it->second->reason == "unloaded"))
    return Reply::Error(ReplyCode::kNotFound, fmt::format("unknown model '{}'", name));
  const ModelEntry& e = *it->second;
  if (e.versions.empty())
    return Reply::Error(ReplyCode::kUnavailable,
                        e.state == "LOADING" ? fmt::format("model '{}' is loading; retry", name)
                                             : fmt::format("model '{}' is not ready: {}", name, e.reason));
  if (version.empty()) {
    *out = e.versions.rbegin()->second;
    return Reply::Ok();
  }
  for (const auto& [v, mv] : e.versions) {
    if (std::to_string(v) == version) {
      *out = mv;
      return Reply::Ok();
    }
  }
  return Reply::Error(ReplyCode::kNotFound, fmt::format("model '{}' has no version '{}' serving", name, version));
}

std::vector<ModelManager::IndexEntry> ModelManager::Index() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<IndexEntry> out;
  for (const auto& [name, e] : models_) {
    if (e->versions.empty()) {
      out.push_back({name, "", e->state, e->reason});
      continue;
    }
    for (const auto& [v, mv] : e->versions) out.push_back({name, std::to_string(v), "READY", e->reason});
  }
  return out;
}

std::vector<std::shared_ptr<ModelVersion>> ModelManager::Serving() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<ModelVersion>> out;
  for (const auto& [name, e] : models_)
    for (const auto& [v, mv] : e->versions) out.push_back(mv);
  return out;
}

}  // namespace kiln::server
