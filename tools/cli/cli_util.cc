#include <onnx/onnx_pb.h>

#include <fstream>

#include <iostream>

#include "api/engine_internal.h"
#include "base/file.h"
#include "tools/cli/commands.h"

namespace kiln::cli {

StatusOr<std::pair<std::string, std::vector<int64_t>>> ParseShapeSpec(const std::string& spec) {
  size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) return InvalidArgument("shape '", spec, "': expected NAME=1x3x224x224");
  std::vector<int64_t> dims;
  std::string rest = spec.substr(eq + 1);
  size_t pos = 0;
  while (pos <= rest.size() && !rest.empty()) {
    size_t x = rest.find('x', pos);
    std::string tok = rest.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
    char* end = nullptr;
    long long d = std::strtoll(tok.c_str(), &end, 10);
    if (tok.empty() || *end != '\0' || d < 0) return InvalidArgument("shape '", spec, "': bad dimension '", tok, "'");
    dims.push_back(d);
    if (x == std::string::npos) break;
    pos = x + 1;
  }
  return std::make_pair(spec.substr(0, eq), dims);
}

StatusOr<std::map<std::string, std::vector<int64_t>>> ParseShapeSpecs(const std::vector<std::string>& specs) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const std::string& s : specs) {
    KILN_ASSIGN_OR_RETURN(auto r, ParseShapeSpec(s));
    shapes[r.first] = r.second;
  }
  return shapes;
}

int CountOnnxNodes(const std::string& path) {
  auto in = ReadOnlyFile::Open(path);  // never blocks on a FIFO
  if (!in.ok()) return -1;
  auto bytes = in->ReadAll(int64_t{2} << 30);
  onnx::ModelProto mp;
  if (!bytes.ok() || !mp.ParseFromString(*bytes)) return -1;
  return mp.graph().node_size();
}

void WarnSlowPaths(const Engine& engine, const std::string& what) {
  const std::vector<std::string> slow = EngineSlowPaths(engine);
  if (slow.empty()) return;
  std::cerr << "warning: " << what << ": " << slow.size() << " layer(s) run on a reference implementation (slow path; "
            << "`kiln bench --profile` shows their share of the time, --strict refuses them):\n";
  const size_t shown = std::min<size_t>(slow.size(), 12);
  for (size_t i = 0; i < shown; ++i) std::cerr << "  " << slow[i] << "\n";
  if (shown < slow.size()) std::cerr << "  ... and " << slow.size() - shown << " more (kiln inspect --kernels)\n";
}

Status ParseEngineFlags(const std::string& backend, const std::string& precision, const std::string& batch_parallel,
                        BuildOptions* options) {
  if (!backend.empty()) {
    auto b = ParseBackend(backend);
    if (!b.ok()) return b.status().WithPrefix("--backend");
    options->backend = *b;
  }
  if (!precision.empty()) {
    auto p = ParsePrecision(precision);
    if (!p.ok()) return p.status().WithPrefix("--precision");
    options->precision = *p;
  }
  if (!batch_parallel.empty()) {
    auto m = ParseBatchParallel(batch_parallel);
    if (!m.ok()) return m.status().WithPrefix("--batch-parallel");
    options->batch_parallel = *m;
  }
  return Status::OK();
}

}  // namespace kiln::cli
