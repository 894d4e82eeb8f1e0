#include "tools/server/model_repository.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace kiln::server {

namespace fs = std::filesystem;

namespace {

Status Invalid(std::string msg) { return Status(StatusCode::kInvalidArgument, std::move(msg)); }

std::string Fingerprint(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return fmt::format("{}:{}:{}.{}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

// A positive decimal version number, or 0.
int64_t ParseVersion(const std::string& s) {
  if (s.empty() || s.size() > 18 || s[0] == '0') return 0;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
}

StatusOr<ModelFiles> ScanModelDir(const std::string& name, const fs::path& dir) {
  ModelFiles m;
  m.name = name;
  m.dir = dir.string();
  std::error_code ec;
  if (fs::is_regular_file(dir / "config.json", ec)) {
    m.config_path = (dir / "config.json").string();
    m.config_fingerprint = Fingerprint(m.config_path);
  }
  fs::directory_iterator it(dir, ec), end;
  if (ec) return Status(StatusCode::kIoError, fmt::format("model '{}': cannot list {}: {}", name, dir.string(), ec.message()));
  for (; it != end; it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    if (entry == "config.json" || entry[0] == '.') continue;
    if (!it->is_directory(ec)) continue;
    const int64_t v = ParseVersion(entry);
    if (v == 0) {
      m.problems.push_back(fmt::format("'{}' is not a version number (a positive integer)", entry));
      continue;
    }
    VersionFiles vf;
    vf.version = v;
    for (const char* f : {"model.plan", "model.onnx"}) {
      if (fs::is_regular_file(it->path() / f, ec)) {
        vf.model_path = (it->path() / f).string();
        break;
      }
    }
    if (vf.model_path.empty()) {
      m.problems.push_back(fmt::format("version {} has no model.plan or model.onnx", v));
      continue;
    }
    // Every file of the version (external data too), so a change to any reloads it.
    std::vector<std::string> parts;
    fs::directory_iterator vit(it->path(), ec);
    for (; !ec && vit != end; vit.increment(ec)) {
      const std::string f = vit->path().filename().string();
      if (f[0] != '.') parts.push_back(f + "=" + Fingerprint(vit->path().string()));
    }
    std::sort(parts.begin(), parts.end());
    vf.fingerprint = fmt::format("{}", fmt::join(parts, ";"));
    m.versions[v] = std::move(vf);
  }
  return m;
}

}  // namespace

bool IsValidModelName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

StatusOr<std::map<std::string, ModelFiles>> ModelRepository::Scan(std::vector<std::string>* skipped) const {
  std::error_code ec;
  fs::directory_iterator it(root_, ec), end;
  if (ec) return Status(StatusCode::kIoError, fmt::format("model repository {}: {}", root_, ec.message()));
  std::map<std::string, ModelFiles> models;
  for (; it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!it->is_directory(ec)) continue;
    if (!IsValidModelName(name)) {
      if (skipped && name[0] != '.') skipped->push_back(name);
      continue;
    }
    StatusOr<ModelFiles> m = ScanModelDir(name, it->path());
    if (!m.ok()) {
      if (skipped) skipped->push_back(m.status().message());
      continue;
    }
    models.emplace(name, std::move(*m));
  }
  if (ec) return Status(StatusCode::kIoError, fmt::format("model repository {}: {}", root_, ec.message()));
  return models;
}

StatusOr<ModelFiles> ModelRepository::ScanModel(const std::string& name) const {
  if (!IsValidModelName(name))
    return Status(StatusCode::kNotFound, fmt::format("no model named {} (model names are 1-128 characters from "
                                                     "A-Z a-z 0-9 _ . -, not starting with '.')", nlohmann::json(name).dump(
                                                         -1, ' ', false, nlohmann::json::error_handler_t::replace)));
  std::error_code ec;
  fs::directory_iterator it(root_, ec), end;
  if (ec) return Status(StatusCode::kIoError, fmt::format("model repository {}: {}", root_, ec.message()));
  for (; it != end; it.increment(ec)) {
    if (it->path().filename().string() == name && it->is_directory(ec)) return ScanModelDir(name, it->path());
  }
  return Status(StatusCode::kNotFound, fmt::format("no model '{}' in the repository", name));
}

StatusOr<ModelConfig> ParseModelConfig(const std::string& text, const std::string& source) {
  ModelConfig c;
  c.text = text;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return Invalid(fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
  if (!j.is_object()) return Invalid(fmt::format("{}: must hold a JSON object", source));
  auto int_field = [&](const nlohmann::json& obj, const std::string& key, int64_t lo, int64_t hi, auto* out) -> Status {
    const auto& v = obj.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
      return Invalid(fmt::format("{}: '{}' must be an integer from {} to {}, not {}", source, key, lo, hi, v.dump()));
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(v.get<int64_t>());
    return Status::OK();
  };
  Status s;
  for (const auto& [key, v] : j.items()) {
    if (key == "max_batch_size") {
      s = int_field(j, key, 0, 4096, &c.max_batch_size);
    } else if (key == "instance_count") {
      s = int_field(j, key, 1, 64, &c.instance_count);
    } else if (key == "threads") {
      s = int_field(j, key, 0, 1024, &c.threads);
    } else if (key == "max_queue_size") {
      s = int_field(j, key, 1, 1 << 20, &c.max_queue_size);
    } else if (key == "default_timeout_us") {
      s = int_field(j, key, 0, int64_t{1} << 40, &c.default_timeout_us);
    } else if (key == "warmup") {
      if (!v.is_boolean()) return Invalid(fmt::format("{}: 'warmup' must be true or false, not {}", source, v.dump()));
      c.warmup = v.get<bool>() ? 1 : 0;
    } else if (key == "precision") {
      if (!v.is_string() || (v != "fp32" && v != "bf16"))
        return Invalid(fmt::format("{}: 'precision' must be \"fp32\" or \"bf16\", not {}", source, v.dump()));
      c.precision = v.get<std::string>();
    } else if (key == "version_policy") {
      if (v.is_object() && v.size() == 1 && v.contains("latest")) {
        s = int_field(v, "latest", 1, 1000, &c.latest_versions);
      } else if (v.is_object() && v.size() == 1 && v.contains("all") && v["all"] == true) {
        c.latest_versions = 0;
      } else {
        return Invalid(fmt::format("{}: 'version_policy' must be {{\"latest\": N}} or {{\"all\": true}}", source));
      }
    } else if (key == "dynamic_batching") {
      if (!v.is_object()) return Invalid(fmt::format("{}: 'dynamic_batching' must be an object", source));
      for (const auto& [k2, v2] : v.items()) {
        if (k2 == "max_queue_delay_microseconds") {
          s = int_field(v, k2, 0, 10'000'000, &c.max_queue_delay_us);
        } else if (k2 == "preferred_batch_size") {
          if (!v2.is_array()) return Invalid(fmt::format("{}: 'preferred_batch_size' must be an array", source));
          for (const auto& b : v2) {
            if (!b.is_number_integer() || b.get<int64_t>() < 1 || b.get<int64_t>() > 4096)
              return Invalid(fmt::format("{}: 'preferred_batch_size' holds {}, not a batch size", source, b.dump()));
            c.preferred_batch_sizes.push_back(b.get<int>());
          }
        } else {
          return Invalid(fmt::format("{}: unknown key 'dynamic_batching.{}' (known: max_queue_delay_microseconds, "
                                     "preferred_batch_size)", source, k2));
        }
        if (!s.ok()) return s;
      }
    } else if (key == "input_shapes") {
      if (!v.is_object()) return Invalid(fmt::format("{}: 'input_shapes' must map input names to shapes", source));
      for (const auto& [name, shape] : v.items()) {
        std::vector<int64_t> dims;
        if (!shape.is_array()) return Invalid(fmt::format("{}: input_shapes['{}'] must be an array", source, name));
        for (const auto& d : shape) {
          if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > (int64_t{1} << 31))
            return Invalid(fmt::format("{}: input_shapes['{}'] holds {}, not a dimension", source, name, d.dump()));
          dims.push_back(d.get<int64_t>());
        }
        c.input_shapes[name] = std::move(dims);
      }
    } else {
      return Invalid(fmt::format("{}: unknown key '{}' (known: max_batch_size, dynamic_batching, max_queue_size, "
                                 "instance_count, threads, precision, input_shapes, version_policy, default_timeout_us, warmup)",
                                 source, key));
    }
    if (!s.ok()) return s;
  }
  for (int b : c.preferred_batch_sizes)
    if (b > c.max_batch_size)
      return Invalid(fmt::format("{}: preferred batch size {} is larger than max_batch_size {}", source, b, c.max_batch_size));
  return c;
}

}  // namespace kiln::server
