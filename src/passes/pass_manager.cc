#include "passes/pass_manager.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "passes/passes.h"

namespace kiln {

PassManager::PassManager(PassManagerOptions options, std::span<const PassInfo> passes)
    : options_(std::move(options)), passes_(passes) {
  if (options_.read_env) {
    if (const char* env = std::getenv("KILN_PASSES")) {
      std::stringstream ss(env);
      for (std::string item; std::getline(ss, item, ',');) {
        if (item.empty()) continue;
        if (item[0] == '-') options_.disabled.insert(item.substr(1));
        else only_.insert(item);
      }
    }
  }
}

bool PassManager::IsEnabled(const std::string& name) const {
  if (options_.disabled.count(name)) return false;
  return only_.empty() || only_.count(name);
}

Status VerifyGraph(const Graph& g) {
  std::vector<bool> defined(static_cast<size_t>(g.num_values()), false);
  for (ValueId v : g.inputs()) defined[static_cast<size_t>(v)] = true;
  for (ValueId v : g.captures()) defined[static_cast<size_t>(v)] = true;
  for (int v = 0; v < g.num_values(); ++v)
    if (g.value(v).constant) defined[static_cast<size_t>(v)] = true;
  for (int n = 0; n < g.num_nodes(); ++n) {
    const Node& node = g.node(n);
    if (node.dead) continue;
    for (ValueId o : node.outputs)
      if (o != kNoValue && g.value(o).producer != n)
        return Internal("verify: ", node.DisplayName(n), " output '", g.value(o).name, "' has another producer");
    for (ValueId in : node.inputs) {
      if (in == kNoValue) continue;
      const Value& v = g.value(in);
      if (v.producer < 0 && !defined[static_cast<size_t>(in)])
        return Internal("verify: ", node.DisplayName(n), " reads '", v.name, "', which nothing defines");
      if (v.producer >= 0 && g.node(v.producer).dead)
        return Internal("verify: ", node.DisplayName(n), " reads '", v.name, "' from a removed node");
      if (std::count(v.consumers.begin(), v.consumers.end(), n) !=
          std::count(node.inputs.begin(), node.inputs.end(), in))
        return Internal("verify: consumer list of '", v.name, "' disagrees with ", node.DisplayName(n));
    }
  }
  for (ValueId o : g.outputs()) {
    const Value& v = g.value(o);
    if (v.producer < 0 && !defined[static_cast<size_t>(o)])
      return Internal("verify: graph output '", v.name, "' is not defined");
  }
  return g.TopologicalOrder().status();
}

Status PassManager::Run(Graph& graph, PassContext& ctx) const {
  int step = 0;
  if (!options_.dump_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.dump_dir, ec);
    if (ec) return IoError("IR dump directory: cannot create '", options_.dump_dir, "': ", ec.message());
    std::ofstream(std::filesystem::path(options_.dump_dir) / "00_input.txt") << graph.ToString();
  }
  for (int iter = 0; iter < options_.max_iterations; ++iter) {
    bool changed_any = false;
    for (const PassInfo& p : passes_) {
      if (!IsEnabled(p.name)) continue;
      auto changed = p.run(graph, ctx);
      if (!changed.ok()) return changed.status().WithPrefix(StrCat("pass ", p.name));
      if (!*changed) continue;
      changed_any = true;
      if (options_.verify) {
        Status v = VerifyGraph(graph);
        if (!v.ok()) return v.WithPrefix(StrCat("after pass ", p.name));
        InferOptions io;
        io.evaluator = ctx.evaluator;
        Status t = InferTypes(graph, io);
        if (!t.ok()) return t.WithPrefix(StrCat("types after pass ", p.name));
      }
      if (!options_.dump_dir.empty()) {
        char name[256];
        std::snprintf(name, sizeof name, "%02d_%s.txt", ++step, p.name);
        std::ofstream(std::filesystem::path(options_.dump_dir) / name) << graph.ToString();
      }
    }
    if (!changed_any) break;
  }
  return Status::OK();
}

}  // namespace kiln
