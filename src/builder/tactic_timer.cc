#include "builder/tactic_timer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "base/file.h"

namespace kiln {

StatusOr<std::unique_ptr<MeasuringTimer>> MeasuringTimer::Open(const std::string& path) {
  auto timer = std::make_unique<MeasuringTimer>();
  timer->path_ = path;
  struct stat st;
  if (path.empty() || (::stat(path.c_str(), &st) != 0 && errno == ENOENT)) return timer;  // a new cache
  KILN_ASSIGN_OR_RETURN(ReadOnlyFile file, ReadOnlyFile::Open(path, StrCat("timing cache '", path, "'")));
  KILN_ASSIGN_OR_RETURN(std::string text, file.ReadAll(int64_t{256} << 20));
  // Save() writes whole lines and renames into place: a last line without its newline means
  // the file was cut short or is not a cache, and a guess from it could pick a slow kernel.
  if (!text.empty() && text.back() != '\n')
    return InvalidArgument(path, ": the timing cache ends in the middle of a line (truncated?); delete it and kiln "
                                 "measures again");
  int n = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t eol = text.find('\n', pos);
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++n;
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.find(' ');
    char* end = nullptr;
    const double ms = sp == std::string::npos ? 0 : std::strtod(line.c_str(), &end);
    if (sp == std::string::npos || end != line.c_str() + sp || !(ms >= 0) || !std::isfinite(ms) || sp + 1 == line.size())
      return InvalidArgument(path, ":", n, ": not a timing-cache line (expected '<ms> <key>')");
    timer->ms_[line.substr(sp + 1)] = ms;
  }
  return timer;
}

std::optional<double> MeasuringTimer::Lookup(const std::string& key) const {
  auto it = ms_.find(key);
  if (it == ms_.end()) return std::nullopt;
  return it->second;
}

StatusOr<double> MeasuringTimer::Measure(const std::string& key, const std::function<Status()>& run,
                                         const TimingBudget& budget) {
  if (std::optional<double> hit = Lookup(key)) return *hit;
  KILN_RETURN_IF_ERROR(run());  // warm-up: first-touch pages, caches, lazy initialization
  std::vector<double> ms;
  double total = 0;
  while (static_cast<int>(ms.size()) < std::max(budget.max_runs, 1) &&
         (static_cast<int>(ms.size()) < std::max(budget.min_runs, 1) || total < budget.max_ms)) {
    const auto t0 = std::chrono::steady_clock::now();
    KILN_RETURN_IF_ERROR(run());
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ms.push_back(t);
    total += t;
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  ms_[key] = median;
  changed_ = true;
  return median;
}

Status MeasuringTimer::Save() const {
  if (path_.empty() || !changed_) return Status::OK();
  std::ostringstream text;
  text << "# kiln timing cache: measured milliseconds per layer problem and kernel candidate\n";
  for (const auto& [k, v] : ms_) text << v << " " << k << "\n";
  const std::string bytes = text.str();
  auto out = AtomicFileWriter::Create(path_);
  Status st = out.ok() ? out->Write(bytes.data(), bytes.size()) : out.status();
  if (st.ok()) st = out->Commit();
  if (!st.ok()) return Status(StatusCode::kIoError, StrCat("cannot write the timing cache: ", st.message()));
  return Status::OK();
}

}  // namespace kiln
